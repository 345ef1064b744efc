//! `acdc`: automatic circuit discovery (the reference's greedy edge pruning), with
//! checkpoints, exact resume, progress and circuit diagrams.

use anyhow::Result;
use circuitscope::acdc::experiment::{self, RunSettings};
use circuitscope::acdc::{self, Ablation, Config, Order, Overrides, Precision, Prepared};
use circuitscope::metric::Metric;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXAMPLE: &str = "Examples:
  acdc --config configs/acdc/toy-ioi.ron --out runs/toy-ioi
  acdc --config configs/acdc/toy-ioi.ron --out runs/t2 --tau 0.02 --metric logit-diff --dtype f64
  acdc --resume runs/toy-ioi        # continue a run that was stopped or killed
  acdc --show runs/toy-ioi          # the circuit as plain lines (kept edges, metrics)
  acdc --config configs/acdc/toy-induction.ron --out runs/roc \
       --roc models/toy-induction/CIRCUIT.json --taus=-6:0:31   # ROC AUC over a τ sweep

The folder gets circuit.json (kept edges with the metric change measured when each was tested),
circuit.dot and circuit.svg (the diagram), acdc.log and checkpoint.json, rewritten after every
receiver. Set RUST_LOG=info for per-receiver log lines on stderr.";

/// Automatic circuit discovery: prune a model's edge graph greedily, as the reference ACDC does.
#[derive(Parser, Debug)]
#[command(name = "acdc", version, about, after_help = EXAMPLE)]
struct Args {
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

fn roc(a: &Args, truth_path: &std::path::Path) -> Result<()> {
    let (Some(cfg_path), Some(out)) = (&a.config, &a.out) else {
        anyhow::bail!("--roc needs --config FILE and --out DIR");
    };
    let parts: Vec<&str> = a.taus.split(':').collect();
    let bad = || {
        anyhow::anyhow!(
            "--taus {}: expected LO:HI:N (e.g. -6:0:31 for 10^-6 … 1 in 31 steps)",
            a.taus
        )
    };
    let [lo, hi, n] = parts[..] else {
        return Err(bad());
    };
    let (lo, hi, n): (f64, f64, usize) = (
        lo.parse().map_err(|_| bad())?,
        hi.parse().map_err(|_| bad())?,
        n.parse().map_err(|_| bad())?,
    );
    if n == 0 {
        return Err(bad());
    }
    let roc_path = out.join("roc.json");
    if roc_path.exists() && !a.force {
        anyhow::bail!(
            "{} exists; choose another --out or pass --force",
            roc_path.display()
        );
    }
    let config = acdc::load_config(cfg_path, &overrides(a)?)?;
    let prep = Prepared::new(&config)?;
    let sweep = prep.sweep();
    let acdc::Units::Edges(graph) = &sweep.units else {
        anyhow::bail!("--roc works on edges; drop --nodes");
    };
    let key = a
        .roc_key
        .clone()
        .unwrap_or_else(|| acdc::roc::truth_key(&config.ablation).to_string());
    let truth = acdc::roc::read_truth(truth_path, &key, graph, &prep.model.cfg)?;
    let taus = acdc::roc::log_taus(lo, hi, n);
    let runs = acdc::roc::kept_sets(&prep, &taus)?;
    let curve = acdc::roc::curve(&runs, &truth, graph.len());
    let auc = acdc::roc::auc(&curve);
    let exact: Vec<f64> = runs
        .iter()
        .filter(|(_, k)| *k == truth)
        .map(|(t, _)| *t)
        .collect();
    let points: Vec<serde_json::Value> = runs
        .iter()
        .map(|(t, k)| {
            let (fpr, tpr) = acdc::roc::rates(k, &truth, graph.len());
            serde_json::json!({"tau": t, "kept": k.len(), "fpr": fpr, "tpr": tpr})
        })
        .collect();
    let json = serde_json::json!({
        "config": config,
        "truth_file": truth_path.display().to_string(),
        "truth_key": key,
        "truth": truth.len(),
        "edges": graph.len(),
        "auc": auc,
        "exact_at_tau": exact,
        "points": points,
    });
    std::fs::create_dir_all(out)?;
    circuitscope::error::write_atomic(&roc_path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    for p in &points {
        println!(
            "tau {:.3e}: {:>5} kept, FPR {:.4}, TPR {:.4}",
            p["tau"].as_f64().unwrap_or(0.0),
            p["kept"],
            p["fpr"].as_f64().unwrap_or(0.0),
            p["tpr"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "ROC AUC {auc:.4} over {n} thresholds ({} true edges of {}); exactly the true circuit at \
         {} of them; written to {}",
        truth.len(),
        graph.len(),
        exact.len(),
        roc_path.display()
    );
    Ok(())
}

fn run(a: &Args) -> Result<()> {
    if let Some(dir) = &a.show {
        return show(dir);
    }
    if let Some(t) = &a.roc {
        return roc(a, t);
    }
    let o = overrides(a)?;
    let (config, out, resume): (Config, PathBuf, bool) = match (&a.resume, &a.out) {
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
                Some(p) => Some(acdc::load_config(p, &o)?),
                None if o.any() => {
                    let mut c = saved.clone();
                    c.apply(&o)?;
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
            (acdc::load_config(p, &o)?, out.clone(), false)
        }
        (None, None) => anyhow::bail!(
            "give --config FILE --out DIR to start a run, or --resume DIR to continue one \
             (see --help)"
        ),
    };
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
    Ok(())
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
    if let Some(n) = args.threads {
        // Before any tensor work: the thread pools read it once, when they start.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
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
