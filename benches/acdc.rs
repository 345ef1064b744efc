//! ACDC throughput: edges tested per second, fast path against the naive one (one full forward
//! pass per edge with every removed edge patched and logits everywhere).
//!
//! 1. A whole sweep on each toy model with its shipped config (`models/toy-ioi`,
//!    `models/toy-induction`; the `tests/fixtures/gpt2-tiny` model with an induction task for
//!    a toy that is not there).
//! 2. A GPT-2-small-shaped model with random weights (12 layers × 12 heads, d_model 768,
//!    vocabulary 50257; 20 prompts × 16 tokens), a bounded number of edges: a few edges into
//!    receivers across the depth, at the start of a sweep (nothing removed) and late in one
//!    (97% of the already-visited edges removed). The full-sweep estimate weights each layer's
//!    cost per edge by its number of edges.
//!
//! Times are CPU seconds of this process (steadier than wall time on a shared machine); run
//! with `RAYON_NUM_THREADS=1` to compare single-threaded work.
//!
//! Run: `RAYON_NUM_THREADS=1 cargo bench --bench acdc` (`BENCH_GPT2=0` skips part 2;
//! `BENCH_EDGES=K` edges per receiver, default 3).

use candle_core::DType;
use circuitscope::acdc::{self, Config, Oracle, Prepared, Sweep, SweepState, Units};
use circuitscope::data::{Dataset, Example, InductionOptions, TaskSpec};
use circuitscope::graph::edges::parents;
use circuitscope::graph::{Edge, Receiver};
use circuitscope::metric::Metric;
use circuitscope::model::{random, Model};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[global_allocator]
static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// CPU seconds used by this process (user + system, all threads), from /proc/self/stat; the
/// machine may be shared, so CPU time is steadier than wall time. `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the command name.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let c0 = cpu_seconds().unwrap_or(0.0);
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds().map_or(wall, |c| c - c0);
    (out, wall, cpu)
}

fn full_sweep(prep: &Prepared, naive: bool, batch: usize) -> (f64, usize, SweepState) {
    let mut opts = prep.sweep_options();
    opts.batch = batch;
    let sweep = Sweep::new(&prep.model.cfg, opts);
    let mut ev = prep.evaluator().unwrap();
    ev.naive = naive;
    let mut s = sweep.initial_state();
    let mut tested = 0usize;
    let (_, wall, cpu) = timed(|| {
        while !sweep.done(&s) {
            sweep
                .step(&mut s, &mut ev, &mut |e| {
                    if let acdc::sweep::Event::Tested { .. } = e {
                        tested += 1
                    }
                })
                .unwrap();
        }
    });
    println!(
        "    ({}, batch {batch}: wall {wall:.2} s, CPU {cpu:.2} s)",
        if naive { "naive" } else { "fast" }
    );
    (cpu, tested, s)
}

fn toy(name: &str) {
    let toy_cfg = root().join(format!("configs/acdc/{name}.ron"));
    let config = if root().join("models").join(name).is_dir() && toy_cfg.is_file() {
        let mut c = Config::load(&toy_cfg).unwrap();
        c.model = root().join("models").join(name).display().to_string();
        c
    } else {
        println!(
            "(models/{name} not found: using tests/fixtures/gpt2-tiny with an induction task)"
        );
        Config {
            model: root()
                .join("tests/fixtures/gpt2-tiny")
                .display()
                .to_string(),
            task: TaskSpec::Induction(InductionOptions {
                n: 40,
                seq_len: 6,
                seed: 1,
                ..Default::default()
            }),
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
            dtype: acdc::Precision::F32,
            batch: 1,
        }
    };
    let prep = Prepared::new(&config).unwrap();
    println!(
        "toy: {} ({} layers, {} heads, d_model {}), {} prompts × {} tokens, {} edges, tau {}",
        config.model,
        prep.model.cfg.n_layers,
        prep.model.cfg.n_heads,
        prep.model.cfg.d_model,
        prep.dataset.len(),
        prep.tokens.dim(1).unwrap(),
        prep.sweep().units.len(),
        config.tau
    );
    let (tf, nf, sf) = full_sweep(&prep, false, 1);
    let (tn, nn, sn) = full_sweep(&prep, true, 1);
    assert_eq!(nf, nn);
    let same = sf.present == sn.present;
    println!(
        "toy whole sweep (CPU time): fast {tf:.2} s for {nf} tested edges = {:.1} edges/s; naive {tn:.2} s \
         = {:.1} edges/s; speed-up {:.2}x; same circuit: {same}",
        nf as f64 / tf,
        nn as f64 / tn,
        tn / tf
    );
    for batch in [4usize, 16] {
        let (tb, nb, sb) = full_sweep(&prep, false, batch);
        println!(
            "toy whole sweep, batch {batch}: {tb:.2} s for {nb} tested edges = {:.1} edges/s \
             ({:.2}x the one-at-a-time fast path); same circuit: {}",
            nb as f64 / tb,
            tf / tb,
            sb.present == sf.present
        );
    }
}

