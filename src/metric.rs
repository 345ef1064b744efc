//! Metrics on the logits at each row's END position: logit difference (plain and normalised),
//! KL divergence to the clean model, NLL, probability, probability difference, accuracy.
//!
//! All arithmetic is in f64 with a stable log-softmax; sums run in a fixed order.

use crate::data::Dataset;
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// A metric computed per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// mean logit over the answer set − mean logit over the wrong set.
    LogitDiff,
    /// (logit diff − corrupted) / (clean − corrupted), with `norm = (clean, corrupted)`.
    NormLogitDiff,
    /// KL(clean ‖ patched) over the vocabulary.
    Kl,
    /// −log p(answer[0]).
    Nll,
    /// Σ p(answer set).
    Prob,
    /// Σ p(answer set) − Σ p(wrong set) (greater-than's probability difference).
    ProbDiff,
    /// 1 if the argmax is in the answer set, else 0.
    Accuracy,
}

/// The CLI names of the metrics, in the order of [`Metric::ALL`].
pub const METRIC_NAMES: [&str; 7] = [
    "logit-diff",
    "norm-logit-diff",
    "kl",
    "nll",
    "prob",
    "prob-diff",
    "accuracy",
];

impl std::str::FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        match METRIC_NAMES.iter().position(|n| *n == norm) {
            Some(i) => Ok(Metric::ALL[i]),
            None => Err(Error::input(format!(
                "unknown metric '{s}'; use one of {}",
                METRIC_NAMES.join(", ")
            ))),
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cli_name())
    }
}

/// Stable log-softmax of one row.
fn log_softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for &x in row {
        sum += (x - max).exp();
    }
    let lse = max + sum.ln();
    row.iter().map(|&x| x - lse).collect()
}

fn mean_at(row: &[f64], ids: &[u32]) -> f64 {
    let mut s = 0.0;
    for &i in ids {
        s += row[i as usize];
    }
    s / ids.len() as f64
}

fn prob_sum(logp: &[f64], ids: &[u32]) -> f64 {
    let mut s = 0.0;
    for &i in ids {
        s += logp[i as usize].exp();
    }
    s
}

