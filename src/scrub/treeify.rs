//! Exact treeified evaluation without enumerating paths.
//!
//! Every path from the logits to the embedding sees the dataset of the interpretation node that
//! owns it ([`PathState`]). Instead of copying the model once per path, we evaluate each
//! component once per *state* it can be reached in: a component computed in state `s` reads,
//! from each sender, the sender's output in the state the edge leads to (per row and
//! position). States that no matcher can change any more are plain forward passes on their
//! owner's rows; the others are patched runs ([`eval::run`]) computed one half-layer
//! ([`Stage`]) at a time, from the lowest layer at which they are reached.

use super::hypothesis::Hypothesis;
use super::path_state::PathState;
use crate::error::{Error, Result};
use crate::eval::{self, LogitsAt, Patches, Run, RunOptions, Stage};
use crate::graph::edges::{inputs_of, senders};
use crate::graph::{Node, Qkv, Receiver};
use crate::model::{Model, ModelConfig};
use candle_core::Tensor;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The receivers a stage computes: a layer's head inputs, its MLP input, or the logits.
fn stage_receivers(stage: Stage, cfg: &ModelConfig) -> Vec<Receiver> {
    match stage {
        Stage::Attn(l) => (0..cfg.n_heads)
            .flat_map(|h| Qkv::ALL.iter().map(move |&x| Receiver::Head(l, h, x)))
            .collect(),
        Stage::Mlp(l) if cfg.has_mlp() => vec![Receiver::Mlp(l)],
        Stage::Logits => vec![Receiver::Logits],
        _ => vec![],
    }
}

/// Where one sender's output comes from, for a receiver in a state.
#[derive(Debug, Clone)]
struct Route {
    sender: Node,
    /// (target state, positions as a row-major [n, pos] 0/1 list; `None` = every position).
    targets: Vec<(usize, Option<Vec<bool>>)>,
}

/// The states a hypothesis reaches and how each receiver's inputs are routed between them.
#[derive(Debug)]
pub struct Plan {
    /// Distinct states; index 0 is the state at the logits.
    pub states: Vec<PathState>,
    /// Per state: the lowest layer of a component reached in it (`n_layers`: only the logits).
    pub first_layer: Vec<usize>,
    routes: BTreeMap<(usize, Receiver), Vec<Route>>,
}

impl Plan {
    /// Explore every (component, state) pair reachable from the logits. `n` rows of `pos`
    /// positions. Validates the hypothesis against the model's graph: two nodes matching one
    /// path, and nodes that match no path at all, are errors.
    pub fn explore(h: &Hypothesis, cfg: &ModelConfig, n: usize, pos: usize) -> Result<Plan> {
        let root = PathState::root(h);
        let mut ex = Explorer {
            h,
            cfg,
            n,
            pos,
            states: vec![root.key()],
            index: BTreeMap::from([(root.key(), 0)]),
            first_layer: vec![cfg.n_layers],
            routes: BTreeMap::new(),
            seen: BTreeSet::from([(None, root.clone())]),
            queue: VecDeque::from([(None, root)]),
            matched_somewhere: vec![false; h.nodes.len()],
        };
        ex.matched_somewhere[0] = true;
        while let Some((comp, state)) = ex.queue.pop_front() {
            ex.visit(comp, &state)?;
        }
        // Children can only match after their parents; mark ancestors of matched nodes.
        for (i, node) in h.nodes.iter().enumerate() {
            if !ex.matched_somewhere[i] {
                let (l, c) = node.loc;
                let parent = node.parent.map(|p| h.nodes[p].name.as_str()).unwrap_or("");
                return Err(Error::input(format!(
                    "{}:{l}:{c}: node '{}' matches no path: its matcher must extend the paths of \
                     its parent '{parent}' (a `Direct` child needs a component that feeds the \
                     parent's matched component directly, at the named positions and through \
                     the named q/k/v input)",
                    h.path.display(),
                    node.name
                )));
            }
        }
        Ok(Plan {
            states: ex.states,
            first_layer: ex.first_layer,
            routes: ex.routes,
        })
    }

    /// Forward-pass equivalents that evaluating this plan costs beyond the plain forward passes.
    pub fn patched_cost(&self, n_layers: usize) -> f64 {
        self.states
            .iter()
            .zip(&self.first_layer)
            .filter(|(s, _)| !s.is_settled())
            .map(|(_, &l)| (n_layers - l.min(n_layers)) as f64 / n_layers as f64)
            .sum()
    }
}

