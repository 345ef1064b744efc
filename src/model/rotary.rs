//! Rotary position embeddings: frequency tables (with `rope_theta` and the `linear` and
//! Llama-3 `rope_scaling` kinds) and the GPT-NeoX "rotate half" layout.

use super::config::{ModelConfig, RopeScaling};
use crate::error::Result;
use candle_core::{DType, Device, Tensor};

/// Positions precomputed when a model is loaded (longer sequences compute their own table):
/// Llama-3's 131,072-token context would otherwise cost two large tables.
pub const TABLE_POSITIONS: usize = 4096;

/// The inverse frequencies of the `rd / 2` rotated pairs, as Hugging Face computes them (in
/// f32 for f32 models), with the config's frequency scaling.
pub fn inv_freq(cfg: &ModelConfig, dtype: DType) -> Vec<f64> {
    let rd = cfg.rotary_dim;
    let f32_math = dtype == DType::F32;
    (0..rd / 2)
        .map(|i| {
            let inv = if f32_math {
                let e = (2 * i) as f32 / rd as f32;
                (1.0f32 / (cfg.rotary_base as f32).powf(e)) as f64
            } else {
                1.0 / cfg.rotary_base.powf((2 * i) as f64 / rd as f64)
            };
            let scaled = scale(inv, &cfg.arch.rope_scaling);
            if f32_math {
                scaled as f32 as f64
            } else {
                scaled
            }
        })
        .collect()
}

/// One frequency under a `rope_scaling` kind (Hugging Face's `_compute_llama3_parameters`).
fn scale(inv: f64, s: &RopeScaling) -> f64 {
    match *s {
        RopeScaling::None => inv,
        RopeScaling::Linear { factor } => inv / factor,
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old,
        } => {
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            let wavelen = 2.0 * std::f64::consts::PI / inv;
            if wavelen < high_wavelen {
                inv
            } else if wavelen > low_wavelen {
                inv / factor
            } else {
                let smooth =
                    (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                (1.0 - smooth) * inv / factor + smooth * inv
            }
        }
    }
}

/// `(cos, sin)` tables `[n_pos, rotary_dim]` (each frequency twice, "rotate half" layout).
pub fn tables(cfg: &ModelConfig, dtype: DType, n_pos: usize) -> Result<(Tensor, Tensor)> {
    let rd = cfg.rotary_dim;
    let half = rd / 2;
    let inv = inv_freq(cfg, dtype);
    let mut cos = Vec::with_capacity(n_pos * rd);
    let mut sin = Vec::with_capacity(n_pos * rd);
    for pos in 0..n_pos {
        for j in 0..rd {
            let f = inv[j % half];
            let angle = if dtype == DType::F32 {
                (pos as f32 * f as f32) as f64
            } else {
                pos as f64 * f
            };
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    let dev = Device::Cpu;
    Ok((
        Tensor::from_vec(cos, (n_pos, rd), &dev)?.to_dtype(dtype)?,
        Tensor::from_vec(sin, (n_pos, rd), &dev)?.to_dtype(dtype)?,
    ))
}

/// Rotary embedding (GPT-NeoX "rotate half" layout) on the first `rd` dims of `[b, p, h, dh]`.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor, rd: usize) -> Result<Tensor> {
    let (_, p, _, dh) = x.dims4()?;
    let half = rd / 2;
    let cos = cos.narrow(0, 0, p)?.unsqueeze(1)?; // [p, 1, rd]
    let sin = sin.narrow(0, 0, p)?.unsqueeze(1)?;
    let xr = x.narrow(3, 0, rd)?;
    let x1 = xr.narrow(3, 0, half)?;
    let x2 = xr.narrow(3, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
    let out = (xr.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?;
    if rd == dh {
        Ok(out)
    } else {
        Ok(Tensor::cat(&[&out, &x.narrow(3, rd, dh - rd)?], 3)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::random::gpt2_config;

    #[test]
    fn llama3_scaling_keeps_high_divides_low_and_blends_between() {
        let mut cfg = gpt2_config(1, 64, 4, 10);
        cfg.rotary_dim = 16;
        cfg.rotary_base = 10000.0;
        let plain = inv_freq(&cfg, DType::F64);
        cfg.arch.rope_scaling = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64.0,
        };
        let scaled = inv_freq(&cfg, DType::F64);
        // Wavelengths 2π·10000^(i/8): 6.3 (< 16, kept), 19.9 and 62.8 (blended), ≥ 199 (÷ 8).
        assert_eq!(scaled[0], plain[0]);
        for i in 3..8 {
            assert!((scaled[i] - plain[i] / 8.0).abs() < 1e-15);
        }
        for i in 1..3 {
            assert!(scaled[i] < plain[i] && scaled[i] > plain[i] / 8.0);
        }
    }
}
