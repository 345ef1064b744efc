//! The edge graph ACDC prunes, built exactly as the reference implementation
//! (`ArthurConmy/Automatic-Circuit-Discovery`, `TLACDCCorrespondence.setup_from_model`) builds it.
//!
//! Senders: `embed`, every head, every MLP. Receivers: every head's q, k and v input, every MLP
//! input, the logits. There is an *addition* edge from every sender to every later receiver (a
//! head feeds its own layer's MLP, but not its own layer's heads). With the q/k/v split (the
//! reference's default) each head also has three counted edges `a{l}.h{h}.q → a{l}.h{h}` (and
//! `.k`, `.v`): dropping one replaces that head's whole query (key, value) input by its ablated
//! value. GPT-2 small has 32,491 addition edges and 432 q/k/v edges; a 2-layer 8-head
//! attention-only model 257 + 48 = 305.
//!
//! Grouped-query attention (Llama, Qwen2, Gemma-2): every query head is a node with its own q
//! input, but the query heads of a key/value group read one key input and one value input. The
//! graph has one k and one v receiver per group, named after the group's first head
//! (`a{l}.h{g·r}.k`, r = heads per group, see [`ModelConfig::kv_leader`]): an edge into it
//! counts once and feeds every query head of the group, and removing it (or the group's q/k/v
//! edge `a{l}.h{g·r}.k -> a{l}.h{g·r}`) patches the k input of every head of the group
//! ([`receiver_members`]). Per layer the graph thus has `n_heads` q receivers and
//! `n_kv_heads` k and v receivers each. The evaluator below the graph keeps TransformerLens's
//! ungrouped view (a k or v input per query head), so activation and path patching compare
//! with TransformerLens's `ungroup_grouped_query_attention` by name.
//!
//! Parents of a receiver come in the reference's order: grouped by sender kind and layer, later
//! layers first, the MLP before the heads of its layer (for an MLP input, its own layer's heads
//! first), heads in descending order, the embedding last.

use super::node::{Node, Qkv, Receiver};
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use std::collections::BTreeMap;
use std::fmt;

/// One edge of the ACDC graph.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Edge {
    /// `sender → receiver` through the residual stream.
    Add {
        /// The component whose output is read.
        sender: Node,
        /// The input that reads it.
        receiver: Receiver,
    },
    /// A head's q, k or v input feeding the head: `a{l}.h{h}.q → a{l}.h{h}`.
    Qkv {
        /// Layer.
        layer: usize,
        /// Head.
        head: usize,
        /// Which input.
        qkv: Qkv,
    },
}

impl Edge {
    /// The receiver whose computation the edge enters (for a q/k/v edge: that head input).
    pub fn receiver(&self) -> Receiver {
        match *self {
            Edge::Add { receiver, .. } => receiver,
            Edge::Qkv { layer, head, qkv } => Receiver::Head(layer, head, qkv),
        }
    }

    /// Parse `a0.h1 -> a1.h2.q`, `embed->logits` or `a1.h2.q -> a1.h2` (`→` works too).
    pub fn parse(s: &str, cfg: &ModelConfig) -> Result<Edge> {
        let (a, b) = s
            .split_once("->")
            .or_else(|| s.split_once('→'))
            .ok_or_else(|| {
                Error::input(format!(
                    "'{s}' is not an edge; write 'SENDER -> RECEIVER', e.g. 'a0.h1 -> a1.h2.q', \
                     'm0 -> logits', or a head's input edge 'a1.h2.q -> a1.h2'"
                ))
            })?;
        let (a, b) = (a.trim(), b.trim());
        if let Ok(Receiver::Head(l, h, x)) = Receiver::parse(b, cfg) {
            check_group_receiver(l, h, x, s, cfg)?;
        }
        if let Ok(Receiver::Head(l, h, x)) = Receiver::parse(a, cfg) {
            check_group_receiver(l, h, x, s, cfg)?;
            return match Node::parse(b, cfg)? {
                Node::Head(l2, h2) if (l2, h2) == (l, h) => Ok(Edge::Qkv {
                    layer: l,
                    head: h,
                    qkv: x,
                }),
                _ => Err(Error::input(format!(
                    "'{s}': a head input ({a}) only feeds its own head (a{l}.h{h})"
                ))),
            };
        }
        let sender = Node::parse(a, cfg)?;
        let receiver = Receiver::parse(b, cfg)?;
        if !sender.feeds(&receiver, cfg) {
            return Err(Error::input(format!(
                "'{s}': {sender} does not feed {receiver} (a sender only feeds later receivers; \
                 a head does not feed the heads of its own layer)"
            )));
        }
        Ok(Edge::Add { sender, receiver })
    }
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edge::Add { sender, receiver } => write!(f, "{sender} -> {receiver}"),
            Edge::Qkv { layer, head, qkv } => {
                write!(f, "a{layer}.h{head}.{} -> a{layer}.h{head}", qkv.letter())
            }
        }
    }
}

