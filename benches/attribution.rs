//! Cost of gradient attribution in forward-pass equivalents: the time of EAP, EAP-IG
//! (m = 5) and EAP-IG activations against one plain forward pass (logits at END) on the same
//! rows, on the shipped toy-ioi model (100 IOI prompts) and on a GPT-2-small-shaped model with
//! random weights (20 IOI prompts). Goals: EAP ≤ 3, EAP-IG ≤ m + 2.
//!
//! What the passes are: EAP runs the corrupted forward pass (the ablation), the clean forward
//! pass and one backward pass (the hand-written one, no weight gradients), then scores every
//! edge with one matrix product per block of receivers. EAP-IG runs a forward and a backward
//! pass at each of its m points (the clean point is one of them), so timed it costs at least
//! 2m + 1 passes: the goal m + 2 counts each point as one pass.
//!
//! Both are timed the same way, on the same model, rows, dtype and threads: CPU time of every
//! thread of the process (from `/proc/self/task/*/schedstat`, so that other processes on a
//! busy machine do not count; wall-clock time where /proc is missing), and wall-clock time
//! beside it. Each sample spans at least 0.25 s (the kernel may count CPU time in 4 ms ticks)
//! and is paired with a sample of the forward pass taken just before it; the ratios are the
//! medians of the pairs' ratios, so they hold when the machine's speed drifts. A second ratio
//! is against a forward pass with logits at every position (what TransformerLens's
//! `model(tokens)` computes).
//!
//! Run: `RAYON_NUM_THREADS=1 cargo bench --bench attribution` (`ATTRIBUTION_BENCH_GPT2=0`
//! skips the GPT-2 shape; `ATTRIBUTION_BENCH_METHODS=eap,eap-ig` times only those methods).

use candle_core::DType;
use circuitscope::acdc::Prepared;
use circuitscope::attribution::experiment::score;
use circuitscope::attribution::{Config, Method};
use circuitscope::data::TaskSpec;
use circuitscope::eval::{self, LogitsAt, Patches, RunOptions};
use circuitscope::model::random;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

#[global_allocator]
static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;

/// CPU seconds used so far by every thread of this process, if the system says.
fn cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

