//! An attribution run: prepare the model and data (as ACDC does), compute the ablation once,
//! score every edge, and write the results into an output folder.

use super::circuit::{self, Selection};
use super::config::Config;
use super::objective::GradMetric;
use super::output;
use super::scores::{attribute, Inputs, Method, Options, Scores};
use crate::acdc::{ablation, Prepared};
use crate::error::{Error, Result};
use crate::eval::{self, LogitsAt, Patches, RunOptions};
use crate::graph::GraphOptions;
use crate::metric::{self, Metric};
use std::path::{Path, PathBuf};

/// Files an attribution run writes.
pub const RUN_FILES: [&str; 6] = [
    "config.ron",
    "scores.json",
    "scores.safetensors",
    "circuit.json",
    "circuit.dot",
    "circuit.svg",
];

/// Scores and what they cost.
pub struct Outcome {
    /// The scores.
    pub scores: Scores,
    /// Forward passes, including the ablation's run (and the normalisation's, for
    /// norm-logit-diff).
    pub forwards: usize,
    /// Backward passes.
    pub backwards: usize,
    /// Seconds spent (ablation and attribution).
    pub seconds: f64,
}

/// The model's logits at the rows' END positions for `tokens`.
fn end_logits(prep: &Prepared, tokens: &candle_core::Tensor) -> Result<candle_core::Tensor> {
    eval::run(
        &prep.model,
        tokens,
        &Patches::new(),
        RunOptions {
            logits: LogitsAt::Rows(prep.end.clone()),
            ..Default::default()
        },
    )?
    .logits
    .ok_or_else(|| Error::input("internal: no logits"))
}

/// Score every edge. `progress(done, total)` follows the gradient passes.
pub fn score(
    prep: &Prepared,
    config: &Config,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Outcome> {
    let t0 = std::time::Instant::now();
    let model = &prep.model;
    let mut forwards = 0;
    let ablated = prep.ablate(model, &config.ablation)?;
    if !matches!(config.ablation, ablation::Ablation::Zero) {
        forwards += 1;
    }
    let norm = if config.metric == Metric::NormLogitDiff {
        let src = prep
            .source_tokens
            .as_ref()
            .ok_or_else(|| Error::input("norm-logit-diff needs corrupted prompts"))?;
        forwards += 2;
        Some(metric::normalisation(
            &prep.dataset,
            &end_logits(prep, &prep.tokens)?,
            &end_logits(prep, src)?,
        )?)
    } else {
        None
    };
    let objective = GradMetric::new(
        config.metric,
        &prep.dataset,
        model.cfg.d_vocab,
        norm,
        model.dtype,
        model.device(),
    )?;
    let inputs = Inputs {
        model,
        tokens: prep.tokens.clone(),
        ends: prep.end.clone(),
        ablated: &ablated,
        objective,
    };
    let opts = Options {
        method: config.method,
        ig_steps: config.ig_steps,
        ig_points: config.ig_points,
        per_position: config.per_position,
        graph: GraphOptions {
            split_qkv: config.split_qkv,
        },
    };
    let scores = attribute(&inputs, &opts, progress)?;
    if config.metric == Metric::Kl
        && matches!(config.method, Method::Eap | Method::Atp)
        && scores.edges.iter().all(|s| s.abs() < 1e-12)
    {
        tracing::warn!(
            "KL divergence has zero gradient at the clean point, so EAP and AtP scores are all \
             zero; use --method eap-ig or another metric"
        );
    }
    forwards += scores.forwards;
    let backwards = scores.backwards;
    Ok(Outcome {
        scores,
        forwards,
        backwards,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Refuse to overwrite another run's results in `dir` unless forced.
pub fn prepare_out(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::input(format!(
            "--out {}: exists and is not a folder",
            dir.display()
        )));
    }
    if RUN_FILES.iter().any(|f| dir.join(f).exists()) && !force {
        return Err(Error::input(format!(
            "--out {}: this folder already holds results (scores.json or circuit.json); choose \
             another folder or pass --force to overwrite them",
            dir.display()
        )));
    }
    Ok(())
}

/// The circuit's selection from the config, if any.
pub fn selection(config: &Config) -> Option<Selection> {
    config
        .top_k
        .map(Selection::TopK)
        .or(config.threshold.map(Selection::Threshold))
}

/// Write the run's files into `dir` (created if missing). Everything is computed before the
/// first file is written; each file is written atomically.
pub fn write(dir: &Path, prep: &Prepared, config: &Config, s: &Scores) -> Result<Vec<PathBuf>> {
    let sel = selection(config);
    // Check the selection before anything is written.
    let circuit = match sel {
        Some(sel) => {
            let mut present = circuit::select(&s.edges, sel)?;
            let pruned = circuit::prune(&s.graph, &mut present);
            Some((sel, present, pruned))
        }
        None => None,
    };
    let setup = config.acdc();
    let json = output::scores_json(
        config,
        &setup,
        &prep.identity,
        &prep.model,
        s,
        prep.dataset.len(),
    );
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| Error::input(format!("cannot serialise scores.json: {e}")))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Stale circuit files of an earlier run must not sit beside new scores.
    for f in ["circuit.json", "circuit.dot", "circuit.svg"] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    let mut written = vec![];
    output::write_text(dir, "config.ron", &config.to_ron())?;
    written.push(dir.join("config.ron"));
    output::save_scores_safetensors(&dir.join("scores.safetensors"), s)?;
    written.push(dir.join("scores.safetensors"));
    output::write_text(dir, "scores.json", &format!("{text}\n"))?;
    written.push(dir.join("scores.json"));
    if let Some((sel, present, pruned)) = circuit {
        let cj = output::circuit_json(&json, &s.graph, &present, &s.edges, &sel, pruned);
        let ctext = serde_json::to_string_pretty(&cj)
            .map_err(|e| Error::input(format!("cannot serialise circuit.json: {e}")))?;
        let kept = present.iter().filter(|p| **p).count();
        let what = match sel {
            Selection::TopK(k) => format!("top {k}"),
            Selection::Threshold(t) => format!("|score| ≥ {t}"),
        };
        let d = output::diagram(
            &format!(
                "{} on {} ({}, metric {}): {kept} edges ({what}, dangling pruned)",
                s.method.cli_name().to_uppercase(),
                config.model,
                config.task.name(),
                config.metric.cli_name()
            ),
            &s.graph,
            &present,
            &s.edges,
        );
        output::write_text(dir, "circuit.dot", &d.to_dot())?;
        output::write_text(dir, "circuit.svg", &crate::report::svg::render(&d))?;
        output::write_text(dir, "circuit.json", &format!("{ctext}\n"))?;
        written.extend(["circuit.dot", "circuit.svg", "circuit.json"].map(|f| dir.join(f)));
    }
    Ok(written)
}
