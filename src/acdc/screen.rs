//! One-edge evaluation for the sweep: the current circuit's run is kept ([`CircuitRun`]) and
//! each tested edge recomputes only what it reaches, usually in float32.
//!
//! # The error bound of `Checked` precision, and what it rests on
//!
//! In `Checked` precision every edge is first evaluated here in float32; the sweep re-evaluates
//! an effect Δ = m(H∖e) − m(H) with the float64 evaluator (exactly as an `F64` run computes
//! it, for both circuits) whenever `|Δ − τ| ≤ E(m(H∖e)) + E(m(H))`, where `E` bounds
//! `|metric₃₂ − metric₆₄|` of one circuit. When the bound holds, the float32 Δ and the float64
//! Δ lie on the same side of τ, so every decision is the float64 run's.
//!
//! `E` has two parts.
//!
//! 1. **From logits to metric (proved).** Let η ≥ max over the answer rows and the vocabulary
//!    of `|z₃₂ − z₆₄|` (the two runs' logits). Every metric is computed in float64 from the
//!    logits, and per row: a logit difference moves by at most 2η; log-softmax entries move by
//!    at most 2η (`log q_v = z_v − logsumexp z`, and logsumexp is 1-Lipschitz in max-norm), so
//!    KL(p‖q) = Σ p_v (log p_v − log q_v) and −log q_a move by at most 2η; a probability
//!    `q_v` moves by at most `q_v (e^{2η} − 1)`, so Σ over a set of tokens by at most
//!    `e^{2η} − 1` and a difference of two sets by twice that; the normalised logit
//!    difference divides by |clean − corrupted|; a mean over rows keeps the bound. Accuracy
//!    jumps, so under it every effect is re-checked. A term `1e-12·(1 + |m|)` covers the
//!    float64 arithmetic of the metric itself.
//!
//! 2. **The logits' float32 error η (argued, not proved).** For each evaluation we take
//!    `η = 2⁻¹⁶ · max(1, max |z₃₂|)` over its answer rows: 256 float32 unit roundoffs
//!    (u = 2⁻²⁴) of the largest logit. The logits are the end of a chain of about
//!    `4·n_layers + 2` LayerNorms, matmuls, softmaxes and activations, each adding relative
//!    errors of a few u of the values it produces; in practice (and in the probabilistic
//!    rounding-error model of Higham & Mary, 2019, where errors of length-k sums grow like
//!    √k·u rather than k·u) the logits come out within a few tens of u of their scale. The
//!    discrepancies `|metric₃₂ − metric₆₄|` measured at every re-check on the shipped toys and
//!    a 12-layer GPT-2-shaped random model stay far below `E` (the run logs the largest ratio;
//!    `benches/acdc.rs` prints it). This is **not** a proof: a worst-case forward error
//!    analysis through 2·n_layers LayerNorms (each amplifying by ‖w‖/σ, unbounded as σ → 0),
//!    softmaxes and k-term sums (γ_k = k·u each) gives no bound small enough to be useful.
//!    What is guaranteed is the re-check: every effect within `E` of τ is decided in
//!    float64, and every re-check compares the float32 and float64 metrics of both circuits
//!    with their `E`; a violation is counted ([`Screen::violations`]) and written to the
//!    run's log, so a run whose bound failed says so.

use super::evaluate::Objective;
use super::sweep::{Measured, Units};
use crate::error::{Error, Result};
use crate::eval::circuit_run::{CircuitDiff, CircuitInputs, Drop};
use crate::eval::{Ablated, CircuitRun, Reads, Run};
use crate::graph::edges::parents;
use crate::graph::{Edge, Node, Receiver};
use crate::metric::Metric;
use crate::model::Model;
use candle_core::{DType, Tensor};
use std::collections::{BTreeMap, BTreeSet};

/// The logits' float32 error bound relative to the largest logit (see the module
/// documentation): 2⁻¹⁶.
pub const LOGIT_ERROR_FACTOR: f64 = 1.0 / 65536.0;

/// The one-edge evaluator.
pub struct Screen<'a> {
    model: &'a Model,
    clean: Run,
    ablated: Ablated,
    end: Vec<usize>,
    units: Units,
    /// The current circuit's run.
    state: Option<(Vec<bool>, CircuitRun)>,
    /// The last tested circuit (the current one with one more edge removed).
    candidate: Option<(Vec<bool>, CircuitDiff)>,
    /// The bound on the logits' float32 error relative to the largest logit (`None`: values
    /// are exact for this run).
    relative: Option<f64>,
    /// Re-checks where a float32 metric was further than its bound from the float64 one.
    pub violations: u64,
    /// The largest `|metric₃₂ − metric₆₄| / E` seen at a re-check.
    pub worst_ratio: f64,
}

/// A bound on `|metric(z) − metric(z')|` when `max |z − z'| ≤ eta` (see the module
/// documentation); infinite for accuracy.
pub fn metric_error(objective: &Objective, eta: f64, value: f64) -> f64 {
    let e2 = (2.0 * eta).exp_m1();
    let logits = match objective.metric {
        Metric::LogitDiff | Metric::Kl | Metric::Nll => 2.0 * eta,
        Metric::NormLogitDiff => match objective.norm {
            Some((c, k)) if c != k => 2.0 * eta / (c - k).abs(),
            _ => f64::INFINITY,
        },
        Metric::Prob => e2,
        Metric::ProbDiff => 2.0 * e2,
        Metric::Accuracy => f64::INFINITY,
    };
    logits + 1e-12 * (1.0 + value.abs())
}

