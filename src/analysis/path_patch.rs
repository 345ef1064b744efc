//! Path patching (Wang et al.'s IOI paper, REMIX, ARENA): the senders' corrupted outputs reach
//! only the chosen receivers, directly, at the chosen positions; everything else is the clean
//! (baseline) run.
//!
//! For every receiver `r` (a head's q, k or v input, an MLP's input, the logits) and every
//! sender `u` that writes to the residual stream before `r` reads it:
//!
//! ```text
//! input(r) = clean_input(r) + Σ_u (corrupted_out(u) − current_out(u)) ⊙ mask
//! ```
//!
//! which is [`Patches`] on the clean tokens with `alt` = the corrupted run's sender output.
//! The receivers' own outputs then propagate normally to the logits. Receivers = `logits` gives
//! the senders' direct effect. Iterative path patching (REMIX) tries every head and MLP as the
//! only sender into a fixed set of receivers and returns a `[layer, head + MLP]` matrix of
//! metric changes.

use super::setup::{Position, Setup};
use super::sweep::{Axis, LabelledArray};
use crate::error::{Error, Result};
use crate::eval::{self, HookName, NameFilter, Patches, Region, Run, RunOptions, Site, Stage};
use crate::graph::{Node, Receiver};
use candle_core::Tensor;

/// How the senders' effect reaches the receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathMode {
    /// Direct edges only: every other component is the clean run (REMIX, ACDC edges).
    #[default]
    Direct,
    /// ARENA's / the IOI paper's path patching: the senders' corrupted outputs pass through the
    /// MLPs (recomputed) while every other head's output is frozen to the clean run; the
    /// receivers' q, k, v (or MLP input) from that run are then patched into the clean run.
    /// With `logits` as the receiver, the result is that first run's output.
    ThroughMlps,
}

/// The clean and corrupted runs path patching needs.
pub struct PathPatcher<'s, 'm> {
    setup: &'s Setup<'m>,
    clean: Run,
    corrupted: Run,
    mode: PathMode,
}

/// The result of one path-patching run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathResult {
    /// The metric with the paths patched.
    pub metric: f64,
    /// `metric − clean metric`.
    pub change: f64,
    /// `change / (clean − corrupted)`: −1 when the paths carry the whole corruption (the
    /// ARENA notebooks' normalisation).
    pub normalized: f64,
    /// How many sender → receiver edges were patched.
    pub edges: usize,
}

impl<'s, 'm> PathPatcher<'s, 'm> {
    /// Run the clean and corrupted inputs once.
    pub fn new(setup: &'s Setup<'m>) -> Result<Self> {
        Ok(PathPatcher {
            setup,
            clean: setup.clean_run(NameFilter::none())?,
            corrupted: setup.corrupted_run(NameFilter::none())?,
            mode: PathMode::Direct,
        })
    }

    /// Use another [`PathMode`].
    pub fn with_mode(mut self, mode: PathMode) -> Self {
        self.mode = mode;
        self
    }

