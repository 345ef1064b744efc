//! A causal scrubbing experiment: sample, evaluate clean / scrubbed / baseline, report.

use super::hypothesis::{parse_file, Hypothesis};
use super::path_state::PathState;
use super::sampler::{sample, Samples};
use super::treeify::{evaluate, Plan, PureRuns};
use crate::data::{Dataset, Side};
use crate::error::{Error, Result};
use crate::experiment::{hash, padded_tensor, select_rows, PAD};
use crate::metric::{self, Scorer};
use crate::model::{resolve::resolve_model, Model, ModelConfig};
use crate::tokenizer::Tokenizer;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A hypothesis checked against a model's shape and its dataset, ready to run.
pub struct PreparedHypothesis {
    /// The resolved hypothesis.
    pub hypothesis: Hypothesis,
    /// The model folder.
    pub model_dir: PathBuf,
    /// The model's shape.
    pub cfg: ModelConfig,
    /// The base dataset (the reference rows are all of it).
    pub dataset: Dataset,
    /// The evaluation plan (states and routes).
    pub plan: Plan,
}

/// Parse and validate a hypothesis against a model's `config.json` and `tokenizer.json`
/// (weights are not read). `model` overrides the file's model.
pub fn prepare(path: &Path, model: Option<&str>) -> Result<PreparedHypothesis> {
    let (file, text) = parse_file(path)?;
    let spec = model.unwrap_or(&file.model).to_string();
    let model_dir = resolve_model(&spec).map_err(|e| {
        Error::input(format!(
            "{}: {e}\n(the hypothesis names model '{}'; pass --model DIR to use another folder)",
            path.display(),
            file.model
        ))
    })?;
    let cfg = ModelConfig::from_dir(&model_dir)?;
    let tok = Tokenizer::from_model_dir(&model_dir)?;
    let dataset = file
        .task
        .build(&tok)
        .map_err(|e| Error::input(format!("{}: task: {e}", path.display())))?;
    if dataset.is_empty() {
        return Err(Error::input(format!(
            "{}: the task produced no examples",
            path.display()
        )));
    }
    if let Some((i, e)) = dataset
        .examples
        .iter()
        .enumerate()
        .find(|(_, e)| e.tokens.iter().any(|&t| t as usize >= cfg.d_vocab))
    {
        return Err(Error::input(format!(
            "{}: example {i} ('{}') has a token outside the model's vocabulary of {}; the \
             tokenizer does not belong to this model",
            path.display(),
            e.prompt,
            cfg.d_vocab
        )));
    }
    let hypothesis = Hypothesis::resolve(file, text, path, &cfg, &dataset)?;
    let plan = Plan::explore(&hypothesis, &cfg, dataset.len(), dataset.max_len())?;
    Ok(PreparedHypothesis {
        hypothesis,
        model_dir,
        cfg,
        dataset,
        plan,
    })
}

/// Mean and standard error.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Standard error of the mean.
    pub se: f64,
}

impl Stat {
    fn of(xs: &[f64]) -> Stat {
        Stat {
            mean: metric::mean(xs),
            se: metric::std_err(xs),
        }
    }
}

/// One seed's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedResult {
    /// The sampling seed.
    pub seed: u64,
    /// The scrubbed metric over examples.
    pub scrubbed: Stat,
    /// The fully scrubbed baseline over examples.
    pub baseline: Stat,
    /// (scrubbed − baseline) / (clean − baseline).
    pub loss_recovered: f64,
}

/// Hashes that pin a result to its inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hashes {
    /// SHA-256 of config.json and the weight files.
    pub model: String,
    /// SHA-256 of the hypothesis file.
    pub hypothesis: String,
    /// SHA-256 of the dataset as JSON lines.
    pub dataset: String,
}

