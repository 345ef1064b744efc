//! Edge scores by gradient attribution: EAP, EAP-IG (inputs and activations) and AtP.
//!
//! For an addition edge `u → r` every method scores
//!
//! ```text
//! score(u → r) = Σ_{row, pos, d} (a_ablated(u) − a_clean(u)) · ḡ_r
//! ```
//!
//! where `a_ablated(u)` is what the edge carries when it is removed (the sender's output on the
//! corrupted prompt, its mean, zero, or another row's output: [`crate::acdc::ablation`], the
//! same values ACDC uses) and `ḡ_r` a gradient of the metric with respect to receiver `r`'s
//! input:
//!
//! - **EAP** (Syed et al. 2023): the gradient at the clean input.
//! - **EAP-IG, inputs** (Hanna et al. 2024): the mean of the gradients at `m` points on the
//!   straight line from the ablated embedding to the clean one,
//!   `e' + (k/m)(e − e')`, k = 1..m (the paper's formula; [`IgPoints::FromZero`] takes
//!   k = 0..m−1 as the authors' current code does).
//! - **EAP-IG, activations**: for the senders of one group (the embedding, one layer's heads,
//!   one MLP), the mean of the gradients at `m` points where that group's outputs are
//!   interpolated between ablated and clean, everything else clean.
//! - **AtP** (Nanda; Kramár et al. 2024): node scores, `(a_ablated(u) − a_clean(u)) ·
//!   ∂m/∂a(u)`; since `u`'s output is added to every later receiver's input, this is the sum of
//!   `u`'s EAP edge scores.
//!
//! A head's q/k/v edge (`a1.h2.q → a1.h2`, with the q/k/v split) removes the whole input, so its
//! score is `(input_ablated(r) − input_clean(r)) · ḡ_r`.
//!
//! Sign: a score estimates `m(edge removed) − m(clean)` for the metric as given (not negated).
//! A positive score for logit difference means removing the edge *raises* the logit difference.
//! AutoCircuit reports the opposite sign (it differentiates the loss −logit diff); EAP-IG's code
//! reports the gradient of whatever it is given (usually a loss) divided once more by the
//! number of rows. Positions are summed; `per_position` keeps them apart.

use super::gradients::{receiver_grads, Interpolation, ReceiverGrads};
use super::objective::GradMetric;
use crate::acdc::ablation::Ablated;
use crate::error::{Error, Result};
use crate::eval::{HookName, Site};
use crate::graph::edges::{receivers_reverse, senders_reverse};
use crate::graph::{Edge, EdgeGraph, GraphOptions, Node, Receiver};
use crate::model::Model;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The attribution method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Method {
    /// Edge attribution patching: gradients at the clean input.
    #[default]
    Eap,
    /// EAP with integrated gradients over the input embeddings.
    EapIg,
    /// EAP with integrated gradients over each sender group's outputs.
    EapIgAct,
    /// Attribution patching of nodes (heads and MLPs); edge scores are EAP's.
    Atp,
}

impl Method {
    /// The CLI name.
    pub fn cli_name(self) -> &'static str {
        match self {
            Method::Eap => "eap",
            Method::EapIg => "eap-ig",
            Method::EapIgAct => "eap-ig-act",
            Method::Atp => "atp",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "eap" => Ok(Method::Eap),
            "eap-ig" | "eap-ig-inputs" => Ok(Method::EapIg),
            "eap-ig-act" | "eap-ig-activations" => Ok(Method::EapIgAct),
            "atp" => Ok(Method::Atp),
            _ => Err(Error::input(format!(
                "--method {s}: use eap, eap-ig (integrated gradients over the inputs), \
                 eap-ig-act (over each layer's activations) or atp (node scores)"
            ))),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cli_name())
    }
}

