//! An ACDC run in an output folder: fresh start or resume, a checkpoint and the outputs after
//! every receiver, a log, a progress bar.
//!
//! The folder holds `config.ron` (the effective config), `checkpoint.json`, `circuit.json`,
//! `circuit.dot`, `circuit.svg` and `acdc.log`. Every file except the log is rewritten
//! atomically, so a run killed at any moment leaves the last complete state, and
//! `acdc --resume DIR` continues to the same `circuit.json` an uninterrupted run writes.

use super::checkpoint::{Checkpoint, CHECKPOINT, FORMAT};
use super::config::Config;
use super::output::{circuit_json, diagram, Counts};
use super::sweep::{Event, Sweep, SweepState};
use super::Prepared;
use crate::error::{write_atomic, Error, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Files a run writes into its output folder.
pub const RUN_FILES: [&str; 6] = [
    "config.ron",
    CHECKPOINT,
    "circuit.json",
    "circuit.dot",
    "circuit.svg",
    "acdc.log",
];

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// The output folder.
    pub out: PathBuf,
    /// Overwrite another run's results in `out`.
    pub force: bool,
    /// Continue the run whose checkpoint is in `out`.
    pub resume: bool,
    /// Stop (cleanly, resumable) after this many receivers in this session.
    pub stop_after: Option<usize>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Use the naive evaluator (one full forward pass per edge; for comparisons).
    pub naive: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Whether the sweep finished.
    pub finished: bool,
    /// Steps done (of `steps_total`).
    pub steps_done: usize,
    /// Steps in the sweep.
    pub steps_total: usize,
    /// Counts of the final state.
    pub kept: usize,
    /// Units in the graph.
    pub total: usize,
    /// The current metric.
    pub metric: Option<f64>,
    /// The clean metric.
    pub clean_metric: f64,
    /// Units tested in this session.
    pub tested_now: usize,
    /// Seconds this session spent sweeping.
    pub seconds: f64,
}

/// Whether `dir` holds results of a run. A folder with only `config.ron` (and the log) holds
/// none: the run was stopped before its first checkpoint.
pub fn holds_run(dir: &Path) -> bool {
    RUN_FILES[1..5].iter().any(|f| dir.join(f).exists())
}

/// The config saved in a run's folder.
pub fn saved_config(dir: &Path) -> Result<Config> {
    let p = dir.join("config.ron");
    if !p.is_file() {
        return Err(Error::input(format!(
            "{}: not an ACDC output folder (no config.ron); --resume needs the --out folder of a \
             run that was started before",
            dir.display()
        )));
    }
    Config::load(&p)
}

/// Refuse to resume with a config other than the saved one.
pub fn check_same_config(dir: &Path, saved: &Config, given: &Config) -> Result<()> {
    let diff = saved.diff(given);
    if diff.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "{}: this run was started with another config; resuming would mix two runs. \
         Differences (saved vs given): {}. Resume with `acdc --resume {}` alone (it reads the \
         saved config.ron), or start a new run in another folder (or with --force)",
        dir.join("config.ron").display(),
        diff.join("; "),
        dir.display()
    )))
}

