//! One experiment setup, shared by every command: a model, its rows (dataset), their token
//! tensors, each row's END position, the clean logits, the ablation source (corrupted
//! prompts), the metric with its normalisation, and the hashes that pin a result to its inputs.
//!
//! - [`tokens`]: the one way a dataset becomes a token tensor;
//! - [`hash`]: the one model hash, dataset hash and text hash;
//! - [`Setup`]: all of it together, for the patching family (activation and path patching,
//!   DLA, ablation circuits) and attribution; `scrub` and `acdc` build theirs from the same
//!   pieces (their rows and ablations differ per seed or per config).

pub mod hash;
pub mod tokens;

pub use tokens::{padded_tensor, select_rows, token_tensor, PAD};

use crate::data::{Dataset, Side};
use crate::error::{Error, Result};
use crate::eval::{self, LogitsAt, NameFilter, Patches, Run, RunOptions};
use crate::metric::{self, Metric, Scorer};
use crate::model::Model;
use candle_core::Tensor;

/// A position: a name of the dataset (`END`, `S2`, …) or an index (negative: back from END).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A named position of every row.
    Named(String),
    /// An index; `-1` is each row's END, `-2` the one before.
    Index(i64),
}

impl std::str::FromStr for Position {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::input(
                "empty position; write an index (3, -1 for END) or a name (END, S2, IO)",
            ));
        }
        Ok(match s.parse::<i64>() {
            Ok(i) => Position::Index(i),
            Err(_) => Position::Named(s.to_string()),
        })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Named(n) => f.write_str(n),
            Position::Index(i) => write!(f, "{i}"),
        }
    }
}

/// Clean and corrupted inputs with a metric: what activation and path patching compare.
///
/// Every row of the clean and the corrupted tokens has the same length (rows of a dataset are
/// right-padded to the longest); the metric reads the logits at each row's `END` position.
pub struct Setup<'m> {
    /// The model.
    pub model: &'m Model,
    /// The clean rows (answers, wrong answers, named positions, features).
    pub ds: Dataset,
    /// Clean token ids `[batch, pos]`.
    pub clean_tokens: Tensor,
    /// Corrupted token ids `[batch, pos]`.
    pub corrupted_tokens: Tensor,
    /// Each row's scored position.
    pub ends: Vec<usize>,
    /// The metric (mean over rows).
    pub metric: Metric,
    /// Labels of the position axis (`"3 John"`: index and the first row's token).
    pub pos_labels: Vec<String>,
    /// The metric on the clean run.
    pub clean_metric: f64,
    /// The metric on the corrupted run.
    pub corrupted_metric: f64,
    /// The metric with the clean logits and its normalisation (corrupted run ↦ 0).
    pub scorer: Scorer,
}

impl<'m> Setup<'m> {
    /// From token rows and `[answer, wrong]` pairs (TransformerLens style); the metric reads the
    /// last position of each row.
    pub fn from_tokens(
        model: &'m Model,
        clean: &[Vec<u32>],
        corrupted: &[Vec<u32>],
        answers: &[(u32, u32)],
        metric: Metric,
    ) -> Result<Self> {
        if clean.len() != corrupted.len() || clean.len() != answers.len() {
            return Err(Error::input(format!(
                "{} clean rows, {} corrupted rows and {} answer pairs: give one of each per row",
                clean.len(),
                corrupted.len(),
                answers.len()
            )));
        }
        let ds = Dataset::from_token_rows(clean, Some(corrupted), Some(answers))?;
        Self::from_dataset(model, ds, metric)
    }

    /// From a dataset whose rows carry corrupted tokens of the same length as the clean ones.
    pub fn from_dataset(model: &'m Model, ds: Dataset, metric: Metric) -> Result<Self> {
        if ds.is_empty() {
            return Err(Error::input(format!("the {} dataset has no rows", ds.task)));
        }
        let corrupted = ds.corrupted()?;
        for (i, (c, x)) in ds.examples.iter().zip(&corrupted.examples).enumerate() {
            if c.tokens.len() != x.tokens.len() {
                return Err(Error::input(format!(
                    "row {i} of the {} dataset: the clean prompt has {} tokens but the \
                     corrupted one {}; patching needs corruptions that keep positions (for IOI \
                     use a name flip such as \"ABB->XYZ, BAB->XYZ\" or IO, S, S1, S2)",
                    ds.task,
                    c.tokens.len(),
                    x.tokens.len()
                )));
            }
        }
        let clean_tokens = token_tensor(model, &ds, Side::Clean)?;
        let corrupted_tokens = token_tensor(model, &ds, Side::Corrupted)?;
        let ends = ds.end_positions();
        let p = ds.max_len();
        let pos_labels = (0..p).map(|i| i.to_string()).collect();
        let logits_of = |tokens: &Tensor| -> Result<Tensor> {
            let run = eval::run(
                model,
                tokens,
                &Patches::new(),
                RunOptions {
                    logits: LogitsAt::Rows(ends.clone()),
                    ..Default::default()
                },
            )?;
            run.logits
                .ok_or_else(|| Error::input("the forward pass returned no logits"))
        };
        let clean_logits = logits_of(&clean_tokens)?;
        let corrupted_logits = logits_of(&corrupted_tokens)?;
        let scorer = Scorer::new(metric, ds.clone(), clean_logits, Some(&corrupted_logits))?;
        let clean_metric = scorer.mean(&scorer.clean_logits)?;
        let corrupted_metric = scorer.mean(&corrupted_logits)?;
        Ok(Setup {
            model,
            ds,
            clean_tokens,
            corrupted_tokens,
            ends,
            metric,
            pos_labels,
            clean_metric,
            corrupted_metric,
            scorer,
        })
    }

