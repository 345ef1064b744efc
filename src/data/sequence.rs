//! Sequence continuation (digits, number words, months): "1 2 3 4" → " 5".
//!
//! The corruption is the same task from another random starting point (same length, so
//! positions are kept); the wrong token is the corrupted sequence's continuation.

use super::dataset::{end_position, Dataset, Example};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Options shared by the sequence-continuation tasks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SequenceOptions {
    /// Number of prompts (distinct starting points; months have 8 with `len` 4).
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// Prepend the BOS token.
    pub prepend_bos: bool,
    /// Items shown before the one to predict.
    pub len: usize,
}

impl Default for SequenceOptions {
    fn default() -> Self {
        SequenceOptions {
            n: 8,
            seed: 0,
            prepend_bos: true,
            len: 4,
        }
    }
}

/// Which sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceKind {
    /// 0 1 2 … 99.
    Digits,
    /// one two … twenty.
    NumberWords,
    /// January … December.
    Months,
}

/// The number words, one to twenty.
pub const NUMBER_WORDS: [&str; 20] = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// The months.
pub const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl SequenceKind {
    /// The task name.
    pub fn name(&self) -> &'static str {
        match self {
            SequenceKind::Digits => "digits",
            SequenceKind::NumberWords => "number-words",
            SequenceKind::Months => "months",
        }
    }

    /// The items in order.
    pub fn items(&self) -> Vec<String> {
        match self {
            SequenceKind::Digits => (0..100).map(|i| i.to_string()).collect(),
            SequenceKind::NumberWords => NUMBER_WORDS.iter().map(|s| s.to_string()).collect(),
            SequenceKind::Months => MONTHS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Token ids of a sequence starting at `start`: the first item as it stands at the start of the
/// text, the rest and the continuation after a space. `None` if any is not one token.
fn sequence_ids(tok: &Tokenizer, items: &[String], start: usize, len: usize) -> Option<Vec<u32>> {
    let mut ids = Vec::with_capacity(len + 1);
    for (k, item) in items[start..=start + len].iter().enumerate() {
        let word = if k == 0 {
            item.clone()
        } else {
            format!(" {item}")
        };
        ids.push(tok.single_token(&word)?);
    }
    Some(ids)
}

/// Generate a sequence-continuation dataset.
pub fn generate(kind: SequenceKind, opts: &SequenceOptions, tok: &Tokenizer) -> Result<Dataset> {
    let items = kind.items();
    if opts.len == 0 || opts.len >= items.len() {
        return Err(Error::input(format!(
            "{}: len = {} must be between 1 and {}",
            kind.name(),
            opts.len,
            items.len() - 1
        )));
    }
    let starts = usable_starts(kind, opts, tok, &items)?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // A seeded partial shuffle picks n distinct starts.
    let mut pool = starts.clone();
    for i in 0..opts.n {
        let j = rng.random_range(i..pool.len());
        pool.swap(i, j);
    }
    let bos = if opts.prepend_bos {
        Some(tok.bos_token_id().ok_or_else(|| {
            Error::input(format!(
                "{}: {} has no BOS token; set prepend_bos to false",
                kind.name(),
                tok.source().display()
            ))
        })?)
    } else {
        None
    };
    let mut examples = Vec::with_capacity(opts.n);
    for &start in &pool[..opts.n] {
        let mut cstart = start;
        while cstart == start {
            cstart = starts[rng.random_range(0..starts.len())];
        }
        examples.push(example(tok, &items, opts.len, bos, start, cstart));
    }
    Ok(Dataset {
        task: kind.name().to_string(),
        examples,
    })
}

/// The starts whose sequences are all single tokens (the others left out with a warning); an
/// error when they are too few for `opts.n` prompts and their corruptions.
fn usable_starts(
    kind: SequenceKind,
    opts: &SequenceOptions,
    tok: &Tokenizer,
    items: &[String],
) -> Result<Vec<usize>> {
    let mut starts = Vec::new();
    let mut dropped = Vec::new();
    for s in 0..items.len() - opts.len {
        if sequence_ids(tok, items, s, opts.len).is_some() {
            starts.push(s);
        } else {
            dropped.push(items[s].clone());
        }
    }
    if !dropped.is_empty() {
        tracing::warn!(
            "{}: sequences starting at {} contain words that are not one token with {} and are \
             left out",
            kind.name(),
            dropped.join(", "),
            tok.source().display()
        );
    }
    if opts.n == 0 || opts.n > starts.len() {
        return Err(Error::input(format!(
            "{}: n = {} but only {} distinct sequences of length {} are available with {}; use \
             n between 1 and {}",
            kind.name(),
            opts.n,
            starts.len(),
            opts.len,
            tok.source().display(),
            starts.len()
        )));
    }
    if starts.len() < 2 {
        return Err(Error::input(format!(
            "{}: the corruption needs at least 2 distinct starting points, found {}",
            kind.name(),
            starts.len()
        )));
    }
    Ok(starts)
}

/// The example of the sequence at `start`, corrupted by the one at `cstart`.
fn example(
    tok: &Tokenizer,
    items: &[String],
    len: usize,
    bos: Option<u32>,
    start: usize,
    cstart: usize,
) -> Example {
    let offset = usize::from(bos.is_some());
    let ids = sequence_ids(tok, items, start, len).unwrap_or_default();
    let cids = sequence_ids(tok, items, cstart, len).unwrap_or_default();
    let mut tokens: Vec<u32> = bos.into_iter().collect();
    tokens.extend_from_slice(&ids[..len]);
    let mut ctokens: Vec<u32> = bos.into_iter().collect();
    ctokens.extend_from_slice(&cids[..len]);
    let prompt = items[start..start + len].join(" ");
    let cprompt = items[cstart..cstart + len].join(" ");
    let end = end_position(&tokens);
    let mut positions = BTreeMap::new();
    positions.insert("END".to_string(), end);
    positions.insert("first".to_string(), offset);
    for k in 0..len {
        positions.insert(format!("item{k}"), offset + k);
    }
    let mut features = BTreeMap::new();
    features.insert("start".to_string(), items[start].clone());
    features.insert("answer".to_string(), items[start + len].clone());
    features.insert("corrupted_start".to_string(), items[cstart].clone());
    Example {
        prompt,
        tokens,
        positions,
        answer: vec![ids[len]],
        wrong: vec![cids[len]],
        features,
        corrupted_prompt: Some(cprompt),
        corrupted_tokens: Some(ctokens),
    }
}
