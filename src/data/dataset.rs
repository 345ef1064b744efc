//! Datasets: prompts, their token ids, named positions, answers and per-example features.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One prompt of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The prompt text (without the answer).
    pub prompt: String,
    /// Its token ids (BOS included when the task prepends one).
    pub tokens: Vec<u32>,
    /// Every named position (token index). Always includes `"END"`, the position whose
    /// next-token prediction is scored.
    pub positions: BTreeMap<String, usize>,
    /// Answer token id(s), non-empty (a set for greater-than).
    pub answer: Vec<u32>,
    /// Wrong token id(s), may be empty.
    pub wrong: Vec<u32>,
    /// Per-example features for conditional samplers (template, IO, S, order, …).
    pub features: BTreeMap<String, String>,
    /// The corrupted prompt, aligned with this row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupted_prompt: Option<String>,
    /// The corrupted prompt's token ids: the same length as `tokens` for corruptions that keep
    /// positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupted_tokens: Option<Vec<u32>>,
}

/// The END position of a row of tokens: its last token, whose next-token prediction is scored
/// (0 for an empty row). Every task and every fallback names END through this one rule.
pub fn end_position(tokens: &[u32]) -> usize {
    tokens.len().saturating_sub(1)
}

/// Which tokens of a row: the clean prompt's or the corrupted prompt's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The prompt (`tokens`).
    Clean,
    /// The corrupted prompt (`corrupted_tokens`).
    Corrupted,
}

impl Example {
    /// The END position.
    pub fn end(&self) -> usize {
        self.positions
            .get("END")
            .copied()
            .unwrap_or_else(|| end_position(&self.tokens))
    }

    /// The tokens of one side (`None`: no corrupted prompt).
    pub fn side(&self, side: Side) -> Option<&[u32]> {
        match side {
            Side::Clean => Some(&self.tokens),
            Side::Corrupted => self.corrupted_tokens.as_deref(),
        }
    }
}

