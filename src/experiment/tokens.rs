//! A dataset's rows as one token tensor: the single place rows become `[n, pos]` ids.

use crate::data::{Dataset, Side};
use crate::error::Result;
use crate::model::Model;
use candle_core::Tensor;

/// The token that pads rows on the right. Padding follows each row's END, so under causal
/// attention it never changes a scored position.
pub const PAD: u32 = 0;

/// One side's token ids `[n, len]`, right-padded with [`PAD`] to the dataset's
/// [`Dataset::aligned_len`] (the longest row of either side), so that clean and corrupted
/// tensors line up position by position.
pub fn token_tensor(model: &Model, ds: &Dataset, side: Side) -> Result<Tensor> {
    padded_tensor(model, ds, side, ds.aligned_len(), PAD)
}

/// One side's token ids `[n, len]`, right-padded with `pad` to `len` (checked against the
/// model's vocabulary and context).
pub fn padded_tensor(
    model: &Model,
    ds: &Dataset,
    side: Side,
    len: usize,
    pad: u32,
) -> Result<Tensor> {
    model.tokens_tensor(&ds.padded_rows(side, len, pad))
}

/// The given rows of a token tensor `[n, pos]`, in the given order (repeats allowed).
pub fn select_rows(tokens: &Tensor, rows: &[usize]) -> Result<Tensor> {
    let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let idx = Tensor::from_vec(idx, rows.len(), tokens.device())?;
    Ok(tokens.index_select(&idx, 0)?)
}
