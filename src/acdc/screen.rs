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
//! 2. **The logits' float32 error η (derived to first order under stated assumptions; not a
//!    worst-case proof).** For each evaluation we take `η = 2⁻¹⁶ · max(1, max |z₃₂|)` over its
//!    answer rows: 256 float32 unit roundoffs (u = 2⁻²⁴) of the largest logit.
//!
//!    *Setting.* Both runs evaluate the same circuit on the same weight values (the float64
//!    model is the float32 one widened, `acdc::load_models`), so `z₃₂ − z₆₄` is the rounding
//!    error of the float32 pass (its clean run, its ablated values and the circuit run); the
//!    float64 pass's own error is 2⁻²⁹ times smaller and left to the metric's `1e-12` term.
//!    Each float32 operation obeys the standard model `fl(a ∘ b) = (a ∘ b)(1 + δ)`, |δ| ≤ u;
//!    `exp`, `tanh` and `sqrt` are within a few u.
//!
//!    *Building blocks* (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1;
//!    Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019):
//!    - a sum or dot product of k terms has error ≤ γ_k Σ|terms| in the worst case
//!      (γ_k = ku/(1 − ku)), and ≤ λ√k·u Σ|terms| with probability ≥ 1 − 2e^{−λ²(1−u)²/2}
//!      when the rounding errors are independent and mean-zero (the probabilistic model).
//!      With terms of random sign, Σ|terms| ≈ √k |sum|, so a length-k product adds a
//!      relative error of order √k·u at the probabilistic bound's λ ≈ 1 … 3. The lengths
//!      here: d_model (LayerNorm statistics, q/k/v, MLP input, unembedding), d_head (scores),
//!      the sequence length (softmax sums, pattern · v), d_head per head then n_heads (W_O),
//!      d_mlp (MLP output); at most 3,072 for GPT-2 small, so √k ≤ 56;
//!    - a LayerNorm `(x − μ)/σ · w + b` turns an error ε·‖x‖∞ of its input into at most
//!      2ε·‖w‖∞‖x‖∞/σ of its output (first order; the factor 2 from removing the mean):
//!      its condition number is κ = 2‖w‖∞‖x‖∞/σ, of order a few for residual streams whose
//!      coordinates are spread (it is unbounded as σ → 0: the reason no worst-case bound
//!      is useful);
//!    - a softmax moves each probability by at most 2ε·p for an absolute change ε of its
//!      scores; residual additions and the activation add their own few u.
//!
//!    *Propagation.* Write e_s for the max-norm error of stage s's output relative to its
//!    largest value. To first order `e_s ≤ κ_s·e_{s−1} + c_s·u`, with κ_s the stage's
//!    condition number and c_s·u its own rounding (≈ √k·u for a length-k product). Along
//!    the 4·n_layers + 2 stages (per layer: norm, attention, norm, MLP; then the final norm
//!    and the unembedding) the residual stream does not amplify: a layer adds its output to
//!    the stream, so the stream's relative error is an average of the parts' errors, and
//!    every norm restarts from the stream (κ enters once per read, not compounded across
//!    layers). The logits' error relative to max |z| is then ≈ κ_f·e_stream + √d_model·u
//!    (the final norm and the unembedding) with e_stream ≲ max over layers of
//!    (κ·√d_model + √d_mlp + 4)·u.
//!
//!    *Assumptions.* (A1) the probabilistic model holds (rounding errors independent and
//!    mean-zero, as in blocked gemm sums); (A2) every LayerNorm's κ is at most about 2
//!    (‖w‖∞‖x‖∞/σ ≲ 1, residual coordinates spread rather than dominated by one);
//!    (A3) a circuit's logits are not much smaller than the clean ones, so max |z| sets the
//!    scale. Under (A1)–(A3), for GPT-2 small (√768 ≈ 28, √3072 ≈ 55): e_stream ≲
//!    (2·28 + 55 + 4)·u ≈ 115·u and the logits' error ≲ 2·115·u + 28·u ≈ 2⁸·u, the chosen
//!    factor 2⁻¹⁶ = 2⁸·u. The estimate is pessimistic (the observed error is about one u,
//!    below): the √k of each product is the bound's, and the errors of a layer's many
//!    products and rows average out further. Violations are most likely where (A2) fails
//!    (a near-constant residual at some position).
//!
//!    *What is checked.* `tests/acdc_screen.rs` (`float32_error_bound_dominates_the_observed_
//!    error`) compares, at every circuit a float64 sweep evaluates on the GPT-2 and Pythia
//!    fixtures (KL, NLL, probability), the float32 metric with the float64 one: the observed
//!    `|metric₃₂ − metric₆₄|` stays below `E / 64` (largest ratio 3.7·10⁻³, i.e. the logits
//!    are within about one u of their scale, far inside the 256 u of the bound), a bound 16
//!    times tighter fails there, and the `Checked` sweep takes the float64 sweep's decisions.
//!    At run time every re-check compares the float32 and float64 metrics of both circuits
//!    with their `E`; a violation is counted ([`Screen::violations`]) and written to the
//!    run's log (with the largest ratio; `benches/acdc.rs` prints the number of re-checks),
//!    so a run whose bound failed says so. What is guaranteed regardless of (A1)–(A3): every
//!    effect within `E` of τ is decided in float64.

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
