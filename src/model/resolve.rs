//! Where `--model` points: a folder, a Hugging Face id in the local cache, or a shipped model.
//!
//! Nothing is ever downloaded. When a model cannot be found, the error lists every place that
//! was looked at and how to get the model there.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The folder holding the models shipped with circuitscope (`models/` in the repository).
pub fn shipped_models_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CIRCUITSCOPE_MODELS") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn hf_hub_cache() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Ok(p) = std::env::var("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    std::env::var("HOME")
        .ok()
        .map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// Resolve a `--model` argument to a folder.
///
/// Tried in order: an existing folder; a model shipped in `models/` by that name; a Hugging Face
/// id (`ORG/NAME` or `NAME`) in the local hub cache, at the revision named by `refs/main` (else
/// the newest snapshot).
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let mut looked = Vec::new();
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    looked.push(format!("the folder {}", as_path.display()));

    let shipped = shipped_models_dir().join(spec);
    if shipped.is_dir() {
        return Ok(shipped);
    }
    looked.push(format!(
        "the shipped models in {}",
        shipped_models_dir().display()
    ));

    if let Some(cache) = hf_hub_cache() {
        let repo = cache.join(format!("models--{}", spec.replace('/', "--")));
        if let Some(dir) = snapshot_dir(&repo)? {
            return Ok(dir);
        }
        looked.push(format!("the Hugging Face cache {}", repo.display()));
    }
    Err(Error::input(format!(
        "model '{spec}' not found; looked in {}.\n\
         circuitscope never downloads. Give --model a folder holding config.json, \
         model.safetensors and tokenizer.json, or put the model in the Hugging Face cache on a \
         machine with network access (e.g. `huggingface-cli download {spec}`) and copy the cache \
         here, or use a shipped model (`ls {}`).",
        looked.join("; "),
        shipped_models_dir().display()
    )))
}

/// The snapshot folder of a cached Hugging Face repository, if any.
fn snapshot_dir(repo: &Path) -> Result<Option<PathBuf>> {
    let snapshots = repo.join("snapshots");
    if !snapshots.is_dir() {
        return Ok(None);
    }
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs/main")) {
        let dir = snapshots.join(rev.trim());
        if dir.is_dir() {
            return Ok(Some(dir));
        }
    }
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let entries = std::fs::read_dir(&snapshots).map_err(|e| Error::io(&snapshots, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
            newest = Some((modified, path));
        }
    }
    Ok(newest.map(|(_, p)| p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_cache_snapshot_by_ref() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("models--org--tiny");
        std::fs::create_dir_all(repo.join("snapshots/abc123")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots/old")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        let dir = snapshot_dir(&repo).unwrap().unwrap();
        assert!(dir.ends_with("snapshots/abc123"));
    }

    #[test]
    fn missing_model_says_where_it_looked() {
        let err = resolve_model("no-such-org/no-such-model")
            .unwrap_err()
            .to_string();
        assert!(err.contains("looked in"), "{err}");
        assert!(err.contains("never downloads"), "{err}");
    }
}
