//! The ACDC sweep against a brute-force re-implementation of the reference algorithm.
//!
//! The brute force below rebuilds the reference's correspondence (nodes named by hook and head
//! index, parents in insertion order, the reverse topological sort by the order hooks fire in a
//! forward pass), walks it as `TLACDCExperiment.step` / `increment_current_node` do, and
//! evaluates every candidate with a full forward pass in which every absent edge is a patch.
//! The library's fast path (resumed runs, logits at the answer rows, replaced inputs) must take
//! the same decision for every edge and measure the same effects.

use candle_core::{DType, Tensor};
use circuitscope::acdc::{self, Config, Prepared, Sweep, SweepState};
use circuitscope::data::{InductionOptions, TaskSpec};
use circuitscope::eval::{self, Hook, LogitsAt, Patches, RunOptions};
use circuitscope::graph::{Edge, Node, Qkv, Receiver};
use circuitscope::metric::{self, Metric};
use circuitscope::model::Model;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn config(tau: f64, metric: Metric) -> Config {
    Config {
        model: fixture("gpt2-tiny"),
        task: TaskSpec::Induction(InductionOptions {
            n: 6,
            seed: 3,
            prepend_bos: true,
            seq_len: 5,
            min_token: 0,
            max_token: 0,
        }),
        n: None,
        metric,
        ablation: acdc::Ablation::Corrupted,
        tau,
        order: acdc::Order::Normal,
        indices_order: None,
        seed: 0,
        level: acdc::Level::Edges,
        split_qkv: true,
        abs_value_threshold: false,
        dtype: acdc::Precision::F64,
        batch: 1,
    }
}

// ---------------------------------------------------------------------------------------------
// The brute force: the reference's data structures, by hook name and head index.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Addition,
    Direct,
    Placeholder,
}

type Key = (String, Option<usize>);
/// Parents of one child: (parent name, [(parent index, edge kind)]), insertion ordered.
type Parents = Vec<(String, Vec<(Option<usize>, Kind)>)>;

struct Corr {
    /// name → indices in insertion order (the graph's OrderedDict of OrderedDicts).
    graph: Vec<(String, Vec<Option<usize>>)>,
    incoming: BTreeMap<Key, Kind>,
    /// child → [(parent name, [(parent index, edge kind)])], insertion ordered.
    edges: BTreeMap<Key, Parents>,
}

impl Corr {
    fn add_node(&mut self, k: &Key, kind: Kind) {
        match self.graph.iter_mut().find(|(n, _)| *n == k.0) {
            Some((_, v)) => v.push(k.1),
            None => self.graph.push((k.0.clone(), vec![k.1])),
        }
        self.incoming.insert(k.clone(), kind);
    }

    fn add_edge(&mut self, parent: &Key, child: &Key, kind: Kind) {
        let groups = self.edges.entry(child.clone()).or_default();
        match groups.iter_mut().find(|(n, _)| *n == parent.0) {
            Some((_, v)) => v.push((parent.1, kind)),
            None => groups.push((parent.0.clone(), vec![(parent.1, kind)])),
        }
    }

