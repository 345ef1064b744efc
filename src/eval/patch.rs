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

/// All patched edges of a run, grouped by receiver.
#[derive(Debug, Clone, Default)]
pub struct Patches {
    by_receiver: BTreeMap<Receiver, Vec<Patch>>,
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

    /// The patches into one receiver.
    pub fn get(&self, r: &Receiver) -> &[Patch] {
        self.by_receiver.get(r).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether any edge into a receiver of `layer` is patched (`n_layers` = the logits).
    pub fn touches_layer(&self, layer: usize, n_layers: usize) -> bool {
        self.by_receiver.keys().any(|r| r.layer(n_layers) == layer)
    }

    /// The first layer with a patched receiver (`None` when nothing is patched).
    pub fn first_layer(&self, n_layers: usize) -> Option<usize> {
        self.by_receiver.keys().map(|r| r.layer(n_layers)).min()
    }

    /// Whether there are no patches.
    pub fn is_empty(&self) -> bool {
        self.by_receiver.is_empty()
    }

    /// Number of patched edges.
    pub fn len(&self) -> usize {
        self.by_receiver.values().map(Vec::len).sum()
    }
}