/// Per receiver: how it reads its senders in the circuit `present` (the shorter of the two
/// sums), and the first layer with a changed receiver.
fn reads_of(
    units: &Units,
    present: &[bool],
    model: &Model,
) -> Result<(BTreeMap<Receiver, Reads>, usize)> {
    let cfg = &model.cfg;
    let Units::Edges(g) = units else {
        return Err(Error::input(
            "internal: one-edge evaluation needs an edge graph",
        ));
    };
    let mut removed: BTreeMap<Receiver, BTreeSet<Node>> = BTreeMap::new();
    let mut whole = vec![];
    for (i, e) in g.edges().iter().enumerate() {
        if present[i] {
            continue;
        }
        match *e {
            Edge::Add { sender, receiver } => {
                removed.entry(receiver).or_default().insert(sender);
            }
            Edge::Qkv { layer, head, qkv } => whole.push(Receiver::Head(layer, head, qkv)),
        }
    }
    let mut reads = BTreeMap::new();
    let mut first = cfg.n_layers;
    for r in whole {
        reads.insert(r, Reads::Kept(BTreeSet::new()));
        first = first.min(r.layer(cfg.n_layers));
    }
    for (r, gone) in removed {
        first = first.min(r.layer(cfg.n_layers));
        if reads.contains_key(&r) {
            continue;
        }
        let all = parents(&r, cfg);
        let kept: BTreeSet<Node> = all.into_iter().filter(|u| !gone.contains(u)).collect();
        reads.insert(
            r,
            if kept.len() < gone.len() {
                Reads::Kept(kept)
            } else {
                Reads::Removed(gone)
            },
        );
    }
    Ok((reads, first))
}

impl<'a> Screen<'a> {
    /// `clean` and `ablated` computed with `model` (whose dtype the evaluation uses);
    /// `relative`: the logits' error bound against the reference precision, relative to the
    /// largest logit (`None` when `model` is the reference).
    pub fn new(
        model: &'a Model,
        clean: Run,
        ablated: Ablated,
        end: Vec<usize>,
        units: Units,
        relative: Option<f64>,
    ) -> Result<Self> {
        if !matches!(units, Units::Edges(_)) {
            return Err(Error::input(
                "internal: one-edge evaluation needs an edge graph",
            ));
        }
        Ok(Screen {
            model,
            clean,
            ablated,
            end,
            units,
            state: None,
            candidate: None,
            relative,
            violations: 0,
            worst_ratio: 0.0,
        })
    }

    fn measured(&self, objective: &Objective, logits: &Tensor) -> Result<Measured> {
        let value = objective.value(logits)?;
        let error = match self.relative {
            None => 0.0,
            Some(rel) => {
                let top = logits
                    .abs()?
                    .max_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
                metric_error(objective, rel * top.max(1.0), value)
            }
        };
        Ok(Measured { value, error })
    }

    /// Rebuild the current circuit's run from scratch, from layer `min_layer` or earlier.
    fn rebuild(&mut self, present: &[bool], min_layer: usize) -> Result<()> {
        let (reads, first) = reads_of(&self.units, present, self.model)?;
        let cx = CircuitInputs::new(self.model, &self.clean, &self.ablated, &self.end)?;
        let run = CircuitRun::build(&cx, reads, first.min(min_layer))?;
        self.state = Some((present.to_vec(), run));
        self.candidate = None;
        Ok(())
    }

    /// The metric of `present`, its run rebuilt from scratch (so that the values within one
    /// receiver do not depend on what came before it: a resumed run gives the same numbers).
    pub fn measure(&mut self, objective: &Objective, present: &[bool]) -> Result<Measured> {
        self.rebuild(present, usize::MAX)?;
        let (_, run) = self.state.as_ref().expect("just built");
        self.measured(objective, run.logits())
    }

    /// The metric of `present` without `unit`.
    pub fn measure_without(
        &mut self,
        objective: &Objective,
        present: &[bool],
        unit: usize,
    ) -> Result<Measured> {
        let Units::Edges(g) = &self.units else {
            return Err(Error::input(
                "internal: one-edge evaluation needs an edge graph",
            ));
        };
        let (r, drop) = match g.edge(unit) {
            Edge::Add { sender, receiver } => (receiver, Drop::Sender(sender)),
            Edge::Qkv { layer, head, qkv } => (Receiver::Head(layer, head, qkv), Drop::All),
        };
        let layer = r.layer(self.model.cfg.n_layers);
        // Continue from the current run when `present` is it or the last tested circuit.
        if let Some((p, diff)) = self.candidate.take() {
            if p == present {
                if let Some((sp, run)) = self.state.as_mut() {
                    run.apply(diff);
                    *sp = p;
                }
            }
        }
        let usable = self
            .state
            .as_ref()
            .is_some_and(|(p, run)| p == present && run.start() <= layer);
        if !usable {
            self.rebuild(present, layer)?;
        }
        let (_, run) = self.state.as_ref().expect("built above");
        let cx = CircuitInputs::new(self.model, &self.clean, &self.ablated, &self.end)?;
        let diff = run.drop_edge(&cx, r, drop)?;
        let m = self.measured(objective, diff.logits())?;
        let mut p = present.to_vec();
        p[unit] = false;
        self.candidate = Some((p, diff));
        Ok(m)
    }

    /// Record a re-check: the screened and the reference values of one circuit.
    pub fn record(&mut self, screened: Measured, reference: f64) {
        if screened.error > 0.0 && screened.error.is_finite() {
            let ratio = (screened.value - reference).abs() / screened.error;
            self.worst_ratio = self.worst_ratio.max(ratio);
            if ratio > 1.0 {
                self.violations += 1;
            }
        }
    }
}
