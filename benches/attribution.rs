//! Cost of gradient attribution in forward-pass equivalents: the time of EAP, EAP-IG
//! (m = 5) and EAP-IG activations against one plain forward pass (logits at END) on the same
//! rows, on the shipped toy-ioi model (100 IOI prompts) and on a GPT-2-small-shaped model with
//! random weights (20 IOI prompts). Goals: EAP ≤ 3, EAP-IG ≤ m + 2 forward-pass equivalents
//! counted as passes (each gradient step is one forward and one backward pass; the
//! hand-written backward computes no weight gradients).
//!
//! Both are timed the same way, on the same model, rows, dtype and threads: the medians of the
//! CPU time of every thread of the process (from `/proc/self/task/*/schedstat`, so that other
//! processes on a busy machine do not count; wall-clock time where /proc is missing), and the
//! wall-clock ratio beside it.
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

fn bench(label: &str, base: &Config, reps: usize) -> anyhow::Result<()> {
    let prep = Prepared::new(&base.acdc())?;
    let forward = |k: usize| {
        timed(k, || {
            Ok(eval::run(
                &prep.model,
                &prep.tokens,
                &Patches::new(),
                RunOptions {
                    logits: LogitsAt::Rows(prep.end.clone()),
                    ..Default::default()
                },
            )?)
        })
    };
    let k = runs_per_sample(forward(1)?.1);
    let runs: Vec<(f64, f64)> = (0..reps.max(5))
        .map(|_| forward(k))
        .collect::<anyhow::Result<_>>()?;
    let fwd = median(runs.iter().map(|r| r.0).collect());
    let fwd_wall = median(runs.iter().map(|r| r.1).collect());
    let clock = if cpu_seconds().is_some() {
        "CPU time"
    } else {
        "wall clock"
    };
    println!(
        "{label}: {} rows × {} positions; one forward pass {:.1} ms ({clock}; {:.1} ms wall)",
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
        let mut times = vec![];
        let mut walls = vec![];
        let mut passes = (0, 0);
        let mut one = || -> anyhow::Result<()> {
            let out = score(&prep, &c, &mut |_, _| {})?;
            passes = (out.forwards, out.backwards);
            Ok(())
        };
        let k = runs_per_sample(timed(1, &mut one)?.1);
        for _ in 0..reps {
            let (cpu, wall) = timed(k, &mut one)?;
            times.push(cpu);
            walls.push(wall);
        }
        let t = median(times);
        let goal = match method {
            Method::Eap | Method::Atp => "goal ≤ 3".to_string(),
            Method::EapIg => format!("goal ≤ m + 2 = {}", steps + 2),
            Method::EapIgAct => "no goal".to_string(),
        };
        let wall = median(walls);
        println!(
            "  {:<10} m={steps}: {:>8.1} ms = {:>5.2} forward-pass equivalents ({} forward + {} \
             backward passes; {goal}); wall clock {:.1} ms = {:.2}",
            method.cli_name(),
            1e3 * t,
            t / fwd,
            passes.0,
            passes.1,
            1e3 * wall,
            wall / fwd_wall
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
