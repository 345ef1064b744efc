//! Activation names as strings: the full list for a model, and filters over it (patterns
//! with `*`, as users type them).

use super::hook_name::{unknown_name, HookName};
use crate::error::Result;
use crate::model::ModelConfig;

/// Every activation name the forward pass can emit for a model of this shape, as strings
/// (see [`HookName::all`] for the typed list).
pub fn all_names(cfg: &ModelConfig) -> Vec<String> {
    HookName::all(cfg).iter().map(ToString::to_string).collect()
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

    /// Keep exactly these activations.
    pub fn of(names: &[HookName]) -> Self {
        NameFilter {
            patterns: names.iter().map(ToString::to_string).collect(),
        }
    }

    /// Build a filter, checking every pattern matches at least one name of this model; an
    /// unknown name gets an error listing close matches.
    pub fn new(patterns: &[String], cfg: &ModelConfig) -> Result<Self> {
        let names = all_names(cfg);
        for p in patterns {
            if !names.iter().any(|n| glob(p, n)) {
                return Err(unknown_name(p, &names));
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