/// Which points of the line integrated gradients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum IgPoints {
    /// α = k/m for k = 1..m (Hanna et al. 2024, eq. 2; ends at the clean input, so m = 1 is
    /// EAP).
    #[default]
    Paper,
    /// α = k/m for k = 0..m−1 (the EAP-IG authors' current code; starts at the ablated input).
    FromZero,
}

impl IgPoints {
    /// The interpolation coefficients, the clean point (α = 1) first when it is one of them.
    pub fn alphas(self, m: usize) -> Vec<f64> {
        match self {
            IgPoints::Paper => (1..=m).rev().map(|k| k as f64 / m as f64).collect(),
            IgPoints::FromZero => (0..m).map(|k| k as f64 / m as f64).collect(),
        }
    }
}

/// Options of an attribution run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The method.
    pub method: Method,
    /// Integrated-gradient steps `m` (EAP-IG only), ≥ 1.
    pub ig_steps: usize,
    /// The points of the line.
    pub ig_points: IgPoints,
    /// Keep per-position scores.
    pub per_position: bool,
    /// The edge graph.
    pub graph: GraphOptions,
}

/// What attribution reads: the model, the clean rows, what removed edges carry, the metric.
pub struct Inputs<'a> {
    /// The model.
    pub model: &'a Model,
    /// Clean tokens `[n, pos]`.
    pub tokens: Tensor,
    /// Each row's END position.
    pub ends: Vec<usize>,
    /// The ablated sender outputs and receiver inputs.
    pub ablated: &'a Ablated,
    /// The metric.
    pub objective: GradMetric,
}

/// Edge (and node) scores of one run.
#[derive(Debug, Clone)]
pub struct Scores {
    /// The method.
    pub method: Method,
    /// The graph whose edges are scored, in its order.
    pub graph: EdgeGraph,
    /// One score per edge of `graph`.
    pub edges: Vec<f64>,
    /// `[edges × positions]` scores (row-major), when asked for.
    pub per_position: Option<Vec<f64>>,
    /// Number of positions.
    pub positions: usize,
    /// AtP node scores (every head and MLP), in sender order.
    pub nodes: Vec<(Node, f64)>,
    /// The metric on the clean run.
    pub clean_metric: f64,
    /// Forward passes run (the ablation's run excluded: it is counted by the caller).
    pub forwards: usize,
    /// Backward passes run.
    pub backwards: usize,
}

/// The sender group whose outputs one interpolation of EAP-IG (activations) moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Embed,
    Attn(usize),
    Mlp(usize),
}

fn group_of(u: Node) -> Group {
    match u {
        Node::Embed => Group::Embed,
        Node::Head(l, _) => Group::Attn(l),
        Node::Mlp(l) => Group::Mlp(l),
    }
}

/// `[p, n, b·d_model]` from `n` tensors `[b, p, d_model]`: per position, one row per tensor
/// (a single copy: each is read position-major as it is stacked).
fn by_position(ts: &[Tensor]) -> Result<Tensor> {
    let (b, p, dm) = ts[0].dims3()?;
    let t: Vec<Tensor> = ts
        .iter()
        .map(|t| t.permute((1, 0, 2)))
        .collect::<candle_core::Result<_>>()?;
    Ok(Tensor::stack(&t, 1)?.reshape((p, ts.len(), b * dm))?)
}

/// `[p, R, b·d_model]`: every receiver's gradient, laid out for [`score_matrix`].
fn grad_matrix(grads: &[Tensor]) -> Result<Tensor> {
    by_position(grads)
}

/// `[p, S, R]`: per position, Σ_{row, d} diff(u) · grad(r) for every sender and receiver;
/// `g` is [`grad_matrix`]'s layout.
fn score_matrix(diffs: &[Tensor], g: &Tensor) -> Result<Tensor> {
    Ok(by_position(diffs)?.matmul(&g.t()?)?)
}

/// Σ over rows and d_model of `a · b`, per position: `[p]` as f64.
fn dot_per_position(a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
    Ok(a.mul(b)?
        .sum(2)?
        .sum(0)?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?)
}

