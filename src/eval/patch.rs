//! Typed patches: how a run's activations differ from the plain forward pass.
//!
//! Four kinds, all applied by the evaluator ([`super::run`]) and nowhere else:
//!
//! - an **edge patch** ([`Patches::add`]): receiver `r` reads sender `u`'s output from another
//!   source, `input(r) += (alt − current(u)) ⊙ mask`;
//! - a **delta** ([`Patches::add_delta`]): `input(r) += delta`, `[batch, pos, d_model]`; with a
//!   zero delta that is a [`candle_core::Var`], gradients with respect to each receiver's input
//!   flow through it (attribution's gradients);
//! - a **replaced input** ([`Patches::replace_input`]): `input(r) = base + Σ_kept (current(u) −
//!   alt_u) ⊙ mask` — the receiver reads `base` (e.g. an ablated run's residual stream) except
//!   for the listed senders, which it reads from the current run;
//! - a **replaced activation** ([`Patches::replace_activation`]): a named activation is replaced
//!   everywhere, where a mask is 1, or on a slice of it (or moved towards a base value,
//!   [`Patches::interpolate_activation`], for integrated gradients).
//!
//! Receivers follow the residual-stream decomposition: every head's q, k and v input, every
//! MLP input and the logits apply their own LayerNorm to their own input.

use super::hook_name::HookName;
use super::schedule::Stage;
use crate::error::Result;
use crate::graph::{Node, Receiver};
use candle_core::Tensor;
use std::collections::BTreeMap;
use std::ops::Range;

/// One patched edge into a receiver: the sender's output is replaced by `alt` (at the
/// positions where `mask` is 1, or everywhere).
#[derive(Debug, Clone)]
pub struct Patch {
    /// The sender whose output is replaced.
    pub sender: Node,
    /// The value the receiver sees instead, `[batch, pos, d_model]`.
    pub alt: Tensor,
    /// `[batch, pos, 1]` of 0/1 in the model's dtype; `None` means every position.
    pub mask: Option<Tensor>,
}

/// Everything that changes one receiver's input.
#[derive(Debug, Clone, Default)]
pub struct InputPatch {
    /// Read this instead of the residual stream (then `kept` applies).
    pub base: Option<Tensor>,
    /// With `base`: senders read from the current run, `+ (current − alt) ⊙ mask` each.
    pub kept: Vec<Patch>,
    /// Edge patches, `+ (alt − current) ⊙ mask` each.
    pub edges: Vec<Patch>,
    /// A delta added last (several deltas are summed into one).
    pub delta: Option<Tensor>,
}

/// Where a replaced activation takes the new value.
#[derive(Debug, Clone)]
pub enum Region {
    /// Everywhere.
    All,
    /// Where a mask (u8, broadcastable to the activation) is 1.
    Mask(Tensor),
    /// On a slice: one range per dimension of the activation (`value` is the full-size source
    /// tensor, sliced the same way).
    Slice(Vec<Range<usize>>),
}

/// A change to a named activation.
#[derive(Debug, Clone)]
pub enum ActivationPatch {
    /// Replaced by `value` (shaped like the activation) in a region.
    Replace {
        /// The new value.
        value: Tensor,
        /// Where it applies.
        region: Region,
    },
    /// Moved onto the straight line from `base` (α = 0) to the run's own value (α = 1):
    /// `base + α · (activation − base)`, with the activation detached (a constant point on the
    /// line; integrated gradients read the gradients downstream of it).
    Interpolate {
        /// The value at α = 0.
        base: Tensor,
        /// The point on the line.
        alpha: f64,
    },
}

impl ActivationPatch {
    /// The activation with the patch applied.
    pub fn apply(&self, act: &Tensor) -> Result<Tensor> {
        Ok(match self {
            ActivationPatch::Replace { value, region } => match region {
                Region::All => value.clone(),
                Region::Mask(m) => m.broadcast_as(act.dims())?.where_cond(value, act)?,
                Region::Slice(ranges) => {
                    let mut src = value.clone();
                    for (d, r) in ranges.iter().enumerate() {
                        src = src.narrow(d, r.start, r.end - r.start)?;
                    }
                    act.contiguous()?.slice_assign(ranges, &src)?
                }
            },
            ActivationPatch::Interpolate { alpha, .. } if *alpha == 1.0 => act.clone(),
            ActivationPatch::Interpolate { base, alpha } => {
                (base + ((&act.detach() - base)? * *alpha)?)?
            }
        })
    }
}

