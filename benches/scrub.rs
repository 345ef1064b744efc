//! Cost of a causal scrubbing run on a GPT-2-small-shaped model with random weights.
//!
//! 1. Peak resident memory of `hypotheses/nm.ron` with `n: 200` (goal ≤ 2 GB; the f32 weights
//!    are 0.5 GB): measured in a child process that only loads the model and scrubs, from its
//!    own `VmHWM` in `/proc/self/status`.
//! 2. The REMIX name-mover hypothesis (3 interpretation nodes) and a deeper 4-node one,
//!    N = 50: forward-pass equivalents (goal: ≤ k + 2 for k nodes) and wall time against one
//!    plain forward pass.
//!
//! Run: `cargo bench --bench scrub`.

use candle_core::DType;
use circuitscope::eval::{self, LogitsAt, Patches, RunOptions};
use circuitscope::model::{random, Model};
use circuitscope::scrub::{self, RunSettings};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

#[global_allocator]
static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;

/// Set in the child process that measures peak memory: `MODEL_DIR` and the hypothesis file,
/// separated by a newline.
const MEMORY_CHILD: &str = "CIRCUITSCOPE_BENCH_SCRUB_MEMORY";

/// The process's peak resident set size in bytes (`VmHWM`).
fn peak_rss() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/self/status"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb * 1024)
}

/// The child: load the model, scrub, print the peak resident memory.
fn memory_child(spec: &str) -> anyhow::Result<()> {
    let (dir, hyp) = spec
        .split_once('\n')
        .ok_or_else(|| anyhow::anyhow!("bad {MEMORY_CHILD}"))?;
    let p = scrub::prepare(Path::new(hyp), Some(dir))?;
    let model = scrub::experiment::load_model(&p, DType::F32)?;
    let t = Instant::now();
    let (r, _) = scrub::run(
        &p,
        &model,
        &RunSettings {
            seeds: 1,
            replay: None,
        },
    )?;
    println!(
        "{} n = {}: loss recovered {:.4}, {:.1} s, peak resident memory {:.2} GB",
        r.hypothesis,
        r.n,
        r.loss_recovered,
        t.elapsed().as_secs_f64(),
        peak_rss()? as f64 / 1e9
    );
    Ok(())
}

#[allow(clippy::too_many_lines)] // the benchmark's measurements in the order they print
fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var(MEMORY_CHILD) {
        return memory_child(&spec);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
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
    let model = Model::load(&dir, DType::F32)?;

    let nm = root.join("hypotheses/nm.ron");
    // Peak memory of nm.ron at n = 200, in a process of its own.
    let nm200 = tmp.path().join("nm-200.ron");
    let text = std::fs::read_to_string(&nm)?;
    if !text.contains("n: 50,") {
        anyhow::bail!("hypotheses/nm.ron no longer says `n: 50,`; update this bench");
    }
    std::fs::write(&nm200, text.replace("n: 50,", "n: 200,"))?;
    let out = std::process::Command::new(std::env::current_exe()?)
        .env(
            MEMORY_CHILD,
            format!("{}\n{}", dir.display(), nm200.display()),
        )
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "the memory run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));

    let deep = tmp.path().join("deep.ron");
    std::fs::write(
        &deep,
        r#"Hypothesis(name: "s-inhibition", model: "unused", task: Ioi(prompt_type: RemixBaba, templates: 1, n: 50, seed: 42),
  metric: LogitDiff, seed: 1,
  root: Node(name: "logits", other_inputs: Uncond, children: [
    Node(name: "NM", matcher: Direct(to: ["a9.h9", "a10.h0"], at: ["END"]), other_inputs: Uncond, children: [
      Node(name: "SIN", matcher: Direct(to: ["a7.h3", "a8.h6"], via: [Q], at: ["END"]), sampler: Same(["template"])),
      Node(name: "NMV", matcher: Any(to: ["embed"], via: [K, V]), sampler: Exact),
    ]),
  ]))"#,
    )?;
    let tokens = model.tokens_tensor(&vec![vec![50256u32; 16]; 50])?;
    let t = Instant::now();
    eval::run(
        &model,
        &tokens,
        &Patches::new(),
        RunOptions {
            logits: LogitsAt::Rows(vec![15; 50]),
            ..Default::default()
        },
    )?;
    let forward = t.elapsed().as_secs_f64();
    println!("one plain forward pass, 50 × 16 tokens: {:.2} s", forward);
    for h in [nm, deep] {
        let p = scrub::prepare(&h, Some(dir.to_str().unwrap_or_default()))?;
        let t = Instant::now();
        let (r, _) = scrub::run(
            &p,
            &model,
            &RunSettings {
                seeds: 1,
                replay: None,
            },
        )?;
        let wall = t.elapsed().as_secs_f64();
        let k = p.hypothesis.nodes.len();
        println!(
            "{:<14} k = {k} nodes, {} path states: {:.2} forward-pass equivalents (goal ≤ {}), {:.2} s = {:.2} × one forward",
            r.hypothesis,
            p.plan.states.len(),
            r.forward_equivalents,
            k + 2,
            wall,
            wall / forward
        );
    }
    Ok(())
}
