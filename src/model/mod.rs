//! Transformer models: configuration, weight loading and the per-component computations.
//!
//! The forward loop itself lives in [`crate::eval`]; this module provides the pieces it
//! composes: embedding, LayerNorm, one layer's attention heads, one MLP, the unembedding.

pub mod config;
pub mod gpt2;
pub mod random;
pub mod resolve;
pub mod weights;

pub use config::{Activation, Family, ModelConfig};
pub use weights::{BlockWeights, TensorSource, Weights};

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use std::path::{Path, PathBuf};

/// A loaded model: its shape, its weights, and where it came from.
#[derive(Debug, Clone)]
pub struct Model {
    /// The model's shape.
    pub cfg: ModelConfig,
    /// The weights in TransformerLens layout.
    pub w: Weights,
    /// The folder it was loaded from (empty for models built in memory).
    pub dir: PathBuf,
    /// The compute dtype (F32 or F64).
    pub dtype: DType,
    rotary: Option<(Tensor, Tensor)>,
}

/// A head's (or all heads') input: one residual stream shared by all heads, or one per head.
#[derive(Debug, Clone)]
pub enum HeadInput {
    /// `[batch, pos, d_model]`, the same for every head.
    Shared(Tensor),
    /// `[batch, pos, n_heads, d_model]`.
    PerHead(Tensor),
}

impl HeadInput {
    /// The input as `[batch, pos, n_heads, d_model]`.
    pub fn per_head(&self, n_heads: usize) -> Result<Tensor> {
        match self {
            HeadInput::PerHead(t) => Ok(t.clone()),
            HeadInput::Shared(t) => {
                let (b, p, d) = t.dims3()?;
                Ok(t.unsqueeze(2)?
                    .broadcast_as((b, p, n_heads, d))?
                    .contiguous()?)
            }
        }
    }
}

impl Model {
    /// Load a model from a folder (see [`resolve::resolve_model`] for `--model` strings).
    pub fn load(dir: &Path, dtype: DType) -> Result<Self> {
        let cfg = ModelConfig::from_dir(dir)?;
        let src = TensorSource::from_dir(dir)?;
        let w = Weights::from_source(&src, &cfg, dtype)?;
        let mut m = Model::from_weights(cfg, w, dtype)?;
        m.dir = dir.to_path_buf();
        Ok(m)
    }

    /// Resolve `--model` and load it.
    pub fn load_spec(spec: &str, dtype: DType) -> Result<Self> {
        let dir = resolve::resolve_model(spec)?;
        Self::load(&dir, dtype)
    }

    /// Build a model from weights in memory.
    pub fn from_weights(cfg: ModelConfig, w: Weights, dtype: DType) -> Result<Self> {
        let rotary = if cfg.rotary_dim > 0 {
            Some(rotary_tables(&cfg, dtype)?)
        } else {
            None
        };
        Ok(Model {
            cfg,
            w,
            dir: PathBuf::new(),
            dtype,
            rotary,
        })
    }

    /// The device tensors live on (always the CPU here).
    pub fn device(&self) -> &Device {
        self.w.w_e.device()
    }

