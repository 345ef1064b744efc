//! ACDC (automatic circuit discovery), faithful to the reference implementation
//! (`ArthurConmy/Automatic-Circuit-Discovery`): greedy edge pruning in reverse topological
//! order, with checkpoints after every receiver, exact resume, and DOT/SVG diagrams.
//!
//! - [`sweep`]: the algorithm (receiver order, parent order, the τ rule, dead nodes);
//! - [`evaluate`]: the metric of a circuit (one patched run, resumed at the first changed layer);
//! - [`screen`]: the sweep's one-edge evaluation (float32 under `Checked`, with its bound);
//! - [`ablation`]: corrupted, zero and mean ablation values;
//! - [`config`], [`checkpoint`], [`output`], [`experiment`]: the run around it;
//! - [`roc`]: ROC AUC of edge decisions against a known circuit.

pub mod ablation;
pub mod checkpoint;
pub mod config;
pub mod evaluate;
pub mod experiment;
pub mod output;
pub mod roc;
pub mod screen;
pub mod sweep;

pub use ablation::{Ablation, MeanOptions, MeanSource, ResampleOptions};
pub use config::{Config, Overrides, Precision};
pub use evaluate::{Evaluator, Objective};
pub use screen::Screen;
pub use sweep::{Level, Oracle, Order, Sweep, SweepOptions, SweepState, Units};

use crate::data::{Dataset, Side};
use crate::error::{Error, Result};
use crate::eval::{self, LogitsAt, Patches, RunOptions};
use crate::experiment::{hash, token_tensor};
use crate::graph::GraphOptions;
use crate::metric::Metric;
use crate::model::Model;
use crate::tokenizer::Tokenizer;
use candle_core::{DType, Tensor};
use checkpoint::RunIdentity;
use std::path::Path;

/// A config made ready to run: the model, the dataset and its token tensors, the hashes.
pub struct Prepared {
    /// The effective config.
    pub config: Config,
    /// The model.
    pub model: Model,
    /// The dataset.
    pub dataset: Dataset,
    /// Clean tokens `[n, pos]` (right-padded).
    pub tokens: Tensor,
    /// Tokens the ablation is computed on (corrupted prompts, or the mean's source).
    pub source_tokens: Option<Tensor>,
    /// Each row's answer position.
    pub end: Vec<usize>,
    /// Mean ablation: each row's group.
    pub groups: Vec<usize>,
    /// Each row's length.
    pub lens: Vec<usize>,
    /// Hashes of config, model and dataset.
    pub identity: RunIdentity,
    /// `Checked` precision: the float32 model that screens the edges (`model` is float64).
    pub screen_model: Option<Model>,
}

/// Row i of the result is row `(i + shift) mod n` of `tokens`; every row must have its
/// partner's length and answer position.
fn resampled(tokens: &Tensor, ds: &Dataset, shift: usize) -> Result<Tensor> {
    let n = ds.len();
    if shift.is_multiple_of(n) {
        return Err(Error::input(format!(
            "resample ablation with shift {shift} on {n} rows pairs every row with itself; use a \
             shift that is not a multiple of the number of rows"
        )));
    }
    let partner: Vec<usize> = (0..n).map(|i| (i + shift) % n).collect();
    for (i, &j) in partner.iter().enumerate() {
        let (a, b) = (&ds.examples[i], &ds.examples[j]);
        if a.tokens.len() != b.tokens.len() || a.end() != b.end() {
            return Err(Error::input(format!(
                "resample ablation: row {i} ({} tokens, answer at {}) takes row {j} ({} tokens, \
                 answer at {}); resampling patches position by position, so rows must have one \
                 length — use a task whose prompts all have the same shape",
                a.tokens.len(),
                a.end(),
                b.tokens.len(),
                b.end()
            )));
        }
    }
    let idx = Tensor::from_vec(
        partner.iter().map(|&j| j as u32).collect::<Vec<_>>(),
        n,
        tokens.device(),
    )?;
    Ok(tokens.index_select(&idx, 0)?)
}

/// Check that every row has a corrupted prompt aligned position by position with the clean one.
pub fn check_alignment(ds: &Dataset) -> Result<()> {
    for (i, e) in ds.examples.iter().enumerate() {
        let Some(c) = &e.corrupted_tokens else {
            return Err(Error::input(format!(
                "the {} dataset has no corrupted prompt for row {i}; corrupted ablation needs \
                 one per row (for IOI add a flip, e.g. flip: \"ABB->XYZ, BAB->XYZ\"; for JSONL a \
                 \"corrupted\" field), or use ablation: Zero or Mean",
                ds.task
            )));
        };
        if c.len() != e.tokens.len() {
            return Err(Error::input(format!(
                "the {} dataset's row {i}: the corrupted prompt has {} tokens but the clean one \
                 has {} ({:?} vs {:?}); ACDC patches position by position, so they must align \
                 token by token — use a corruption that keeps every token position (e.g. \
                 single-token names)",
                ds.task,
                c.len(),
                e.tokens.len(),
                e.corrupted_prompt.as_deref().unwrap_or(""),
                e.prompt
            )));
        }
        if e.end() >= e.tokens.len() {
            return Err(Error::input(format!(
                "the {} dataset's row {i}: END position {} is past the prompt's {} tokens",
                ds.task,
                e.end(),
                e.tokens.len()
            )));
        }
    }
    Ok(())
}