/// Logits as rows of f64, checked against the dataset.
fn rows(logits: &Tensor, n: usize, what: &str) -> Result<Vec<Vec<f64>>> {
    let dims = logits.dims();
    if dims.len() != 2 || dims[0] != n {
        return Err(Error::input(format!(
            "metric: {what} logits have shape {dims:?}; expected [{n}, vocab] (one row per \
             example, at its END position)"
        )));
    }
    Ok(logits.to_dtype(DType::F64)?.to_vec2::<f64>()?)
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 7] = [
        Metric::LogitDiff,
        Metric::NormLogitDiff,
        Metric::Kl,
        Metric::Nll,
        Metric::Prob,
        Metric::ProbDiff,
        Metric::Accuracy,
    ];

    /// The CLI name (`logit-diff`, …).
    pub fn cli_name(&self) -> &'static str {
        let i = Metric::ALL.iter().position(|m| m == self).unwrap_or(0);
        METRIC_NAMES[i]
    }

    /// True when a larger value means the model does the task better.
    pub fn higher_is_better(&self) -> bool {
        !matches!(self, Metric::Kl | Metric::Nll)
    }

    /// Per-example values.
    ///
    /// `logits`: `[n, vocab]` (f32 or f64) at each row's END position. `clean`: the clean
    /// model's logits at the same positions (needed by `Kl`). `norm`: `(clean, corrupted)` mean
    /// logit differences (needed by `NormLogitDiff`).
    pub fn per_example(
        &self,
        logits: &Tensor,
        ds: &Dataset,
        clean: Option<&Tensor>,
        norm: Option<(f64, f64)>,
    ) -> Result<Vec<f64>> {
        let n = ds.len();
        let rows = rows(logits, n, "the")?;
        self.check_rows(ds, rows.first().map_or(0, Vec::len))?;
        let logit_diff = |row: &[f64], i: usize| {
            let e = &ds.examples[i];
            mean_at(row, &e.answer) - mean_at(row, &e.wrong)
        };
        let out = match self {
            Metric::LogitDiff => rows
                .iter()
                .enumerate()
                .map(|(i, r)| logit_diff(r, i))
                .collect(),
            Metric::NormLogitDiff => {
                let (k, denom) = norm_denominator(norm)?;
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| (logit_diff(r, i) - k) / denom)
                    .collect()
            }
            Metric::Kl => {
                let clean = clean.ok_or_else(|| {
                    Error::input("metric kl needs the clean model's logits at the same positions")
                })?;
                kl_rows(&rows, &self::rows(clean, n, "clean")?)?
            }
            Metric::Nll => rows
                .iter()
                .zip(&ds.examples)
                .map(|(r, e)| -log_softmax(r)[e.answer[0] as usize])
                .collect(),
            Metric::Prob => rows
                .iter()
                .zip(&ds.examples)
                .map(|(r, e)| prob_sum(&log_softmax(r), &e.answer))
                .collect(),
            Metric::ProbDiff => rows
                .iter()
                .zip(&ds.examples)
                .map(|(r, e)| {
                    let lp = log_softmax(r);
                    prob_sum(&lp, &e.answer) - prob_sum(&lp, &e.wrong)
                })
                .collect(),
            Metric::Accuracy => rows
                .iter()
                .zip(&ds.examples)
                .map(|(r, e)| f64::from(u8::from(e.answer.contains(&(argmax(r) as u32)))))
                .collect(),
        };
        crate::finite::check_values(&out, |i| {
            format!("metric {self}: row {i} of the {} dataset", ds.task)
        })?;
        Ok(out)
    }

    /// Every row names tokens inside the `vocab` logits, has an answer and, for the logit
    /// differences, a wrong answer.
    fn check_rows(&self, ds: &Dataset, vocab: usize) -> Result<()> {
        for (i, e) in ds.examples.iter().enumerate() {
            if let Some(bad) = e
                .answer
                .iter()
                .chain(&e.wrong)
                .find(|&&t| t as usize >= vocab)
            {
                return Err(Error::input(format!(
                    "metric {self}: row {i} of the {} dataset names token {bad} as an answer or \
                     wrong token, outside the model's {vocab} logits; fix the answer ids (given by --answers \
                     FILE.json for --tokens rows, or a JSONL file's `answer`/`wrong` fields) or \
                     build the dataset with this model's tokenizer",
                    ds.task
                )));
            }
            if e.answer.is_empty() {
                return Err(Error::input(format!(
                    "metric {self}: row {i} of the {} dataset has no answer token",
                    ds.task
                )));
            }
            if matches!(self, Metric::LogitDiff | Metric::NormLogitDiff) && e.wrong.is_empty() {
                return Err(Error::input(format!(
                    "metric {self}: row {i} of the {} dataset has no wrong token; use nll, prob \
                     or accuracy, or give wrong answers",
                    ds.task
                )));
            }
        }
        Ok(())
    }
}

/// The normalised logit difference's offset and scale from `norm = (clean, corrupted)`:
/// `(corrupted, clean − corrupted)`.
fn norm_denominator(norm: Option<(f64, f64)>) -> Result<(f64, f64)> {
    let Some((c, k)) = norm else {
        return Err(Error::input(
            "metric norm-logit-diff needs the clean and corrupted mean logit differences \
             (norm = (clean, corrupted))",
        ));
    };
    let denom = c - k;
    if denom == 0.0 || !denom.is_finite() {
        return Err(Error::input(format!(
            "metric norm-logit-diff: clean ({c}) and corrupted ({k}) logit differences are \
             equal; the corruption does not change the task, pick another one"
        )));
    }
    Ok((k, denom))
}

/// KL(clean ‖ patched) of each row.
fn kl_rows(rows: &[Vec<f64>], clean: &[Vec<f64>]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(rows.len());
    for (r, c) in rows.iter().zip(clean) {
        if c.len() != r.len() {
            return Err(Error::input(format!(
                "metric kl: clean logits have {} entries per row, patched {}",
                c.len(),
                r.len()
            )));
        }
        let lp = log_softmax(r);
        let lc = log_softmax(c);
        let mut kl = 0.0;
        for (a, b) in lc.iter().zip(&lp) {
            let pc = a.exp();
            if pc > 0.0 {
                kl += pc * (a - b);
            }
        }
        out.push(kl);
    }
    Ok(out)
}

/// The index of a row's largest value (the first on ties).
pub(crate) fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (j, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = j;
        }
    }
    best
}

