//! Sweep files (RON, under `configs/sweeps/`): a base ACDC config and axes, expanded into
//! points — each an ordinary ACDC config, named from its parameters.
//!
//! ```ron
//! AcdcSweep(
//!     base: "../acdc/toy-induction.ron",     // relative to this file
//!     axes: (
//!         tau: "-4:0:8",                     // or a list: [0.001, 0.01]
//!         seed: [0, 1],                      // also: metric, ablation, n, order, configs
//!     ),
//!     known_circuit: "../../models/toy-induction/CIRCUIT.json",
//!     slurm: (time: "00:20:00", mem: "1G", cpus: 1),
//! )
//! ```
//!
//! Points are the Cartesian product of the axes, in the order configs × metric × ablation ×
//! n × order × seed × τ (τ varies fastest). A point's name lists the value of every axis the
//! file sets, e.g. `seed-1_tau-1e-3`: the same parameters always give the same name.

use crate::acdc::{Ablation, Config, Order};
use crate::error::{Error, Result};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A sweep file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename = "AcdcSweep", deny_unknown_fields)]
pub struct SweepFile {
    /// The base ACDC config (a path relative to the sweep file). Not needed when the
    /// `configs` axis lists the configs.
    #[serde(default)]
    pub base: Option<String>,
    /// The axes.
    #[serde(default)]
    pub axes: Axes,
    /// A known circuit (JSON, e.g. a toy's `CIRCUIT.json`) for `sweep collect`'s ROC curve.
    #[serde(default)]
    pub known_circuit: Option<String>,
    /// Which list of the known-circuit file to use (default: chosen by the ablation).
    #[serde(default)]
    pub known_key: Option<String>,
    /// Slurm resources of one point (flags of `acdc sweep --slurm` override them).
    #[serde(default)]
    pub slurm: SlurmResources,
}

/// The axes of a sweep; an axis left out keeps the base config's value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    /// Thresholds: a list, or `"LO:HI:N"` (N values evenly spaced in log10 from 10^LO to 10^HI).
    #[serde(default)]
    pub tau: Option<TauAxis>,
    /// Metrics (`Kl`, `LogitDiff`, …).
    #[serde(default)]
    pub metric: Option<Vec<Metric>>,
    /// Ablations (`Corrupted`, `Resample(shift: 1)`, `Zero`, `Mean(by: "template")`, …).
    #[serde(default)]
    pub ablation: Option<Vec<Ablation>>,
    /// Dataset sizes.
    #[serde(default)]
    pub n: Option<Vec<usize>>,
    /// Parent orders (`Normal`, `Reverse`, `Random`).
    #[serde(default)]
    pub order: Option<Vec<Order>>,
    /// Seeds (of the random parent order).
    #[serde(default)]
    pub seed: Option<Vec<u64>>,
    /// Config files (paths relative to the sweep file), each a base of its own.
    #[serde(default)]
    pub configs: Option<Vec<String>>,
}

/// Slurm resources of one array task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmResources {
    /// Wall-clock limit (`--time`, e.g. `"02:00:00"`).
    #[serde(default)]
    pub time: Option<String>,
    /// Memory (`--mem`, e.g. `"4G"`).
    #[serde(default)]
    pub mem: Option<String>,
    /// CPUs per task (`--cpus-per-task`); each run uses that many threads.
    #[serde(default)]
    pub cpus: Option<usize>,
    /// Partition (`--partition`).
    #[serde(default)]
    pub partition: Option<String>,
    /// At most this many tasks at once (`--array=…%K`).
    #[serde(default)]
    pub max_running: Option<usize>,
    /// Further `#SBATCH` options, e.g. `["--account=lab", "--qos=long"]`.
    #[serde(default)]
    pub extra: Vec<String>,
}

