//! GPT-2 parameters as candle [`Var`]s, stored under Hugging Face's tensor names and in its
//! Conv1D layout (`[in, out]`), and turned into the forward pass's [`Weights`] on every step
//! (through differentiable reshapes, so gradients reach the variables).

use super::adamw::Param;
use crate::error::{Error, Result};
use crate::model::{ModelConfig, Weights};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// Standard deviation of GPT-2's initialisation (`initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// Names and shapes of every GPT-2 tensor of a model of this shape, in a fixed order.
pub fn gpt2_tensor_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, m) = (cfg.d_model, cfg.d_mlp);
    let mut v = vec![
        ("transformer.wte.weight".to_string(), vec![cfg.d_vocab, d]),
        ("transformer.wpe.weight".to_string(), vec![cfg.n_ctx, d]),
    ];
    for l in 0..cfg.n_layers {
        let p = |s: &str| format!("transformer.h.{l}.{s}");
        v.push((p("ln_1.weight"), vec![d]));
        v.push((p("ln_1.bias"), vec![d]));
        v.push((p("attn.c_attn.weight"), vec![d, 3 * d]));
        v.push((p("attn.c_attn.bias"), vec![3 * d]));
        v.push((p("attn.c_proj.weight"), vec![d, d]));
        v.push((p("attn.c_proj.bias"), vec![d]));
        v.push((p("ln_2.weight"), vec![d]));
        v.push((p("ln_2.bias"), vec![d]));
        if m > 0 {
            v.push((p("mlp.c_fc.weight"), vec![d, m]));
            v.push((p("mlp.c_fc.bias"), vec![m]));
            v.push((p("mlp.c_proj.weight"), vec![m, d]));
            v.push((p("mlp.c_proj.bias"), vec![d]));
        }
    }
    v.push(("transformer.ln_f.weight".to_string(), vec![d]));
    v.push(("transformer.ln_f.bias".to_string(), vec![d]));
    v
}

/// Standard normal samples from a seeded ChaCha8 stream (Box–Muller, in f64).
pub fn normal_samples(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // u1 in (0, 1] so that ln(u1) is finite.
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = 2.0 * std::f64::consts::PI * u2;
        out.push((std * r * a.cos()) as f32);
        out.push((std * r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// GPT-2's initialisation, drawn deterministically from `seed`: weights N(0, 0.02), the
/// residual projections N(0, 0.02/√(2·n_layers)), biases 0, LayerNorm scales 1.
pub fn init_gpt2(cfg: &ModelConfig, seed: u64) -> Result<Vec<(String, Tensor)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dev = Device::Cpu;
    let proj_std = INIT_STD / (2.0 * cfg.n_layers as f64).sqrt();
    let mut out = Vec::new();
    for (name, shape) in gpt2_tensor_shapes(cfg) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with(".bias") {
            vec![0.0; n]
        } else if name.contains("ln_") {
            vec![1.0; n]
        } else if name.ends_with("c_proj.weight") {
            normal_samples(&mut rng, n, proj_std)
        } else {
            normal_samples(&mut rng, n, INIT_STD)
        };
        out.push((name, Tensor::from_vec(data, shape, &dev)?));
    }
    Ok(out)
}

/// Trainable GPT-2 parameters (tied embedding and unembedding, as in GPT-2).
#[derive(Debug)]
pub struct Gpt2Params {
    /// The model's shape.
    pub cfg: ModelConfig,
    /// Every tensor with its optimiser state, in [`gpt2_tensor_shapes`] order.
    pub params: Vec<Param>,
}

impl Gpt2Params {
    /// Wrap named tensors (Hugging Face names, f32) as variables; every tensor of the shape
    /// must be present with the right shape.
    pub fn from_tensors(cfg: &ModelConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        let mut params = Vec::new();
        for (name, shape) in gpt2_tensor_shapes(cfg) {
            let t = tensors.get(&name).ok_or_else(|| {
                Error::input(format!("missing tensor '{name}' (shape {shape:?})"))
            })?;
            if t.dims() != shape.as_slice() {
                return Err(Error::input(format!(
                    "tensor '{name}' has shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            let decay = t.rank() == 2;
            let var = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
            params.push(Param::new(name, var, decay)?);
        }
        Ok(Gpt2Params {
            cfg: cfg.clone(),
            params,
        })
    }

    /// Freshly initialised parameters.
    pub fn init(cfg: &ModelConfig, seed: u64) -> Result<Self> {
        let map: HashMap<String, Tensor> = init_gpt2(cfg, seed)?.into_iter().collect();
        Self::from_tensors(cfg, &map)
    }

    fn get(&self, name: &str) -> Result<&Tensor> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.var.as_tensor())
            .ok_or_else(|| Error::input(format!("no parameter '{name}'")))
    }

    /// The current values as named tensors (detached copies sharing storage).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().detach()))
            .collect()
    }

    /// The forward pass's weights, built from the variables with differentiable operations.
    pub fn weights(&self) -> Result<Weights> {
        crate::model::gpt2::weights_from_hf(&self.cfg, &|n, _| self.get(n).cloned())
    }
}
