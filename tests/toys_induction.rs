//! The shipped `models/toy-induction`: its metrics reproduce on fresh sequences, the build is
//! deterministic, and `CIRCUIT.json` is the truth, checked edge by edge by patching.

use candle_core::{DType, Tensor};
use circuitscope::data::{InductionOptions, TaskSpec};
use circuitscope::detect;
use circuitscope::eval::{self, Patches, RunOptions};
use circuitscope::graph::{Node, Receiver};
use circuitscope::model::Model;
use circuitscope::tokenizer::Tokenizer;
use circuitscope::toy::induction::InductionSpec;
use circuitscope::toy::induction_card::{self, InductionMetrics};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/toy-induction")
}

fn load() -> (Model, Tokenizer) {
    (
        Model::load(&dir(), DType::F32).unwrap(),
        Tokenizer::from_model_dir(&dir()).unwrap(),
    )
}

#[test]
fn metrics_reproduce_on_fresh_sequences_and_meet_the_targets() {
    let (model, tok) = load();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("metrics.json")).unwrap())
            .unwrap();
    let rec: InductionMetrics = serde_json::from_value(v["metrics"].clone()).unwrap();
    let m = induction_card::evaluate(&model, &tok, 100, 20, 777).unwrap();
    assert!(m.top1_repeat >= 0.95, "{m:?}");
    assert!(m.loss_repeat * 100.0 < m.loss_first, "{m:?}");
    // Tolerances: repeats are near-deterministic; first-copy loss varies with the tokens.
    assert!(
        (m.loss_repeat - rec.loss_repeat).abs() < 0.002,
        "{} vs {}",
        m.loss_repeat,
        rec.loss_repeat
    );
    assert!(
        (m.loss_first - rec.loss_first).abs() < 0.3,
        "{} vs {}",
        m.loss_first,
        rec.loss_first
    );
    assert!((m.top1_repeat - rec.top1_repeat).abs() < 0.01);
    assert!(m.task_end_accuracy >= 0.95, "{m:?}");
    let h = &m.heads;
    assert!(
        h.previous_token[0][0] >= 0.9,
        "prev-token a0.h0 {}",
        h.previous_token[0][0]
    );
    assert!(
        h.induction[1][0] >= 0.9,
        "induction a1.h0 {}",
        h.induction[1][0]
    );
    for (l, hd) in [(0, 1), (1, 1)] {
        for d in detect::DETECTORS {
            let s = h.get(d).unwrap()[l][hd];
            assert!(s <= 0.2, "distractor a{l}.h{hd} scores {s} as {d}");
        }
    }
    // The circuit heads are not the other kinds.
    assert!(h.duplicate_token[1][0] <= 0.05 && h.induction[0][0] <= 0.05);
}

#[test]
fn rebuilding_gives_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    induction_card::write(tmp.path(), &InductionSpec::default()).unwrap();
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "CIRCUIT.json",
        "metrics.json",
        "MODEL.md",
        "tokens.json",
    ] {
        let a = std::fs::read(dir().join(f)).unwrap();
        let b = std::fs::read(tmp.path().join(f)).unwrap();
        assert!(a == b, "{f} differs from the shipped file; rebuild with `circuitscope build-induction --out models/toy-induction`");
    }
}