    #[allow(clippy::too_many_lines)] // the reference's correspondence built literally, node by node
    fn build(n_layers: usize, n_heads: usize, mlp: bool) -> Corr {
        let mut c = Corr {
            graph: vec![],
            incoming: BTreeMap::new(),
            edges: BTreeMap::new(),
        };
        let logits: Key = (format!("blocks.{}.hook_resid_post", n_layers - 1), None);
        c.add_node(&logits, Kind::Addition);
        let mut downstream = vec![logits];
        for l in (0..n_layers).rev() {
            if mlp {
                let out: Key = (format!("blocks.{l}.hook_mlp_out"), None);
                c.add_node(&out, Kind::Placeholder);
                for r in &downstream {
                    c.add_edge(&out, r, Kind::Addition);
                }
                let inp: Key = (format!("blocks.{l}.hook_mlp_in"), None);
                c.add_node(&inp, Kind::Addition);
                c.add_edge(&inp, &out, Kind::Placeholder);
                downstream.push(inp);
            }
            let mut new = vec![];
            for h in (0..n_heads).rev() {
                let head: Key = (format!("blocks.{l}.attn.hook_result"), Some(h));
                c.add_node(&head, Kind::Placeholder);
                for r in &downstream {
                    c.add_edge(&head, r, Kind::Addition);
                }
                for x in ["q", "k", "v"] {
                    let xn: Key = (format!("blocks.{l}.attn.hook_{x}"), Some(h));
                    c.add_node(&xn, Kind::Direct);
                    let xi: Key = (format!("blocks.{l}.hook_{x}_input"), Some(h));
                    c.add_node(&xi, Kind::Addition);
                    c.add_edge(&xn, &head, Kind::Placeholder);
                    c.add_edge(&xi, &xn, Kind::Direct);
                    new.push(xi);
                }
            }
            downstream.extend(new);
        }
        let embed: Key = ("blocks.0.hook_resid_pre".into(), None);
        c.add_node(&embed, Kind::Placeholder);
        for r in &downstream {
            c.add_edge(&embed, r, Kind::Addition);
        }
        // Reverse topological sort: the order hooks fire in a TransformerLens forward pass,
        // reversed, keeping the names of the graph.
        let mut fired = vec!["hook_embed".to_string(), "hook_pos_embed".into()];
        for l in 0..n_layers {
            for s in [
                "hook_resid_pre",
                "hook_q_input",
                "hook_k_input",
                "hook_v_input",
                "ln1.hook_scale",
                "ln1.hook_normalized",
                "attn.hook_q",
                "attn.hook_k",
                "attn.hook_v",
                "attn.hook_attn_scores",
                "attn.hook_pattern",
                "attn.hook_z",
                "attn.hook_result",
                "hook_attn_out",
                "hook_resid_mid",
                "hook_mlp_in",
                "ln2.hook_scale",
                "ln2.hook_normalized",
                "mlp.hook_pre",
                "mlp.hook_post",
                "hook_mlp_out",
                "hook_resid_post",
            ] {
                fired.push(format!("blocks.{l}.{s}"));
            }
        }
        fired.reverse();
        let mut sorted = vec![];
        for name in fired {
            if let Some(g) = c.graph.iter().find(|(n, _)| *n == name) {
                sorted.push(g.clone());
            }
        }
        c.graph = sorted;
        c
    }

    fn order(&self) -> Vec<Key> {
        self.graph
            .iter()
            .flat_map(|(n, idx)| idx.iter().map(move |i| (n.clone(), *i)))
            .collect()
    }
}

fn layer_of(name: &str) -> usize {
    name.split('.')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn to_receiver(k: &Key, n_layers: usize) -> Receiver {
    let l = layer_of(&k.0);
    if k.0 == format!("blocks.{}.hook_resid_post", n_layers - 1) {
        Receiver::Logits
    } else if k.0.ends_with("hook_mlp_in") {
        Receiver::Mlp(l)
    } else {
        let x = if k.0.ends_with("hook_q_input") || k.0.ends_with("attn.hook_q") {
            Qkv::Q
        } else if k.0.ends_with("hook_k_input") || k.0.ends_with("attn.hook_k") {
            Qkv::K
        } else {
            Qkv::V
        };
        Receiver::Head(l, k.1.unwrap(), x)
    }
}

fn to_sender(k: &Key) -> Node {
    if k.0 == "blocks.0.hook_resid_pre" {
        Node::Embed
    } else if k.0.ends_with("hook_mlp_out") {
        Node::Mlp(layer_of(&k.0))
    } else {
        Node::Head(layer_of(&k.0), k.1.unwrap())
    }
}

struct Brute<'a> {
    model: &'a Model,
    tokens: Tensor,
    end: Vec<usize>,
    alt: BTreeMap<Node, Tensor>,
    ds: circuitscope::data::Dataset,
    clean: Tensor,
    metric: Metric,
    evals: usize,
}

