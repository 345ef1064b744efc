//! The metric of a circuit: which receivers read ablated values, and one patched run.
//!
//! A receiver `r` with removed incoming edges reads
//! `standard(r) + Σ_{u removed} (ablated(u) − current(u))`, which equals the reference's
//! `ablated_input(r) + Σ_{u kept} (current(u) − ablated(u))`. The evaluator uses whichever sum
//! is shorter: the first as edge [`Patches`] (few removed edges), the second as a replaced
//! input (most edges removed, or the head's q/k/v edge removed, when the sum is empty). Both are exact; the second keeps a nearly pruned GPT-2 as cheap as an
//! unpruned one.
//!
//! The fast path recomputes only from the first layer with a changed receiver (everything
//! before it is the clean run; nothing but the unembedding when only the logits' inputs
//! changed) and computes logits only at each row's answer position. The
//! naive path (for benchmarks and cross-checks) runs the whole model with every removed edge
//! as a patch and computes logits everywhere.

use super::ablation::Ablated;
use super::screen::Screen;
use super::sweep::{Measured, Oracle, Units};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::{self, LogitsAt, Patch, Patches, Run, RunOptions};
use crate::graph::edges::{parents, receiver_members};
use crate::graph::{Edge, Node, Receiver};
use crate::metric::{self, Metric};
use crate::model::Model;
use candle_core::Tensor;
use std::collections::{BTreeMap, BTreeSet};

/// The metric ACDC minimises: a [`Metric`]'s mean, negated where higher is better.
#[derive(Debug, Clone)]
pub struct Objective {
    /// The metric.
    pub metric: Metric,
    /// The dataset (answers, wrong answers).
    pub dataset: Dataset,
    /// The clean model's logits at the answer positions `[n, vocab]` (for KL).
    pub clean_logits: Tensor,
    /// `(clean, corrupted)` mean logit differences, for the normalised logit difference.
    pub norm: Option<(f64, f64)>,
}

impl Objective {
    /// +1 when the metric is minimised as is, −1 when it is negated.
    pub fn sign(&self) -> f64 {
        if self.metric.higher_is_better() {
            -1.0
        } else {
            1.0
        }
    }

    /// The value to minimise, from logits at the answer positions.
    pub fn value(&self, logits: &Tensor) -> Result<f64> {
        let v =
            self.metric
                .per_example(logits, &self.dataset, Some(&self.clean_logits), self.norm)?;
        Ok(self.sign() * metric::mean(&v))
    }
}

/// Per receiver with removed incoming edges: its removed senders (all of them when the head's
/// q/k/v edge is removed).
fn removed_senders(
    units: &Units,
    present: &[bool],
    cfg: &crate::model::ModelConfig,
) -> BTreeMap<Receiver, BTreeSet<Node>> {
    let mut removed: BTreeMap<Receiver, BTreeSet<Node>> = BTreeMap::new();
    match units {
        Units::Edges(g) => {
            let mut whole = vec![];
            for (i, e) in g.edges().iter().enumerate() {
                if present[i] {
                    continue;
                }
                // A grouped k or v receiver stands for that input of every head of its group.
                match *e {
                    Edge::Add { sender, receiver } => {
                        for r in receiver_members(&receiver, cfg) {
                            removed.entry(r).or_default().insert(sender);
                        }
                    }
                    Edge::Qkv { layer, head, qkv } => {
                        whole.extend(receiver_members(&Receiver::Head(layer, head, qkv), cfg))
                    }
                }
            }
            for r in whole {
                removed.insert(r, parents(&r, cfg).into_iter().collect());
            }
        }
        Units::Nodes(nodes) => {
            let gone: Vec<Node> = nodes
                .iter()
                .zip(present)
                .filter(|(_, p)| !**p)
                .map(|(n, _)| *n)
                .collect();
            if !gone.is_empty() {
                for gr in crate::graph::edges::receivers_reverse(cfg) {
                    for r in receiver_members(&gr, cfg) {
                        let v: BTreeSet<Node> =
                            gone.iter().copied().filter(|u| u.feeds(&r, cfg)).collect();
                        if !v.is_empty() {
                            removed.insert(r, v);
                        }
                    }
                }
            }
        }
    }
    removed
}

/// A set of row blocks (bit j = block j), for circuits evaluated together.
type Blocks = u64;

/// The circuits of a list (sender, circuits) that `u` is in (none when it is not listed).
fn blocks_of(list: &[(Node, Blocks)], u: Node) -> Blocks {
    list.iter().find(|(x, _)| *x == u).map_or(0, |(_, b)| *b)
}

/// Every one of `k` circuits.
fn all_circuits(k: usize) -> Blocks {
    (1u64 << k) - 1
}

