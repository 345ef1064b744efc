//! `acdc sweep`: many ACDC runs from a sweep file, here in parallel or as a Slurm array;
//! `acdc sweep status DIR`, `acdc sweep collect DIR`.

use anyhow::{bail, Result};
use circuitscope::sweep::folder::{PointState, SweepFolder};
use circuitscope::sweep::local::{self, LocalSettings, Observer, Outcome};
use circuitscope::sweep::{self, collect, estimate, slurm, Point, SlurmResources, SweepFile};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SWEEP_EXAMPLES: &str = "Examples:
  acdc sweep --config configs/sweeps/toy-induction-tau.ron --out runs/sweep       # here, all cores
  acdc sweep --config configs/sweeps/toy-induction-tau.ron --out runs/sweep --resume   # after a kill
  acdc sweep --config configs/sweeps/toy-induction-tau.ron --out runs/sweep --estimate # time, memory
  acdc sweep --config configs/sweeps/toy-induction-tau.ron --out runs/sweep --slurm --time 00:20:00 \\
       --mem 1G --partition cpu [--submit]                                        # a Slurm array
  acdc sweep status runs/sweep                    # done / running / failed / interrupted / missing
  acdc sweep collect runs/sweep [--known models/toy-induction/CIRCUIT.json]

Every point is an ordinary ACDC run folder, runs/sweep/points/NAME (named from its parameters):
`acdc --resume runs/sweep/points/NAME` continues one alone. `collect` writes sweep.json,
sweep.csv, pareto.svg, roc.svg (with a known circuit) and sweep.html into the sweep's folder.";

/// Run many ACDC runs from a sweep file (see configs/sweeps/), here or on Slurm.
#[derive(clap::Args, Debug)]
#[command(after_help = SWEEP_EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// The sweep file (RON, see configs/sweeps/).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The sweep's folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Finish the sweep in --out: run only the points that are not done (interrupted ones
    /// continue from their checkpoints). --config may be left out.
    #[arg(long)]
    resume: bool,
    /// Delete the points of another sweep in --out and start this one.
    #[arg(long)]
    force: bool,
    /// Points run at once (default: the number of cores / --threads-per-run).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Threads of each run (default 1: runs do not fight over cores).
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads_per_run: usize,
    /// Only this point (its number or name): what a Slurm array task runs.
    #[arg(long, value_name = "I|NAME")]
    point: Option<String>,
    /// No progress display; one line per finished point instead.
    #[arg(long)]
    no_progress: bool,
    /// Write a Slurm array script (one task per point not done) instead of running.
    #[arg(long)]
    slurm: bool,
    /// With --slurm: submit the script with sbatch.
    #[arg(long)]
    submit: bool,
    /// Slurm --time of each task (e.g. 02:00:00).
    #[arg(long, value_name = "T")]
    time: Option<String>,
    /// Slurm --mem of each task (e.g. 4G).
    #[arg(long, value_name = "M")]
    mem: Option<String>,
    /// Slurm --cpus-per-task (each run uses that many threads).
    #[arg(long, value_name = "N")]
    cpus: Option<usize>,
    /// Slurm --partition.
    #[arg(long, value_name = "P")]
    partition: Option<String>,
    /// At most this many array tasks at once.
    #[arg(long, value_name = "K")]
    max_running: Option<usize>,
    /// Measure one point (the smallest τ, or --point) for a few receivers and print the time
    /// and memory a point needs; runs nothing else.
    #[arg(long)]
    estimate: bool,
    /// Receivers of the --estimate run.
    #[arg(long, value_name = "N", default_value_t = 2)]
    estimate_receivers: usize,
    /// Stop every point after this many receivers (resumable; for tests).
    #[arg(long, hide = true)]
    stop_after: Option<usize>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// List the points: done, running, failed (with their last log lines), interrupted, missing.
    Status {
        /// The sweep's folder.
        dir: PathBuf,
        /// Log lines shown per failed or interrupted point.
        #[arg(long, default_value_t = 5)]
        lines: usize,
    },
    /// Merge the finished points: sweep.json, sweep.csv, pareto.svg, roc.svg, sweep.html.
    Collect {
        /// The sweep's folder.
        dir: PathBuf,
        /// A known circuit (JSON) for the ROC curve (default: the sweep file's known_circuit).
        #[arg(long, value_name = "CIRCUIT_JSON")]
        known: Option<PathBuf>,
        /// Which list of the known-circuit file (default: by the ablation).
        #[arg(long, value_name = "KEY")]
        known_key: Option<String>,
    },
}

