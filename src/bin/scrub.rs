//! `scrub`: test a causal scrubbing hypothesis.

use anyhow::{Context, Result};
use circuitscope::scrub::{self, RunSettings, SamplesFile};
use clap::Parser;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;

/// Test a causal scrubbing hypothesis: resample inputs along the paths it names and report how
/// much of the model's behaviour it explains.
#[derive(Parser)]
#[command(
    name = "scrub",
    version,
    after_help = "Examples:\n  scrub --hypothesis hypotheses/toy/ioi-name-movers.ron\n  scrub --hypothesis hypotheses/nm.ron --model /path/to/gpt2 --seeds 5 --json nm.json\n  scrub --hypothesis hypotheses/nm.ron --model /path/to/gpt2-config-only --check"
)]
struct Args {
    /// The hypothesis file (RON).
    #[arg(long)]
    hypothesis: PathBuf,
    /// Override the hypothesis's model: a folder, a cached Hugging Face id, or a shipped model.
    #[arg(long)]
    model: Option<String>,
    /// Validate the hypothesis against the model's config.json and tokenizer.json, without weights.
    #[arg(long)]
    check: bool,
    /// Run with this many seeds (seed, seed + 1, …) and report the spread across them.
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every dataset's drawn row indices here.
    #[arg(long)]
    dump_samples: Option<PathBuf>,
    /// Replay row indices from a file written by --dump-samples instead of sampling.
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Write the result as plain `key value` lines (metrics as `metric NAME VALUE`), the
    /// format `scripts/repro-check` compares with its goldens.
    #[arg(long)]
    lines: Option<PathBuf>,
    /// Compute in f32 or f64.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Memory limit for the size checks made before anything is allocated (e.g. 64G; default:
    /// this machine's memory).
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,
}

fn main() {
    let args = Args::parse();
    // Several seeds run at once, one thread each (settled before any thread pool starts):
    // as many at a time as RAYON_NUM_THREADS (default: every core). The results are those of
    // a serial run.
    let jobs = (args.seeds > 1 || args.samples.is_some()).then(circuitscope::threads::requested);
    if jobs.is_some() {
        circuitscope::threads::set_threads_per_run(1);
    }
    if let Some(m) = &args.max_memory {
        // Before any work: the library's size checks read it.
        std::env::set_var(circuitscope::memory::LIMIT_ENV, m);
    }
    if let Err(e) = run(&args, jobs) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run(a: &Args, jobs: Option<usize>) -> Result<()> {
    if a.seeds == 0 {
        anyhow::bail!("--seeds 0: give at least 1 (the number of sampling seeds to run)");
    }
    let dtype = match a.dtype.as_str() {
        "f32" => candle_core::DType::F32,
        "f64" => candle_core::DType::F64,
        other => anyhow::bail!("--dtype {other}: expected f32 or f64"),
    };
    for (p, flag) in [
        (&a.json, "--json"),
        (&a.dump_samples, "--dump-samples"),
        (&a.lines, "--lines"),
    ] {
        if let Some(p) = p {
            circuitscope::error::check_output_file(p, flag)?;
        }
    }
    let prepared = scrub::prepare(&a.hypothesis, a.model.as_deref())?;
    let h = &prepared.hypothesis;
    if a.check {
        println!(
            "ok: {} — {} interpretation nodes, {} path states, model {} ({} layers × {} heads), \
             task {} with {} examples; estimated cost ≈ {:.2} forward passes + plain passes per distinct dataset",
            a.hypothesis.display(),
            h.nodes.len(),
            prepared.plan.states.len(),
            prepared.model_dir.display(),
            prepared.cfg.n_layers,
            prepared.cfg.n_heads,
            prepared.dataset.task,
            prepared.dataset.len(),
            prepared.plan.patched_cost(prepared.cfg.n_layers)
        );
        return Ok(());
    }
    let replay = match &a.samples {
        Some(p) => {
            let f: SamplesFile =
                circuitscope::json_file::read(p, |e| format!("not a samples file: {e}"))?;
            Some(f)
        }
        None => None,
    };
    let model = scrub::experiment::load_model(&prepared, dtype)?;
    let settings = RunSettings {
        seeds: a.seeds,
        replay,
    };
    let (res, samples) = match jobs {
        Some(j) => circuitscope::threads::pool(j, "seed")?
            .install(|| scrub::run(&prepared, &model, &settings))?,
        None => scrub::run(&prepared, &model, &settings)?,
    };
    print_summary(&res);
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&res)?;
        circuitscope::error::write_atomic(p, text.as_bytes()).context("writing --json")?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &a.lines {
        circuitscope::error::write_atomic(p, result_lines(&res).as_bytes())
            .context("writing --lines")?;
    }
    if let Some(p) = &a.dump_samples {
        let text = serde_json::to_string(&samples)?;
        circuitscope::error::write_atomic(p, text.as_bytes()).context("writing --dump-samples")?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn print_summary(r: &scrub::ScrubResult) {
    println!("hypothesis      {} ({})", r.hypothesis, r.file);
    println!("model           {}", r.model);
    println!(
        "task            {} — N = {}, seed {}, metric {}",
        r.task, r.n, r.seed, r.metric
    );
    println!("clean           {:>10.4} ± {:.4}", r.clean.mean, r.clean.se);
    println!(
        "scrubbed        {:>10.4} ± {:.4}",
        r.scrubbed.mean, r.scrubbed.se
    );
    println!(
        "baseline        {:>10.4} ± {:.4}   (everything resampled)",
        r.baseline.mean, r.baseline.se
    );
    match &r.loss_recovered_undefined {
        Some(why) => println!("loss recovered  undefined: {why}"),
        None => println!("loss recovered  {:>9.1}%", 100.0 * r.loss_recovered),
    }
    if r.seeds.len() > 1 && r.loss_recovered_undefined.is_none() {
        println!(
            "across {} seeds: scrubbed {:.4} ± {:.4}, loss recovered {:.1}% ± {:.1}%",
            r.seeds.len(),
            r.scrubbed_across_seeds.mean,
            r.scrubbed_across_seeds.se,
            100.0 * r.loss_recovered_across_seeds.mean,
            100.0 * r.loss_recovered_across_seeds.se
        );
    }
    println!(
        "cost            {:.2} forward-pass equivalents per seed, {:.2} s",
        r.forward_equivalents, r.wall_time_s
    );
}

/// The reproducible part of a result as `key value` lines (no wall time).
fn result_lines(r: &scrub::ScrubResult) -> String {
    let mut s = String::new();
    s.push_str(&format!("hypothesis {}\n", r.hypothesis));
    s.push_str(&format!(
        "task {}\nmetric-name {}\nn {}\nseed {}\n",
        r.task, r.metric, r.n, r.seed
    ));
    s.push_str(&format!(
        "hash model {}\nhash hypothesis {}\n",
        r.hashes.model, r.hashes.hypothesis
    ));
    s.push_str(&format!(
        "forward_equivalents {:.6}\n",
        r.forward_equivalents
    ));
    let mut m = |k: &str, v: f64| s.push_str(&format!("metric {k} {v:.9e}\n"));
    m("clean_mean", r.clean.mean);
    m("clean_se", r.clean.se);
    m("scrubbed_mean", r.scrubbed.mean);
    m("scrubbed_se", r.scrubbed.se);
    m("baseline_mean", r.baseline.mean);
    m("baseline_se", r.baseline.se);
    m("loss_recovered", r.loss_recovered);
    s
}
