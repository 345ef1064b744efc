//! Typed activation names: a layer and a site as data, printed as TransformerLens names.
//!
//! Inside the library every activation is a [`HookName`]; strings such as
//! `blocks.3.attn.hook_z` are parsed only where a user types them ([`HookName::parse`], with
//! close-match suggestions) and printed with [`std::fmt::Display`].

use super::schedule::Stage;
use crate::error::{Error, Result};
use crate::graph::Qkv;
use crate::model::ModelConfig;
use std::fmt;

/// A site inside one transformer block, in the order the forward pass emits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    /// `hook_resid_pre`: the residual stream entering the block.
    ResidPre,
    /// `hook_q_input`: every head's query input, `[batch, pos, n_heads, d_model]`.
    QInput,
    /// `hook_k_input`.
    KInput,
    /// `hook_v_input`.
    VInput,
    /// `ln1.hook_scale`.
    Ln1Scale,
    /// `attn.hook_q`: `[batch, pos, n_heads, d_head]`.
    Q,
    /// `attn.hook_k`.
    K,
    /// `attn.hook_v`.
    V,
    /// `attn.hook_rot_q` (rotary models).
    RotQ,
    /// `attn.hook_rot_k` (rotary models).
    RotK,
    /// `attn.hook_attn_scores`: `[batch, n_heads, q_pos, k_pos]`.
    AttnScores,
    /// `attn.hook_pattern`.
    Pattern,
    /// `attn.hook_z`: `[batch, pos, n_heads, d_head]`.
    Z,
    /// `attn.hook_result`: every head's output, `[batch, pos, n_heads, d_model]`.
    Result,
    /// `hook_attn_out`: all heads plus `b_O`.
    AttnOut,
    /// `hook_resid_mid` (sequential residual models).
    ResidMid,
    /// `hook_mlp_in`.
    MlpIn,
    /// `ln2.hook_scale`.
    Ln2Scale,
    /// `mlp.hook_pre` (a gated MLP's gate).
    MlpPre,
    /// `mlp.hook_pre_linear` (gated MLPs: the linear branch).
    MlpPreLinear,
    /// `mlp.hook_post`.
    MlpPost,
    /// `hook_mlp_out`.
    MlpOut,
    /// `hook_resid_post`.
    ResidPost,
}

impl Site {
    /// Every site, in emission order.
    pub const ALL: [Site; 23] = [
        Site::ResidPre,
        Site::QInput,
        Site::KInput,
        Site::VInput,
        Site::Ln1Scale,
        Site::Q,
        Site::K,
        Site::V,
        Site::RotQ,
        Site::RotK,
        Site::AttnScores,
        Site::Pattern,
        Site::Z,
        Site::Result,
        Site::AttnOut,
        Site::ResidMid,
        Site::MlpIn,
        Site::Ln2Scale,
        Site::MlpPre,
        Site::MlpPreLinear,
        Site::MlpPost,
        Site::MlpOut,
        Site::ResidPost,
    ];