/// The result of a scrubbing run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScrubResult {
    /// Hypothesis name.
    pub hypothesis: String,
    /// Hypothesis file.
    pub file: String,
    /// Model folder.
    pub model: String,
    /// Task name.
    pub task: String,
    /// Metric (CLI name).
    pub metric: String,
    /// Examples.
    pub n: usize,
    /// First seed.
    pub seed: u64,
    /// The clean model's metric.
    pub clean: Stat,
    /// The scrubbed metric for the first seed.
    pub scrubbed: Stat,
    /// The baseline for the first seed.
    pub baseline: Stat,
    /// Loss recovered for the first seed.
    pub loss_recovered: f64,
    /// Per seed.
    pub seeds: Vec<SeedResult>,
    /// Across seeds: the scrubbed mean's mean and standard error.
    pub scrubbed_across_seeds: Stat,
    /// Across seeds: loss recovered's mean and standard error.
    pub loss_recovered_across_seeds: Stat,
    /// Cost in forward-pass equivalents per seed (plain passes + patched layers / n_layers).
    pub forward_equivalents: f64,
    /// Interpretation nodes.
    pub interp_nodes: usize,
    /// Wall time in seconds (not reproducible, excluded from comparisons).
    pub wall_time_s: f64,
    /// Input hashes.
    pub hashes: Hashes,
    /// circuitscope version.
    pub version: String,
}

/// The rows drawn for every seed, as written by `--dump-samples`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplesFile {
    /// Hypothesis name.
    pub hypothesis: String,
    /// Examples per dataset.
    pub n: usize,
    /// One entry per seed.
    pub seeds: Vec<Samples>,
}

/// Run options.
pub struct RunSettings {
    /// How many seeds (seed, seed + 1, …).
    pub seeds: usize,
    /// Replay these samples instead of drawing.
    pub replay: Option<SamplesFile>,
}

/// One seed's evaluation: its result, the clean model's metric on its reference rows, and its
/// cost in forward-pass equivalents.
struct SeedRun {
    result: SeedResult,
    clean: Stat,
    forward_equivalents: f64,
}

/// Everything a seed reads: the experiment's rows and tokens, and the model.
struct Base<'a> {
    p: &'a PreparedHypothesis,
    model: &'a Model,
    /// Every base row's tokens `[n, pos]`, right-padded.
    tokens: Tensor,
}

impl Base<'_> {
    /// Draw (or replay) the rows of one seed and evaluate clean, baseline and scrubbed.
    fn run_seed(&self, samples: &Samples) -> Result<SeedRun> {
        let (h, ds, model) = (&self.p.hypothesis, &self.p.dataset, self.model);
        let tokens_of = |rows: &[usize]| select_rows(&self.tokens, rows);
        let ends_of = |rows: &[usize]| {
            rows.iter()
                .map(|&r| ds.examples[r].end())
                .collect::<Vec<_>>()
        };
        let ref_rows = samples.reference.clone();
        let ref_ends = ends_of(&ref_rows);
        let mut pure = PureRuns::new(model, &tokens_of, &ends_of, ref_ends.clone());
        let data_of_state = |s: &PathState| -> Vec<usize> {
            samples
                .data_of(s.owner, h.nodes[s.owner].is_leaf())
                .to_vec()
        };
        let logits_of = |pure: &mut PureRuns, rows: &[usize]| -> Result<Tensor> {
            pure.get(rows)?
                .logits
                .clone()
                .ok_or_else(|| Error::input("no logits"))
        };
        let clean_logits = logits_of(&mut pure, &ref_rows)?;
        let base_logits = logits_of(&mut pure, &samples.baseline)?;
        let (scrub_logits, patched) =
            evaluate(model, h, &self.p.plan, &data_of_state, &mut pure, &ref_ends)?;
        // The normalised logit difference maps the clean run to 1 and the baseline to 0.
        let scorer = Scorer::new(
            h.file.metric,
            ds.select(&ref_rows),
            clean_logits,
            Some(&base_logits),
        )?;
        let clean = Stat::of(&scorer.per_example(&scorer.clean_logits)?);
        let baseline = Stat::of(&scorer.per_example(&base_logits)?);
        let scrubbed = Stat::of(&scorer.per_example(&scrub_logits)?);
        let denom = clean.mean - baseline.mean;
        let loss_recovered = if denom == 0.0 {
            f64::NAN
        } else {
            (scrubbed.mean - baseline.mean) / denom
        };
        Ok(SeedRun {
            result: SeedResult {
                seed: samples.seed,
                scrubbed,
                baseline,
                loss_recovered,
            },
            clean,
            forward_equivalents: pure.forwards as f64 + patched,
        })
    }
}

