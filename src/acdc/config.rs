//! ACDC configuration files (RON, under `configs/acdc/`), with command-line overrides.
//!
//! ```ron
//! AcdcConfig(
//!     model: "toy-ioi",
//!     task: Ioi(prompt_type: Baba, templates: 1, n: 100, seed: 0, flip: "ABB->XYZ, BAB->XYZ"),
//!     metric: Kl,
//!     ablation: Corrupted,
//!     tau: 0.01,
//! )
//! ```

use super::ablation::Ablation;
use super::sweep::{Level, Order};
use crate::data::TaskSpec;
use crate::error::{read_to_string, Error, Result};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Floating-point precision of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Precision {
    /// 32-bit floats (as the reference).
    #[default]
    F32,
    /// 64-bit floats: decisions near τ do not depend on rounding.
    F64,
    /// Every edge evaluated in 32-bit floats with one-edge updates, and again in 64-bit floats
    /// (as `F64` evaluates it) whenever its effect is within the float32 error bound of τ: the
    /// decisions are `F64`'s (see `acdc::evaluate` for the bound); recorded effects far from
    /// τ are the float32 values.
    Checked,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Precision::F32),
            "f64" | "float64" => Ok(Precision::F64),
            "checked" => Ok(Precision::Checked),
            _ => Err(Error::input(format!(
                "--dtype {s}: use f32, f64 or checked"
            ))),
        }
    }
}

impl Precision {
    /// The candle dtype of the model whose numbers are the run's reference (`Checked`: the
    /// float64 model that re-checks decisions near τ).
    pub fn dtype(self) -> candle_core::DType {
        match self {
            Precision::F32 => candle_core::DType::F32,
            Precision::F64 | Precision::Checked => candle_core::DType::F64,
        }
    }
}

fn default_metric() -> Metric {
    Metric::Kl
}
fn default_true() -> bool {
    true
}
fn default_batch() -> usize {
    1
}

