//! The `scrub` experiment: invariants, reproducibility, validation messages and the CLI.

mod common;

use candle_core::DType;
use circuitscope::model::Model;
use circuitscope::scrub::{self, RunSettings};
use std::path::{Path, PathBuf};
use std::process::Command;

fn setup(dir: &Path) {
    common::save_random_gpt2(&dir.join("model"), &common::tiny_config(2, 2), 11);
    let mut jsonl = String::new();
    for i in 0..12 {
        let prompt = format!("w{} w{} w{} w{}", i % 7, (i * 3) % 9, (i + 2) % 5, i % 4);
        jsonl.push_str(
            &serde_json::json!({
                "prompt": prompt, "answer": format!("w{}", i % 6), "wrong": format!("w{}", (i + 1) % 6),
                "features": {"parity": (i % 2).to_string()}, "positions": {"MID": 2}
            })
            .to_string(),
        );
        jsonl.push('\n');
    }
    std::fs::write(dir.join("data.jsonl"), jsonl).unwrap();
}

fn hypothesis(dir: &Path, name: &str, tree: &str) -> PathBuf {
    let text = format!(
        "Hypothesis(\n  name: \"{name}\",\n  model: \"{}\",\n  task: Jsonl(path: \"{}\"),\n  metric: LogitDiff,\n  seed: 5,\n  root: {tree}\n)\n",
        dir.join("model").display(),
        dir.join("data.jsonl").display()
    );
    let p = dir.join(format!("{name}.ron"));
    std::fs::write(&p, text).unwrap();
    p
}

fn run(path: &Path, seeds: usize) -> (scrub::ScrubResult, scrub::SamplesFile) {
    let p = scrub::prepare(path, None).unwrap();
    let m = Model::load(&p.model_dir, DType::F32).unwrap();
    scrub::run(
        &p,
        &m,
        &RunSettings {
            seeds,
            replay: None,
        },
    )
    .unwrap()
}

#[test]
fn exact_samplers_everywhere_reproduce_the_clean_metric() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let h = hypothesis(
        tmp.path(),
        "exact",
        r#"Node(name: "out", sampler: Exact, other_inputs: Exact, children: [
            Node(name: "A", matcher: Direct(to: ["a1.h0"], at: ["END"]), sampler: Exact, other_inputs: Exact, children: [
                Node(name: "B", matcher: Any(to: ["embed"]), sampler: Exact),
            ]),
        ])"#,
    );
    let (r, _) = run(&h, 1);
    assert_eq!(r.scrubbed.mean, r.clean.mean);
    assert_ne!(r.clean.mean, 0.0);
}

/// Redwood's semantics (`rust_circuit`'s `SampledInputs`: a leaf takes its own dataset): a root
/// without children evaluates every path on the root's own rows, so an `Exact` root is the
/// clean run, and an `Uncond` root is a run on its own random rows.
#[test]
fn a_root_without_children_runs_on_its_own_rows() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let h = hypothesis(
        tmp.path(),
        "root",
        r#"Node(name: "out", sampler: Exact, other_inputs: Uncond)"#,
    );
    let (r, _) = run(&h, 1);
    assert_eq!(r.scrubbed.mean, r.clean.mean);
    assert!(
        (r.clean.mean - r.baseline.mean).abs() > 1e-3,
        "baseline equals clean: {r:?}"
    );
    assert!((r.loss_recovered - 1.0).abs() < 1e-12);
    let h = hypothesis(
        tmp.path(),
        "root-uncond",
        r#"Node(name: "out", sampler: Uncond, other_inputs: Uncond)"#,
    );
    let (r, samples) = run(&h, 1);
    assert_ne!(samples.seeds[0].nodes[0].rows, samples.seeds[0].reference);
    assert_ne!(r.scrubbed.mean, r.clean.mean);
    assert_ne!(r.scrubbed.mean, r.baseline.mean);
}

#[test]
fn samples_replay_reproduces_the_result_and_seeds_vary() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let h = hypothesis(
        tmp.path(),
        "replay",
        r#"Node(name: "out", other_inputs: Uncond, children: [
            Node(name: "A", matcher: Direct(to: ["a1.h1", "m1"]), sampler: Same(["parity"])),
        ])"#,
    );
    let (r, samples) = run(&h, 3);
    assert_eq!(r.seeds.len(), 3);
    assert!(r
        .seeds
        .iter()
        .any(|s| s.scrubbed.mean != r.seeds[0].scrubbed.mean));
    // Same-feature sampling keeps parity.
    let ds = scrub::prepare(&h, None).unwrap().dataset;
    let a = &samples.seeds[0].nodes[1].rows;
    for (i, &r) in a.iter().enumerate() {
        assert_eq!(
            ds.examples[i].features["parity"],
            ds.examples[r].features["parity"]
        );
    }
    let p = scrub::prepare(&h, None).unwrap();
    let m = Model::load(&p.model_dir, DType::F32).unwrap();
    let (r2, _) = scrub::run(
        &p,
        &m,
        &RunSettings {
            seeds: 1,
            replay: Some(samples.clone()),
        },
    )
    .unwrap();
    for (x, y) in r.seeds.iter().zip(&r2.seeds) {
        assert_eq!(x.scrubbed.mean, y.scrubbed.mean);
        assert_eq!(x.loss_recovered, y.loss_recovered);
    }
    // And a second fresh run draws the same rows.
    let (_, samples2) = run(&h, 3);
    assert_eq!(samples.seeds, samples2.seeds);
}

