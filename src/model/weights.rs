//! Weights in TransformerLens layout, loaded from Hugging Face safetensors.
//!
//! Weights multiply on the right: `W_Q: [n_heads, d_model, d_head]`, `W_O: [n_heads, d_head,
//! d_model]`, `W_in: [d_model, d_mlp]`, `W_U: [d_model, d_vocab]`.

use super::config::{Family, ModelConfig};
pub use super::source::TensorSource;
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};

/// One transformer block's weights.
#[derive(Debug, Clone)]
pub struct BlockWeights {
    /// LayerNorm before attention: scale and shift, `[d_model]`.
    pub ln1_w: Tensor,
    /// See `ln1_w`.
    pub ln1_b: Tensor,
    /// LayerNorm before the MLP.
    pub ln2_w: Tensor,
    /// See `ln2_w`.
    pub ln2_b: Tensor,
    /// Query bias `[n_heads, d_head]`.
    pub b_q: Tensor,
    /// Key bias `[n_kv_heads, d_head]`.
    pub b_k: Tensor,
    /// Value bias `[n_kv_heads, d_head]`.
    pub b_v: Tensor,
    /// Output weights `[n_heads, d_head, d_model]`.
    pub w_o: Tensor,
    /// Output bias `[d_model]`.
    pub b_o: Tensor,
    /// Q, K and V of all heads fused, `[d_model, (n_heads + 2 · n_kv_heads) · d_head]`: the
    /// one copy of those weights ([`BlockWeights::w_q`], [`BlockWeights::w_head`] cut the
    /// per-head layouts from it).
    pub w_qkv: Tensor,
    /// `(n_heads, n_kv_heads, d_head)`: where each of q, k, v sits in `w_qkv`.
    qkv_heads: (usize, usize, usize),
    /// Fused bias `[(n_heads + 2 · n_kv_heads) · d_head]`.
    pub b_qkv: Tensor,
    /// `W_O` flattened to `[n_heads · d_head, d_model]`.
    pub w_o_flat: Tensor,
    /// MLP input weights `[d_model, d_mlp]` (absent in attention-only models).
    pub w_in: Option<Tensor>,
    /// MLP input bias `[d_mlp]`.
    pub b_in: Option<Tensor>,
    /// MLP output weights `[d_mlp, d_model]`.
    pub w_out: Option<Tensor>,
    /// MLP output bias `[d_model]`.
    pub b_out: Option<Tensor>,
    /// Gate weights of a gated MLP `[d_model, d_mlp]` (TransformerLens's `W_gate`).
    pub w_gate: Option<Tensor>,
    /// Norm after attention (Gemma-2's `post_attention_layernorm`, `1 + w` folded), `[d_model]`.
    pub ln1_post_w: Option<Tensor>,
    /// Norm after the MLP (Gemma-2's `post_feedforward_layernorm`, `1 + w` folded).
    pub ln2_post_w: Option<Tensor>,
}

/// All weights of a model.
#[derive(Debug, Clone)]
pub struct Weights {
    /// Token embedding `[d_vocab, d_model]`.
    pub w_e: Tensor,
    /// Learned positional embedding `[n_ctx, d_model]` (GPT-2 only).
    pub w_pos: Option<Tensor>,
    /// The blocks.
    pub blocks: Vec<BlockWeights>,
    /// Final LayerNorm scale.
    pub ln_f_w: Tensor,
    /// Final LayerNorm shift.
    pub ln_f_b: Tensor,
    /// Unembedding `[d_model, d_vocab]`.
    pub w_u: Tensor,
    /// Unembedding bias `[d_vocab]`, if any.
    pub b_u: Option<Tensor>,
}

/// Candidate names: with and without the model prefix (`transformer.` / `gpt_neox.`).
fn names(prefix: &str, rest: &str) -> Vec<String> {
    vec![format!("{prefix}{rest}"), rest.to_string()]
}

impl Weights {
    /// Convert Hugging Face tensors to TransformerLens layout.
    pub fn from_source(src: &TensorSource, cfg: &ModelConfig, dtype: DType) -> Result<Self> {
        match cfg.family {
            Family::Gpt2 => Self::gpt2(src, cfg, dtype),
            Family::NeoX => Self::neox(src, cfg, dtype),
            Family::Llama | Family::Qwen2 | Family::Gemma2 => {
                super::decoder_weights::load(src, cfg, dtype)
            }
        }
    }

    fn gpt2(src: &TensorSource, cfg: &ModelConfig, dt: DType) -> Result<Self> {
        // Names with or without the `transformer.` prefix.
        let get = |name: &str, shape: &[usize]| {
            let rest = name.strip_prefix("transformer.").unwrap_or(name);
            src.get(&names("transformer.", rest), shape, dt)
        };
        let mut w = super::gpt2::weights_from_hf(cfg, &get)?;
        if src.has("lm_head.weight") {
            w.w_u = src
                .get(&["lm_head.weight".into()], &[cfg.d_vocab, cfg.d_model], dt)?
                .t()?
                .contiguous()?;
        } else {
            // Tied (GPT-2's usual file): one copy, laid out for the unembedding's product
            // (`W_U` contiguous); `W_E` is its transposed view ([`super::Model::embedding_rows`]
            // gathers from it). Keeping both layouts cost a second 154 MB on GPT-2 small.
            w.w_u = w.w_e.t()?.contiguous()?;
            w.w_e = w.w_u.t()?;
        }
        Ok(w)
    }

