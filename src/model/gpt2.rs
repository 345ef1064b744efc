//! GPT-2's Hugging Face tensors (Conv1D layout, `transformer.*` names) to TransformerLens-layout
//! [`Weights`]: the one conversion, used by the loader and by training (which needs it
//! differentiable: it is only narrows, reshapes, permutes and copies).

use super::config::ModelConfig;
use super::weights::{BlockWeights, Weights};
use crate::error::Result;
use candle_core::Tensor;

/// Build [`Weights`] from GPT-2 tensors given by their Hugging Face name and expected shape.
/// The unembedding is tied: `w_u` is the transposed (not copied) embedding; a loader with an
/// untied `lm_head` replaces it.
pub fn weights_from_hf(
    cfg: &ModelConfig,
    get: &dyn Fn(&str, &[usize]) -> Result<Tensor>,
) -> Result<Weights> {
    let (d, h, dh, m) = (cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp);
    let w_e = get("transformer.wte.weight", &[cfg.d_vocab, d])?;
    let w_pos = get("transformer.wpe.weight", &[cfg.n_ctx, d])?;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let g = |rest: &str, shape: &[usize]| get(&format!("transformer.h.{l}.{rest}"), shape);
        let c_attn = g("attn.c_attn.weight", &[d, 3 * d])?;
        let c_attn_b = g("attn.c_attn.bias", &[3 * d])?;
        // Conv1D: [in, out]; out = [q | k | v], each [n_heads, d_head].
        let split_w = |i: usize| -> Result<Tensor> {
            Ok(c_attn
                .narrow(1, i * d, d)?
                .reshape((d, h, dh))?
                .permute((1, 0, 2))?
                .contiguous()?)
        };
        let split_b =
            |i: usize| -> Result<Tensor> { Ok(c_attn_b.narrow(0, i * d, d)?.reshape((h, dh))?) };
        let mlp = if m > 0 {
            [
                Some(g("mlp.c_fc.weight", &[d, m])?),
                Some(g("mlp.c_fc.bias", &[m])?),
                Some(g("mlp.c_proj.weight", &[m, d])?),
                Some(g("mlp.c_proj.bias", &[d])?),
            ]
        } else {
            [None, None, None, None]
        };
        blocks.push(BlockWeights::new(
            [g("ln_1.weight", &[d])?, g("ln_1.bias", &[d])?],
            [g("ln_2.weight", &[d])?, g("ln_2.bias", &[d])?],
            [split_w(0)?, split_w(1)?, split_w(2)?],
            [split_b(0)?, split_b(1)?, split_b(2)?],
            g("attn.c_proj.weight", &[d, d])?.reshape((h, dh, d))?,
            g("attn.c_proj.bias", &[d])?,
            mlp,
        )?);
    }
    Ok(Weights {
        w_u: w_e.t()?,
        w_e,
        w_pos: Some(w_pos),
        blocks,
        ln_f_w: get("transformer.ln_f.weight", &[d])?,
        ln_f_b: get("transformer.ln_f.bias", &[d])?,
        b_u: None,
    })
}
