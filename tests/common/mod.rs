//! Helpers shared by integration tests: tiny random models saved as Hugging Face folders.

#![allow(dead_code)]

use candle_core::{DType, Tensor};
use circuitscope::model::{random, ModelConfig};
use std::collections::HashMap;
use std::path::Path;

/// Write a random GPT-2 model of this shape to `dir` (config.json, model.safetensors,
/// tokenizer.json over the words `w0 … w{vocab-3}`).
pub fn save_random_gpt2(dir: &Path, cfg: &ModelConfig, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let w = random::random_weights(cfg, seed, DType::F32).unwrap();
    // Larger weights than GPT-2's init so that attention is not uniform and paths matter.
    let scale = |t: &Tensor| (t * 12.0).unwrap();
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (k, v) in w.to_hf_gpt2().unwrap() {
        let v = if k.contains("ln_") { v } else { scale(&v) };
        map.insert(k, v.contiguous().unwrap());
    }
    candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "model_type": "gpt2",
        "n_layer": cfg.n_layers,
        "n_embd": cfg.d_model,
        "n_head": cfg.n_heads,
        "n_inner": cfg.d_mlp,
        "n_positions": cfg.n_ctx,
        "vocab_size": cfg.d_vocab,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let words: Vec<String> = (0..cfg.d_vocab - 2).map(|i| format!("w{i}")).collect();
    let tok = circuitscope::tokenizer::word_level_tokenizer_json(&words, &[]);
    std::fs::write(dir.join("tokenizer.json"), tok).unwrap();
}

/// A tiny GPT-2 shape: `layers` layers, `heads` heads, d_model 8, MLP 16, vocab 12, context 8.
pub fn tiny_config(layers: usize, heads: usize) -> ModelConfig {
    let mut c = random::gpt2_config(layers, 8, heads, 12);
    c.d_mlp = 16;
    c.n_ctx = 8;
    c
}
