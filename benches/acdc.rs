//! ACDC sweep time against the reference implementation (`TLACDCExperiment`, float64, one
//! thread), same data, τ and order, same kept edges.
//!
//! 1. Each shipped toy (`models/toy-ioi`, `models/toy-induction`) with its shipped config: a
//!    whole sweep with `Checked` precision (float32 one-edge runs, float64 re-checks near τ:
//!    the decisions of float64), with `F64` (one full patched run per edge, as before) and
//!    with `F32`; the kept edges must be the same; then the reference on the same tokens.
//! 2. A GPT-2-small-shaped model with random weights (12 layers × 12 heads, d_model 768,
//!    vocabulary 50257; 20 prompts × 16 tokens, KL, corrupted ablation, τ 0.01), written to a
//!    model folder so that the reference loads the same weights: the first receivers of a
//!    sweep, ours against the reference's over the same number of tested edges (time per
//!    tested edge). `F32` and `Checked` each run in a process of their own (this bench started
//!    again), which prints its peak resident memory (`VmHWM`) after loading, after the
//!    evaluator's set-up and at the end, and the peak of live heap bytes beside it.
//!
//! Times are wall seconds of the sweep alone (set-up excluded), single-threaded
//! (`RAYON_NUM_THREADS=1`, as the reference's `torch.set_num_threads(1)`); run on an otherwise
//! idle machine. The reference runs when its checkout and Python are found: `ACDC_REFERENCE`
//! (default `/tmp/acdc-ref`, a checkout of ArthurConmy/Automatic-Circuit-Discovery) and
//! `ACDC_PYTHON` (default `~/.venvs/circuitscope/bin/python`); see `scripts/acdc_reference.py`.
//!
//! Run: `RAYON_NUM_THREADS=1 cargo bench --bench acdc` (`BENCH_GPT2=0` skips part 2;
//! `BENCH_GPT2_EDGES=N` reference edges in part 2, default 160).

use candle_core::DType;
use circuitscope::acdc::{self, Config, Precision, Prepared, Sweep, SweepState};
use circuitscope::data::{Dataset, Example, InductionOptions, TaskSpec};
use circuitscope::metric::Metric;
use circuitscope::model::{random, Model};
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The binaries' allocator, counting the bytes live at once (the peak of the live set, to
/// compare with the peak resident memory).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static LIVE_PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the binaries' allocator; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        LIVE_PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { circuitscope::allocator::Allocator.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { circuitscope::allocator::Allocator.dealloc(ptr, layout) }
    }
}

