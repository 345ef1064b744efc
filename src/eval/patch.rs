//! Edge patches: a receiver reads a sender's output from another source.

use crate::graph::{Node, Receiver};
use candle_core::Tensor;
use std::collections::BTreeMap;

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

/// All patched edges of a run, grouped by receiver, and the deltas added to receivers' inputs.
#[derive(Debug, Clone, Default)]
pub struct Patches {
    by_receiver: BTreeMap<Receiver, Vec<Patch>>,
    deltas: BTreeMap<Receiver, Tensor>,
}

impl Patches {
    /// No patches: the ordinary forward pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// Patch the edge `sender → receiver`.
    pub fn add(&mut self, receiver: Receiver, sender: Node, alt: Tensor, mask: Option<Tensor>) {
        self.by_receiver
            .entry(receiver)
            .or_default()
            .push(Patch { sender, alt, mask });
    }

    /// Add `delta` (`[batch, pos, d_model]`, or anything that broadcasts to it) to receiver
    /// `r`'s input, after its patched edges. A zero delta that is a `candle_core::Var` makes
    /// the gradient of anything computed from the run with respect to `r`'s input available
    /// from `backward()` (this is how attribution differentiates through the evaluator).
    /// A second delta for the same receiver is added to the first.
    pub fn add_delta(&mut self, r: Receiver, delta: Tensor) -> crate::error::Result<()> {
        let d = match self.deltas.remove(&r) {
            Some(old) => old.broadcast_add(&delta)?,
            None => delta,
        };
        self.deltas.insert(r, d);
        Ok(())
    }

    /// The delta added to receiver `r`'s input, if any.
    pub fn delta(&self, r: &Receiver) -> Option<&Tensor> {
        self.deltas.get(r)
    }

    /// Whether receiver `r` reads anything but the residual stream (a patched edge or a delta).
    pub fn changes(&self, r: &Receiver) -> bool {
        !self.get(r).is_empty() || self.deltas.contains_key(r)
    }

    /// The patches into one receiver.
    pub fn get(&self, r: &Receiver) -> &[Patch] {
        self.by_receiver.get(r).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether any receiver of `layer` is patched or has a delta (`n_layers` = the logits).
    pub fn touches_layer(&self, layer: usize, n_layers: usize) -> bool {
        self.receivers().any(|r| r.layer(n_layers) == layer)
    }

    /// The first layer with a patched receiver (`None` when nothing is patched).
    pub fn first_layer(&self, n_layers: usize) -> Option<usize> {
        self.receivers().map(|r| r.layer(n_layers)).min()
    }

    fn receivers(&self) -> impl Iterator<Item = &Receiver> {
        self.by_receiver.keys().chain(self.deltas.keys())
    }

    /// Whether there are no patches and no deltas.
    pub fn is_empty(&self) -> bool {
        self.by_receiver.is_empty() && self.deltas.is_empty()
    }

    /// Number of patched edges.
    pub fn len(&self) -> usize {
        self.by_receiver.values().map(Vec::len).sum()
    }
}