    /// The hash of the model ([`hash::model_hash`]: the same for every command).
    pub fn model_hash(&self) -> Result<String> {
        hash::model_hash(self.model)
    }

    /// The hash of the rows ([`hash::dataset_hash`]).
    pub fn dataset_hash(&self) -> String {
        hash::dataset_hash(&self.ds)
    }

    /// Label the position axis with the first row's tokens (`"3 John"`).
    pub fn label_positions(&mut self, tok: &crate::tokenizer::Tokenizer) -> Result<()> {
        let row = &self.ds.examples[0].tokens;
        let strs = tok.to_str_tokens(row)?;
        for (i, label) in self.pos_labels.iter_mut().enumerate() {
            if let Some(s) = strs.get(i) {
                *label = format!("{i} {s}");
            }
        }
        Ok(())
    }

    /// Number of rows.
    pub fn batch(&self) -> usize {
        self.ends.len()
    }

    /// Number of positions (the padded length).
    pub fn seq_len(&self) -> usize {
        self.pos_labels.len()
    }

    /// Per-row metric values of logits `[batch, vocab]` taken at the rows' END positions.
    pub fn per_example(&self, logits: &Tensor) -> Result<Vec<f64>> {
        self.scorer.per_example(logits)
    }

    /// The metric (mean over rows) of logits `[batch, vocab]` at the END positions.
    pub fn score(&self, logits: &Tensor) -> Result<f64> {
        Ok(metric::mean(&self.per_example(logits)?))
    }

    /// The metric of a run computed with `LogitsAt::Rows(self.ends)`.
    pub fn score_run(&self, run: &Run) -> Result<f64> {
        let logits = run
            .logits
            .as_ref()
            .ok_or_else(|| Error::input("the run computed no logits"))?;
        self.score(logits)
    }

    /// Where the logits of patched runs are needed.
    pub fn logits_at(&self) -> LogitsAt {
        LogitsAt::Rows(self.ends.clone())
    }

    /// An unpatched run on the clean tokens, keeping `cache`.
    pub fn clean_run(&self, cache: NameFilter) -> Result<Run> {
        self.plain_run(&self.clean_tokens, cache)
    }

    /// An unpatched run on the corrupted tokens, keeping `cache`.
    pub fn corrupted_run(&self, cache: NameFilter) -> Result<Run> {
        self.plain_run(&self.corrupted_tokens, cache)
    }

    /// Each row's index for a position: a name of the dataset (`END`, `S2`, `IO`, …) or an
    /// index (negative counts back from the row's END: `-1` is END).
    pub fn resolve(&self, pos: &Position) -> Result<Vec<usize>> {
        let p = self.seq_len();
        match pos {
            Position::Named(n) => self.ds.position(n),
            Position::Index(i) => self
                .ends
                .iter()
                .enumerate()
                .map(|(row, &end)| {
                    let q = if *i < 0 { end as i64 + 1 + i } else { *i };
                    if q < 0 || q as usize >= p {
                        Err(Error::input(format!(
                            "position {i} is outside row {row} ({p} positions, END at {end})"
                        )))
                    } else {
                        Ok(q as usize)
                    }
                })
                .collect(),
        }
    }

    /// A `[batch, pos, 1]` 0/1 mask (model dtype) of the given positions.
    pub fn position_mask(&self, positions: &[Position]) -> Result<Tensor> {
        let (b, p) = (self.batch(), self.seq_len());
        let mut m = vec![0f64; b * p];
        for pos in positions {
            for (row, q) in self.resolve(pos)?.into_iter().enumerate() {
                m[row * p + q] = 1.0;
            }
        }
        Ok(Tensor::from_vec(m, (b, p, 1), self.model.device())?.to_dtype(self.model.dtype)?)
    }

    fn plain_run(&self, tokens: &Tensor, cache: NameFilter) -> Result<Run> {
        eval::run(
            self.model,
            tokens,
            &Patches::new(),
            RunOptions {
                cache,
                logits: self.logits_at(),
                ..Default::default()
            },
        )
    }
}
