//! A hand-written backward pass: the gradient of the metric with respect to every receiver's
//! input, from one ordinary forward pass, without weight gradients.
//!
//! candle's `backward()` computes the gradient of both operands of every product (so a weight
//! gradient for every weight, batch-sized where a product broadcasts the weight) and starts
//! every accumulator from a fresh zero tensor. Here the forward pass is the plain one (every
//! head reads the shared residual stream, so the fused q/k/v product runs once), and the pass
//! back through it computes, layer by layer from the logits down, only what the receivers
//! need: the residual stream's gradient, and from it each MLP input's and each head's q, k and
//! v input's. A head's input gradient is its own norm's backward applied to
//! `∂m/∂q_h · W_Q[h]ᵀ` (and k, v): the same quantity candle's backward gives through a
//! per-head copy of the input, computed once per head instead of through the whole graph.
//!
//! Covered: LayerNorm and RMSNorm, learned or rotary positions, grouped key/value heads,
//! sequential or parallel attention and MLP, plain or gated MLPs with every activation the
//! models use — GPT-2, GPT-NeoX/Pythia, Llama and Qwen2. Gemma-2 (post-attention and
//! post-MLP norms, soft-capped scores and logits) is not: [`supported`] says so and the caller
//! differentiates with candle's autograd ([`super::gradients::receiver_grads_autograd`]).
//! `tests/attribution_backward.rs` checks one against the other on every family.

use super::fused;
use super::gradients::{Interpolation, ReceiverGrads};
use super::objective::GradMetric;
use crate::error::{Error, Result};
use crate::eval::{self, HookName, LogitsAt, NameFilter, Patches, Run, RunOptions, Site};
use crate::graph::edges::receivers_reverse;
use crate::graph::{Qkv, Receiver};
use crate::model::{rotary, Model, NormKind};
use candle_core::{DType, Tensor, Var, D};
use std::collections::BTreeMap;

/// Whether the hand-written backward covers this model and this interpolation (integrated
/// gradients move the embedding, one layer's head outputs or one MLP's output).
pub fn supported(model: &Model, interpolation: Option<&Interpolation>) -> bool {
    let a = &model.cfg.arch;
    let plain_blocks = model
        .w
        .blocks
        .iter()
        .all(|b| b.ln1_post_w.is_none() && b.ln2_post_w.is_none());
    let moved = match interpolation.map(|i| i.name) {
        None | Some(HookName::Block(0, Site::ResidPre)) => true,
        Some(HookName::Block(_, Site::Result | Site::MlpOut)) => true,
        Some(_) => false,
    };
    plain_blocks && !a.post_norms && a.attn_softcap == 0.0 && a.final_softcap == 0.0 && moved
}

/// A norm's saved statistics on its input: `x̂` (centred for LayerNorm) over the scale, and
/// the scale `√(var + ε)` (or `√(mean x² + ε)`), `[.., 1]`.
struct NormStats {
    xhat: Tensor,
    scale: Tensor,
    kind: NormKind,
}

impl NormStats {
    /// The statistics of the model's norm on `x` ([`Model::standardise`]).
    fn of(model: &Model, x: &Tensor) -> Result<NormStats> {
        let (xhat, scale) = model.standardise(x)?;
        Ok(NormStats {
            xhat,
            scale,
            kind: model.cfg.arch.norm,
        })
    }

    /// The gradient with respect to the norm's input from `g`, the gradient with respect to
    /// its output (`[.., d]`, or with extra leading dimensions, one gradient per head):
    /// `(ĝ − mean ĝ − x̂ · mean(ĝ ⊙ x̂)) / scale` with `ĝ = g ⊙ w` (RMSNorm: no `mean ĝ`).
    fn backward(&self, g: &Tensor, w: &Tensor) -> Result<Tensor> {
        let centre = self.kind == NormKind::LayerNorm;
        Ok(fused::norm_backward(g, w, &self.xhat, &self.scale, centre, false)?.0)
    }

    /// [`NormStats::backward`] of several gradients `[n, .., d]` at once, and their sum
    /// `[.., d]`.
    fn backward_and_sum(&self, g: &Tensor, w: &Tensor) -> Result<(Tensor, Tensor)> {
        let centre = self.kind == NormKind::LayerNorm;
        match fused::norm_backward(g, w, &self.xhat, &self.scale, centre, true)? {
            (each, Some(sum)) => Ok((each, sum)),
            _ => Err(Error::input("internal: the norm backward gave no sum")),
        }
    }
}