fn gpt2_shaped() {
    let cfg = random::gpt2_small_config();
    let w = random::random_weights(&cfg, 0, DType::F32).unwrap();
    let model = Model::from_weights(cfg.clone(), w, DType::F32).unwrap();
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
    let ds = Dataset {
        task: "random".into(),
        examples,
    };
    let config = Config {
        model: "random gpt2-small".into(),
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
        dtype: acdc::Precision::F32,
        batch: 1,
    };
    let prep = Prepared::from_parts(&config, model, ds).unwrap();
    let sweep = prep.sweep();
    let Units::Edges(g) = &sweep.units else {
        unreachable!()
    };
    println!(
        "\nGPT-2-small-shaped random model: {} edges, {n} prompts × {p} tokens, f32",
        g.len()
    );
    let k: usize = std::env::var("BENCH_EDGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut fast = prep.evaluator().unwrap();
    let mut naive = prep.evaluator().unwrap();
    naive.naive = true;
    let l = cfg.n_layers;
    let probes: Vec<Receiver> = vec![
        Receiver::Logits,
        Receiver::Head(l - 1, 11, circuitscope::graph::Qkv::V),
        Receiver::Mlp(l - 4),
        Receiver::Head(l / 2, 0, circuitscope::graph::Qkv::Q),
        Receiver::Head(2, 5, circuitscope::graph::Qkv::K),
        Receiver::Head(0, 0, circuitscope::graph::Qkv::Q),
    ];
    let step_index = |r: &Receiver| {
        sweep
            .steps
            .iter()
            .position(|s| *s == acdc::sweep::Step::Receiver(*r))
            .unwrap()
    };
    for late in [false, true] {
        println!(
            "  {}:",
            if late {
                "late in a sweep (97% of the visited edges removed)"
            } else {
                "start of a sweep (no edge removed)"
            }
        );
        let mut per_layer: Vec<(usize, f64, f64)> = vec![];
        for r in &probes {
            let si = step_index(r);
            // Edges of receivers visited before this step.
            let visited: std::collections::BTreeSet<usize> = sweep.steps[..si]
                .iter()
                .flat_map(|s| match s {
                    acdc::sweep::Step::Receiver(rr) => parents(rr, &cfg)
                        .into_iter()
                        .filter_map(|u| g.add_id(u, *rr))
                        .collect::<Vec<_>>(),
                    acdc::sweep::Step::QkvEdge(a, b, x) => {
                        g.qkv_id(*a, *b, *x).into_iter().collect()
                    }
                    _ => vec![],
                })
                .collect();
            let mut present = vec![true; g.len()];
            if late {
                let mut rr = rand_chacha::ChaCha8Rng::seed_from_u64(1);
                for &i in &visited {
                    if rr.random::<f64>() < 0.97 {
                        present[i] = false;
                    }
                }
            }
            let cands: Vec<usize> = parents(r, &cfg)
                .into_iter()
                .take(k)
                .filter_map(|u| g.add_id(u, *r))
                .collect();
            // CPU time per edge, the best of two rounds (the machine may be shared).
            let time = |ev: &mut acdc::Evaluator| {
                let mut best = f64::INFINITY;
                for _ in 0..2 {
                    let (_, _, cpu) = timed(|| {
                        let mut cur = present.clone();
                        for &c in &cands {
                            cur[c] = false;
                            ev.metric(&cur).unwrap();
                        }
                    });
                    best = best.min(cpu / cands.len() as f64);
                }
                best
            };
            fast.metric(&present).unwrap();
            let tf = time(&mut fast);
            let tn = time(&mut naive);
            println!(
                "    {:<10} (layer {:>2}): fast {:>7.1} ms/edge, naive {:>7.1} ms/edge (CPU), {:>5.1}x",
                r.to_string(),
                r.layer(l),
                tf * 1e3,
                tn * 1e3,
                tn / tf
            );
            per_layer.push((r.layer(l), tf, tn));
        }
        // Estimate a whole sweep: each edge's cost interpolated from the probes by layer.
        let interp = |layer: usize, which: usize| -> f64 {
            let pts: Vec<(f64, f64)> = per_layer
                .iter()
                .map(|(a, f, nn)| (*a as f64, if which == 0 { *f } else { *nn }))
                .collect();
            let x = layer as f64;
            let mut best = pts[0];
            let mut next = pts[0];
            for w in pts.windows(2) {
                let (hi, lo) = (w[0], w[1]);
                if x <= hi.0 && x >= lo.0 {
                    best = hi;
                    next = lo;
                }
            }
            if (best.0 - next.0).abs() < 1e-9 {
                return best.1;
            }
            let t = (best.0 - x) / (best.0 - next.0);
            best.1 + t * (next.1 - best.1)
        };
        let (mut sf, mut sn) = (0.0, 0.0);
        for e in g.edges() {
            let layer = match e {
                Edge::Add { receiver, .. } => receiver.layer(l),
                Edge::Qkv { layer, .. } => *layer,
            };
            sf += interp(layer, 0);
            sn += interp(layer, 1);
        }
        println!(
            "    whole-sweep estimate ({} edges, all tested): fast {:.1} edges/s ({:.1} h), naive \
             {:.2} edges/s ({:.1} h): {:.1}x",
            g.len(),
            g.len() as f64 / sf,
            sf / 3600.0,
            g.len() as f64 / sn,
            sn / 3600.0,
            sn / sf
        );
    }
}

fn main() {
    println!(
        "threads: {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
    );
    toy("toy-ioi");
    toy("toy-induction");
    if std::env::var("BENCH_GPT2").as_deref() != Ok("0") {
        gpt2_shaped();
    }
}
