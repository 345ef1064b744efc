//! Forward-pass throughput on a GPT-2-small-shaped model with random weights, batch 50 × 20.
//!
//! Run: `cargo bench --bench forward` (set `RAYON_NUM_THREADS` to choose the thread count).
//! Compare with `python scripts/bench_vs_torch.py` on the same machine. Besides wall time it
//! prints CPU time per pass: with `RAYON_NUM_THREADS=1` (and `--threads 1` for PyTorch) that is
//! the work of a pass even on a machine busy with other jobs.

use candle_core::DType;
use circuitscope::eval::{self, LogitsAt, Patches, RunOptions};
use circuitscope::model::{random, Model};
use std::time::Instant;

#[global_allocator]
static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;

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
        let mut cpu = Vec::new();
        for _ in 0..reps {
            let c = process_cpu_seconds();
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
            if let (Some(a), Some(b)) = (c, process_cpu_seconds()) {
                cpu.push(b - a);
            }
        }
        times.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        let cpu_note = match cpu.get(cpu.len() / 2) {
            Some(&c) if c > 0.0 => format!(
                ", CPU {:.1} ms, {:.0} tokens per CPU-second",
                c * 1e3,
                (batch * pos) as f64 / c
            ),
            _ => String::new(),
        };
        println!(
            "forward {label:>22}: batch {batch} x {pos}: median {:.1} ms, {:.0} tokens/s (threads: {}){cpu_note}",
            med * 1e3,
            (batch * pos) as f64 / med,
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
        );
    }
    Ok(())
}

/// This process's CPU time (user + system) in seconds, from `/proc/self/stat` (Linux; `None`
/// elsewhere). With one thread it is the work of a pass, whatever else runs on the machine.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    // Clock ticks: 100 per second on Linux.
    Some((utime + stime) / 100.0)
}