impl SlurmResources {
    /// `self` with every field set in `other` taken from `other`.
    pub fn overridden_by(&self, other: &SlurmResources) -> SlurmResources {
        SlurmResources {
            time: other.time.clone().or_else(|| self.time.clone()),
            mem: other.mem.clone().or_else(|| self.mem.clone()),
            cpus: other.cpus.or(self.cpus),
            partition: other.partition.clone().or_else(|| self.partition.clone()),
            max_running: other.max_running.or(self.max_running),
            extra: self.extra.iter().chain(&other.extra).cloned().collect(),
        }
    }
}

/// The most points a sweep may have. More is almost surely a slip in an axis (a τ range of a
/// million steps) and would take gigabytes and minutes just to list, before anything runs.
pub const MAX_POINTS: usize = 10_000;

/// The τ axis: explicit values, or a log-spaced range.
#[derive(Debug, Clone, PartialEq)]
pub enum TauAxis {
    /// These values.
    Values(Vec<f64>),
    /// `LO:HI:N`.
    Log {
        /// log10 of the first value.
        lo: f64,
        /// log10 of the last value.
        hi: f64,
        /// Number of values.
        n: usize,
    },
}

impl TauAxis {
    /// Parse `LO:HI:N`; `what` names the flag or file in the message.
    pub fn parse_range(s: &str, what: &str) -> Result<TauAxis> {
        let bad = || {
            Error::input(format!(
                "{what}: τ range \"{s}\": expected LO:HI:N, N values evenly spaced in log10 \
                 from 10^LO to 10^HI (e.g. \"-6:0:31\" for 10^-6 … 1 in 31 steps), or a list of \
                 values such as [0.001, 0.01]"
            ))
        };
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        let [lo, hi, n] = parts[..] else {
            return Err(bad());
        };
        let (lo_text, hi_text) = (lo, hi);
        let lo: f64 = lo.parse().map_err(|_| bad())?;
        let hi: f64 = hi.parse().map_err(|_| bad())?;
        let n: usize = n.parse().map_err(|_| bad())?;
        if !lo.is_finite() || !hi.is_finite() {
            return Err(bad());
        }
        if n > MAX_POINTS {
            return Err(Error::input(format!(
                "{what}: τ range \"{s}\" asks for {n} values, more than a sweep may have \
                 ({MAX_POINTS}); give N ≤ {MAX_POINTS}, e.g. \"{lo_text}:{hi_text}:31\""
            )));
        }
        Ok(TauAxis::Log { lo, hi, n })
    }

    /// The values.
    pub fn values(&self) -> Vec<f64> {
        match self {
            TauAxis::Values(v) => v.clone(),
            TauAxis::Log { lo, hi, n } => crate::acdc::roc::log_taus(*lo, *hi, *n),
        }
    }
}

