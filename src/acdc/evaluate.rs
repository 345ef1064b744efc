//! The metric of a circuit: which receivers read ablated values, and one patched run.
//!
//! A receiver `r` with removed incoming edges reads
//! `standard(r) + Σ_{u removed} (ablated(u) − current(u))`, which equals the reference's
//! `ablated_input(r) + Σ_{u kept} (current(u) − ablated(u))`. The evaluator uses whichever sum
//! is shorter: the first as [`Patches`] (few removed edges), the second through a hook that
//! replaces the receiver's input (most edges removed, or the head's q/k/v edge removed, when
//! the sum is empty). Both are exact; the second keeps a nearly pruned GPT-2 as cheap as an
//! unpruned one.
//!
//! The fast path recomputes only from the first layer with a changed receiver (everything
//! before it is the clean run) and computes logits only at each row's answer position. The
//! naive path (for benchmarks and cross-checks) runs the whole model with every removed edge
//! as a patch and computes logits everywhere.

use super::ablation::Ablated;
use super::sweep::{Oracle, Units};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::{self, Hook, LogitsAt, Patches, Run, RunOptions};
use crate::graph::edges::parents;
use crate::graph::{Edge, Node, Qkv, Receiver};
use crate::metric::{self, Metric};
use crate::model::Model;
use candle_core::Tensor;
use std::collections::BTreeMap;

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

/// How one receiver's input is changed.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    /// `standard + Σ (ablated − current)` over these removed senders.
    Delta(Vec<Node>),
    /// `ablated input + Σ (current − ablated)` over these kept senders.
    Replace(Vec<Node>),
}

/// The receivers a circuit changes, with their kept and removed senders.
fn changes(
    units: &Units,
    present: &[bool],
    cfg: &crate::model::ModelConfig,
) -> Vec<(Receiver, Change)> {
    let mut removed: BTreeMap<Receiver, Vec<Node>> = BTreeMap::new();
    let mut whole: std::collections::BTreeSet<Receiver> = Default::default();
    match units {
        Units::Edges(g) => {
            for (i, e) in g.edges().iter().enumerate() {
                if present[i] {
                    continue;
                }
                match *e {
                    Edge::Add { sender, receiver } => {
                        removed.entry(receiver).or_default().push(sender)
                    }
                    Edge::Qkv { layer, head, qkv } => {
                        whole.insert(Receiver::Head(layer, head, qkv));
                    }
                }
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
                for r in crate::graph::edges::receivers_reverse(cfg) {
                    let v: Vec<Node> = gone.iter().copied().filter(|u| u.feeds(&r, cfg)).collect();
                    if !v.is_empty() {
                        removed.insert(r, v);
                    }
                }
            }
        }
    }
    for r in &whole {
        removed.entry(*r).or_default();
    }
    let mut out = vec![];
    for (r, gone) in removed {
        let all = parents(&r, cfg);
        if whole.contains(&r) {
            out.push((r, Change::Replace(vec![])));
            continue;
        }
        let mut gone_sorted = gone.clone();
        gone_sorted.sort();
        let kept: Vec<Node> = all
            .iter()
            .copied()
            .filter(|u| gone_sorted.binary_search(u).is_err())
            .collect();
        // Removed senders in the reference's parent order, so sums run in a fixed order.
        let removed_ordered: Vec<Node> = all
            .iter()
            .copied()
            .filter(|u| gone_sorted.binary_search(u).is_ok())
            .collect();
        if kept.len() < removed_ordered.len() {
            out.push((r, Change::Replace(kept)));
        } else {
            out.push((r, Change::Delta(removed_ordered)));
        }
    }
    out
}

/// Replaces the inputs of receivers in [`Change::Replace`] form.
struct ReplaceHook<'a> {
    model: &'a Model,
    clean: &'a Run,
    ablated: &'a Ablated,
    start: usize,
    replace: BTreeMap<Receiver, Vec<Node>>,
    z: BTreeMap<usize, Tensor>,
    mlp_out: BTreeMap<usize, Tensor>,
    results: BTreeMap<(usize, usize), Tensor>,
    wanted: std::collections::BTreeSet<String>,
}

