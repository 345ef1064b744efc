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
use super::sweep::{Axis, Sweep};
use crate::error::{Error, Result};
use crate::eval::{self, NameFilter, Patches, Run, RunOptions};
use crate::graph::{Node, Receiver};
use candle_core::Tensor;

/// The clean and corrupted runs path patching needs.
pub struct PathPatcher<'s, 'm> {
    setup: &'s Setup<'m>,
    clean: Run,
    corrupted: Run,
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
        })
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
        let setup = self.setup;
        let patches = self.patches(senders, receivers, mask)?;
        let edges = patches.len();
        let metric = if patches.is_empty() {
            setup.clean_metric
        } else {
            let first = patches.first_layer(setup.model.cfg.n_layers).unwrap_or(0);
            let run = eval::run(
                setup.model,
                &setup.clean_tokens,
                &patches,
                RunOptions {
                    logits: setup.logits_at(),
                    resume: Some((&self.clean, first)),
                    ..Default::default()
                },
            )?;
            setup.score_run(&run)?
        };
        let change = metric - setup.clean_metric;
        Ok(PathResult {
            metric,
            change,
            normalized: change / (setup.clean_metric - setup.corrupted_metric),
            edges,
        })
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
    ) -> Result<Sweep> {
        let cfg = &self.setup.model.cfg;
        if receivers.is_empty() {
            return Err(Error::input(
                "iterative path patching needs at least one receiver (e.g. logits, a9.h6.q, m3)",
            ));
        }
        let mut cols: Vec<String> = (0..cfg.n_heads).map(|h| format!("H{h}")).collect();
        cols.push("MLP".into());
        let names: Vec<String> = receivers.iter().map(|r| r.to_string()).collect();
        let mut sweep = Sweep::new(
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
        let embed = self.run(&[Node::Embed], receivers, mask)?;
        sweep.note("embed", pick(embed));
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
