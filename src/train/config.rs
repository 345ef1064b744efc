//! Training configurations (`configs/train/*.ron`).

use super::adamw::AdamWConfig;
use super::ioi::IoiTraining;
use crate::error::{read_to_string, Error, Result};
use crate::model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The shape of the GPT-2 model to train.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// Blocks.
    pub n_layers: usize,
    /// Residual width.
    pub d_model: usize,
    /// Heads per layer (must divide `d_model`).
    pub n_heads: usize,
    /// MLP width.
    pub d_mlp: usize,
    /// Longest sequence.
    pub n_ctx: usize,
}

/// The task a model is trained on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum TrainTask {
    /// Indirect object identification, loss on the answer only.
    Ioi(IoiTraining),
}

/// How the learning rate moves over training.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub enum Schedule {
    /// Linear warm-up, then constant.
    Constant,
    /// Linear warm-up, then cosine decay to `min_ratio · lr`.
    Cosine {
        /// Final learning rate as a fraction of the peak.
        min_ratio: f64,
    },
    /// Linear warm-up, then linear decay to 0.
    #[default]
    Linear,
}

/// Evaluation at the end of training.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Prompts per split.
    pub n: usize,
    /// Seed of the evaluation prompts.
    pub seed: u64,
}

/// A training run: `circuitscope train --config FILE.ron --out DIR`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The model's name (for MODEL.md).
    pub name: String,
    /// What to train on.
    pub task: TrainTask,
    /// The model's shape.
    pub model: ModelShape,
    /// Seed of the initialisation and of the batches.
    pub seed: u64,
    /// Optimiser steps.
    pub steps: usize,
    /// Prompts per step.
    pub batch: usize,
    /// Prompts per forward/backward pass; gradients of `batch / micro_batch` passes are summed
    /// (0 = the whole batch at once). Smaller passes use less memory; the update is the same
    /// up to float rounding.
    #[serde(default)]
    pub micro_batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    #[serde(default)]
    pub warmup: usize,
    /// Learning-rate schedule after warm-up.
    #[serde(default)]
    pub schedule: Schedule,
    /// The schedule's horizon in steps (default: `steps`). A run may stop before it: the first
    /// `steps` steps are then exactly those of a longer run with the same horizon.
    #[serde(default)]
    pub decay_steps: Option<usize>,
    /// Evaluate the held-out split (200 prompts) every this many steps into `eval_log.csv`
    /// (0: never).
    #[serde(default)]
    pub eval_every: usize,
    /// AdamW settings.
    #[serde(default)]
    pub adamw: AdamWConfig,
    /// Clip the global gradient norm to this (0: no clipping).
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
    /// Write a checkpoint every this many steps (0: never).
    #[serde(default = "default_checkpoint")]
    pub checkpoint_every: usize,
    /// End-of-training evaluation.
    pub eval: EvalConfig,
}

fn default_clip() -> f64 {
    1.0
}

fn default_checkpoint() -> usize {
    250
}

impl TrainConfig {
    /// Read and check a RON training config.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_to_string(path)?;
        Self::from_ron(&text, &path.display().to_string())
    }

    /// Parse RON text (`name` is used in messages).
    pub fn from_ron(text: &str, name: &str) -> Result<Self> {
        let cfg: TrainConfig = crate::ron_file::parse(
            text,
            Path::new(name),
            "see configs/train/toy-ioi.ron for a complete example",
        )?;
        cfg.check(name)?;
        Ok(cfg)
    }

    fn check(&self, name: &str) -> Result<()> {
        let m = &self.model;
        let bad = |what: String| Err(Error::input(format!("{name}: {what}")));
        if m.n_layers == 0 || m.d_model == 0 || m.n_heads == 0 || m.n_ctx == 0 {
            return bad("model: n_layers, d_model, n_heads and n_ctx must be positive".into());
        }
        if !m.d_model.is_multiple_of(m.n_heads) {
            return bad(format!(
                "model: d_model {} is not divisible by n_heads {}",
                m.d_model, m.n_heads
            ));
        }
        if self.steps == 0 || self.batch == 0 {
            return bad("steps and batch must be positive".into());
        }
        if self.micro_batch > 0 && !self.batch.is_multiple_of(self.micro_batch) {
            return bad(format!(
                "micro_batch {} does not divide batch {}",
                self.micro_batch, self.batch
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr is {}; give a positive learning rate", self.lr));
        }
        if self.decay_steps.is_some_and(|d| d < self.steps) {
            return bad("decay_steps must be at least steps".into());
        }
        if self.eval.n == 0 {
            return bad("eval: n must be positive".into());
        }
        Ok(())
    }

    /// The learning rate at `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let horizon = self.decay_steps.unwrap_or(self.steps);
        let span = horizon.saturating_sub(self.warmup).max(1) as f64;
        let frac = ((step - self.warmup) as f64 / span).min(1.0);
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Linear => self.lr * (1.0 - frac),
            Schedule::Cosine { min_ratio } => {
                let c = 0.5 * (1.0 + (std::f64::consts::PI * frac).cos());
                self.lr * (min_ratio + (1.0 - min_ratio) * c)
            }
        }
    }

    /// The model configuration for a vocabulary of `d_vocab` tokens.
    pub fn model_config(&self, d_vocab: usize) -> Result<ModelConfig> {
        let m = &self.model;
        super::export::gpt2_model_config(
            m.n_layers, m.d_model, m.n_heads, m.d_mlp, d_vocab, m.n_ctx,
        )
    }
}
