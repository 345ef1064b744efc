//! Transformer models: configuration, weight loading and the per-component computations.
//!
//! The forward loop itself lives in [`crate::eval`]; this module provides the pieces it
//! composes: embedding, LayerNorm, one layer's attention heads, one MLP, the unembedding.

pub mod config;
mod decoder_weights;
mod family;
pub mod gpt2;
pub mod random;
pub mod resolve;
pub mod rotary;
pub mod source;
pub mod weights;

pub use config::{Activation, Arch, Family, ModelConfig, NormKind, RopeScaling};
pub use weights::{BlockWeights, TensorSource, Weights};

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use std::path::{Path, PathBuf};

/// A loaded model: its shape, its weights, and where it came from.
#[derive(Debug, Clone)]
pub struct Model {
    /// The model's shape.
    pub cfg: ModelConfig,
    /// The weights in TransformerLens layout, in the compute dtype or (a model made by
    /// [`Model::widened`]) narrower: read them through [`Model::weight`].
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
            Some(rotary::tables(
                &cfg,
                dtype,
                cfg.n_ctx.min(rotary::TABLE_POSITIONS),
            )?)
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

    /// This model computing in `dtype` (wider than its weights' dtype) with the same weights,
    /// not copied: each weight is widened when an operation reads it ([`Model::weight`]) and
    /// dropped after. Widening is exact, so when the weights were loaded by layout changes
    /// alone (every family but Gemma-2, whose norm scales are folded in the load dtype) from a
    /// file no wider than this model's dtype, the result computes bit for bit as the model
    /// loaded in `dtype`, while only the narrow weights stay in memory.
    pub fn widened(&self, dtype: DType) -> Result<Model> {
        let mut m = Model::from_weights(self.cfg.clone(), self.w.clone(), dtype)?;
        m.dir = self.dir.clone();
        Ok(m)
    }

    /// A weight in the compute dtype: the tensor itself, or (a [`Model::widened`] model) its
    /// widened copy with the same layout (a transposed view stays a transposed view).
    pub fn weight(&self, t: &Tensor) -> Result<Tensor> {
        if t.dtype() == self.dtype {
            return Ok(t.clone());
        }
        if t.rank() == 2 && !t.is_contiguous() && t.t()?.is_contiguous() {
            return Ok(t.t()?.to_dtype(self.dtype)?.t()?);
        }
        Ok(t.to_dtype(self.dtype)?)
    }