struct Filler<'g> {
    graph: &'g EdgeGraph,
    p: usize,
    per_pos: Vec<f64>,
}

impl Filler<'_> {
    fn set(&mut self, e: usize, v: &[f64]) {
        self.per_pos[e * self.p..(e + 1) * self.p].copy_from_slice(v);
    }

    /// Fill the addition edges from senders `senders` with a `[p, S, R]` matrix.
    fn add_edges(
        &mut self,
        m: &Tensor,
        senders: &[Node],
        receivers: &[Receiver],
        cfg: &crate::model::ModelConfig,
    ) -> Result<()> {
        let (p, s, r) = m.dims3()?;
        let v = m.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        for (si, u) in senders.iter().enumerate() {
            for (ri, rc) in receivers.iter().enumerate() {
                if !u.feeds(rc, cfg) {
                    continue;
                }
                if let Some(e) = self.graph.add_id(*u, *rc) {
                    let vals: Vec<f64> = (0..p).map(|q| v[(q * s + si) * r + ri]).collect();
                    self.set(e, &vals);
                }
            }
        }
        Ok(())
    }
}

/// Average the gradients of several runs.
fn mean_grads(runs: &[BTreeMap<Receiver, Tensor>]) -> Result<BTreeMap<Receiver, Tensor>> {
    let k = runs.len() as f64;
    let mut out = BTreeMap::new();
    for r in runs[0].keys() {
        let mut acc = runs[0][r].clone();
        for g in &runs[1..] {
            acc = (acc + &g[r])?;
        }
        out.insert(*r, (acc / k)?);
    }
    Ok(out)
}

/// Score every edge of the graph (and, for AtP, every node).
///
/// `progress(done, total)` is called after each forward/backward pass.
pub fn attribute(
    inp: &Inputs,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Scores> {
    let model = inp.model;
    let cfg = &model.cfg;
    if matches!(opts.method, Method::EapIg | Method::EapIgAct) && opts.ig_steps == 0 {
        return Err(Error::input(
            "--ig-steps 0: integrated gradients need at least one point; use 5 (typical) to 30",
        ));
    }
    let graph = EdgeGraph::new(cfg, opts.graph);
    let senders = senders_reverse(cfg);
    let receivers = receivers_reverse(cfg);
    let (_, p) = inp.tokens.dims2()?;
    let alphas = opts.ig_points.alphas(opts.ig_steps);
    let groups: Vec<Group> = {
        let mut g: Vec<Group> = senders.iter().map(|u| group_of(*u)).collect();
        g.sort();
        g.dedup();
        g
    };
    let total = match opts.method {
        Method::Eap | Method::Atp => 1,
        Method::EapIg => alphas.len() + usize::from(!alphas.contains(&1.0)),
        Method::EapIgAct => 1 + groups.len() * alphas.iter().filter(|a| **a != 1.0).count(),
    };
    // The clean run (with gradients: it is EAP's, and the point α = 1 of integrated gradients).
    let clean = clean_point(inp, opts.method == Method::EapIg && !alphas.contains(&1.0))?;
    let mut passes = Passes {
        done: 1,
        total,
        forwards: 1,
        backwards: usize::from(!clean.grads.is_empty()),
        progress,
    };
    (passes.progress)(1, total);
    let (qkv_grads, group_grads) =
        method_grads(inp, opts.method, &alphas, &groups, &clean, &mut passes)?;
    let (diffs, in_diff) = differences(inp, &senders, &clean)?;
    let parts = (
        &graph,
        senders.as_slice(),
        receivers.as_slice(),
        groups.as_slice(),
        p,
    );
    let terms = Terms {
        diffs: &diffs,
        in_diff: &in_diff,
        qkv_grads: &qkv_grads,
        group_grads: group_grads.as_ref(),
    };
    let edges = summed_scores(inp, parts, &terms)?;
    let per_pos = if opts.per_position {
        Some(per_position_scores(inp, parts, &terms)?)
    } else {
        None
    };
    let nodes = if opts.method == Method::Atp {
        atp_nodes(&graph, &senders, &receivers, &edges)
    } else {
        vec![]
    };
    Ok(Scores {
        method: opts.method,
        graph,
        edges,
        per_position: per_pos,
        positions: p,
        nodes,
        clean_metric: clean.metric,
        forwards: passes.forwards,
        backwards: passes.backwards,
    })
}

/// AtP: a node's score is the sum of its outgoing addition edges' EAP scores.
fn atp_nodes(
    graph: &EdgeGraph,
    senders: &[Node],
    receivers: &[Receiver],
    edges: &[f64],
) -> Vec<(Node, f64)> {
    let mut nodes = vec![];
    for u in senders.iter().filter(|u| **u != Node::Embed) {
        let mut s = 0.0;
        for r in receivers {
            if let Some(e) = graph.add_id(*u, *r) {
                s += edges[e];
            }
        }
        nodes.push((*u, s));
    }
    nodes
}

/// The passes run so far, reported to `progress(done, total)` after each.
struct Passes<'p> {
    done: usize,
    total: usize,
    forwards: usize,
    backwards: usize,
    progress: &'p mut dyn FnMut(usize, usize),
}

