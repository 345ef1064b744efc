//! An ACDC run in an output folder: fresh start or resume, a checkpoint and the outputs after
//! every receiver, a log, and progress reports through a callback (the binary draws the bar).
//!
//! The folder holds `config.ron` (the effective config), `checkpoint.json`, `circuit.json`,
//! `circuit.dot`, `circuit.svg` and `acdc.log`. Every file except the log is rewritten
//! atomically, so a run killed at any moment leaves the last complete state, and
//! `acdc --resume DIR` continues to the same `circuit.json` an uninterrupted run writes.

use super::checkpoint::{Checkpoint, CHECKPOINT, FORMAT};
use super::config::Config;
use super::output::{circuit_json, diagram, Counts};
use super::sweep::{Event, Sweep, SweepState};
use super::{Evaluator, Prepared};
use crate::error::{write_atomic, Error, Result};
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
    clean_metric: f64,
}

impl Log {
    fn open(dir: &Path, clean_metric: f64) -> Result<Log> {
        let path = dir.join("acdc.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Log {
            file: Some(file),
            t0: Instant::now(),
            clean_metric,
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

/// Where a run stands, for a progress display: after every decided unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Units decided (tested or removed untested) so far, this session and before it.
    pub decided: usize,
    /// Units in the graph.
    pub total: usize,
    /// The step being run (`a3.h2.q`, `logits`, …).
    pub step: String,
    /// Whether the run is over (finished or stopped).
    pub done: bool,
}

/// The state a run starts from: a fresh one, or the checkpoint's.
fn start_state(prep: &Prepared, dir: &Path, resume: bool, sweep: &Sweep) -> Result<SweepState> {
    if !resume {
        return Ok(sweep.initial_state());
    }
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
    Ok(ck.state)
}

/// Create the folder; a fresh run removes the files of an overwritten run and writes the
/// config; stale temporary files go either way.
fn prepare_folder(prep: &Prepared, dir: &Path, resume: bool) -> Result<()> {
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
    Ok(())
}

/// The log's first line of this session.
fn log_start(log: &mut Log, prep: &Prepared, sweep: &Sweep, state: &SweepState, resume: bool) {
    let c0 = Counts::of(state);
    let clean_metric = log.clean_metric;
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
}

/// What one step did.
#[derive(Default)]
struct StepReport {
    changed: bool,
    tested: usize,
    removed: usize,
    untested: usize,
    lines: Vec<String>,
}

/// Run the next step, reporting every decided unit to `on_progress`.
fn run_step(
    sweep: &Sweep,
    state: &mut SweepState,
    ev: &mut Evaluator,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<StepReport> {
    let step = sweep.steps[state.next_step];
    let mut rep = StepReport::default();
    let mut decided = Counts::of(state).decided();
    let total = sweep.units.len();
    let units = &sweep.units;
    let mut report = |decided: usize| {
        on_progress(&Progress {
            decided,
            total,
            step: step.to_string(),
            done: false,
        })
    };
    report(decided);
    rep.changed = sweep.step(state, ev, &mut |e: &Event| match e {
        Event::Tested {
            unit,
            effect,
            removed: r,
            metric,
        } => {
            rep.tested += 1;
            if *r {
                rep.removed += 1;
            }
            decided += 1;
            report(decided);
            rep.lines.push(format!(
                "  {:<28} effect {:+.6e} -> {} (metric {metric:.6e})",
                units.name(*unit),
                effect,
                if *r { "removed" } else { "kept" }
            ));
        }
        Event::RemovedUntested { units: us } => {
            rep.untested += us.len();
            decided += us.len();
            report(decided);
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
    Ok(rep)
}

/// The log's lines for one step that changed the state: a summary and one line per tested unit.
fn log_step(log: &mut Log, sweep: &Sweep, state: &SweepState, step_no: usize, rep: StepReport) {
    let step = sweep.steps[step_no];
    let c = Counts::of(state);
    let head = format!(
        "step {}/{} {step}: tested {}, removed {}, removed untested {}; {} of {} kept; \
         metric {}",
        step_no + 1,
        sweep.steps.len(),
        rep.tested,
        rep.removed,
        rep.untested,
        c.kept,
        c.total,
        state
            .cur_metric
            .map_or("-".to_string(), |m| format!("{m:.6e}"))
    );
    tracing::info!("{head}");
    log.line(&head);
    for l in rep.lines {
        log.line(&l);
    }
}

/// Run (or resume) ACDC into `settings.out`.
pub fn run(prep: &Prepared, settings: &RunSettings) -> Result<Summary> {
    run_with_progress(prep, settings, &mut |_| {})
}

/// Run (or resume) ACDC into `settings.out`, telling `on_progress` where it stands after every
/// decided unit (the binary draws its progress bar from it).
pub fn run_with_progress(
    prep: &Prepared,
    settings: &RunSettings,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Summary> {
    prepare_out(settings)?;
    let dir = &settings.out;
    let sweep = prep.sweep();
    // A run killed before its first checkpoint left only config.ron: resuming it starts it.
    let resume = settings.resume && dir.join(CHECKPOINT).is_file();
    let mut state = start_state(prep, dir, resume, &sweep)?;
    let mut ev = prep.evaluator()?;
    ev.naive = settings.naive;
    let clean_metric = ev.objective().value(&ev.objective().clean_logits)?;
    prepare_folder(prep, dir, resume)?;
    let mut log = Log::open(dir, clean_metric)?;
    log_start(&mut log, prep, &sweep, &state, resume);
    tracing::info!(
        "ACDC: {} units, {} steps; starting at step {}",
        sweep.units.len(),
        sweep.steps.len(),
        state.next_step
    );
    write_outputs(dir, prep, &sweep, &state, clean_metric)?;

    let t0 = Instant::now();
    let mut tested_now = 0usize;
    let mut receivers_now = 0usize;
    while !sweep.done(&state) {
        if settings.stop_after.is_some_and(|k| receivers_now >= k) {
            break;
        }
        let step_no = state.next_step;
        let rep = run_step(&sweep, &mut state, &mut ev, on_progress)?;
        if !rep.changed {
            continue;
        }
        let tested = rep.tested;
        tested_now += tested;
        if tested > 0 {
            receivers_now += 1;
        }
        log_step(&mut log, &sweep, &state, step_no, rep);
        // Steps that only drop the inputs of dead components are a function of the state: a
        // resumed run redoes them, so they need no checkpoint of their own.
        if tested > 0 {
            write_outputs(dir, prep, &sweep, &state, clean_metric)?;
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let finished = sweep.done(&state);
    write_outputs(dir, prep, &sweep, &state, clean_metric)?;
    let c = Counts::of(&state);
    log_end(
        &mut log,
        &ev,
        prep,
        &sweep,
        &state,
        finished,
        tested_now,
        receivers_now,
        seconds,
    );
    on_progress(&Progress {
        decided: c.decided(),
        total: c.total,
        step: String::new(),
        done: true,
    });
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

/// The log's last lines of this session.
#[allow(clippy::too_many_arguments)]
fn log_end(
    log: &mut Log,
    ev: &Evaluator,
    prep: &Prepared,
    sweep: &Sweep,
    state: &SweepState,
    finished: bool,
    tested_now: usize,
    receivers_now: usize,
    seconds: f64,
) {
    if let (Some(sc), super::Precision::Checked) = (ev.screen(), prep.config.dtype) {
        log.line(&format!(
            "checked precision: {} float64 evaluations for {} float32 ones this session; \
             largest |float32 − float64| / bound at a re-check {:.3e}; bound violations {}",
            ev.full_evaluations, ev.evaluations, sc.worst_ratio, sc.violations
        ));
    }
    let c = Counts::of(state);
    let clean_metric = log.clean_metric;
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
}