/// How the circuits of one evaluation change one receiver: per sender, in the reference's
/// parent order, the blocks where it enters the sum.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    /// `standard + Σ (ablated − current)` over the removed senders.
    Delta(Vec<(Node, Blocks)>),
    /// `ablated input + Σ (current − ablated)` over the kept senders.
    Replace(Vec<(Node, Blocks)>),
}

/// The changed receivers of `k` circuits evaluated together (block j = circuit j). Each
/// receiver takes the shorter of the two sums, judged on the last (most pruned) circuit.
fn changes(
    units: &Units,
    circuits: &[Vec<bool>],
    cfg: &crate::model::ModelConfig,
) -> Vec<(Receiver, Change)> {
    let sets: Vec<BTreeMap<Receiver, BTreeSet<Node>>> = circuits
        .iter()
        .map(|p| removed_senders(units, p, cfg))
        .collect();
    let receivers: BTreeSet<Receiver> = sets.iter().flat_map(|m| m.keys().copied()).collect();
    let empty = BTreeSet::new();
    let mut out = vec![];
    for r in receivers {
        let all = parents(&r, cfg);
        let gone: Vec<&BTreeSet<Node>> = sets.iter().map(|m| m.get(&r).unwrap_or(&empty)).collect();
        let last = gone[gone.len() - 1].len();
        let replace = all.len() - last < last;
        let mut list = vec![];
        for u in all {
            let mut blocks: Blocks = 0;
            for (j, g) in gone.iter().enumerate() {
                if g.contains(&u) != replace {
                    blocks |= 1 << j;
                }
            }
            if blocks != 0 {
                list.push((u, blocks));
            }
        }
        out.push((
            r,
            if replace {
                Change::Replace(list)
            } else {
                Change::Delta(list)
            },
        ));
    }
    out
}

/// The clean run and the ablated values for `k` copies of the dataset (circuits evaluated
/// together, block j = rows `j·n .. (j+1)·n`).
struct Copies {
    tokens: Tensor,
    end: Vec<usize>,
    clean: Run,
    ablated: Ablated,
    masks: BTreeMap<Blocks, Tensor>,
}

fn repeat(t: &Tensor, k: usize) -> Result<Tensor> {
    if k == 1 {
        return Ok(t.clone());
    }
    let parts = vec![t.clone(); k];
    Ok(Tensor::cat(&parts, 0)?.contiguous()?)
}

/// Computes the metric of circuits on one dataset.
pub struct Evaluator<'a> {
    model: &'a Model,
    units: Units,
    n: usize,
    copies: BTreeMap<usize, Copies>,
    objective: Objective,
    /// Use the naive path: every evaluation a full forward with every removed edge patched.
    pub naive: bool,
    /// Number of circuits evaluated so far (by either path).
    pub evaluations: u64,
    /// Number of circuits evaluated by the full patched run.
    pub full_evaluations: u64,
    /// The one-edge evaluator the sweep's measurements use, if any.
    screen: Option<Screen<'a>>,
    /// The last circuits the screen measured (to compare with a re-check).
    screened: Vec<(Vec<bool>, Measured)>,
}

impl<'a> Evaluator<'a> {
    /// Set up: `clean` must be the unpatched run on `tokens`. `keep_outputs`: compute the
    /// clean run's head outputs once and keep them, as every resumed run reads them (without
    /// it, each run computes those it reads: for an evaluator that only re-checks a screen's
    /// values now and then, this keeps `n_layers · n_heads` activations out of memory).
    #[allow(clippy::too_many_arguments)] // the parts of one set-up, each made by the caller
    pub fn new(
        model: &'a Model,
        units: Units,
        tokens: Tensor,
        end: Vec<usize>,
        clean: Run,
        ablated: Ablated,
        objective: Objective,
        keep_outputs: bool,
    ) -> Result<Self> {
        if keep_outputs {
            for u in crate::graph::edges::senders_reverse(&model.cfg) {
                clean.sender_out(model, u)?;
            }
        }
        let n = tokens.dim(0)?;
        let mut copies = BTreeMap::new();
        copies.insert(
            1,
            Copies {
                tokens,
                end,
                clean,
                ablated,
                masks: BTreeMap::new(),
            },
        );
        Ok(Evaluator {
            model,
            units,
            n,
            copies,
            objective,
            naive: false,
            evaluations: 0,
            full_evaluations: 0,
            screen: None,
            screened: vec![],
        })
    }

    /// Measure the sweep's circuits with a one-edge evaluator (see [`super::screen`]).
    pub fn with_screen(mut self, screen: Screen<'a>) -> Self {
        self.screen = Some(screen);
        self
    }