impl Brute<'_> {
    /// Full forward with every absent addition edge patched; an absent direct edge patches
    /// every sender into that head input.
    fn metric(&mut self, absent_add: &BTreeSet<(Key, Key)>, absent_direct: &BTreeSet<Key>) -> f64 {
        self.evals += 1;
        let cfg = &self.model.cfg;
        let mut patches = Patches::new();
        let mut patched: BTreeSet<(Receiver, Node)> = BTreeSet::new();
        for (child, parent) in absent_add {
            patched.insert((to_receiver(child, cfg.n_layers), to_sender(parent)));
        }
        for child in absent_direct {
            let r = to_receiver(child, cfg.n_layers);
            for u in self.alt.keys() {
                if u.feeds(&r, cfg) {
                    patched.insert((r, *u));
                }
            }
        }
        for (r, u) in patched {
            patches.add(r, u, self.alt[&u].clone(), None);
        }
        let run = eval::run(self.model, &self.tokens, &patches, RunOptions::default()).unwrap();
        let logits = run.logits.unwrap();
        let rows: Vec<Tensor> = self
            .end
            .iter()
            .enumerate()
            .map(|(i, &e)| logits.get(i).unwrap().get(e).unwrap())
            .collect();
        let rows = Tensor::stack(&rows, 0).unwrap();
        let v = self
            .metric
            .per_example(&rows, &self.ds, Some(&self.clean), None)
            .unwrap();
        let m = metric::mean(&v);
        if self.metric.higher_is_better() {
            -m
        } else {
            m
        }
    }
}