/// Run the experiment on a loaded model.
pub fn run(
    p: &PreparedHypothesis,
    model: &Model,
    settings: &RunSettings,
) -> Result<(ScrubResult, SamplesFile)> {
    let start = Instant::now();
    let h = &p.hypothesis;
    let ds = &p.dataset;
    let n = ds.len();
    let seed0 = h.file.seed;
    let seed_list: Vec<Samples> = match &settings.replay {
        Some(f) => {
            check_replay(f, h, n, ds.len())?;
            f.seeds.clone()
        }
        None => (0..settings.seeds.max(1))
            .map(|k| sample(h, ds, n, seed0 + k as u64))
            .collect::<Result<_>>()?,
    };
    let base = Base {
        p,
        model,
        tokens: padded_tensor(model, ds, Side::Clean, ds.max_len(), PAD)?,
    };
    // The seeds are independent: evaluate them in parallel on rayon's pool. The indexed map
    // collects in seed order and each seed's arithmetic does not depend on the thread that
    // runs it, so the result is bit-identical to a serial run (one thread: a serial run).
    let runs: Vec<SeedRun> = {
        use rayon::prelude::*;
        seed_list
            .par_iter()
            .map(|s| base.run_seed(s))
            .collect::<Result<_>>()?
    };
    let fe_total: f64 = runs.iter().map(|r| r.forward_equivalents).sum();
    let clean = runs[0].clean;
    let out_seeds: Vec<SeedResult> = runs.into_iter().map(|r| r.result).collect();
    let first = out_seeds[0].clone();
    let means: Vec<f64> = out_seeds.iter().map(|s| s.scrubbed.mean).collect();
    let lrs: Vec<f64> = out_seeds.iter().map(|s| s.loss_recovered).collect();
    let result = ScrubResult {
        hypothesis: h.file.name.clone(),
        file: h.path.display().to_string(),
        model: p.model_dir.display().to_string(),
        task: ds.task.clone(),
        metric: h.file.metric.cli_name().to_string(),
        n,
        seed: first.seed,
        clean,
        scrubbed: first.scrubbed,
        baseline: first.baseline,
        loss_recovered: first.loss_recovered,
        scrubbed_across_seeds: Stat::of(&means),
        loss_recovered_across_seeds: Stat::of(&lrs),
        seeds: out_seeds,
        forward_equivalents: fe_total / seed_list.len() as f64,
        interp_nodes: h.nodes.len(),
        wall_time_s: start.elapsed().as_secs_f64(),
        hashes: Hashes {
            model: hash::model_dir_hash(&p.model_dir)?,
            hypothesis: hash::sha256_hex(h.text.as_bytes()),
            dataset: hash::dataset_hash(ds),
        },
        version: crate::version().to_string(),
    };
    let samples = SamplesFile {
        hypothesis: h.file.name.clone(),
        n,
        seeds: seed_list,
    };
    Ok((result, samples))
}

/// Load the model a prepared hypothesis names, with a message that says how to get it.
pub fn load_model(p: &PreparedHypothesis, dtype: DType) -> Result<Model> {
    Model::load(&p.model_dir, dtype).map_err(|e| {
        Error::input(format!(
            "{e}\nscrub needs the weights of '{}' in {}: give --model DIR with a folder holding \
             config.json, model.safetensors and tokenizer.json (e.g. GPT-2 small saved by \
             transformers' save_pretrained), or a model in the local Hugging Face cache. \
             `scrub --check` validates the hypothesis without weights.",
            p.hypothesis.file.model,
            p.model_dir.display()
        ))
    })
}

fn check_replay(f: &SamplesFile, h: &Hypothesis, n: usize, total: usize) -> Result<()> {
    if f.seeds.is_empty() {
        return Err(Error::input("the samples file holds no seeds"));
    }
    for s in &f.seeds {
        let names: Vec<&str> = s.nodes.iter().map(|x| x.name.as_str()).collect();
        let want: Vec<&str> = h.nodes.iter().map(|x| x.name.as_str()).collect();
        if names != want {
            return Err(Error::input(format!(
                "the samples file's nodes {names:?} are not this hypothesis's {want:?}; dump \
                 samples from this hypothesis with --dump-samples"
            )));
        }
        let all = std::iter::once(&s.reference)
            .chain(std::iter::once(&s.baseline))
            .chain(s.nodes.iter().map(|x| &x.rows))
            .chain(s.nodes.iter().filter_map(|x| x.other_inputs.as_ref()));
        for rows in all {
            if rows.len() != n || rows.iter().any(|&r| r >= total) {
                return Err(Error::input(format!(
                    "the samples file has a row list of length {} (or a row ≥ {total}); this \
                     experiment has {n} examples",
                    rows.len()
                )));
            }
        }
    }
    Ok(())
}
