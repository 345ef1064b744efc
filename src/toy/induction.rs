//! `toy-induction`: a 2-layer GPT-2 whose weights are written by hand (like a compiled,
//! tracr-style model) so that its circuit is known edge by edge.
//!
//! The residual stream (width `d_model = 2V + n_ctx + 2c`) is cut into blocks:
//!
//! | block | width | written by | holds |
//! |---|---|---|---|
//! | `TOK` | V | embedding; head a1.h0 | the current token; the predicted token |
//! | `POS` | n_ctx | positional embedding | the position |
//! | `PREV` | V | head a0.h0 | the previous token |
//! | `J0` | c | head a0.h1 (distractor) | a code of the current token; nothing reads it |
//! | `J1` | c | head a1.h1 (distractor) | a code of the previous token; nothing reads it |
//!
//! Every block holds a *centred* code: a one-hot vector minus its mean (or a balanced ±1 code
//! for `J0`/`J1`), so the residual stream always has mean 0 and, whenever attention is hard, a
//! norm that does not depend on the tokens. LayerNorm (scale 1, shift 0) is then the fixed
//! map x ↦ x/σ with σ known in advance, and every weight below divides it out.
//!
//! - **a0.h0, previous-token head.** Query: the position p (`POS`); key: position j encoded as
//!   j + 1; so position p attends to p − 1 with a score margin of `margin`. Value: the token
//!   (`TOK`); output: that token's code into `PREV`.
//! - **a0.h1, distractor.** Attends to itself (query and key both `POS`), copies the current
//!   token's `J0` code.
//! - **a1.h0, induction head.** Query: the current token (`TOK`); key: the previous token
//!   (`PREV`); a position whose previous token equals the current token wins by `margin`.
//!   Value: the token there (`TOK`); output: `β ×` its code into `TOK`, which the (tied)
//!   unembedding reads, beating the current token's own `TOK` entry. Where the current token
//!   has no earlier occurrence every key scores the same and the head averages.
//! - **a1.h1, distractor.** Attends to itself, copies the previous token's `J1` code (it reads
//!   a0.h0's output, an edge that exists but changes nothing downstream).
//! - **MLPs** have all-zero weights and biases (width 1, because Hugging Face's GPT-2 cannot
//!   run an MLP of width 0): their output is exactly 0 for every input.

use crate::error::{Error, Result};
use crate::model::{BlockWeights, ModelConfig, Weights};
use crate::tokenizer::word_level_tokenizer_json;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Settings of the construction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InductionSpec {
    /// Ordinary tokens `t0 … t{n-1}` (the vocabulary adds `<|endoftext|>` and `[UNK]`).
    pub n_tokens: usize,
    /// Context length.
    pub n_ctx: usize,
    /// Width of each distractor's code block.
    pub code_dims: usize,
    /// Attention score margin of the intended key over every other key.
    pub margin: f64,
    /// Logit margin of the predicted token over an unrelated token on a repeat.
    pub logit_gap: f64,
    /// Size of the induction head's output relative to the token embedding (> 1 so that the
    /// predicted token beats the current one).
    pub beta: f64,
}

impl Default for InductionSpec {
    fn default() -> Self {
        InductionSpec {
            n_tokens: 40,
            n_ctx: 64,
            code_dims: 16,
            margin: 40.0,
            logit_gap: 10.0,
            beta: 3.0,
        }
    }
}

/// Where each block of the residual stream starts, and its width.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Layout {
    /// Vocabulary size V.
    pub d_vocab: usize,
    /// Context length.
    pub n_ctx: usize,
    /// Width of the distractor codes.
    pub code_dims: usize,
    /// Start of `TOK`.
    pub tok: usize,
    /// Start of `POS`.
    pub pos: usize,
    /// Start of `PREV`.
    pub prev: usize,
    /// Start of `J0`.
    pub j0: usize,
    /// Start of `J1`.
    pub j1: usize,
    /// Residual width.
    pub d_model: usize,
}

