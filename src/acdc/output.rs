//! What a run leaves in `--out DIR`: `circuit.json`, `circuit.dot`, `circuit.svg`.
//!
//! Everything in `circuit.json` is a function of the config, the hashes and the sweep state —
//! no times, no paths — so an interrupted and resumed run writes the same bytes as an
//! uninterrupted one.

use super::checkpoint::RunIdentity;
use super::config::Config;
use super::sweep::{Sweep, SweepState, Units};
use crate::graph::{Edge, Node, Qkv, Receiver};
use crate::report::dot::{Diagram, DiagramEdge, DiagramNode, NodeKind};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The format tag of `circuit.json`.
pub const CIRCUIT_FORMAT: &str = "circuitscope-acdc-circuit/1";

/// Diagrams with more edges than this show the largest effects only.
pub const MAX_DIAGRAM_EDGES: usize = 400;

/// `(sender, receiver)` names of an edge as `circuit.json` writes them: a q/k/v edge goes from
/// the head's input (`a1.h2.q`) to the head (`a1.h2`).
pub fn edge_ends(e: &Edge) -> (String, String) {
    match *e {
        Edge::Add { sender, receiver } => (sender.to_string(), receiver.to_string()),
        Edge::Qkv { layer, head, qkv } => (
            format!("a{layer}.h{head}.{}", qkv.letter()),
            format!("a{layer}.h{head}"),
        ),
    }
}

fn receiver_node(r: &Receiver) -> (String, NodeKind) {
    match r {
        Receiver::Logits => ("logits".into(), NodeKind::Logits),
        Receiver::Mlp(l) => (format!("m{l}"), NodeKind::Mlp),
        Receiver::Head(l, h, x) => (
            format!("a{l}.h{h}.{}", x.letter()),
            match x {
                Qkv::Q => NodeKind::QInput,
                Qkv::K => NodeKind::KInput,
                Qkv::V => NodeKind::VInput,
            },
        ),
    }
}

fn sender_kind(n: &Node) -> NodeKind {
    match n {
        Node::Embed => NodeKind::Embed,
        Node::Head(..) => NodeKind::Head,
        Node::Mlp(_) => NodeKind::Mlp,
    }
}

/// Counts of a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Units in the graph.
    pub total: usize,
    /// Units still present.
    pub kept: usize,
    /// Units tested.
    pub tested: usize,
    /// Units removed without a test.
    pub removed_untested: usize,
}

impl Counts {
    /// Count a state.
    pub fn of(s: &SweepState) -> Counts {
        let total = s.present.len();
        let kept = s.present.iter().filter(|p| **p).count();
        let tested = s.effect.iter().filter(|e| e.is_some()).count();
        let removed_untested = s
            .present
            .iter()
            .zip(&s.effect)
            .filter(|(p, e)| !**p && e.is_none())
            .count();
        Counts {
            total,
            kept,
            tested,
            removed_untested,
        }
    }

    /// Units decided (tested, or removed untested).
    pub fn decided(&self) -> usize {
        self.tested + self.removed_untested
    }
}