/// Options of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GraphOptions {
    /// Count the q/k/v input → head edges (the reference's graph); off: AutoCircuit's and
    /// EAP-IG's graph.
    pub split_qkv: bool,
}

impl Default for GraphOptions {
    fn default() -> Self {
        GraphOptions { split_qkv: true }
    }
}

/// Every sender of a model, in the reference's order: the latest layer first, its MLP before
/// its heads, heads descending, the embedding last.
pub fn senders_reverse(cfg: &ModelConfig) -> Vec<Node> {
    let mut v = Vec::new();
    for l in (0..cfg.n_layers).rev() {
        if cfg.has_mlp() {
            v.push(Node::Mlp(l));
        }
        for h in (0..cfg.n_heads).rev() {
            v.push(Node::Head(l, h));
        }
    }
    v.push(Node::Embed);
    v
}

/// The parents of `r`, grouped as the reference groups them (one group per hook name: an
/// MLP, one layer's heads, the embedding), groups and members in the reference's order.
pub fn parent_groups(r: &Receiver, cfg: &ModelConfig) -> Vec<Vec<Node>> {
    let top = r.layer(cfg.n_layers);
    let mut groups = Vec::new();
    // An MLP input reads its own layer's heads first (they were connected right after it).
    if let Receiver::Mlp(l) = *r {
        let own: Vec<Node> = (0..cfg.n_heads)
            .rev()
            .map(|h| Node::Head(l, h))
            .filter(|n| n.feeds(r, cfg))
            .collect();
        if !own.is_empty() {
            groups.push(own);
        }
    }
    for l in (0..top).rev() {
        if cfg.has_mlp() {
            groups.push(vec![Node::Mlp(l)]);
        }
        groups.push((0..cfg.n_heads).rev().map(|h| Node::Head(l, h)).collect());
    }
    groups.push(vec![Node::Embed]);
    groups
}

/// Every sender that feeds `r`, in the reference's parent order.
pub fn parents(r: &Receiver, cfg: &ModelConfig) -> Vec<Node> {
    parent_groups(r, cfg).into_iter().flatten().collect()
}

/// An edge into a non-first head's k or v input of a grouped-query model is an error that
/// names the group's receiver.
fn check_group_receiver(l: usize, h: usize, x: Qkv, s: &str, cfg: &ModelConfig) -> Result<()> {
    if x != Qkv::Q && cfg.kv_leader(h) != h {
        let g = cfg.kv_group(h);
        return Err(Error::input(format!(
            "'{s}': in this grouped-query model heads {}–{} of a layer read one {} input, which \
             the edge graph names a{l}.h{}.{}",
            g.start,
            g.end - 1,
            if x == Qkv::K { "key" } else { "value" },
            g.start,
            x.letter()
        )));
    }
    Ok(())
}

/// The heads whose `x` input is a receiver of the edge graph, descending: every head's q input;
/// the k and v inputs of each key/value group's first head (all heads without grouping).
pub fn graph_heads(cfg: &ModelConfig, x: Qkv) -> Vec<usize> {
    (0..cfg.n_heads)
        .rev()
        .filter(|&h| x == Qkv::Q || cfg.kv_leader(h) == h)
        .collect()
}

