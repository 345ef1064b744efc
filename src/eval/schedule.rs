//! The schedule of a run: the half-layers it computes, and the cached state it starts from.
//!
//! A forward pass is a sequence of stages: the embedding, then per layer its attention and its
//! MLP half (the residual sums and, where the model has one, the MLP), then the logits. A run
//! may start at any stage from a previous run on the same tokens ([`RunOptions::from`]:
//! everything before the stage is taken from it) and stop before any stage
//! ([`RunOptions::until`]). Scrubbing steps every path state one half-layer at a time this way;
//! patching sweeps start at the first patched stage.
//!
//! [`RunOptions::from`]: super::RunOptions::from
//! [`RunOptions::until`]: super::RunOptions::until

use std::cmp::Ordering;

/// A point of the forward pass, ordered as the pass runs:
/// `Embed < Attn(0) < Mlp(0) < Attn(1) < … < Mlp(n − 1) < Logits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The token and positional embeddings.
    Embed,
    /// A layer's attention: its q/k/v inputs, the heads, `hook_attn_out`.
    Attn(usize),
    /// A layer's second half: `hook_resid_mid`, the MLP (if any), `hook_resid_post`.
    Mlp(usize),
    /// The final LayerNorm and the unembedding.
    Logits,
}

impl Stage {
    /// The stage of a layer index as receivers count them (`n_layers` = the logits).
    pub fn layer_start(layer: usize, n_layers: usize) -> Stage {
        if layer >= n_layers {
            Stage::Logits
        } else {
            Stage::Attn(layer)
        }
    }

    /// The stage that follows this one in a model with `n_layers` layers (`None` after the
    /// logits).
    pub fn next(self, n_layers: usize) -> Option<Stage> {
        match self {
            Stage::Embed => Some(Stage::layer_start(0, n_layers)),
            Stage::Attn(l) => Some(Stage::Mlp(l)),
            Stage::Mlp(l) => Some(Stage::layer_start(l + 1, n_layers)),
            Stage::Logits => None,
        }
    }

    fn key(self) -> (usize, usize) {
        match self {
            Stage::Embed => (0, 0),
            Stage::Attn(l) => (l + 1, 0),
            Stage::Mlp(l) => (l + 1, 1),
            Stage::Logits => (usize::MAX, 0),
        }
    }
}

impl PartialOrd for Stage {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Stage {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_run_in_order() {
        let mut s = Stage::Embed;
        let mut seen = vec![s];
        while let Some(n) = s.next(2) {
            assert!(n > s);
            seen.push(n);
            s = n;
        }
        assert_eq!(
            seen,
            [
                Stage::Embed,
                Stage::Attn(0),
                Stage::Mlp(0),
                Stage::Attn(1),
                Stage::Mlp(1),
                Stage::Logits
            ]
        );
        assert_eq!(Stage::layer_start(2, 2), Stage::Logits);
    }
}
