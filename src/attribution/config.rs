//! Attribution configuration files (RON, under `configs/attribution/`), with command-line
//! overrides.
//!
//! ```ron
//! AttributionConfig(
//!     model: "toy-ioi",
//!     task: Ioi(prompt_type: Abba, templates: 1, n: 100, seed: 0, flip: "ABB->XYZ, BAB->XYZ"),
//!     metric: LogitDiff,
//!     ablation: Corrupted,
//!     method: EapIg,
//!     ig_steps: 5,
//!     top_k: Some(40),
//! )
//! ```
//!
//! The model, task, metric, ablation, graph and dtype mean what they mean in an ACDC config
//! ([`crate::acdc::Config`]): attribution and ACDC runs with the same values score the same
//! edges on the same data.

use super::scores::{IgPoints, Method};
use crate::acdc::{self, Ablation, Level, Order, Precision};
use crate::data::TaskSpec;
use crate::error::{read_to_string, Error, Result};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};
use std::path::Path;

fn default_steps() -> usize {
    5
}
fn default_true() -> bool {
    true
}
fn default_metric() -> Metric {
    Metric::LogitDiff
}

/// One attribution run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "AttributionConfig", deny_unknown_fields)]
pub struct Config {
    /// The model: a folder, a shipped model's name, or a Hugging Face id in the local cache.
    pub model: String,
    /// The task and its corruption.
    pub task: TaskSpec,
    /// Number of examples (overrides the task's `n`).
    #[serde(default)]
    pub n: Option<usize>,
    /// The metric whose gradient is taken (default `LogitDiff`; `Kl` needs EAP-IG).
    #[serde(default = "default_metric")]
    pub metric: Metric,
    /// What a removed edge carries: `Corrupted` (default), `Resample`, `Zero`, `Mean`.
    #[serde(default)]
    pub ablation: Ablation,
    /// `Eap` (default), `EapIg`, `EapIgAct` or `Atp`.
    #[serde(default)]
    pub method: Method,
    /// Integrated-gradient steps (EAP-IG), ≥ 1.
    #[serde(default = "default_steps")]
    pub ig_steps: usize,
    /// The points of the integration path.
    #[serde(default)]
    pub ig_points: IgPoints,
    /// Count the q/k/v input → head edges (ACDC's graph; default true).
    #[serde(default = "default_true")]
    pub split_qkv: bool,
    /// `F32` (default) or `F64`.
    #[serde(default)]
    pub dtype: Precision,
    /// Keep per-position scores in scores.safetensors.
    #[serde(default)]
    pub per_position: bool,
    /// The circuit keeps the `top_k` edges of largest |score| …
    #[serde(default)]
    pub top_k: Option<usize>,
    /// … or every edge with |score| ≥ `threshold`.
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// Command-line overrides; `None` keeps the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--model`.
    pub model: Option<String>,
    /// `--task`.
    pub task: Option<TaskSpec>,
    /// `--n`.
    pub n: Option<usize>,
    /// `--metric`.
    pub metric: Option<Metric>,
    /// `--ablation`.
    pub ablation: Option<Ablation>,
    /// `--method`.
    pub method: Option<Method>,
    /// `--ig-steps`.
    pub ig_steps: Option<usize>,
    /// `--dtype`.
    pub dtype: Option<Precision>,
    /// `--no-split-qkv`.
    pub no_split_qkv: bool,
    /// `--per-position`.
    pub per_position: bool,
    /// `--top-k`.
    pub top_k: Option<usize>,
    /// `--threshold`.
    pub threshold: Option<f64>,
}

impl Config {
    /// A config for a model and task with every other setting at its default.
    pub fn new(model: &str, task: TaskSpec) -> Config {
        Config {
            model: model.to_string(),
            task,
            n: None,
            metric: default_metric(),
            ablation: Ablation::default(),
            method: Method::default(),
            ig_steps: default_steps(),
            ig_points: IgPoints::default(),
            split_qkv: true,
            dtype: Precision::default(),
            per_position: false,
            top_k: None,
            threshold: None,
        }
    }