/// The reference's sweep, literally. Returns the kept edges (as our [`Edge`]s) and the effect
/// measured for each tested edge.
#[allow(clippy::too_many_lines)] // the reference's sweep written out literally, as the brute force it is checked against
fn brute_force(
    prep: &Prepared,
    tau: f64,
    reverse: bool,
) -> (BTreeSet<Edge>, BTreeMap<Edge, f64>, usize) {
    let model = &prep.model;
    let cfg = &model.cfg;
    let corr = Corr::build(cfg.n_layers, cfg.n_heads, cfg.has_mlp());
    let corrupted = eval::run(
        model,
        prep.source_tokens.as_ref().unwrap_or(&prep.tokens),
        &Patches::new(),
        RunOptions::default(),
    )
    .unwrap();
    let clean = eval::run(model, &prep.tokens, &Patches::new(), RunOptions::default()).unwrap();
    let cl = clean.logits.unwrap();
    let clean_rows: Vec<Tensor> = prep
        .end
        .iter()
        .enumerate()
        .map(|(i, &e)| cl.get(i).unwrap().get(e).unwrap())
        .collect();
    let zero = prep.config.ablation == acdc::Ablation::Zero;
    let out = |u: Node| {
        let t = corrupted.sender_out(model, u).unwrap();
        if zero {
            t.zeros_like().unwrap()
        } else {
            t
        }
    };
    let mut alt = BTreeMap::new();
    alt.insert(Node::Embed, out(Node::Embed));
    for l in 0..cfg.n_layers {
        for h in 0..cfg.n_heads {
            let u = Node::Head(l, h);
            alt.insert(u, out(u));
        }
        if cfg.has_mlp() {
            alt.insert(Node::Mlp(l), out(Node::Mlp(l)));
        }
    }
    let mut b = Brute {
        model,
        tokens: prep.tokens.clone(),
        end: prep.end.clone(),
        alt,
        ds: prep.dataset.clone(),
        clean: Tensor::stack(&clean_rows, 0).unwrap(),
        metric: prep.config.metric,
        evals: 0,
    };
    // Edge state: removed edges are deleted from the dictionaries.
    let mut removed: BTreeSet<(Key, Key)> = BTreeSet::new();
    let mut effects: BTreeMap<(Key, Key), f64> = BTreeMap::new();
    let is_present = |removed: &BTreeSet<(Key, Key)>, c: &Key, p: &Key| {
        !removed.contains(&(c.clone(), p.clone()))
    };
    let order = corr.order();
    let absent_sets = |removed: &BTreeSet<(Key, Key)>, extra: Option<&(Key, Key)>| {
        let mut add = BTreeSet::new();
        let mut direct = BTreeSet::new();
        for (c, p) in removed.iter().chain(extra) {
            match corr.incoming[c] {
                Kind::Addition => {
                    add.insert((c.clone(), p.clone()));
                }
                Kind::Direct => {
                    // hook_q[h] cut from hook_q_input[h]: the head's q input is ablated.
                    direct.insert((c.0.replace("attn.hook_", "hook_") + "_input", c.1));
                }
                Kind::Placeholder => {}
            }
        }
        (add, direct)
    };
    let connected = |removed: &BTreeSet<(Key, Key)>, node: &Key| -> bool {
        corr.edges.iter().any(|(child, groups)| {
            groups.iter().any(|(pn, idx)| {
                *pn == node.0
                    && idx.iter().any(|(pi, _)| *pi == node.1)
                    && is_present(removed, child, node)
            })
        })
    };
    let mut pos = 0usize;
    loop {
        let node = order[pos].clone();
        // step()
        let (a, d) = absent_sets(&removed, None);
        let mut cur = b.metric(&a, &d);
        if let Some(groups) = corr.edges.get(&node) {
            let mut groups = groups.clone();
            if reverse {
                // --names-mode reverse --indices-mode reverse
                groups.reverse();
                for (_, idx) in &mut groups {
                    idx.reverse();
                }
            }
            for (pname, idx) in &groups {
                for (pidx, kind) in idx {
                    let parent: Key = (pname.clone(), *pidx);
                    if *kind == Kind::Placeholder || !is_present(&removed, &node, &parent) {
                        continue;
                    }
                    let e = (node.clone(), parent.clone());
                    let (a, d) = absent_sets(&removed, Some(&e));
                    let m = b.metric(&a, &d);
                    let result = m - cur;
                    effects.insert(e.clone(), result);
                    if result < tau {
                        removed.insert(e);
                        cur = m;
                    }
                }
                // The reference recomputes the metric after each group of parents.
                let (a, d) = absent_sets(&removed, None);
                let again = b.metric(&a, &d);
                assert!((again - cur).abs() < 1e-9, "recomputed metric drifts");
                cur = again;
            }
        }
        // increment_current_node()
        loop {
            pos += 1;
            if pos >= order.len() {
                break;
            }
            let n = &order[pos];
            if n.0 == "blocks.0.hook_resid_pre" || connected(&removed, n) {
                break;
            }
            // Not connected: remove every incoming edge untested.
            if let Some(groups) = corr.edges.get(n) {
                for (pname, idx) in groups {
                    for (pidx, _) in idx {
                        removed.insert((n.clone(), (pname.clone(), *pidx)));
                    }
                }
            }
        }
        if pos >= order.len() || order[pos].0 == "blocks.0.hook_resid_pre" {
            break;
        }
    }
    // Translate to our edges (counted ones only).
    let to_edge = |c: &Key, p: &Key| -> Option<Edge> {
        match corr.incoming[c] {
            Kind::Addition => Some(Edge::Add {
                sender: to_sender(p),
                receiver: to_receiver(c, cfg.n_layers),
            }),
            Kind::Direct => {
                let Receiver::Head(l, h, x) = to_receiver(c, cfg.n_layers) else {
                    unreachable!()
                };
                Some(Edge::Qkv {
                    layer: l,
                    head: h,
                    qkv: x,
                })
            }
            Kind::Placeholder => None,
        }
    };
    let mut kept = BTreeSet::new();
    for (child, groups) in &corr.edges {
        for (pname, idx) in groups {
            for (pidx, _) in idx {
                let p: Key = (pname.clone(), *pidx);
                if is_present(&removed, child, &p) {
                    if let Some(e) = to_edge(child, &p) {
                        kept.insert(e);
                    }
                }
            }
        }
    }
    let eff = effects
        .iter()
        .filter_map(|((c, p), v)| to_edge(c, p).map(|e| (e, *v)))
        .collect();
    (kept, eff, b.evals)
}

fn library_sweep(prep: &Prepared) -> (Sweep, SweepState) {
    let sweep = prep.sweep();
    let mut ev = prep.evaluator().unwrap();
    let mut s = sweep.initial_state();
    while !sweep.done(&s) {
        sweep.step(&mut s, &mut ev, &mut |_| {}).unwrap();
    }
    (sweep, s)
}

