//! Patching sweeps on a GPT-2-small-shaped model with random weights: activation patching
//! with and without resuming at the patched layer, and iterative path patching.
//!
//! Run: `cargo bench --bench patching` (BENCH_BATCH, BENCH_POS choose the input size;
//! RAYON_NUM_THREADS the thread count).

use candle_core::DType;
use circuitscope::analysis::{act_patch_with, ActPatchOptions, ActTarget, PathPatcher, Setup};
use circuitscope::graph::{Qkv, Receiver};
use circuitscope::metric::Metric;
use circuitscope::model::{random, Model};
use std::time::Instant;

#[global_allocator]
static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> circuitscope::Result<()> {
    let cfg = random::gpt2_small_config();
    let w = random::random_weights(&cfg, 0, DType::F32)?;
    let model = Model::from_weights(cfg.clone(), w, DType::F32)?;
    let (batch, pos) = (env("BENCH_BATCH", 8), env("BENCH_POS", 12));
    let v = cfg.d_vocab;
    let clean: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..pos)
                .map(|p| ((b * 7919 + p * 104729) % v) as u32)
                .collect()
        })
        .collect();
    let mut corrupted = clean.clone();
    for (b, row) in corrupted.iter_mut().enumerate() {
        row[pos / 2] = ((b * 31 + 17) % v) as u32;
    }
    let answers: Vec<(u32, u32)> = (0..batch)
        .map(|b| ((b * 13 % v) as u32, (b * 29 % v + 1) as u32))
        .collect();
    let setup = Setup::from_tokens(&model, &clean, &corrupted, &answers, Metric::LogitDiff)?;
    println!("GPT-2-small shape, batch {batch} x {pos}");
    for target in [ActTarget::ResidPre, ActTarget::HeadOutAllPos] {
        let mut secs = Vec::new();
        let mut results = Vec::new();
        for resume in [true, false] {
            let t = Instant::now();
            let s = act_patch_with(&setup, target, ActPatchOptions { resume })?;
            secs.push(t.elapsed().as_secs_f64());
            results.push(s.values);
        }
        assert_eq!(
            results[0], results[1],
            "resuming must not change the numbers"
        );
        println!(
            "act_patch {:<24} resume {:>7.2}s   from the embedding {:>7.2}s   speed-up {:.2}x",
            target.name(),
            secs[0],
            secs[1],
            secs[1] / secs[0]
        );
    }
    let pp = PathPatcher::new(&setup)?;
    for (label, recv) in [
        ("logits", vec![Receiver::Logits]),
        ("a9.h9.q", vec![Receiver::Head(9, 9, Qkv::Q)]),
    ] {
        let t = Instant::now();
        pp.iterative(&recv, None, false)?;
        println!(
            "iterative path patching → {label:<8} {:>7.2}s",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