/// The built model: its shape, weights (f64, TransformerLens layout) and tokenizer.
pub struct BuiltInduction {
    /// Shape.
    pub cfg: ModelConfig,
    /// Weights in f64.
    pub weights: Weights,
    /// `tokenizer.json` text.
    pub tokenizer_json: String,
    /// The residual layout.
    pub layout: Layout,
}

/// Number of layers and heads of the construction.
pub const N_LAYERS: usize = 2;
/// Heads per layer: the circuit head (0) and a distractor (1).
pub const N_HEADS: usize = 2;
/// MLP width (all weights zero).
pub const D_MLP: usize = 1;

/// Token amplitudes of the blocks (before LayerNorm).
const A_TOK: f64 = 1.0;
const B_POS: f64 = 1.0;
const C_PREV: f64 = 1.0;
const J_CODE: f64 = 0.25;

/// Balanced ±1 codes for `n` tokens (n even): pairs `(2k, 2k+1)` get opposite codes, so the
/// codes sum to 0 over the vocabulary and each code sums to 0 over its dimensions. `skip`
/// picks a different family of codes.
fn balanced_codes(n: usize, dims: usize, skip: usize) -> Result<Vec<Vec<f64>>> {
    if !dims.is_multiple_of(2) || dims < 4 || !n.is_multiple_of(2) {
        return Err(Error::input(
            "codes need an even vocabulary and an even code width of at least 4",
        ));
    }
    if dims > 24 {
        return Err(Error::input("code widths above 24 are not supported"));
    }
    // Subsets of size dims/2 that contain dimension 0 (so no two are complements of each
    // other), in increasing order of their bit masks.
    let need = n / 2;
    let base: Vec<u32> = (0u32..(1 << dims))
        .filter(|m| m & 1 == 1 && m.count_ones() as usize == dims / 2)
        .take((skip + 1) * need)
        .collect();
    if base.len() < skip * need + need {
        return Err(Error::input(format!(
            "code width {dims} is too small for {n} tokens"
        )));
    }
    let mut codes = Vec::with_capacity(n);
    for k in 0..need {
        let set = base[skip * need + k];
        let v: Vec<f64> = (0..dims)
            .map(|d| if set >> d & 1 == 1 { 1.0 } else { -1.0 })
            .collect();
        codes.push(v.clone());
        codes.push(v.iter().map(|x| -x).collect());
    }
    Ok(codes)
}

/// The vocabulary words: `t0 … t{n-1}` (after `<|endoftext|>` = 0 and `[UNK]` = 1).
pub fn token_words(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i}")).collect()
}

fn mat(rows: usize, cols: usize) -> Vec<f64> {
    vec![0.0; rows * cols]
}