    /// Check a batch of token ids against the vocabulary and context, and make a tensor.
    pub fn tokens_tensor(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let n = rows.len();
        if n == 0 {
            return Err(Error::input("no token sequences given"));
        }
        let p = rows[0].len();
        if p == 0 {
            return Err(Error::input("empty token sequence"));
        }
        for (i, r) in rows.iter().enumerate() {
            if r.len() != p {
                return Err(Error::input(format!(
                    "ragged token lists: row 0 has {p} tokens but row {i} has {}; pad the rows \
                     to one length",
                    r.len()
                )));
            }
            if let Some(&t) = r.iter().find(|&&t| t as usize >= self.cfg.d_vocab) {
                return Err(Error::input(format!(
                    "row {i}: token id {t} is not below the model's vocabulary size {}",
                    self.cfg.d_vocab
                )));
            }
        }
        if p > self.cfg.n_ctx {
            return Err(Error::input(format!(
                "sequences of {p} tokens are longer than the model's context of {}",
                self.cfg.n_ctx
            )));
        }
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (n, p), self.device())?)
    }

    /// Token embedding and positional embedding (GPT-2), each `[batch, pos, d_model]`.
    pub fn embed(&self, tokens: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let (b, p) = tokens.dims2()?;
        let e = self
            .w
            .w_e
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, p, self.cfg.d_model))?;
        let pos = match &self.w.w_pos {
            Some(w_pos) => Some(
                w_pos
                    .narrow(0, 0, p)?
                    .unsqueeze(0)?
                    .broadcast_as((b, p, self.cfg.d_model))?
                    .contiguous()?,
            ),
            None => None,
        };
        Ok((e, pos))
    }

    /// LayerNorm over the last dimension. Returns (output, scale) with TransformerLens's
    /// `hook_scale` = sqrt(var + eps). Built from differentiable operations.
    pub fn layer_norm(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let scale = (var + self.cfg.eps)?.sqrt()?;
        let y = xc
            .broadcast_div(&scale)?
            .broadcast_mul(w)?
            .broadcast_add(b)?;
        Ok((y, scale))
    }

    /// One layer's queries, keys and values (before rotary) from its inputs (before LayerNorm):
    /// `(q, k, v, [ln scale of q, k, v inputs])`, each of q, k, v `[batch, pos, n_heads, d_head]`.
    pub fn qkv(
        &self,
        layer: usize,
        q_in: &HeadInput,
        k_in: &HeadInput,
        v_in: &HeadInput,
    ) -> Result<(Tensor, Tensor, Tensor, [Tensor; 3])> {
        let blk = &self.w.blocks[layer];
        let (h, dh) = (self.cfg.n_heads, self.cfg.d_head);
        if let (HeadInput::Shared(x), HeadInput::Shared(y), HeadInput::Shared(z)) =
            (q_in, k_in, v_in)
        {
            if x.id() == y.id() && y.id() == z.id() {
                let (b, p, d) = x.dims3()?;
                let (xn, scale) = self.layer_norm(x, &blk.ln1_w, &blk.ln1_b)?;
                let qkv = xn
                    .reshape((b * p, d))?
                    .matmul(&blk.w_qkv)?
                    .broadcast_add(&blk.b_qkv)?;
                let part = |i: usize| -> Result<Tensor> {
                    Ok(qkv.narrow(1, i * h * dh, h * dh)?.reshape((b, p, h, dh))?)
                };
                return Ok((
                    part(0)?,
                    part(1)?,
                    part(2)?,
                    [scale.clone(), scale.clone(), scale],
                ));
            }
        }
        let one = |inp: &HeadInput, w: &Tensor, bias: &Tensor| -> Result<(Tensor, Tensor)> {
            match inp {
                HeadInput::Shared(x) => {
                    let (b, p, d) = x.dims3()?;
                    let (xn, scale) = self.layer_norm(x, &blk.ln1_w, &blk.ln1_b)?;
                    let wf = w.permute((1, 0, 2))?.reshape((d, h * dh))?;
                    let y = xn
                        .reshape((b * p, d))?
                        .matmul(&wf)?
                        .reshape((b, p, h, dh))?
                        .broadcast_add(bias)?;
                    Ok((y, scale))
                }
                HeadInput::PerHead(x) => {
                    let (b, p, _, d) = x.dims4()?;
                    let (xn, scale) = self.layer_norm(x, &blk.ln1_w, &blk.ln1_b)?;
                    let y = xn
                        .permute((2, 0, 1, 3))?
                        .reshape((h, b * p, d))?
                        .matmul(w)?
                        .reshape((h, b, p, dh))?
                        .permute((1, 2, 0, 3))?
                        .broadcast_add(bias)?;
                    Ok((y, scale))
                }
            }
        };
        let (q, sq) = one(q_in, &blk.w_q, &blk.b_q)?;
        let (k, sk) = one(k_in, &blk.w_k, &blk.b_k)?;
        let (v, sv) = one(v_in, &blk.w_v, &blk.b_v)?;
        Ok((q, k, v, [sq, sk, sv]))
    }

    /// The rotary embedding applied to queries or keys (identity for GPT-2).
    pub fn rotate(&self, x: &Tensor) -> Result<Tensor> {
        match &self.rotary {
            Some((cos, sin)) => apply_rotary(x, cos, sin, self.cfg.rotary_dim),
            None => Ok(x.clone()),
        }
    }

    /// Whether the model uses rotary embeddings (and so has `hook_rot_q`, `hook_rot_k`).
    pub fn has_rotary(&self) -> bool {
        self.rotary.is_some()
    }

    /// Masked attention scores `[batch, n_heads, q_pos, k_pos]` from (rotated) q and k.
    pub fn attn_scores(&self, layer: usize, q: &Tensor, k: &Tensor) -> Result<Tensor> {
        let p = q.dim(1)?;
        let mut scale = (self.cfg.d_head as f64).sqrt();
        if self.cfg.scale_attn_by_inverse_layer_idx {
            scale *= (layer + 1) as f64;
        }
        let qh = q.permute((0, 2, 1, 3))?.contiguous()?; // [b, h, p, dh]
        let kt = k.permute((0, 2, 3, 1))?.contiguous()?; // [b, h, dh, p]
        let scores = (qh.matmul(&kt)? / scale)?;
        let mask = causal_mask(p, self.dtype, self.device())?;
        Ok(scores.broadcast_add(&mask)?)
    }

    /// `z = pattern · v`: `[batch, pos, n_heads, d_head]`.
    pub fn attn_z(&self, pattern: &Tensor, v: &Tensor) -> Result<Tensor> {
        let vh = v.permute((0, 2, 1, 3))?.contiguous()?;
        Ok(pattern.matmul(&vh)?.permute((0, 2, 1, 3))?.contiguous()?)
    }

    /// The sum of all heads' outputs plus `b_O`: `[batch, pos, d_model]`.
    pub fn attn_out(&self, layer: usize, z: &Tensor) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        let (b, p, h, dh) = z.dims4()?;
        Ok(z.reshape((b * p, h * dh))?
            .matmul(&blk.w_o_flat)?
            .broadcast_add(&blk.b_o)?
            .reshape((b, p, self.cfg.d_model))?)
    }

    /// One head's output (without `b_O`): `[batch, pos, d_model]`.
    pub fn head_result(&self, layer: usize, head: usize, z: &Tensor) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        let (b, p, _, dh) = z.dims4()?;
        let zh = z.narrow(2, head, 1)?.reshape((b * p, dh))?;
        let w = blk.w_o.narrow(0, head, 1)?.squeeze(0)?;
        Ok(zh.matmul(&w)?.reshape((b, p, self.cfg.d_model))?)
    }

    /// All heads' outputs (without `b_O`): `[batch, pos, n_heads, d_model]`.
    pub fn head_results(&self, layer: usize, z: &Tensor) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        let (b, p, h, dh) = z.dims4()?;
        let d = self.cfg.d_model;
        Ok(z.permute((2, 0, 1, 3))?
            .reshape((h, b * p, dh))?
            .matmul(&blk.w_o)?
            .reshape((h, b, p, d))?
            .permute((1, 2, 0, 3))?
            .contiguous()?)
    }

    /// An MLP's pre-activation from its input (before LayerNorm): `(hook_pre, ln2 scale)`.
    pub fn mlp_pre(&self, layer: usize, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let blk = &self.w.blocks[layer];
        let (w_in, b_in) = match (&blk.w_in, &blk.b_in) {
            (Some(w), Some(b)) => (w, b),
            _ => return Err(Error::input("this model has no MLPs")),
        };
        let (xn, scale) = self.layer_norm(x, &blk.ln2_w, &blk.ln2_b)?;
        Ok((xn.broadcast_matmul(w_in)?.broadcast_add(b_in)?, scale))
    }

    /// One whole MLP on its input (before LayerNorm): `hook_mlp_out` (the evaluator runs the
    /// same pieces with hooks between them).
    pub fn mlp(&self, layer: usize, x: &Tensor) -> Result<Tensor> {
        let (pre, _) = self.mlp_pre(layer, x)?;
        self.mlp_out_from_post(layer, &self.mlp_act(&pre)?)
    }

    /// The MLP activation function applied to `hook_pre`.
    pub fn mlp_act(&self, pre: &Tensor) -> Result<Tensor> {
        Ok(match self.cfg.act {
            Activation::GeluNew => gelu_new(pre)?,
            Activation::Gelu => pre.gelu_erf()?,
            Activation::Relu => pre.relu()?,
        })
    }

    /// The MLP output from `hook_post`.
    pub fn mlp_out_from_post(&self, layer: usize, post: &Tensor) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        match (&blk.w_out, &blk.b_out) {
            (Some(w), Some(b)) => Ok(post.broadcast_matmul(w)?.broadcast_add(b)?),
            _ => Err(Error::input("this model has no MLPs")),
        }
    }

    /// The final LayerNorm of `[n, d_model]` (or `[batch, pos, d_model]`) residuals:
    /// `(normalised, ln_final scale)`.
    pub fn final_norm(&self, resid: &Tensor) -> Result<(Tensor, Tensor)> {
        self.layer_norm(resid, &self.w.ln_f_w, &self.w.ln_f_b)
    }

    /// Final LayerNorm and unembedding of residuals: `(logits, ln_final scale)`.
    pub fn unembed(&self, resid: &Tensor) -> Result<(Tensor, Tensor)> {
        let (xn, scale) = self.final_norm(resid)?;
        Ok((self.unembed_normed(&xn)?, scale))
    }

    /// The unembedding of final-LayerNorm outputs (`unembed.hook_in`): the logits.
    pub fn unembed_normed(&self, xn: &Tensor) -> Result<Tensor> {
        let logits = xn.broadcast_matmul(&self.w.w_u)?;
        Ok(match &self.w.b_u {
            Some(b) => logits.broadcast_add(b)?,
            None => logits,
        })
    }
}

