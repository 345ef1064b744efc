//! Writing safetensors files: the one writer (model folders, training checkpoints, sweep
//! results, cached activations), through the `safetensors` crate, with bytes that depend only
//! on the tensors and the metadata.

use crate::error::{write_atomic, Error, Result};
use ::safetensors::Dtype;
use candle_core::{DType, Tensor};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One tensor's dtype, shape and little-endian bytes, ready to be written.
#[derive(Debug, Clone)]
pub struct TensorData {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl TensorData {
    /// f32 values of the given shape.
    pub fn f32(name: &str, shape: &[usize], values: &[f32]) -> Result<TensorData> {
        let n: usize = shape.iter().product();
        if n != values.len() {
            return Err(Error::input(format!(
                "tensor {name}: shape {shape:?} holds {n} values, got {}",
                values.len()
            )));
        }
        Ok(TensorData {
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            bytes: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
    }

    /// A candle tensor in its own dtype (f32, f64, u32, i64 or u8).
    pub fn from_tensor(t: &Tensor) -> Result<TensorData> {
        fn le<T: candle_core::WithDType>(t: &Tensor, f: impl Fn(T) -> Vec<u8>) -> Result<Vec<u8>> {
            Ok(t.flatten_all()?
                .to_vec1::<T>()?
                .into_iter()
                .flat_map(f)
                .collect())
        }
        let (dtype, bytes) = match t.dtype() {
            DType::F32 => (Dtype::F32, le(t, |x: f32| x.to_le_bytes().to_vec())?),
            DType::F64 => (Dtype::F64, le(t, |x: f64| x.to_le_bytes().to_vec())?),
            DType::U32 => (Dtype::U32, le(t, |x: u32| x.to_le_bytes().to_vec())?),
            DType::I64 => (Dtype::I64, le(t, |x: i64| x.to_le_bytes().to_vec())?),
            DType::U8 => (Dtype::U8, le(t, |x: u8| vec![x])?),
            other => {
                return Err(Error::input(format!(
                    "cannot write a {other:?} tensor to safetensors; convert it to f32 first"
                )))
            }
        };
        Ok(TensorData {
            dtype,
            shape: t.dims().to_vec(),
            bytes,
        })
    }

    /// A candle tensor converted to f32.
    pub fn f32_of(t: &Tensor) -> Result<TensorData> {
        Self::from_tensor(&t.to_dtype(DType::F32)?)
    }
}

impl ::safetensors::View for &TensorData {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The bytes of a safetensors file holding `tensors` with `metadata` (string pairs, e.g.
/// PyTorch's `{"format": "pt"}`). The crate lays tensors out by name; its header writes the
/// metadata in hash-map order, which [`canonical_metadata`] replaces by name order, so the same
/// input always gives the same bytes.
pub fn to_bytes(
    tensors: &[(String, TensorData)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let meta: Option<HashMap<String, String>> = if metadata.is_empty() {
        None
    } else {
        Some(
            metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    let views = tensors.iter().map(|(n, t)| (n.as_str(), t));
    let mut bytes = ::safetensors::serialize(views, meta)
        .map_err(|e| Error::input(format!("cannot serialise tensors: {e}")))?;
    if metadata.len() > 1 {
        canonical_metadata(&mut bytes, metadata)?;
    }
    Ok(bytes)
}

/// Rewrite the header's `__metadata__` object (the first entry, as the crate writes it) with
/// its keys in name order. The entries are the same, so the object keeps its length and nothing
/// else in the file moves.
fn canonical_metadata(bytes: &mut [u8], metadata: &BTreeMap<String, String>) -> Result<()> {
    const PREFIX: &[u8] = b"{\"__metadata__\":";
    let sorted = serde_json::to_vec(metadata)
        .map_err(|e| Error::input(format!("cannot serialise metadata: {e}")))?;
    let start = 8 + PREFIX.len();
    let end = start + sorted.len();
    let written = bytes.get(start..end).map(|s| {
        serde_json::from_slice::<BTreeMap<String, String>>(s).ok() == Some(metadata.clone())
    });
    if !bytes[8..].starts_with(PREFIX) || written != Some(true) {
        return Err(Error::input(
            "internal: the safetensors header does not start with the metadata object",
        ));
    }
    bytes[start..end].copy_from_slice(&sorted);
    Ok(())
}

/// Write `tensors` with `metadata` to `path` atomically (temporary file, then rename).
pub fn write(
    path: &Path,
    tensors: &[(String, TensorData)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    write_atomic(path, &to_bytes(tensors, metadata)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn round_trips_and_bytes_do_not_depend_on_metadata_order() {
        let a = TensorData::f32("a", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let ids = Tensor::new(&[7u32, 8, 9], &Device::Cpu).unwrap();
        let b = TensorData::from_tensor(&ids).unwrap();
        let tensors = vec![("b".to_string(), b), ("a".to_string(), a)];
        let meta: BTreeMap<String, String> = (0..12)
            .map(|i| (format!("key{i}"), format!("value {i}")))
            .collect();
        let first = to_bytes(&tensors, &meta).unwrap();
        for _ in 0..5 {
            assert_eq!(to_bytes(&tensors, &meta).unwrap(), first);
        }
        let st = ::safetensors::SafeTensors::deserialize(&first).unwrap();
        let a = st.tensor("a").unwrap();
        assert_eq!(a.shape(), &[2, 3]);
        assert_eq!(&a.data()[4..8], &2f32.to_le_bytes());
        assert_eq!(st.tensor("b").unwrap().dtype(), Dtype::U32);
        let (_, m) = ::safetensors::SafeTensors::read_metadata(&first).unwrap();
        let got: BTreeMap<String, String> = m.metadata().clone().unwrap().into_iter().collect();
        assert_eq!(got, meta);
        assert!(TensorData::f32("bad", &[2, 2], &[1.0]).is_err());
    }
}