impl<'a> ReplaceHook<'a> {
    fn new(
        model: &'a Model,
        clean: &'a Run,
        ablated: &'a Ablated,
        start: usize,
        replace: BTreeMap<Receiver, Vec<Node>>,
    ) -> Self {
        let n_layers = model.cfg.n_layers;
        let mut wanted = std::collections::BTreeSet::new();
        for l in start..n_layers {
            wanted.insert(format!("blocks.{l}.attn.hook_z"));
            wanted.insert(format!("blocks.{l}.hook_mlp_out"));
        }
        for r in replace.keys() {
            wanted.insert(match r {
                Receiver::Head(l, _, x) => format!("blocks.{l}.hook_{}_input", x.letter()),
                Receiver::Mlp(l) => format!("blocks.{l}.hook_mlp_in"),
                Receiver::Logits => format!("blocks.{}.hook_resid_post", n_layers - 1),
            });
        }
        ReplaceHook {
            model,
            clean,
            ablated,
            start,
            replace,
            z: BTreeMap::new(),
            mlp_out: BTreeMap::new(),
            results: BTreeMap::new(),
            wanted,
        }
    }

    fn current(&mut self, u: Node) -> Result<Tensor> {
        match u {
            Node::Embed => Ok(self.clean.embed.clone()),
            Node::Head(l, _) if l < self.start => self.clean.sender_out(self.model, u),
            Node::Mlp(l) if l < self.start => self.clean.sender_out(self.model, u),
            Node::Head(l, h) => {
                if let Some(t) = self.results.get(&(l, h)) {
                    return Ok(t.clone());
                }
                let z = self.z.get(&l).ok_or_else(|| {
                    Error::input(format!("internal: layer {l} attention not seen yet"))
                })?;
                let t = self.model.head_result(l, h, z)?;
                self.results.insert((l, h), t.clone());
                Ok(t)
            }
            Node::Mlp(l) => self
                .mlp_out
                .get(&l)
                .cloned()
                .ok_or_else(|| Error::input(format!("internal: MLP {l} not seen yet"))),
        }
    }

    fn input(&mut self, r: &Receiver) -> Result<Tensor> {
        let base = match *r {
            Receiver::Head(l, _, _) => &self.ablated.resid[l],
            Receiver::Mlp(l) => &self.ablated.mid[l],
            Receiver::Logits => &self.ablated.resid[self.model.cfg.n_layers],
        };
        let mut x = base.clone();
        let kept = self.replace.get(r).cloned().unwrap_or_default();
        for u in kept {
            let cur = self.current(u)?;
            x = ((x + cur)? - &self.ablated.out[&u])?;
        }
        Ok(x)
    }
}

impl Hook for ReplaceHook<'_> {
    fn wants(&self, name: &str) -> bool {
        self.wanted.contains(name)
    }

    fn visit(&mut self, name: &str, act: Tensor) -> Result<Tensor> {
        let parts: Vec<&str> = name.split('.').collect();
        let layer: usize = parts.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let last = parts.last().copied().unwrap_or("");
        match last {
            "hook_z" => {
                self.z.insert(layer, act.clone());
                Ok(act)
            }
            "hook_mlp_out" => {
                self.mlp_out.insert(layer, act.clone());
                Ok(act)
            }
            "hook_mlp_in" => self.input(&Receiver::Mlp(layer)),
            "hook_resid_post" => self.input(&Receiver::Logits),
            "hook_q_input" | "hook_k_input" | "hook_v_input" => {
                let x = match last {
                    "hook_q_input" => Qkv::Q,
                    "hook_k_input" => Qkv::K,
                    _ => Qkv::V,
                };
                let n_heads = self.model.cfg.n_heads;
                let mut heads = Vec::with_capacity(n_heads);
                for h in 0..n_heads {
                    let r = Receiver::Head(layer, h, x);
                    if self.replace.contains_key(&r) {
                        heads.push(self.input(&r)?);
                    } else {
                        heads.push(act.narrow(2, h, 1)?.squeeze(2)?);
                    }
                }
                Ok(Tensor::stack(&heads, 2)?)
            }
            _ => Ok(act),
        }
    }
}