/// The largest number of heap bytes live at once so far, in MiB.
fn live_peak_mb() -> f64 {
    LIVE_PEAK.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Sweep `prep` for at most `max_tested` tested edges (whole receivers); wall seconds, tested
/// edges, state, float64 re-evaluations.
fn sweep(prep: &Prepared, max_tested: Option<usize>) -> (f64, usize, SweepState, u64) {
    let sweep = Sweep::new(&prep.model.cfg, prep.sweep_options());
    let mut ev = prep.evaluator().unwrap();
    if std::env::var(CHILD_ENV).is_ok() {
        println!(
            "  set-up: live {:.0} MiB, live peak {:.0} MiB, peak RSS {:.0} MiB",
            LIVE.load(Ordering::Relaxed) as f64 / 1048576.0,
            live_peak_mb(),
            circuitscope::memory::peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
    let mut s = sweep.initial_state();
    let mut tested = 0usize;
    let t = Instant::now();
    while !sweep.done(&s) && max_tested.is_none_or(|m| tested < m) {
        sweep
            .step(&mut s, &mut ev, &mut |e| {
                if let acdc::sweep::Event::Tested { .. } = e {
                    tested += 1
                }
            })
            .unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let rechecks = if prep.config.dtype == Precision::Checked {
        ev.full_evaluations
    } else {
        0
    };
    (secs, tested, s, rechecks)
}

fn kept_names(prep: &Prepared, s: &SweepState) -> Vec<String> {
    let sweep = prep.sweep();
    let mut v: Vec<String> = sweep
        .kept_edges(s)
        .iter()
        .map(|(e, _)| e.to_string())
        .collect();
    v.sort();
    v
}

/// What the reference measured.
struct Reference {
    seconds: f64,
    tested: usize,
    kept: Vec<String>,
}

/// Run the reference on `model_dir` with our tokens (the ablation's tokens as its `ref_ds`).
fn reference(prep: &Prepared, model_dir: &Path, max_tested: Option<usize>) -> Option<Reference> {
    let home = std::env::var("HOME").unwrap_or_default();
    let checkout = std::env::var("ACDC_REFERENCE").unwrap_or_else(|_| "/tmp/acdc-ref".into());
    let python = std::env::var("ACDC_PYTHON")
        .unwrap_or_else(|_| format!("{home}/.venvs/circuitscope/bin/python"));
    if !Path::new(&checkout).join("acdc").is_dir() || !Path::new(&python).exists() {
        println!("  reference: not run (set ACDC_REFERENCE and ACDC_PYTHON)");
        return None;
    }
    let p = prep.tokens.dim(1).unwrap();
    if prep.end.iter().any(|&e| e + 1 != p) {
        println!("  reference: not run (its KL reads the last position; answers are not last)");
        return None;
    }
    let rows = |t: &candle_core::Tensor| t.to_vec2::<u32>().unwrap();
    let spec = serde_json::json!({
        "model": model_dir.display().to_string(),
        "tokens": rows(&prep.tokens),
        "ref_tokens": rows(prep.source_tokens.as_ref().expect("ablation tokens")),
        "tau": prep.config.tau,
        "max_tested": max_tested,
    });
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    let out_path = dir.path().join("out.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let status = std::process::Command::new(&python)
        .arg(root().join("scripts/acdc_reference.py"))
        .arg("--reference")
        .arg(&checkout)
        .arg("--bench")
        .arg(&spec_path)
        .arg("--out")
        .arg(&out_path)
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .status()
        .ok()?;
    if !status.success() {
        println!("  reference: failed ({status})");
        return None;
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).ok()?).ok()?;
    Some(Reference {
        seconds: v["seconds"].as_f64()?,
        tested: v["tested"].as_u64()? as usize,
        kept: v["kept"]
            .as_array()?
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
    })
}

fn toy(name: &str) {
    let dir = root().join("models").join(name);
    let cfg_path = root().join(format!("configs/acdc/{name}.ron"));
    if !dir.is_dir() || !cfg_path.is_file() {
        println!("{name}: not shipped, skipped");
        return;
    }
    let mut config = Config::load(&cfg_path).unwrap();
    config.model = dir.display().to_string();
    let mut runs = vec![];
    for dtype in [Precision::Checked, Precision::F64, Precision::F32] {
        let mut c = config.clone();
        c.dtype = dtype;
        let prep = Prepared::new(&c).unwrap();
        let (secs, tested, s, rechecks) = sweep(&prep, None);
        runs.push((dtype, prep, secs, tested, s, rechecks));
    }
    let (_, prep, secs, tested, s, rechecks) = &runs[0];
    println!(
        "{name}: {} layers × {} heads, d_model {}, {} prompts × {} tokens, {} edges, tau {}",
        prep.model.cfg.n_layers,
        prep.model.cfg.n_heads,
        prep.model.cfg.d_model,
        prep.dataset.len(),
        prep.tokens.dim(1).unwrap(),
        prep.sweep().units.len(),
        config.tau
    );
    let kept = kept_names(prep, s);
    for (dtype, p, t, n, st, _) in &runs {
        println!(
            "  ours {dtype:?}: {t:.3} s for {n} tested edges ({:.2} ms/edge); {} kept; same \
             kept edges as Checked: {}",
            t / *n as f64 * 1e3,
            kept_names(p, st).len(),
            kept_names(p, st) == kept
        );
    }
    println!("  Checked re-evaluated {rechecks} circuits in float64 for {tested} tested edges");
    if let Some(r) = reference(prep, &dir, None) {
        println!(
            "  reference: {:.2} s for {} tested edges; same kept edges: {}",
            r.seconds,
            r.tested,
            r.kept == kept
        );
        println!(
            "  RATIO {name}: reference / ours (Checked) = {:.1}x; reference / ours (F64 full \
             runs) = {:.1}x",
            r.seconds / secs,
            r.seconds / runs[1].2
        );
    }
}

/// The GPT-2-small-shaped random model's folder, written on first use.
fn gpt2_model_dir(dir: &Path) {
    if !dir.join("model.safetensors").is_file() {
        let cfg = random::gpt2_small_config();
        let w = random::random_weights(&cfg, 0, DType::F32).unwrap();
        let tok =
            std::fs::read_to_string(root().join("models/gpt2-tokenizer/tokenizer.json")).unwrap();
        circuitscope::train::export::write_model_dir(dir, &cfg, &w.to_hf_gpt2().unwrap(), &tok)
            .unwrap();
    }
}

fn gpt2_dataset() -> Dataset {
    let (n, p) = (20usize, 16usize);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let examples: Vec<Example> = (0..n)
        .map(|_| {
            let t: Vec<u32> = (0..p).map(|_| rng.random_range(0..50000)).collect();
            let c: Vec<u32> = (0..p).map(|_| rng.random_range(0..50000)).collect();
            Example {
                prompt: String::new(),
                positions: [("END".to_string(), p - 1)].into_iter().collect(),
                answer: vec![t[0]],
                wrong: vec![t[1]],
                features: BTreeMap::new(),
                corrupted_prompt: Some(String::new()),
                corrupted_tokens: Some(c),
                tokens: t,
            }
        })
        .collect();
    Dataset {
        task: "random".into(),
        examples,
    }
}

fn gpt2_dir() -> PathBuf {
    std::env::temp_dir().join("circuitscope-bench-gpt2-random")
}

fn gpt2_config(dtype: Precision) -> Config {
    Config {
        model: gpt2_dir().display().to_string(),
        task: TaskSpec::Induction(InductionOptions::default()),
        n: None,
        metric: Metric::Kl,
        ablation: acdc::Ablation::Corrupted,
        tau: 0.01,
        order: acdc::Order::Normal,
        indices_order: None,
        seed: 0,
        level: acdc::Level::Edges,
        split_qkv: true,
        abs_value_threshold: false,
        dtype,
        batch: 1,
    }
}

fn gpt2_edges() -> usize {
    std::env::var("BENCH_GPT2_EDGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(160)
}

/// The environment variable that makes this bench a child process measuring one precision.
const CHILD_ENV: &str = "CIRCUITSCOPE_ACDC_BENCH_CHILD";

/// In a child process: load the model folder in `dtype` (as `acdc` does), sweep the first
/// edges, print the time and the peak resident memory after each stage, and the line
/// `RESULT seconds tested` for the parent.
fn gpt2_child(dtype: Precision) {
    let mb = || circuitscope::memory::peak_rss_mib().unwrap_or(f64::NAN);
    let (model, screen_model) = acdc::load_models(&gpt2_config(dtype)).unwrap();
    let after_load = mb();
    let live_load = live_peak_mb();
    let mut prep = Prepared::from_parts(&gpt2_config(dtype), model, gpt2_dataset()).unwrap();
    prep.screen_model = screen_model;
    let (secs, tested, _, rechecks) = sweep(&prep, Some(gpt2_edges()));
    println!(
        "  ours {dtype:?}: {secs:.2} s for the first {tested} tested edges ({:.1} ms/edge, \
         {rechecks} float64 evaluations); peak RSS {:.0} MiB (after loading {after_load:.0} \
         MiB); peak of live heap {:.0} MiB (after loading {live_load:.0} MiB)",
        secs / tested as f64 * 1e3,
        mb(),
        live_peak_mb()
    );
    println!("RESULT {secs} {tested}");
}

/// Run [`gpt2_child`] in its own process (so that each peak is that precision's alone); echo
/// its lines; `(seconds, tested edges)`.
fn gpt2_in_child(dtype: Precision) -> Option<(f64, usize)> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .env(CHILD_ENV, format!("{dtype:?}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = None;
    for line in text.lines() {
        match line.strip_prefix("RESULT ") {
            Some(r) => {
                let mut it = r.split_whitespace();
                result = Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?));
            }
            None => println!("{line}"),
        }
    }
    if !out.status.success() {
        println!(
            "  ours {dtype:?}: failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    result
}

fn gpt2_shaped() {
    let dir = gpt2_dir();
    gpt2_model_dir(&dir);
    println!(
        "\nGPT-2-small-shaped random model ({}), 20 prompts × 16 tokens, KL, tau 0.01; each \
         precision in its own process",
        dir.display()
    );
    let ours32 = gpt2_in_child(Precision::F32);
    let checked = gpt2_in_child(Precision::Checked);
    let (Some((t32, n32)), Some((tc, nc))) = (ours32, checked) else {
        return;
    };
    let prep64 = Prepared::from_parts(
        &gpt2_config(Precision::F64),
        Model::load(&dir, DType::F64).unwrap(),
        gpt2_dataset(),
    )
    .unwrap();
    if let Some(r) = reference(&prep64, &dir, Some(gpt2_edges())) {
        let per = r.seconds / r.tested as f64;
        println!(
            "  reference: {:.1} s for the first {} tested edges ({:.1} ms/edge)",
            r.seconds,
            r.tested,
            per * 1e3
        );
        println!(
            "  RATIO gpt2-small-shaped (per tested edge, first receivers): reference / ours \
             (Checked) = {:.1}x; reference / ours (F32) = {:.1}x",
            per / (tc / nc as f64),
            per / (t32 / n32 as f64)
        );
    }
}

fn main() {
    if let Ok(d) = std::env::var(CHILD_ENV) {
        gpt2_child(d.parse::<Precision>().expect("the child's precision"));
        return;
    }
    println!(
        "threads: {} (the reference: 1)",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
    );
    toy("toy-ioi");
    toy("toy-induction");
    if std::env::var("BENCH_GPT2").as_deref() != Ok("0") {
        gpt2_shaped();
    }
}