/// The threads each run of this command should use (set before any tensor work).
pub fn threads_per_run(a: &SweepArgs) -> usize {
    a.threads_per_run.max(1)
}

/// Progress of a local sweep: one bar (points done), the running points, an ETA.
struct Display {
    bar: ProgressBar,
    points_dir: PathBuf,
    lines: bool,
    jobs: usize,
    total: usize,
    state: Mutex<DisplayState>,
}

/// A running point's progress from the end of its `acdc.log` (`step A/B …` lines).
fn step_progress(log: &Path) -> Option<(usize, usize)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(8192))).ok()?;
    let mut buf = String::new();
    f.take(8192).read_to_string(&mut buf).ok()?;
    buf.lines().rev().find_map(|l| {
        let rest = l.split("] ").nth(1)?;
        let rest = rest
            .strip_prefix("step ")
            .or_else(|| rest.strip_prefix("resumed at step "))?;
        let (a, b) = rest.split_whitespace().next()?.split_once('/')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    })
}

#[derive(Default)]
struct DisplayState {
    running: Vec<(String, Instant)>,
    finished: usize,
    seconds: f64,
    ended: usize,
}

fn dur(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Display {
    fn new(points_dir: PathBuf, total: usize, jobs: usize, quiet: bool) -> Display {
        let tty = std::io::stderr().is_terminal();
        let bar = if quiet || !tty {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
        };
        if let Ok(style) = ProgressStyle::default_bar()
            .template("[{elapsed_precise}] {bar:25} {pos}/{len} points · {msg}")
        {
            bar.set_style(style);
        }
        Display {
            bar,
            points_dir,
            lines: quiet || !tty,
            jobs,
            total,
            state: Mutex::new(DisplayState::default()),
        }
    }

    /// The message: ETA and the running points with their steps and time so far.
    fn refresh(&self) {
        let Ok(s) = self.state.lock() else { return };
        let now = Instant::now();
        let steps: Vec<Option<(usize, usize)>> = s
            .running
            .iter()
            .map(|(n, _)| step_progress(&self.points_dir.join(n).join("acdc.log")))
            .collect();
        let eta = if s.finished == 0 {
            "ETA ?".to_string()
        } else {
            let avg = s.seconds / s.finished as f64;
            let waiting = self.total.saturating_sub(s.ended + s.running.len());
            // A running point has its share of steps left, else the average less its time.
            let left: f64 = waiting as f64 * avg
                + s.running
                    .iter()
                    .zip(&steps)
                    .map(|((_, t), st)| match st {
                        Some((a, b)) if *b > 0 => avg * (1.0 - *a as f64 / *b as f64),
                        _ => (avg - now.duration_since(*t).as_secs_f64()).max(0.0),
                    })
                    .sum::<f64>();
            format!("ETA {}", dur(left / self.jobs.max(1) as f64))
        };
        let mut run: Vec<String> = s
            .running
            .iter()
            .zip(&steps)
            .take(3)
            .map(|((n, t), st)| {
                let at = st.map_or(String::new(), |(a, b)| format!("step {a}/{b}, "));
                format!("{n} ({at}{})", dur(now.duration_since(*t).as_secs_f64()))
            })
            .collect();
        if s.running.len() > 3 {
            run.push(format!("+{} more", s.running.len() - 3));
        }
        self.bar
            .set_message(format!("{eta} · running: {}", run.join(", ")));
    }
}

impl Observer for Display {
    fn started(&self, _: usize, p: &Point) {
        if let Ok(mut s) = self.state.lock() {
            s.running.push((p.name.clone(), Instant::now()));
        }
        self.refresh();
    }

    fn ended(&self, index: usize, p: &Point, o: &Outcome) {
        let ended = {
            let Ok(mut s) = self.state.lock() else { return };
            s.running.retain(|(n, _)| n != &p.name);
            s.ended += 1;
            if let Outcome::Finished { seconds, .. } = o {
                s.finished += 1;
                s.seconds += seconds;
            }
            s.ended
        };
        let what = match o {
            Outcome::Finished {
                kept,
                total,
                seconds,
            } => format!("done in {seconds:.1}s, {kept} of {total} kept"),
            Outcome::AlreadyDone => "already done".into(),
            Outcome::Busy => "running in another process; skipped".into(),
            Outcome::Stopped => "stopped (resumable)".into(),
            Outcome::Failed(m) => format!("FAILED: {m}"),
        };
        let line = format!("[{ended}/{}] point {index} {}: {what}", self.total, p.name);
        if self.lines {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
        self.bar.inc(1);
        self.refresh();
    }
}

/// The sweep in --out for this command: made (or checked) from --config, or opened; and
/// whether its points were checked.
fn folder_for(a: &SweepArgs, out: &Path) -> Result<(SweepFolder, bool)> {
    match &a.config {
        Some(cfg) => {
            let plan = SweepFile::load_plan(cfg)?;
            let text = circuitscope::error::read_to_string(cfg)?;
            let fresh = !out.join(sweep::folder::MANIFEST).exists() || a.force;
            if fresh {
                // Every point checked before anything is written or runs.
                local::check_points(&plan.points)?;
            }
            let f = SweepFolder::create_or_check(
                out,
                &plan,
                &text,
                a.resume || a.point.is_some() || a.slurm,
                a.force,
            )?;
            Ok((f, fresh))
        }
        None if a.resume || a.point.is_some() || a.slurm => Ok((SweepFolder::open(out)?, false)),
        None => bail!(
            "acdc sweep needs --config SWEEP.ron --out DIR to start a sweep, or --out DIR \
             --resume to finish one (see acdc sweep --help)"
        ),
    }
}

fn run_sweep(a: &SweepArgs) -> Result<()> {
    if a.jobs == Some(0) {
        bail!(
            "--jobs 0: at least one point must run at a time; give --jobs 1 or more (the \
             default is the number of cores, {} here)",
            circuitscope::threads::available_cores()
        );
    }
    if a.submit && !a.slurm {
        bail!("--submit goes with --slurm (it submits the written array script with sbatch)");
    }
    let Some(out) = &a.out else {
        bail!(
            "acdc sweep needs --out DIR (the sweep's folder); e.g. acdc sweep --config \
             configs/sweeps/toy-induction-tau.ron --out runs/sweep"
        );
    };
    if a.estimate {
        return estimate_point(a, out);
    }
    let (folder, checked) = folder_for(a, out)?;
    if a.slurm {
        return write_slurm(a, &folder);
    }
    if let Some(which) = &a.point {
        let i = folder.manifest.plan.point_index(which)?;
        let p = &folder.points()[i];
        eprintln!("point {i} {} in {}", p.name, folder.point_dir(p).display());
        let o = local::run_point(&folder, i, a.stop_after, true);
        let mem = folder
            .time(p)
            .and_then(|t| t.peak_rss_mib)
            .map_or(String::new(), |m| format!(", peak memory {m:.0} MiB"));
        match &o {
            Outcome::Finished {
                kept,
                total,
                seconds,
            } => eprintln!("point {i}: done in {seconds:.1}s, {kept} of {total} kept{mem}"),
            Outcome::AlreadyDone => eprintln!("point {i}: already done"),
            Outcome::Busy => eprintln!("point {i}: another process runs it; nothing to do"),
            Outcome::Stopped => eprintln!("point {i}: stopped (resumable){mem}"),
            Outcome::Failed(_) => {}
        }
        return report_outcomes(&folder, &[(i, o)]);
    }
    run_here(
        &folder,
        a.jobs,
        threads_per_run(a),
        !checked,
        a.no_progress,
        a.stop_after,
    )?;
    let all_done = folder
        .points()
        .iter()
        .all(|p| folder.state(p) == PointState::Done);
    if all_done {
        let c = collect::collect(&folder, None)?;
        c.write(&folder)?;
        print_collected(&folder, &c);
    } else {
        println!(
            "not every point is done; finish with: acdc sweep --out {} --resume",
            folder.dir.display()
        );
    }
    Ok(())
}

/// Run the points of `folder` that are not done, `jobs` at a time (default: cores / threads),
/// with one progress display; with `check`, checks them first (a changed model, a moved file).
pub fn run_here(
    folder: &SweepFolder,
    jobs: Option<usize>,
    threads: usize,
    check: bool,
    quiet: bool,
    stop_after: Option<usize>,
) -> Result<()> {
    let todo: Vec<Point> = folder
        .points()
        .iter()
        .filter(|p| folder.state(p) != PointState::Done)
        .cloned()
        .collect();
    if check {
        local::check_points(&todo)?;
    }
    let jobs = jobs.unwrap_or_else(|| (circuitscope::threads::available_cores() / threads).max(1));
    eprintln!(
        "sweep {}: {} points, {} to run, {jobs} at a time ({threads} thread each)",
        folder.dir.display(),
        folder.points().len(),
        todo.len(),
    );
    let display = Arc::new(Display::new(
        folder.dir.join("points"),
        todo.len(),
        jobs,
        quiet,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (d, stop) = (display.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                d.refresh();
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let res = local::run_local(
        folder,
        &LocalSettings {
            jobs,
            only: None,
            stop_after,
            record_memory: jobs == 1,
        },
        display.as_ref(),
    );
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    display.bar.finish_and_clear();
    report_outcomes(folder, &res?)
}

/// Print what happened; a failed point makes the command fail (exit 1).
fn report_outcomes(folder: &SweepFolder, outcomes: &[(usize, Outcome)]) -> Result<()> {
    let mut failed = vec![];
    let (mut done, mut stopped, mut busy) = (0, 0, 0);
    for (i, o) in outcomes {
        match o {
            Outcome::Finished { .. } | Outcome::AlreadyDone => done += 1,
            Outcome::Stopped => stopped += 1,
            Outcome::Busy => busy += 1,
            Outcome::Failed(m) => failed.push((*i, m.clone())),
        }
    }
    println!(
        "{done} points done, {stopped} stopped, {busy} running elsewhere, {} failed",
        failed.len()
    );
    if failed.is_empty() {
        return Ok(());
    }
    for (i, m) in &failed {
        eprintln!("point {i} {} failed: {m}", folder.points()[*i].name);
    }
    eprintln!(
        "see `acdc sweep status {}`; rerun the failed points with `acdc sweep --out {} --resume`",
        folder.dir.display(),
        folder.dir.display()
    );
    std::process::exit(1);
}

/// `--estimate`: measure one point in a scratch folder; the sweep's folder is not touched.
fn estimate_point(a: &SweepArgs, out: &Path) -> Result<()> {
    let plan = match &a.config {
        Some(cfg) => SweepFile::load_plan(cfg)?,
        None => SweepFolder::open(out)?.manifest.plan,
    };
    let i = match &a.point {
        Some(w) => plan.point_index(w)?,
        // The smallest τ keeps the most edges: the most work of the sweep's points.
        None => (0..plan.points.len())
            .min_by(|&x, &y| {
                plan.points[x]
                    .config
                    .tau
                    .total_cmp(&plan.points[y].config.tau)
            })
            .unwrap_or(0),
    };
    let p = &plan.points[i];
    local::check_points(std::slice::from_ref(p))?;
    let scratch = std::env::temp_dir().join(format!("acdc-estimate-{}", std::process::id()));
    eprintln!(
        "measuring point {i} {} for {} receivers…",
        p.name, a.estimate_receivers
    );
    let e = estimate::estimate(p, a.estimate_receivers, &scratch)?;
    println!("{e}");
    Ok(())
}

fn write_slurm(a: &SweepArgs, folder: &SweepFolder) -> Result<()> {
    let flags = SlurmResources {
        time: a.time.clone(),
        mem: a.mem.clone(),
        cpus: a.cpus,
        partition: a.partition.clone(),
        max_running: a.max_running,
        extra: vec![],
    };
    let res = folder.manifest.plan.slurm.overridden_by(&flags);
    let exe = std::env::current_exe()?;
    let s = slurm::write_script(folder, &res, &exe)?;
    if s.indices.is_empty() {
        println!(
            "every point of {} is done; nothing to submit. Merge with: acdc sweep collect {}",
            folder.dir.display(),
            folder.dir.display()
        );
        return Ok(());
    }
    let cmd = format!(
        "sbatch {}",
        slurm::shell_quote(&s.path.display().to_string())
    );
    println!(
        "wrote {} ({} array tasks, one per point not done)",
        s.path.display(),
        s.indices.len()
    );
    if a.submit {
        let msg = slurm::submit(&s.path)?;
        println!("{msg}");
    } else {
        println!("submit with:\n  {cmd}");
    }
    println!(
        "then: acdc sweep status {}   and when done: acdc sweep collect {}",
        folder.dir.display(),
        folder.dir.display()
    );
    Ok(())
}

fn status(dir: &Path, lines: usize) -> Result<()> {
    let folder = SweepFolder::open(dir)?;
    let mut counts = std::collections::BTreeMap::new();
    let mut details = vec![];
    println!(
        "{:>4}  {:<12} {:>11} {:>13} {:>9}  point",
        "#", "state", "steps", "kept", "seconds"
    );
    for (i, p) in folder.points().iter().enumerate() {
        let st = folder.state(p);
        *counts.entry(st.label()).or_insert(0usize) += 1;
        let circuit = std::fs::read_to_string(folder.point_dir(p).join("circuit.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let (steps, kept) = match &circuit {
            Some(v) => (
                format!("{}/{}", v["steps_done"], v["steps_total"]),
                format!("{}/{}", v["counts"]["kept"], v["counts"]["total"]),
            ),
            None => ("-".into(), "-".into()),
        };
        let secs = folder
            .time(p)
            .map_or("-".into(), |t| format!("{:.1}", t.seconds));
        println!(
            "{i:>4}  {:<12} {steps:>11} {kept:>13} {secs:>9}  {}",
            st.label(),
            p.name
        );
        if matches!(st, PointState::Failed(_) | PointState::Interrupted) {
            details.push((i, st));
        }
    }
    let summary: Vec<String> = ["done", "running", "failed", "interrupted", "missing"]
        .iter()
        .map(|k| format!("{} {k}", counts.get(k).copied().unwrap_or(0)))
        .collect();
    println!("{} points: {}", folder.points().len(), summary.join(", "));
    for (i, st) in details {
        let p = &folder.points()[i];
        println!();
        match st {
            PointState::Failed(m) => println!("point {i} {} failed: {m}", p.name),
            _ => println!(
                "point {i} {} was interrupted (killed, pre-empted or out of time); --resume \
                 continues it",
                p.name
            ),
        }
        for l in folder.last_log_lines(i, lines) {
            println!("  {l}");
        }
    }
    Ok(())
}

pub fn print_collected(folder: &SweepFolder, c: &collect::Collected) {
    println!(
        "merged {} finished points ({} not finished) into {}/sweep.json, sweep.csv, \
         pareto.svg{}, sweep.html",
        c.points.len(),
        c.missing.len(),
        folder.dir.display(),
        if c.roc.is_empty() { "" } else { ", roc.svg" }
    );
    println!("Pareto front (size, faithfulness):");
    for n in &c.pareto {
        if let Some(r) = c.points.iter().find(|r| &r.name == n) {
            println!("  {:>6} kept  {:.4}  {}", r.kept, r.faithfulness, r.name);
        }
    }
    for g in &c.roc {
        println!(
            "ROC AUC {:.4} ({}; {} true edges of {}; exactly the known circuit at {} τ)",
            g.auc,
            g.group,
            g.truth,
            g.edges,
            g.exact_at_tau.len()
        );
    }
}

fn collect_cmd(dir: &Path, known: &Option<PathBuf>, key: &Option<String>) -> Result<()> {
    let folder = SweepFolder::open(dir)?;
    let c = collect::collect(&folder, known.clone().map(|k| (k, key.clone())))?;
    c.write(&folder)?;
    print_collected(&folder, &c);
    Ok(())
}

/// `acdc sweep …`.
pub fn run(a: &SweepArgs) -> Result<()> {
    match &a.action {
        Some(Action::Status { dir, lines }) => status(dir, *lines),
        Some(Action::Collect {
            dir,
            known,
            known_key,
        }) => collect_cmd(dir, known, known_key),
        None => run_sweep(a),
    }
}