/// `a · bᵀ` over the last two dimensions.
fn matmul_t(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(a.matmul(&b.t()?)?)
}

/// `[b, p, h, d]` → `[b, h, p, d]`, contiguous.
fn heads_first(t: &Tensor) -> Result<Tensor> {
    Ok(t.permute((0, 2, 1, 3))?.contiguous()?)
}

/// The backward of the rotary embedding ([`rotary::apply`], a rotation of each pair of
/// dimensions) on `[b, h, p, dh]`: `g·cos + Rᵀ(g·sin)` on the rotated dimensions, where
/// `R(x1, x2) = (−x2, x1)` and so `Rᵀ(u1, u2) = (u2, −u1)`.
fn unrotate(model: &Model, g: &Tensor) -> Result<Tensor> {
    let rd = model.cfg.rotary_dim;
    let (_, _, p, dh) = g.dims4()?;
    let (cos, sin) = rotary::tables(&model.cfg, model.dtype, p)?;
    let half = rd / 2;
    let gr = g.narrow(3, 0, rd)?;
    let u = gr.broadcast_mul(&sin)?;
    let back = Tensor::cat(
        &[&u.narrow(3, half, half)?, &u.narrow(3, 0, half)?.neg()?],
        3,
    )?;
    let out = (gr.broadcast_mul(&cos)? + back)?;
    if rd == dh {
        Ok(out)
    } else {
        Ok(Tensor::cat(&[&out, &g.narrow(3, rd, dh - rd)?], 3)?)
    }
}

/// What flows back through one layer.
struct Layer<'a> {
    model: &'a Model,
    /// The forward pass, with the activations [`kept_names`] lists.
    run: &'a Run,
    l: usize,
}

impl Layer<'_> {
    /// The gradient with respect to the MLP's input `x` from `g`, the gradient with respect
    /// to its output.
    fn mlp(&self, x: &Tensor, g: &Tensor) -> Result<Tensor> {
        let blk = &self.model.w.blocks[self.l];
        let missing = || Error::input("this model has no MLPs");
        let (b, p, d) = g.dims3()?;
        let stats = NormStats::of(self.model, x)?;
        let pre = self.run.cached(HookName::Block(self.l, Site::MlpPre))?;
        let dm = pre.dim(2)?;
        let model = self.model;
        let w_out = model.weight(blk.w_out.as_ref().ok_or_else(missing)?)?;
        let w_in = model.weight(blk.w_in.as_ref().ok_or_else(missing)?)?;
        let g_post = matmul_t(&g.reshape((b * p, d))?, &w_out)?.reshape((b, p, dm))?;
        let lin = match &blk.w_gate {
            Some(_) => Some(
                self.run
                    .cached(HookName::Block(self.l, Site::MlpPreLinear))?,
            ),
            None => None,
        };
        let (g_pre, g_lin) = fused::act_backward(self.model.cfg.act, &g_post, pre, lin)?;
        let g_pre = g_pre.reshape((b * p, dm))?;
        // A gated MLP (post = act(pre) ⊙ lin): the gate's product and the linear one.
        let g_normed = match (&blk.w_gate, g_lin) {
            (Some(w_gate), Some(g_lin)) => {
                let w_gate = model.weight(w_gate)?;
                (matmul_t(&g_pre, &w_gate)? + matmul_t(&g_lin.reshape((b * p, dm))?, &w_in)?)?
            }
            _ => matmul_t(&g_pre, &w_in)?,
        };
        stats.backward(&g_normed.reshape((b, p, d))?, &model.weight(&blk.ln2_w)?)
    }

    /// The gradients with respect to the heads' q, k and v inputs from `g`, the gradient with
    /// respect to the attention output (the residual stream `x` is the heads' input): per
    /// q/k/v, `[n, b, p, d]` for the `n` query (or key/value) heads; and their sum `[b, p, d]`
    /// (what flows into the residual stream).
    fn attention(&self, x: &Tensor, g: &Tensor) -> Result<([Tensor; 3], Tensor)> {
        let model = self.model;
        let cfg = &model.cfg;
        let blk = &model.w.blocks[self.l];
        let (b, p, d) = g.dims3()?;
        let (h, kv, dh) = (cfg.n_heads, cfg.n_kv_heads(), cfg.d_head);
        let gz = matmul_t(&g.reshape((b * p, d))?, &model.weight(&blk.w_o_flat)?)?
            .reshape((b, p, h, dh))?;
        let gz = heads_first(&gz)?; // [b, h, p, dh]
        let v = heads_first(self.run.cached(HookName::Block(self.l, Site::V))?)?;
        let pattern = self.run.cached(HookName::Block(self.l, Site::Pattern))?; // [b, h, p, p]
        let g_pattern = matmul_t(&gz, &v)?;
        let g_v = pattern.t()?.matmul(&gz)?;
        let g_scores = pattern
            .mul(&g_pattern.broadcast_sub(&g_pattern.mul(pattern)?.sum_keepdim(D::Minus1)?)?)?;
        // Model::attn_scores divides q·kᵀ by this.
        let a = &cfg.arch;
        let mut scale = if a.query_pre_attn_scalar > 0.0 {
            a.query_pre_attn_scalar.sqrt()
        } else {
            (dh as f64).sqrt()
        };
        if cfg.scale_attn_by_inverse_layer_idx {
            scale *= (self.l + 1) as f64;
        }
        let (q_site, k_site) = if model.has_rotary() {
            (Site::RotQ, Site::RotK)
        } else {
            (Site::Q, Site::K)
        };
        let q = heads_first(self.run.cached(HookName::Block(self.l, q_site))?)?;
        let k = heads_first(self.run.cached(HookName::Block(self.l, k_site))?)?;
        let mut g_q = (g_scores.matmul(&k)? / scale)?;
        let mut g_k = (g_scores.t()?.matmul(&q)? / scale)?;
        if model.has_rotary() {
            g_q = unrotate(model, &g_q)?;
            g_k = unrotate(model, &g_k)?;
        }
        let stats = NormStats::of(model, x)?;
        let ln1_w = model.weight(&blk.ln1_w)?;
        // [b, h, p, dh] → [n, b·p, dh], summed over each key/value head's query heads.
        let per_head = |t: &Tensor, n: usize| -> Result<Tensor> {
            let t = t.permute((1, 0, 2, 3))?.contiguous()?;
            if n == h {
                Ok(t.reshape((h, b * p, dh))?)
            } else {
                Ok(t.reshape((n, h / n, b * p, dh))?.sum(1)?)
            }
        };
        let input = |t: &Tensor, w: &Tensor, n: usize| -> Result<(Tensor, Tensor)> {
            let normed = matmul_t(&per_head(t, n)?, w)?.reshape((n, b, p, d))?;
            stats.backward_and_sum(&normed, &ln1_w)
        };
        let (q, sq) = input(&g_q, &model.weight(&blk.w_q()?)?, h)?;
        let (k, sk) = input(&g_k, &model.weight(&blk.w_k()?)?, kv)?;
        let (v, sv) = input(&g_v, &model.weight(&blk.w_v()?)?, kv)?;
        Ok(([q, k, v], ((sq + sk)? + sv)?))
    }
}

