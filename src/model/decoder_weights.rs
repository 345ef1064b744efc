//! Llama, Qwen2 and Gemma-2 weights (Hugging Face `LlamaForCausalLM` layout) in
//! TransformerLens layout.
//!
//! Keys and values keep their `n_kv_heads` heads (`W_K: [n_kv_heads, d_model, d_head]`, as
//! TransformerLens's `_W_K`); Gemma's RMSNorm scales `1 + w` are folded when loading (as
//! TransformerLens does); a tied unembedding is a transposed view of the embedding, not a copy.

use super::config::{Family, ModelConfig};
use super::weights::{BlockWeights, TensorSource, Weights};
use crate::error::Result;
use candle_core::{DType, Device, Tensor};

/// Load a Llama-style checkpoint.
#[allow(clippy::too_many_lines)] // one tensor name per weight of the checkpoint, listed in the checkpoint's order
pub(crate) fn load(src: &TensorSource, cfg: &ModelConfig, dt: DType) -> Result<Weights> {
    let (d, h, kv, dh, m) = (
        cfg.d_model,
        cfg.n_heads,
        cfg.n_kv_heads(),
        cfg.d_head,
        cfg.d_mlp,
    );
    let gemma = cfg.family == Family::Gemma2;
    let dev = Device::Cpu;
    let get = |rest: &str, shape: &[usize]| -> Result<Tensor> {
        src.get(&[format!("model.{rest}"), rest.to_string()], shape, dt)
    };
    // Gemma's RMSNorm multiplies by (1 + w).
    let norm = |rest: &str| -> Result<Tensor> {
        let w = get(rest, &[d])?;
        Ok(if gemma { (w + 1.0)? } else { w })
    };
    let zeros = |shape: &[usize]| -> Result<Tensor> { Ok(Tensor::zeros(shape, dt, &dev)?) };
    let w_e = get("embed_tokens.weight", &[cfg.d_vocab, d])?;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let p = |s: &str| format!("layers.{l}.{s}");
        // Linear weights are [out, in]; out is laid out per head as [n, d_head].
        let heads = |name: &str, n: usize| -> Result<Tensor> {
            Ok(get(&p(name), &[n * dh, d])?
                .reshape((n, dh, d))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let bias = |name: &str, n: usize| -> Result<Tensor> {
            let key = p(name);
            if src.has(&format!("model.{key}")) || src.has(&key) {
                Ok(get(&key, &[n * dh])?.reshape((n, dh))?)
            } else {
                zeros(&[n, dh])
            }
        };
        let w_o = get(&p("self_attn.o_proj.weight"), &[d, h * dh])?
            .t()?
            .contiguous()?
            .reshape((h, dh, d))?;
        let b_o_key = p("self_attn.o_proj.bias");
        let b_o = if src.has(&format!("model.{b_o_key}")) || src.has(&b_o_key) {
            get(&b_o_key, &[d])?
        } else {
            zeros(&[d])?
        };
        let lin_t = |name: &str, out: usize, inp: usize| -> Result<Tensor> {
            Ok(get(&p(name), &[out, inp])?.t()?.contiguous()?)
        };
        let pre_mlp_norm = if gemma {
            "pre_feedforward_layernorm.weight"
        } else {
            "post_attention_layernorm.weight"
        };
        let mut blk = BlockWeights::new(
            [norm(&p("input_layernorm.weight"))?, zeros(&[d])?],
            [norm(&p(pre_mlp_norm))?, zeros(&[d])?],
            [
                heads("self_attn.q_proj.weight", h)?,
                heads("self_attn.k_proj.weight", kv)?,
                heads("self_attn.v_proj.weight", kv)?,
            ],
            [
                bias("self_attn.q_proj.bias", h)?,
                bias("self_attn.k_proj.bias", kv)?,
                bias("self_attn.v_proj.bias", kv)?,
            ],
            w_o,
            b_o,
            [
                Some(lin_t("mlp.up_proj.weight", m, d)?),
                Some(zeros(&[m])?),
                Some(lin_t("mlp.down_proj.weight", d, m)?),
                Some(zeros(&[d])?),
            ],
        )?
        .with_gate(lin_t("mlp.gate_proj.weight", m, d)?);
        if gemma {
            blk = blk.with_post_norms(
                norm(&p("post_attention_layernorm.weight"))?,
                norm(&p("post_feedforward_layernorm.weight"))?,
            );
        }
        blocks.push(blk);
    }
    let ln_f_w = norm("norm.weight")?;
    let w_u = if !cfg.arch.tied_embeddings && src.has("lm_head.weight") {
        src.get(&["lm_head.weight".into()], &[cfg.d_vocab, d], dt)?
            .t()?
            .contiguous()?
    } else if cfg.arch.tied_embeddings {
        // A view: the tied unembedding shares the embedding's memory.
        w_e.t()?
    } else {
        src.get(&["lm_head.weight".into()], &[cfg.d_vocab, d], dt)?
    };
    Ok(Weights {
        w_e,
        w_pos: None,
        blocks,
        ln_f_w,
        ln_f_b: zeros(&[d])?,
        w_u,
        b_u: None,
    })
}