fn expect_error(dir: &Path, name: &str, tree: &str, needles: &[&str]) {
    let h = hypothesis(dir, name, tree);
    let e = scrub::prepare(&h, None)
        .err()
        .unwrap_or_else(|| panic!("{name} must be refused"))
        .to_string();
    for n in needles {
        assert!(e.contains(n), "missing {n:?} in: {e}");
    }
}

#[test]
fn validation_names_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    expect_error(
        d,
        "unknown-head",
        r#"Node(name: "out", children: [Node(name: "A", matcher: Direct(to: ["a7.h0"]))])"#,
        &["unknown-head.ron:7:", "a7.h0", "does not exist", "2 layers"],
    );
    expect_error(
        d,
        "feature",
        r#"Node(name: "out", children: [Node(name: "A", matcher: Direct(to: ["m1"]), sampler: Same(["colour"]))])"#,
        &["feature.ron:7:", "colour", "parity"],
    );
    expect_error(
        d,
        "position",
        r#"Node(name: "out", children: [Node(name: "A", matcher: Direct(to: ["m1"], at: ["S2"]))])"#,
        &["position.ron:7:", "S2", "MID"],
    );
    expect_error(
        d,
        "rootmatcher",
        r#"Node(name: "out", matcher: Direct(to: ["m1"]))"#,
        &["rootmatcher.ron:7:", "root", "output"],
    );
    expect_error(
        d,
        "nomatch",
        r#"Node(name: "out", children: [Node(name: "A", matcher: Direct(to: ["m1"]), children: [
            Node(name: "B", matcher: Direct(to: ["m1"]))])])"#,
        &["nomatch.ron:8:", "'B' matches no path", "extend"],
    );
    expect_error(
        d,
        "twice",
        r#"Node(name: "out", children: [Node(name: "A", matcher: Direct(to: ["m1"])), Node(name: "B", matcher: Direct(to: ["m1"]))])"#,
        &["twice.ron:7:", "both match"],
    );
    // Syntax errors and a second root carry line:column from the parser.
    let p = d.join("syntax.ron");
    std::fs::write(&p, "Hypothesis(\n  name: \"x\",\n  model: \"m\",\n  task: Jsonl(path: \"d\"),\n  metric: Bogus,\n  root: Node(name: \"r\"),\n)").unwrap();
    let e = scrub::prepare(&p, None).err().unwrap().to_string();
    assert!(e.contains("syntax.ron:5:"), "{e}");
    let p = d.join("tworoots.ron");
    std::fs::write(&p, format!("Hypothesis(\n  name: \"x\",\n  model: \"{}\",\n  task: Jsonl(path: \"{}\"),\n  metric: LogitDiff,\n  root: Node(name: \"r\"),\n  root: Node(name: \"s\"),\n)", d.join("model").display(), d.join("data.jsonl").display())).unwrap();
    let e = scrub::prepare(&p, None).err().unwrap().to_string();
    assert!(e.contains("tworoots.ron:7:") && e.contains("root"), "{e}");
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scrub"))
}

#[test]
fn nm_hypothesis_checks_against_gpt2_config_and_asks_for_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gpt2");
    std::fs::create_dir_all(&dir).unwrap();
    // GPT-2 small's config.json (as Hugging Face ships it, abridged) and the GPT-2 tokenizer.
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "gpt2", "activation_function": "gelu_new", "n_ctx": 1024, "n_embd": 768,
            "n_head": 12, "n_layer": 12, "n_positions": 1024, "vocab_size": 50257,
            "layer_norm_epsilon": 1e-05, "bos_token_id": 50256, "eos_token_id": 50256}"#,
    )
    .unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("models/gpt2-tokenizer/tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    let nm = root.join("hypotheses/nm.ron");
    let out = Command::new(bin())
        .args([
            "--hypothesis",
            nm.to_str().unwrap(),
            "--model",
            dir.to_str().unwrap(),
            "--check",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok:") && stdout.contains("3 interpretation nodes"),
        "{stdout}"
    );
    let out = Command::new(bin())
        .args([
            "--hypothesis",
            nm.to_str().unwrap(),
            "--model",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("model.safetensors") && stderr.contains("--model"),
        "{stderr}"
    );
}

#[test]
fn cli_writes_json_and_samples_and_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let h = hypothesis(
        tmp.path(),
        "cli",
        r#"Node(name: "out", children: [Node(name: "A", matcher: Direct(to: ["a1.h0"]))])"#,
    );
    let json = tmp.path().join("r.json");
    let samples = tmp.path().join("s.json");
    let out = Command::new(bin())
        .args([
            "--hypothesis",
            h.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
        .args(["--dump-samples", samples.to_str().unwrap(), "--seeds", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("loss recovered"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for k in [
        "clean",
        "scrubbed",
        "baseline",
        "loss_recovered",
        "forward_equivalents",
        "hashes",
        "version",
        "n",
        "seed",
    ] {
        assert!(r.get(k).is_some(), "missing {k}");
    }
    // Replaying the samples gives the same first-seed numbers.
    let json2 = tmp.path().join("r2.json");
    let out = Command::new(bin())
        .args([
            "--hypothesis",
            h.to_str().unwrap(),
            "--samples",
            samples.to_str().unwrap(),
        ])
        .args(["--json", json2.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json2).unwrap()).unwrap();
    assert_eq!(r["scrubbed"], r2["scrubbed"]);
    // Bad input: a missing file, exit 2, nothing written.
    let json3 = tmp.path().join("r3.json");
    let out = Command::new(bin())
        .args([
            "--hypothesis",
            "/nonexistent.ron",
            "--json",
            json3.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.ron"));
    assert!(!json3.exists());
}
