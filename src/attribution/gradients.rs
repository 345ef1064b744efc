//! Backward through the evaluator: the gradient of the metric with respect to every
//! receiver's input (each head's q, k and v input, each MLP input, the logits' input).
//!
//! The run is the ordinary patched forward pass ([`crate::eval::run`]) with one extra patch per
//! receiver: a zero delta that is a [`candle_core::Var`] added to that receiver's input. The
//! gradient of the metric with respect to that delta is the gradient with respect to the
//! receiver's input. Every operation of the model is built from differentiable candle
//! primitives (LayerNorm, softmax and `gelu_new` are written out in [`crate::model`]); the
//! weights are plain tensors, so the backward pass computes no weight gradients and costs about
//! one forward pass.

use super::objective::GradMetric;
use crate::error::{Error, Result};
use crate::eval::{self, Hook, LogitsAt, Patches, Run, RunOptions};
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

/// Run the model on `tokens` (with `hook`, which may replace activations such as the embedding
/// for integrated gradients) and differentiate the metric with respect to every receiver's
/// input. `clean_logits`: the clean model's logits at `ends` (the KL reference); `None` uses
/// this run's own logits (the clean run).
pub fn receiver_grads(
    model: &Model,
    tokens: &Tensor,
    ends: &[usize],
    objective: &GradMetric,
    clean_logits: Option<&Tensor>,
    hook: Option<&mut dyn Hook>,
) -> Result<ReceiverGrads> {
    let (b, p) = tokens.dims2()?;
    let d = model.cfg.d_model;
    let receivers = receivers_reverse(&model.cfg);
    let mut patches = Patches::new();
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
            hook,
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

/// Replaces named activations by `base + alpha · (activation − base)`: the straight line from
/// `base` (α = 0) to the run's own value (α = 1). Integrated gradients use it on the embedding
/// (`blocks.0.hook_resid_pre`) or on a layer's sender outputs.
pub struct Interpolate {
    /// Activation name → its value at α = 0.
    pub base: BTreeMap<String, Tensor>,
    /// The point on the line.
    pub alpha: f64,
}

impl Hook for Interpolate {
    fn wants(&self, name: &str) -> bool {
        self.base.contains_key(name)
    }

    fn visit(&mut self, name: &str, act: Tensor) -> Result<Tensor> {
        let base = &self.base[name];
        if self.alpha == 1.0 {
            return Ok(act);
        }
        // A constant point on the line: gradients of the receivers downstream are what
        // attribution reads; nothing flows back into the replaced activation.
        let act = act.detach();
        Ok((base + ((&act - base)? * self.alpha)?)?)
    }
}