fn tensor(v: Vec<f64>, shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// Build the model.
#[allow(clippy::needless_range_loop)] // several arrays share the index
#[allow(clippy::too_many_lines)] // one hand-derived construction: the LayerNorm scales (s0, s1, sf, root) set every block's weights
pub fn build(spec: &InductionSpec) -> Result<BuiltInduction> {
    let v = spec.n_tokens + 2;
    let n = spec.n_ctx;
    let c = spec.code_dims;
    let lay = Layout {
        d_vocab: v,
        n_ctx: n,
        code_dims: c,
        tok: 0,
        pos: v,
        prev: v + n,
        j0: 2 * v + n,
        j1: 2 * v + n + c,
        d_model: 2 * v + n + 2 * c,
    };
    let d = lay.d_model;
    if !d.is_multiple_of(N_HEADS) {
        return Err(Error::input(format!(
            "the residual width {d} must be even; change n_tokens, n_ctx or code_dims"
        )));
    }
    let dh = d / N_HEADS;
    if dh < n.max(v) {
        return Err(Error::input(format!(
            "head width {dh} is smaller than the context ({n}) or the vocabulary ({v}); use \
             wider codes or fewer tokens"
        )));
    }
    if spec.beta <= 1.0 || spec.margin <= 0.0 || spec.logit_gap <= 0.0 {
        return Err(Error::input(
            "beta must exceed 1, margin and logit_gap must be positive",
        ));
    }
    let code0 = balanced_codes(v, c, 0)?;
    let code1 = balanced_codes(v, c, 1)?;
    let eps = 1e-5;
    let vf = v as f64;
    let nf = n as f64;
    let df = d as f64;
    let cen_v = 1.0 - 1.0 / vf; // squared norm of a centred one-hot of width V
    let cen_n = 1.0 - 1.0 / nf;
    let code_sq = c as f64 * J_CODE * J_CODE;
    // LayerNorm scales of the residual stream entering layer 0, layer 1 and the unembedding
    // (on a repeat, where the induction head's output is one code of norm β).
    let s0 = ((A_TOK * A_TOK * cen_v + B_POS * B_POS * cen_n) / df + eps).sqrt();
    let s1_sq_part =
        A_TOK * A_TOK * cen_v + B_POS * B_POS * cen_n + C_PREV * C_PREV * cen_v + code_sq;
    let s1 = (s1_sq_part / df + eps).sqrt();
    let tok_sq =
        A_TOK * A_TOK * cen_v + spec.beta * spec.beta * cen_v - 2.0 * A_TOK * spec.beta / vf;
    let sf_sq = tok_sq + B_POS * B_POS * cen_n + C_PREV * C_PREV * cen_v + 2.0 * code_sq;
    let sf = (sf_sq / df + eps).sqrt();
    let root = (spec.margin * (dh as f64).sqrt()).sqrt();

    // Embeddings.
    let mut w_e = mat(v, d);
    for t in 0..v {
        for i in 0..v {
            w_e[t * d + lay.tok + i] = A_TOK * (f64::from(u8::from(i == t)) - 1.0 / vf);
        }
    }
    let mut w_pos = mat(n, d);
    for p in 0..n {
        for i in 0..n {
            w_pos[p * d + lay.pos + i] = B_POS * (f64::from(u8::from(i == p)) - 1.0 / nf);
        }
    }

    // Per head: W_Q, W_K, W_V as [d, dh] and W_O as [dh, d].
    struct Head {
        q: Vec<f64>,
        k: Vec<f64>,
        v: Vec<f64>,
        o: Vec<f64>,
    }
    let new_head = || Head {
        q: mat(d, dh),
        k: mat(d, dh),
        v: mat(d, dh),
        o: mat(dh, d),
    };
    // Reads: W[(block_start + i) * dh + (dst + i)] = scale.
    let read = |w: &mut Vec<f64>, from: usize, to: usize, len: usize, shift: usize, scale: f64| {
        for i in 0..len {
            if to + i + shift < dh {
                w[(from + i) * dh + to + i + shift] = scale;
            }
        }
    };
    // Layer 0.
    let kpos0 = s0 / B_POS * root;
    let mut h00 = new_head();
    read(&mut h00.q, lay.pos, 0, n, 0, kpos0);
    read(&mut h00.k, lay.pos, 0, n, 1, kpos0);
    read(&mut h00.v, lay.tok, 0, v, 0, s0 / A_TOK);
    for t in 0..v {
        h00.o[t * d + lay.prev + t] = C_PREV;
    }
    let mut h01 = new_head();
    read(&mut h01.q, lay.pos, 0, n, 0, kpos0);
    read(&mut h01.k, lay.pos, 0, n, 0, kpos0);
    read(&mut h01.v, lay.tok, 0, v, 0, s0 / A_TOK);
    for t in 0..v {
        for j in 0..c {
            h01.o[t * d + lay.j0 + j] = J_CODE * code0[t][j];
        }
    }
    // Layer 1.
    let mut h10 = new_head();
    let kind = s1 * (1.0 / (A_TOK * C_PREV)).sqrt() * root;
    read(&mut h10.q, lay.tok, 0, v, 0, kind);
    read(&mut h10.k, lay.prev, 0, v, 0, kind);
    read(&mut h10.v, lay.tok, 0, v, 0, s1 / A_TOK);
    for t in 0..v {
        h10.o[t * d + lay.tok + t] = spec.beta;
    }
    let mut h11 = new_head();
    let kpos1 = s1 / B_POS * root;
    read(&mut h11.q, lay.pos, 0, n, 0, kpos1);
    read(&mut h11.k, lay.pos, 0, n, 0, kpos1);
    read(&mut h11.v, lay.prev, 0, v, 0, s1 / C_PREV);
    for t in 0..v {
        for j in 0..c {
            h11.o[t * d + lay.j1 + j] = J_CODE * code1[t][j];
        }
    }

    let stack_in = |heads: &[&Vec<f64>]| -> Result<Tensor> {
        // [h, d, dh]
        let mut all = Vec::with_capacity(heads.len() * d * dh);
        for h in heads {
            all.extend_from_slice(h);
        }
        tensor(all, &[heads.len(), d, dh])
    };
    let stack_out = |heads: &[&Vec<f64>]| -> Result<Tensor> {
        let mut all = Vec::with_capacity(heads.len() * dh * d);
        for h in heads {
            all.extend_from_slice(h);
        }
        tensor(all, &[heads.len(), dh, d])
    };
    let zeros = |shape: &[usize]| tensor(vec![0.0; shape.iter().product()], shape);
    let ones = |len: usize| tensor(vec![1.0; len], &[len]);
    let mut blocks = Vec::new();
    for (ha, hb) in [(&h00, &h01), (&h10, &h11)] {
        blocks.push(BlockWeights::new(
            [ones(d)?, zeros(&[d])?],
            [ones(d)?, zeros(&[d])?],
            [
                stack_in(&[&ha.q, &hb.q])?,
                stack_in(&[&ha.k, &hb.k])?,
                stack_in(&[&ha.v, &hb.v])?,
            ],
            [
                zeros(&[N_HEADS, dh])?,
                zeros(&[N_HEADS, dh])?,
                zeros(&[N_HEADS, dh])?,
            ],
            stack_out(&[&ha.o, &hb.o])?,
            zeros(&[d])?,
            [
                Some(zeros(&[d, D_MLP])?),
                Some(zeros(&[D_MLP])?),
                Some(zeros(&[D_MLP, d])?),
                Some(zeros(&[d])?),
            ],
        )?);
    }
    // Final LayerNorm scale: a repeat's predicted token leads an unrelated one by logit_gap.
    let g_f = spec.logit_gap * sf / (A_TOK * spec.beta);
    let w_e_t = tensor(w_e, &[v, d])?;
    let weights = Weights {
        w_u: w_e_t.t()?.contiguous()?,
        w_e: w_e_t,
        w_pos: Some(tensor(w_pos, &[n, d])?),
        blocks,
        ln_f_w: tensor(vec![g_f; d], &[d])?,
        ln_f_b: zeros(&[d])?,
        b_u: None,
    };
    let cfg = crate::train::export::gpt2_model_config(N_LAYERS, d, N_HEADS, D_MLP, v, n)?;
    let tokenizer_json = word_level_tokenizer_json(&token_words(spec.n_tokens), &[]);
    Ok(BuiltInduction {
        cfg,
        weights,
        tokenizer_json,
        layout: lay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_balanced_distinct_and_sum_to_zero() {
        let c = balanced_codes(42, 16, 0).unwrap();
        let c1 = balanced_codes(42, 16, 1).unwrap();
        assert_eq!(c.len(), 42);
        for code in c.iter().chain(&c1) {
            assert_eq!(code.iter().sum::<f64>(), 0.0);
            assert_eq!(code.iter().map(|x| x * x).sum::<f64>(), 16.0);
        }
        for j in 0..16 {
            assert_eq!(c.iter().map(|x| x[j]).sum::<f64>(), 0.0);
        }
        for a in 0..42 {
            for b in 0..a {
                assert_ne!(c[a], c[b]);
            }
        }
    }
}