    /// [`Model::weight`] of an optional weight.
    fn weight_opt(&self, t: Option<&Tensor>) -> Result<Option<Tensor>> {
        t.map(|t| self.weight(t)).transpose()
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

    /// The rows of `W_E` for token ids `ids` (`[n]` u32): `[n, d_model]` in the weights' dtype.
    /// A tied GPT-2 keeps `W_E` as the transposed view of a contiguous `W_U`; its rows are then
    /// gathered as columns of `W_U` (the same values).
    pub fn embedding_rows(&self, ids: &Tensor) -> Result<Tensor> {
        let w_e = &self.w.w_e;
        if w_e.is_contiguous() {
            return Ok(w_e.index_select(ids, 0)?);
        }
        let w_u = w_e.t()?;
        if w_u.is_contiguous() {
            return Ok(w_u.index_select(ids, 1)?.t()?.contiguous()?);
        }
        Ok(w_e.contiguous()?.index_select(ids, 0)?)
    }

    /// Token embedding and positional embedding (GPT-2), each `[batch, pos, d_model]`.
    pub fn embed(&self, tokens: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let (b, p) = tokens.dims2()?;
        let rows = self.embedding_rows(&tokens.flatten_all()?)?;
        let mut e = self.weight(&rows)?.reshape((b, p, self.cfg.d_model))?;
        if self.cfg.arch.embed_scale {
            // Gemma: × √d_model, rounded to the compute dtype first as Hugging Face does.
            e = (e * (self.cfg.d_model as f64).sqrt())?;
        }
        let pos = match &self.w.w_pos {
            Some(w_pos) => Some(
                self.weight(&w_pos.narrow(0, 0, p)?)?
                    .unsqueeze(0)?
                    .broadcast_as((b, p, self.cfg.d_model))?
                    .contiguous()?,
            ),
            None => None,
        };
        Ok((e, pos))
    }

    /// The model's norm over the last dimension: LayerNorm, or RMSNorm for the Llama-style
    /// families (then `b` is ignored). Returns (output, scale) with TransformerLens's
    /// `hook_scale` = √(var + ε) (LayerNorm) or √(mean x² + ε) (RMSNorm). Built from
    /// differentiable operations.
    pub fn layer_norm(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
        if self.cfg.arch.norm == NormKind::RmsNorm {
            return self.rms_norm(x, w);
        }
        let (xhat, scale) = self.standardise(x)?;
        Ok((xhat.broadcast_mul(w)?.broadcast_add(b)?, scale))
    }

    /// RMSNorm `x / √(mean x² + ε) · w` over the last dimension; returns (output, scale).
    pub fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Result<(Tensor, Tensor)> {
        let (xhat, scale) = self.rms_standardise(x)?;
        Ok((xhat.broadcast_mul(w)?, scale))
    }

    /// The model's norm before its weight and bias: the standardised input `x̂` and the scale,
    /// `((x − mean x) / √(var + ε), √(var + ε))` for LayerNorm, `(x / √(mean x² + ε), …)` for
    /// RMSNorm, over the last dimension. [`Model::layer_norm`] is `x̂ · w + b` of it.
    pub fn standardise(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        if self.cfg.arch.norm == NormKind::RmsNorm {
            return self.rms_standardise(x);
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let scale = (var + self.cfg.eps)?.sqrt()?;
        Ok((xc.broadcast_div(&scale)?, scale))
    }

    /// RMSNorm before its weight: `(x / √(mean x² + ε), √(mean x² + ε))`.
    fn rms_standardise(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let scale = (x.sqr()?.mean_keepdim(D::Minus1)? + self.cfg.eps)?.sqrt()?;
        Ok((x.broadcast_div(&scale)?, scale))
    }

    /// One layer's queries, keys and values (before rotary) from its inputs (before the norm):
    /// `(q, k, v, [norm scale of q, k, v inputs])`, each of q, k, v `[batch, pos, n_heads,
    /// d_head]`.
    ///
    /// With grouped-query attention, keys and values are computed once per key/value head and
    /// repeated for its query heads (TransformerLens's ungrouped `hook_k` / `hook_v`); given
    /// one input per query head (a patched or hooked `hook_k_input`), each query head computes
    /// its own keys and values with its group's weights, as TransformerLens's
    /// `ungroup_grouped_query_attention` does.
    pub fn qkv(
        &self,
        layer: usize,
        q_in: &HeadInput,
        k_in: &HeadInput,
        v_in: &HeadInput,
    ) -> Result<(Tensor, Tensor, Tensor, [Tensor; 3])> {
        let blk = &self.w.blocks[layer];
        let (ln_w, ln_b) = (self.weight(&blk.ln1_w)?, self.weight(&blk.ln1_b)?);
        let (h, kv, dh) = (self.cfg.n_heads, self.cfg.n_kv_heads(), self.cfg.d_head);
        if let (HeadInput::Shared(x), HeadInput::Shared(y), HeadInput::Shared(z)) =
            (q_in, k_in, v_in)
        {
            if x.id() == y.id() && y.id() == z.id() {
                let (b, p, d) = x.dims3()?;
                let (xn, scale) = self.layer_norm(x, &ln_w, &ln_b)?;
                let qkv = xn
                    .reshape((b * p, d))?
                    .matmul(&self.weight(&blk.w_qkv)?)?
                    .broadcast_add(&self.weight(&blk.b_qkv)?)?;
                let part = |start: usize, n: usize| -> Result<Tensor> {
                    Ok(qkv.narrow(1, start * dh, n * dh)?.reshape((b, p, n, dh))?)
                };
                let k = self.ungroup(&part(h, kv)?)?;
                let v = self.ungroup(&part(h + kv, kv)?)?;
                return Ok((part(0, h)?, k, v, [scale.clone(), scale.clone(), scale]));
            }
        }
        let one = |inp: &HeadInput, w: &Tensor, bias: &Tensor| -> Result<(Tensor, Tensor)> {
            let n = w.dim(0)?;
            match inp {
                HeadInput::Shared(x) => {
                    let (b, p, d) = x.dims3()?;
                    let (xn, scale) = self.layer_norm(x, &ln_w, &ln_b)?;
                    let wf = w.permute((1, 0, 2))?.reshape((d, n * dh))?;
                    let y = xn
                        .reshape((b * p, d))?
                        .matmul(&wf)?
                        .reshape((b, p, n, dh))?
                        .broadcast_add(bias)?;
                    Ok((y, scale))
                }
                HeadInput::PerHead(x) => {
                    // One input per query head: with grouped-query attention each query head
                    // computes its own keys and values from its group's weights
                    // (TransformerLens's ungrouped W_K, W_V).
                    let (w, bias) = if n < h {
                        let groups: Vec<u32> = (0..h).map(|q| self.cfg.kv_head(q) as u32).collect();
                        let idx = Tensor::from_vec(groups, h, x.device())?;
                        (w.index_select(&idx, 0)?, bias.index_select(&idx, 0)?)
                    } else {
                        (w.clone(), bias.clone())
                    };
                    let (b, p, _, d) = x.dims4()?;
                    let (xn, scale) = self.layer_norm(x, &ln_w, &ln_b)?;
                    let y = xn
                        .permute((2, 0, 1, 3))?
                        .reshape((h, b * p, d))?
                        .matmul(&w)?
                        .reshape((h, b, p, dh))?
                        .permute((1, 2, 0, 3))?
                        .broadcast_add(&bias)?;
                    Ok((y, scale))
                }
            }
        };
        let (q, sq) = one(q_in, &self.weight(&blk.w_q()?)?, &self.weight(&blk.b_q)?)?;
        let (k, sk) = one(k_in, &self.weight(&blk.w_k()?)?, &self.weight(&blk.b_k)?)?;
        let (v, sv) = one(v_in, &self.weight(&blk.w_v()?)?, &self.weight(&blk.b_v)?)?;
        let full = |t: Tensor| -> Result<Tensor> {
            if t.dim(2)? < h {
                self.ungroup(&t)
            } else {
                Ok(t)
            }
        };
        Ok((q, full(k)?, full(v)?, [sq, sk, sv]))
    }

    /// Repeat `[batch, pos, n_kv_heads, d]` per query head: `[batch, pos, n_heads, d]`
    /// (head `h` gets key/value head `h / group size`); the identity without grouping.
    pub fn ungroup(&self, t: &Tensor) -> Result<Tensor> {
        if !self.cfg.is_grouped() {
            return Ok(t.clone());
        }
        let (b, p, kv, d) = t.dims4()?;
        let r = self.cfg.kv_group_size();
        Ok(t.unsqueeze(3)?
            .broadcast_as((b, p, kv, r, d))?
            .reshape((b, p, kv * r, d))?)
    }

    /// The rotary embedding applied to queries or keys (identity for GPT-2).
    pub fn rotate(&self, x: &Tensor) -> Result<Tensor> {
        match &self.rotary {
            Some((cos, sin)) if cos.dim(0)? >= x.dim(1)? => {
                rotary::apply(x, cos, sin, self.cfg.rotary_dim)
            }
            // Longer than the precomputed table: compute one for this length.
            Some(_) => {
                let (cos, sin) = rotary::tables(&self.cfg, self.dtype, x.dim(1)?)?;
                rotary::apply(x, &cos, &sin, self.cfg.rotary_dim)
            }
            None => Ok(x.clone()),
        }
    }

    /// Whether the model uses rotary embeddings (and so has `hook_rot_q`, `hook_rot_k`).
    pub fn has_rotary(&self) -> bool {
        self.rotary.is_some()
    }

    /// Masked attention scores `[batch, n_heads, q_pos, k_pos]` from (rotated) q and k:
    /// scaled by 1/√`d_head` (1/√`query_pre_attn_scalar` for Gemma-2), soft-capped where the
    /// model soft-caps, then masked (causally, and outside the window in sliding layers).
    pub fn attn_scores(&self, layer: usize, q: &Tensor, k: &Tensor) -> Result<Tensor> {
        let p = q.dim(1)?;
        let a = &self.cfg.arch;
        let mut scale = if a.query_pre_attn_scalar > 0.0 {
            a.query_pre_attn_scalar.sqrt()
        } else {
            (self.cfg.d_head as f64).sqrt()
        };
        if self.cfg.scale_attn_by_inverse_layer_idx {
            scale *= (layer + 1) as f64;
        }
        let qh = q.permute((0, 2, 1, 3))?.contiguous()?; // [b, h, p, dh]
        let kt = k.permute((0, 2, 3, 1))?.contiguous()?; // [b, h, dh, p]
        let mut scores = (qh.matmul(&kt)? / scale)?;
        if a.attn_softcap > 0.0 {
            scores = soft_cap(&scores, a.attn_softcap)?;
        }
        let mask = if self.cfg.is_sliding(layer) {
            sliding_mask(p, a.sliding_window, self.dtype, self.device())?
        } else {
            causal_mask(p, self.dtype, self.device())?
        };
        Ok(scores.broadcast_add(&mask)?)
    }

    /// `z = pattern · v`: `[batch, pos, n_heads, d_head]`.
    pub fn attn_z(&self, pattern: &Tensor, v: &Tensor) -> Result<Tensor> {
        let vh = v.permute((0, 2, 1, 3))?.contiguous()?;
        Ok(pattern.matmul(&vh)?.permute((0, 2, 1, 3))?.contiguous()?)
    }

    /// The attention output added to the residual stream: all heads' outputs plus `b_O`
    /// (Gemma-2: then the post-attention norm), `[batch, pos, d_model]`.
    pub fn attn_out(&self, layer: usize, z: &Tensor) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        let (b, p, h, dh) = z.dims4()?;
        let out = z
            .reshape((b * p, h * dh))?
            .matmul(&self.weight(&blk.w_o_flat)?)?
            .broadcast_add(&self.weight(&blk.b_o)?)?
            .reshape((b, p, self.cfg.d_model))?;
        match self.weight_opt(blk.ln1_post_w.as_ref())? {
            Some(w) => Ok(self.rms_norm(&out, &w)?.0),
            None => Ok(out),
        }
    }

    /// The attention output from `hook_result` (`[batch, pos, n_heads, d_model]`): their sum
    /// plus `b_O`, then the post-attention norm where the model has one.
    pub fn attn_out_from_results(&self, layer: usize, results: &Tensor) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        let out = results.sum(2)?.broadcast_add(&self.weight(&blk.b_o)?)?;
        match self.weight_opt(blk.ln1_post_w.as_ref())? {
            Some(w) => Ok(self.rms_norm(&out, &w)?.0),
            None => Ok(out),
        }
    }

