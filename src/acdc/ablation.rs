//! What a removed edge carries: the ablated output of every sender and the ablated input of
//! every receiver.
//!
//! A receiver whose incoming edges are all removed reads exactly the ablation run's residual
//! stream at that point: for a corrupted ablation the corrupted run's residual (biases
//! included), for zero ablation the biases alone (the reference zeroes every head result, MLP
//! output and the embedding, so `b_O` still flows), for mean ablation the mean residual.

use crate::error::{Error, Result};
use crate::eval::{self, LogitsAt, Patches, Run, RunOptions};
use crate::graph::edges::senders_reverse;
use crate::model::Model;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which dataset a mean is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum MeanSource {
    /// The corrupted prompts (e.g. IOI's ABC dataset).
    #[default]
    Corrupted,
    /// The clean prompts.
    Clean,
}

/// Options of mean ablation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeanOptions {
    /// The dataset the means are taken over.
    pub source: MeanSource,
    /// Average separately within each value of this feature (e.g. `"template"`); `None`: one
    /// mean over all rows.
    pub by: Option<String>,
}

impl Default for MeanOptions {
    fn default() -> Self {
        MeanOptions {
            source: MeanSource::Corrupted,
            by: Some("template".into()),
        }
    }
}

/// Options of resample ablation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResampleOptions {
    /// Row i reads the sender's output on row `(i + shift) mod n`.
    pub shift: usize,
}

impl Default for ResampleOptions {
    fn default() -> Self {
        ResampleOptions { shift: 1 }
    }
}

/// How a removed edge is ablated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Ablation {
    /// The sender's output on the corrupted prompt of the same row.
    #[default]
    Corrupted,
    /// The sender's output on another clean row (row i takes row i + shift), as ACDC's
    /// induction experiments corrupt with other sequences.
    Resample(ResampleOptions),
    /// Zero.
    Zero,
    /// The sender's mean output (per position), per group of rows.
    Mean(MeanOptions),
}

impl std::str::FromStr for Ablation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "corrupted" | "corrupt" => Ok(Ablation::Corrupted),
            "resample" => Ok(Ablation::Resample(ResampleOptions::default())),
            "zero" => Ok(Ablation::Zero),
            "mean" => Ok(Ablation::Mean(MeanOptions::default())),
            "mean-all" => Ok(Ablation::Mean(MeanOptions {
                by: None,
                ..Default::default()
            })),
            _ => Err(Error::input(format!(
                "unknown ablation '{s}'; use corrupted, resample (another row), zero, mean (per \
                 template) or mean-all"
            ))),
        }
    }
}

pub use crate::eval::Ablated;

fn from_run(model: &Model, run: &Run) -> Result<Ablated> {
    let cfg = &model.cfg;
    let mut out = BTreeMap::new();
    for u in senders_reverse(cfg) {
        out.insert(u, run.sender_out(model, u)?.contiguous()?);
    }
    let resid = run.resid.clone();
    let mut mid = vec![];
    if cfg.has_mlp() {
        for l in 0..cfg.n_layers {
            mid.push(if cfg.parallel_residual {
                run.resid[l].clone()
            } else {
                (&run.resid[l] + &run.attn_out[l])?
            });
        }
    }
    Ok(Ablated { out, resid, mid })
}

