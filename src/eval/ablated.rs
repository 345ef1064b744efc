//! What a removed edge carries: every sender's alternative output and every receiver's input
//! when all of its edges are removed (computed by `acdc::ablation`, read by the circuit runs).

use crate::graph::{Node, Receiver};
use candle_core::Tensor;
use std::collections::BTreeMap;

/// The ablated output of every sender and the ablated input of every receiver.
#[derive(Debug, Clone)]
pub struct Ablated {
    /// Each sender's ablated output `[batch, pos, d_model]` (head outputs without `b_O`).
    pub out: BTreeMap<Node, Tensor>,
    /// The ablated residual entering each layer (the input of its heads); index `n_layers`:
    /// the input of the logits.
    pub resid: Vec<Tensor>,
    /// The ablated input of each layer's MLP (empty for attention-only models).
    pub mid: Vec<Tensor>,
}

impl Ablated {
    /// A receiver's input when every edge into it is removed, `[batch, pos, d_model]`.
    pub fn input(&self, r: &Receiver) -> &Tensor {
        match *r {
            Receiver::Head(l, _, _) => &self.resid[l],
            Receiver::Mlp(l) => &self.mid[l],
            Receiver::Logits => &self.resid[self.resid.len() - 1],
        }
    }

    /// A sender's ablated output.
    pub fn output(&self, u: &Node) -> Option<&Tensor> {
        self.out.get(u)
    }
}