    /// The factor Gemma-2's post-attention norm multiplies this run's attention output by,
    /// `w / √(mean a² + ε)` with `a` the sum of all heads' outputs, `[batch, pos, d_model]`;
    /// `None` without a post-attention norm.
    pub fn attn_post_factor(&self, layer: usize, z: &Tensor) -> Result<Option<Tensor>> {
        let blk = &self.w.blocks[layer];
        let Some(w) = self.weight_opt(blk.ln1_post_w.as_ref())? else {
            return Ok(None);
        };
        let (b, p, h, dh) = z.dims4()?;
        let a = z
            .reshape((b * p, h * dh))?
            .matmul(&self.weight(&blk.w_o_flat)?)?
            .reshape((b, p, self.cfg.d_model))?;
        let scale = (a.sqr()?.mean_keepdim(D::Minus1)? + self.cfg.eps)?.sqrt()?;
        Ok(Some(w.broadcast_div(&scale)?))
    }

    /// One head's output as a sender (without `b_O`): `[batch, pos, d_model]`.
    ///
    /// With a post-attention norm (Gemma-2), which is not linear in the heads, a head's output
    /// is its `hook_result` times the norm's factor computed from the whole attention output of
    /// the run `z` comes from: `post_factor` is [`Model::attn_post_factor`] of the same `layer`
    /// and `z` (computed once per layer by the caller). The heads' outputs then sum exactly to
    /// the normed attention output of that run, which is what patching an edge swaps.
    pub fn head_result(
        &self,
        layer: usize,
        head: usize,
        z: &Tensor,
        post_factor: Option<&Tensor>,
    ) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        let (b, p, _, dh) = z.dims4()?;
        let zh = z.narrow(2, head, 1)?.reshape((b * p, dh))?;
        let w = self.weight(&blk.w_o.narrow(0, head, 1)?.squeeze(0)?)?;
        let r = zh.matmul(&w)?.reshape((b, p, self.cfg.d_model))?;
        match (post_factor, &blk.ln1_post_w) {
            (Some(f), Some(_)) => Ok(r.broadcast_mul(f)?),
            (None, None) => Ok(r),
            _ => Err(Error::input(format!(
                "internal: layer {layer}'s post-attention factor given without a post-attention \
                 norm, or missing with one"
            ))),
        }
    }

    /// All heads' outputs (without `b_O`), TransformerLens's `hook_result`: `[batch, pos,
    /// n_heads, d_model]` (before any post-attention norm).
    pub fn head_results(&self, layer: usize, z: &Tensor) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        let (b, p, h, dh) = z.dims4()?;
        let d = self.cfg.d_model;
        Ok(z.permute((2, 0, 1, 3))?
            .reshape((h, b * p, dh))?
            .matmul(&self.weight(&blk.w_o)?)?
            .reshape((h, b, p, d))?
            .permute((1, 2, 0, 3))?
            .contiguous()?)
    }

    /// An MLP's norm on its input: `(normalised, ln2 scale)`.
    pub fn mlp_norm(&self, layer: usize, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let blk = &self.w.blocks[layer];
        self.layer_norm(x, &self.weight(&blk.ln2_w)?, &self.weight(&blk.ln2_b)?)
    }

    /// One whole MLP on its input (before the norm): `hook_mlp_out` (the evaluator runs the
    /// same pieces with hooks between them).
    pub fn mlp(&self, layer: usize, x: &Tensor) -> Result<Tensor> {
        let (xn, _) = self.mlp_norm(layer, x)?;
        let pre = self.mlp_pre_normed(layer, &xn)?;
        let post = match self.mlp_pre_linear(layer, &xn)? {
            Some(lin) => self.mlp_gated(&pre, &lin)?,
            None => self.mlp_act(&pre)?,
        };
        self.mlp_out_from_post(layer, &post)
    }

    /// `hook_pre` from the normed MLP input: `x W_in + b_in`, or the gate `x W_gate` of a gated
    /// MLP (TransformerLens's `GatedMLP`).
    pub fn mlp_pre_normed(&self, layer: usize, xn: &Tensor) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        if let Some(g) = &blk.w_gate {
            return Ok(xn.broadcast_matmul(&self.weight(g)?)?);
        }
        match (&blk.w_in, &blk.b_in) {
            (Some(w), Some(b)) => Ok(xn
                .broadcast_matmul(&self.weight(w)?)?
                .broadcast_add(&self.weight(b)?)?),
            _ => Err(Error::input("this model has no MLPs")),
        }
    }

    /// `hook_pre_linear` of a gated MLP: `x W_in + b_in` (`None` for an ungated MLP).
    pub fn mlp_pre_linear(&self, layer: usize, xn: &Tensor) -> Result<Option<Tensor>> {
        let blk = &self.w.blocks[layer];
        if blk.w_gate.is_none() {
            return Ok(None);
        }
        match (&blk.w_in, &blk.b_in) {
            (Some(w), Some(b)) => Ok(Some(
                xn.broadcast_matmul(&self.weight(w)?)?
                    .broadcast_add(&self.weight(b)?)?,
            )),
            _ => Err(Error::input("this model has no MLPs")),
        }
    }

    /// The MLP activation function applied to `hook_pre`.
    pub fn mlp_act(&self, pre: &Tensor) -> Result<Tensor> {
        Ok(match self.cfg.act {
            Activation::GeluNew => gelu_new(pre)?,
            Activation::Gelu => pre.gelu_erf()?,
            Activation::Relu => pre.relu()?,
            Activation::Silu => pre.silu()?,
        })
    }

    /// A gated MLP's `hook_post`: `act(pre) ⊙ pre_linear` (SwiGLU, GeGLU).
    pub fn mlp_gated(&self, pre: &Tensor, pre_linear: &Tensor) -> Result<Tensor> {
        Ok((self.mlp_act(pre)? * pre_linear)?)
    }

    /// The MLP output added to the residual stream, from `hook_post` (Gemma-2: after the
    /// post-feedforward norm).
    pub fn mlp_out_from_post(&self, layer: usize, post: &Tensor) -> Result<Tensor> {
        let blk = &self.w.blocks[layer];
        let out = match (&blk.w_out, &blk.b_out) {
            (Some(w), Some(b)) => post
                .broadcast_matmul(&self.weight(w)?)?
                .broadcast_add(&self.weight(b)?)?,
            _ => return Err(Error::input("this model has no MLPs")),
        };
        match self.weight_opt(blk.ln2_post_w.as_ref())? {
            Some(w) => Ok(self.rms_norm(&out, &w)?.0),
            None => Ok(out),
        }
    }

    /// The final LayerNorm of `[n, d_model]` (or `[batch, pos, d_model]`) residuals:
    /// `(normalised, ln_final scale)`.
    pub fn final_norm(&self, resid: &Tensor) -> Result<(Tensor, Tensor)> {
        self.layer_norm(
            resid,
            &self.weight(&self.w.ln_f_w)?,
            &self.weight(&self.w.ln_f_b)?,
        )
    }

    /// Final LayerNorm and unembedding of residuals: `(logits, ln_final scale)`.
    pub fn unembed(&self, resid: &Tensor) -> Result<(Tensor, Tensor)> {
        let (xn, scale) = self.final_norm(resid)?;
        let logits = self.unembed_normed(&xn)?;
        Ok((self.cap_logits(&logits)?, scale))
    }

    /// `unembed.hook_out` from `unembed.hook_in`: `x W_U + b_U` (before any final soft-cap).
    pub fn unembed_normed(&self, xn: &Tensor) -> Result<Tensor> {
        let w_u = &self.w.w_u;
        let laid_out = w_u.is_contiguous() || w_u.t()?.is_contiguous();
        let mut logits =
            if w_u.dtype() != self.dtype && laid_out && self.cfg.d_vocab >= 2 * WIDEN_COLUMNS {
                self.unembed_widened(xn)?
            } else {
                self.unembed_matmul(xn)?
            };
        if let Some(b) = &self.w.b_u {
            logits = logits.broadcast_add(&self.weight(b)?)?;
        }
        Ok(logits)
    }

    /// A [`Model::widened`] model's `x W_U`, widening [`WIDEN_COLUMNS`] columns of `W_U` at a
    /// time instead of the whole matrix (GPT-2: 0.3 GB in float64). Bit for bit the product
    /// with the whole widened matrix: each logit is the same length-`d_model` dot product,
    /// accumulated in an order set by `d_model` alone (gemm's depth blocking depends on the
    /// depth and the caches, not on the number of columns), and the blocks start at multiples
    /// of 1024 columns, so every column keeps its place in the vector lanes and tiles; every
    /// block has over 64 columns, so the small-matrix path is never taken for a block that
    /// the whole matrix would not take.
    fn unembed_widened(&self, xn: &Tensor) -> Result<Tensor> {
        let v = self.cfg.d_vocab;
        let blocks = v / WIDEN_COLUMNS;
        let mut parts = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let start = i * WIDEN_COLUMNS;
            let len = if i + 1 == blocks {
                v - start
            } else {
                WIDEN_COLUMNS
            };
            // A block widens with its layout: contiguous `[d_model, len]`, or (tied) the
            // transposed view of the embedding's rows, as the whole matrix would be.
            let w = self.weight(&self.w.w_u.narrow(1, start, len)?)?;
            parts.push(xn.broadcast_matmul(&w)?);
        }
        Ok(Tensor::cat(&parts, xn.rank() - 1)?)
    }

    /// `x W_U` with the whole unembedding in the compute dtype.
    fn unembed_matmul(&self, xn: &Tensor) -> Result<Tensor> {
        let w_u = self.weight(&self.w.w_u)?;
        Ok(if w_u.is_contiguous() {
            xn.broadcast_matmul(&w_u)?
        } else {
            // A tied unembedding is a transposed view of the embedding: multiply as a matrix.
            let d = self.cfg.d_model;
            let mut dims = xn.dims().to_vec();
            let rows = xn.elem_count() / d;
            let out = xn.reshape((rows, d))?.matmul(&w_u)?;
            *dims.last_mut().expect("at least one dim") = self.cfg.d_vocab;
            out.reshape(dims)?
        })
    }

    /// The final logits from `unembed.hook_out`: Gemma-2's `cap · tanh(logits / cap)`, else
    /// unchanged.
    pub fn cap_logits(&self, logits: &Tensor) -> Result<Tensor> {
        match self.cfg.arch.final_softcap {
            c if c > 0.0 => soft_cap(logits, c),
            _ => Ok(logits.clone()),
        }
    }
}

