//! Backward through the evaluator: the gradient of the metric with respect to every
//! receiver's input (each head's q, k and v input, each MLP input, the logits' input).
//!
//! Two ways, the same gradients:
//!
//! - [`super::backward`] (GPT-2, GPT-NeoX/Pythia, Llama, Qwen2): the plain forward pass, then a
//!   hand-written backward that computes no weight gradients (about 1.1–1.3 forward passes:
//!   the per-head norm backward is as large as the gradients it returns).
//! - [`receiver_grads_autograd`] (every model; used where the first does not apply, Gemma-2):
//!   the ordinary patched forward pass ([`crate::eval::run`]) with one extra patch per
//!   receiver, a zero delta that is a [`candle_core::Var`] added to that receiver's input, and
//!   candle's `backward()`. The gradient of the metric with respect to that delta is the
//!   gradient with respect to the receiver's input. Every operation of the model is built from
//!   differentiable candle primitives (LayerNorm, softmax and `gelu_new` are written out in
//!   [`crate::model`]). candle also computes every weight's gradient, and each head reads its
//!   own copy of the input, so this costs several forward passes.

use super::backward;
use super::objective::GradMetric;
use crate::error::{Error, Result};
use crate::eval::{self, HookName, LogitsAt, Patches, Run, RunOptions};
use crate::graph::edges::{receiver_members, receivers_reverse};
use crate::graph::Receiver;
use crate::model::Model;
use candle_core::{Tensor, Var};
use std::collections::BTreeMap;

/// The result of one forward and backward pass.
#[derive(Debug, Clone)]
pub struct ReceiverGrads {
    /// The metric's value on this run (mean over rows).
    pub metric: f64,
    /// The logits at the END positions `[n, vocab]` (detached).
    pub logits: Tensor,
    /// Per receiver, `∂metric / ∂input(r)`, `[batch, pos, d_model]`.
    pub grads: BTreeMap<Receiver, Tensor>,
    /// The run itself (its sender outputs are the run's activations).
    pub run: Run,
}

/// A point on the straight line from `base` (α = 0) to a named activation's clean value
/// (α = 1): where integrated gradients take a gradient.
#[derive(Debug, Clone)]
pub struct Interpolation {
    /// The activation moved (the embedding's `blocks.0.hook_resid_pre`, a layer's
    /// `attn.hook_result`, an MLP's `hook_mlp_out`).
    pub name: HookName,
    /// Its value at α = 0 (the ablated value).
    pub base: Tensor,
    /// The point.
    pub alpha: f64,
}

/// Run the model on `tokens` (with an activation moved along a line, for integrated
/// gradients) and differentiate the metric with respect to every receiver's input.
/// `clean_logits`: the clean model's logits at `ends` (the KL reference); `None` uses this
/// run's own logits (the clean run). The hand-written backward where it applies, else
/// [`receiver_grads_autograd`].
pub fn receiver_grads(
    model: &Model,
    tokens: &Tensor,
    ends: &[usize],
    objective: &GradMetric,
    clean_logits: Option<&Tensor>,
    interpolation: Option<&Interpolation>,
) -> Result<ReceiverGrads> {
    if backward::supported(model, interpolation) {
        backward::receiver_grads(model, tokens, ends, objective, clean_logits, interpolation)
    } else {
        receiver_grads_autograd(model, tokens, ends, objective, clean_logits, interpolation)
    }
}

/// [`receiver_grads`] through candle's autograd, for every model: a [`Var`] delta on each
/// receiver's input (so each head reads its own copy of its input) and `backward()`.
pub fn receiver_grads_autograd(
    model: &Model,
    tokens: &Tensor,
    ends: &[usize],
    objective: &GradMetric,
    clean_logits: Option<&Tensor>,
    interpolation: Option<&Interpolation>,
) -> Result<ReceiverGrads> {
    let (b, p) = tokens.dims2()?;
    let d = model.cfg.d_model;
    let receivers = receivers_reverse(&model.cfg);
    let mut patches = Patches::new();
    if let Some(i) = interpolation {
        patches.interpolate_activation(i.name, i.base.clone(), i.alpha);
    }
    let mut vars = Vec::with_capacity(receivers.len());
    for r in &receivers {
        let v = Var::zeros((b, p, d), model.dtype, model.device())?;
        // A grouped k or v receiver feeds every query head of its key/value group: one delta
        // into all of them, so its gradient sums over the group.
        for m in receiver_members(r, &model.cfg) {
            patches.add_delta(m, v.as_tensor().clone())?;
        }
        vars.push(v);
    }
    let run = eval::run(
        model,
        tokens,
        &patches,
        RunOptions {
            logits: LogitsAt::Rows(ends.to_vec()),
            ..Default::default()
        },
    )?;
    let logits = run
        .logits
        .clone()
        .ok_or_else(|| Error::input("internal: the forward pass returned no logits"))?;
    let reference = match clean_logits {
        Some(c) => c.clone(),
        None => logits.detach(),
    };
    let m = objective.value(&logits, &reference)?;
    let metric = m.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    if !metric.is_finite() {
        return Err(Error::input(format!(
            "the metric is {metric} on this run; the model or the prompts give non-finite \
             logits"
        )));
    }
    let store = m.backward()?;
    let mut grads = BTreeMap::new();
    for (r, v) in receivers.iter().zip(&vars) {
        let g = match store.get(v.as_tensor()) {
            Some(g) => g.detach(),
            // A receiver the metric does not depend on (e.g. nothing reads it at END).
            None => v.as_tensor().zeros_like()?,
        };
        grads.insert(*r, g);
    }
    Ok(ReceiverGrads {
        metric,
        logits: logits.detach(),
        grads,
        run,
    })
}
