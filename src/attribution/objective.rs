//! The metric as a differentiable function of the logits, for gradients.
//!
//! [`crate::metric::Metric`] computes values in f64 on the CPU; attribution needs the same
//! quantity as a candle expression so that `backward()` reaches every receiver. Each metric is
//! written as a weighted sum over the `[n, vocab]` logits at the rows' END positions (or their
//! log-probabilities / probabilities), averaged over rows, so its value equals the mean of
//! [`Metric::per_example`] up to rounding.
//!
//! Accuracy is piecewise constant: it has no gradient and is refused. KL divergence to the
//! clean model is accepted, but its gradient at the clean point is exactly zero (KL has its
//! minimum there), so plain EAP and AtP with KL give all-zero scores; EAP-IG, whose gradients
//! are taken between the clean and the corrupted input, does not have this problem.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::log_softmax;
use crate::metric::Metric;
use crate::model::softmax_last;
use candle_core::{DType, Device, Tensor};

/// A metric ready to be differentiated: per-row weights over the vocabulary.
#[derive(Debug, Clone)]
pub struct GradMetric {
    /// The metric.
    pub metric: Metric,
    /// `[n, vocab]` weights (answers, wrong answers); `None` for KL.
    weights: Option<Tensor>,
    /// Normalisation of `NormLogitDiff`: `(clean, corrupted)` mean logit differences.
    norm: Option<(f64, f64)>,
    n: usize,
}

impl GradMetric {
    /// Build the weights of `metric` for the rows of `ds` over `vocab` logits.
    ///
    /// `norm` is needed by `NormLogitDiff` (the clean and corrupted mean logit differences).
    pub fn new(
        metric: Metric,
        ds: &Dataset,
        vocab: usize,
        norm: Option<(f64, f64)>,
        dtype: DType,
        dev: &Device,
    ) -> Result<GradMetric> {
        let n = ds.len();
        if n == 0 {
            return Err(Error::input("no rows to attribute"));
        }
        check(metric, ds, vocab, norm)?;
        let weights = if metric == Metric::Kl {
            None
        } else {
            Some(
                row_weights(metric, ds, vocab)?
                    .to_dtype(dtype)?
                    .to_device(dev)?,
            )
        };
        Ok(GradMetric {
            metric,
            weights,
            norm,
            n,
        })
    }

    /// The metric's mean over rows as a scalar tensor, from `[n, vocab]` logits at the END
    /// positions. `clean`: the clean model's logits there (KL's reference; detached).
    pub fn value(&self, logits: &Tensor, clean: &Tensor) -> Result<Tensor> {
        let dims = logits.dims();
        if dims.len() != 2 || dims[0] != self.n {
            return Err(Error::input(format!(
                "metric: logits of shape {dims:?}; expected [{}, vocab]",
                self.n
            )));
        }
        let n = self.n as f64;
        let weighted = |x: &Tensor| -> Result<Tensor> {
            let w = self
                .weights
                .as_ref()
                .ok_or_else(|| Error::input("internal: metric weights missing"))?;
            Ok((x.mul(w)?.sum_all()? / n)?)
        };
        Ok(match self.metric {
            Metric::LogitDiff => weighted(logits)?,
            Metric::NormLogitDiff => {
                let (c, k) = self.norm.unwrap_or((1.0, 0.0));
                ((weighted(logits)? - k)? / (c - k))?
            }
            Metric::Nll => weighted(&log_softmax(logits)?)?,
            Metric::Prob | Metric::ProbDiff => weighted(&softmax_last(logits)?)?,
            Metric::Kl => {
                // KL(clean ‖ x) = Σ p_c (log p_c − log p_x); the first term is a constant.
                let lc = log_softmax(&clean.detach())?;
                let pc = lc.exp()?;
                let lc_f = lc.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
                let mut constant = 0.0;
                for &a in &lc_f {
                    if a.is_finite() {
                        constant += a.exp() * a;
                    }
                }
                let cross = (pc.mul(&log_softmax(logits)?)?.sum_all()? / n)?;
                (cross.neg()? + constant / n)?
            }
            Metric::Accuracy => return Err(Error::input("metric accuracy has no gradient")),
        })
    }
}

/// Refuse what has no gradient or cannot be weighted: accuracy, tokens outside the
/// vocabulary, rows without the answers the metric reads, a degenerate normalisation.
fn check(metric: Metric, ds: &Dataset, vocab: usize, norm: Option<(f64, f64)>) -> Result<()> {
    if metric == Metric::Accuracy {
        return Err(Error::input(
            "metric accuracy has no gradient (it is piecewise constant in the logits); \
                 attribute with logit-diff, norm-logit-diff, prob, prob-diff, nll or kl, and \
                 evaluate the circuit's accuracy with `circuitscope faithfulness --metric \
                 accuracy`",
        ));
    }
    for (i, e) in ds.examples.iter().enumerate() {
        if let Some(bad) = e
            .answer
            .iter()
            .chain(&e.wrong)
            .find(|&&t| t as usize >= vocab)
        {
            return Err(Error::input(format!(
                "metric {metric}: row {i} of the {} dataset names token {bad}, outside the \
                     model's {vocab} logits; the dataset was built with another tokenizer",
                ds.task
            )));
        }
        if e.answer.is_empty() && metric != Metric::Kl {
            return Err(Error::input(format!(
                "metric {metric}: row {i} of the {} dataset has no answer token",
                ds.task
            )));
        }
        if matches!(
            metric,
            Metric::LogitDiff | Metric::NormLogitDiff | Metric::ProbDiff
        ) && e.wrong.is_empty()
        {
            return Err(Error::input(format!(
                "metric {metric}: row {i} of the {} dataset has no wrong token; use nll, \
                     prob or kl, or give wrong answers",
                ds.task
            )));
        }
    }
    if metric == Metric::NormLogitDiff {
        match norm {
            Some((c, k)) if (c - k) != 0.0 && (c - k).is_finite() => {}
            _ => {
                return Err(Error::input(format!(
                    "metric norm-logit-diff: the clean and corrupted logit differences \
                         ({norm:?}) are equal or missing; the corruption does not change the \
                         task, pick another one"
                )))
            }
        }
    }
    Ok(())
}

/// `[n, vocab]` f64 weights of the answers (and wrong answers) the metric sums, per row.
fn row_weights(metric: Metric, ds: &Dataset, vocab: usize) -> Result<Tensor> {
    let n = ds.len();
    let mut w = vec![0f64; n * vocab];
    for (i, e) in ds.examples.iter().enumerate() {
        let row = &mut w[i * vocab..(i + 1) * vocab];
        match metric {
            Metric::LogitDiff | Metric::NormLogitDiff => {
                for &a in &e.answer {
                    row[a as usize] += 1.0 / e.answer.len() as f64;
                }
                for &b in &e.wrong {
                    row[b as usize] -= 1.0 / e.wrong.len() as f64;
                }
            }
            Metric::Nll => row[e.answer[0] as usize] -= 1.0,
            Metric::Prob => {
                for &a in &e.answer {
                    row[a as usize] += 1.0;
                }
            }
            Metric::ProbDiff => {
                for &a in &e.answer {
                    row[a as usize] += 1.0;
                }
                for &b in &e.wrong {
                    row[b as usize] -= 1.0;
                }
            }
            Metric::Kl | Metric::Accuracy => {}
        }
    }
    Ok(Tensor::from_vec(w, (n, vocab), &Device::Cpu)?)
}