/// `circuit.json` of a state.
pub fn circuit_json(
    config: &Config,
    id: &RunIdentity,
    sweep: &Sweep,
    s: &SweepState,
    clean_metric: f64,
) -> Value {
    let c = Counts::of(s);
    let finished = sweep.done(s);
    let unit_entry = |i: usize| -> Value {
        let mut v = json!({ "name": sweep.units.name(i), "effect": s.effect[i] });
        if let Units::Edges(g) = &sweep.units {
            let (sender, receiver) = edge_ends(&g.edge(i));
            v["sender"] = json!(sender);
            v["receiver"] = json!(receiver);
        }
        v
    };
    let kept: Vec<Value> = (0..c.total)
        .filter(|&i| s.present[i])
        .map(unit_entry)
        .collect();
    let removed: Vec<Value> = (0..c.total)
        .filter(|&i| !s.present[i])
        .map(unit_entry)
        .collect();
    let mut out = json!({
        "format": CIRCUIT_FORMAT,
        "version": crate::version(),
        "model": config.model,
        "config": config,
        "identity": id,
        "level": config.level,
        "split_qkv": config.split_qkv,
        "metric": config.metric.cli_name(),
        "minimised": if config.metric.higher_is_better() {
            format!("-{}", config.metric.cli_name())
        } else {
            config.metric.cli_name().to_string()
        },
        "tau": config.tau,
        "finished": finished,
        "steps_done": s.next_step,
        "steps_total": sweep.steps.len(),
        "evaluations": s.evaluations,
        "clean_metric": clean_metric,
        "current_metric": s.cur_metric,
        "counts": {
            "total": c.total,
            "kept": c.kept,
            "removed": c.total - c.kept,
            "tested": c.tested,
            "removed_untested": c.removed_untested,
            "undecided": c.total - c.decided(),
        },
    });
    let key = match sweep.units {
        Units::Edges(_) => "edges",
        Units::Nodes(_) => "nodes",
    };
    out[key] = json!(kept);
    out[format!("removed_{key}")] = json!(removed);
    if let Units::Nodes(_) = sweep.units {
        let edges: Vec<String> = sweep
            .kept_edges(s)
            .iter()
            .map(|(e, _)| e.to_string())
            .collect();
        out["edges_between_kept_nodes"] = json!(edges);
    }
    out
}

/// Keep the [`MAX_DIAGRAM_EDGES`] edges of largest |effect| (no effect counts as 0; ties keep
/// their order). Returns how many there were when some were dropped.
pub fn keep_largest(drawn: &mut Vec<(Edge, Option<f64>)>) -> Option<usize> {
    let all = drawn.len();
    if all <= MAX_DIAGRAM_EDGES {
        return None;
    }
    drawn.sort_by(|a, b| {
        let x = a.1.map_or(0.0, f64::abs);
        let y = b.1.map_or(0.0, f64::abs);
        y.total_cmp(&x)
    });
    drawn.truncate(MAX_DIAGRAM_EDGES);
    Some(all)
}

/// The nodes and edges of a diagram of `drawn` edges (with their effects): q/k/v input nodes
/// between senders and heads, and a dashed link from each input to its head where that q/k/v
/// edge is not drawn itself.
pub fn diagram_parts(drawn: &[(Edge, Option<f64>)]) -> (Vec<DiagramNode>, Vec<DiagramEdge>) {
    let mut nodes: Vec<DiagramNode> = vec![];
    let mut seen = BTreeSet::new();
    let mut add_node = |id: String, kind: NodeKind, nodes: &mut Vec<DiagramNode>| {
        if seen.insert(id.clone()) {
            nodes.push(DiagramNode { id, kind });
        }
    };
    let mut edges = vec![];
    let mut head_links = BTreeSet::new();
    for (e, eff) in drawn {
        match *e {
            Edge::Add { sender, receiver } => {
                add_node(sender.to_string(), sender_kind(&sender), &mut nodes);
                let (rid, rkind) = receiver_node(&receiver);
                add_node(rid.clone(), rkind, &mut nodes);
                edges.push(DiagramEdge {
                    from: sender.to_string(),
                    to: rid,
                    effect: *eff,
                    dashed: false,
                });
                if let Receiver::Head(l, h, x) = receiver {
                    head_links.insert((l, h, x));
                }
            }
            Edge::Qkv { layer, head, qkv } => {
                let (rid, rkind) = receiver_node(&Receiver::Head(layer, head, qkv));
                add_node(rid.clone(), rkind, &mut nodes);
                let hid = format!("a{layer}.h{head}");
                add_node(hid.clone(), NodeKind::Head, &mut nodes);
                edges.push(DiagramEdge {
                    from: rid,
                    to: hid,
                    effect: *eff,
                    dashed: false,
                });
            }
        }
    }
    // Without counted q/k/v edges (or with them not drawn), link each input to its head.
    for (l, h, x) in head_links {
        let q = Edge::Qkv {
            layer: l,
            head: h,
            qkv: x,
        };
        if drawn.iter().any(|(e, _)| *e == q) {
            continue;
        }
        let (rid, _) = receiver_node(&Receiver::Head(l, h, x));
        let hid = format!("a{l}.h{h}");
        add_node(hid.clone(), NodeKind::Head, &mut nodes);
        edges.push(DiagramEdge {
            from: rid,
            to: hid,
            effect: None,
            dashed: true,
        });
    }
    (nodes, edges)
}