impl Prepared {
    /// Load the model, build the dataset and check it.
    pub fn new(config: &Config) -> Result<Prepared> {
        crate::memory::check_task(&config.task_with_n(), "the ACDC config (or --n)")?;
        let (model, screen_model) = load_models(config)?;
        let tok = Tokenizer::from_model_dir(&model.dir)?;
        let dataset = config.task_with_n().build(&tok)?;
        crate::memory::check_forward(
            "the ACDC config (or --n)",
            &model.cfg,
            dataset.len(),
            dataset.max_len(),
        )?;
        let mut prep = Self::from_parts(config, model, dataset)?;
        prep.screen_model = screen_model;
        Ok(prep)
    }

    /// Use a model and dataset already in memory.
    pub fn from_parts(config: &Config, model: Model, dataset: Dataset) -> Result<Prepared> {
        if dataset.is_empty() {
            return Err(Error::input(format!(
                "the {} dataset is empty; set n ≥ 1",
                dataset.task
            )));
        }
        let needs_corrupted = match &config.ablation {
            Ablation::Corrupted => true,
            Ablation::Mean(m) => m.source == MeanSource::Corrupted,
            Ablation::Zero | Ablation::Resample(_) => false,
        } || config.metric == Metric::NormLogitDiff;
        if needs_corrupted {
            check_alignment(&dataset)?;
        }
        let tokens = token_tensor(&model, &dataset, Side::Clean)?;
        let source_tokens = if let Ablation::Resample(r) = &config.ablation {
            Some(resampled(&tokens, &dataset, r.shift)?)
        } else if needs_corrupted {
            Some(token_tensor(&model, &dataset, Side::Corrupted)?)
        } else {
            None
        };
        let lens: Vec<usize> = dataset.examples.iter().map(|e| e.tokens.len()).collect();
        let groups = match &config.ablation {
            Ablation::Mean(MeanOptions { by: Some(f), .. }) => {
                let vals = dataset.feature(f)?;
                let mut names: Vec<&str> = vals.clone();
                names.sort();
                names.dedup();
                vals.iter()
                    .map(|v| names.binary_search(v).unwrap_or(0))
                    .collect()
            }
            _ => vec![0; dataset.len()],
        };
        let end = dataset.end_positions();
        let identity = RunIdentity {
            config_hash: config.hash(),
            model_hash: hash::model_hash(&model)?,
            dataset_hash: hash::dataset_hash(&dataset),
        };
        Ok(Prepared {
            config: config.clone(),
            model,
            dataset,
            tokens,
            source_tokens,
            end,
            groups,
            lens,
            identity,
            screen_model: None,
        })
    }

    /// The sweep's options from the config.
    pub fn sweep_options(&self) -> SweepOptions {
        let c = &self.config;
        SweepOptions {
            tau: c.tau,
            abs_value_threshold: c.abs_value_threshold,
            names_order: c.order,
            indices_order: c.indices_order.unwrap_or(c.order),
            seed: c.seed,
            level: c.level,
            graph: GraphOptions {
                split_qkv: c.split_qkv,
            },
            batch: c.batch,
        }
    }

    /// The sweep.
    pub fn sweep(&self) -> Sweep {
        Sweep::new(&self.model.cfg, self.sweep_options())
    }

