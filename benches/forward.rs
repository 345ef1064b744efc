//! Forward-pass throughput on a GPT-2-small-shaped model with random weights, batch 50 × 20.
//!
//! Run: `cargo bench --bench forward` (set `RAYON_NUM_THREADS` to choose the thread count).
//! Compare with `python scripts/bench_vs_torch.py` on the same machine.

use candle_core::DType;
use circuitscope::eval::{self, LogitsAt, Patches, RunOptions};
use circuitscope::model::{random, Model};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> circuitscope::Result<()> {
    let cfg = random::gpt2_small_config();
    let w = random::random_weights(&cfg, 0, DType::F32)?;
    let model = Model::from_weights(cfg.clone(), w, DType::F32)?;
    let (batch, pos) = (50usize, 20usize);
    let rows: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..pos)
                .map(|p| ((b * 7919 + p * 104729) % cfg.d_vocab) as u32)
                .collect()
        })
        .collect();
    let tokens = model.tokens_tensor(&rows)?;
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for (label, logits) in [
        ("full logits", LogitsAt::All),
        ("last-position logits", LogitsAt::Rows(vec![pos - 1; batch])),
    ] {
        // Warm up.
        eval::run(
            &model,
            &tokens,
            &Patches::new(),
            RunOptions {
                logits: logits.clone(),
                ..Default::default()
            },
        )?;
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            eval::run(
                &model,
                &tokens,
                &Patches::new(),
                RunOptions {
                    logits: logits.clone(),
                    ..Default::default()
                },
            )?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        println!(
            "forward {label:>22}: batch {batch} x {pos}: median {:.1} ms, {:.0} tokens/s (threads: {})",
            med * 1e3,
            (batch * pos) as f64 / med,
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
        );
    }
    Ok(())
}
