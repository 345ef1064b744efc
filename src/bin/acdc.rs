//! `acdc`: automatic circuit discovery (the reference's greedy edge pruning), with
//! checkpoints, exact resume, progress and circuit diagrams.

use anyhow::Result;
use circuitscope::acdc::experiment::{self, RunSettings};
use circuitscope::acdc::{self, Ablation, Config, Order, Overrides, Precision, Prepared};
use circuitscope::metric::Metric;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;

#[path = "acdc/sweep.rs"]
mod sweep;

#[global_allocator]
static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;

const EXAMPLE: &str = "Examples:
  acdc --config configs/acdc/toy-ioi.ron --out runs/toy-ioi
  acdc --config configs/acdc/toy-ioi.ron --out runs/t2 --tau 0.02 --metric logit-diff --dtype f64
  acdc --resume runs/toy-ioi        # continue a run that was stopped or killed
  acdc --show runs/toy-ioi          # the circuit as plain lines (kept edges, metrics)
  acdc --config configs/acdc/toy-induction.ron --out runs/roc \
       --roc models/toy-induction/CIRCUIT.json --taus=-6:0:31   # ROC AUC over a τ sweep
  acdc sweep --config configs/sweeps/toy-induction-tau.ron --out runs/sweep   # see acdc sweep --help

The folder gets circuit.json (kept edges with the metric change measured when each was tested),
circuit.dot and circuit.svg (the diagram), acdc.log and checkpoint.json, rewritten after every
receiver. Set RUST_LOG=info for per-receiver log lines on stderr.";

/// Automatic circuit discovery: prune a model's edge graph greedily, as the reference ACDC does.
#[derive(Parser, Debug)]
#[command(
    name = "acdc",
    version,
    about,
    after_help = EXAMPLE,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The run's config (RON, see configs/acdc/).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in this folder (its saved config.ron is used).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Overwrite another run's results in --out.
    #[arg(long)]
    force: bool,
    /// Threshold τ > 0.
    #[arg(long, allow_negative_numbers = true)]
    tau: Option<f64>,
    /// Metric: kl, logit-diff, prob-diff, nll, prob, norm-logit-diff.
    #[arg(long)]
    metric: Option<String>,
    /// Ablation: corrupted, resample (another row), zero, mean (per template), mean-all.
    #[arg(long)]
    ablation: Option<String>,
    /// Number of examples.
    #[arg(long)]
    n: Option<usize>,
    /// Seed of the random parent order.
    #[arg(long)]
    seed: Option<u64>,
    /// Parent order: normal (the reference's), reverse, random.
    #[arg(long)]
    order: Option<String>,
    /// Model: a folder, a shipped model name, or a Hugging Face id in the local cache.
    #[arg(long)]
    model: Option<String>,
    /// f32 (default), f64, or checked (float32 speed with the decisions of f64).
    #[arg(long)]
    dtype: Option<String>,
    /// Prune whole heads and MLPs instead of edges.
    #[arg(long)]
    nodes: bool,
    /// Do not count the q/k/v input → head edges (AutoCircuit's and EAP-IG's graph).
    #[arg(long)]
    no_split_qkv: bool,
    /// Compare |Δ| with τ.
    #[arg(long)]
    abs_value_threshold: bool,
    /// Candidate edges evaluated per pass (speculative batching).
    #[arg(long)]
    batch: Option<usize>,
    /// Stop cleanly after this many receivers (resume later with --resume).
    #[arg(long, value_name = "N")]
    stop_after: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Worker threads (sets RAYON_NUM_THREADS; results do not depend on it). Small models run
    /// fastest on 1.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Evaluate naively (one full forward pass per edge), for comparisons.
    #[arg(long, hide = true)]
    naive: bool,
    /// Print the circuit in DIR as plain lines (kept edges, counts, metrics) and exit.
    #[arg(long, value_name = "DIR")]
    show: Option<PathBuf>,
    /// ROC of the edge decisions against a known circuit (a JSON list of edges): sweep τ over
    /// --taus and write roc.json into --out.
    #[arg(long, value_name = "CIRCUIT_JSON")]
    roc: Option<PathBuf>,
    /// Which list of the known-circuit file to compare with (default: `edges_resample` for
    /// resample ablation, `edges_second_copy` for corrupted, `edges` otherwise).
    #[arg(long, value_name = "KEY")]
    roc_key: Option<String>,
    /// The τ values of --roc: LO:HI:N, N values evenly spaced in log10 from 10^LO to 10^HI.
    #[arg(long, default_value = "-6:0:31", allow_hyphen_values = true)]
    taus: String,
    /// Memory limit for the size checks made before anything is allocated (e.g. 64G; default:
    /// this machine's memory).
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Many ACDC runs from a sweep file (τ grids, metrics, ablations, seeds, sizes, configs),
    /// here in parallel or as a Slurm array; `sweep status DIR`, `sweep collect DIR`.
    Sweep(sweep::SweepArgs),
}