    /// Parse RON text; `name` (the file) is used in messages.
    pub fn from_ron(text: &str, name: &str) -> Result<Config> {
        let c: Config = crate::ron_file::parse(
            text,
            Path::new(name),
            "an attribution config looks like AttributionConfig(model: \"toy-ioi\", task: \
             Ioi(n: 100, flip: \"ABB->XYZ, BAB->XYZ\"), metric: LogitDiff, method: EapIg, \
             ig_steps: 5) (see configs/attribution/)",
        )?;
        c.validate(name)?;
        Ok(c)
    }

    /// Read a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = read_to_string(path)?;
        Self::from_ron(&text, &path.display().to_string())
    }

    /// Check values that parse but make no sense.
    pub fn validate(&self, name: &str) -> Result<()> {
        if matches!(self.method, Method::EapIg | Method::EapIgAct) && self.ig_steps == 0 {
            return Err(Error::input(format!(
                "{name}: ig_steps = 0 (--ig-steps 0); integrated gradients need at least one \
                 point — use 5 (typical) to 30"
            )));
        }
        if self.n == Some(0) {
            return Err(Error::input(format!(
                "{name}: n = 0; use at least one example"
            )));
        }
        if self.top_k.is_some() && self.threshold.is_some() {
            return Err(Error::input(format!(
                "{name}: both top_k and threshold are set; a circuit is chosen by one of them"
            )));
        }
        if let Some(t) = self.threshold {
            if !(t.is_finite() && t >= 0.0) {
                return Err(Error::input(format!(
                    "{name}: threshold = {t}; use a number ≥ 0 (edges with |score| ≥ threshold \
                     are kept)"
                )));
            }
        }
        if self.model.trim().is_empty() {
            return Err(Error::input(format!("{name}: model is empty")));
        }
        if self.metric == Metric::Accuracy {
            return Err(Error::input(format!(
                "{name}: metric accuracy has no gradient (it is piecewise constant); attribute \
                 with logit-diff, norm-logit-diff, prob, prob-diff, nll or kl"
            )));
        }
        Ok(())
    }

    /// Apply command-line overrides.
    pub fn apply(&mut self, o: &Overrides) -> Result<()> {
        if let Some(m) = &o.model {
            self.model = m.clone();
        }
        if let Some(t) = &o.task {
            self.task = t.clone();
        }
        if let Some(n) = o.n {
            self.n = Some(n);
        }
        if let Some(m) = o.metric {
            self.metric = m;
        }
        if let Some(a) = &o.ablation {
            self.ablation = a.clone();
        }
        if let Some(m) = o.method {
            self.method = m;
        }
        if let Some(s) = o.ig_steps {
            self.ig_steps = s;
        }
        if let Some(d) = o.dtype {
            self.dtype = d;
        }
        if o.no_split_qkv {
            self.split_qkv = false;
        }
        if o.per_position {
            self.per_position = true;
        }
        if let Some(k) = o.top_k {
            self.top_k = Some(k);
            self.threshold = None;
        }
        if let Some(t) = o.threshold {
            self.threshold = Some(t);
            self.top_k = None;
        }
        self.validate("the command line")
    }

    /// The same model, data, metric, ablation, graph and dtype as an ACDC config (what
    /// [`acdc::Prepared`] and ACDC's evaluator read; τ plays no part in attribution).
    pub fn acdc(&self) -> acdc::Config {
        acdc::Config {
            model: self.model.clone(),
            task: self.task.clone(),
            n: self.n,
            metric: self.metric,
            ablation: self.ablation.clone(),
            tau: 1.0,
            order: Order::Normal,
            indices_order: None,
            seed: 0,
            level: Level::Edges,
            split_qkv: self.split_qkv,
            abs_value_threshold: false,
            dtype: self.dtype,
            batch: 1,
        }
    }

    /// The config as RON.
    pub fn to_ron(&self) -> String {
        crate::ron_file::to_pretty(self)
    }
}