/// Average rows within groups, per position, counting only rows long enough to have that
/// position. `groups[i]` is row i's group; `lens[i]` its length.
fn group_mean(t: &Tensor, groups: &[usize], lens: &[usize]) -> Result<Tensor> {
    let (n, p, d) = t.dims3()?;
    let n_groups = groups.iter().copied().max().map_or(0, |g| g + 1);
    let dtype = t.dtype();
    let dev = t.device();
    let mut ind = vec![0f64; n_groups * n];
    for (i, &g) in groups.iter().enumerate() {
        ind[g * n + i] = 1.0;
    }
    let mut mask = vec![0f64; n * p];
    for (i, &len) in lens.iter().enumerate() {
        for x in mask[i * p..i * p + len.min(p)].iter_mut() {
            *x = 1.0;
        }
    }
    let ind = Tensor::from_vec(ind, (n_groups, n), dev)?.to_dtype(dtype)?;
    let mask = Tensor::from_vec(mask, (n, p), dev)?.to_dtype(dtype)?;
    let masked = t.broadcast_mul(&mask.unsqueeze(2)?)?.reshape((n, p * d))?;
    let sums = ind.matmul(&masked)?.reshape((n_groups, p, d))?;
    let counts = ind.matmul(&mask)?.clamp(1.0, f64::INFINITY)?;
    let means = sums.broadcast_div(&counts.unsqueeze(2)?)?;
    let idx = Tensor::from_vec(groups.iter().map(|&g| g as u32).collect::<Vec<_>>(), n, dev)?;
    Ok(means.index_select(&idx, 0)?.contiguous()?)
}

/// Compute the ablated values.
///
/// `clean`: the clean run (for shapes). `source`: the run on the ablation's dataset (the
/// corrupted prompts, or the prompts a mean is taken over); `groups`/`lens`: for mean ablation,
/// each row's group and length.
pub fn ablate(
    model: &Model,
    ablation: &Ablation,
    clean_tokens: &Tensor,
    source_tokens: Option<&Tensor>,
    groups: &[usize],
    lens: &[usize],
) -> Result<Ablated> {
    let cfg = &model.cfg;
    let run_on = |tokens: &Tensor| {
        eval::run(
            model,
            tokens,
            &Patches::new(),
            RunOptions {
                logits: LogitsAt::None,
                ..Default::default()
            },
        )
    };
    match ablation {
        Ablation::Corrupted | Ablation::Resample(_) => {
            let t = source_tokens
                .ok_or_else(|| Error::input("corrupted ablation needs corrupted prompts"))?;
            from_run(model, &run_on(t)?)
        }
        Ablation::Mean(_) => {
            let t = source_tokens.unwrap_or(clean_tokens);
            let a = from_run(model, &run_on(t)?)?;
            let m = |x: &Tensor| group_mean(x, groups, lens);
            Ok(Ablated {
                out: a
                    .out
                    .iter()
                    .map(|(k, v)| Ok((*k, m(v)?)))
                    .collect::<Result<_>>()?,
                resid: a.resid.iter().map(m).collect::<Result<_>>()?,
                mid: a.mid.iter().map(m).collect::<Result<_>>()?,
            })
        }
        Ablation::Zero => {
            let (b, p) = clean_tokens.dims2()?;
            let d = cfg.d_model;
            let zeros = Tensor::zeros((b, p, d), model.dtype, model.device())?;
            let out = senders_reverse(cfg)
                .into_iter()
                .map(|u| (u, zeros.clone()))
                .collect();
            let mut resid = vec![zeros.clone()];
            let mut mid = vec![];
            let mut acc = zeros.clone();
            for l in 0..cfg.n_layers {
                let b_o = model.weight(&model.w.blocks[l].b_o)?;
                let after = acc.broadcast_add(&b_o)?;
                if cfg.has_mlp() {
                    mid.push(if cfg.parallel_residual {
                        acc.clone()
                    } else {
                        after.clone()
                    });
                }
                acc = after;
                resid.push(acc.clone());
            }
            Ok(Ablated { out, resid, mid })
        }
    }
}

/// A tensor's values as f64 (for tests and checks).
pub fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn group_means_count_only_rows_long_enough() {
        // 3 rows, 2 positions, d = 1; rows 0 and 2 in group 0, row 1 in group 1; row 2 has
        // length 1, so position 1 of group 0 averages row 0 alone.
        let t = Tensor::from_vec(
            vec![1.0f64, 2.0, 10.0, 20.0, 3.0, 99.0],
            (3, 2, 1),
            &Device::Cpu,
        )
        .unwrap();
        let m = group_mean(&t, &[0, 1, 0], &[2, 2, 1]).unwrap();
        let v = to_f64(&m).unwrap();
        assert_eq!(v, vec![2.0, 2.0, 10.0, 20.0, 2.0, 2.0]);
    }
}