    fn neox(src: &TensorSource, cfg: &ModelConfig, dt: DType) -> Result<Self> {
        let (d, h, dh, m) = (cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp);
        let p = "gpt_neox.";
        let w_e = src.get(&names(p, "embed_in.weight"), &[cfg.d_vocab, d], dt)?;
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let g = |rest: &str, shape: &[usize]| {
                src.get(&names(p, &format!("layers.{l}.{rest}")), shape, dt)
            };
            // Linear: [out, in]; out laid out per head as [n_heads, 3, d_head].
            let qkv = g("attention.query_key_value.weight", &[3 * d, d])?.reshape((h, 3, dh, d))?;
            let qkv_b = g("attention.query_key_value.bias", &[3 * d])?.reshape((h, 3, dh))?;
            let split_w = |i: usize| -> Result<Tensor> {
                // [h, dh, d] -> [h, d, dh]
                Ok(qkv
                    .narrow(1, i, 1)?
                    .squeeze(1)?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let split_b = |i: usize| -> Result<Tensor> {
                Ok(qkv_b.narrow(1, i, 1)?.squeeze(1)?.contiguous()?)
            };
            let dense = g("attention.dense.weight", &[d, d])?; // [out=d, in=h*dh]
            let w_o = dense.t()?.contiguous()?.reshape((h, dh, d))?;
            let (w_in, b_in, w_out, b_out) = if m > 0 {
                (
                    Some(g("mlp.dense_h_to_4h.weight", &[m, d])?.t()?.contiguous()?),
                    Some(g("mlp.dense_h_to_4h.bias", &[m])?),
                    Some(g("mlp.dense_4h_to_h.weight", &[d, m])?.t()?.contiguous()?),
                    Some(g("mlp.dense_4h_to_h.bias", &[d])?),
                )
            } else {
                (None, None, None, None)
            };
            blocks.push(BlockWeights::new(
                [
                    g("input_layernorm.weight", &[d])?,
                    g("input_layernorm.bias", &[d])?,
                ],
                [
                    g("post_attention_layernorm.weight", &[d])?,
                    g("post_attention_layernorm.bias", &[d])?,
                ],
                [split_w(0)?, split_w(1)?, split_w(2)?],
                [split_b(0)?, split_b(1)?, split_b(2)?],
                w_o,
                g("attention.dense.bias", &[d])?,
                [w_in, b_in, w_out, b_out],
            )?);
        }
        let ln_f_w = src.get(&names(p, "final_layer_norm.weight"), &[d], dt)?;
        let ln_f_b = src.get(&names(p, "final_layer_norm.bias"), &[d], dt)?;
        let w_u = src
            .get(&["embed_out.weight".into()], &[cfg.d_vocab, d], dt)?
            .t()?
            .contiguous()?;
        Ok(Weights {
            w_e,
            w_pos: None,
            blocks,
            ln_f_w,
            ln_f_b,
            w_u,
            b_u: None,
        })
    }

    /// Hugging Face GPT-2 tensors (Conv1D layout) for these weights: the inverse of loading.
    pub fn to_hf_gpt2(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![("transformer.wte.weight".to_string(), self.w_e.contiguous()?)];
        let pos = self
            .w_pos
            .as_ref()
            .ok_or_else(|| Error::input("GPT-2 export needs learned positional embeddings"))?;
        out.push(("transformer.wpe.weight".into(), pos.clone()));
        for (l, b) in self.blocks.iter().enumerate() {
            let p = |s: &str| format!("transformer.h.{l}.{s}");
            // The fused q/k/v matrix is Conv1D's `c_attn` layout already.
            let c_attn = b.w_qkv.clone();
            let c_attn_b = Tensor::cat(
                &[
                    b.b_q.flatten_all()?,
                    b.b_k.flatten_all()?,
                    b.b_v.flatten_all()?,
                ],
                0,
            )?;
            out.push((p("ln_1.weight"), b.ln1_w.clone()));
            out.push((p("ln_1.bias"), b.ln1_b.clone()));
            out.push((p("attn.c_attn.weight"), c_attn.contiguous()?));
            out.push((p("attn.c_attn.bias"), c_attn_b));
            out.push((p("attn.c_proj.weight"), b.w_o_flat.clone()));
            out.push((p("attn.c_proj.bias"), b.b_o.clone()));
            out.push((p("ln_2.weight"), b.ln2_w.clone()));
            out.push((p("ln_2.bias"), b.ln2_b.clone()));
            if let (Some(wi), Some(bi), Some(wo), Some(bo)) = (&b.w_in, &b.b_in, &b.w_out, &b.b_out)
            {
                out.push((p("mlp.c_fc.weight"), wi.clone()));
                out.push((p("mlp.c_fc.bias"), bi.clone()));
                out.push((p("mlp.c_proj.weight"), wo.clone()));
                out.push((p("mlp.c_proj.bias"), bo.clone()));
            }
        }
        out.push(("transformer.ln_f.weight".into(), self.ln_f_w.clone()));
        out.push(("transformer.ln_f.bias".into(), self.ln_f_b.clone()));
        Ok(out)
    }
}

impl BlockWeights {
    /// Assemble a block and its fused forms.
    pub fn new(
        ln1: [Tensor; 2],
        ln2: [Tensor; 2],
        w_qkv: [Tensor; 3],
        b_qkv: [Tensor; 3],
        w_o: Tensor,
        b_o: Tensor,
        mlp: [Option<Tensor>; 4],
    ) -> Result<Self> {
        let (h, d, dh) = w_qkv[0].dims3()?;
        let flat = |t: &Tensor| -> Result<Tensor> {
            let (n, d, dh) = t.dims3()?;
            Ok(t.permute((1, 0, 2))?.reshape((d, n * dh))?)
        };
        let fused_w = Tensor::cat(&[flat(&w_qkv[0])?, flat(&w_qkv[1])?, flat(&w_qkv[2])?], 1)?
            .contiguous()?;
        let fused_b = Tensor::cat(
            &[
                b_qkv[0].flatten_all()?,
                b_qkv[1].flatten_all()?,
                b_qkv[2].flatten_all()?,
            ],
            0,
        )?;
        let w_o_flat = w_o.reshape((h * dh, d))?.contiguous()?;
        let [ln1_w, ln1_b] = ln1;
        let [ln2_w, ln2_b] = ln2;
        let kv = w_qkv[1].dim(0)?;
        let [b_q, b_k, b_v] = b_qkv;
        let [w_in, b_in, w_out, b_out] = mlp;
        Ok(BlockWeights {
            ln1_w,
            ln1_b,
            ln2_w,
            ln2_b,
            b_q,
            b_k,
            b_v,
            w_o,
            b_o,
            w_qkv: fused_w,
            qkv_heads: (h, kv, dh),
            b_qkv: fused_b,
            w_o_flat,
            w_in,
            b_in,
            w_out,
            b_out,
            w_gate: None,
            ln1_post_w: None,
            ln2_post_w: None,
        })
    }

