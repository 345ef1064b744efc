//! The IOI training task of `toy-ioi`: a word-level vocabulary over the IOI prompts, a split
//! that holds out whole templates and name pairs, batches drawn from the IOI generator, and the
//! task metrics (logit difference IO − S, top-1, the ABC corruption, untrained names).

use crate::data::ioi::{self, IoiOptions, NameList, PromptType};
use crate::data::{Dataset, Side};
use crate::error::{Error, Result};
use crate::eval::{self, LogitsAt, Patches, RunOptions};
use crate::experiment::{padded_tensor, PAD};
use crate::model::Model;
use crate::tokenizer::{word_level_tokenizer_json, Tokenizer};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The ARENA-style ABC corruption: every prompt's names are replaced by three fresh names.
pub const ABC_FLIP: &str = "ABB->XYZ, BAB->XYZ";

/// How the IOI training data is drawn and split (the `task: Ioi(...)` part of a training config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IoiTraining {
    /// Template ids of the whole pool (training plus held out); empty = the paper's 15 BABA
    /// and 15 ABBA templates.
    pub templates: Vec<String>,
    /// Template ids never trained on, for evaluation.
    pub heldout_templates: Vec<String>,
    /// Fraction of unordered name pairs never trained on (every name is still trained on).
    pub heldout_pairs: f64,
    /// Seed of the name-pair split.
    pub split_seed: u64,
    /// The names prompts are built from.
    pub names: NameList,
    /// Names put in the vocabulary but never in a training prompt (to report that untrained
    /// names cannot be copied); names of `names` are left out of this list.
    pub untrained_names: Option<NameList>,
}

impl Default for IoiTraining {
    fn default() -> Self {
        IoiTraining {
            templates: Vec::new(),
            heldout_templates: Vec::new(),
            heldout_pairs: 0.1,
            split_seed: 0,
            names: NameList::Paper,
            untrained_names: Some(NameList::Arena),
        }
    }
}

/// Which prompts to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training templates and training name pairs.
    Train,
    /// Held-out templates with held-out name pairs.
    Heldout,
    /// Held-out templates with two names never seen in training.
    Untrained,
}

/// FNV-1a over bytes, for stable hashing of names and seeds.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Mix a seed with a label and an index into a new seed.
pub fn derive_seed(seed: u64, label: &str, i: u64) -> u64 {
    let mut b = seed.to_le_bytes().to_vec();
    b.extend_from_slice(label.as_bytes());
    b.extend_from_slice(&i.to_le_bytes());
    fnv1a(&b)
}

/// The IOI task with its vocabulary and split.
#[derive(Debug, Clone)]
pub struct IoiTask {
    /// The settings.
    pub cfg: IoiTraining,
    /// The word-level tokenizer over the task's words.
    pub tok: Tokenizer,
    /// Its `tokenizer.json` text.
    pub tokenizer_json: String,
    /// Templates trained on.
    pub train_templates: Vec<String>,
    /// Names that appear in training prompts.
    pub trained_names: BTreeSet<String>,
}

impl IoiTask {
    /// Build the vocabulary and split.
    pub fn new(cfg: &IoiTraining) -> Result<Self> {
        let all: Vec<String> = if cfg.templates.is_empty() {
            ioi::template_ids()
                .into_iter()
                .filter(|id| {
                    id.strip_prefix("baba-")
                        .or_else(|| id.strip_prefix("abba-"))
                        .is_some_and(|rest| rest.parse::<usize>().is_ok())
                })
                .collect()
        } else {
            cfg.templates.clone()
        };
        for t in all.iter().chain(&cfg.heldout_templates) {
            if ioi::template_text(t).is_none() {
                return Err(Error::input(format!(
                    "unknown IOI template '{t}'; known ids: {}",
                    ioi::template_ids().join(", ")
                )));
            }
        }
        if let Some(t) = cfg.heldout_templates.iter().find(|t| !all.contains(t)) {
            return Err(Error::input(format!(
                "held-out template '{t}' is not in the template pool; list it in templates"
            )));
        }
        let train_templates: Vec<String> = all
            .iter()
            .filter(|t| !cfg.heldout_templates.contains(t))
            .cloned()
            .collect();
        if train_templates.is_empty() || cfg.heldout_templates.is_empty() {
            return Err(Error::input(
                "IOI training needs at least one training and one held-out template",
            ));
        }
        if !(0.0..1.0).contains(&cfg.heldout_pairs) {
            return Err(Error::input(format!(
                "heldout_pairs is {}; give a fraction in [0, 1)",
                cfg.heldout_pairs
            )));
        }
        let words = Self::vocabulary(cfg);
        let tokenizer_json = word_level_tokenizer_json(&words, &[]);
        let tok = Tokenizer::from_json_str(&tokenizer_json, "the IOI word-level tokenizer")?;
        let trained_names = cfg.names.names().iter().map(|s| s.to_string()).collect();
        Ok(IoiTask {
            cfg: cfg.clone(),
            tok,
            tokenizer_json,
            train_templates,
            trained_names,
        })
    }