/// One ACDC run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "AcdcConfig", deny_unknown_fields)]
pub struct Config {
    /// The model: a folder, a shipped model's name under `models/`, or a Hugging Face id in the
    /// local cache.
    pub model: String,
    /// The task (its dataset and, for corrupted ablation, its corruption).
    pub task: TaskSpec,
    /// Number of examples (overrides the task's `n`).
    #[serde(default)]
    pub n: Option<usize>,
    /// The metric: `Kl` (default, to the clean model at the answer position), `LogitDiff`,
    /// `ProbDiff`, `Nll`, … Metrics where higher is better are negated and minimised.
    #[serde(default = "default_metric")]
    pub metric: Metric,
    /// How a removed edge is ablated: `Corrupted` (default), `Zero`, `Mean(by: "template")`.
    #[serde(default)]
    pub ablation: Ablation,
    /// The threshold τ > 0: an edge whose removal worsens the metric by less than τ goes.
    pub tau: f64,
    /// Order of a receiver's parents: `Normal` (the reference's), `Reverse`, `Random`.
    #[serde(default)]
    pub order: Order,
    /// Order inside one layer's heads, if different from `order`.
    #[serde(default)]
    pub indices_order: Option<Order>,
    /// Seed of the random order.
    #[serde(default)]
    pub seed: u64,
    /// `Edges` (default) or `Nodes` (whole heads and MLPs).
    #[serde(default)]
    pub level: Level,
    /// Count the q/k/v input → head edges, as the reference does (default true).
    #[serde(default = "default_true")]
    pub split_qkv: bool,
    /// Compare |Δ| with τ.
    #[serde(default)]
    pub abs_value_threshold: bool,
    /// `F32` (default), `F64`, or `Checked` (float32 speed, float64 decisions).
    #[serde(default)]
    pub dtype: Precision,
    /// Candidate removals evaluated per pass (speculatively); 1 = one at a time.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

/// Command-line overrides; `None` keeps the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--model`.
    pub model: Option<String>,
    /// `--n`.
    pub n: Option<usize>,
    /// `--metric`.
    pub metric: Option<Metric>,
    /// `--ablation`.
    pub ablation: Option<Ablation>,
    /// `--tau`.
    pub tau: Option<f64>,
    /// `--order`.
    pub order: Option<Order>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--dtype`.
    pub dtype: Option<Precision>,
    /// `--nodes`.
    pub nodes: bool,
    /// `--no-split-qkv`.
    pub no_split_qkv: bool,
    /// `--abs-value-threshold`.
    pub abs_value_threshold: bool,
    /// `--batch`.
    pub batch: Option<usize>,
}

impl Overrides {
    /// Whether any override is set.
    pub fn any(&self) -> bool {
        self.model.is_some()
            || self.n.is_some()
            || self.metric.is_some()
            || self.ablation.is_some()
            || self.tau.is_some()
            || self.order.is_some()
            || self.seed.is_some()
            || self.dtype.is_some()
            || self.nodes
            || self.no_split_qkv
            || self.abs_value_threshold
            || self.batch.is_some()
    }
}

impl Config {
    /// Parse RON text; `name` (the file) is used in messages.
    pub fn from_ron(text: &str, name: &str) -> Result<Config> {
        let c: Config = crate::data::task::ron_options()
            .from_str(text)
            .map_err(|e| {
                Error::input(format!(
                    "{name}:{}:{}: {}; an ACDC config looks like AcdcConfig(model: \"toy-ioi\", \
                     task: Ioi(n: 100, flip: \"ABB->XYZ, BAB->XYZ\"), metric: Kl, ablation: \
                     Corrupted, tau: 0.01) (see configs/acdc/)",
                    e.position.line, e.position.col, e.code
                ))
            })?;
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
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return Err(Error::input(format!(
                "{name}: tau = {} — the threshold must be a number > 0 (the reference's IOI run \
                 used 0.0575 with KL; toy models need smaller values such as 0.01)",
                self.tau
            )));
        }
        if self.n == Some(0) {
            return Err(Error::input(format!(
                "{name}: n = 0; use at least one example"
            )));
        }
        if self.batch == 0 {
            return Err(Error::input(format!(
                "{name}: batch = 0; use 1 (one candidate edge per pass) or more"
            )));
        }
        if self.model.trim().is_empty() {
            return Err(Error::input(format!("{name}: model is empty")));
        }
        Ok(())
    }

    /// Apply command-line overrides.
    pub fn apply(&mut self, o: &Overrides) -> Result<()> {
        if let Some(m) = &o.model {
            self.model = m.clone();
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
        if let Some(t) = o.tau {
            self.tau = t;
        }
        if let Some(x) = o.order {
            self.order = x;
            self.indices_order = None;
        }
        if let Some(s) = o.seed {
            self.seed = s;
        }
        if let Some(d) = o.dtype {
            self.dtype = d;
        }
        if o.nodes {
            self.level = Level::Nodes;
        }
        if o.no_split_qkv {
            self.split_qkv = false;
        }
        if o.abs_value_threshold {
            self.abs_value_threshold = true;
        }
        if let Some(b) = o.batch {
            self.batch = b;
        }
        self.validate("the command line")
    }

    /// The task with `n` applied.
    pub fn task_with_n(&self) -> TaskSpec {
        let mut t = self.task.clone();
        if let Some(n) = self.n {
            match &mut t {
                TaskSpec::Ioi(o) => o.n = n,
                TaskSpec::Induction(o) => o.n = n,
                TaskSpec::GreaterThan(o) => o.n = n,
                TaskSpec::Digits(o) | TaskSpec::NumberWords(o) | TaskSpec::Months(o) => o.n = n,
                TaskSpec::Jsonl(o) => o.n = n,
            }
        }
        t
    }

    /// The config as RON (what `--out DIR` keeps as `config.ron`).
    pub fn to_ron(&self) -> String {
        let pretty = ron::ser::PrettyConfig::new().struct_names(true).extensions(
            ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES
                | ron::extensions::Extensions::IMPLICIT_SOME,
        );
        crate::data::task::ron_options()
            .to_string_pretty(self, pretty)
            .unwrap_or_default()
    }

    /// A hash of every setting (SHA-256 of the canonical JSON).
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        crate::experiment::hash::sha256_hex(json.as_bytes())
    }

    /// The settings that differ from `other`, as `name: ours vs theirs` lines.
    pub fn diff(&self, other: &Config) -> Vec<String> {
        let a = serde_json::to_value(self).unwrap_or_default();
        let b = serde_json::to_value(other).unwrap_or_default();
        let mut out = vec![];
        if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
            for (k, va) in a {
                let vb = b.get(k).cloned().unwrap_or_default();
                if *va != vb {
                    out.push(format!("{k}: {va} vs {vb}"));
                }
            }
        }
        out
    }
}