    /// The evaluator: runs the clean model and the ablation once.
    pub fn evaluator(&self) -> Result<Evaluator<'_>> {
        let model = &self.model;
        let clean = eval::run(
            model,
            &self.tokens,
            &Patches::new(),
            RunOptions {
                logits: LogitsAt::Rows(self.end.clone()),
                ..Default::default()
            },
        )?;
        let clean_logits = clean
            .logits
            .clone()
            .ok_or_else(|| Error::input("internal: no clean logits"))?;
        let objective = self.objective(clean_logits)?;
        let ablated = self.ablate(model, &self.config.ablation)?;
        let units = Units::new(&model.cfg, self.config.level, self.sweep_options().graph);
        let screen = self.one_edge_screen(&clean, &ablated, &units)?;
        let ev = Evaluator::new(
            model,
            units,
            self.tokens.clone(),
            self.end.clone(),
            clean,
            ablated,
            objective,
            self.config.dtype != Precision::Checked || screen.is_none(),
        )?;
        Ok(match screen {
            Some(s) => ev.with_screen(s),
            None => ev,
        })
    }

    /// The metric against the clean logits (and, for the normalised logit difference, the
    /// corrupted run's), checked to apply to this dataset before anything is written.
    fn objective(&self, clean_logits: Tensor) -> Result<Objective> {
        let norm = if self.config.metric == Metric::NormLogitDiff {
            let src = self
                .source_tokens
                .as_ref()
                .ok_or_else(|| Error::input("norm-logit-diff needs corrupted prompts"))?;
            let corrupted = eval::run(
                &self.model,
                src,
                &Patches::new(),
                RunOptions {
                    logits: LogitsAt::Rows(self.end.clone()),
                    ..Default::default()
                },
            )?;
            let c = corrupted
                .logits
                .as_ref()
                .ok_or_else(|| Error::input("internal: no corrupted logits"))?;
            Some(crate::metric::normalisation(
                &self.dataset,
                &clean_logits,
                c,
            )?)
        } else {
            None
        };
        let objective = Objective {
            metric: self.config.metric,
            dataset: self.dataset.clone(),
            clean_logits,
            norm,
        };
        objective.value(&objective.clean_logits)?;
        Ok(objective)
    }

    /// The sweep's one-edge evaluator, where the config and the model allow it: on this model
    /// with its clean run and ablation (`F32`), or on the float32 model (`Checked`).
    fn one_edge_screen(
        &self,
        clean: &eval::Run,
        ablated: &eval::Ablated,
        units: &Units,
    ) -> Result<Option<Screen<'_>>> {
        let one_edge = self.config.level == Level::Edges
            && self.config.batch <= 1
            && screenable(&self.model.cfg);
        Ok(match self.config.dtype {
            Precision::F32 if one_edge => Some(Screen::new(
                &self.model,
                clean.clone(),
                ablated.clone(),
                self.end.clone(),
                units.clone(),
                None,
            )?),
            Precision::Checked if one_edge => {
                let m32 = self.screen_model.as_ref().ok_or_else(|| {
                    Error::input("checked precision needs the float32 model too (set screen_model)")
                })?;
                Some(self.screen(m32, Some(screen::LOGIT_ERROR_FACTOR))?)
            }
            _ => None,
        })
    }

    /// `ablation` of these rows on `model`: what a removed edge carries.
    pub fn ablate(&self, model: &Model, ablation: &Ablation) -> Result<eval::Ablated> {
        ablation::ablate(
            model,
            ablation,
            &self.tokens,
            self.source_tokens.as_ref(),
            &self.groups,
            &self.lens,
        )
    }

    /// A one-edge evaluator on `m32` (the float32 model of `Checked` precision, or any model
    /// of this shape): its own clean run and ablation, and the logits' error bound relative to
    /// the largest logit (`None`: no error claimed).
    pub fn screen<'m>(&self, m32: &'m Model, relative: Option<f64>) -> Result<Screen<'m>> {
        let clean = eval::run(
            m32,
            &self.tokens,
            &Patches::new(),
            RunOptions {
                logits: LogitsAt::None,
                ..Default::default()
            },
        )?;
        let ablated = self.ablate(m32, &self.config.ablation)?;
        let units = Units::new(&m32.cfg, self.config.level, self.sweep_options().graph);
        Screen::new(m32, clean, ablated, self.end.clone(), units, relative)
    }
}

/// The config's model in its precision, and for `Checked` precision the float32 model that
/// screens the edges (when the screen can evaluate this model).
///
/// Under `Checked` the float64 model is then the float32 one [`Model::widened`]: one copy of
/// the weights in memory, bit for bit the model loaded in float64, because the file holds
/// nothing wider than float32 (so its float32 values are its values) and the families the
/// screen evaluates load by layout changes alone. A float64 checkpoint is loaded twice.
pub fn load_models(config: &Config) -> Result<(Model, Option<Model>)> {
    let dir = crate::model::resolve::resolve_model(&config.model)?;
    if config.dtype == Precision::Checked {
        let cfg = crate::model::ModelConfig::from_dir(&dir)?;
        if screenable(&cfg) {
            let m32 = Model::load(&dir, DType::F32)?;
            // (Gemma-2, whose load folds the norm scales in the load dtype, is not
            // screenable: it has post-attention norms.)
            let model = if crate::model::TensorSource::from_dir(&dir)?.holds_f64() {
                Model::load(&dir, DType::F64)?
            } else {
                m32.widened(DType::F64)?
            };
            return Ok((model, Some(m32)));
        }
    }
    Ok((Model::load(&dir, config.dtype.dtype())?, None))
}

/// Read a config file, apply overrides.
pub fn load_config(path: &Path, o: &Overrides) -> Result<Config> {
    let mut c = Config::load(path)?;
    c.apply(o)?;
    Ok(c)
}

/// Whether the float32 one-edge screen ([`crate::eval::CircuitRun`]) can evaluate this model.
/// It builds each head from its own q/k/v weights and adds the heads' outputs straight into
/// the residual stream, so models with grouped key/value heads (Llama, Qwen2, Gemma-2) or a
/// post-attention norm (Gemma-2) are evaluated by the general evaluator instead, in the run's
/// own precision: `Checked` then decides every edge in float64, as `F64` does.
fn screenable(cfg: &crate::model::ModelConfig) -> bool {
    !cfg.is_grouped() && !cfg.arch.post_norms
}