impl Passes<'_> {
    /// One more forward and backward pass.
    fn gradient_pass(&mut self) {
        self.backwards += 1;
        self.forwards += 1;
        self.done += 1;
        (self.progress)(self.done, self.total);
    }
}

/// The clean run: with gradients (EAP's, and the point α = 1 of integrated gradients), or a
/// plain forward pass for the clean logits when `plain` (the clean point is not on the path).
fn clean_point(inp: &Inputs, plain: bool) -> Result<ReceiverGrads> {
    let model = inp.model;
    if !plain {
        return receiver_grads(model, &inp.tokens, &inp.ends, &inp.objective, None, None);
    }
    let run = crate::eval::run(
        model,
        &inp.tokens,
        &crate::eval::Patches::new(),
        crate::eval::RunOptions {
            logits: crate::eval::LogitsAt::Rows(inp.ends.clone()),
            ..Default::default()
        },
    )?;
    let logits = run
        .logits
        .clone()
        .ok_or_else(|| Error::input("internal: no logits"))?;
    let metric = inp
        .objective
        .value(&logits, &logits)?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok(ReceiverGrads {
        metric,
        logits,
        grads: BTreeMap::new(),
        run,
    })
}

/// The receivers' gradients at one point of an integrated-gradients line: activation `name`
/// moved to `alpha` of the way from `base` (the ablated value) to the clean one.
fn interpolated(
    inp: &Inputs,
    clean_logits: &Tensor,
    name: HookName,
    base: &Tensor,
    alpha: f64,
) -> Result<BTreeMap<Receiver, Tensor>> {
    let point = Interpolation {
        name,
        base: base.clone(),
        alpha,
    };
    let g = receiver_grads(
        inp.model,
        &inp.tokens,
        &inp.ends,
        &inp.objective,
        Some(clean_logits),
        Some(&point),
    )?;
    Ok(g.grads)
}

/// The gradients the method scores with: the q/k/v edges' (and every sender group's, but
/// with EAP-IG on activations), and with EAP-IG on activations, per sender group the
/// gradients its addition edges use.
type MethodGrads = (
    BTreeMap<Receiver, Tensor>,
    Option<BTreeMap<Group, BTreeMap<Receiver, Tensor>>>,
);

