//! Every edge of a model's ACDC graph, and the effect of cutting each one alone.

use crate::error::Result;
use crate::eval::{self, LogitsAt, Patches, RunOptions};
use crate::graph::{Node, Qkv, Receiver};
use crate::model::{Model, ModelConfig};
use candle_core::{DType, Tensor};
use serde::Serialize;

/// Every sender of the graph: the embedding, each head, each MLP, in forward order.
pub fn senders(cfg: &ModelConfig) -> Vec<Node> {
    let mut v = vec![Node::Embed];
    for l in 0..cfg.n_layers {
        for h in 0..cfg.n_heads {
            v.push(Node::Head(l, h));
        }
        if cfg.has_mlp() {
            v.push(Node::Mlp(l));
        }
    }
    v
}

/// Every receiver: each head's q, k, v input, each MLP, the logits, in forward order.
pub fn receivers(cfg: &ModelConfig) -> Vec<Receiver> {
    let mut v = Vec::new();
    for l in 0..cfg.n_layers {
        for h in 0..cfg.n_heads {
            for x in Qkv::ALL {
                v.push(Receiver::Head(l, h, x));
            }
        }
        if cfg.has_mlp() {
            v.push(Receiver::Mlp(l));
        }
    }
    v.push(Receiver::Logits);
    v
}

/// Every (sender, receiver) pair where the sender writes before the receiver reads.
pub fn all_edges(cfg: &ModelConfig) -> Vec<(Node, Receiver)> {
    let mut out = Vec::new();
    for r in receivers(cfg) {
        for s in senders(cfg) {
            if s.feeds(&r, cfg) {
                out.push((s, r));
            }
        }
    }
    out
}

/// How an edge is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Ablation {
    /// The sender's output on the corrupted input (resample ablation, ACDC with a corrupted
    /// dataset).
    Corrupted,
    /// Zero.
    Zero,
}

/// The effect of cutting one edge.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeEffect {
    /// Sender short name.
    pub sender: String,
    /// Receiver short name.
    pub receiver: String,
    /// Largest |Δ logit| over every row, position and token.
    pub max_abs_logit_change: f64,
    /// Mean KL(clean ‖ cut) of the next-token distribution over every row and position.
    pub mean_kl: f64,
    /// Mean KL(clean ‖ cut) at each row's END position (what ACDC measures).
    pub end_kl: f64,
}

/// (max |Δ logit|, mean KL over all positions, mean KL at the last position) of `[b, p, v]`
/// logits.
fn kl_and_max(clean: &Tensor, cut: &Tensor) -> Result<(f64, f64, f64)> {
    let c = clean.to_dtype(DType::F64)?;
    let k = cut.to_dtype(DType::F64)?;
    let max = (&k - &c)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?;
    let lc = eval::log_softmax(&c)?;
    let lk = eval::log_softmax(&k)?;
    let kl = (lc.exp()? * (&lc - &lk)?)?.sum(candle_core::D::Minus1)?; // [b, p]
    let n = kl.elem_count() as f64;
    let mean = kl.sum_all()?.to_scalar::<f64>()? / n;
    let p = kl.dim(1)?;
    let last = kl.narrow(1, p - 1, 1)?;
    let end = last.sum_all()?.to_scalar::<f64>()? / last.elem_count() as f64;
    Ok((max, mean, end))
}

/// Cut each edge alone (all positions) and measure the change of the logits on `clean`
/// (rows of equal length whose last position is END). `corrupted` (same shape) supplies the
/// alternative outputs for [`Ablation::Corrupted`].
pub fn edge_effects(
    model: &Model,
    clean: &Tensor,
    corrupted: &Tensor,
    ablation: Ablation,
) -> Result<Vec<EdgeEffect>> {
    let none = Patches::new();
    let base = eval::run(model, clean, &none, RunOptions::default())?;
    let alt_run = eval::run(model, corrupted, &none, RunOptions::default())?;
    let clean_logits = base
        .logits
        .clone()
        .ok_or_else(|| crate::Error::input("no logits"))?;
    // Every edge is cut alone: the runs are independent. Rayon's indexed map keeps the edge
    // order, and a run's arithmetic does not depend on its thread, so the result equals a
    // serial loop's bit for bit.
    // The sender outputs are read from the two runs first (a run caches lazily, so it stays
    // on this thread); the patched runs then share only tensors.
    use rayon::prelude::*;
    let cuts = all_edges(&model.cfg)
        .into_iter()
        .map(|(s, r)| {
            let alt = match ablation {
                Ablation::Corrupted => alt_run.sender_out(model, s)?,
                Ablation::Zero => base.sender_out(model, s)?.zeros_like()?,
            };
            Ok((s, r, alt))
        })
        .collect::<Result<Vec<_>>>()?;
    cuts.into_par_iter()
        .map(|(s, r, alt)| {
            let mut p = Patches::new();
            p.add(r, s, alt, None);
            let run = eval::run(
                model,
                clean,
                &p,
                RunOptions {
                    logits: LogitsAt::All,
                    ..Default::default()
                },
            )?;
            let logits = run.logits.ok_or_else(|| crate::Error::input("no logits"))?;
            let (max, kl, end_kl) = kl_and_max(&clean_logits, &logits)?;
            Ok(EdgeEffect {
                sender: s.to_string(),
                receiver: r.to_string(),
                max_abs_logit_change: max,
                mean_kl: kl,
                end_kl,
            })
        })
        .collect()
}