/// Run `f` `k` times, returning per run (CPU seconds or, without /proc, wall seconds; wall
/// seconds). The kernel may count CPU time in scheduler ticks (4 ms here), so a sample spans
/// several runs when one run is short.
fn timed<T>(k: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(f64, f64)> {
    let (c0, t0) = (cpu_seconds(), Instant::now());
    for _ in 0..k {
        f()?;
    }
    let wall = t0.elapsed().as_secs_f64() / k as f64;
    Ok(match (c0, cpu_seconds()) {
        (Some(a), Some(b)) => ((b - a) / k as f64, wall),
        _ => (wall, wall),
    })
}

/// Runs per sample so that a sample lasts at least 0.25 s (from one run of `seconds`).
fn runs_per_sample(seconds: f64) -> usize {
    ((0.25 / seconds.max(1e-6)).ceil() as usize).clamp(1, 50)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One forward pass of `prep`'s clean rows, with logits at the END rows or at every position.
fn forward(prep: &Prepared, logits: LogitsAt) -> anyhow::Result<()> {
    eval::run(
        &prep.model,
        &prep.tokens,
        &Patches::new(),
        RunOptions {
            logits,
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Medians over `reps` pairs of (a sample of `f`, a sample of the END-logits forward pass
/// just before it): `f`'s CPU and wall seconds, and its ratio to the forward pass in each.
/// Pairing keeps the ratio steady when the machine's speed drifts between samples.
fn paired(
    prep: &Prepared,
    reps: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<[f64; 4]> {
    let end = || LogitsAt::Rows(prep.end.clone());
    let kf = runs_per_sample(timed(1, || forward(prep, end()))?.1);
    let k = runs_per_sample(timed(1, &mut f)?.1);
    let mut cols: [Vec<f64>; 4] = Default::default();
    for _ in 0..reps {
        let (fc, fw) = timed(kf, || forward(prep, end()))?;
        let (c, w) = timed(k, &mut f)?;
        for (col, v) in cols.iter_mut().zip([c, w, c / fc, w / fw]) {
            col.push(v);
        }
    }
    Ok(cols.map(median))
}

fn bench(label: &str, base: &Config, reps: usize) -> anyhow::Result<()> {
    let prep = Prepared::new(&base.acdc())?;
    let [fwd, fwd_wall, ..] = paired(&prep, reps.max(5), || {
        forward(&prep, LogitsAt::Rows(prep.end.clone()))
    })?;
    let [_, _, all_ratio, _] = paired(&prep, reps.max(3), || forward(&prep, LogitsAt::All))?;
    let clock = if cpu_seconds().is_some() {
        "CPU time"
    } else {
        "wall clock"
    };
    println!(
        "{label}: {} rows × {} positions; one forward pass (logits at END) {:.1} ms ({clock}; \
         {:.1} ms wall); with logits at every position (TransformerLens's model(tokens)) \
         {all_ratio:.2} × that",
        prep.dataset.len(),
        prep.tokens.dims()[1],
        1e3 * fwd,
        1e3 * fwd_wall
    );
    let only = std::env::var("ATTRIBUTION_BENCH_METHODS").ok();
    for (method, steps) in [(Method::Eap, 1), (Method::EapIg, 5), (Method::EapIgAct, 5)] {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|m| m.trim() == method.cli_name()))
        {
            continue;
        }
        let mut c = base.clone();
        c.method = method;
        c.ig_steps = steps;
        let mut passes = (0, 0);
        let [t, wall, ratio, wall_ratio] = paired(&prep, reps, || {
            let out = score(&prep, &c, &mut |_, _| {})?;
            passes = (out.forwards, out.backwards);
            Ok(())
        })?;
        let goal = match method {
            Method::Eap | Method::Atp => "goal ≤ 3".to_string(),
            Method::EapIg => format!("goal ≤ m + 2 = {}", steps + 2),
            Method::EapIgAct => "no goal".to_string(),
        };
        println!(
            "  {:<10} m={steps}: {:>8.1} ms = {:>5.2} forward-pass equivalents ({} forward + {} \
             backward passes; {goal}); wall clock {:.1} ms = {:.2}; {:.2} against the \
             every-position forward pass",
            method.cli_name(),
            1e3 * t,
            ratio,
            passes.0,
            passes.1,
            1e3 * wall,
            wall_ratio,
            ratio / all_ratio
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let toy = Config::load(&root.join("configs/attribution/toy-ioi.ron"))?;
    let mut toy32 = toy.clone();
    toy32.dtype = circuitscope::acdc::Precision::F32;
    bench("toy-ioi (f32)", &toy32, 5)?;

    if std::env::var("ATTRIBUTION_BENCH_GPT2").as_deref() != Ok("0") {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("gpt2-random");
        std::fs::create_dir_all(&dir)?;
        let cfg = random::gpt2_small_config();
        let w = random::random_weights(&cfg, 0, DType::F32)?;
        let tensors: HashMap<String, candle_core::Tensor> = w.to_hf_gpt2()?.into_iter().collect();
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
        std::fs::write(
            dir.join("config.json"),
            r#"{"model_type":"gpt2","n_embd":768,"n_head":12,"n_layer":12,"n_positions":1024,"vocab_size":50257}"#,
        )?;
        std::fs::copy(
            root.join("models/gpt2-tokenizer/tokenizer.json"),
            dir.join("tokenizer.json"),
        )?;
        let task = TaskSpec::from_ron(
            "Ioi(prompt_type: Abba, templates: 1, n: 20, seed: 0, prepend_bos: false, flip: \
             \"ABB->XYZ, BAB->XYZ\")",
            "bench",
        )?;
        let mut c = Config::new(&dir.display().to_string(), task);
        c.dtype = circuitscope::acdc::Precision::F32;
        bench("GPT-2-small shape, random weights (f32)", &c, 1)?;
    }
    Ok(())
}