fn method_grads(
    inp: &Inputs,
    method: Method,
    alphas: &[f64],
    groups: &[Group],
    clean: &ReceiverGrads,
    passes: &mut Passes,
) -> Result<MethodGrads> {
    // The mean gradient along the line from `base` at `name`, α = 1 being the clean point.
    let line = |name: HookName, base: &Tensor, passes: &mut Passes| -> Result<_> {
        let mut runs = vec![];
        for &a in alphas {
            if a == 1.0 {
                runs.push(clean.grads.clone());
                continue;
            }
            runs.push(interpolated(inp, &clean.logits, name, base, a)?);
            passes.gradient_pass();
        }
        mean_grads(&runs)
    };
    Ok(match method {
        Method::Eap | Method::Atp => (clean.grads.clone(), None),
        Method::EapIg => {
            let embed = inp.ablated.out[&Node::Embed].clone();
            let g = line(HookName::Block(0, Site::ResidPre), &embed, passes)?;
            (g, None)
        }
        Method::EapIgAct => {
            let mut all = vec![];
            let mut group_grads = BTreeMap::new();
            for gr in groups {
                let (name, base) = group_line(inp, *gr)?;
                let g = line(name, &base, passes)?;
                all.push(g.clone());
                group_grads.insert(*gr, g);
            }
            (mean_grads(&all)?, Some(group_grads))
        }
    })
}

/// Where EAP-IG (activations) moves a sender group's outputs: the activation and its ablated
/// value.
fn group_line(inp: &Inputs, gr: Group) -> Result<(HookName, Tensor)> {
    Ok(match gr {
        Group::Embed => (
            HookName::Block(0, Site::ResidPre),
            inp.ablated.out[&Node::Embed].clone(),
        ),
        Group::Attn(l) => {
            // hook_result is [b, p, heads, d]; heads ascending.
            let mut heads: Vec<Tensor> = Vec::with_capacity(inp.model.cfg.n_heads);
            for h in 0..inp.model.cfg.n_heads {
                heads.push(inp.ablated.out[&Node::Head(l, h)].clone());
            }
            (HookName::Block(l, Site::Result), Tensor::stack(&heads, 2)?)
        }
        Group::Mlp(l) => (
            HookName::Block(l, Site::MlpOut),
            inp.ablated.out[&Node::Mlp(l)].clone(),
        ),
    })
}

/// What a removed edge changes: per sender, its ablated minus clean output; per layer, the
/// ablated minus clean input (for q/k/v edges).
type Differences = (BTreeMap<Node, Tensor>, Vec<Tensor>);

fn differences(inp: &Inputs, senders: &[Node], clean: &ReceiverGrads) -> Result<Differences> {
    let model = inp.model;
    let mut diffs = BTreeMap::new();
    for u in senders {
        let a = inp
            .ablated
            .out
            .get(u)
            .ok_or_else(|| Error::input(format!("internal: no ablated output for {u}")))?;
        diffs.insert(*u, (a - clean.run.sender_out(model, *u)?.detach())?);
    }
    let in_diff: Vec<Tensor> = (0..model.cfg.n_layers)
        .map(|l| Ok((&inp.ablated.resid[l] - clean.run.resid[l].detach())?))
        .collect::<Result<_>>()?;
    Ok((diffs, in_diff))
}

/// The graph's parts: edges, senders, receivers, sender groups, positions.
type Parts<'a> = (
    &'a EdgeGraph,
    &'a [Node],
    &'a [Receiver],
    &'a [Group],
    usize,
);

/// What the scores multiply: each sender's difference, each layer's input difference, the
/// gradients the q/k/v edges (and, without per-group gradients, every edge) use, and EAP-IG
/// on activations' per-group gradients.
struct Terms<'a> {
    diffs: &'a BTreeMap<Node, Tensor>,
    in_diff: &'a [Tensor],
    qkv_grads: &'a BTreeMap<Receiver, Tensor>,
    group_grads: Option<&'a BTreeMap<Group, BTreeMap<Receiver, Tensor>>>,
}

/// `[n, K]`: each tensor flattened into one row (one copy).
fn rows_of(ts: &[&Tensor]) -> Result<Tensor> {
    let rows: Vec<Tensor> = ts
        .iter()
        .map(|t| t.flatten_all()?.unsqueeze(0))
        .collect::<candle_core::Result<_>>()?;
    Ok(Tensor::cat(&rows, 0)?)
}