impl<'de> Deserialize<'de> for TauAxis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TauAxis;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of thresholds such as [0.001, 0.01], or \"LO:HI:N\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<TauAxis, E> {
                TauAxis::parse_range(s, "tau").map_err(|e| E::custom(e.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<TauAxis, A::Error> {
                let mut v = vec![];
                while let Some(x) = seq.next_element::<f64>()? {
                    v.push(x);
                }
                Ok(TauAxis::Values(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One point of a sweep: an ordinary ACDC config and its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The folder name, from the point's parameters (`seed-1_tau-1e-3`).
    pub name: String,
    /// The config of its run.
    pub config: Config,
}

/// The part of a point's config that its preparation (model, dataset, graph, ablation, and so
/// the empty circuit's metric) depends on, as a hash: points that differ only in τ, seed, order,
/// the sign rule of the threshold or the batch share it.
pub(crate) fn preparation_key(c: &Config) -> String {
    let mut k = c.clone();
    k.tau = 1.0;
    k.seed = 0;
    k.order = Default::default();
    k.indices_order = None;
    k.abs_value_threshold = false;
    k.batch = 1;
    k.hash()
}

/// A sweep expanded: its points, where it came from, what `collect` and `--slurm` need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPlan {
    /// Where the sweep was defined (the sweep file's path, or a description).
    pub source: String,
    /// The axes the sweep sets, in name order (`configs`, `metric`, …, `tau`).
    pub axes: Vec<String>,
    /// The points, in sweep order.
    pub points: Vec<Point>,
    /// A known circuit for the ROC curve (absolute path) and the list to use in it.
    pub known_circuit: Option<PathBuf>,
    /// The known circuit's list (`edges_resample`, …); `None`: chosen by the ablation.
    pub known_key: Option<String>,
    /// Slurm resources from the sweep file.
    pub slurm: SlurmResources,
}

const EXAMPLE: &str = "a sweep file looks like AcdcSweep(base: \"../acdc/toy-induction.ron\", \
                       axes: (tau: \"-4:0:8\", seed: [0, 1])) (see configs/sweeps/)";

/// A float as a name part: Rust's shortest round-trip form (`1e-3`, `3.1622776601683795e-5`),
/// so the name gives the exact value back.
fn float_label(x: f64) -> String {
    format!("{x:e}")
}

/// A short label of an ablation (point names, tables): `corrupted`, `resample1`, `mean-by-template`.
pub fn ablation_label(a: &Ablation) -> String {
    match a {
        Ablation::Corrupted => "corrupted".into(),
        Ablation::Zero => "zero".into(),
        Ablation::Resample(r) => format!("resample{}", r.shift),
        Ablation::Mean(m) => {
            let src = match m.source {
                crate::acdc::MeanSource::Corrupted => "",
                crate::acdc::MeanSource::Clean => "-clean",
            };
            match &m.by {
                Some(f) => format!("mean-by-{f}{src}"),
                None => format!("mean-all{src}"),
            }
        }
    }
}

/// Keep a name part to characters safe in folder names and shells.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn nonempty<T: Clone>(file: &str, axis: &str, v: &Option<Vec<T>>) -> Result<Option<Vec<T>>> {
    match v {
        Some(v) if v.is_empty() => Err(Error::input(format!(
            "{file}: axis `{axis}` has no values; list at least one (e.g. {axis}: [...]) or \
             leave the axis out to keep the base config's value"
        ))),
        other => Ok(other.clone()),
    }
}

impl SweepFile {
    /// Parse RON text; `name` (the file) is used in messages.
    pub fn from_ron(text: &str, name: &str) -> Result<SweepFile> {
        crate::ron_file::parse(text, Path::new(name), EXAMPLE)
    }

    /// Read a sweep file and expand it.
    pub fn load_plan(path: &Path) -> Result<SweepPlan> {
        let (file, _): (SweepFile, _) = crate::ron_file::read(path, EXAMPLE)?;
        file.plan(path)
    }

    /// Expand into points; relative paths are relative to `path` (the file's own path).
    pub fn plan(&self, path: &Path) -> Result<SweepPlan> {
        let file = path.display().to_string();
        let ax = &self.axes;
        let configs = nonempty(&file, "configs", &ax.configs)?;
        let bases: Vec<(Option<String>, Config)> = match (&self.base, &configs) {
            (Some(_), Some(_)) => {
                return Err(Error::input(format!(
                    "{file}: both `base` and the `configs` axis are given; each config of the \
                     axis is a base of its own, so give only one of them"
                )))
            }
            (None, None) => {
                return Err(Error::input(format!(
                    "{file}: no base config; add base: \"path/to/config.ron\" (relative to this \
                     file) or an axis configs: [\"a.ron\", \"b.ron\"]; {EXAMPLE}"
                )))
            }
            (Some(b), None) => vec![(None, load_base(path, b)?)],
            (None, Some(list)) => {
                let mut v = vec![];
                for c in list {
                    let stem = Path::new(c)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| c.clone());
                    v.push((Some(safe(&stem)), load_base(path, c)?));
                }
                v
            }
        };
        let taus = match &ax.tau {
            Some(t) => {
                let v = t.values();
                if v.is_empty() {
                    return Err(Error::input(format!(
                        "{file}: axis `tau` has no values; list at least one (tau: [0.01]) or \
                         give a range with N ≥ 1 (tau: \"-4:0:8\")"
                    )));
                }
                Some(v)
            }
            None => None,
        };
        let axes = Grid {
            configs: bases,
            metric: nonempty(&file, "metric", &ax.metric)?,
            ablation: nonempty(&file, "ablation", &ax.ablation)?,
            n: nonempty(&file, "n", &ax.n)?,
            order: nonempty(&file, "order", &ax.order)?,
            seed: nonempty(&file, "seed", &ax.seed)?,
            tau: taus,
        };
        let known_circuit = self
            .known_circuit
            .as_deref()
            .map(|k| crate::ron_file::resolve(path, k));
        let source = std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        axes.expand(
            &source,
            known_circuit,
            self.known_key.clone(),
            self.slurm.clone(),
        )
    }
}

fn load_base(sweep: &Path, written: &str) -> Result<Config> {
    let p = crate::ron_file::resolve(sweep, written);
    if !p.is_file() {
        return Err(Error::input(format!(
            "{}: config \"{written}\" not found ({} is not a file); paths in a sweep file are \
             relative to the sweep file's folder",
            sweep.display(),
            p.display()
        )));
    }
    Config::load(&p)
}

/// The values of every axis, ready to expand.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The base configs, each with its label when the `configs` axis is set.
    pub configs: Vec<(Option<String>, Config)>,
    /// Metrics.
    pub metric: Option<Vec<Metric>>,
    /// Ablations.
    pub ablation: Option<Vec<Ablation>>,
    /// Dataset sizes.
    pub n: Option<Vec<usize>>,
    /// Parent orders.
    pub order: Option<Vec<Order>>,
    /// Seeds.
    pub seed: Option<Vec<u64>>,
    /// Thresholds.
    pub tau: Option<Vec<f64>>,
}

