//! A sweep's result: an n-dimensional array of numbers with labelled axes, saved as
//! safetensors (the array) plus JSON (axes, labels and notes).

use crate::error::{write_atomic, Error, Result};
use crate::report::safetensors::TensorData;
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One axis of a result: its name and a label per index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// `layer`, `head`, `pos`, `dest_pos`, `src_pos`, `component`, …
    pub name: String,
    /// One label per index (`"L3"`, `"5 John"`, `"a9.h6"`).
    pub labels: Vec<String>,
}

impl Axis {
    /// An axis from a name and labels.
    pub fn new(name: &str, labels: Vec<String>) -> Self {
        Axis {
            name: name.to_string(),
            labels,
        }
    }

    /// Layers `0..n` labelled `L0`, `L1`, ….
    pub fn layers(n: usize) -> Self {
        Axis::new("layer", (0..n).map(|l| format!("L{l}")).collect())
    }

    /// Heads `0..n` labelled `H0`, `H1`, ….
    pub fn heads(n: usize) -> Self {
        Axis::new("head", (0..n).map(|h| format!("H{h}")).collect())
    }

    /// Number of indices.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the axis is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A labelled result array (row-major `values`; NaN marks entries that do not exist, e.g. a
/// sender that cannot reach the receiver).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledArray {
    /// Short name, e.g. `act_patch_attn_head_out_by_pos`.
    pub name: String,
    /// A title for pictures.
    pub title: String,
    /// The axes, outermost first.
    pub axes: Vec<Axis>,
    /// Row-major values.
    #[serde(skip)]
    pub values: Vec<f64>,
    /// What was measured and on what (clean and corrupted metric, the metric's name, …).
    pub notes: BTreeMap<String, serde_json::Value>,
}

impl LabelledArray {
    /// An array filled with NaN.
    pub fn new(name: &str, title: &str, axes: Vec<Axis>) -> Self {
        let n = axes.iter().map(Axis::len).product();
        LabelledArray {
            name: name.to_string(),
            title: title.to_string(),
            axes,
            values: vec![f64::NAN; n],
            notes: BTreeMap::new(),
        }
    }

    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.axes.iter().map(Axis::len).collect()
    }

    /// The flat index of a multi-index.
    pub fn offset(&self, idx: &[usize]) -> usize {
        debug_assert_eq!(idx.len(), self.axes.len());
        let mut o = 0;
        for (i, a) in idx.iter().zip(&self.axes) {
            o = o * a.len() + i;
        }
        o
    }

    /// The value at a multi-index.
    pub fn get(&self, idx: &[usize]) -> f64 {
        self.values[self.offset(idx)]
    }

    /// Set the value at a multi-index.
    pub fn set(&mut self, idx: &[usize], v: f64) {
        let o = self.offset(idx);
        self.values[o] = v;
    }

    /// Add a note.
    pub fn note(&mut self, key: &str, v: impl Into<serde_json::Value>) {
        self.notes.insert(key.to_string(), v.into());
    }

    /// The values as an f64 tensor of the sweep's shape.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.values.clone(),
            self.shape(),
            &Device::Cpu,
        )?)
    }

    /// The sweep minus a baseline (e.g. the corrupted metric, so 0 means "no effect"), for
    /// pictures; the title says what was subtracted.
    pub fn minus(&self, baseline: f64, what: &str) -> LabelledArray {
        let mut s = self.clone();
        for v in &mut s.values {
            *v -= baseline;
        }
        s.title = format!("{} (minus {what})", self.title);
        s.note("shown_minus", baseline);
        s
    }

    /// The sub-sweep at index `i` of the first axis (e.g. one panel of a stacked `_every`).
    pub fn index_first(&self, i: usize) -> LabelledArray {
        let inner: usize = self.axes[1..].iter().map(Axis::len).product();
        let label = self.axes[0].labels[i].clone();
        LabelledArray {
            name: format!("{}_{}", self.name, sanitize(&label)),
            title: format!("{} — {}", self.title, label),
            axes: self.axes[1..].to_vec(),
            values: self.values[i * inner..(i + 1) * inner].to_vec(),
            notes: self.notes.clone(),
        }
    }

    /// The sweep with its axes reordered: new axis `i` is old axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> LabelledArray {
        let axes: Vec<Axis> = perm.iter().map(|&i| self.axes[i].clone()).collect();
        let mut out = LabelledArray {
            name: self.name.clone(),
            title: self.title.clone(),
            axes,
            values: vec![f64::NAN; self.values.len()],
            notes: self.notes.clone(),
        };
        let shape = self.shape();
        let mut idx = vec![0usize; shape.len()];
        for &v in &self.values {
            let new_idx: Vec<usize> = perm.iter().map(|&i| idx[i]).collect();
            out.set(&new_idx, v);
            // advance the old multi-index, last axis fastest
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        out
    }

    /// Stack sweeps of one shape along a new first axis.
    pub fn stack(
        name: &str,
        title: &str,
        axis: Axis,
        parts: &[LabelledArray],
    ) -> Result<LabelledArray> {
        let Some(first) = parts.first() else {
            return Err(Error::input("nothing to stack"));
        };
        if parts.iter().any(|p| p.shape() != first.shape()) || axis.len() != parts.len() {
            return Err(Error::input("stacked sweeps must have one shape"));
        }
        let mut axes = vec![axis];
        axes.extend(first.axes.iter().cloned());
        Ok(LabelledArray {
            name: name.to_string(),
            title: title.to_string(),
            axes,
            values: parts
                .iter()
                .flat_map(|p| p.values.iter().copied())
                .collect(),
            notes: first.notes.clone(),
        })
    }

    /// The sweep's description as JSON: name, title, shape, axes with labels, notes, and the
    /// values (NaN written as `null`).
    pub fn to_json(&self) -> serde_json::Value {
        let values: Vec<serde_json::Value> = self
            .values
            .iter()
            .map(|&v| {
                if v.is_finite() {
                    serde_json::json!(v)
                } else {
                    serde_json::Value::Null
                }
            })
            .collect();
        serde_json::json!({
            "name": self.name,
            "title": self.title,
            "shape": self.shape(),
            "axes": self.axes,
            "notes": self.notes,
            "values": values,
        })
    }

    /// Write `path` (safetensors: the values as f32 under `key`) and the same name with
    /// `.json` (`{key: description}`, see [`LabelledArray::to_json`]), both atomically.
    pub fn save(&self, path: &Path, key: &str) -> Result<()> {
        save_sweeps(path, &[(key, self)])
    }
}