/// `d · gᵀ` for `d` `[S, K]` and `g` `[R, K]`, row-major `[S × R]` as f64: for every sender and
/// receiver, Σ over rows, positions and d_model of diff(u) · grad(r) in one product.
fn products(d: &Tensor, g: &Tensor) -> Result<Vec<f64>> {
    Ok(d.matmul(&g.t()?)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?)
}

/// The senders in forward order (the embedding first) and, per sender group, its range there.
fn forward_senders(senders: &[Node]) -> (Vec<Node>, BTreeMap<Group, std::ops::Range<usize>>) {
    let fwd: Vec<Node> = senders.iter().rev().copied().collect();
    let mut ranges: BTreeMap<Group, std::ops::Range<usize>> = BTreeMap::new();
    for (i, u) in fwd.iter().enumerate() {
        ranges
            .entry(group_of(*u))
            .and_modify(|r| r.end = i + 1)
            .or_insert(i..i + 1);
    }
    (fwd, ranges)
}

/// Every edge's score (summed over rows and positions), each block of edges from one matrix
/// product: with one set of gradients (every method but EAP-IG on activations), per run of
/// receivers read by the same senders (a layer's head inputs, an MLP, the logits) the product
/// of those senders' differences with the receivers' gradients; with per-group gradients,
/// per sender group the product with the gradients of the receivers it feeds. A q/k/v edge is
/// the layer's input difference times the head input's gradient (with one set of gradients,
/// from the same block of gradients).
fn summed_scores(
    inp: &Inputs,
    (graph, senders, receivers, _, _): Parts,
    t: &Terms,
) -> Result<Vec<f64>> {
    let (diffs, in_diff, qkv_grads, group_grads) = (t.diffs, t.in_diff, t.qkv_grads, t.group_grads);
    let cfg = &inp.model.cfg;
    let (fwd, ranges) = forward_senders(senders);
    let d_all = rows_of(&fwd.iter().map(|u| &diffs[u]).collect::<Vec<_>>())?;
    let mut edges = vec![0.0; graph.len()];
    let fwd_receivers: Vec<Receiver> = receivers.iter().rev().copied().collect();
    match group_grads {
        None => {
            // Senders reading into r: a prefix of the forward order.
            let reach = |r: &Receiver| {
                fwd.iter()
                    .rposition(|u| u.feeds(r, cfg))
                    .map_or(0, |i| i + 1)
            };
            for run in fwd_receivers.chunk_by(|a, b| reach(a) == reach(b)) {
                let g = rows_of(&run.iter().map(|r| &qkv_grads[r]).collect::<Vec<_>>())?;
                let n = reach(&run[0]);
                if n > 0 {
                    let m = products(&d_all.narrow(0, 0, n)?, &g)?;
                    fill_add(graph, cfg, &fwd[..n], run, &m, &mut edges);
                }
                fill_qkv(graph, run, in_diff, &g, &mut edges)?;
            }
        }
        Some(gg) => {
            for (gr, range) in &ranges {
                let fed: Vec<Receiver> = fwd_receivers
                    .iter()
                    .copied()
                    .filter(|r| fwd[range.clone()].iter().any(|u| u.feeds(r, cfg)))
                    .collect();
                if fed.is_empty() {
                    continue;
                }
                let g = rows_of(&fed.iter().map(|r| &gg[gr][r]).collect::<Vec<_>>())?;
                let d = d_all.narrow(0, range.start, range.len())?;
                fill_add(
                    graph,
                    cfg,
                    &fwd[range.clone()],
                    &fed,
                    &products(&d, &g)?,
                    &mut edges,
                );
            }
            for layer in 0..in_diff.len() {
                let heads: Vec<Receiver> = receivers
                    .iter()
                    .copied()
                    .filter(|r| matches!(r, Receiver::Head(l, ..) if *l == layer))
                    .collect();
                let g = rows_of(&heads.iter().map(|r| &qkv_grads[r]).collect::<Vec<_>>())?;
                fill_qkv(graph, &heads, in_diff, &g, &mut edges)?;
            }
        }
    }
    Ok(edges)
}

