//! Induction: a sequence of random tokens, repeated. At every position of the second copy the
//! next token can be predicted by induction; the scored position END is the last token, whose
//! continuation by induction is the first token of the sequence.
//!
//! Positions: `R1` (first token of the first copy), `R2` (first token of the second copy),
//! `END`. Induction can predict the next token at every position from `R2` to `END`.
//! The corruption replaces the second copy with fresh random tokens (same length).

use super::dataset::{end_position, Dataset, Example};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Options of the induction task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InductionOptions {
    /// Number of sequences.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// Prepend the BOS token.
    pub prepend_bos: bool,
    /// Length of the random sequence (the prompt holds it twice).
    pub seq_len: usize,
    /// Smallest token id drawn.
    pub min_token: u32,
    /// One past the largest token id drawn; 0 = the vocabulary size.
    pub max_token: u32,
}

impl Default for InductionOptions {
    fn default() -> Self {
        InductionOptions {
            n: 50,
            seed: 0,
            prepend_bos: true,
            seq_len: 20,
            min_token: 0,
            max_token: 0,
        }
    }
}

/// Generate an induction dataset.
pub fn generate(opts: &InductionOptions, tok: &Tokenizer) -> Result<Dataset> {
    let vocab = tok.vocab_size() as u32;
    let hi = if opts.max_token == 0 {
        vocab
    } else {
        opts.max_token.min(vocab)
    };
    let specials = tok.special_ids();
    let pool: Vec<u32> = (opts.min_token..hi)
        .filter(|id| specials.binary_search(id).is_err())
        .collect();
    if pool.len() < 2 * opts.seq_len.max(1) || opts.seq_len == 0 || opts.n == 0 {
        return Err(Error::input(format!(
            "induction: need n ≥ 1, seq_len ≥ 1 and at least 2·seq_len ordinary tokens in \
             [min_token, max_token); got n = {}, seq_len = {}, {} tokens",
            opts.n,
            opts.seq_len,
            pool.len()
        )));
    }
    let bos = if opts.prepend_bos {
        Some(tok.bos_token_id().ok_or_else(|| {
            Error::input(format!(
                "induction: {} has no BOS token; set prepend_bos to false",
                tok.source().display()
            ))
        })?)
    } else {
        None
    };
    let off = usize::from(bos.is_some());
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // Distinct tokens within a sequence, so that each token has one continuation.
    let draw = |rng: &mut ChaCha8Rng, avoid: &[u32]| -> Vec<u32> {
        let mut out: Vec<u32> = Vec::with_capacity(opts.seq_len);
        while out.len() < opts.seq_len {
            let t = pool[rng.random_range(0..pool.len())];
            if !out.contains(&t) && !avoid.contains(&t) {
                out.push(t);
            }
        }
        out
    };
    let mut examples = Vec::with_capacity(opts.n);
    for _ in 0..opts.n {
        let r = draw(&mut rng, &[]);
        let fresh = draw(&mut rng, &r);
        let mut tokens: Vec<u32> = bos.into_iter().collect();
        tokens.extend_from_slice(&r);
        tokens.extend_from_slice(&r);
        let mut ctokens: Vec<u32> = bos.into_iter().collect();
        ctokens.extend_from_slice(&r);
        ctokens.extend_from_slice(&fresh);
        let mut positions = BTreeMap::new();
        positions.insert("R1".to_string(), off);
        positions.insert("R2".to_string(), off + opts.seq_len);
        positions.insert("END".to_string(), end_position(&tokens));
        let mut features = BTreeMap::new();
        features.insert("first_token".to_string(), r[0].to_string());
        features.insert("seq_len".to_string(), opts.seq_len.to_string());
        examples.push(Example {
            prompt: tok.decode(&tokens)?,
            corrupted_prompt: Some(tok.decode(&ctokens)?),
            tokens,
            positions,
            answer: vec![r[0]],
            wrong: vec![],
            features,
            corrupted_tokens: Some(ctokens),
        });
    }
    Ok(Dataset {
        task: "induction".into(),
        examples,
    })
}