/// The evaluator's receivers an edge-graph receiver stands for: a grouped k or v receiver
/// stands for that input of every query head of its group; any other receiver for itself.
pub fn receiver_members(r: &Receiver, cfg: &ModelConfig) -> Vec<Receiver> {
    match *r {
        Receiver::Head(l, h, x) if x != Qkv::Q && cfg.is_grouped() => {
            cfg.kv_group(h).map(|m| Receiver::Head(l, m, x)).collect()
        }
        _ => vec![*r],
    }
}

/// The edge-graph receiver that the evaluator's receiver `r` belongs to: a grouped k or v
/// input is named by its group's first head (the inverse of [`receiver_members`]).
pub fn graph_receiver(r: Receiver, cfg: &ModelConfig) -> Receiver {
    match r {
        Receiver::Head(l, h, x) if x != Qkv::Q => Receiver::Head(l, cfg.kv_leader(h), x),
        _ => r,
    }
}

/// The inputs of a component: a head's q, k and v inputs, an MLP's input; `None` stands for
/// the logits (one input); the embedding has none.
pub fn inputs_of(c: Option<Node>) -> Vec<Receiver> {
    match c {
        None => vec![Receiver::Logits],
        Some(Node::Head(l, h)) => Qkv::ALL.iter().map(|&x| Receiver::Head(l, h, x)).collect(),
        Some(Node::Mlp(l)) => vec![Receiver::Mlp(l)],
        Some(Node::Embed) => vec![],
    }
}

/// Every sender that feeds `r`, in the order the forward pass computes them: the embedding,
/// then per layer its heads (ascending) and its MLP — [`parents`] reversed.
pub fn senders(r: &Receiver, cfg: &ModelConfig) -> Vec<Node> {
    let mut v = parents(r, cfg);
    v.reverse();
    v
}

/// One visit of the reference's sweep: the addition edges into a receiver, or a head's q/k/v
/// input → head edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// The edges into a receiver.
    Receiver(Receiver),
    /// The edge from a head's q, k or v input to the head.
    Qkv(usize, usize, Qkv),
}

/// The reference's sweep order, the one place it is written: the logits, then per layer
/// (latest first) the MLP input, the q/k/v edges of every head (with `split_qkv`: all v, then
/// all k, then all q, heads descending) and the heads' v, k and q inputs (heads descending).
/// The edge numbering ([`EdgeGraph`]), the receivers' order ([`receivers_reverse`]) and ACDC's
/// steps all follow it.
pub fn visit_order(cfg: &ModelConfig, split_qkv: bool) -> Vec<Visit> {
    let mut v = vec![Visit::Receiver(Receiver::Logits)];
    for l in (0..cfg.n_layers).rev() {
        if cfg.has_mlp() {
            v.push(Visit::Receiver(Receiver::Mlp(l)));
        }
        if split_qkv {
            for x in [Qkv::V, Qkv::K, Qkv::Q] {
                for h in graph_heads(cfg, x) {
                    v.push(Visit::Qkv(l, h, x));
                }
            }
        }
        for x in [Qkv::V, Qkv::K, Qkv::Q] {
            for h in graph_heads(cfg, x) {
                v.push(Visit::Receiver(Receiver::Head(l, h, x)));
            }
        }
    }
    v
}

/// Every receiver, in the reference's sweep order ([`visit_order`]): the logits, then per
/// layer (latest first) the MLP input, the heads' v inputs (heads descending), k inputs, q
/// inputs.
pub fn receivers_reverse(cfg: &ModelConfig) -> Vec<Receiver> {
    visit_order(cfg, false)
        .into_iter()
        .filter_map(|v| match v {
            Visit::Receiver(r) => Some(r),
            Visit::Qkv(..) => None,
        })
        .collect()
}

/// The edge graph of a model, edges numbered in the reference's sweep order.
#[derive(Debug, Clone)]
pub struct EdgeGraph {
    /// The options it was built with.
    pub options: GraphOptions,
    edges: Vec<Edge>,
    index: BTreeMap<Edge, usize>,
}