    /// The name after `blocks.{layer}.`.
    pub fn suffix(self) -> &'static str {
        match self {
            Site::ResidPre => "hook_resid_pre",
            Site::QInput => "hook_q_input",
            Site::KInput => "hook_k_input",
            Site::VInput => "hook_v_input",
            Site::Ln1Scale => "ln1.hook_scale",
            Site::Q => "attn.hook_q",
            Site::K => "attn.hook_k",
            Site::V => "attn.hook_v",
            Site::RotQ => "attn.hook_rot_q",
            Site::RotK => "attn.hook_rot_k",
            Site::AttnScores => "attn.hook_attn_scores",
            Site::Pattern => "attn.hook_pattern",
            Site::Z => "attn.hook_z",
            Site::Result => "attn.hook_result",
            Site::AttnOut => "hook_attn_out",
            Site::ResidMid => "hook_resid_mid",
            Site::MlpIn => "hook_mlp_in",
            Site::Ln2Scale => "ln2.hook_scale",
            Site::MlpPre => "mlp.hook_pre",
            Site::MlpPreLinear => "mlp.hook_pre_linear",
            Site::MlpPost => "mlp.hook_post",
            Site::MlpOut => "hook_mlp_out",
            Site::ResidPost => "hook_resid_post",
        }
    }

    /// A head input site: `hook_q_input`, `hook_k_input` or `hook_v_input`.
    pub fn input(x: Qkv) -> Site {
        match x {
            Qkv::Q => Site::QInput,
            Qkv::K => Site::KInput,
            Qkv::V => Site::VInput,
        }
    }

    /// Queries, keys or values: `attn.hook_q`, `attn.hook_k`, `attn.hook_v`.
    pub fn qkv(x: Qkv) -> Site {
        match x {
            Qkv::Q => Site::Q,
            Qkv::K => Site::K,
            Qkv::V => Site::V,
        }
    }

    /// Whether the site belongs to the MLP half of the block (computed after the attention;
    /// a run may start there, keeping a cached attention).
    pub fn in_mlp_half(self) -> bool {
        self >= Site::ResidMid
    }

    /// Whether a model of this shape has the site.
    pub fn exists(self, cfg: &ModelConfig) -> bool {
        match self {
            Site::RotQ | Site::RotK => cfg.rotary_dim > 0,
            Site::ResidMid => !cfg.parallel_residual,
            Site::MlpIn | Site::Ln2Scale | Site::MlpPre | Site::MlpPost | Site::MlpOut => {
                cfg.has_mlp()
            }
            Site::MlpPreLinear => cfg.has_mlp() && cfg.arch.gated_mlp,
            _ => true,
        }
    }
}

/// A named activation of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookName {
    /// `hook_embed`: the token embedding.
    Embed,
    /// `hook_pos_embed`: the positional embedding (models without rotary).
    PosEmbed,
    /// `blocks.{layer}.{site}`.
    Block(usize, Site),
    /// `ln_final.hook_scale`.
    LnFinalScale,
    /// `unembed.hook_in`: the final LayerNorm's output.
    UnembedIn,
    /// `unembed.hook_out`: the logits.
    UnembedOut,
}

impl HookName {
    /// The layer of a block activation.
    pub fn layer(self) -> Option<usize> {
        match self {
            HookName::Block(l, _) => Some(l),
            _ => None,
        }
    }

    /// The site of a block activation.
    pub fn site(self) -> Option<Site> {
        match self {
            HookName::Block(_, s) => Some(s),
            _ => None,
        }
    }

    /// The stage of the forward pass that emits this activation: a run that starts from a
    /// cached state at this stage (or earlier) recomputes it.
    pub fn stage(self) -> Stage {
        match self {
            HookName::Embed | HookName::PosEmbed => Stage::Embed,
            HookName::Block(l, s) if s.in_mlp_half() => Stage::Mlp(l),
            HookName::Block(l, _) => Stage::Attn(l),
            HookName::LnFinalScale | HookName::UnembedIn | HookName::UnembedOut => Stage::Logits,
        }
    }

    /// Every activation a model of this shape emits, in emission order.
    pub fn all(cfg: &ModelConfig) -> Vec<HookName> {
        let mut v = vec![HookName::Embed];
        if cfg.rotary_dim == 0 {
            v.push(HookName::PosEmbed);
        }
        for l in 0..cfg.n_layers {
            v.extend(
                Site::ALL
                    .iter()
                    .filter(|s| s.exists(cfg))
                    .map(|&s| HookName::Block(l, s)),
            );
        }
        v.extend([
            HookName::LnFinalScale,
            HookName::UnembedIn,
            HookName::UnembedOut,
        ]);
        v
    }

