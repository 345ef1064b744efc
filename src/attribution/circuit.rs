//! Circuits from edge scores: the top-k edges by |score|, or every edge with |score| above a
//! threshold, then the dangling edges pruned as the reference pruners do (EAP-IG's
//! `Graph.prune`, MIB): an edge whose receiver's component reaches the logits through no kept
//! edge, or whose sender is reached from the embedding through no kept edge, is dropped, until
//! nothing changes. With the q/k/v split a head's input counts only when its q/k/v edge is
//! kept, and a q/k/v edge only when some kept edge enters that input.

use crate::error::{Error, Result};
use crate::graph::{Edge, EdgeGraph, Node, Receiver};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How a circuit is chosen from scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Selection {
    /// The `k` edges of largest |score| (ties: graph order).
    TopK(usize),
    /// Every edge with |score| ≥ the threshold.
    Threshold(f64),
}

/// Edge numbers sorted by |score|, largest first; ties keep graph order.
pub fn ranking(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].abs().total_cmp(&scores[a].abs()).then(a.cmp(&b)));
    idx
}

/// The edges a selection keeps, before pruning.
pub fn select(scores: &[f64], sel: Selection) -> Result<Vec<bool>> {
    let n = scores.len();
    let mut present = vec![false; n];
    match sel {
        Selection::TopK(k) => {
            if k > n {
                return Err(Error::input(format!(
                    "top-k {k} is larger than the graph's {n} edges; use k ≤ {n}"
                )));
            }
            for &i in ranking(scores).iter().take(k) {
                present[i] = true;
            }
        }
        Selection::Threshold(t) => {
            for (i, s) in scores.iter().enumerate() {
                present[i] = s.abs() >= t;
            }
        }
    }
    Ok(present)
}

fn component(r: &Receiver) -> Option<Node> {
    match *r {
        Receiver::Logits => None,
        Receiver::Mlp(l) => Some(Node::Mlp(l)),
        Receiver::Head(l, h, _) => Some(Node::Head(l, h)),
    }
}

/// Drop dangling edges until none is left (in place). Returns how many were dropped.
pub fn prune(graph: &EdgeGraph, present: &mut [bool]) -> usize {
    let split = graph.options.split_qkv;
    let mut dropped = 0;
    loop {
        // Which inputs are open (their q/k/v edge kept), which nodes have kept outputs and
        // kept (open) inputs.
        let mut open: BTreeSet<Receiver> = BTreeSet::new();
        let mut fed_inputs: BTreeSet<Receiver> = BTreeSet::new();
        let mut has_out: BTreeSet<Node> = BTreeSet::new();
        for (i, e) in graph.edges().iter().enumerate() {
            if !present[i] {
                continue;
            }
            match *e {
                Edge::Qkv { layer, head, qkv } => {
                    open.insert(Receiver::Head(layer, head, qkv));
                }
                Edge::Add { sender, receiver } => {
                    has_out.insert(sender);
                    fed_inputs.insert(receiver);
                }
            }
        }
        let is_open = |r: &Receiver| !split || !matches!(r, Receiver::Head(..)) || open.contains(r);
        let mut has_in: BTreeSet<Node> = BTreeSet::new();
        for r in &fed_inputs {
            if is_open(r) {
                if let Some(n) = component(r) {
                    has_in.insert(n);
                }
            }
        }
        let mut changed = false;
        for (i, e) in graph.edges().iter().enumerate() {
            if !present[i] {
                continue;
            }
            let keep = match *e {
                Edge::Add { sender, receiver } => {
                    let sender_ok = sender == Node::Embed || has_in.contains(&sender);
                    let receiver_ok = is_open(&receiver)
                        && component(&receiver).is_none_or(|n| has_out.contains(&n));
                    sender_ok && receiver_ok
                }
                Edge::Qkv { layer, head, qkv } => {
                    fed_inputs.contains(&Receiver::Head(layer, head, qkv))
                        && has_out.contains(&Node::Head(layer, head))
                }
            };
            if !keep {
                present[i] = false;
                dropped += 1;
                changed = true;
            }
        }
        if !changed {
            return dropped;
        }
    }
}

/// Select and prune: the circuit of a selection.
pub fn circuit(graph: &EdgeGraph, scores: &[f64], sel: Selection) -> Result<Vec<bool>> {
    let mut present = select(scores, sel)?;
    prune(graph, &mut present);
    Ok(present)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{GraphOptions, Qkv};
    use crate::model::{random, ModelConfig};

    fn cfg() -> ModelConfig {
        let mut c = random::gpt2_config(2, 8, 2, 12);
        c.d_mlp = 0;
        c
    }

    #[test]
    fn dangling_edges_go_and_chains_stay() {
        let c = cfg();
        let g = EdgeGraph::new(&c, GraphOptions { split_qkv: true });
        let id = |s: &str| g.id(&Edge::parse(s, &c).unwrap()).unwrap();
        let mut p = vec![false; g.len()];
        // A chain embed → a0.h0.v → a0.h0 → a1.h1.q → a1.h1 → logits.
        for s in [
            "embed -> a0.h0.v",
            "a0.h0.v -> a0.h0",
            "a0.h0 -> a1.h1.q",
            "a1.h1.q -> a1.h1",
            "a1.h1 -> logits",
        ] {
            p[id(s)] = true;
        }
        // Dangling: a1.h0 feeds the logits but nothing feeds it; a0.h1's input is fed and open
        // but a0.h1 feeds nothing; an edge into a closed input (no q/k/v edge).
        for s in [
            "a1.h0 -> logits",
            "embed -> a0.h1.k",
            "a0.h1.k -> a0.h1",
            "embed -> a1.h1.k",
        ] {
            p[id(s)] = true;
        }
        let dropped = prune(&g, &mut p);
        assert_eq!(dropped, 4);
        let kept: Vec<String> = (0..g.len())
            .filter(|&i| p[i])
            .map(|i| g.edge(i).to_string())
            .collect();
        assert_eq!(kept.len(), 5, "{kept:?}");
        assert!(p[id("a1.h1.q -> a1.h1")]);
        let _ = Qkv::Q;
    }

    #[test]
    fn top_k_and_threshold() {
        let s = [0.1, -3.0, 2.0, 0.0, 2.0];
        assert_eq!(ranking(&s), vec![1, 2, 4, 0, 3]);
        assert_eq!(
            select(&s, Selection::TopK(2)).unwrap(),
            vec![false, true, true, false, false]
        );
        assert_eq!(
            select(&s, Selection::Threshold(2.0)).unwrap(),
            vec![false, true, true, false, true]
        );
        let err = select(&s, Selection::TopK(6)).unwrap_err().to_string();
        assert!(err.contains("larger than the graph's 5 edges"), "{err}");
    }
}
