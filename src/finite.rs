//! Non-finite values (NaN, ±infinity): found where they enter (weights at load) and before a
//! number is used (every metric), and reported precisely, so that no result is ever computed
//! from them.

use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use std::path::Path;

/// The first non-finite element of `t`: its index (one entry per dimension) and value.
pub fn first_non_finite(t: &Tensor) -> Result<Option<(Vec<usize>, f64)>> {
    if !t.dtype().is_float() || t.elem_count() == 0 {
        return Ok(None);
    }
    // x − x is 0 for finite x and NaN otherwise; the sum is NaN iff some element is not
    // finite. This needs one temporary of the tensor's size, never a copy in f64.
    let probe = t.sub(t)?.flatten_all()?.to_dtype(DType::F32)?.sum_all()?;
    if probe.to_scalar::<f32>()?.is_finite() {
        return Ok(None);
    }
    let flat = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let Some(i) = flat.iter().position(|x| !x.is_finite()) else {
        return Ok(None);
    };
    let mut idx = vec![0; t.rank()];
    let mut rest = i;
    for (d, &size) in t.dims().iter().enumerate().rev() {
        idx[d] = rest % size;
        rest /= size;
    }
    Ok(Some((idx, flat[i])))
}

/// Refuse a weight tensor holding a non-finite value, naming the file, the tensor and the first
/// bad index.
pub fn check_weight(t: &Tensor, name: &str, file: &Path) -> Result<()> {
    match first_non_finite(t)? {
        None => Ok(()),
        Some((idx, v)) => Err(Error::input(format!(
            "{}: tensor '{name}' holds {v} at index {idx:?} (its first non-finite value); every \
             result computed from it would be meaningless. The file is damaged or was saved \
             from a diverged training run: re-save the model from a good copy",
            file.display()
        ))),
    }
}

/// Refuse metric values that are not finite: `what(i)` names row `i`.
pub fn check_values(values: &[f64], what: impl Fn(usize) -> String) -> Result<()> {
    match values.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::input(format!(
            "{} is {}: the model's logits hold NaN or infinity there, so nothing was computed \
             or written from them; check the model's weights (and the input's tokens)",
            what(i),
            values[i]
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn finds_the_first_bad_index() {
        let mut v = vec![1f32; 12];
        v[7] = f32::NAN;
        v[9] = f32::INFINITY;
        let t = Tensor::from_vec(v, (3, 4), &Device::Cpu).unwrap();
        let (idx, x) = first_non_finite(&t).unwrap().unwrap();
        assert_eq!(idx, vec![1, 3]);
        assert!(x.is_nan());
        let e = check_weight(&t, "ln_f.weight", Path::new("m.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'ln_f.weight' holds NaN at index [1, 3]"), "{e}");
        let ok = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(first_non_finite(&ok).unwrap().is_none());
        let inf = Tensor::from_vec(vec![f32::NEG_INFINITY], 1, &Device::Cpu).unwrap();
        assert_eq!(first_non_finite(&inf).unwrap().unwrap().0, vec![0]);
    }

    #[test]
    fn metric_values_are_checked() {
        assert!(check_values(&[1.0, 2.0], |i| format!("row {i}")).is_ok());
        let e = check_values(&[1.0, f64::NAN], |i| format!("row {i}"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("row 1 is NaN"), "{e}");
    }
}