/// The breadth-first walk of [`Plan::explore`] over (component, state) pairs. Exploration
/// follows full states (with shadow matchers, to catch double matches); evaluation needs only
/// their keys.
struct Explorer<'h> {
    h: &'h Hypothesis,
    cfg: &'h ModelConfig,
    n: usize,
    pos: usize,
    states: Vec<PathState>,
    index: BTreeMap<PathState, usize>,
    first_layer: Vec<usize>,
    routes: BTreeMap<(usize, Receiver), Vec<Route>>,
    /// (component, state) pairs reached; `None` is the logits.
    seen: BTreeSet<(Option<Node>, PathState)>,
    queue: VecDeque<(Option<Node>, PathState)>,
    matched_somewhere: Vec<bool>,
}

impl Explorer<'_> {
    /// Route every input of `comp`'s receivers in `state`, queueing the pairs reached.
    fn visit(&mut self, comp: Option<Node>, state: &PathState) -> Result<()> {
        let sid = self.index[&state.key()];
        for r in inputs_of(comp) {
            let mut rs = Vec::new();
            for u in senders(&r, self.cfg) {
                rs.push(self.route(state, r, u)?);
            }
            self.routes.entry((sid, r)).or_insert(rs);
        }
        Ok(())
    }

    /// Where sender `u`'s output into `r` comes from in `state`.
    fn route(&mut self, state: &PathState, r: Receiver, u: Node) -> Result<Route> {
        let targets = state.step_at_positions(self.h, r, u, self.n, self.pos)?;
        let mut route = Route {
            sender: u,
            targets: Vec::new(),
        };
        for (next, mask) in targets {
            if next.owner != state.owner {
                self.matched_somewhere[next.owner] = true;
            }
            let nid = self.state_id(next.key());
            if let Some(l) = u.layer() {
                self.first_layer[nid] = self.first_layer[nid].min(l);
                // A dead state routes everything below to one dataset: nothing left to follow.
                if !next.is_dead() {
                    let item = (Some(u), next);
                    if !self.seen.contains(&item) {
                        self.seen.insert(item.clone());
                        self.queue.push_back(item);
                    }
                }
            }
            route.targets.push((nid, mask));
        }
        Ok(route)
    }

    /// The index of the state with this key, added when new.
    fn state_id(&mut self, key: PathState) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.states.push(key.clone());
        self.first_layer.push(self.cfg.n_layers);
        self.index.insert(key, self.states.len() - 1);
        self.states.len() - 1
    }
}

/// Plain forward passes keyed by their rows, each with logits at the END positions.
pub struct PureRuns<'a> {
    model: &'a Model,
    tokens_of: &'a dyn Fn(&[usize]) -> Result<Tensor>,
    ends_of: &'a dyn Fn(&[usize]) -> Vec<usize>,
    ref_ends: Vec<usize>,
    runs: BTreeMap<Vec<usize>, Run>,
    /// Forward passes computed so far.
    pub forwards: usize,
}

impl<'a> PureRuns<'a> {
    /// `tokens_of(rows)` gives the padded tokens of those base rows; logits are computed at
    /// the reference rows' END positions (`ref_ends`).
    pub fn new(
        model: &'a Model,
        tokens_of: &'a dyn Fn(&[usize]) -> Result<Tensor>,
        ends_of: &'a dyn Fn(&[usize]) -> Vec<usize>,
        ref_ends: Vec<usize>,
    ) -> Self {
        PureRuns {
            model,
            tokens_of,
            ends_of,
            ref_ends,
            runs: BTreeMap::new(),
            forwards: 0,
        }
    }

    /// The forward pass on `rows` (computed once). It is kept without its residual stream
    /// ([`Run::drop_residuals`]): plain runs are read for their senders' outputs and logits.
    pub fn get(&mut self, rows: &[usize]) -> Result<&Run> {
        if !self.runs.contains_key(rows) {
            let tokens = (self.tokens_of)(rows)?;
            let _ = self.ends_of;
            let mut run = eval::run(
                self.model,
                &tokens,
                &Patches::new(),
                RunOptions {
                    logits: LogitsAt::Rows(self.ref_ends.clone()),
                    ..Default::default()
                },
            )?;
            run.drop_residuals();
            self.forwards += 1;
            self.runs.insert(rows.to_vec(), run);
        }
        Ok(&self.runs[rows])
    }
}

