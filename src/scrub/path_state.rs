//! Which interpretation node owns a path: a small automaton stepped edge by edge from the
//! output towards the inputs.
//!
//! A path runs from the logits through receivers and senders down to the embedding. Its owner
//! is the interpretation node that comes last in depth-first order among those whose matcher
//! matches a prefix of it (a child always comes after its parent, so the deepest node wins —
//! Redwood's "in tree order, later nodes replace the inputs under their paths"). The state
//! after a prefix is that owner plus the matchers still able to match further down.

use super::hypothesis::Hypothesis;
use crate::error::{Error, Result};
use crate::graph::{Node, Receiver};
use std::collections::BTreeMap;

/// How far a matcher has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// At its parent's matched component: the next edge is its first (`via` applies).
    Start,
    /// An `Any` matcher past its first edge, still looking.
    Searching,
}

/// The automaton's state after a path prefix.
///
/// `active` holds the matchers that can still change the owner; `shadow` those that cannot
/// (nothing in their subtree comes after the owner) but must still be followed, because two
/// nodes matching the same prefix is an error whichever of them would own it. Two states
/// with the same owner and `active` route every path alike: [`PathState::key`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathState {
    /// The node owning the prefix so far (index in depth-first order).
    pub owner: usize,
    /// Matchers that can still change the owner, with their phase; sorted, without duplicates.
    pub active: Vec<(usize, Phase)>,
    /// Matchers followed only to detect double matches.
    pub shadow: Vec<(usize, Phase)>,
}

impl PathState {
    /// The state at the logits: the root owns it, its children are about to start.
    pub fn root(h: &Hypothesis) -> PathState {
        let mut s = PathState {
            owner: 0,
            active: h.nodes[0]
                .children
                .iter()
                .map(|&c| (c, Phase::Start))
                .collect(),
            shadow: Vec::new(),
        };
        s.normalise(h);
        s
    }

    /// Whether no matcher can change the owner any more: everything below reads the owner's data.
    pub fn is_settled(&self) -> bool {
        self.active.is_empty()
    }

    /// Whether nothing is followed any more, not even to detect double matches.
    pub fn is_dead(&self) -> bool {
        self.active.is_empty() && self.shadow.is_empty()
    }

    /// The part of the state that decides routing: owner and the matchers that can change it.
    pub fn key(&self) -> PathState {
        PathState {
            owner: self.owner,
            active: self.active.clone(),
            shadow: Vec::new(),
        }
    }

    /// Move matchers that can no longer decide anything (nothing in their subtree can beat
    /// the owner) to the shadow list; sort and deduplicate.
    fn normalise(&mut self, h: &Hypothesis) {
        let owner = self.owner;
        let mut all: Vec<(usize, Phase)> =
            self.active.drain(..).chain(self.shadow.drain(..)).collect();
        all.retain(|&(n, _)| n > 0);
        all.sort();
        all.dedup();
        for (n, ph) in all {
            if h.nodes[n].subtree_end > owner + 1 {
                self.active.push((n, ph));
            } else {
                self.shadow.push((n, ph));
            }
        }
    }

    /// Take the edge `sender → receiver` (read at a position whose restriction test is
    /// `at_ok(node)`) and return the state below it. Two nodes matching the same edge is an
    /// error: no path may be claimed twice.
    pub fn step(
        &self,
        h: &Hypothesis,
        receiver: Receiver,
        sender: Node,
        at_ok: &dyn Fn(usize) -> bool,
    ) -> Result<PathState> {
        let kind = match receiver {
            Receiver::Head(_, _, x) => Some(x),
            _ => None,
        };
        let mut matched: Vec<usize> = Vec::new();
        let mut next: Vec<(usize, Phase)> = Vec::new();
        for &(n, phase) in self.active.iter().chain(&self.shadow) {
            let Some(m) = &h.nodes[n].matcher else {
                continue;
            };
            if phase == Phase::Start {
                if let Some(via) = &m.via {
                    if !kind.is_some_and(|k| via.contains(&k)) {
                        continue;
                    }
                }
            }
            let hit = m.to.contains(&sender) && at_ok(n);
            if hit {
                if !matched.contains(&n) {
                    matched.push(n);
                }
                if m.any && !m.stop {
                    next.push((n, Phase::Searching));
                }
            } else if m.any && !(m.stop && m.to.contains(&sender)) {
                next.push((n, Phase::Searching));
            }
        }
        if matched.len() > 1 {
            let names: Vec<&str> = matched.iter().map(|&n| h.nodes[n].name.as_str()).collect();
            let (l, c) = h.nodes[matched[1]].loc;
            return Err(Error::input(format!(
                "{}:{l}:{c}: nodes {} both match the edge {sender} → {receiver}: no path may \
                 be matched by two nodes; make their `to` lists or positions disjoint",
                h.path.display(),
                names.join(" and ")
            )));
        }
        let mut owner = self.owner;
        for &n in &matched {
            owner = owner.max(n);
            next.extend(h.nodes[n].children.iter().map(|&c| (c, Phase::Start)));
        }
        let mut s = PathState {
            owner,
            active: next,
            shadow: Vec::new(),
        };
        s.normalise(h);
        Ok(s)
    }

    /// Take the edge `sender → receiver` at every position of `n` rows of `pos` positions:
    /// the states below it, each with the row-major `[n, pos]` mask of the positions that lead
    /// there (`None` when every position leads to the one state). Positions are told apart
    /// only by the matchers whose outcome for this sender depends on them.
    pub fn step_at_positions(
        &self,
        h: &Hypothesis,
        receiver: Receiver,
        sender: Node,
        n: usize,
        pos: usize,
    ) -> Result<Vec<(PathState, Option<Vec<bool>>)>> {
        let positional: Vec<usize> = self
            .active
            .iter()
            .chain(&self.shadow)
            .map(|&(m, _)| m)
            .filter(|&m| {
                h.nodes[m]
                    .matcher
                    .as_ref()
                    .is_some_and(|mm| mm.at.is_some() && mm.to.contains(&sender))
            })
            .collect();
        if positional.is_empty() {
            return Ok(vec![(self.step(h, receiver, sender, &|_| true)?, None)]);
        }
        let mut groups: BTreeMap<Vec<bool>, Vec<bool>> = BTreeMap::new();
        for b in 0..n {
            for p in 0..pos {
                let sig: Vec<bool> = positional
                    .iter()
                    .map(|&m| h.nodes[m].matcher.as_ref().is_some_and(|mm| mm.at_ok(b, p)))
                    .collect();
                groups.entry(sig).or_insert_with(|| vec![false; n * pos])[b * pos + p] = true;
            }
        }
        let single = groups.len() == 1;
        let mut targets = Vec::with_capacity(groups.len());
        for (sig, mask) in groups {
            let at_ok = |m: usize| {
                positional
                    .iter()
                    .position(|&x| x == m)
                    .is_none_or(|i| sig[i])
            };
            let next = self.step(h, receiver, sender, &at_ok)?;
            targets.push((next, if single { None } else { Some(mask) }));
        }
        Ok(targets)
    }
}