fn compare(tau: f64, metric: Metric, reverse: bool, ablation: acdc::Ablation) {
    let mut c = config(tau, metric);
    if reverse {
        c.order = acdc::Order::Reverse;
    }
    c.ablation = ablation;
    let prep = Prepared::new(&c).unwrap();
    let (sweep, s) = library_sweep(&prep);
    let (kept, effects, _) = brute_force(&prep, tau, reverse);
    let acdc::Units::Edges(g) = &sweep.units else {
        unreachable!()
    };
    let ours: BTreeSet<Edge> = g
        .edges()
        .iter()
        .enumerate()
        .filter(|(i, _)| s.present[*i])
        .map(|(_, e)| *e)
        .collect();
    assert_eq!(ours, kept, "kept edges differ at tau {tau} ({metric})");
    // Every edge the reference tested, we tested, with the same effect.
    let mut tested = 0;
    for (i, e) in g.edges().iter().enumerate() {
        match (effects.get(e), s.effect[i]) {
            (Some(a), Some(b)) => {
                tested += 1;
                assert!((a - b).abs() < 1e-9, "{e}: effect {a} vs {b}");
            }
            (None, None) => {}
            (a, b) => panic!("{e}: tested by one side only ({a:?} vs {b:?})"),
        }
    }
    // The run must be informative: some edges kept, some removed after a test.
    assert!(tested > 20, "only {tested} edges tested");
    assert!(
        ours.len() > 3 && ours.len() < g.len() / 2,
        "{} kept",
        ours.len()
    );
}

#[test]
fn sweep_matches_brute_force_kl() {
    compare(0.01, Metric::Kl, false, acdc::Ablation::Corrupted);
}

#[test]
fn sweep_matches_brute_force_nll() {
    compare(0.02, Metric::Nll, false, acdc::Ablation::Corrupted);
}

#[test]
fn sweep_matches_brute_force_reverse_order() {
    compare(0.01, Metric::Kl, true, acdc::Ablation::Corrupted);
}

#[test]
fn sweep_matches_brute_force_zero_ablation() {
    compare(0.05, Metric::Kl, false, acdc::Ablation::Zero);
}

/// A head's dropped q input reads exactly the corrupted run's residual stream.
#[test]
#[allow(clippy::too_many_lines)] // one test scenario: its steps and assertions read in order
fn dropped_qkv_edge_is_the_corrupted_residual() {
    let prep = Prepared::new(&config(0.01, Metric::Kl)).unwrap();
    let model = &prep.model;
    let corrupted = eval::run(
        model,
        prep.source_tokens.as_ref().unwrap(),
        &Patches::new(),
        RunOptions::default(),
    )
    .unwrap();
    struct Replace {
        name: String,
        head: usize,
        value: Tensor,
    }
    impl Hook for Replace {
        fn wants(&self, name: &str) -> bool {
            name == self.name
        }
        fn visit(&mut self, _: &str, act: Tensor) -> circuitscope::Result<Tensor> {
            let mut heads = vec![];
            for h in 0..act.dim(2)? {
                heads.push(if h == self.head {
                    self.value.clone()
                } else {
                    act.narrow(2, h, 1)?.squeeze(2)?
                });
            }
            Ok(Tensor::stack(&heads, 2)?)
        }
    }
    let sweep = prep.sweep();
    let acdc::Units::Edges(g) = &sweep.units else {
        unreachable!()
    };
    let mut ev = prep.evaluator().unwrap();
    for (l, h, x) in [(1, 2, Qkv::Q), (2, 0, Qkv::K), (0, 3, Qkv::V)] {
        let mut hook = Replace {
            name: format!("blocks.{l}.hook_{}_input", x.letter()),
            head: h,
            value: corrupted.resid[l].clone(),
        };
        let run = eval::run(
            model,
            &prep.tokens,
            &Patches::new(),
            RunOptions {
                logits: LogitsAt::Rows(prep.end.clone()),
                hook: Some(&mut hook),
                ..Default::default()
            },
        )
        .unwrap();
        let want = run.logits.unwrap();
        let mut present = vec![true; g.len()];
        present[g.qkv_id(l, h, x).unwrap()] = false;
        let got = ev.logits(&present).unwrap();
        let d = (want - got)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d < 1e-10, "a{l}.h{h}.{}: max diff {d}", x.letter());
    }
    // With every edge removed, the model computes the corrupted logits.
    let present = vec![false; g.len()];
    let got = ev.logits(&present).unwrap();
    let c = eval::run(
        model,
        prep.source_tokens.as_ref().unwrap(),
        &Patches::new(),
        RunOptions {
            logits: LogitsAt::Rows(prep.end.clone()),
            ..Default::default()
        },
    )
    .unwrap()
    .logits
    .unwrap();
    let d = (c - got)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(
        d < 1e-10,
        "all edges removed: max diff to the corrupted logits {d}"
    );
}