/// The logits of the scrubbed model at the reference END positions, and the cost in forward
/// passes of the patched states.
pub fn evaluate(
    model: &Model,
    h: &Hypothesis,
    plan: &Plan,
    data_of_state: &dyn Fn(&PathState) -> Vec<usize>,
    pure: &mut PureRuns,
    ref_ends: &[usize],
) -> Result<(Tensor, f64)> {
    let cfg = &model.cfg;
    let n_layers = cfg.n_layers;
    let ns = plan.states.len();
    let rows: Vec<Vec<usize>> = plan.states.iter().map(data_of_state).collect();
    for (s, r) in plan.states.iter().zip(&rows) {
        if s.is_settled() {
            pure.get(r)?;
        }
    }
    let (n, p) = pure.get(&rows[0])?.tokens.dims2()?;
    // Patched states start as copies of their rows' plain run.
    let mut runs: Vec<Option<Run>> = vec![None; ns];
    for s in 0..ns {
        if !plan.states[s].is_settled() {
            let mut run = pure.get(&rows[s])?.clone();
            run.rebuild_residuals(model)?;
            runs[s] = Some(run);
        }
    }
    let mut layers_computed = 0usize;
    // Half-layer steps: every state's attention of layer l before any state's MLP half of
    // layer l (an MLP may read another state's heads of its own layer).
    let mut stage = Stage::layer_start(0, n_layers);
    loop {
        let layer = match stage {
            Stage::Attn(l) | Stage::Mlp(l) => l,
            _ => n_layers,
        };
        for s in 0..ns {
            if plan.states[s].is_settled() || plan.first_layer[s] > layer {
                continue;
            }
            let patches = stage_patches(model, plan, s, stage, &rows, &runs, pure, (n, p))?;
            let prev = runs[s]
                .take()
                .ok_or_else(|| Error::input("internal: state run missing"))?;
            let tokens = prev.tokens.clone();
            let next = eval::run(
                model,
                &tokens,
                &patches,
                RunOptions {
                    logits: if stage == Stage::Logits {
                        LogitsAt::Rows(ref_ends.to_vec())
                    } else {
                        LogitsAt::None
                    },
                    from: Some((&prev, stage)),
                    until: match stage {
                        Stage::Logits => None,
                        s => s.next(n_layers),
                    },
                    ..Default::default()
                },
            )?;
            if matches!(stage, Stage::Mlp(_)) {
                layers_computed += 1;
            }
            runs[s] = Some(next);
        }
        match stage.next(n_layers) {
            Some(next) => stage = next,
            None => break,
        }
    }
    let logits = if plan.states[0].is_settled() {
        pure.get(&rows[0])?.logits.clone()
    } else {
        runs[0].as_ref().and_then(|r| r.logits.clone())
    }
    .ok_or_else(|| Error::input("internal: no logits"))?;
    let _ = h;
    Ok((logits, layers_computed as f64 / n_layers as f64))
}

/// The patches of patched state `s` at `stage`: each routed sender's output from its target
/// state (a plain run, or another patched state's run so far), where it differs from the
/// state's own. `np` is the rows and positions of the masks.
#[allow(clippy::too_many_arguments)] // the evaluation's state, passed as it is
fn stage_patches(
    model: &Model,
    plan: &Plan,
    s: usize,
    stage: Stage,
    rows: &[Vec<usize>],
    runs: &[Option<Run>],
    pure: &mut PureRuns,
    np: (usize, usize),
) -> Result<Patches> {
    let mask_tensor = |m: &Vec<bool>| -> Result<Tensor> {
        let v: Vec<f32> = m.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
        Ok(Tensor::from_vec(v, (np.0, np.1, 1), model.device())?.to_dtype(model.dtype)?)
    };
    let mut patches = Patches::new();
    for r in stage_receivers(stage, &model.cfg) {
        let Some(routes) = plan.routes.get(&(s, r)) else {
            continue;
        };
        for route in routes {
            for (t, mask) in &route.targets {
                // Exactly zero: the sender's output in a plain run on this state's own rows,
                // at a layer this state has not recomputed.
                let unchanged = route.sender.layer().is_none_or(|l| l < plan.first_layer[s]);
                let same =
                    *t == s || (plan.states[*t].is_settled() && rows[*t] == rows[s] && unchanged);
                if same {
                    continue;
                }
                let alt = if plan.states[*t].is_settled() {
                    pure.get(&rows[*t])?.sender_out(model, route.sender)?
                } else {
                    runs[*t]
                        .as_ref()
                        .ok_or_else(|| Error::input("internal: state run missing"))?
                        .sender_out(model, route.sender)?
                };
                let mask = match mask {
                    Some(m) => Some(mask_tensor(m)?),
                    None => None,
                };
                patches.add(r, route.sender, alt, mask);
            }
        }
    }
    Ok(patches)
}