    /// The setup.
    pub fn setup(&self) -> &Setup<'m> {
        self.setup
    }

    /// The edge patches: every sender that feeds a receiver, its corrupted output, masked.
    pub fn patches(
        &self,
        senders: &[Node],
        receivers: &[Receiver],
        mask: Option<&Tensor>,
    ) -> Result<Patches> {
        let cfg = &self.setup.model.cfg;
        let mut patches = Patches::new();
        for &r in receivers {
            for &u in senders {
                if u.feeds(&r, cfg) {
                    let alt = self.corrupted.sender_out(self.setup.model, u)?;
                    patches.add(r, u, alt, mask.cloned());
                }
            }
        }
        Ok(patches)
    }

    /// Patch `senders → receivers` (at the positions of `mask`, `[batch, pos, 1]`, or all).
    pub fn run(
        &self,
        senders: &[Node],
        receivers: &[Receiver],
        mask: Option<&Tensor>,
    ) -> Result<PathResult> {
        if self.mode == PathMode::ThroughMlps {
            return self.run_through_mlps(senders, receivers, mask);
        }
        let setup = self.setup;
        let patches = self.patches(senders, receivers, mask)?;
        let edges = patches.len();
        let metric = if patches.is_empty() {
            setup.clean_metric
        } else {
            self.patched_metric(&patches)?
        };
        Ok(self.result(metric, edges))
    }

    /// The metric of the clean run with `patches`, resumed from the first stage they change.
    fn patched_metric(&self, patches: &Patches) -> Result<f64> {
        let setup = self.setup;
        let first = patches
            .first_stage(setup.model.cfg.n_layers)
            .unwrap_or(Stage::Embed);
        let run = eval::run(
            setup.model,
            &setup.clean_tokens,
            patches,
            RunOptions {
                logits: setup.logits_at(),
                from: Some((&self.clean, first)),
                ..Default::default()
            },
        )?;
        setup.score_run(&run)
    }

    fn result(&self, metric: f64, edges: usize) -> PathResult {
        let setup = self.setup;
        let change = metric - setup.clean_metric;
        PathResult {
            metric,
            change,
            normalized: change / (setup.clean_metric - setup.corrupted_metric),
            edges,
        }
    }

    /// [`PathMode::ThroughMlps`]: two runs on the clean tokens. Run 1 freezes every head's
    /// `hook_z` to the clean run's except the senders' (the corrupted run's; MLP senders'
    /// outputs too) and recomputes the MLPs; run 2 is the clean run with the receivers' q, k,
    /// v (or MLP input) taken from run 1 at the masked positions.
    fn run_through_mlps(
        &self,
        senders: &[Node],
        receivers: &[Receiver],
        mask: Option<&Tensor>,
    ) -> Result<PathResult> {
        let setup = self.setup;
        let model = setup.model;
        let cfg = &model.cfg;
        let n = cfg.n_layers;
        if senders.contains(&Node::Embed) {
            return Err(Error::input(
                "path patching through MLPs takes heads and MLPs as senders, not embed",
            ));
        }
        if receivers.contains(&Receiver::Logits) && receivers.len() > 1 {
            return Err(Error::input(
                "path patching through MLPs: patch into logits alone, or into heads and MLPs",
            ));
        }
        let edges = receivers
            .iter()
            .map(|r| senders.iter().filter(|u| u.feeds(r, cfg)).count())
            .sum();
        if edges == 0 {
            return Ok(self.result(setup.clean_metric, 0));
        }
        let first_sender = senders.iter().filter_map(Node::layer).min().unwrap_or(0);
        let freeze = self.freeze_patches(senders, first_sender)?;
        let names = input_names(receivers);
        let frozen = eval::run(
            model,
            &setup.clean_tokens,
            &freeze,
            RunOptions {
                cache: NameFilter::of(&names),
                logits: setup.logits_at(),
                from: Some((&self.clean, Stage::layer_start(first_sender, n))),
                ..Default::default()
            },
        )?;
        if receivers == [Receiver::Logits] {
            let m = setup.score_run(&frozen)?;
            return Ok(self.result(m, edges));
        }
        let patches = self.receiver_patches(&frozen, &names, receivers, mask)?;
        let m = self.patched_metric(&patches)?;
        Ok(self.result(m, edges))
    }

    /// Run 2's patches of [`PathMode::ThroughMlps`]: each receiver's input (`names`) from run 1
    /// (`frozen`), at the masked positions and, for q/k/v, only in the receivers' heads.
    fn receiver_patches(
        &self,
        frozen: &Run,
        names: &[HookName],
        receivers: &[Receiver],
        mask: Option<&Tensor>,
    ) -> Result<Patches> {
        let setup = self.setup;
        let cfg = &setup.model.cfg;
        let (b, p) = (setup.batch(), setup.seq_len());
        let pos_mask: Vec<u8> = match mask {
            Some(m) => m
                .to_dtype(candle_core::DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?
                .iter()
                .map(|&x| u8::from(x != 0.0))
                .collect(),
            None => vec![1; b * p],
        };
        let dev = setup.model.device();
        let mut patches = Patches::new();
        for &name in names {
            let captured = frozen.cached(name)?.clone();
            let m = match name {
                HookName::Block(l, site) if site != Site::MlpIn => {
                    let mut v = vec![0u8; b * p * cfg.n_heads];
                    for r in receivers {
                        if let Receiver::Head(rl, h, x) = *r {
                            if rl == l && Site::qkv(x) == site {
                                for i in 0..b * p {
                                    v[i * cfg.n_heads + h] = pos_mask[i];
                                }
                            }
                        }
                    }
                    Tensor::from_vec(v, (b, p, cfg.n_heads, 1), dev)?
                }
                _ => Tensor::from_vec(pos_mask.clone(), (b, p, 1), dev)?,
            };
            patches.replace_activation(name, captured, Region::Mask(m));
        }
        Ok(patches)
    }

    /// Run 1 of [`PathMode::ThroughMlps`] from layer `first`: every head's `hook_z` is the
    /// clean run's except the senders' (the corrupted run's); MLP senders' outputs are the
    /// corrupted run's.
    fn freeze_patches(&self, senders: &[Node], first: usize) -> Result<Patches> {
        let cfg = &self.setup.model.cfg;
        let mut is_sender = vec![vec![0u8; cfg.n_heads]; cfg.n_layers];
        let mut patches = Patches::new();
        for u in senders {
            match *u {
                Node::Head(l, h) => is_sender[l][h] = 1,
                Node::Mlp(l) => {
                    let out = self.corrupted.mlp_out[l]
                        .clone()
                        .ok_or_else(|| Error::input("this model has no MLPs"))?;
                    patches.replace_activation(HookName::Block(l, Site::MlpOut), out, Region::All);
                }
                Node::Embed => {}
            }
        }
        let dev = self.setup.model.device();
        for (l, heads) in is_sender.into_iter().enumerate().skip(first) {
            let m = Tensor::from_vec(heads, (1, 1, cfg.n_heads, 1), dev)?;
            let z = m
                .broadcast_as(self.clean.z[l].dims())?
                .where_cond(&self.corrupted.z[l], &self.clean.z[l])?;
            patches.replace_activation(HookName::Block(l, Site::Z), z, Region::All);
        }
        Ok(patches)
    }

    /// Iterative path patching: every head and MLP alone as the sender into `receivers`.
    /// Returns `[layer, head + 1]` (the last column is the MLP) of metric changes
    /// (`patched − clean`, or divided by `clean − corrupted` when `normalize`); senders that
    /// cannot reach any receiver are NaN. The embedding's change is in the notes.
    pub fn iterative(
        &self,
        receivers: &[Receiver],
        mask: Option<&Tensor>,
        normalize: bool,
    ) -> Result<LabelledArray> {
        let cfg = &self.setup.model.cfg;
        if receivers.is_empty() {
            return Err(Error::input(
                "iterative path patching needs at least one receiver (e.g. logits, a9.h6.q, m3)",
            ));
        }
        let mut cols: Vec<String> = (0..cfg.n_heads).map(|h| format!("H{h}")).collect();
        cols.push("MLP".into());
        let names: Vec<String> = receivers.iter().map(|r| r.to_string()).collect();
        let mut sweep = LabelledArray::new(
            "iterative_path_patching",
            &format!("Path patching: each sender → {}", names.join(", ")),
            vec![Axis::layers(cfg.n_layers), Axis::new("sender", cols)],
        );
        let pick = |r: PathResult| if normalize { r.normalized } else { r.change };
        for l in 0..cfg.n_layers {
            let mut senders: Vec<(usize, Node)> =
                (0..cfg.n_heads).map(|h| (h, Node::Head(l, h))).collect();
            if cfg.has_mlp() {
                senders.push((cfg.n_heads, Node::Mlp(l)));
            }
            for (col, u) in senders {
                if !receivers.iter().any(|r| u.feeds(r, cfg)) {
                    continue;
                }
                let r = self.run(&[u], receivers, mask)?;
                sweep.set(&[l, col], pick(r));
            }
        }
        if self.mode == PathMode::Direct {
            let embed = self.run(&[Node::Embed], receivers, mask)?;
            sweep.note("embed", pick(embed));
        } else {
            sweep.note("mode", "through MLPs (other heads frozen)");
        }
        sweep.note("receivers", names);
        sweep.note("metric", self.setup.metric.to_string());
        sweep.note("clean_metric", self.setup.clean_metric);
        sweep.note("corrupted_metric", self.setup.corrupted_metric);
        sweep.note(
            "value",
            if normalize {
                "(metric with the sender's corrupted output patched into the receivers − clean \
                 metric) / (clean − corrupted); NaN: the sender cannot reach the receivers"
            } else {
                "metric with the sender's corrupted output patched into the receivers − clean \
                 metric; NaN: the sender cannot reach the receivers"
            },
        );
        Ok(sweep)
    }
}