/// The fast evaluator and the naive one agree on random circuits.
#[test]
fn fast_and_naive_agree_on_random_circuits() {
    use rand::{Rng, SeedableRng};
    let prep = Prepared::new(&config(0.01, Metric::Kl)).unwrap();
    let sweep = prep.sweep();
    let mut fast = prep.evaluator().unwrap();
    let mut naive = prep.evaluator().unwrap();
    naive.naive = true;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    use circuitscope::acdc::Oracle;
    for p_keep in [0.95, 0.6, 0.2, 0.02] {
        let present: Vec<bool> = (0..sweep.units.len())
            .map(|_| rng.random::<f64>() < p_keep)
            .collect();
        let a = fast.metric(&present).unwrap();
        let b = naive.metric(&present).unwrap();
        assert!((a - b).abs() < 1e-10 * (1.0 + a.abs()), "{a} vs {b}");
        assert!(a > 0.0);
    }
}

/// Circuits evaluated together (speculative batching) give the metrics they give one by one,
/// and a batched sweep finds the same circuit.
#[test]
fn batched_evaluation_matches_one_by_one() {
    use circuitscope::acdc::Oracle;
    use rand::{Rng, SeedableRng};
    let prep = Prepared::new(&config(0.01, Metric::Kl)).unwrap();
    let sweep = prep.sweep();
    let mut ev = prep.evaluator().unwrap();
    let mut naive = prep.evaluator().unwrap();
    naive.naive = true;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for p_keep in [0.9, 0.3] {
        let present: Vec<bool> = (0..sweep.units.len())
            .map(|_| rng.random::<f64>() < p_keep)
            .collect();
        let drop: Vec<usize> = (0..sweep.units.len())
            .filter(|&i| present[i])
            .take(5)
            .collect();
        let batched = ev.metrics_dropping(&present, &drop).unwrap();
        let batched_naive = naive.metrics_dropping(&present, &drop).unwrap();
        let mut p = present.clone();
        for (j, &d) in drop.iter().enumerate() {
            p[d] = false;
            let one = ev.metric(&p).unwrap();
            assert!((one - batched[j]).abs() < 1e-12, "{one} vs {}", batched[j]);
            assert!(
                (one - batched_naive[j]).abs() < 1e-10,
                "{one} vs {}",
                batched_naive[j]
            );
        }
    }
    let (_, s1) = library_sweep(&prep);
    let mut c = config(0.01, Metric::Kl);
    c.batch = 4;
    let prep4 = Prepared::new(&c).unwrap();
    let (_, s4) = library_sweep(&prep4);
    assert_eq!(s1.present, s4.present);
    for (a, b) in s1.effect.iter().zip(&s4.effect) {
        match (a, b) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12),
            (None, None) => {}
            _ => panic!("tested on one side only"),
        }
    }
}

