//! TransformerLens activation names: the full list for a model, and filters over it.

use crate::error::{Error, Result};
use crate::model::ModelConfig;

/// Every activation name the forward pass can emit for a model of this shape.
pub fn all_names(cfg: &ModelConfig) -> Vec<String> {
    let mut v = vec!["hook_embed".to_string()];
    if cfg.rotary_dim == 0 {
        v.push("hook_pos_embed".into());
    }
    for l in 0..cfg.n_layers {
        let b = |s: &str| format!("blocks.{l}.{s}");
        v.push(b("hook_resid_pre"));
        for x in ["q", "k", "v"] {
            v.push(b(&format!("hook_{x}_input")));
        }
        v.push(b("ln1.hook_scale"));
        for x in ["q", "k", "v"] {
            v.push(b(&format!("attn.hook_{x}")));
        }
        if cfg.rotary_dim > 0 {
            v.push(b("attn.hook_rot_q"));
            v.push(b("attn.hook_rot_k"));
        }
        for s in [
            "attn.hook_attn_scores",
            "attn.hook_pattern",
            "attn.hook_z",
            "attn.hook_result",
            "hook_attn_out",
        ] {
            v.push(b(s));
        }
        if !cfg.parallel_residual {
            v.push(b("hook_resid_mid"));
        }
        if cfg.has_mlp() {
            for s in [
                "hook_mlp_in",
                "ln2.hook_scale",
                "mlp.hook_pre",
                "mlp.hook_post",
                "hook_mlp_out",
            ] {
                v.push(b(s));
            }
            if cfg.arch.gated_mlp {
                v.push(b("mlp.hook_pre_linear"));
            }
        }
        v.push(b("hook_resid_post"));
    }
    v.push("ln_final.hook_scale".into());
    v.push("unembed.hook_in".into());
    v.push("unembed.hook_out".into());
    v
}

/// Which activations to keep: exact names or patterns with `*` (e.g. `blocks.*.attn.hook_z`).
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    patterns: Vec<String>,
}

impl NameFilter {
    /// Keep nothing.
    pub fn none() -> Self {
        NameFilter::default()
    }

    /// Keep everything (beware: a full cache of a large model does not fit in memory).
    pub fn all() -> Self {
        NameFilter {
            patterns: vec!["*".into()],
        }
    }

    /// Build a filter, checking every pattern matches at least one name of this model; an
    /// unknown name gets an error listing close matches.
    pub fn new(patterns: &[String], cfg: &ModelConfig) -> Result<Self> {
        let names = all_names(cfg);
        for p in patterns {
            if !names.iter().any(|n| glob(p, n)) {
                let mut close: Vec<(usize, &String)> =
                    names.iter().map(|n| (edit_distance(p, n), n)).collect();
                close.sort();
                let hints: Vec<&str> = close.iter().take(4).map(|(_, n)| n.as_str()).collect();
                return Err(Error::input(format!(
                    "unknown activation name '{p}'; did you mean {}? (names follow \
                     TransformerLens, e.g. blocks.0.attn.hook_z; `*` matches anything)",
                    hints.join(", ")
                )));
            }
        }
        Ok(NameFilter {
            patterns: patterns.to_vec(),
        })
    }

    /// Whether `name` is kept.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| glob(p, name))
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(j) => rest = &rest[j + part.len()..],
                None => return false,
            }
        }
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("blocks.*.attn.hook_z", "blocks.3.attn.hook_z"));
        assert!(!glob("blocks.*.attn.hook_z", "blocks.3.attn.hook_q"));
        assert!(glob("*", "anything"));
        assert!(glob("hook_embed", "hook_embed"));
    }
}