/// Computes the metric of circuits on one dataset.
pub struct Evaluator<'a> {
    model: &'a Model,
    units: Units,
    tokens: Tensor,
    end: Vec<usize>,
    clean: Run,
    ablated: Ablated,
    objective: Objective,
    /// Use the naive path: every evaluation a full forward with every removed edge patched.
    pub naive: bool,
    /// Number of evaluations so far.
    pub evaluations: u64,
}

impl<'a> Evaluator<'a> {
    /// Set up: `clean` must be the unpatched run on `tokens`.
    pub fn new(
        model: &'a Model,
        units: Units,
        tokens: Tensor,
        end: Vec<usize>,
        clean: Run,
        ablated: Ablated,
        objective: Objective,
    ) -> Result<Self> {
        // Head outputs of the clean run are read by every resumed run: compute them once.
        for u in crate::graph::edges::senders_reverse(&model.cfg) {
            clean.sender_out(model, u)?;
        }
        Ok(Evaluator {
            model,
            units,
            tokens,
            end,
            clean,
            ablated,
            objective,
            naive: false,
            evaluations: 0,
        })
    }

    /// The objective.
    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    /// The clean run.
    pub fn clean(&self) -> &Run {
        &self.clean
    }

    /// The logits at the answer positions of the circuit `present`.
    pub fn logits(&mut self, present: &[bool]) -> Result<Tensor> {
        self.evaluations += 1;
        let cfg = &self.model.cfg;
        let n_layers = cfg.n_layers;
        let ch = changes(&self.units, present, cfg);
        if self.naive {
            let mut patches = Patches::new();
            for (r, c) in &ch {
                let gone: Vec<Node> = match c {
                    Change::Delta(v) => v.clone(),
                    Change::Replace(kept) => parents(r, cfg)
                        .into_iter()
                        .filter(|u| !kept.contains(u))
                        .collect(),
                };
                for u in gone {
                    patches.add(*r, u, self.ablated.out[&u].clone(), None);
                }
            }
            let run = eval::run(
                self.model,
                &self.tokens,
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
            let idx: Vec<u32> = self
                .end
                .iter()
                .enumerate()
                .map(|(i, &e)| (i * p + e) as u32)
                .collect();
            let idx = Tensor::from_vec(idx, b, logits.device())?;
            return Ok(logits.reshape((b * p, v))?.index_select(&idx, 0)?);
        }
        let start = ch
            .iter()
            .map(|(r, _)| r.layer(n_layers))
            .min()
            .unwrap_or(n_layers)
            .min(n_layers.saturating_sub(1));
        let mut patches = Patches::new();
        let mut replace = BTreeMap::new();
        for (r, c) in ch {
            match c {
                Change::Delta(gone) => {
                    for u in gone {
                        patches.add(r, u, self.ablated.out[&u].clone(), None);
                    }
                }
                Change::Replace(kept) => {
                    replace.insert(r, kept);
                }
            }
        }
        let mut hook = ReplaceHook::new(self.model, &self.clean, &self.ablated, start, replace);
        let use_hook = !hook.replace.is_empty();
        let run = eval::run(
            self.model,
            &self.tokens,
            &patches,
            RunOptions {
                logits: LogitsAt::Rows(self.end.clone()),
                hook: if use_hook { Some(&mut hook) } else { None },
                resume: Some((&self.clean, start)),
                ..Default::default()
            },
        )?;
        run.logits
            .ok_or_else(|| Error::input("internal: no logits"))
    }
}

impl Oracle for Evaluator<'_> {
    fn metric(&mut self, present: &[bool]) -> Result<f64> {
        let logits = self.logits(present)?;
        self.objective.value(&logits)
    }
}