/// Dropping a node ablates every edge out of it.
#[test]
fn node_level_drop_is_every_outgoing_edge() {
    use circuitscope::acdc::Oracle;
    let prep_e = Prepared::new(&config(0.01, Metric::Kl)).unwrap();
    let mut c = config(0.01, Metric::Kl);
    c.level = acdc::Level::Nodes;
    let prep_n = Prepared::new(&c).unwrap();
    let (se, sn) = (prep_e.sweep(), prep_n.sweep());
    let acdc::Units::Edges(g) = &se.units else {
        unreachable!()
    };
    let acdc::Units::Nodes(nodes) = &sn.units else {
        unreachable!()
    };
    assert_eq!(nodes.len(), 3 * 4 + 3);
    let mut ee = prep_e.evaluator().unwrap();
    let mut en = prep_n.evaluator().unwrap();
    for (i, u) in nodes.iter().enumerate().step_by(4) {
        let mut pn = vec![true; nodes.len()];
        pn[i] = false;
        let pe: Vec<bool> = g
            .edges()
            .iter()
            .map(|e| !matches!(e, Edge::Add { sender, .. } if sender == u))
            .collect();
        let a = en.metric(&pn).unwrap();
        let b = ee.metric(&pe).unwrap();
        assert!((a - b).abs() < 1e-12, "{u}: {a} vs {b}");
        assert!(a > 1e-6, "{u}: dropping it changes nothing?");
    }
}

/// Components whose output is exactly constant (a head with W_O = 0, an MLP with W_out = 0)
/// have no effect: every edge out of them is removed, with a measured effect of zero.
#[test]
fn dead_components_leave_the_circuit() {
    use circuitscope::model::BlockWeights;
    use circuitscope::tokenizer::Tokenizer;
    let c = config(0.001, Metric::Kl);
    let mut model = Model::load(std::path::Path::new(&c.model), DType::F64).unwrap();
    let dead_heads = [(0usize, 1usize), (1, 3), (2, 0)];
    let dead_mlp = 1usize;
    for l in 0..model.cfg.n_layers {
        let b = &model.w.blocks[l];
        let mut w_o = b.w_o.clone();
        for &(dl, h) in &dead_heads {
            if dl == l {
                let z = w_o.narrow(0, h, 1).unwrap().zeros_like().unwrap();
                w_o = w_o
                    .slice_assign(
                        &[h..h + 1, 0..w_o.dim(1).unwrap(), 0..w_o.dim(2).unwrap()],
                        &z,
                    )
                    .unwrap();
            }
        }
        let w_out = if l == dead_mlp {
            b.w_out.as_ref().map(|w| w.zeros_like().unwrap())
        } else {
            b.w_out.clone()
        };
        model.w.blocks[l] = BlockWeights::new(
            [b.ln1_w.clone(), b.ln1_b.clone()],
            [b.ln2_w.clone(), b.ln2_b.clone()],
            [b.w_q().unwrap(), b.w_k().unwrap(), b.w_v().unwrap()],
            [b.b_q.clone(), b.b_k.clone(), b.b_v.clone()],
            w_o,
            b.b_o.clone(),
            [b.w_in.clone(), b.b_in.clone(), w_out, b.b_out.clone()],
        )
        .unwrap();
    }
    let tok = Tokenizer::from_model_dir(std::path::Path::new(&c.model)).unwrap();
    let ds = c.task_with_n().build(&tok).unwrap();
    let prep = Prepared::from_parts(&c, model, ds).unwrap();
    let (sweep, s) = library_sweep(&prep);
    let acdc::Units::Edges(g) = &sweep.units else {
        unreachable!()
    };
    let dead = |u: &Node| match u {
        Node::Head(l, h) => dead_heads.contains(&(*l, *h)),
        Node::Mlp(l) => *l == dead_mlp,
        Node::Embed => false,
    };
    let mut tested_dead = 0;
    for (i, e) in g.edges().iter().enumerate() {
        if let Edge::Add { sender, .. } = e {
            if dead(sender) {
                assert!(!s.present[i], "{e} kept");
                if let Some(x) = s.effect[i] {
                    tested_dead += 1;
                    assert!(x.abs() < 1e-12, "{e}: effect {x}");
                }
            }
        }
    }
    assert!(
        tested_dead >= 3,
        "only {tested_dead} edges from dead components tested"
    );
    // The live part still has a circuit.
    assert!(s.present.iter().filter(|p| **p).count() > 5);
}