    /// The one-edge evaluator, if any.
    pub fn screen(&self) -> Option<&Screen<'a>> {
        self.screen.as_ref()
    }

    fn remember(&mut self, present: Vec<bool>, m: Measured) {
        if self.screened.len() >= 2 {
            self.screened.remove(0);
        }
        self.screened.push((present, m));
    }

    /// The objective.
    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    /// The clean run.
    pub fn clean(&self) -> &Run {
        &self.copies[&1].clean
    }

    fn ensure_copies(&mut self, k: usize) -> Result<()> {
        if self.copies.contains_key(&k) {
            return Ok(());
        }
        let one = &self.copies[&1];
        let tokens = repeat(&one.tokens, k)?;
        let end: Vec<usize> = (0..k).flat_map(|_| one.end.iter().copied()).collect();
        let ablated = Ablated {
            out: one
                .ablated
                .out
                .iter()
                .map(|(u, t)| Ok((*u, repeat(t, k)?)))
                .collect::<Result<_>>()?,
            resid: one
                .ablated
                .resid
                .iter()
                .map(|t| repeat(t, k))
                .collect::<Result<_>>()?,
            mid: one
                .ablated
                .mid
                .iter()
                .map(|t| repeat(t, k))
                .collect::<Result<_>>()?,
        };
        let clean = eval::run(
            self.model,
            &tokens,
            &Patches::new(),
            RunOptions {
                logits: LogitsAt::None,
                ..Default::default()
            },
        )?;
        for u in crate::graph::edges::senders_reverse(&self.model.cfg) {
            clean.sender_out(self.model, u)?;
        }
        self.copies.insert(
            k,
            Copies {
                tokens,
                end,
                clean,
                ablated,
                masks: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// The row mask of a set of blocks (`None` when it covers every block).
    fn mask(&mut self, k: usize, blocks: Blocks) -> Result<Option<Tensor>> {
        if blocks == all_circuits(k) {
            return Ok(None);
        }
        let n = self.n;
        let model = self.model;
        let c = self
            .copies
            .get_mut(&k)
            .ok_or_else(|| Error::input("internal: copies"))?;
        if let Some(m) = c.masks.get(&blocks) {
            return Ok(Some(m.clone()));
        }
        let v: Vec<f64> = (0..k * n)
            .map(|i| if blocks >> (i / n) & 1 == 1 { 1.0 } else { 0.0 })
            .collect();
        let m = Tensor::from_vec(v, (k * n, 1, 1), model.device())?.to_dtype(model.dtype)?;
        c.masks.insert(blocks, m.clone());
        Ok(Some(m))
    }

    /// The logits at the answer positions of the circuit `present` (`[n, vocab]`).
    pub fn logits(&mut self, present: &[bool]) -> Result<Tensor> {
        self.logits_many(&[present.to_vec()])
    }

    /// The logits at the answer positions of several circuits evaluated in one pass:
    /// `[k · n, vocab]`, circuit j in rows `j·n .. (j+1)·n`.
    pub fn logits_many(&mut self, circuits: &[Vec<bool>]) -> Result<Tensor> {
        let k = circuits.len();
        if k == 0 || k > 63 {
            return Err(Error::input(format!(
                "internal: {k} circuits in one pass (1 to 63)"
            )));
        }
        self.evaluations += k as u64;
        self.ensure_copies(k)?;
        let ch = changes(&self.units, circuits, &self.model.cfg);
        if self.naive {
            self.naive_logits(k, &ch)
        } else {
            self.resumed_logits(k, ch)
        }
    }

    /// The naive path: every removed edge a patch, a full forward pass, logits everywhere
    /// (then the answer rows).
    fn naive_logits(&mut self, k: usize, ch: &[(Receiver, Change)]) -> Result<Tensor> {
        let cfg = &self.model.cfg;
        let mut patches = Patches::new();
        for (r, c) in ch {
            let (list, replace) = match c {
                Change::Delta(v) => (v, false),
                Change::Replace(v) => (v, true),
            };
            for u in parents(r, cfg) {
                let gone = if replace {
                    !blocks_of(list, u) & all_circuits(k)
                } else {
                    blocks_of(list, u)
                };
                if gone == 0 {
                    continue;
                }
                let mask = self.mask(k, gone)?;
                let alt = self.copies[&k].ablated.out[&u].clone();
                patches.add(*r, u, alt, mask);
            }
        }
        let c = &self.copies[&k];
        let run = eval::run(
            self.model,
            &c.tokens,
            &patches,
            RunOptions {
                logits: LogitsAt::All,
                ..Default::default()
            },
        )?;
        let logits = run
            .logits
            .ok_or_else(|| Error::input("internal: no logits"))?;
        let (b, p, v) = logits.dims3()?;
        let idx: Vec<u32> = c
            .end
            .iter()
            .enumerate()
            .map(|(i, &e)| (i * p + e) as u32)
            .collect();
        let idx = Tensor::from_vec(idx, b, logits.device())?;
        Ok(logits.reshape((b * p, v))?.index_select(&idx, 0)?)
    }

    /// The fast path: resumed from the clean run at the first changed layer, logits at the
    /// answer rows.
    fn resumed_logits(&mut self, k: usize, ch: Vec<(Receiver, Change)>) -> Result<Tensor> {
        let cfg = &self.model.cfg;
        let n_layers = cfg.n_layers;
        let first = ch
            .iter()
            .map(|(r, _)| r.layer(n_layers))
            .min()
            .unwrap_or(n_layers);
        // Only the logits changed: no layer needs recomputing. Every sender then comes from the
        // clean run, so the removed edges go in as edge patches (the form the golden runs were
        // made with).
        let ch: Vec<(Receiver, Change)> = if first == n_layers {
            ch.into_iter()
                .map(|(r, c)| match c {
                    Change::Replace(kept) => {
                        let gone = parents(&r, cfg)
                            .into_iter()
                            .filter_map(|u| {
                                let g = !blocks_of(&kept, u) & all_circuits(k);
                                (g != 0).then_some((u, g))
                            })
                            .collect();
                        (r, Change::Delta(gone))
                    }
                    d => (r, d),
                })
                .collect()
        } else {
            ch
        };
        let start = first;
        let mut patches = Patches::new();
        for (r, c) in ch {
            match c {
                Change::Delta(gone) => {
                    for (u, blocks) in gone {
                        let mask = self.mask(k, blocks)?;
                        let alt = self.copies[&k].ablated.out[&u].clone();
                        patches.add(r, u, alt, mask);
                    }
                }
                Change::Replace(kept) => {
                    let mut v = Vec::with_capacity(kept.len());
                    for (u, blocks) in kept {
                        let mask = self.mask(k, blocks)?;
                        let alt = self.copies[&k].ablated.out[&u].clone();
                        v.push(Patch {
                            sender: u,
                            alt,
                            mask,
                        });
                    }
                    let base = self.copies[&k].ablated.input(&r).clone();
                    patches.replace_input(r, base, v);
                }
            }
        }
        let c = &self.copies[&k];
        let run = eval::run(
            self.model,
            &c.tokens,
            &patches,
            RunOptions {
                logits: LogitsAt::Rows(c.end.clone()),
                from: Some((&c.clean, eval::Stage::layer_start(start, n_layers))),
                ..Default::default()
            },
        )?;
        run.logits
            .ok_or_else(|| Error::input("internal: no logits"))
    }
}

impl Oracle for Evaluator<'_> {
    fn metric(&mut self, present: &[bool]) -> Result<f64> {
        self.full_evaluations += 1;
        let logits = self.logits(present)?;
        let v = self.objective.value(&logits)?;
        if let Some(screen) = self.screen.as_mut() {
            if let Some((_, m)) = self.screened.iter().find(|(p, _)| p == present) {
                screen.record(*m, v);
            }
        }
        Ok(v)
    }

    fn measure(&mut self, present: &[bool]) -> Result<Measured> {
        if self.naive || self.screen.is_none() {
            return Ok(Measured::exact(self.metric(present)?));
        }
        self.evaluations += 1;
        let screen = self.screen.as_mut().expect("checked above");
        let m = screen.measure(&self.objective, present)?;
        self.remember(present.to_vec(), m);
        Ok(m)
    }

    fn measure_without(&mut self, present: &[bool], unit: usize) -> Result<Measured> {
        let mut p = present.to_vec();
        p[unit] = false;
        if self.naive || self.screen.is_none() {
            return Ok(Measured::exact(self.metric(&p)?));
        }
        self.evaluations += 1;
        let screen = self.screen.as_mut().expect("checked above");
        let m = screen.measure_without(&self.objective, present, unit)?;
        self.remember(p, m);
        Ok(m)
    }

    fn metrics_dropping(&mut self, present: &[bool], drop: &[usize]) -> Result<Vec<f64>> {
        let mut p = present.to_vec();
        let mut circuits = Vec::with_capacity(drop.len());
        for &d in drop {
            p[d] = false;
            circuits.push(p.clone());
        }
        let logits = self.logits_many(&circuits)?;
        let n = self.n;
        (0..circuits.len())
            .map(|j| self.objective.value(&logits.narrow(0, j * n, n)?))
            .collect()
    }
}