/// A task's examples, in a fixed row order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// The task's name (`ioi`, `induction`, …).
    pub task: String,
    /// The rows.
    pub examples: Vec<Example>,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The longest row, in tokens.
    pub fn max_len(&self) -> usize {
        self.examples
            .iter()
            .map(|e| e.tokens.len())
            .max()
            .unwrap_or(0)
    }

    /// The longest row of either side (clean or corrupted), in tokens: the length at which
    /// both sides' rows line up position by position.
    pub fn aligned_len(&self) -> usize {
        self.examples
            .iter()
            .map(|e| {
                e.tokens
                    .len()
                    .max(e.corrupted_tokens.as_ref().map_or(0, Vec::len))
            })
            .max()
            .unwrap_or(0)
    }

    /// Row-major `[n, max_len]` token ids, right-padded with `pad`; returns `(ids, n, max_len)`.
    pub fn padded_tokens(&self, pad: u32) -> (Vec<u32>, usize, usize) {
        let m = self.max_len();
        let rows = self.padded_rows(Side::Clean, m, pad);
        (rows.concat(), self.len(), m)
    }

    /// Each row's tokens of one side, right-padded with `pad` to `len` (at least every row's
    /// length; a longer row is kept whole). A row without a corrupted prompt gives an empty
    /// (all-padding) row on the corrupted side.
    pub fn padded_rows(&self, side: Side, len: usize, pad: u32) -> Vec<Vec<u32>> {
        self.examples
            .iter()
            .map(|e| {
                let mut r = e.side(side).unwrap_or_default().to_vec();
                if r.len() < len {
                    r.resize(len, pad);
                }
                r
            })
            .collect()
    }

    /// A dataset from token rows (task `tokens`): END is each row's last position;
    /// `corrupted` and `answers` (`[answer, wrong]` per row) are optional (attention patterns
    /// need neither).
    pub fn from_token_rows(
        clean: &[Vec<u32>],
        corrupted: Option<&[Vec<u32>]>,
        answers: Option<&[(u32, u32)]>,
    ) -> Result<Dataset> {
        if let Some(c) = corrupted {
            if c.len() != clean.len() {
                return Err(Error::input(format!(
                    "{} clean rows but {} corrupted rows: give one corrupted row per clean row",
                    clean.len(),
                    c.len()
                )));
            }
        }
        if let Some(a) = answers {
            if a.len() != clean.len() {
                return Err(Error::input(format!(
                    "{} token rows but {} answer pairs: give one [answer, wrong] pair per row",
                    clean.len(),
                    a.len()
                )));
            }
        }
        let examples = clean
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut positions = BTreeMap::new();
                positions.insert("END".to_string(), end_position(c));
                let (answer, wrong) = match answers {
                    Some(a) => (vec![a[i].0], vec![a[i].1]),
                    None => (Vec::new(), Vec::new()),
                };
                Example {
                    prompt: String::new(),
                    tokens: c.clone(),
                    positions,
                    answer,
                    wrong,
                    features: BTreeMap::new(),
                    corrupted_prompt: None,
                    corrupted_tokens: corrupted.map(|x| x[i].clone()),
                }
            })
            .collect();
        Ok(Dataset {
            task: "tokens".into(),
            examples,
        })
    }

    /// Each row's END position.
    pub fn end_positions(&self) -> Vec<usize> {
        self.examples.iter().map(Example::end).collect()
    }

    /// The keys of the named positions (union over rows, sorted).
    pub fn position_keys(&self) -> Vec<String> {
        let mut keys: std::collections::BTreeSet<&str> = Default::default();
        for e in &self.examples {
            keys.extend(e.positions.keys().map(String::as_str));
        }
        keys.into_iter().map(str::to_string).collect()
    }

    /// The keys of the features (union over rows, sorted).
    pub fn feature_keys(&self) -> Vec<String> {
        let mut keys: std::collections::BTreeSet<&str> = Default::default();
        for e in &self.examples {
            keys.extend(e.features.keys().map(String::as_str));
        }
        keys.into_iter().map(str::to_string).collect()
    }

    /// The named position in every row; an unknown name is an error listing the known ones.
    pub fn position(&self, name: &str) -> Result<Vec<usize>> {
        self.examples
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.positions.get(name).copied().ok_or_else(|| {
                    Error::input(format!(
                        "position '{name}' is not defined for row {i} of the {} dataset; \
                         known positions: {}",
                        self.task,
                        self.position_keys().join(", ")
                    ))
                })
            })
            .collect()
    }

    /// The named feature of every row; an unknown name is an error listing the known ones.
    pub fn feature(&self, name: &str) -> Result<Vec<&str>> {
        self.examples
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.features.get(name).map(String::as_str).ok_or_else(|| {
                    Error::input(format!(
                        "feature '{name}' is not defined for row {i} of the {} dataset; \
                         known features: {}",
                        self.task,
                        self.feature_keys().join(", ")
                    ))
                })
            })
            .collect()
    }

    /// True when every row has a corrupted prompt.
    pub fn has_corrupted(&self) -> bool {
        !self.is_empty() && self.examples.iter().all(|e| e.corrupted_tokens.is_some())
    }

    /// The corrupted dataset: each row's prompt and tokens are its corrupted ones; answers,
    /// positions and features are kept (the clean prompt becomes the row's corrupted prompt).
    /// Where a corruption changes the length, `END` (and `end`) move to the corrupted last token.
    pub fn corrupted(&self) -> Result<Dataset> {
        let mut examples = Vec::with_capacity(self.len());
        for (i, e) in self.examples.iter().enumerate() {
            let Some(ct) = &e.corrupted_tokens else {
                return Err(Error::input(format!(
                    "the {} dataset has no corrupted prompt for row {i}; for IOI give a flip \
                     (e.g. flip: \"ABB->XYZ, BAB->XYZ\", CLI --flip), for JSONL add \
                     \"corrupted\" to every line",
                    self.task
                )));
            };
            let mut c = e.clone();
            c.prompt = e.corrupted_prompt.clone().unwrap_or_default();
            c.tokens = ct.clone();
            c.corrupted_prompt = Some(e.prompt.clone());
            c.corrupted_tokens = Some(e.tokens.clone());
            if ct.len() != e.tokens.len() {
                let end = end_position(ct);
                for key in ["END", "end"] {
                    if let Some(p) = c.positions.get_mut(key) {
                        *p = end;
                    }
                }
            }
            examples.push(c);
        }
        Ok(Dataset {
            task: self.task.clone(),
            examples,
        })
    }

    /// The given rows, in the given order (repeats allowed). Panics on a row out of range.
    pub fn select(&self, rows: &[usize]) -> Dataset {
        Dataset {
            task: self.task.clone(),
            examples: rows.iter().map(|&r| self.examples[r].clone()).collect(),
        }
    }

    /// The dataset as JSON lines, one example per line (the `circuitscope data` format).
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for e in &self.examples {
            // Serialising plain strings, integers and maps cannot fail.
            out.push_str(&serde_json::to_string(e).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}
