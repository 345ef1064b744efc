//! Writing a Hugging Face GPT-2 model folder: `config.json`, `model.safetensors` (Hugging
//! Face tensor names, Conv1D layout, f32), `tokenizer.json` and `tokenizer_config.json`.
//! Every file is written atomically; the bytes depend only on the tensors, so a rebuilt model
//! is identical to the committed one bit for bit.

use crate::error::{write_atomic, Error, Result};
use crate::model::{Activation, ModelConfig};
use crate::report::safetensors::{self, TensorData};
use candle_core::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

/// The bytes of a safetensors file holding `tensors` as f32, with PyTorch's
/// `{"format": "pt"}` metadata (what `save_pretrained` writes).
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let data = tensors
        .iter()
        .map(|(name, t)| Ok((name.clone(), TensorData::f32_of(t)?)))
        .collect::<Result<Vec<_>>>()?;
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::to_bytes(&data, &meta)
}

/// Hugging Face's `config.json` for a GPT-2 model of this shape (tied embeddings, no dropout).
pub fn gpt2_config_json(cfg: &ModelConfig, bos: u32) -> String {
    let act = match cfg.act {
        Activation::GeluNew => "gelu_new",
        Activation::Gelu => "gelu",
        Activation::Relu => "relu",
        Activation::Silu => "silu",
    };
    let v = serde_json::json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": act,
        "attn_pdrop": 0.0,
        "bos_token_id": bos,
        "eos_token_id": bos,
        "embd_pdrop": 0.0,
        "initializer_range": 0.02,
        "layer_norm_epsilon": cfg.eps,
        "n_ctx": cfg.n_ctx,
        "n_embd": cfg.d_model,
        "n_head": cfg.n_heads,
        "n_inner": cfg.d_mlp,
        "n_layer": cfg.n_layers,
        "n_positions": cfg.n_ctx,
        "resid_pdrop": 0.0,
        "scale_attn_by_inverse_layer_idx": false,
        "scale_attn_weights": true,
        "summary_first_dropout": 0.0,
        "tie_word_embeddings": true,
        "torch_dtype": "float32",
        "use_cache": true,
        "vocab_size": cfg.d_vocab,
    });
    // serde_json's map keeps keys sorted, so the text is stable.
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// A GPT-2 [`ModelConfig`] (what `config.json` written by [`gpt2_config_json`] reads back as).
pub fn gpt2_model_config(
    n_layers: usize,
    d_model: usize,
    n_heads: usize,
    d_mlp: usize,
    d_vocab: usize,
    n_ctx: usize,
) -> Result<ModelConfig> {
    if n_heads == 0 || !d_model.is_multiple_of(n_heads) {
        return Err(Error::input(format!(
            "d_model {d_model} is not divisible by n_heads {n_heads}"
        )));
    }
    let text = serde_json::json!({
        "model_type": "gpt2", "n_layer": n_layers, "n_embd": d_model, "n_head": n_heads,
        "n_inner": d_mlp, "vocab_size": d_vocab, "n_positions": n_ctx, "bos_token_id": 0,
    })
    .to_string();
    ModelConfig::from_json(&text, Path::new("<generated config>"))
}

/// `tokenizer_config.json` so that `AutoTokenizer.from_pretrained` finds the fast tokenizer.
fn tokenizer_config_json() -> String {
    let v = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "[UNK]",
        "model_max_length": 1024,
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// Write a complete model folder (creating it if needed). `tensors` are Hugging Face GPT-2
/// tensors (e.g. from [`crate::model::Weights::to_hf_gpt2`]).
pub fn write_model_dir(
    dir: &Path,
    cfg: &ModelConfig,
    tensors: &[(String, Tensor)],
    tokenizer_json: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let bos = cfg.bos_token_id.unwrap_or(0);
    write_atomic(
        dir.join("config.json"),
        gpt2_config_json(cfg, bos).as_bytes(),
    )?;
    write_atomic(dir.join("model.safetensors"), &safetensors_bytes(tensors)?)?;
    let mut tok = tokenizer_json.to_string();
    if !tok.ends_with('\n') {
        tok.push('\n');
    }
    write_atomic(dir.join("tokenizer.json"), tok.as_bytes())?;
    write_atomic(
        dir.join("tokenizer_config.json"),
        tokenizer_config_json().as_bytes(),
    )?;
    Ok(())
}
