//! Components of the model graph and their short names.
//!
//! Senders: `embed`, heads `a{l}.h{h}`, MLPs `m{l}`. Receivers: a head's query, key or value
//! input `a{l}.h{h}.q|k|v`, an MLP's input `m{l}`, and `logits`.

use crate::error::{Error, Result};
use crate::model::ModelConfig;
use std::fmt;

/// A component whose output is written to the residual stream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Node {
    /// Token (and positional) embedding: TransformerLens's `blocks.0.hook_resid_pre`.
    Embed,
    /// Attention head `(layer, head)`: its `hook_result`.
    Head(usize, usize),
    /// The MLP of a layer: its `hook_mlp_out`.
    Mlp(usize),
}

/// Which input of an attention head.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Qkv {
    /// Query input.
    Q,
    /// Key input.
    K,
    /// Value input.
    V,
}

impl Qkv {
    /// All three, in q, k, v order.
    pub const ALL: [Qkv; 3] = [Qkv::Q, Qkv::K, Qkv::V];

    /// `q`, `k` or `v`.
    pub fn letter(self) -> char {
        match self {
            Qkv::Q => 'q',
            Qkv::K => 'k',
            Qkv::V => 'v',
        }
    }

    /// Index 0, 1, 2.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A component input that reads the residual stream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Receiver {
    /// A head's q, k or v input.
    Head(usize, usize, Qkv),
    /// An MLP's input.
    Mlp(usize),
    /// The unembedding (final LayerNorm input).
    Logits,
}

impl Node {
    /// The layer the node belongs to (`None` for the embedding).
    pub fn layer(&self) -> Option<usize> {
        match self {
            Node::Embed => None,
            Node::Head(l, _) | Node::Mlp(l) => Some(*l),
        }
    }

    /// Whether `self` writes to the residual stream before `r` reads it.
    pub fn feeds(&self, r: &Receiver, cfg: &ModelConfig) -> bool {
        let rl = match r {
            Receiver::Logits => return true,
            Receiver::Head(l, _, _) | Receiver::Mlp(l) => *l,
        };
        match (self, r) {
            (Node::Embed, _) => true,
            (Node::Head(l, _), Receiver::Head(..)) => *l < rl,
            (Node::Head(l, _), Receiver::Mlp(_)) => *l < rl || (*l == rl && !cfg.parallel_residual),
            (Node::Mlp(l), _) => *l < rl,
            (_, Receiver::Logits) => true,
        }
    }

    /// Parse `embed`, `a9.h6` (also `9.6`, `L9H6`) or `m3`, checking it exists in `cfg`.
    pub fn parse(s: &str, cfg: &ModelConfig) -> Result<Node> {
        let node = parse_node(s).ok_or_else(|| {
            Error::input(format!(
                "'{s}' is not a component name; write 'embed', a head as 'a9.h6' (layer 9, head \
                 6) or an MLP as 'm3'"
            ))
        })?;
        node.check(cfg)?;
        Ok(node)
    }

    /// Check the node exists in a model of this shape.
    pub fn check(&self, cfg: &ModelConfig) -> Result<()> {
        match *self {
            Node::Embed => Ok(()),
            Node::Head(l, h) if l < cfg.n_layers && h < cfg.n_heads => Ok(()),
            Node::Mlp(l) if l < cfg.n_layers && cfg.has_mlp() => Ok(()),
            Node::Mlp(_) if !cfg.has_mlp() => Err(Error::input(format!(
                "'{self}': this model is attention-only (no MLPs)"
            ))),
            _ => Err(Error::input(format!(
                "'{self}' does not exist in this model ({} layers × {} heads; layers and heads \
                 count from 0)",
                cfg.n_layers, cfg.n_heads
            ))),
        }
    }
}

fn parse_node(s: &str) -> Option<Node> {
    let s = s.trim();
    if s == "embed" {
        return Some(Node::Embed);
    }
    if let Some(rest) = s.strip_prefix('m') {
        return rest.parse().ok().map(Node::Mlp);
    }
    let (l, h) = if let Some(rest) = s.strip_prefix('a') {
        rest.split_once(".h")?
    } else if let Some(rest) = s.strip_prefix('L') {
        rest.split_once('H')?
    } else {
        s.split_once('.')?
    };
    Some(Node::Head(l.parse().ok()?, h.parse().ok()?))
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Embed => write!(f, "embed"),
            Node::Head(l, h) => write!(f, "a{l}.h{h}"),
            Node::Mlp(l) => write!(f, "m{l}"),
        }
    }
}

impl fmt::Display for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Receiver::Head(l, h, x) => write!(f, "a{l}.h{h}.{}", x.letter()),
            Receiver::Mlp(l) => write!(f, "m{l}"),
            Receiver::Logits => write!(f, "logits"),
        }
    }
}

impl Receiver {
    /// The layer whose computation starts at this receiver (`n_layers` for the logits).
    pub fn layer(&self, n_layers: usize) -> usize {
        match self {
            Receiver::Head(l, _, _) | Receiver::Mlp(l) => *l,
            Receiver::Logits => n_layers,
        }
    }

    /// Parse `a9.h6.q`, `m3` or `logits`.
    pub fn parse(s: &str, cfg: &ModelConfig) -> Result<Receiver> {
        let s = s.trim();
        if s == "logits" {
            return Ok(Receiver::Logits);
        }
        if let Some((head, x)) = s.rsplit_once('.') {
            let qkv = match x {
                "q" => Some(Qkv::Q),
                "k" => Some(Qkv::K),
                "v" => Some(Qkv::V),
                _ => None,
            };
            if let Some(qkv) = qkv {
                if let Node::Head(l, h) = Node::parse(head, cfg)? {
                    return Ok(Receiver::Head(l, h, qkv));
                }
            }
        }
        match Node::parse(s, cfg) {
            Ok(Node::Mlp(l)) => Ok(Receiver::Mlp(l)),
            _ => Err(Error::input(format!(
                "'{s}' is not a receiver; write a head input as 'a9.h6.q' (or .k, .v), an MLP \
                 as 'm3', or 'logits'"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (s, n) in [
            ("embed", Node::Embed),
            ("a9.h6", Node::Head(9, 6)),
            ("m0", Node::Mlp(0)),
        ] {
            assert_eq!(parse_node(s), Some(n));
            assert_eq!(n.to_string(), s);
        }
        assert_eq!(parse_node("9.6"), Some(Node::Head(9, 6)));
        assert_eq!(parse_node("L9H6"), Some(Node::Head(9, 6)));
        assert_eq!(parse_node("x"), None);
    }
}
