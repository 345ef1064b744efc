//! The ACDC sweep: greedy pruning, one receiver at a time, in the reference's order.
//!
//! The sweep visits the reference's nodes from the output backwards: the logits, then per layer
//! (latest first) the MLP input, the q/k/v edges of every head (all v, then all k, then all q,
//! heads descending) and the heads' v, k and q inputs. At a receiver that still has a child it
//! first recomputes the current metric, then, for every parent in the chosen order, drops the
//! edge and measures the metric: if it worsens by less than τ (strictly) the edge stays dropped
//! and the current metric becomes the measured one, otherwise the edge is restored. A receiver
//! whose component no longer has any child loses its incoming edges untested.
//!
//! The metric comes from an [`Oracle`]; the sweep itself never touches a tensor, so it can be
//! checked against a brute-force evaluator.

use crate::error::Result;
use crate::graph::edges::{parent_groups, senders_reverse, visit_order, Visit};
use crate::graph::{Edge, EdgeGraph, GraphOptions, Node, Qkv, Receiver};
use crate::model::ModelConfig;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The order of a receiver's parents (the reference's `--names-mode` / `--indices-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Order {
    /// The reference's default: later layers first, the MLP before the heads, heads
    /// descending, the embedding last.
    #[default]
    Normal,
    /// The same list reversed.
    Reverse,
    /// Shuffled with a seeded generator (one stream per receiver, so resuming is exact).
    Random,
}

impl std::str::FromStr for Order {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" => Ok(Order::Normal),
            "reverse" => Ok(Order::Reverse),
            "random" | "shuffle" => Ok(Order::Random),
            _ => Err(crate::Error::input(format!(
                "unknown order '{s}'; use normal, reverse or random"
            ))),
        }
    }
}

/// What ACDC prunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Level {
    /// Edges of the reference's graph.
    #[default]
    Edges,
    /// Whole heads and MLPs (dropping one ablates its output everywhere).
    Nodes,
}

/// The sweep's options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepOptions {
    /// The threshold τ > 0.
    pub tau: f64,
    /// Compare |Δ| with τ instead of Δ.
    pub abs_value_threshold: bool,
    /// Order of the groups of parents (by hook name).
    pub names_order: Order,
    /// Order of the parents inside a group (heads of one layer).
    pub indices_order: Order,
    /// Seed of the random order.
    pub seed: u64,
    /// Edges or nodes.
    pub level: Level,
    /// The graph's options.
    pub graph: GraphOptions,
    /// Candidate removals evaluated together (speculatively, assuming every earlier one in the
    /// window is removed); 1 = one at a time, as the reference.
    pub batch: usize,
}

/// What the sweep prunes: the units whose presence it decides.
#[derive(Debug, Clone)]
pub enum Units {
    /// The edges of a graph.
    Edges(EdgeGraph),
    /// Heads and MLPs, in sweep order.
    Nodes(Vec<Node>),
}

impl Units {
    /// Build the units of a model of this shape.
    pub fn new(cfg: &ModelConfig, level: Level, graph: GraphOptions) -> Units {
        match level {
            Level::Edges => Units::Edges(EdgeGraph::new(cfg, graph)),
            Level::Nodes => Units::Nodes(
                senders_reverse(cfg)
                    .into_iter()
                    .filter(|n| *n != Node::Embed)
                    .collect(),
            ),
        }
    }

    /// Number of units.
    pub fn len(&self) -> usize {
        match self {
            Units::Edges(g) => g.len(),
            Units::Nodes(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name of unit `i` (`a0.h1 -> logits`, or `a0.h1` for a node).
    pub fn name(&self, i: usize) -> String {
        match self {
            Units::Edges(g) => g.edge(i).to_string(),
            Units::Nodes(v) => v[i].to_string(),
        }
    }
}

/// One step of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Test the addition edges into a receiver.
    Receiver(Receiver),
    /// Test a head's q/k/v input edge.
    QkvEdge(usize, usize, Qkv),
    /// Test a node (node level).
    Node(Node),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Receiver(r) => write!(f, "{r}"),
            Step::QkvEdge(l, h, x) => write!(f, "a{l}.h{h}.{} -> a{l}.h{h}", x.letter()),
            Step::Node(n) => write!(f, "{n}"),
        }
    }
}

/// The state of a sweep: everything a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepState {
    /// The next step to run.
    pub next_step: usize,
    /// Per unit: still in the circuit.
    pub present: Vec<bool>,
    /// Per unit: the metric change measured when it was tested (`None`: not tested).
    pub effect: Vec<Option<f64>>,
    /// The current circuit's metric (`None` before the first receiver).
    pub cur_metric: Option<f64>,
    /// Metric evaluations so far.
    pub evaluations: u64,
}

/// A metric value and a bound on its distance to the value [`Oracle::metric`] gives for the
/// same circuit (0 when it is that value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// The value.
    pub value: f64,
    /// `|value − metric(circuit)| ≤ error`.
    pub error: f64,
}

impl Measured {
    /// An exact value.
    pub fn exact(value: f64) -> Self {
        Measured { value, error: 0.0 }
    }
}

/// Computes the metric of a circuit.
pub trait Oracle {
    /// The metric (to minimise) of the circuit whose units are `present`, in the run's
    /// reference precision: the sweep's decisions are those this function implies.
    fn metric(&mut self, present: &[bool]) -> Result<f64>;

    /// The metric of `present`, possibly computed faster with a bounded error. The sweep calls
    /// it when it starts a receiver.
    fn measure(&mut self, present: &[bool]) -> Result<Measured> {
        Ok(Measured::exact(self.metric(present)?))
    }

    /// The metric of `present` without `unit` (which is present), possibly computed faster
    /// with a bounded error.
    fn measure_without(&mut self, present: &[bool], unit: usize) -> Result<Measured> {
        let mut p = present.to_vec();
        p[unit] = false;
        Ok(Measured::exact(self.metric(&p)?))
    }

    /// The metrics of the circuits `present` minus `drop[..=j]`, for every `j`. The default
    /// evaluates them one by one.
    fn metrics_dropping(&mut self, present: &[bool], drop: &[usize]) -> Result<Vec<f64>> {
        let mut p = present.to_vec();
        let mut out = Vec::with_capacity(drop.len());
        for &d in drop {
            p[d] = false;
            out.push(self.metric(&p)?);
        }
        Ok(out)
    }
}

/// What happened to one unit, for logs and progress.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A unit was tested.
    Tested {
        /// Unit number.
        unit: usize,
        /// Metric change.
        effect: f64,
        /// Whether it stays removed.
        removed: bool,
        /// The current metric afterwards.
        metric: f64,
    },
    /// Units removed without a test (their receiver lost its last child).
    RemovedUntested {
        /// Unit numbers.
        units: Vec<usize>,
    },
}

/// The sweep of a model: its units and the steps in order.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// What is pruned.
    pub units: Units,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Options.
    pub options: SweepOptions,
    cfg: ModelConfig,
}

impl Sweep {
    /// Build the sweep of a model of this shape.
    pub fn new(cfg: &ModelConfig, options: SweepOptions) -> Sweep {
        let units = Units::new(cfg, options.level, options.graph);
        let mut steps = vec![];
        match &units {
            Units::Nodes(nodes) => steps.extend(nodes.iter().map(|n| Step::Node(*n))),
            Units::Edges(_) => {
                steps.extend(visit_order(cfg, options.graph.split_qkv).into_iter().map(
                    |v| match v {
                        Visit::Receiver(r) => Step::Receiver(r),
                        Visit::Qkv(l, h, x) => Step::QkvEdge(l, h, x),
                    },
                ))
            }
        }
        Sweep {
            units,
            steps,
            options,
            cfg: cfg.clone(),
        }
    }

    /// The state before the first step: every unit present.
    pub fn initial_state(&self) -> SweepState {
        SweepState {
            next_step: 0,
            present: vec![true; self.units.len()],
            effect: vec![None; self.units.len()],
            cur_metric: None,
            evaluations: 0,
        }
    }

    /// Whether every step has run.
    pub fn done(&self, s: &SweepState) -> bool {
        s.next_step >= self.steps.len()
    }

    /// The model shape the sweep was built for.
    pub fn cfg(&self) -> &ModelConfig {
        &self.cfg
    }

    fn graph(&self) -> Option<&EdgeGraph> {
        match &self.units {
            Units::Edges(g) => Some(g),
            Units::Nodes(_) => None,
        }
    }

    /// Whether sender `u` still has a present outgoing edge.
    pub fn sender_connected(&self, s: &SweepState, u: Node) -> bool {
        let Some(g) = self.graph() else { return true };
        // Every receiver of a later layer, or the same layer's MLP.
        crate::graph::edges::receivers_reverse(&self.cfg)
            .into_iter()
            .filter(|r| u.feeds(r, &self.cfg))
            .any(|r| g.add_id(u, r).is_some_and(|i| s.present[i]))
    }

    /// Whether a receiver's component still has a child (the logits always do).
    pub fn receiver_connected(&self, s: &SweepState, r: &Receiver) -> bool {
        match *r {
            Receiver::Logits => true,
            Receiver::Mlp(l) => self.sender_connected(s, Node::Mlp(l)),
            Receiver::Head(l, h, x) => match self.graph().and_then(|g| g.qkv_id(l, h, x)) {
                Some(i) => s.present[i],
                None => self.input_connected(s, l, h, x),
            },
        }
    }

    /// Whether a head input feeds a head that still has a child: a grouped k or v input feeds
    /// every head of its key/value group.
    fn input_connected(&self, s: &SweepState, l: usize, h: usize, x: Qkv) -> bool {
        match x {
            Qkv::Q => self.sender_connected(s, Node::Head(l, h)),
            _ => self
                .cfg
                .kv_group(h)
                .any(|m| self.sender_connected(s, Node::Head(l, m))),
        }
    }

    /// The units a step tests, in the order it tests them (empty when the step's component has
    /// no child left: then they are removed untested).
    fn candidates(&self, s: &SweepState, step_idx: usize) -> (Vec<usize>, Vec<usize>) {
        let step = self.steps[step_idx];
        match (step, &self.units) {
            (Step::Node(n), Units::Nodes(nodes)) => {
                let i = nodes.iter().position(|m| *m == n).unwrap_or(0);
                (vec![i], vec![])
            }
            (Step::QkvEdge(l, h, x), Units::Edges(g)) => {
                let Some(i) = g.qkv_id(l, h, x) else {
                    return (vec![], vec![]);
                };
                if self.input_connected(s, l, h, x) {
                    (vec![i], vec![])
                } else {
                    (vec![], vec![i])
                }
            }
            (Step::Receiver(r), Units::Edges(g)) => {
                let mut groups: Vec<Vec<usize>> = parent_groups(&r, &self.cfg)
                    .into_iter()
                    .map(|grp| grp.into_iter().filter_map(|u| g.add_id(u, r)).collect())
                    .collect();
                if !self.receiver_connected(s, &r) {
                    let all = groups.into_iter().flatten().collect();
                    return (vec![], all);
                }
                let mut rng = ChaCha8Rng::seed_from_u64(self.options.seed);
                rng.set_stream(step_idx as u64);
                match self.options.names_order {
                    Order::Normal => {}
                    Order::Reverse => groups.reverse(),
                    Order::Random => groups.shuffle(&mut rng),
                }
                for grp in &mut groups {
                    match self.options.indices_order {
                        Order::Normal => {}
                        Order::Reverse => grp.reverse(),
                        Order::Random => grp.shuffle(&mut rng),
                    }
                }
                (groups.into_iter().flatten().collect(), vec![])
            }
            _ => (vec![], vec![]),
        }
    }

    /// Run the next step. Returns whether it tested or removed anything.
    pub fn step(
        &self,
        s: &mut SweepState,
        oracle: &mut dyn Oracle,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<bool> {
        if self.done(s) {
            return Ok(false);
        }
        let idx = s.next_step;
        let (test, untested) = self.candidates(s, idx);
        let untested: Vec<usize> = untested.into_iter().filter(|&i| s.present[i]).collect();
        let changed = !test.is_empty() || !untested.is_empty();
        if !untested.is_empty() {
            for &i in &untested {
                s.present[i] = false;
            }
            on_event(&Event::RemovedUntested { units: untested });
        }
        if !test.is_empty() {
            if self.options.batch.max(1) == 1 {
                self.test_one_by_one(s, oracle, &test, on_event)?;
            } else {
                self.test_in_windows(s, oracle, &test, on_event)?;
            }
        }
        s.next_step += 1;
        Ok(changed)
    }

    /// Whether a measured effect leads to removal (strictly below τ).
    fn removes(&self, effect: f64) -> bool {
        let score = if self.options.abs_value_threshold {
            effect.abs()
        } else {
            effect
        };
        score < self.options.tau
    }

    /// Whether an effect known to within `band` could fall on either side of τ.
    fn undecided(&self, effect: f64, band: f64) -> bool {
        if band <= 0.0 {
            return false;
        }
        let score = if self.options.abs_value_threshold {
            effect.abs()
        } else {
            effect
        };
        // |score − score_exact| ≤ |effect − effect_exact| ≤ band (|·| is 1-Lipschitz), so a
        // score further than band from τ has the exact score's side. Not-a-number always
        // re-checks.
        let gap = (score - self.options.tau).abs();
        gap.is_nan() || gap <= band
    }

    /// Test the units one at a time, as the reference does. An effect measured with an error
    /// bound is re-measured exactly ([`Oracle::metric`], for the circuit and for the current
    /// one) when the bound does not settle its side of τ, so the decisions are those of exact
    /// measurements.
    fn test_one_by_one(
        &self,
        s: &mut SweepState,
        oracle: &mut dyn Oracle,
        test: &[usize],
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<()> {
        // The reference recomputes the current metric at every node it visits.
        let mut cur = oracle.measure(&s.present)?;
        s.evaluations += 1;
        for &u in test {
            let mut m = oracle.measure_without(&s.present, u)?;
            s.evaluations += 1;
            let mut effect = m.value - cur.value;
            if self.undecided(effect, m.error + cur.error) {
                if cur.error > 0.0 {
                    cur = Measured::exact(oracle.metric(&s.present)?);
                }
                let mut p = s.present.clone();
                p[u] = false;
                m = Measured::exact(oracle.metric(&p)?);
                effect = m.value - cur.value;
            }
            s.effect[u] = Some(effect);
            let removed = self.removes(effect);
            if removed {
                s.present[u] = false;
                cur = m;
            }
            on_event(&Event::Tested {
                unit: u,
                effect,
                removed,
                metric: cur.value,
            });
        }
        s.cur_metric = Some(cur.value);
        Ok(())
    }

    /// Test the units in windows of `batch`, each window's circuits evaluated together
    /// assuming every earlier unit of the window removed (exact measurements only).
    fn test_in_windows(
        &self,
        s: &mut SweepState,
        oracle: &mut dyn Oracle,
        test: &[usize],
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<()> {
        let mut cur = oracle.metric(&s.present)?;
        s.evaluations += 1;
        let batch = self.options.batch.max(1);
        let mut pos = 0;
        while pos < test.len() {
            let window = &test[pos..(pos + batch).min(test.len())];
            let metrics = oracle.metrics_dropping(&s.present, window)?;
            s.evaluations += metrics.len() as u64;
            let mut consumed = window.len();
            for (j, (&u, &m)) in window.iter().zip(&metrics).enumerate() {
                let effect = m - cur;
                s.effect[u] = Some(effect);
                let removed = self.removes(effect);
                if removed {
                    s.present[u] = false;
                    cur = m;
                }
                on_event(&Event::Tested {
                    unit: u,
                    effect,
                    removed,
                    metric: cur,
                });
                if !removed {
                    // Later metrics in the window assumed this unit removed.
                    consumed = j + 1;
                    break;
                }
            }
            pos += consumed;
        }
        s.cur_metric = Some(cur);
        Ok(())
    }

    /// The edges of the current circuit (for node level: every edge between kept nodes, the
    /// embedding and the logits), as `(edge, unit)` pairs.
    pub fn kept_edges(&self, s: &SweepState) -> Vec<(Edge, usize)> {
        match &self.units {
            Units::Edges(g) => g
                .edges()
                .iter()
                .enumerate()
                .filter(|(i, _)| s.present[*i])
                .map(|(i, e)| (*e, i))
                .collect(),
            Units::Nodes(nodes) => {
                let kept = |n: &Node| match n {
                    Node::Embed => true,
                    _ => nodes
                        .iter()
                        .position(|m| m == n)
                        .is_some_and(|i| s.present[i]),
                };
                let full = EdgeGraph::new(&self.cfg, GraphOptions { split_qkv: false });
                let mut out = vec![];
                for e in full.edges() {
                    if let Edge::Add { sender, receiver } = e {
                        let rnode = match receiver {
                            Receiver::Logits => Node::Embed,
                            Receiver::Mlp(l) => Node::Mlp(*l),
                            Receiver::Head(l, h, _) => Node::Head(*l, *h),
                        };
                        if kept(sender) && kept(&rnode) {
                            let i = match sender {
                                Node::Embed => usize::MAX,
                                _ => nodes.iter().position(|m| m == sender).unwrap_or(usize::MAX),
                            };
                            out.push((*e, i));
                        }
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, Family};

    fn cfg(n_layers: usize, n_heads: usize, d_mlp: usize) -> ModelConfig {
        ModelConfig {
            family: Family::Gpt2,
            n_layers,
            d_model: 8,
            n_heads,
            d_head: 4,
            d_mlp,
            d_vocab: 10,
            n_ctx: 8,
            eps: 1e-5,
            act: Activation::GeluNew,
            rotary_dim: 0,
            rotary_base: 10000.0,
            parallel_residual: false,
            scale_attn_by_inverse_layer_idx: false,
            bos_token_id: None,
            arch: Default::default(),
        }
    }

    fn opts(tau: f64) -> SweepOptions {
        SweepOptions {
            tau,
            abs_value_threshold: false,
            names_order: Order::Normal,
            indices_order: Order::Normal,
            seed: 0,
            level: Level::Edges,
            graph: GraphOptions { split_qkv: true },
            batch: 1,
        }
    }

    /// metric = Σ over removed units of their weight (exact in binary floating point).
    struct Additive {
        w: Vec<f64>,
        calls: Vec<Vec<bool>>,
    }

    impl Oracle for Additive {
        fn metric(&mut self, present: &[bool]) -> Result<f64> {
            self.calls.push(present.to_vec());
            Ok(self
                .w
                .iter()
                .zip(present)
                .filter(|(_, p)| !**p)
                .map(|(w, _)| *w)
                .sum())
        }
    }

    fn run(sweep: &Sweep, w: Vec<f64>) -> (SweepState, Vec<usize>) {
        let mut o = Additive { w, calls: vec![] };
        let mut s = sweep.initial_state();
        let mut order = vec![];
        while !sweep.done(&s) {
            sweep
                .step(&mut s, &mut o, &mut |e| {
                    if let Event::Tested { unit, .. } = e {
                        order.push(*unit)
                    }
                })
                .unwrap();
        }
        (s, order)
    }

    #[test]
    fn reference_visit_order_on_two_layers() {
        let sweep = Sweep::new(&cfg(2, 2, 0), opts(0.5));
        let n = sweep.units.len();
        assert_eq!(n, 41);
        // Nothing is ever removed: every edge is tested, in the reference's order.
        let (_, order) = run(&sweep, vec![1.0; n]);
        let names: Vec<String> = order.iter().map(|&i| sweep.units.name(i)).collect();
        let mut want: Vec<String> = vec![];
        for s in ["a1.h1", "a1.h0", "a0.h1", "a0.h0", "embed"] {
            want.push(format!("{s} -> logits"));
        }
        for x in ["v", "k", "q"] {
            for h in [1, 0] {
                want.push(format!("a1.h{h}.{x} -> a1.h{h}"));
            }
        }
        for x in ["v", "k", "q"] {
            for h in [1, 0] {
                for s in ["a0.h1", "a0.h0", "embed"] {
                    want.push(format!("{s} -> a1.h{h}.{x}"));
                }
            }
        }
        for x in ["v", "k", "q"] {
            for h in [1, 0] {
                want.push(format!("a0.h{h}.{x} -> a0.h{h}"));
            }
        }
        for x in ["v", "k", "q"] {
            for h in [1, 0] {
                want.push(format!("embed -> a0.h{h}.{x}"));
            }
        }
        assert_eq!(names, want);
    }

    #[test]
    fn strict_threshold_and_dead_heads() {
        let sweep = Sweep::new(&cfg(2, 2, 0), opts(0.5));
        let Units::Edges(g) = &sweep.units else {
            unreachable!()
        };
        let id = |s: &str| g.id(&Edge::parse(s, &sweep.cfg).unwrap()).unwrap();
        // Every edge costs 1 except: a1.h0 -> logits costs exactly tau (kept: the rule is
        // strict) and a1.h1 -> logits costs less (removed). a1.h1 then has no child left: its
        // q/k/v edges and every edge into its inputs go untested.
        let mut w = vec![1.0; g.len()];
        w[id("a1.h0 -> logits")] = 0.5;
        w[id("a1.h1 -> logits")] = 0.25;
        let (s, order) = run(&sweep, w);
        assert!(s.present[id("a1.h0 -> logits")]);
        assert_eq!(s.effect[id("a1.h0 -> logits")], Some(0.5));
        assert!(!s.present[id("a1.h1 -> logits")]);
        for x in ["q", "k", "v"] {
            let e = id(&format!("a1.h1.{x} -> a1.h1"));
            assert!(!s.present[e] && s.effect[e].is_none());
            let e = id(&format!("a0.h0 -> a1.h1.{x}"));
            assert!(!s.present[e] && s.effect[e].is_none());
            assert!(s.present[id(&format!("a0.h0 -> a1.h0.{x}"))]);
        }
        assert_eq!(order.len(), 41 - 3 - 9);
        // The oracle charges the 12 untested removals too (a real model would not notice them):
        // the metric is recomputed when the next receiver starts.
        assert_eq!(s.cur_metric, Some(12.25));
        // With |Δ| compared, a negative effect counts by its size.
        let mut o = opts(0.5);
        o.abs_value_threshold = true;
        let sweep = Sweep::new(&cfg(2, 2, 0), o);
        let mut w = vec![1.0; g.len()];
        w[id("a1.h1 -> logits")] = -2.0;
        w[id("a1.h0 -> logits")] = -0.25;
        let (s, _) = run(&sweep, w);
        assert!(s.present[id("a1.h1 -> logits")]);
        assert!(!s.present[id("a1.h0 -> logits")]);
    }

    /// Additive, measured with a deterministic error of at most `bound`.
    struct Noisy {
        exact: Additive,
        bound: f64,
        rechecks: usize,
    }

    impl Noisy {
        fn noisy(&mut self, p: &[bool]) -> Measured {
            let v = self.exact.metric(p).unwrap();
            self.rechecks -= 1; // not a re-check
            let h = p.iter().enumerate().fold(7u64, |a, (i, &b)| {
                a.wrapping_mul(31).wrapping_add(i as u64 * b as u64)
            });
            let frac = (h % 1000) as f64 / 999.0 * 2.0 - 1.0;
            Measured {
                value: v + frac * self.bound,
                error: self.bound,
            }
        }
    }

    impl Oracle for Noisy {
        fn metric(&mut self, present: &[bool]) -> Result<f64> {
            self.rechecks += 1;
            self.exact.metric(present)
        }
        fn measure(&mut self, present: &[bool]) -> Result<Measured> {
            Ok(self.noisy(present))
        }
        fn measure_without(&mut self, present: &[bool], unit: usize) -> Result<Measured> {
            let mut p = present.to_vec();
            p[unit] = false;
            Ok(self.noisy(&p))
        }
    }

    #[test]
    fn bounded_measurements_take_the_exact_decisions() {
        let sweep = Sweep::new(&cfg(2, 2, 4), opts(0.5));
        let n = sweep.units.len();
        // Effects at, near and far from tau.
        let w: Vec<f64> = (0..n)
            .map(|i| [0.5, 0.49, 0.52, 0.1, 2.0, 0.4999][i % 6])
            .collect();
        let (exact, order) = run(&sweep, w.clone());
        let mut o = Noisy {
            exact: Additive { w, calls: vec![] },
            bound: 0.05,
            rechecks: 0,
        };
        let mut s = sweep.initial_state();
        let mut order2 = vec![];
        while !sweep.done(&s) {
            sweep
                .step(&mut s, &mut o, &mut |e| {
                    if let Event::Tested { unit, .. } = e {
                        order2.push(*unit)
                    }
                })
                .unwrap();
        }
        assert_eq!(s.present, exact.present);
        assert_eq!(order, order2);
        assert!(o.rechecks > 0);
        // Effects measured to within 2·bound; those exactly at tau were re-measured.
        for (a, b) in s.effect.iter().zip(&exact.effect) {
            if let (Some(a), Some(b)) = (a, b) {
                assert!((a - b).abs() <= 0.1 + 1e-12);
                if *b == 0.5 {
                    assert_eq!(a, b);
                }
            }
        }
    }

    #[test]
    fn batched_windows_take_the_same_decisions() {
        let sweep1 = Sweep::new(&cfg(2, 2, 4), opts(0.5));
        let n = sweep1.units.len();
        let w: Vec<f64> = (0..n).map(|i| [0.25, 1.0, 0.125, 0.75][i % 4]).collect();
        let (s1, o1) = run(&sweep1, w.clone());
        for batch in [2, 3, 8] {
            let mut o = opts(0.5);
            o.batch = batch;
            let sweep = Sweep::new(&cfg(2, 2, 4), o);
            let (s, order) = run(&sweep, w.clone());
            assert_eq!(s.present, s1.present, "batch {batch}");
            assert_eq!(s.effect, s1.effect, "batch {batch}");
            assert_eq!(order, o1);
        }
    }

    #[test]
    fn random_order_depends_on_the_seed_only() {
        let mut o = opts(0.5);
        o.names_order = Order::Random;
        o.indices_order = Order::Random;
        let n = Sweep::new(&cfg(3, 4, 0), o).units.len();
        let (_, a) = run(&Sweep::new(&cfg(3, 4, 0), o), vec![1.0; n]);
        let (_, b) = run(&Sweep::new(&cfg(3, 4, 0), o), vec![1.0; n]);
        assert_eq!(a, b);
        o.seed = 1;
        let (_, c) = run(&Sweep::new(&cfg(3, 4, 0), o), vec![1.0; n]);
        assert_ne!(a, c);
        let mut sorted_a = a.clone();
        sorted_a.sort();
        let mut sorted_c = c.clone();
        sorted_c.sort();
        assert_eq!(sorted_a, sorted_c);
        // Reverse order: the logits' parents come embedding first.
        let mut o = opts(0.5);
        o.names_order = Order::Reverse;
        o.indices_order = Order::Reverse;
        let sweep = Sweep::new(&cfg(2, 2, 0), o);
        let (_, r) = run(&sweep, vec![1.0; 41]);
        let first: Vec<String> = r[..5].iter().map(|&i| sweep.units.name(i)).collect();
        assert_eq!(
            first,
            [
                "embed -> logits",
                "a0.h0 -> logits",
                "a0.h1 -> logits",
                "a1.h0 -> logits",
                "a1.h1 -> logits"
            ]
        );
    }

    #[test]
    fn without_qkv_split_and_at_node_level() {
        let mut o = opts(0.5);
        o.graph = GraphOptions { split_qkv: false };
        let sweep = Sweep::new(&cfg(2, 2, 0), o);
        assert_eq!(sweep.units.len(), 29);
        let Units::Edges(g) = &sweep.units else {
            unreachable!()
        };
        let id = |s: &str| g.id(&Edge::parse(s, &sweep.cfg).unwrap()).unwrap();
        // a1.h1's only child edge goes: its inputs lose their edges untested.
        let mut w = vec![1.0; 29];
        w[id("a1.h1 -> logits")] = 0.25;
        let (s, order) = run(&sweep, w);
        for x in ["q", "k", "v"] {
            let e = id(&format!("embed -> a1.h1.{x}"));
            assert!(!s.present[e] && s.effect[e].is_none());
        }
        assert_eq!(order.len(), 29 - 9);

        let mut o = opts(0.5);
        o.level = Level::Nodes;
        let sweep = Sweep::new(&cfg(2, 2, 4), o);
        let names: Vec<String> = (0..sweep.units.len())
            .map(|i| sweep.units.name(i))
            .collect();
        assert_eq!(names, ["m1", "a1.h1", "a1.h0", "m0", "a0.h1", "a0.h0"]);
        let (s, order) = run(&sweep, vec![0.25, 1.0, 0.25, 1.0, 0.5, 0.125]);
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
        assert_eq!(s.present, [false, true, false, true, true, false]);
        // Kept edges at node level: between kept nodes, the embedding and the logits.
        let kept: Vec<String> = sweep
            .kept_edges(&s)
            .iter()
            .map(|(e, _)| e.to_string())
            .collect();
        assert!(kept.contains(&"a0.h1 -> a1.h1.q".to_string()));
        assert!(kept.contains(&"embed -> logits".to_string()));
        assert!(!kept
            .iter()
            .any(|e| e.starts_with("m1") || e.contains("a1.h0")));
    }

    #[test]
    fn gpt2_small_visits_the_reference_nodes() {
        // The reference's GPT-2 small graph has 1,034 nodes: the steps here (logits, MLP
        // inputs, q/k/v nodes, q/k/v inputs) plus the output nodes (MLP outputs, head
        // results), which only pass connectivity on, and the embedding.
        let sweep = Sweep::new(&cfg(12, 12, 3072), opts(0.1));
        assert_eq!(sweep.units.len(), 32_923);
        assert_eq!(sweep.steps.len() + 12 + 144 + 1, 1_034);
    }
}
