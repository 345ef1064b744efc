//! Models with random weights, for benchmarks and tests of shape-dependent code.

use super::config::{Activation, Family, ModelConfig};
use super::weights::{BlockWeights, Weights};
use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// GPT-2 small's shape: 12 layers, d_model 768, 12 heads, vocab 50257, context 1024.
pub fn gpt2_small_config() -> ModelConfig {
    gpt2_config(12, 768, 12, 50257)
}

/// A GPT-2 configuration of the given size (d_mlp = 4 · d_model, context 1024).
pub fn gpt2_config(n_layers: usize, d_model: usize, n_heads: usize, d_vocab: usize) -> ModelConfig {
    ModelConfig {
        family: Family::Gpt2,
        n_layers,
        d_model,
        n_heads,
        d_head: d_model / n_heads,
        d_mlp: 4 * d_model,
        d_vocab,
        n_ctx: 1024,
        eps: 1e-5,
        act: Activation::GeluNew,
        rotary_dim: 0,
        rotary_base: 10000.0,
        parallel_residual: false,
        scale_attn_by_inverse_layer_idx: false,
        bos_token_id: None,
        arch: Default::default(),
    }
}

/// Weights drawn from N(0, std²) (LayerNorm scales near 1), seeded.
pub fn random_weights(cfg: &ModelConfig, seed: u64, dtype: DType) -> Result<Weights> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dev = Device::Cpu;
    let mut normal = |shape: &[usize], mean: f32, std: f32| -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            // Box–Muller.
            let u1: f32 = rng.random::<f32>().max(1e-12);
            let u2: f32 = rng.random::<f32>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = 2.0 * std::f32::consts::PI * u2;
            v.push(mean + std * r * t.cos());
            if v.len() < n {
                v.push(mean + std * r * t.sin());
            }
        }
        Ok(Tensor::from_vec(v, shape, &dev)?.to_dtype(dtype)?)
    };
    let (d, h, dh, m) = (cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp);
    let s = 0.02;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for _ in 0..cfg.n_layers {
        let mlp = if m > 0 {
            [
                Some(normal(&[d, m], 0.0, s)?),
                Some(normal(&[m], 0.0, s)?),
                Some(normal(&[m, d], 0.0, s)?),
                Some(normal(&[d], 0.0, s)?),
            ]
        } else {
            [None, None, None, None]
        };
        blocks.push(BlockWeights::new(
            [normal(&[d], 1.0, 0.1)?, normal(&[d], 0.0, 0.05)?],
            [normal(&[d], 1.0, 0.1)?, normal(&[d], 0.0, 0.05)?],
            [
                normal(&[h, d, dh], 0.0, s)?,
                normal(&[h, d, dh], 0.0, s)?,
                normal(&[h, d, dh], 0.0, s)?,
            ],
            [
                normal(&[h, dh], 0.0, s)?,
                normal(&[h, dh], 0.0, s)?,
                normal(&[h, dh], 0.0, s)?,
            ],
            normal(&[h, dh, d], 0.0, s)?,
            normal(&[d], 0.0, s)?,
            mlp,
        )?);
    }
    let w_e = normal(&[cfg.d_vocab, d], 0.0, s)?;
    let w_u = w_e.t()?.contiguous()?;
    Ok(Weights {
        w_pos: match cfg.family {
            Family::Gpt2 => Some(normal(&[cfg.n_ctx, d], 0.0, 0.01)?),
            _ => None,
        },
        w_e,
        blocks,
        ln_f_w: normal(&[d], 1.0, 0.1)?,
        ln_f_b: normal(&[d], 0.0, 0.05)?,
        w_u,
        b_u: None,
    })
}