/// GPT-2's `gelu_new`, written as x·σ(2u) with u = √(2/π)(x + 0.044715x³).
pub fn gelu_new(x: &Tensor) -> Result<Tensor> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    // x + 0.044715·x³ as x·(1 + 0.044715·x²): no pow, two fewer passes.
    let u = (x * x.sqr()?.affine(0.044715, 1.0)?)?;
    let e = (u * (-2.0 * c))?.exp()?;
    Ok(x.div(&(e + 1.0)?)?)
}

/// Softmax over the last dimension from differentiable operations; −∞ entries get 0.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&s)?)
}

/// `[p, p]` additive causal mask: 0 on and below the diagonal, −∞ above.
pub fn causal_mask(p: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let v: Vec<f64> = (0..p * p)
        .map(|i| {
            if i % p > i / p {
                f64::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(v, (p, p), dev)?.to_dtype(dtype)?)
}

fn rotary_tables(cfg: &ModelConfig, dtype: DType) -> Result<(Tensor, Tensor)> {
    let rd = cfg.rotary_dim;
    let half = rd / 2;
    let mut cos = Vec::with_capacity(cfg.n_ctx * rd);
    let mut sin = Vec::with_capacity(cfg.n_ctx * rd);
    for pos in 0..cfg.n_ctx {
        for j in 0..rd {
            let i = j % half;
            // inv_freq as Hugging Face computes it: in f32 for f32 models.
            let inv = if dtype == DType::F32 {
                let e = (2 * i) as f32 / rd as f32;
                (1.0f32 / (cfg.rotary_base as f32).powf(e)) as f64
            } else {
                1.0 / cfg.rotary_base.powf((2 * i) as f64 / rd as f64)
            };
            let angle = if dtype == DType::F32 {
                (pos as f32 * inv as f32) as f64
            } else {
                pos as f64 * inv
            };
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    let dev = Device::Cpu;
    Ok((
        Tensor::from_vec(cos, (cfg.n_ctx, rd), &dev)?.to_dtype(dtype)?,
        Tensor::from_vec(sin, (cfg.n_ctx, rd), &dev)?.to_dtype(dtype)?,
    ))
}

/// Rotary embedding (GPT-NeoX "rotate half" layout) on the first `rd` dims of `[b, p, h, dh]`.
fn apply_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor, rd: usize) -> Result<Tensor> {
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