    /// The words of the vocabulary: every IOI template word, the names, places and objects,
    /// then the untrained names.
    pub fn vocabulary(cfg: &IoiTraining) -> Vec<String> {
        let opts = IoiOptions {
            names: cfg.names,
            ..Default::default()
        };
        let mut words = ioi::ioi_vocabulary(&opts);
        if let Some(extra) = cfg.untrained_names {
            let have: BTreeSet<String> = words.iter().cloned().collect();
            words.extend(
                extra
                    .names()
                    .iter()
                    .filter(|n| !have.contains(**n))
                    .map(|s| s.to_string()),
            );
        }
        words
    }

    /// Names in the vocabulary that never appear in a training prompt.
    pub fn untrained_names(&self) -> Vec<String> {
        match self.cfg.untrained_names {
            Some(list) => list
                .names()
                .iter()
                .filter(|n| !self.trained_names.contains(**n))
                .map(|s| s.to_string())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether the unordered name pair is held out of training.
    pub fn is_heldout_pair(&self, a: &str, b: &str) -> bool {
        let (x, y) = if a <= b { (a, b) } else { (b, a) };
        let key = format!("{x}|{y}|{}", self.cfg.split_seed);
        let u = (fnv1a(key.as_bytes()) >> 11) as f64 / (1u64 << 53) as f64;
        u < self.cfg.heldout_pairs
    }

    fn keep(&self, split: Split, io: &str, s: &str) -> bool {
        match split {
            Split::Train => !self.is_heldout_pair(io, s),
            Split::Heldout => self.is_heldout_pair(io, s),
            Split::Untrained => !self.trained_names.contains(io) && !self.trained_names.contains(s),
        }
    }

    /// `n` prompts of a split, drawn with `seed` (and corrupted by `flip` if given). Prompts are
    /// distinct within the set.
    pub fn sample(&self, split: Split, n: usize, seed: u64, flip: Option<&str>) -> Result<Dataset> {
        let (templates, names) = match split {
            Split::Train => (self.train_templates.clone(), self.cfg.names),
            Split::Heldout => (self.cfg.heldout_templates.clone(), self.cfg.names),
            Split::Untrained => (
                self.cfg.heldout_templates.clone(),
                self.cfg.untrained_names.ok_or_else(|| {
                    Error::input("no untrained names configured (untrained_names: None)")
                })?,
            ),
        };
        let mut out: Vec<crate::data::Example> = Vec::with_capacity(n);
        let mut seen = BTreeSet::new();
        let chunk = n.max(16) * 2;
        for i in 0..10_000u64 {
            let opts = IoiOptions {
                prompt_type: PromptType::Templates(templates.clone()),
                templates: 0,
                names,
                n: chunk,
                seed: derive_seed(seed, "ioi-chunk", i),
                prepend_bos: true,
                flip: flip.map(str::to_string),
            };
            let ds = ioi::generate(&opts, &self.tok)?;
            for e in ds.examples {
                let (Some(io), Some(s)) = (e.features.get("IO"), e.features.get("S")) else {
                    continue;
                };
                if self.keep(split, io, s) && seen.insert(e.prompt.clone()) {
                    out.push(e);
                    if out.len() == n {
                        return Ok(Dataset {
                            task: "ioi".into(),
                            examples: out,
                        });
                    }
                }
            }
        }
        Err(Error::input(format!(
            "could not draw {n} distinct IOI prompts for the {split:?} split; lower n or hold out \
             more name pairs"
        )))
    }
}

/// Token ids `[n, max_len]` (right-padded with BOS) and END positions of a dataset.
pub fn batch_tokens(model: &Model, ds: &Dataset) -> Result<(Tensor, Vec<usize>)> {
    let tokens = padded_tensor(model, ds, Side::Clean, ds.max_len(), PAD)?;
    Ok((tokens, ds.end_positions()))
}

/// Logits at each row's END position, `[n, vocab]`.
pub fn end_logits(model: &Model, ds: &Dataset) -> Result<Tensor> {
    let (tokens, ends) = batch_tokens(model, ds)?;
    let run = eval::run(
        model,
        &tokens,
        &Patches::new(),
        RunOptions {
            logits: LogitsAt::Rows(ends),
            ..Default::default()
        },
    )?;
    run.logits
        .ok_or_else(|| Error::input("the forward pass returned no logits"))
}

/// Mean cross-entropy of the answer token at END (differentiable).
pub fn answer_loss(model: &Model, ds: &Dataset) -> Result<Tensor> {
    let logits = end_logits(model, ds)?;
    let lp = eval::log_softmax(&logits)?;
    let answers: Vec<u32> = ds.examples.iter().map(|e| e.answer[0]).collect();
    let idx = Tensor::from_vec(answers, (ds.len(), 1), lp.device())?;
    Ok(lp.gather(&idx, 1)?.mean_all()?.neg()?)
}

/// Metrics on one split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SplitMetrics {
    /// Number of prompts.
    pub n: usize,
    /// Mean logit(IO) − logit(S) at END.
    pub logit_diff: f64,
    /// Its standard error.
    pub logit_diff_se: f64,
    /// Fraction of prompts whose top-1 prediction over the whole vocabulary is IO.
    pub top1: f64,
    /// Fraction with logit(IO) > logit(S).
    pub io_over_s: f64,
    /// Mean cross-entropy of IO.
    pub loss: f64,
}

/// The ABC corruption's balance: names X, Y, Z, "Then, X and Y went … Z gave a … to".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AbcMetrics {
    /// Number of prompts.
    pub n: usize,
    /// Mean logit(first name) − logit(second name): near 0 when the model has no order bias.
    pub mean_diff: f64,
    /// Its standard error.
    pub mean_diff_se: f64,
    /// Mean |logit(first) − logit(second)|.
    pub mean_abs_diff: f64,
}