fn edge_list(v: &serde_json::Value, key: &str) -> Vec<(String, String)> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Largest |Δ logit| from cutting one edge.
fn cut(model: &Model, clean: &Tensor, base: &Tensor, s: Node, r: Receiver, alt: Tensor) -> f64 {
    let mut p = Patches::new();
    p.add(r, s, alt, None);
    let run = eval::run(model, clean, &p, RunOptions::default()).unwrap();
    (run.logits.unwrap() - base)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

#[test]
#[allow(clippy::too_many_lines)] // one test scenario: its steps and assertions read in order
fn circuit_json_matches_patching_edge_by_edge() {
    let (model, tok) = load();
    let cfg = &model.cfg;
    let circuit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("CIRCUIT.json")).unwrap())
            .unwrap();
    let all = edge_list(&circuit, "edges");
    let resample = edge_list(&circuit, "edges_resample");
    let second = edge_list(&circuit, "edges_second_copy");

    // Fresh sequences (not those CIRCUIT.json was measured on).
    let ds = TaskSpec::Induction(InductionOptions {
        n: 12,
        seed: 99,
        prepend_bos: true,
        seq_len: 18,
        min_token: 0,
        max_token: 0,
    })
    .build(&tok)
    .unwrap();
    let rows: Vec<Vec<u32>> = ds.examples.iter().map(|e| e.tokens.clone()).collect();
    let other: Vec<Vec<u32>> = (0..rows.len())
        .map(|i| rows[(i + 3) % rows.len()].clone())
        .collect();
    let corrupted: Vec<Vec<u32>> = ds
        .examples
        .iter()
        .map(|e| e.corrupted_tokens.clone().unwrap())
        .collect();
    let clean = model.tokens_tensor(&rows).unwrap();
    let none = Patches::new();
    let base_run = eval::run(&model, &clean, &none, RunOptions::default()).unwrap();
    let base = base_run.logits.clone().unwrap();
    let other_run = eval::run(
        &model,
        &model.tokens_tensor(&other).unwrap(),
        &none,
        RunOptions::default(),
    )
    .unwrap();
    let cor_run = eval::run(
        &model,
        &model.tokens_tensor(&corrupted).unwrap(),
        &none,
        RunOptions::default(),
    )
    .unwrap();

    let mut senders = vec![Node::Embed];
    let mut receivers = Vec::new();
    for l in 0..cfg.n_layers {
        for h in 0..cfg.n_heads {
            senders.push(Node::Head(l, h));
            for x in circuitscope::graph::Qkv::ALL {
                receivers.push(Receiver::Head(l, h, x));
            }
        }
        senders.push(Node::Mlp(l));
        receivers.push(Receiver::Mlp(l));
    }
    receivers.push(Receiver::Logits);
    let mut n_edges = 0;
    for &r in &receivers {
        for &s in &senders {
            if !s.feeds(&r, cfg) {
                continue;
            }
            n_edges += 1;
            let key = (s.to_string(), r.to_string());
            let zero = cut(
                &model,
                &clean,
                &base,
                s,
                r,
                base_run
                    .sender_out(&model, s)
                    .unwrap()
                    .zeros_like()
                    .unwrap(),
            );
            let res = cut(
                &model,
                &clean,
                &base,
                s,
                r,
                other_run.sender_out(&model, s).unwrap(),
            );
            let sec = cut(
                &model,
                &clean,
                &base,
                s,
                r,
                cor_run.sender_out(&model, s).unwrap(),
            );
            if all.contains(&key) {
                assert!(zero > 1.0, "{key:?} is in the circuit but zero-ablating it changes the logits by only {zero}");
            }
            if resample.contains(&key) {
                assert!(res > 1.0, "{key:?} should matter under resampling: {res}");
            } else {
                assert!(
                    res < 1e-4,
                    "{key:?} is outside edges_resample but changes the logits by {res}"
                );
            }
            if second.contains(&key) {
                assert!(
                    sec > 1.0,
                    "{key:?} should matter under the task's corruption: {sec}"
                );
            } else {
                assert!(
                    sec < 1e-4,
                    "{key:?} is outside edges_second_copy but changes the logits by {sec}"
                );
            }
            // MLPs are exactly inert, whatever the ablation.
            if matches!(s, Node::Mlp(_)) || matches!(r, Receiver::Mlp(_)) {
                assert!(
                    zero == 0.0 && res == 0.0,
                    "{key:?}: MLP edge moved the logits ({zero}, {res})"
                );
            }
        }
    }
    assert_eq!(n_edges, 46);
    assert!(resample.iter().all(|e| all.contains(e)));
    assert!(second.iter().all(|e| resample.contains(e)));
}