/// The values of one optional axis, `[None]` when the axis is not set.
fn opt<T: Clone>(v: &Option<Vec<T>>) -> Vec<Option<T>> {
    match v {
        Some(v) => v.iter().cloned().map(Some).collect(),
        None => vec![None],
    }
}

impl Grid {
    /// A τ sweep of one config (what `acdc --roc` runs).
    pub fn taus(config: Config, taus: Vec<f64>) -> Grid {
        Grid {
            configs: vec![(None, config)],
            metric: None,
            ablation: None,
            n: None,
            order: None,
            seed: None,
            tau: Some(taus),
        }
    }

    /// Refuse more than [`MAX_POINTS`] points before any is made, naming each axis's size.
    fn check_size(&self, source: &str) -> Result<()> {
        let sizes = [
            ("configs", self.configs.len()),
            ("metric", self.metric.as_ref().map_or(1, Vec::len)),
            ("ablation", self.ablation.as_ref().map_or(1, Vec::len)),
            ("n", self.n.as_ref().map_or(1, Vec::len)),
            ("order", self.order.as_ref().map_or(1, Vec::len)),
            ("seed", self.seed.as_ref().map_or(1, Vec::len)),
            ("tau", self.tau.as_ref().map_or(1, Vec::len)),
        ];
        let total = sizes.iter().fold(1usize, |t, s| t.saturating_mul(s.1));
        if total <= MAX_POINTS {
            return Ok(());
        }
        let product: Vec<String> = sizes
            .iter()
            .filter(|s| s.1 != 1)
            .map(|(axis, k)| format!("{axis} {k}"))
            .collect();
        Err(Error::input(format!(
            "{source}: the axes make {total} points ({}), more than a sweep may have \
             ({MAX_POINTS}); list fewer values, or split the sweep into several files",
            product.join(" × ")
        )))
    }

    /// The names of the axes this grid sets, in name order.
    fn axes_set(&self) -> Vec<String> {
        let mut axes = vec![];
        if self.configs.iter().any(|c| c.0.is_some()) {
            axes.push("configs");
        }
        for (name, set) in [
            ("metric", self.metric.is_some()),
            ("ablation", self.ablation.is_some()),
            ("n", self.n.is_some()),
            ("order", self.order.is_some()),
            ("seed", self.seed.is_some()),
            ("tau", self.tau.is_some()),
        ] {
            if set {
                axes.push(name);
            }
        }
        axes.into_iter().map(String::from).collect()
    }

