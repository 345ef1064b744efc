//! Raw tensors by name: memory-mapped safetensors files (single or sharded), or tensors
//! already in memory.
//!
//! Files are mapped, not read: a tensor's bytes are converted to the compute dtype (bf16 and
//! f16 checkpoints widen to f32 or f64) when the loader asks for it, and the mapped pages are
//! then released, so loading never holds the whole file and the converted weights at once.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One memory-mapped safetensors file and its parsed header.
struct Mapped {
    path: PathBuf,
    map: Mmap,
    /// Where the tensor data starts (after the 8-byte length and the JSON header).
    data_start: usize,
    meta: Metadata,
}

/// Raw tensors by name, with the file they came from for error messages.
pub struct TensorSource {
    tensors: HashMap<String, Tensor>,
    files: Vec<Mapped>,
    /// Tensor name → index into `files`.
    index: HashMap<String, usize>,
    origin: PathBuf,
}

impl TensorSource {
    /// Map `model.safetensors`, or every shard named in `model.safetensors.index.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.is_file() {
            vec![single.clone()]
        } else if index.is_file() {
            shard_files(dir, &index)?
        } else if dir.join("pytorch_model.bin").is_file() {
            return Err(Error::input(format!(
                "{}: only pytorch_model.bin found; convert it to safetensors with \
                 `python scripts/convert_bin.py {}` (needs torch)",
                dir.display(),
                dir.display()
            )));
        } else {
            return Err(Error::input(format!(
                "{}: no model.safetensors (nor model.safetensors.index.json with shards); \
                 save the model with save_pretrained(..., safe_serialization=True)",
                dir.display()
            )));
        };
        let mut src = TensorSource {
            tensors: HashMap::new(),
            files: Vec::with_capacity(files.len()),
            index: HashMap::new(),
            origin: if files.len() == 1 { single } else { index },
        };
        for f in files {
            let mapped = map_file(&f)?;
            let i = src.files.len();
            for name in mapped.meta.tensors().keys() {
                src.index.insert(name.clone(), i);
            }
            src.files.push(mapped);
        }
        Ok(src)
    }

    /// Wrap tensors already in memory (used by the trainer and builders).
    pub fn from_map(tensors: HashMap<String, Tensor>, origin: impl Into<PathBuf>) -> Self {
        TensorSource {
            tensors,
            files: Vec::new(),
            index: HashMap::new(),
            origin: origin.into(),
        }
    }

    /// The file (or index) the tensors come from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Find a tensor under any of the given names; check its shape; convert to `dtype`.
    pub fn get(&self, names: &[String], shape: &[usize], dtype: DType) -> Result<Tensor> {
        for n in names {
            if let Some(t) = self.tensors.get(n) {
                self.check_shape(n, t.dims(), shape)?;
                let t = t.to_dtype(dtype)?;
                crate::finite::check_weight(&t, n, &self.origin)?;
                return Ok(t);
            }
            if let Some(&i) = self.index.get(n) {
                return self.load_mapped(i, n, shape, dtype);
            }
        }
        Err(Error::input(format!(
            "{}: missing tensor '{}' (shape {:?}); the file does not hold a complete model of \
             the family config.json names",
            self.origin.display(),
            names[0],
            shape
        )))
    }

    /// Whether any tensor is stored in float64 (wider than float32).
    pub fn holds_f64(&self) -> bool {
        self.tensors.values().any(|t| t.dtype() == DType::F64)
            || self
                .files
                .iter()
                .any(|f| f.meta.tensors().values().any(|i| i.dtype == Dtype::F64))
    }

    /// Whether a tensor of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name) || self.index.contains_key(name)
    }

    fn check_shape(&self, name: &str, got: &[usize], want: &[usize]) -> Result<()> {
        if got != want {
            return Err(Error::input(format!(
                "{}: tensor '{name}' has shape {got:?} but config.json implies {want:?}; the \
                 weights do not belong to this config",
                self.origin.display(),
            )));
        }
        Ok(())
    }

    fn load_mapped(&self, i: usize, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let f = &self.files[i];
        let info = f
            .meta
            .info(name)
            .ok_or_else(|| Error::input(format!("{}: no tensor '{name}'", f.path.display())))?;
        self.check_shape(name, &info.shape, shape)?;
        let file_dtype = match info.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::F64 => DType::F64,
            other => {
                return Err(Error::input(format!(
                    "{}: tensor '{name}' is stored as {other:?}; circuitscope loads f32, f16, \
                     bf16 and f64 weights (dequantise the checkpoint first)",
                    f.path.display()
                )))
            }
        };
        let (a, b) = info.data_offsets;
        let (start, end) = (f.data_start + a, f.data_start + b);
        if end > f.map.len() || a > b {
            return Err(Error::input(format!(
                "{}: tensor '{name}' lies outside the file (truncated download?)",
                f.path.display()
            )));
        }
        let raw = Tensor::from_raw_buffer(&f.map[start..end], file_dtype, shape, &Device::Cpu)?;
        let t = raw.to_dtype(dtype)?;
        crate::finite::check_weight(&t, name, &f.path)?;
        // The bytes are copied: give the mapped pages back so that the file and the
        // converted weights are never resident together.
        // SAFETY: the mapping is read-only and file-backed; after DONTNEED a later read of
        // these pages faults them in again from the file, so no reference can observe a change.
        unsafe {
            let _ = f.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                start,
                end - start,
            );
        }
        Ok(t)
    }
}

/// The shard files listed in a `model.safetensors.index.json`, sorted and deduplicated.
fn shard_files(dir: &Path, index: &Path) -> Result<Vec<PathBuf>> {
    let v: serde_json::Value = crate::json_file::read(index, |e| format!("malformed JSON: {e}"))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::input(format!("{}: no 'weight_map' object", index.display())))?;
    let mut shards: Vec<String> = map
        .values()
        .filter_map(|s| s.as_str().map(String::from))
        .collect();
    shards.sort();
    shards.dedup();
    let mut out = Vec::with_capacity(shards.len());
    for s in shards {
        let p = dir.join(&s);
        if !p.is_file() {
            return Err(Error::input(format!(
                "{}: names shard '{s}', which is not in {}; copy every shard of the checkpoint",
                index.display(),
                dir.display()
            )));
        }
        out.push(p);
    }
    Ok(out)
}

fn map_file(path: &Path) -> Result<Mapped> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the file is opened read-only; like every reader of model files we assume nobody
    // truncates it while it is loaded (the bytes are copied out during loading).
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let (header, meta) = safetensors::SafeTensors::read_metadata(&map[..])
        .map_err(|e| Error::input(format!("{}: cannot read safetensors: {e}", path.display())))?;
    Ok(Mapped {
        path: path.to_path_buf(),
        map,
        data_start: 8 + header,
        meta,
    })
}