/// Columns of the unembedding a [`Model::widened`] model widens at a time (a multiple of every
/// vector width and tile size, and over 64).
pub const WIDEN_COLUMNS: usize = 1024;

/// Soft-capping `cap · tanh(x / cap)`.
pub fn soft_cap(x: &Tensor, cap: f64) -> Result<Tensor> {
    Ok(((x / cap)?.tanh()? * cap)?)
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

/// `[p, p]` additive mask of a sliding-window layer: key `j` is visible from query `i` when
/// `i − window < j ≤ i` (Hugging Face's and TransformerLens's rule), −∞ elsewhere.
pub fn sliding_mask(p: usize, window: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let v: Vec<f64> = (0..p * p)
        .map(|n| {
            let (i, j) = (n / p, n % p);
            if j > i || i - j >= window {
                f64::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(v, (p, p), dev)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A widened model's unembedding, computed [`WIDEN_COLUMNS`] columns at a time, equals bit
    /// for bit the float64 model's product with the whole matrix, for every input shape the
    /// evaluator uses (answer rows `[n, 1, d]`, all positions `[n, p, d]`, flat `[n, d]`),
    /// at GPT-2's width.
    #[test]
    fn widened_unembedding_in_blocks_is_the_whole_product() {
        // d_model 768: deeper than gemm's smallest depth block (512), as in GPT-2. Untied
        // (a contiguous W_U) and tied (W_U the transposed view of W_E, as GPT-2 loads).
        let cfg = random::gpt2_config(1, 768, 12, 5 * WIDEN_COLUMNS + 77);
        for tied in [false, true] {
            let mut w = random::random_weights(&cfg, 1, DType::F32).unwrap();
            if tied {
                w.w_u = w.w_e.t().unwrap();
            }
            let m32 = Model::from_weights(cfg.clone(), w.clone(), DType::F32).unwrap();
            let wide = m32.widened(DType::F64).unwrap();
            let mut w64 = w;
            w64.w_u = if tied {
                w64.w_e.to_dtype(DType::F64).unwrap().t().unwrap()
            } else {
                w64.w_u.to_dtype(DType::F64).unwrap()
            };
            w64.ln_f_w = w64.ln_f_w.to_dtype(DType::F64).unwrap();
            w64.ln_f_b = w64.ln_f_b.to_dtype(DType::F64).unwrap();
            let m64 = Model::from_weights(cfg.clone(), w64, DType::F64).unwrap();
            assert_eq!(m64.w.w_u.is_contiguous(), !tied);
            for shape in [
                vec![3, 1, 768],
                vec![2, 5, 768],
                vec![20, 768],
                vec![1, 768],
            ] {
                let n: usize = shape.iter().product();
                let v: Vec<f64> = (0..n)
                    .map(|i| ((i * 7919) % 1000) as f64 / 300.0 - 1.6)
                    .collect();
                let x = Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap();
                let bits = |t: Tensor| -> Vec<u64> {
                    let v = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
                    v.into_iter().map(f64::to_bits).collect()
                };
                let a = wide.unembed_normed(&x).unwrap();
                let b = m64.unembed_normed(&x).unwrap();
                assert_eq!(a.dims(), b.dims());
                assert_eq!(bits(a), bits(b), "tied {tied}, input {shape:?}");
            }
        }
    }
}