    /// Query weights `[n_heads, d_model, d_head]`, copied out of the fused `w_qkv`.
    pub fn w_q(&self) -> Result<Tensor> {
        self.w_part(0)
    }

    /// Key weights `[n_kv_heads, d_model, d_head]` (TransformerLens's `_W_K`), copied out of
    /// the fused `w_qkv`.
    pub fn w_k(&self) -> Result<Tensor> {
        self.w_part(1)
    }

    /// Value weights `[n_kv_heads, d_model, d_head]`, copied out of the fused `w_qkv`.
    pub fn w_v(&self) -> Result<Tensor> {
        self.w_part(2)
    }

    /// Where part `which` (0: q, 1: k, 2: v) starts in `w_qkv`'s columns, in heads, and how
    /// many heads it has.
    fn part_heads(&self, which: usize) -> (usize, usize) {
        let (h, kv, _) = self.qkv_heads;
        match which {
            0 => (0, h),
            1 => (h, kv),
            _ => (h + kv, kv),
        }
    }

    /// Part `which` of `w_qkv` as `[n, d_model, d_head]`, contiguous.
    fn w_part(&self, which: usize) -> Result<Tensor> {
        let (start, n) = self.part_heads(which);
        let dh = self.qkv_heads.2;
        let d = self.w_qkv.dim(0)?;
        Ok(self
            .w_qkv
            .narrow(1, start * dh, n * dh)?
            .contiguous()?
            .reshape((d, n, dh))?
            .permute((1, 0, 2))?
            .contiguous()?)
    }

    /// One head's weights `[d_model, d_head]` of part `which` (0: q, 1: k, 2: v; `head` counts
    /// that part's heads), contiguous: `w_q()[head]` without copying the others.
    pub fn w_head(&self, which: usize, head: usize) -> Result<Tensor> {
        let (start, n) = self.part_heads(which);
        if head >= n {
            return Err(Error::input(format!(
                "internal: head {head} of a projection with {n} heads"
            )));
        }
        let dh = self.qkv_heads.2;
        Ok(self
            .w_qkv
            .narrow(1, (start + head) * dh, dh)?
            .contiguous()?)
    }

    /// Add a gated MLP's gate weights `[d_model, d_mlp]`.
    pub fn with_gate(mut self, w_gate: Tensor) -> Self {
        self.w_gate = Some(w_gate);
        self
    }

    /// Add Gemma-2's norms after attention and after the MLP (scales, `1 + w` folded).
    pub fn with_post_norms(mut self, attn: Tensor, mlp: Tensor) -> Self {
        self.ln1_post_w = Some(attn);
        self.ln2_post_w = Some(mlp);
        self
    }
}
