//! Head detectors on repeated random tokens: previous-token, duplicate-token and induction
//! scores for every head, as in the IOI paper replication ("validation of early heads").
//!
//! A batch of sequences `[BOS] r r` is run, `r` being `n` random tokens. With `o` = 1 when a BOS
//! token leads (0 otherwise), a head's score is its mean attention probability over these
//! (destination, source) pairs:
//!
//! - previous token: destinations `o+1 .. o+n` (the first copy and the first token of the
//!   second), source `dest − 1`;
//! - duplicate token: destinations `o+n .. o+2n` (the second copy), source `dest − n` (the same
//!   token's first occurrence);
//! - induction: destinations `o+n .. o+2n`, source `dest − n + 1` (the token after the first
//!   occurrence).

use crate::error::{Error, Result};
use crate::eval::{self, LogitsAt, NameFilter, Patches, RunOptions};
use crate::model::Model;
use candle_core::DType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The three detectors.
pub const DETECTORS: [&str; 3] = ["previous-token", "duplicate-token", "induction"];

/// Scores of every head, `[n_layers][n_heads]` for each detector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeadScores {
    /// Mean attention to the previous position.
    pub previous_token: Vec<Vec<f64>>,
    /// Mean attention to the earlier copy of the same token.
    pub duplicate_token: Vec<Vec<f64>>,
    /// Mean attention to the token after the earlier copy.
    pub induction: Vec<Vec<f64>>,
    /// Length of the random half.
    pub seq_len: usize,
    /// Number of sequences.
    pub batch: usize,
    /// Seed of the random tokens.
    pub seed: u64,
    /// Whether a BOS token led each sequence.
    pub bos: bool,
}

impl HeadScores {
    /// The scores of a detector by name (`previous-token`, `duplicate-token`, `induction`).
    pub fn get(&self, detector: &str) -> Result<&Vec<Vec<f64>>> {
        match detector {
            "previous-token" | "prev" | "previous" => Ok(&self.previous_token),
            "duplicate-token" | "duplicate" => Ok(&self.duplicate_token),
            "induction" => Ok(&self.induction),
            _ => Err(Error::input(format!(
                "unknown head detector '{detector}'; use one of {}",
                DETECTORS.join(", ")
            ))),
        }
    }
}

/// `batch` sequences `[BOS] r r` with `r` of `seq_len` tokens drawn from `pool`: distinct
/// within a sequence when the pool is large enough, else with replacement.
pub fn repeated_tokens(
    pool: &[u32],
    seq_len: usize,
    batch: usize,
    seed: u64,
    bos: Option<u32>,
) -> Result<Vec<Vec<u32>>> {
    if pool.is_empty() || seq_len == 0 || batch == 0 {
        return Err(Error::input(
            "repeated tokens need a non-empty token pool, seq_len ≥ 1 and batch ≥ 1",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let distinct = pool.len() >= seq_len;
    let mut out = Vec::with_capacity(batch);
    for _ in 0..batch {
        let mut r: Vec<u32> = Vec::with_capacity(seq_len);
        while r.len() < seq_len {
            let t = pool[rng.random_range(0..pool.len())];
            if !distinct || !r.contains(&t) {
                r.push(t);
            }
        }
        let mut row: Vec<u32> = bos.into_iter().collect();
        row.extend_from_slice(&r);
        row.extend_from_slice(&r);
        out.push(row);
    }
    Ok(out)
}

/// Score every head on `tokens` (rows `[BOS] r r` with `r` of `seq_len` tokens; `bos` says
/// whether the BOS token is there).
#[allow(clippy::needless_range_loop)] // several arrays share the index
pub fn head_scores(
    model: &Model,
    tokens: &[Vec<u32>],
    seq_len: usize,
    bos: bool,
) -> Result<HeadScores> {
    let o = usize::from(bos);
    let p = o + 2 * seq_len;
    if let Some(r) = tokens.iter().find(|r| r.len() != p) {
        return Err(Error::input(format!(
            "head detectors: a row has {} tokens, expected {p} ({}2 × {seq_len})",
            r.len(),
            if bos { "BOS + " } else { "" }
        )));
    }
    let t = model.tokens_tensor(tokens)?;
    let cfg = &model.cfg;
    let filter = NameFilter::new(&["blocks.*.attn.hook_pattern".to_string()], cfg)?;
    let run = eval::run(
        model,
        &t,
        &Patches::new(),
        RunOptions {
            cache: filter,
            logits: LogitsAt::None,
            ..Default::default()
        },
    )?;
    let n = seq_len;
    let pairs: [Vec<(usize, usize)>; 3] = [
        (o + 1..=o + n).map(|d| (d, d - 1)).collect(),
        (o + n..o + 2 * n).map(|d| (d, d - n)).collect(),
        (o + n..o + 2 * n).map(|d| (d, d + 1 - n)).collect(),
    ];
    let mut scores = vec![vec![vec![0.0f64; cfg.n_heads]; cfg.n_layers]; 3];
    for l in 0..cfg.n_layers {
        let name = format!("blocks.{l}.attn.hook_pattern");
        let pat = run
            .cache
            .get(&name)
            .ok_or_else(|| Error::input(format!("the run kept no {name}")))?
            .to_dtype(DType::F64)?;
        let (b, h, q, k) = pat.dims4()?;
        let flat = pat.flatten_all()?.to_vec1::<f64>()?;
        // Attention of row bi, head hi, from dest to src.
        let at = |bi: usize, hi: usize, dest: usize, src: usize| {
            flat[((bi * h + hi) * q + dest) * k + src]
        };
        for (d, list) in pairs.iter().enumerate() {
            for (h, slot) in scores[d][l].iter_mut().enumerate() {
                let mut sum = 0.0;
                for bi in 0..b {
                    for &(dest, src) in list {
                        sum += at(bi, h, dest, src);
                    }
                }
                *slot = sum / (list.len() * b) as f64;
            }
        }
    }
    let [previous_token, duplicate_token, induction] = scores
        .try_into()
        .map_err(|_| Error::input("internal: three detectors expected"))?;
    Ok(HeadScores {
        previous_token,
        duplicate_token,
        induction,
        seq_len,
        batch: tokens.len(),
        seed: 0,
        bos,
    })
}

/// Draw repeated random tokens from the model's vocabulary (without `exclude`, e.g. special
/// tokens) and score every head.
pub fn detect(
    model: &Model,
    exclude: &[u32],
    bos: Option<u32>,
    seq_len: usize,
    batch: usize,
    seed: u64,
) -> Result<HeadScores> {
    let pool: Vec<u32> = (0..model.cfg.d_vocab as u32)
        .filter(|t| !exclude.contains(t))
        .collect();
    let p = usize::from(bos.is_some()) + 2 * seq_len;
    if p > model.cfg.n_ctx {
        return Err(Error::input(format!(
            "--seq-len {seq_len}: the repeated sequence has {p} tokens, more than the model's \
             context of {}; use --seq-len {} or less",
            model.cfg.n_ctx,
            (model.cfg.n_ctx - usize::from(bos.is_some())) / 2
        )));
    }
    let tokens = repeated_tokens(&pool, seq_len, batch, seed, bos)?;
    let mut s = head_scores(model, &tokens, seq_len, bos.is_some())?;
    s.seed = seed;
    Ok(s)
}