/// The diagram of a state: edges kept after their test (while the run goes on, untested edges
/// are not drawn), with q/k/v input nodes between senders and heads.
pub fn diagram(config: &Config, sweep: &Sweep, s: &SweepState) -> Diagram {
    let finished = sweep.done(s);
    let c = Counts::of(s);
    let mut drawn: Vec<(Edge, Option<f64>)> = match &sweep.units {
        Units::Edges(g) => (0..c.total)
            .filter(|&i| s.present[i] && (finished || s.effect[i].is_some()))
            .map(|i| (g.edge(i), s.effect[i]))
            .collect(),
        Units::Nodes(_) => sweep
            .kept_edges(s)
            .into_iter()
            .map(|(e, i)| {
                let eff = if i == usize::MAX { None } else { s.effect[i] };
                (e, eff)
            })
            .collect(),
    };
    let note = keep_largest(&mut drawn)
        .map(|all| format!(", drawing the {MAX_DIAGRAM_EDGES} largest of {all}"))
        .unwrap_or_default();
    let (nodes, edges) = diagram_parts(&drawn);
    let status = if finished {
        "finished".to_string()
    } else {
        format!("in progress: {} of {} decided", c.decided(), c.total)
    };
    let what = match sweep.units {
        Units::Edges(_) => "edges",
        Units::Nodes(_) => "nodes",
    };
    Diagram {
        title: format!(
            "ACDC {} on {}: {} {what} kept, tau = {}, metric {} ({status}{note})",
            config.task.name(),
            config.model,
            c.kept,
            config.tau,
            config.metric.cli_name(),
        ),
        nodes,
        edges,
    }
}

/// `circuit.json` as plain lines for golden-file comparisons (`acdc --show DIR`): the kept
/// units (`edge …` or `node …`) in graph order, counts, the hash of the model's files, and
/// `metric NAME VALUE` lines.
/// Everything but the metric lines must match exactly; metrics to a tolerance.
pub fn summary_text(circuit: &Value) -> String {
    let mut s = String::new();
    let num = |v: &Value| {
        v.as_f64()
            .map_or("none".to_string(), |x| format!("{x:.12e}"))
    };
    s.push_str(&format!(
        "acdc {} {} tau {} metric {} level {} finished {}\n",
        circuit["model"].as_str().unwrap_or(""),
        circuit["config"]["task"]
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default(),
        circuit["tau"],
        circuit["metric"].as_str().unwrap_or(""),
        circuit["level"].as_str().unwrap_or(""),
        circuit["finished"]
    ));
    s.push_str(&format!(
        "model-files-sha256 {}\n",
        circuit["identity"]["model_hash"].as_str().unwrap_or("")
    ));
    for k in ["total", "kept", "tested", "removed_untested"] {
        s.push_str(&format!("count {k} {}\n", circuit["counts"][k]));
    }
    let (key, word) = if circuit.get("nodes").is_some() {
        ("nodes", "node")
    } else {
        ("edges", "edge")
    };
    if let Some(list) = circuit[key].as_array() {
        for e in list {
            s.push_str(&format!("{word} {}\n", e["name"].as_str().unwrap_or("")));
        }
    }
    s.push_str(&format!("metric clean {}\n", num(&circuit["clean_metric"])));
    s.push_str(&format!(
        "metric current {}\n",
        num(&circuit["current_metric"])
    ));
    if let Some(list) = circuit[key].as_array() {
        for e in list {
            s.push_str(&format!(
                "metric effect[{}] {}\n",
                e["name"].as_str().unwrap_or("").replace(' ', ""),
                num(&e["effect"])
            ));
        }
    }
    s
}
