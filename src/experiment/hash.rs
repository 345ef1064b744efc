//! The hashes that pin a result to its inputs: one for a model, one for a dataset, one for any
//! text (a hypothesis, a config), all SHA-256 in lower-case hex.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of bytes, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of a dataset as JSON lines (prompts, tokens, positions, answers, corruptions).
pub fn dataset_hash(ds: &Dataset) -> String {
    sha256_hex(ds.to_jsonl().as_bytes())
}

/// The files a model folder's hash covers: `config.json`, the safetensors weights and the
/// shard index, sorted by name.
fn model_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n == "config.json"
                || n.ends_with(".safetensors")
                || n.ends_with(".safetensors.index.json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// SHA-256 over a model folder's `config.json`, weight files and shard index: each file's name,
/// then its bytes, in name order. The same files give the same hash whichever command reads
/// them (`scrub`, `acdc`, the analysis commands).
pub fn model_dir_hash(dir: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for f in model_files(dir)? {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        h.update(name.as_bytes());
        let mut file = std::fs::File::open(&f).map_err(|e| Error::io(&f, e))?;
        loop {
            let k = file.read(&mut buf).map_err(|e| Error::io(&f, e))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
        }
    }
    Ok(hex(&h.finalize()))
}

/// The hash of a model: [`model_dir_hash`] of its folder; a model built in memory (no folder)
/// hashes its shape, its activation names and its embedding weights.
pub fn model_hash(model: &Model) -> Result<String> {
    if !model.dir.as_os_str().is_empty() {
        return model_dir_hash(&model.dir);
    }
    let mut h = Sha256::new();
    h.update(
        serde_json::to_string(&model.cfg)
            .unwrap_or_default()
            .as_bytes(),
    );
    for v in crate::eval::all_names(&model.cfg) {
        h.update(v.as_bytes());
    }
    let w = model
        .w
        .w_e
        .flatten_all()?
        .to_dtype(candle_core::DType::F64)?;
    for x in w.to_vec1::<f64>()? {
        h.update(x.to_le_bytes());
    }
    Ok(hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_of_a_known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn folder_hash_covers_names_and_bytes_and_ignores_other_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), b"{}").unwrap();
        std::fs::write(d.path().join("model.safetensors"), b"w").unwrap();
        let a = model_dir_hash(d.path()).unwrap();
        std::fs::write(d.path().join("tokenizer.json"), b"t").unwrap();
        assert_eq!(
            model_dir_hash(d.path()).unwrap(),
            a,
            "tokenizer is not hashed"
        );
        std::fs::write(d.path().join("model.safetensors"), b"x").unwrap();
        assert_ne!(model_dir_hash(d.path()).unwrap(), a, "weights are hashed");
        std::fs::rename(
            d.path().join("model.safetensors"),
            d.path().join("model-00001-of-00001.safetensors"),
        )
        .unwrap();
        std::fs::write(d.path().join("model-00001-of-00001.safetensors"), b"w").unwrap();
        assert_ne!(
            model_dir_hash(d.path()).unwrap(),
            a,
            "file names are hashed"
        );
    }
}