/// All patches of a run: per receiver, and per named activation.
#[derive(Debug, Clone, Default)]
pub struct Patches {
    by_receiver: BTreeMap<Receiver, InputPatch>,
    by_name: BTreeMap<HookName, Vec<ActivationPatch>>,
}

impl Patches {
    /// No patches: the ordinary forward pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// Patch the edge `sender → receiver`: the receiver reads `alt` instead of the sender's
    /// current output (where `mask`, `[batch, pos, 1]` 0/1, is 1).
    pub fn add(&mut self, receiver: Receiver, sender: Node, alt: Tensor, mask: Option<Tensor>) {
        self.by_receiver
            .entry(receiver)
            .or_default()
            .edges
            .push(Patch { sender, alt, mask });
    }

    /// Add `delta` (`[batch, pos, d_model]`, or anything that broadcasts to it) to receiver
    /// `r`'s input, after its other patches. A zero delta that is a [`candle_core::Var`] makes
    /// the gradient of anything computed from the run with respect to `r`'s input available
    /// from `backward()` (this is how attribution differentiates through the evaluator). A
    /// second delta for the same receiver is added to the first.
    pub fn add_delta(&mut self, r: Receiver, delta: Tensor) -> Result<()> {
        let p = self.by_receiver.entry(r).or_default();
        p.delta = Some(match p.delta.take() {
            Some(old) => old.broadcast_add(&delta)?,
            None => delta,
        });
        Ok(())
    }

    /// Replace the receiver's whole input: it reads `base` plus, for each kept sender, its
    /// current output minus `alt` (where the mask is 1). With `alt` the senders' outputs in
    /// the run `base` comes from, the receiver reads that run except for the kept senders.
    pub fn replace_input(&mut self, receiver: Receiver, base: Tensor, kept: Vec<Patch>) {
        let p = self.by_receiver.entry(receiver).or_default();
        p.base = Some(base);
        p.kept = kept;
    }

    /// Replace a named activation (everywhere, where a mask is 1, or on a slice).
    pub fn replace_activation(&mut self, name: HookName, value: Tensor, region: Region) {
        self.by_name
            .entry(name)
            .or_default()
            .push(ActivationPatch::Replace { value, region });
    }

    /// Move a named activation to `base + alpha · (activation − base)` (see
    /// [`ActivationPatch::Interpolate`]).
    pub fn interpolate_activation(&mut self, name: HookName, base: Tensor, alpha: f64) {
        self.by_name
            .entry(name)
            .or_default()
            .push(ActivationPatch::Interpolate { base, alpha });
    }

    /// Everything that changes one receiver's input.
    pub fn input(&self, r: &Receiver) -> Option<&InputPatch> {
        self.by_receiver.get(r)
    }

    /// The replacements of one named activation, in the order they were added.
    pub fn activation(&self, name: HookName) -> &[ActivationPatch] {
        self.by_name.get(&name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether a named activation is replaced.
    pub fn replaces(&self, name: HookName) -> bool {
        self.by_name.contains_key(&name)
    }

    /// Whether the input of a receiver is changed in any way.
    pub fn changes(&self, r: &Receiver) -> bool {
        self.by_receiver.contains_key(r)
    }

    /// The first stage any patch changes (`None` when nothing is patched): a run may start
    /// there from a cached unpatched run on the same tokens.
    pub fn first_stage(&self, n_layers: usize) -> Option<Stage> {
        let receivers = self.by_receiver.keys().map(|r| match *r {
            Receiver::Head(l, _, _) => Stage::Attn(l),
            Receiver::Mlp(l) => Stage::Mlp(l),
            Receiver::Logits => Stage::Logits,
        });
        let names = self.by_name.keys().map(|n| match n.stage() {
            Stage::Attn(l) | Stage::Mlp(l) if l >= n_layers => Stage::Logits,
            s => s,
        });
        receivers.chain(names).min()
    }

    /// Whether there are no patches.
    pub fn is_empty(&self) -> bool {
        self.by_receiver.is_empty() && self.by_name.is_empty()
    }

    /// Number of patched edges (edge patches and kept senders of replaced inputs).
    pub fn len(&self) -> usize {
        self.by_receiver
            .values()
            .map(|p| p.edges.len() + p.kept.len())
            .sum()
    }
}