/// The forward pass's activations the backward reads.
fn kept_names(model: &Model) -> NameFilter {
    let cfg = &model.cfg;
    let mut names = vec![];
    for l in 0..cfg.n_layers {
        let site = |s| HookName::Block(l, s);
        names.push(site(Site::V));
        names.push(site(Site::Pattern));
        if model.has_rotary() {
            names.extend([site(Site::RotQ), site(Site::RotK)]);
        } else {
            names.extend([site(Site::Q), site(Site::K)]);
        }
        if cfg.has_mlp() {
            names.push(site(Site::MlpPre));
            if cfg.arch.gated_mlp {
                names.push(site(Site::MlpPreLinear));
            }
        }
    }
    NameFilter::of(&names)
}

/// [`super::gradients::receiver_grads`] for models [`supported`] covers: one plain forward
/// pass (the interpolation applied), then the hand-written backward.
pub fn receiver_grads(
    model: &Model,
    tokens: &Tensor,
    ends: &[usize],
    objective: &GradMetric,
    clean_logits: Option<&Tensor>,
    interpolation: Option<&Interpolation>,
) -> Result<ReceiverGrads> {
    let mut patches = Patches::new();
    if let Some(i) = interpolation {
        patches.interpolate_activation(i.name, i.base.clone(), i.alpha);
    }
    let mut run = eval::run(
        model,
        tokens,
        &patches,
        RunOptions {
            logits: LogitsAt::Rows(ends.to_vec()),
            cache: kept_names(model),
            ..Default::default()
        },
    )?;
    let logits = run
        .logits
        .clone()
        .ok_or_else(|| Error::input("internal: the forward pass returned no logits"))?;
    // The metric's gradient with respect to the logits (a small graph: [rows, vocab]).
    let var = Var::from_tensor(&logits)?;
    let reference = clean_logits.cloned().unwrap_or_else(|| logits.clone());
    let m = objective.value(var.as_tensor(), &reference)?;
    let metric = m.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if !metric.is_finite() {
        return Err(Error::input(format!(
            "the metric is {metric} on this run; the model or the prompts give non-finite \
             logits"
        )));
    }
    let g_logits = match m.backward()?.get(var.as_tensor()) {
        Some(g) => g.detach(),
        None => logits.zeros_like()?,
    };
    let grads = backward(model, &run, ends, &g_logits, interpolation)?;
    run.cache.clear();
    Ok(ReceiverGrads {
        metric,
        logits,
        grads,
        run,
    })
}

