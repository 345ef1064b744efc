//! The circuit of a causal-scrubbing hypothesis: the edges of the paths it keeps, on ACDC's
//! edge graph, so that its faithfulness can be compared with any other circuit's.
//!
//! Every path from the logits down to the embedding is owned by one interpretation node
//! ([`PathState`], the automaton scrubbing itself runs) and reads that node's data: a leaf's
//! own rows, a non-leaf's other-inputs rows. A path is *kept* when that data is not drawn
//! unconditionally: the owner's rows (and every ancestor's) are drawn by a sampler other than
//! `Uncond`, and, for a non-leaf owner, so are its other inputs. `Exact`, `Same(…)` and
//! `Fixed(…)` all keep a path: the hypothesis says what the path may carry. An edge belongs to
//! the circuit when some kept path takes it; with the q/k/v split, a head input's q/k/v edge
//! belongs when some kept path enters the head through that input. Positions named by
//! matchers (`at`) split a path into the states its positions lead to; an edge is kept when it
//! is kept at some position.

use crate::error::Result;
use crate::graph::edges::{graph_receiver, inputs_of, senders};
use crate::graph::{EdgeGraph, Node, Receiver};
use crate::model::ModelConfig;
use crate::scrub::hypothesis::{Hypothesis, SamplerSpec};
use crate::scrub::path_state::PathState;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Per node, whether a path it owns reads data the hypothesis specifies (see the module
/// documentation).
fn kept_owners(h: &Hypothesis) -> Vec<bool> {
    let mut informed = vec![false; h.nodes.len()];
    // Nodes are in depth-first pre-order: a parent comes before its children.
    for (i, n) in h.nodes.iter().enumerate() {
        let parent_ok = n.parent.is_none_or(|p| informed[p]);
        informed[i] = parent_ok && n.sampler != SamplerSpec::Uncond;
    }
    h.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| informed[i] && (n.is_leaf() || n.other_inputs != SamplerSpec::Uncond))
        .collect()
}

struct Walk<'a> {
    h: &'a Hypothesis,
    cfg: &'a ModelConfig,
    n: usize,
    pos: usize,
    owner_kept: Vec<bool>,
    /// Whether a sender reached in a state has a kept path below it.
    memo: BTreeMap<(Node, PathState), bool>,
}

impl Walk<'_> {
    /// Whether some path from `u` (reached in `state`) down to the embedding is kept.
    fn completes(&mut self, u: Node, state: &PathState) -> Result<bool> {
        if u == Node::Embed || state.is_dead() {
            // Nothing below can change the owner any more.
            return Ok(self.owner_kept[state.owner]);
        }
        let key = (u, state.clone());
        if let Some(&k) = self.memo.get(&key) {
            return Ok(k);
        }
        let mut kept = false;
        'inputs: for r in inputs_of(Some(u)) {
            for w in senders(&r, self.cfg) {
                for (next, _) in state.step_at_positions(self.h, r, w, self.n, self.pos)? {
                    if self.completes(w, &next)? {
                        kept = true;
                        break 'inputs;
                    }
                }
            }
        }
        self.memo.insert(key, kept);
        Ok(kept)
    }
}

/// The edges of `graph` on the paths `h` keeps (`present` over the graph's edges). `n` rows of
/// `pos` positions: the dataset the hypothesis was resolved against.
pub fn kept_edges(
    h: &Hypothesis,
    graph: &EdgeGraph,
    cfg: &ModelConfig,
    n: usize,
    pos: usize,
) -> Result<Vec<bool>> {
    let mut walk = Walk {
        h,
        cfg,
        n,
        pos,
        owner_kept: kept_owners(h),
        memo: BTreeMap::new(),
    };
    let mut present = vec![false; graph.len()];
    let root = PathState::root(h);
    let mut seen: BTreeSet<(Option<Node>, PathState)> = BTreeSet::from([(None, root.clone())]);
    let mut queue = VecDeque::from([(None, root)]);
    while let Some((comp, state)) = queue.pop_front() {
        for r in inputs_of(comp) {
            let gr = graph_receiver(r, cfg);
            for u in senders(&r, cfg) {
                for (next, _) in state.step_at_positions(h, r, u, n, pos)? {
                    if !walk.completes(u, &next)? {
                        continue;
                    }
                    if let Some(e) = graph.add_id(u, gr) {
                        present[e] = true;
                    }
                    if let Receiver::Head(l, hd, x) = gr {
                        if let Some(e) = graph.qkv_id(l, hd, x) {
                            present[e] = true;
                        }
                    }
                    let item = (Some(u), next);
                    if u != Node::Embed && !seen.contains(&item) {
                        seen.insert(item.clone());
                        queue.push_back(item);
                    }
                }
            }
        }
    }
    Ok(present)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Edge, GraphOptions};
    use crate::scrub::experiment::prepare;
    use std::path::Path;

    fn kept(file: &str, split_qkv: bool) -> (EdgeGraph, ModelConfig, Vec<String>) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let h = prepare(&p, None).unwrap();
        let g = EdgeGraph::new(&h.cfg, GraphOptions { split_qkv });
        let present = kept_edges(
            &h.hypothesis,
            &g,
            &h.cfg,
            h.dataset.len(),
            h.dataset.max_len(),
        )
        .unwrap();
        let names = (0..g.len())
            .filter(|&i| present[i])
            .map(|i| g.edge(i).to_string())
            .collect();
        (g, h.cfg, names)
    }

    #[test]
    fn induction_refined_keeps_its_paths() {
        let (_, _, mut names) = kept("hypotheses/toy/induction-refined.ron", true);
        names.sort();
        // The direct path, the induction head's output, its q (embedding), k (previous-token
        // head, whose v reads the embedding) and v (embedding) paths. The previous-token head's
        // q and k inputs are under "key", whose other inputs are resampled.
        let mut want = vec![
            "embed -> logits",
            "a1.h0 -> logits",
            "a1.h0.q -> a1.h0",
            "embed -> a1.h0.q",
            "a1.h0.k -> a1.h0",
            "a0.h0 -> a1.h0.k",
            "a1.h0.v -> a1.h0",
            "embed -> a1.h0.v",
            "a0.h0.v -> a0.h0",
            "embed -> a0.h0.v",
        ];
        want.sort();
        assert_eq!(names, want);
    }

    #[test]
    fn name_movers_keep_everything_under_them() {
        let (g, cfg, names) = kept("hypotheses/toy/ioi-name-movers.ron", false);
        let has = |s: &str| {
            let e = Edge::parse(s, &cfg).unwrap();
            assert!(g.id(&e).is_some(), "{s} is not an edge");
            names.contains(&e.to_string())
        };
        for s in ["a1.h0 -> logits", "a1.h3 -> logits", "a0.h2 -> a1.h1.k"] {
            assert!(has(s), "{s} should be kept: {names:?}");
        }
        assert!(has("embed -> a0.h0.q") && has("m0 -> a1.h2.v"));
        // Only the name movers' direct paths into the logits are kept; the last MLP feeds only
        // the logits.
        for s in [
            "embed -> logits",
            "a0.h1 -> logits",
            "m1 -> logits",
            "a1.h0 -> m1",
        ] {
            assert!(!has(s), "{s} should not be kept");
        }
    }
}