/// Set the addition edges `us → rs` from the `[us × rs]` products `m`.
fn fill_add(
    graph: &EdgeGraph,
    cfg: &crate::model::ModelConfig,
    us: &[Node],
    rs: &[Receiver],
    m: &[f64],
    edges: &mut [f64],
) {
    for (si, u) in us.iter().enumerate() {
        for (ri, r) in rs.iter().enumerate() {
            if u.feeds(r, cfg) {
                if let Some(e) = graph.add_id(*u, *r) {
                    edges[e] = m[si * rs.len() + ri];
                }
            }
        }
    }
}

/// Set the q/k/v edges of the head inputs among `rs` (whose gradients are the rows of `g`):
/// each layer's input difference times its heads' gradients.
fn fill_qkv(
    graph: &EdgeGraph,
    rs: &[Receiver],
    in_diff: &[Tensor],
    g: &Tensor,
    edges: &mut [f64],
) -> Result<()> {
    let mut layers: Vec<usize> = rs
        .iter()
        .filter_map(|r| match r {
            Receiver::Head(l, ..) => Some(*l),
            _ => None,
        })
        .collect();
    layers.dedup();
    for layer in layers {
        let v = products(&rows_of(&[&in_diff[layer]])?, g)?;
        for (r, x) in rs.iter().zip(v) {
            if let Receiver::Head(l, h, q) = *r {
                if let Some(e) = graph.qkv_id(l, h, q).filter(|_| l == layer) {
                    edges[e] = x;
                }
            }
        }
    }
    Ok(())
}

/// `[edges × positions]` scores, when asked for (the edges' sums come from [`summed_scores`],
/// one product per block instead of one per position): each group's addition edges from its
/// gradients (`group_grads`, or `qkv_grads` shared by every group when `None`), each q/k/v
/// edge from the layer's input difference.
fn per_position_scores(
    inp: &Inputs,
    (graph, senders, receivers, groups, p): Parts,
    t: &Terms,
) -> Result<Vec<f64>> {
    let (diffs, in_diff, qkv_grads, group_grads) = (t.diffs, t.in_diff, t.qkv_grads, t.group_grads);
    let cfg = &inp.model.cfg;
    let mut fill = Filler {
        graph,
        p,
        per_pos: vec![0.0; graph.len() * p],
    };
    let matrix_of = |grads: &BTreeMap<Receiver, Tensor>| -> Result<Tensor> {
        grad_matrix(
            &receivers
                .iter()
                .map(|r| grads[r].clone())
                .collect::<Vec<_>>(),
        )
    };
    // Every group but EAP-IG (activations)'s reads the same gradients: lay them out once.
    let shared = match group_grads {
        Some(_) => None,
        None => Some(matrix_of(qkv_grads)?),
    };
    for gr in groups {
        let members: Vec<Node> = senders
            .iter()
            .copied()
            .filter(|u| group_of(*u) == *gr)
            .collect();
        let d: Vec<Tensor> = members.iter().map(|u| diffs[u].clone()).collect();
        let own;
        let g = match (&shared, group_grads) {
            (Some(g), _) => g,
            (None, gg) => {
                own = matrix_of(gg.map_or(qkv_grads, |gg| &gg[gr]))?;
                &own
            }
        };
        let m = score_matrix(&d, g)?;
        fill.add_edges(&m, &members, receivers, cfg)?;
    }
    for (i, e) in graph.edges().iter().enumerate() {
        if let Edge::Qkv { layer, head, qkv } = *e {
            let r = Receiver::Head(layer, head, qkv);
            let v = dot_per_position(&in_diff[layer], &qkv_grads[&r])?;
            fill.set(i, &v);
        }
    }
    Ok(fill.per_pos)
}