/// The logits' input gradient `[b, p, d]` from the logits' gradient `[rows, vocab]`: the
/// final norm's backward on the END rows, scattered back into place.
fn logits_backward(model: &Model, run: &Run, ends: &[usize], g_logits: &Tensor) -> Result<Tensor> {
    let n_layers = model.cfg.n_layers;
    let (b, p, d) = run.resid[n_layers].dims3()?;
    let idx: Vec<u32> = ends
        .iter()
        .enumerate()
        .map(|(i, &q)| (i * p + q) as u32)
        .collect();
    let idx = Tensor::from_vec(idx, b, model.device())?;
    let rows = run.resid[n_layers]
        .reshape((b * p, d))?
        .index_select(&idx, 0)?;
    let stats = NormStats::of(model, &rows)?;
    let g_rows = stats.backward(
        &matmul_t(g_logits, &model.weight(&model.w.w_u)?)?,
        &model.weight(&model.w.ln_f_w)?,
    )?;
    Ok(Tensor::zeros((b * p, d), model.dtype, model.device())?
        .index_add(&idx, &g_rows, 0)?
        .reshape((b, p, d))?)
}

/// From the logits' gradient `[rows, vocab]` down to every receiver's input.
fn backward(
    model: &Model,
    run: &Run,
    ends: &[usize],
    g_logits: &Tensor,
    interpolation: Option<&Interpolation>,
) -> Result<BTreeMap<Receiver, Tensor>> {
    let cfg = &model.cfg;
    let n_layers = cfg.n_layers;
    let (attn_cut, mlp_cut) = match interpolation.map(|i| i.name) {
        // The moved activation is a constant point (its own value detached): nothing flows
        // back through it.
        Some(HookName::Block(l, Site::Result)) => (Some(l), None),
        Some(HookName::Block(l, Site::MlpOut)) => (None, Some(l)),
        _ => (None, None),
    };
    let mut grads = BTreeMap::new();
    let mut g = logits_backward(model, run, ends, g_logits)?;
    grads.insert(Receiver::Logits, g.clone());

    let receivers = receivers_reverse(cfg);
    for l in (0..n_layers).rev() {
        let layer = Layer { model, run, l };
        let x = &run.resid[l];
        // The MLP reads the residual stream after attention (before it, with parallel
        // attention and MLP); `g` is the gradient after the layer.
        let g_mlp = if cfg.has_mlp() {
            let gm = if mlp_cut == Some(l) {
                x.zeros_like()?
            } else if cfg.parallel_residual {
                layer.mlp(x, &g)?
            } else {
                layer.mlp(&(x + &run.attn_out[l])?, &g)?
            };
            grads.insert(Receiver::Mlp(l), gm.clone());
            Some(gm)
        } else {
            None
        };
        let g_attn = match (&g_mlp, cfg.parallel_residual) {
            (Some(gm), false) => (&g + gm)?,
            _ => g.clone(),
        };
        let mut g_in = match (&g_mlp, cfg.parallel_residual) {
            (Some(gm), true) => (&g_attn + gm)?,
            _ => g_attn.clone(),
        };
        let heads = receivers
            .iter()
            .filter(|r| matches!(r, Receiver::Head(rl, _, _) if *rl == l));
        if attn_cut == Some(l) {
            for r in heads {
                grads.insert(*r, x.zeros_like()?);
            }
        } else {
            let ([gq, gk, gv], summed) = layer.attention(x, &g_attn)?;
            for r in heads {
                let Receiver::Head(_, h, qkv) = *r else {
                    continue;
                };
                let (t, i) = match qkv {
                    Qkv::Q => (&gq, h),
                    Qkv::K => (&gk, cfg.kv_head(h)),
                    Qkv::V => (&gv, cfg.kv_head(h)),
                };
                grads.insert(*r, t.narrow(0, i, 1)?.squeeze(0)?);
            }
            g_in = (g_in + summed)?;
        }
        g = g_in;
    }
    Ok(grads)
}