/// Parse receivers, expanding `a9.h6` (no `.q/.k/.v`) to its three inputs.
pub fn parse_receivers(list: &[String], cfg: &crate::model::ModelConfig) -> Result<Vec<Receiver>> {
    let mut out = Vec::new();
    for s in list {
        let s = s.trim();
        if s.is_empty() {
            continue;
        }
        match Receiver::parse(s, cfg) {
            Ok(r) => out.push(r),
            Err(e) => match Node::parse(s, cfg) {
                Ok(Node::Head(l, h)) => {
                    for x in crate::graph::Qkv::ALL {
                        out.push(Receiver::Head(l, h, x));
                    }
                }
                _ => return Err(e),
            },
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Parse senders (`embed`, `a9.h6`, `m3`, and `a9.*` for all heads of a layer).
pub fn parse_senders(list: &[String], cfg: &crate::model::ModelConfig) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    for s in list {
        let s = s.trim();
        if s.is_empty() {
            continue;
        }
        if let Some(l) = s.strip_prefix('a').and_then(|r| r.strip_suffix(".*")) {
            let l: usize = l.parse().map_err(|_| {
                Error::input(format!("'{s}': write all heads of layer 9 as 'a9.*'"))
            })?;
            Node::Head(l, 0).check(cfg)?;
            out.extend((0..cfg.n_heads).map(|h| Node::Head(l, h)));
        } else {
            out.push(Node::parse(s, cfg)?);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A position mask from a list of positions (`None` for an empty list: all positions).
pub fn mask_for(setup: &Setup, positions: &[Position]) -> Result<Option<Tensor>> {
    if positions.is_empty() {
        Ok(None)
    } else {
        Ok(Some(setup.position_mask(positions)?))
    }
}

/// The input activations of `receivers` (q/k/v inputs, MLP inputs), sorted, once each.
fn input_names(receivers: &[Receiver]) -> Vec<HookName> {
    let mut names: Vec<HookName> = receivers
        .iter()
        .filter_map(|r| match *r {
            Receiver::Head(l, _, x) => Some(HookName::Block(l, Site::qkv(x))),
            Receiver::Mlp(l) => Some(HookName::Block(l, Site::MlpIn)),
            Receiver::Logits => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}