/// Every metric of `toy-ioi`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IoiMetrics {
    /// Held-out templates with held-out name pairs (the targets).
    pub heldout: SplitMetrics,
    /// The ABC corruption of the held-out prompts.
    pub heldout_abc: AbcMetrics,
    /// Fresh prompts from the training templates and pairs.
    pub train: SplitMetrics,
    /// Held-out templates with names never trained on (reported, not targeted).
    pub untrained_names: Option<SplitMetrics>,
}

/// Metrics of a model on one set of prompts.
pub fn split_metrics(model: &Model, ds: &Dataset) -> Result<SplitMetrics> {
    let mut lds = Vec::with_capacity(ds.len());
    let (mut top1, mut over, mut loss) = (0usize, 0usize, 0.0f64);
    for rows in (0..ds.len()).collect::<Vec<_>>().chunks(256) {
        let part = ds.select(rows);
        let logits = end_logits(model, &part)?.to_dtype(DType::F64)?;
        let lp = eval::log_softmax(&logits)?.to_vec2::<f64>()?;
        let lv = logits.to_vec2::<f64>()?;
        for ((row, lprow), e) in lv.iter().zip(&lp).zip(&part.examples) {
            let (io, s) = (e.answer[0] as usize, e.wrong[0] as usize);
            lds.push(row[io] - row[s]);
            over += usize::from(row[io] > row[s]);
            let best = crate::metric::argmax(row);
            top1 += usize::from(best == io);
            loss -= lprow[io];
        }
    }
    let n = ds.len();
    Ok(SplitMetrics {
        n,
        logit_diff: crate::metric::mean(&lds),
        logit_diff_se: crate::metric::std_err(&lds),
        top1: top1 as f64 / n as f64,
        io_over_s: over as f64 / n as f64,
        loss: loss / n as f64,
    })
}

fn abc_metrics(model: &Model, ds: &Dataset) -> Result<AbcMetrics> {
    let cor = ds.corrupted()?;
    let mut diffs = Vec::with_capacity(cor.len());
    for rows in (0..cor.len()).collect::<Vec<_>>().chunks(256) {
        let part = cor.select(rows);
        let lv = end_logits(model, &part)?
            .to_dtype(DType::F64)?
            .to_vec2::<f64>()?;
        for (row, e) in lv.iter().zip(&part.examples) {
            let (io, s1) = (e.positions["IO"], e.positions["S1"]);
            let (first, second) = (io.min(s1), io.max(s1));
            let a = e.tokens[first] as usize;
            let b = e.tokens[second] as usize;
            diffs.push(row[a] - row[b]);
        }
    }
    let abs: Vec<f64> = diffs.iter().map(|x| x.abs()).collect();
    Ok(AbcMetrics {
        n: diffs.len(),
        mean_diff: crate::metric::mean(&diffs),
        mean_diff_se: crate::metric::std_err(&diffs),
        mean_abs_diff: crate::metric::mean(&abs),
    })
}

/// Evaluate a model on `n` prompts of each split, drawn with `seed`.
pub fn evaluate(model: &Model, task: &IoiTask, n: usize, seed: u64) -> Result<IoiMetrics> {
    let heldout = task.sample(
        Split::Heldout,
        n,
        derive_seed(seed, "heldout", 0),
        Some(ABC_FLIP),
    )?;
    let train = task.sample(Split::Train, n, derive_seed(seed, "train", 0), None)?;
    let untrained = if task.untrained_names().len() >= 2 {
        let ds = task.sample(Split::Untrained, n, derive_seed(seed, "untrained", 0), None)?;
        Some(split_metrics(model, &ds)?)
    } else {
        None
    };
    Ok(IoiMetrics {
        heldout: split_metrics(model, &heldout)?,
        heldout_abc: abc_metrics(model, &heldout)?,
        train: split_metrics(model, &train)?,
        untrained_names: untrained,
    })
}