impl EdgeGraph {
    /// Build the graph of a model of this shape.
    pub fn new(cfg: &ModelConfig, options: GraphOptions) -> Self {
        // Edges are numbered in the order the sweep visits them.
        let mut edges = vec![];
        for v in visit_order(cfg, options.split_qkv) {
            match v {
                Visit::Receiver(r) => {
                    for sender in parents(&r, cfg) {
                        edges.push(Edge::Add {
                            sender,
                            receiver: r,
                        });
                    }
                }
                Visit::Qkv(layer, head, qkv) => edges.push(Edge::Qkv { layer, head, qkv }),
            }
        }
        let index = edges.iter().enumerate().map(|(i, e)| (*e, i)).collect();
        EdgeGraph {
            options,
            edges,
            index,
        }
    }

    /// Number of edges.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// Whether the graph has no edges.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// All edges, in sweep order.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The edge with this number.
    pub fn edge(&self, i: usize) -> Edge {
        self.edges[i]
    }

    /// The number of an edge (`None` if it is not in the graph).
    pub fn id(&self, e: &Edge) -> Option<usize> {
        self.index.get(e).copied()
    }

    /// The number of the addition edge `sender → receiver`.
    pub fn add_id(&self, sender: Node, receiver: Receiver) -> Option<usize> {
        self.id(&Edge::Add { sender, receiver })
    }

    /// The number of the q/k/v edge of a head input (`None` without the q/k/v split).
    pub fn qkv_id(&self, layer: usize, head: usize, qkv: Qkv) -> Option<usize> {
        self.id(&Edge::Qkv { layer, head, qkv })
    }
}

/// Number of nodes of the node-level graph (every head and every MLP).
pub fn node_count(cfg: &ModelConfig) -> usize {
    cfg.n_layers * (cfg.n_heads + usize::from(cfg.has_mlp()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, Family};

    fn cfg(n_layers: usize, n_heads: usize, d_mlp: usize) -> ModelConfig {
        ModelConfig {
            family: Family::Gpt2,
            n_layers,
            d_model: 64 * n_heads,
            n_heads,
            d_head: 64,
            d_mlp,
            d_vocab: 100,
            n_ctx: 16,
            eps: 1e-5,
            act: Activation::GeluNew,
            rotary_dim: 0,
            rotary_base: 10000.0,
            parallel_residual: false,
            scale_attn_by_inverse_layer_idx: false,
            bos_token_id: None,
            arch: Default::default(),
        }
    }

    #[test]
    fn reference_edge_counts() {
        let gpt2 = cfg(12, 12, 3072);
        assert_eq!(
            EdgeGraph::new(&gpt2, GraphOptions { split_qkv: true }).len(),
            32_923
        );
        assert_eq!(
            EdgeGraph::new(&gpt2, GraphOptions { split_qkv: false }).len(),
            32_491
        );
        let attn2 = cfg(2, 8, 0);
        assert_eq!(
            EdgeGraph::new(&attn2, GraphOptions { split_qkv: true }).len(),
            305
        );
        let docstring = cfg(4, 8, 0);
        assert_eq!(
            EdgeGraph::new(&docstring, GraphOptions::default()).len(),
            1_377
        );
        assert_eq!(node_count(&gpt2), 156);
    }

    #[test]
    fn parent_order_and_parse() {
        let c = cfg(2, 2, 8);
        let p: Vec<String> = parents(&Receiver::Mlp(1), &c)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(p, ["a1.h1", "a1.h0", "m0", "a0.h1", "a0.h0", "embed"]);
        let p: Vec<String> = parents(&Receiver::Logits, &c)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(p, ["m1", "a1.h1", "a1.h0", "m0", "a0.h1", "a0.h0", "embed"]);
        let g = EdgeGraph::new(&c, GraphOptions::default());
        for e in g.edges() {
            assert_eq!(Edge::parse(&e.to_string(), &c).unwrap(), *e);
        }
        assert!(Edge::parse("a1.h0 -> a1.h1.q", &c).is_err());
        assert!(Edge::parse("a1.h0.q -> a1.h1", &c).is_err());
    }
}
