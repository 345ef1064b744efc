//! Greater-than (Hanna et al.; ACDC's `greaterthan`): "The war lasted from the year 1732 to 17".
//! The prompt is ACDC's: "The {noun} lasted from the year {XX}{YY} to {XX}".
//! The answer set is the two-digit tokens `YY+1 … 99`; the wrong set `00 … YY`, so
//! [`crate::metric::Metric::ProbDiff`] is the paper's probability difference.
//! The corruption is the year `{XX}01` (Hanna et al.'s "01-02" baseline), same length.

use super::dataset::{end_position, Dataset, Example};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// ACDC's greater-than nouns (`acdc/greaterthan/utils.py`).
#[rustfmt::skip]
pub const NOUNS: [&str; 120] = [
    "abduction", "accord", "affair", "agreement", "appraisal",
    "assaults", "assessment", "attack", "attempts", "campaign",
    "captivity", "case", "challenge", "chaos", "clash",
    "collaboration", "coma", "competition", "confrontation", "consequence",
    "conspiracy", "construction", "consultation", "contact",
    "contract", "convention", "cooperation", "custody", "deal",
    "decline", "decrease", "demonstrations", "development", "disagreement",
    "disorder", "dispute", "domination", "dynasty", "effect",
    "effort", "employment", "endeavor", "engagement",
    "epidemic", "evaluation", "exchange", "existence", "expansion",
    "expedition", "experiments", "fall", "fame", "flights",
    "friendship", "growth", "hardship", "hostility", "illness",
    "impact", "imprisonment", "improvement", "incarceration",
    "increase", "insurgency", "invasion", "investigation", "journey",
    "kingdom", "marriage", "modernization", "negotiation",
    "notoriety", "obstruction", "operation", "order", "outbreak",
    "outcome", "overhaul", "patrols", "pilgrimage", "plague",
    "plan", "practice", "process", "program", "progress",
    "project", "pursuit", "quest", "raids", "reforms",
    "reign", "relationship",
    "retaliation", "riot", "rise", "rivalry", "romance",
    "rule", "sanctions", "shift", "siege", "slump",
    "stature", "stint", "strikes", "study",
    "test", "testing", "tests", "therapy", "tour",
    "tradition", "treaty", "trial", "trip", "unemployment",
    "voyage", "warfare", "work",
];

/// Options of the greater-than task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GreaterThanOptions {
    /// Number of prompts.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// Prepend the BOS token (ACDC does not).
    pub prepend_bos: bool,
    /// First century (the `XX` of the year), inclusive.
    pub min_century: u32,
    /// Last century, inclusive.
    pub max_century: u32,
}

impl Default for GreaterThanOptions {
    fn default() -> Self {
        GreaterThanOptions {
            n: 100,
            seed: 0,
            prepend_bos: false,
            min_century: 11,
            max_century: 17,
        }
    }
}

/// Years whose " XXYY" tokenizes as " XX" + "YY" (ACDC's rule: years XX02…XX98 that split so,
/// without the first and last of each century).
fn valid_years(tok: &Tokenizer, opts: &GreaterThanOptions) -> Result<Vec<u32>> {
    let mut years = Vec::new();
    for century in opts.min_century..=opts.max_century {
        let Some(xx) = tok.single_token(&format!(" {century}")) else {
            continue;
        };
        let mut ok = Vec::new();
        for yy in 2..99 {
            let year = century * 100 + yy;
            let ids = tok.to_tokens(&format!(" {year}"), false)?;
            if ids.len() == 2
                && ids[0] == xx
                && tok.single_token(&format!("{yy:02}")) == Some(ids[1])
            {
                ok.push(year);
            }
        }
        if ok.len() > 2 {
            years.extend_from_slice(&ok[1..ok.len() - 1]);
        }
    }
    Ok(years)
}

/// Generate a greater-than dataset.
pub fn generate(opts: &GreaterThanOptions, tok: &Tokenizer) -> Result<Dataset> {
    let mut two_digit = Vec::with_capacity(100);
    for yy in 0..100u32 {
        let s = format!("{yy:02}");
        two_digit.push(tok.single_token(&s).ok_or_else(|| {
            Error::input(format!(
                "greater-than: \"{s}\" is not one token with {}; this task needs GPT-2-style \
                 two-digit tokens",
                tok.source().display()
            ))
        })?);
    }
    let years = valid_years(tok, opts)?;
    let nouns: Vec<&str> = NOUNS
        .iter()
        .copied()
        .filter(|n| tok.single_token(&format!(" {n}")).is_some())
        .collect();
    let available = years.len() * nouns.len();
    if opts.n == 0 || opts.n > available {
        return Err(Error::input(format!(
            "greater-than: n = {} but {} distinct prompts are available ({} years × {} \
             single-token nouns) with {}; use n between 1 and {available}",
            opts.n,
            available,
            years.len(),
            nouns.len(),
            tok.source().display()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut seen = BTreeSet::new();
    let mut examples = Vec::with_capacity(opts.n);
    while examples.len() < opts.n {
        let noun = nouns[rng.random_range(0..nouns.len())];
        let year = years[rng.random_range(0..years.len())];
        if !seen.insert((noun, year)) {
            continue;
        }
        let (xx, yy) = (year / 100, year % 100);
        let prompt = format!("The {noun} lasted from the year {year} to {xx}");
        let cprompt = format!("The {noun} lasted from the year {xx}01 to {xx}");
        let tokens = tok.to_tokens(&prompt, opts.prepend_bos)?;
        let ctokens = tok.to_tokens(&cprompt, opts.prepend_bos)?;
        if ctokens.len() != tokens.len() {
            return Err(Error::input(format!(
                "greater-than: the corrupted prompt {cprompt:?} does not tokenize like \
                 {prompt:?} with {}",
                tok.source().display()
            )));
        }
        let end = end_position(&tokens);
        let mut positions = BTreeMap::new();
        positions.insert("END".to_string(), end);
        positions.insert("YY".to_string(), end - 2);
        positions.insert("XX1".to_string(), end - 3);
        positions.insert("noun".to_string(), usize::from(opts.prepend_bos) + 1);
        let mut features = BTreeMap::new();
        features.insert("noun".to_string(), noun.to_string());
        features.insert("century".to_string(), xx.to_string());
        features.insert("YY".to_string(), format!("{yy:02}"));
        features.insert("year".to_string(), year.to_string());
        examples.push(Example {
            prompt,
            tokens,
            positions,
            answer: two_digit[(yy as usize + 1)..].to_vec(),
            wrong: two_digit[..=(yy as usize)].to_vec(),
            features,
            corrupted_prompt: Some(cprompt),
            corrupted_tokens: Some(ctokens),
        });
    }
    Ok(Dataset {
        task: "greater-than".into(),
        examples,
    })
}