    /// Every point's coordinates, in sweep order (the last axis, τ, varies fastest).
    fn coords(&self) -> Vec<Coords<'_>> {
        let mut out = vec![];
        for (label, base) in &self.configs {
            for metric in opt(&self.metric) {
                for ablation in opt(&self.ablation) {
                    for n in opt(&self.n) {
                        for order in opt(&self.order) {
                            for seed in opt(&self.seed) {
                                for tau in opt(&self.tau) {
                                    out.push(Coords {
                                        label: label.as_deref(),
                                        base,
                                        metric,
                                        ablation: ablation.clone(),
                                        n,
                                        order,
                                        seed,
                                        tau,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The points (configs × metric × ablation × n × order × seed × τ), each validated and
    /// named; two points with one name (a value listed twice) are refused.
    pub fn expand(
        &self,
        source: &str,
        known_circuit: Option<PathBuf>,
        known_key: Option<String>,
        slurm: SlurmResources,
    ) -> Result<SweepPlan> {
        self.check_size(source)?;
        let points = self
            .coords()
            .into_iter()
            .map(|c| c.point(source))
            .collect::<Result<Vec<Point>>>()?;
        let mut seen = std::collections::BTreeMap::new();
        for (i, p) in points.iter().enumerate() {
            if let Some(j) = seen.insert(p.name.clone(), i) {
                return Err(Error::input(format!(
                    "{source}: points {j} and {i} are both named {}: an axis lists one value \
                     twice; list each value once",
                    p.name
                )));
            }
        }
        Ok(SweepPlan {
            source: source.to_string(),
            axes: self.axes_set(),
            points,
            known_circuit,
            known_key,
            slurm,
        })
    }
}

/// One point's value on every axis (`None`: the axis is not set).
struct Coords<'a> {
    label: Option<&'a str>,
    base: &'a Config,
    metric: Option<Metric>,
    ablation: Option<Ablation>,
    n: Option<usize>,
    order: Option<Order>,
    seed: Option<u64>,
    tau: Option<f64>,
}

impl Coords<'_> {
    /// The point: the base config with these values set, named after them, validated.
    fn point(self, source: &str) -> Result<Point> {
        let mut c = self.base.clone();
        let mut parts = vec![];
        if let Some(l) = self.label {
            parts.push(format!("cfg-{l}"));
        }
        if let Some(m) = self.metric {
            c.metric = m;
            parts.push(format!("metric-{}", m.cli_name()));
        }
        if let Some(a) = self.ablation {
            parts.push(format!("abl-{}", safe(&ablation_label(&a))));
            c.ablation = a;
        }
        if let Some(n) = self.n {
            c.n = Some(n);
            parts.push(format!("n-{n}"));
        }
        if let Some(o) = self.order {
            c.order = o;
            c.indices_order = None;
            parts.push(format!("order-{o:?}").to_lowercase());
        }
        if let Some(s) = self.seed {
            c.seed = s;
            parts.push(format!("seed-{s}"));
        }
        if let Some(t) = self.tau {
            c.tau = t;
            parts.push(format!("tau-{}", float_label(t)));
        }
        let name = if parts.is_empty() {
            "base".to_string()
        } else {
            parts.join("_")
        };
        c.validate(&format!("{source}: point {name}"))?;
        Ok(Point { name, config: c })
    }
}

impl SweepPlan {
    /// A hash of the points (names and configs, in order): two plans with one hash run the
    /// same runs.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for p in &self.points {
            h.update(p.name.as_bytes());
            h.update([0u8]);
            h.update(p.config.hash().as_bytes());
            h.update([0u8]);
        }
        crate::experiment::hash::hex(&h.finalize())
    }

    /// The index of a point given by number or by name.
    pub fn point_index(&self, which: &str) -> Result<usize> {
        if let Ok(i) = which.parse::<usize>() {
            if i < self.points.len() {
                return Ok(i);
            }
            return Err(Error::input(format!(
                "--point {i}: the sweep has {} points (0 to {})",
                self.points.len(),
                self.points.len().saturating_sub(1)
            )));
        }
        self.points
            .iter()
            .position(|p| p.name == which)
            .ok_or_else(|| {
                Error::input(format!(
                    "--point {which}: no point of that name; `acdc sweep status DIR` lists them"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_file(dir: &Path) -> PathBuf {
        let p = dir.join("base.ron");
        std::fs::write(
            &p,
            "AcdcConfig(model: \"toy-induction\", task: Induction(n: 4, seq_len: 6, seed: 0), \
             ablation: Resample(shift: 1), tau: 0.01)",
        )
        .unwrap();
        p
    }

    #[test]
    fn expands_axes_in_order_with_names_from_parameters() {
        let tmp = tempfile::tempdir().unwrap();
        base_file(tmp.path());
        let f = SweepFile::from_ron(
            "AcdcSweep(base: \"base.ron\", axes: (tau: \"-2:0:3\", seed: [0, 7], metric: [Kl, Nll]))",
            "s.ron",
        )
        .unwrap();
        let plan = f.plan(&tmp.path().join("s.ron")).unwrap();
        assert_eq!(plan.points.len(), 12);
        assert_eq!(plan.axes, ["metric", "seed", "tau"]);
        let names: Vec<&str> = plan.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names[0], "metric-kl_seed-0_tau-1e-2");
        assert_eq!(names[1], "metric-kl_seed-0_tau-1e-1");
        assert_eq!(names[2], "metric-kl_seed-0_tau-1e0");
        assert_eq!(names[3], "metric-kl_seed-7_tau-1e-2");
        assert_eq!(names[11], "metric-nll_seed-7_tau-1e0");
        let p = &plan.points[4];
        assert_eq!((p.config.seed, p.config.tau), (7, 0.1));
        assert_eq!(p.config.metric, Metric::Kl);
        // The name gives the exact τ back.
        for p in &plan.points {
            let t: f64 = p.name.rsplit("tau-").next().unwrap().parse().unwrap();
            assert_eq!(t.to_bits(), p.config.tau.to_bits());
        }
        // The same file gives the same plan and hash; another τ grid another hash.
        let again = f.plan(&tmp.path().join("s.ron")).unwrap();
        assert_eq!(plan.hash(), again.hash());
        let g = SweepFile::from_ron(
            "AcdcSweep(base: \"base.ron\", axes: (tau: [0.01, 0.1], seed: [0, 7], metric: [Kl, Nll]))",
            "s.ron",
        )
        .unwrap();
        assert_ne!(
            plan.hash(),
            g.plan(&tmp.path().join("s.ron")).unwrap().hash()
        );
    }

    #[test]
    fn bad_axes_are_refused_with_the_axis_named() {
        let tmp = tempfile::tempdir().unwrap();
        base_file(tmp.path());
        let s = tmp.path().join("s.ron");
        for (text, want) in [
            (
                "AcdcSweep(base: \"base.ron\", axes: (seed: []))",
                "axis `seed` has no values",
            ),
            (
                "AcdcSweep(base: \"base.ron\", axes: (tau: []))",
                "axis `tau` has no values",
            ),
            (
                "AcdcSweep(base: \"base.ron\", axes: (tau: \"-3:0:0\"))",
                "axis `tau` has no values",
            ),
            (
                "AcdcSweep(base: \"base.ron\", axes: (tau: [0.1, 0.1]))",
                "both named tau-1e-1",
            ),
            (
                "AcdcSweep(base: \"base.ron\", axes: (tau: [0.1, -1.0]))",
                "point tau--1e0",
            ),
            ("AcdcSweep(axes: (tau: [0.1]))", "no base config"),
            ("AcdcSweep(base: \"nope.ron\")", "not found"),
        ] {
            let e = SweepFile::from_ron(text, "s.ron")
                .and_then(|f| f.plan(&s))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = SweepFile::from_ron("AcdcSweep(axes: (tau: \"1:2\"))", "s.ron")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.ron:1:") && e.contains("LO:HI:N"), "{e}");
    }
}