    /// Parse a TransformerLens name such as `blocks.3.attn.hook_z`, checking the model has
    /// it; an unknown name gets an error listing close matches.
    pub fn parse(s: &str, cfg: &ModelConfig) -> Result<HookName> {
        let all = HookName::all(cfg);
        if let Some(n) = all.iter().find(|n| n.to_string() == s) {
            return Ok(*n);
        }
        let strings: Vec<String> = all.iter().map(ToString::to_string).collect();
        Err(unknown_name(s, &strings))
    }
}

/// "unknown activation name" with the four closest names of the model.
pub(crate) fn unknown_name(given: &str, names: &[String]) -> Error {
    let mut close: Vec<(usize, &String)> =
        names.iter().map(|n| (edit_distance(given, n), n)).collect();
    close.sort();
    let hints: Vec<&str> = close.iter().take(4).map(|(_, n)| n.as_str()).collect();
    Error::input(format!(
        "unknown activation name '{given}'; did you mean {}? (names follow TransformerLens, e.g. \
         blocks.0.attn.hook_z; `*` matches anything)",
        hints.join(", ")
    ))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl fmt::Display for HookName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookName::Embed => f.write_str("hook_embed"),
            HookName::PosEmbed => f.write_str("hook_pos_embed"),
            HookName::Block(l, s) => write!(f, "blocks.{l}.{}", s.suffix()),
            HookName::LnFinalScale => f.write_str("ln_final.hook_scale"),
            HookName::UnembedIn => f.write_str("unembed.hook_in"),
            HookName::UnembedOut => f.write_str("unembed.hook_out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, Family};

    fn cfg(rotary_dim: usize, parallel: bool, d_mlp: usize) -> ModelConfig {
        ModelConfig {
            family: Family::Gpt2,
            n_layers: 2,
            d_model: 16,
            n_heads: 2,
            d_head: 8,
            d_mlp,
            d_vocab: 10,
            n_ctx: 8,
            eps: 1e-5,
            act: Activation::GeluNew,
            rotary_dim,
            rotary_base: 10000.0,
            parallel_residual: parallel,
            scale_attn_by_inverse_layer_idx: false,
            bos_token_id: None,
            arch: Default::default(),
        }
    }

    #[test]
    fn names_print_as_transformer_lens_and_parse_back() {
        for c in [cfg(0, false, 32), cfg(4, true, 32), cfg(0, false, 0)] {
            for n in HookName::all(&c) {
                assert_eq!(HookName::parse(&n.to_string(), &c).unwrap(), n);
            }
        }
        let c = cfg(0, false, 32);
        assert_eq!(
            HookName::Block(1, Site::Z).to_string(),
            "blocks.1.attn.hook_z"
        );
        assert_eq!(
            HookName::Block(0, Site::QInput).to_string(),
            "blocks.0.hook_q_input"
        );
        let e = HookName::parse("blocks.1.attn.hook_zz", &c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean blocks.1.attn.hook_z"), "{e}");
        assert!(HookName::parse("blocks.2.attn.hook_z", &c).is_err());
        assert!(HookName::parse("blocks.0.hook_mlp_out", &cfg(0, false, 0)).is_err());
    }

    #[test]
    fn stages_follow_the_forward_order() {
        assert_eq!(HookName::Block(3, Site::ResidPre).stage(), Stage::Attn(3));
        assert_eq!(HookName::Block(3, Site::AttnOut).stage(), Stage::Attn(3));
        assert_eq!(HookName::Block(3, Site::ResidMid).stage(), Stage::Mlp(3));
        assert_eq!(HookName::Block(3, Site::ResidPost).stage(), Stage::Mlp(3));
        assert_eq!(HookName::UnembedIn.stage(), Stage::Logits);
        assert!(Stage::Embed < Stage::Attn(0));
        assert!(Stage::Attn(1) < Stage::Mlp(1));
        assert!(Stage::Mlp(1) < Stage::Attn(2));
        assert!(Stage::Mlp(11) < Stage::Logits);
    }
}