/// Write several sweeps into one safetensors file (f32, one tensor per key) and a JSON file
/// beside it (same name, `.json`: `{key: description}`), both atomically.
pub fn save_sweeps(path: &Path, sweeps: &[(&str, &LabelledArray)]) -> Result<()> {
    let f32s: Vec<Vec<f32>> = sweeps
        .iter()
        .map(|(_, s)| s.values.iter().map(|&v| v as f32).collect())
        .collect();
    let shapes: Vec<Vec<usize>> = sweeps.iter().map(|(_, s)| s.shape()).collect();
    let refs: Vec<(&str, &[usize], &[f32])> = sweeps
        .iter()
        .zip(&shapes)
        .zip(&f32s)
        .map(|(((k, _), sh), v)| (*k, sh.as_slice(), v.as_slice()))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("circuitscope".to_string(), crate::version().to_string());
    for (k, s) in sweeps {
        meta.insert(
            format!("{k}.axes"),
            s.axes
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    let bytes = safetensors_f32(&refs, &meta)?;
    write_atomic(path, &bytes)?;
    let json: serde_json::Map<String, serde_json::Value> = sweeps
        .iter()
        .map(|(k, s)| (k.to_string(), s.to_json()))
        .collect();
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| Error::input(format!("cannot serialise {}: {e}", path.display())))?;
    write_atomic(path.with_extension("json"), text.as_bytes())?;
    Ok(())
}

/// A name safe for file names: letters, digits, `_`, `-` and `.`.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Serialise f32 tensors (name, shape, values) as safetensors with string metadata.
pub fn safetensors_f32(
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let data = tensors
        .iter()
        .map(|(name, shape, v)| Ok((name.to_string(), TensorData::f32(name, shape, v)?)))
        .collect::<Result<Vec<_>>>()?;
    crate::report::safetensors::to_bytes(&data, metadata)
}

/// Read a tensor from a safetensors file as f64 values with its shape (for tests and tools).
pub fn load_f64(path: &Path, key: &str) -> Result<(Vec<usize>, Vec<f64>)> {
    let map = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
    let t = map
        .get(key)
        .ok_or_else(|| Error::input(format!("{}: no tensor named '{key}'", path.display())))?;
    let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok((t.dims().to_vec(), v))
}