/// Loss recovered, `(scrubbed − baseline) / (clean − baseline)`, or why it is undefined: when
/// clean and baseline differ by no more than the float noise of `dtype` (256 ulps of the larger
/// of |clean|, |baseline| and 1), the ratio is noise divided by noise.
pub fn loss_recovered(
    scrubbed: f64,
    baseline: f64,
    clean: f64,
    dtype: DType,
) -> std::result::Result<f64, String> {
    let eps = match dtype {
        DType::F64 => f64::EPSILON,
        DType::F32 => f64::from(f32::EPSILON),
        DType::F16 => 2f64.powi(-10),
        _ => 2f64.powi(-7),
    };
    let noise = 256.0 * eps * clean.abs().max(baseline.abs()).max(1.0);
    let denom = clean - baseline;
    if !(denom.is_finite() && scrubbed.is_finite()) || denom.abs() <= noise {
        return Err(format!(
            "clean ({clean:.6e}) and baseline ({baseline:.6e}) differ by {:.1e}, within the \
             float noise of {dtype:?} ({noise:.1e}): resampling everything does not change the \
             metric, so there is no loss to recover",
            denom.abs()
        ));
    }
    Ok((scrubbed - baseline) / denom)
}

/// The normalisation of [`Metric::NormLogitDiff`]: the mean logit differences of the clean
/// run (which maps to 1) and of the reference run (which maps to 0: the corrupted prompts, or
/// scrubbing's fully scrubbed baseline), as `(clean, reference)`.
pub fn normalisation(ds: &Dataset, clean: &Tensor, reference: &Tensor) -> Result<(f64, f64)> {
    let ld = |l: &Tensor| -> Result<f64> {
        Ok(mean(&Metric::LogitDiff.per_example(l, ds, None, None)?))
    };
    Ok((ld(clean)?, ld(reference)?))
}

/// A metric made ready for one set of rows: the rows' answers, the clean logits (for KL) and,
/// for the normalised logit difference, its normalisation. Every command scores through one.
#[derive(Debug, Clone)]
pub struct Scorer {
    /// The metric.
    pub metric: Metric,
    /// The rows (answers, wrong answers).
    pub ds: Dataset,
    /// The clean model's logits at the rows' END positions `[n, vocab]`.
    pub clean_logits: Tensor,
    /// [`normalisation`]'s `(clean, reference)`; only `NormLogitDiff` has one.
    pub norm: Option<(f64, f64)>,
}

impl Scorer {
    /// A scorer for `metric` on the rows `ds` whose clean logits are `clean_logits`;
    /// `reference`: the logits `NormLogitDiff` maps to 0 (needed by that metric only).
    pub fn new(
        metric: Metric,
        ds: Dataset,
        clean_logits: Tensor,
        reference: Option<&Tensor>,
    ) -> Result<Scorer> {
        let norm = if metric == Metric::NormLogitDiff {
            let r = reference.ok_or_else(|| {
                Error::input(
                    "metric norm-logit-diff needs a corrupted run to normalise against; give corrupted prompts or use logit-diff",
                )
            })?;
            Some(normalisation(&ds, &clean_logits, r)?)
        } else {
            None
        };
        Ok(Scorer {
            metric,
            ds,
            clean_logits,
            norm,
        })
    }

    /// Per-row values of logits `[n, vocab]` at the rows' END positions.
    pub fn per_example(&self, logits: &Tensor) -> Result<Vec<f64>> {
        self.metric
            .per_example(logits, &self.ds, Some(&self.clean_logits), self.norm)
    }

    /// The metric's mean over rows.
    pub fn mean(&self, logits: &Tensor) -> Result<f64> {
        Ok(mean(&self.per_example(logits)?))
    }
}

/// The mean, summed in order (NaN for no values).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut s = 0.0;
    for &x in xs {
        s += x;
    }
    s / xs.len() as f64
}

/// The standard error of the mean (sample standard deviation / √n; 0 for fewer than 2 values).
pub fn std_err(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n < 2 {
        return 0.0;
    }
    let m = mean(xs);
    let mut ss = 0.0;
    for &x in xs {
        ss += (x - m) * (x - m);
    }
    (ss / (n as f64 - 1.0)).sqrt() / (n as f64).sqrt()
}