/// Prepare the output folder before anything is computed: refuse to overwrite another run's
/// results unless forced.
pub fn prepare_out(settings: &RunSettings) -> Result<()> {
    let dir = &settings.out;
    if settings.resume {
        if !dir.join(CHECKPOINT).is_file() && !dir.join(RUN_FILES[0]).is_file() {
            return Err(Error::input(format!(
                "{}: no checkpoint.json here, nothing to resume; start the run with --out {} \
                 (without --resume)",
                dir.display(),
                dir.display()
            )));
        }
        return Ok(());
    }
    crate::error::check_output_dir(dir, "--out")?;
    if holds_run(dir) && !settings.force {
        return Err(Error::input(format!(
            "--out {}: this folder already holds an ACDC run's results; continue it with \
             `acdc --resume {}`, choose another folder, or pass --force to overwrite them",
            dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

struct Log {
    file: Option<std::fs::File>,
    t0: Instant,
}

impl Log {
    fn open(dir: &Path) -> Result<Log> {
        let path = dir.join("acdc.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Log {
            file: Some(file),
            t0: Instant::now(),
        })
    }

    fn line(&mut self, s: &str) {
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "[{:>9.2}s] {s}", self.t0.elapsed().as_secs_f64());
        }
    }
}

fn write_outputs(
    dir: &Path,
    prep: &Prepared,
    sweep: &Sweep,
    state: &SweepState,
    clean_metric: f64,
) -> Result<()> {
    let ck = Checkpoint {
        format: FORMAT.into(),
        version: crate::version().into(),
        identity: prep.identity.clone(),
        units: sweep.units.len(),
        steps: sweep.steps.len(),
        clean_metric,
        state: state.clone(),
    };
    ck.save(dir)?;
    let json = circuit_json(&prep.config, &prep.identity, sweep, state, clean_metric);
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| Error::input(format!("cannot serialise circuit.json: {e}")))?;
    write_atomic(dir.join("circuit.json"), format!("{text}\n").as_bytes())?;
    let d = diagram(&prep.config, sweep, state);
    write_atomic(dir.join("circuit.dot"), d.to_dot().as_bytes())?;
    write_atomic(
        dir.join("circuit.svg"),
        crate::report::svg::render(&d).as_bytes(),
    )?;
    Ok(())
}

fn remove_stale_temps(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if RUN_FILES
                .iter()
                .any(|f| name.starts_with(&format!(".{f}.tmp")))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Run (or resume) ACDC into `settings.out`.
pub fn run(prep: &Prepared, settings: &RunSettings) -> Result<Summary> {
    prepare_out(settings)?;
    let dir = &settings.out;
    let sweep = prep.sweep();
    // A run killed before its first checkpoint left only config.ron: resuming it starts it.
    let resume = settings.resume && dir.join(CHECKPOINT).is_file();
    let mut state = if resume {
        let ck = Checkpoint::load(dir)?;
        ck.check_identity(dir, &prep.identity, sweep.units.len())?;
        if ck.steps != sweep.steps.len() {
            return Err(Error::input(format!(
                "{}: the checkpoint has {} steps but this sweep {}; it belongs to another run",
                dir.join(CHECKPOINT).display(),
                ck.steps,
                sweep.steps.len()
            )));
        }
        ck.state
    } else {
        sweep.initial_state()
    };
    let mut ev = prep.evaluator()?;
    ev.naive = settings.naive;
    let clean_metric = ev.objective().value(&ev.objective().clean_logits)?;

    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    remove_stale_temps(dir);
    if !resume {
        for f in RUN_FILES {
            let p = dir.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        write_atomic(dir.join("config.ron"), prep.config.to_ron().as_bytes())?;
    }
    let mut log = Log::open(dir)?;
    let c0 = Counts::of(&state);
    if resume {
        log.line(&format!(
            "resumed at step {}/{} ({} of {} units decided, {} kept)",
            state.next_step,
            sweep.steps.len(),
            c0.decided(),
            c0.total,
            c0.kept
        ));
    } else {
        log.line(&format!(
            "ACDC {} on {} ({} examples): {} {:?} units, {} steps, tau {}, metric {}, ablation \
             {:?}, order {:?}, dtype {:?}; clean metric {clean_metric}",
            prep.config.task.name(),
            prep.config.model,
            prep.dataset.len(),
            sweep.units.len(),
            prep.config.level,
            sweep.steps.len(),
            prep.config.tau,
            prep.config.metric,
            prep.config.ablation,
            prep.config.order,
            prep.config.dtype,
        ));
    }
    tracing::info!(
        "ACDC: {} units, {} steps; starting at step {}",
        sweep.units.len(),
        sweep.steps.len(),
        state.next_step
    );
    write_outputs(dir, prep, &sweep, &state, clean_metric)?;

    let bar = if settings.progress {
        ProgressBar::with_draw_target(Some(sweep.units.len() as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    let what = match prep.config.level {
        super::Level::Edges => "edges",
        super::Level::Nodes => "nodes",
    };
    if let Ok(style) = ProgressStyle::default_bar().template(&format!(
        "[{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {what} · {{rate}} · ETA {{eta}} · {{msg}}"
    )) {
        bar.set_style(style.with_key(
            "rate",
            |st: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1}/s", st.per_sec());
            },
        ));
    }
    bar.set_position(c0.decided() as u64);
    bar.reset_eta();

    let t0 = Instant::now();
    let mut tested_now = 0usize;
    let mut receivers_now = 0usize;
    while !sweep.done(&state) {
        if settings.stop_after.is_some_and(|k| receivers_now >= k) {
            break;
        }
        let step = sweep.steps[state.next_step];
        let step_no = state.next_step;
        bar.set_message(format!("{step}"));
        let mut lines: Vec<String> = vec![];
        let mut tested = 0usize;
        let mut removed = 0usize;
        let mut untested = 0usize;
        let units = &sweep.units;
        let changed = sweep.step(&mut state, &mut ev, &mut |e: &Event| match e {
            Event::Tested {
                unit,
                effect,
                removed: r,
                metric,
            } => {
                tested += 1;
                if *r {
                    removed += 1;
                }
                bar.inc(1);
                lines.push(format!(
                    "  {:<28} effect {:+.6e} -> {} (metric {metric:.6e})",
                    units.name(*unit),
                    effect,
                    if *r { "removed" } else { "kept" }
                ));
            }
            Event::RemovedUntested { units: us } => {
                untested += us.len();
                bar.inc(us.len() as u64);
            }
        })?;
        if let Some(m) = state.cur_metric {
            if !m.is_finite() {
                return Err(Error::input(format!(
                    "the metric became {m} at step {step}; the model or dataset produce \
                     non-finite logits — check the model and the prompts"
                )));
            }
        }
        if changed {
            tested_now += tested;
            if tested > 0 {
                receivers_now += 1;
            }
            let c = Counts::of(&state);
            let head = format!(
                "step {}/{} {step}: tested {tested}, removed {removed}, removed untested \
                 {untested}; {} of {} kept; metric {}",
                step_no + 1,
                sweep.steps.len(),
                c.kept,
                c.total,
                state
                    .cur_metric
                    .map_or("-".to_string(), |m| format!("{m:.6e}"))
            );
            tracing::info!("{head}");
            log.line(&head);
            for l in lines {
                log.line(&l);
            }
            // Steps that only drop the inputs of dead components are a function of the state:
            // a resumed run redoes them, so they need no checkpoint of their own.
            if tested > 0 {
                write_outputs(dir, prep, &sweep, &state, clean_metric)?;
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let finished = sweep.done(&state);
    if let (Some(sc), super::Precision::Checked) = (ev.screen(), prep.config.dtype) {
        log.line(&format!(
            "checked precision: {} float64 evaluations for {} float32 ones this session; \
             largest |float32 − float64| / bound at a re-check {:.3e}; bound violations {}",
            ev.full_evaluations, ev.evaluations, sc.worst_ratio, sc.violations
        ));
    }
    write_outputs(dir, prep, &sweep, &state, clean_metric)?;
    let c = Counts::of(&state);
    if finished {
        log.line(&format!(
            "finished: {} of {} kept, metric {:?} (clean {clean_metric}); this session tested \
             {tested_now} in {seconds:.1}s",
            c.kept, c.total, state.cur_metric
        ));
    } else {
        log.line(&format!(
            "stopped after {receivers_now} receivers at step {}/{}; continue with --resume",
            state.next_step,
            sweep.steps.len()
        ));
    }
    bar.finish_and_clear();
    Ok(Summary {
        finished,
        steps_done: state.next_step,
        steps_total: sweep.steps.len(),
        kept: c.kept,
        total: c.total,
        metric: state.cur_metric,
        clean_metric,
        tested_now,
        seconds,
    })
}