fn overrides(a: &Args) -> Result<Overrides> {
    Ok(Overrides {
        model: a.model.clone(),
        n: a.n,
        metric: a.metric.as_deref().map(str::parse::<Metric>).transpose()?,
        ablation: a
            .ablation
            .as_deref()
            .map(str::parse::<Ablation>)
            .transpose()?,
        tau: a.tau,
        order: a.order.as_deref().map(str::parse::<Order>).transpose()?,
        seed: a.seed,
        dtype: a
            .dtype
            .as_deref()
            .map(str::parse::<Precision>)
            .transpose()?,
        nodes: a.nodes,
        no_split_qkv: a.no_split_qkv,
        abs_value_threshold: a.abs_value_threshold,
        batch: a.batch,
    })
}

fn show(dir: &std::path::Path) -> Result<()> {
    let path = dir.join("circuit.json");
    let text = circuitscope::error::read_to_string(&path)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a circuit.json ({e})", path.display()))?;
    print!("{}", acdc::output::summary_text(&v));
    Ok(())
}

/// `--roc`: a τ sweep of the config (each τ an ordinary run folder under `--out/points/`, run
/// in parallel and resumable), merged into `roc.json` and the sweep's report.
fn roc(a: &Args, truth_path: &std::path::Path) -> Result<()> {
    use circuitscope::sweep::{self as sw, Grid, SweepFolder, TauAxis};
    let (Some(cfg_path), Some(out)) = (&a.config, &a.out) else {
        anyhow::bail!("--roc needs --config FILE and --out DIR");
    };
    let taus = TauAxis::parse_range(&a.taus, "--taus")?.values();
    if taus.is_empty() {
        anyhow::bail!("--taus {}: N must be at least 1 (e.g. -6:0:31)", a.taus);
    }
    // Before the sweep: a file in the way would only show when roc.json is written.
    circuitscope::error::check_output_dir(out, "--out")?;
    let roc_path = out.join("roc.json");
    if roc_path.exists() && !a.force {
        anyhow::bail!(
            "{} exists; choose another --out or pass --force",
            roc_path.display()
        );
    }
    let config = acdc::load_config(cfg_path, &overrides(a)?)?;
    if config.level == acdc::Level::Nodes {
        anyhow::bail!("--roc works on edges; drop --nodes");
    }
    let source = format!(
        "acdc --config {} --roc {} --taus={}",
        cfg_path.display(),
        truth_path.display(),
        a.taus
    );
    let plan = Grid::taus(config.clone(), taus).expand(
        &source,
        Some(truth_path.to_path_buf()),
        a.roc_key.clone(),
        Default::default(),
    )?;
    let fresh = !out.join(sw::folder::MANIFEST).exists() || a.force;
    if fresh {
        sw::local::check_points(&plan.points)?;
    }
    let text = format!("// {source}\n// with the config:\n{}", config.to_ron());
    // An interrupted --roc continues: the finished thresholds are kept.
    let folder = SweepFolder::create_or_check(out, &plan, &text, true, a.force)?;
    let threads = a.threads.unwrap_or(1).max(1);
    sweep::run_here(&folder, None, threads, !fresh, a.no_progress, None)?;
    let c = sw::collect(&folder, None)?;
    c.write(&folder)?;
    let Some(g) = c.roc.first() else {
        anyhow::bail!("internal: no ROC curve was computed");
    };
    let points: Vec<serde_json::Value> = g
        .points
        .iter()
        .map(|(t, k, fpr, tpr)| serde_json::json!({"tau": t, "kept": k, "fpr": fpr, "tpr": tpr}))
        .collect();
    let json = serde_json::json!({
        "config": config,
        "truth_file": truth_path.display().to_string(),
        "truth_key": g.key,
        "truth": g.truth,
        "edges": g.edges,
        "auc": g.auc,
        "exact_at_tau": g.exact_at_tau,
        "points": points,
    });
    circuitscope::error::write_atomic(&roc_path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    for (t, k, fpr, tpr) in &g.points {
        println!("tau {t:.3e}: {k} kept, FPR {fpr:.4}, TPR {tpr:.4}");
    }
    println!(
        "ROC AUC {:.4} over {} thresholds ({} true edges of {}); exactly the true circuit at \
         {} of them; written to {} (the runs: {}/points/, report: {}/sweep.html)",
        g.auc,
        g.points.len(),
        g.truth,
        g.edges,
        g.exact_at_tau.len(),
        roc_path.display(),
        out.display(),
        out.display()
    );
    Ok(())
}

/// The run's config, its folder, and whether it resumes (from `--resume` or `--config` and
/// `--out`, with the overrides `o`).
fn config_and_folder(a: &Args, o: &Overrides) -> Result<(Config, PathBuf, bool)> {
    Ok(match (&a.resume, &a.out) {
        (Some(dir), out) => {
            if let Some(out) = out {
                if out != dir {
                    anyhow::bail!(
                        "--resume {} and --out {} name different folders; --resume continues \
                         the run in its own folder, so give only --resume",
                        dir.display(),
                        out.display()
                    );
                }
            }
            let saved = experiment::saved_config(dir)?;
            let given = match &a.config {
                Some(p) => Some(acdc::load_config(p, o)?),
                None if o.any() => {
                    let mut c = saved.clone();
                    c.apply(o)?;
                    Some(c)
                }
                None => None,
            };
            if let Some(g) = given {
                experiment::check_same_config(dir, &saved, &g)?;
            }
            (saved, dir.clone(), true)
        }
        (None, Some(out)) => {
            let Some(p) = &a.config else {
                anyhow::bail!(
                    "--config FILE is needed to start a run (e.g. --config \
                     configs/acdc/toy-ioi.ron); to continue one, use --resume DIR"
                );
            };
            (acdc::load_config(p, o)?, out.clone(), false)
        }
        (None, None) => anyhow::bail!(
            "give --config FILE --out DIR to start a run, or --resume DIR to continue one \
             (see --help)"
        ),
    })
}

fn run(a: &Args) -> Result<()> {
    if let Some(Command::Sweep(s)) = &a.command {
        return sweep::run(s);
    }
    if let Some(dir) = &a.show {
        return show(dir);
    }
    if let Some(t) = &a.roc {
        return roc(a, t);
    }
    let o = overrides(a)?;
    let (config, out, resume) = config_and_folder(a, &o)?;
    let settings = RunSettings {
        out: out.clone(),
        force: a.force,
        resume,
        stop_after: a.stop_after,
        naive: a.naive,
    };
    // Refuse a bad output folder before loading anything.
    experiment::prepare_out(&settings)?;
    let prep = Prepared::new(&config)?;
    let unit = match config.level {
        acdc::Level::Edges => "edges",
        acdc::Level::Nodes => "nodes",
    };
    let bar = progress_bar(!a.no_progress, unit);
    let s = experiment::run_with_progress(&prep, &settings, &mut |p| {
        if p.done {
            bar.finish_and_clear();
            return;
        }
        if bar.length() != Some(p.total as u64) {
            bar.set_length(p.total as u64);
            bar.set_position(p.decided as u64);
            bar.reset_eta();
        }
        bar.set_position(p.decided as u64);
        bar.set_message(p.step.clone());
    })?;
    print_summary(&s, unit, &out);
    Ok(())
}

/// The run's last lines: its result, or where it stopped and how to continue.
fn print_summary(s: &experiment::Summary, unit: &str, out: &std::path::Path) {
    if s.finished {
        println!(
            "finished: {} of {} {unit} kept; metric {} (clean {}); {:.1}s this session",
            s.kept,
            s.total,
            s.metric.map_or("-".into(), |m| format!("{m:.6e}")),
            s.clean_metric,
            s.seconds
        );
    } else {
        println!(
            "stopped at step {}/{} ({} of {} {unit} kept so far); continue with: acdc --resume {}",
            s.steps_done,
            s.steps_total,
            s.kept,
            s.total,
            out.display()
        );
    }
    println!(
        "outputs: {}/circuit.json, circuit.dot, circuit.svg, acdc.log",
        out.display()
    );
}

/// A progress bar on stderr (hidden with `--no-progress`): units decided, rate, ETA, step.
fn progress_bar(show: bool, unit: &str) -> ProgressBar {
    let bar = if show {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::default_bar().template(&format!(
        "[{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} · {{rate}} · ETA {{eta}} · {{msg}}"
    )) {
        bar.set_style(style.with_key(
            "rate",
            |st: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1}/s", st.per_sec());
            },
        ));
    }
    bar
}

fn main() {
    let args = Args::parse();
    // Before any tensor work: the thread pools read it once, when they start. Sweeps (and
    // --roc, a τ sweep) run several runs at once, each on its own threads (default one).
    let threads = match &args.command {
        Some(Command::Sweep(s)) => Some(sweep::threads_per_run(s)),
        None if args.roc.is_some() => Some(args.threads.unwrap_or(1)),
        None => args.threads,
    };
    if let Some(n) = threads {
        circuitscope::threads::set_threads_per_run(n);
    }
    if let Some(m) = &args.max_memory {
        // Before any work: the library's size checks read it.
        std::env::set_var(circuitscope::memory::LIMIT_ENV, m);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if let Err(e) = run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
