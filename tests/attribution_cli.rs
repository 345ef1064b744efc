//! `circuitscope attribute` and `circuitscope faithfulness` end to end on the gpt2-tiny fixture,
//! and on bad input: one clear message each, exit code 2, nothing written.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_circuitscope"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2 and a single `error:` line containing every `needle`.
fn refused(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            m.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    m
}

/// Token files: 3 rows of 6 tokens, corrupted rows, [answer, wrong] pairs.
fn token_files(dir: &Path) -> [String; 3] {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    [
        w("clean.json", "[[1,5,9,2,7,3],[4,8,1,6,2,9],[7,3,3,8,5,1]]"),
        w(
            "corrupted.json",
            "[[2,6,8,3,9,4],[5,9,2,7,1,8],[6,4,2,9,4,2]]",
        ),
        w("answers.json", "[[5,7],[11,3],[42,9]]"),
    ]
}

fn tiny() -> String {
    root()
        .join("tests/fixtures/gpt2-tiny")
        .display()
        .to_string()
}

#[test]
#[allow(clippy::too_many_lines)] // one test scenario: its steps and assertions read in order
fn attribute_then_faithfulness() {
    let tmp = tempfile::tempdir().unwrap();
    let [t, c, a] = token_files(tmp.path());
    let out = tmp.path().join("eap");
    let o = cs(&[
        "attribute",
        "--model",
        &tiny(),
        "--tokens",
        &t,
        "--corrupted-tokens",
        &c,
        "--answers",
        &a,
        "--method",
        "eap-ig",
        "--ig-steps",
        "2",
        "--dtype",
        "f64",
        "--top-k",
        "12",
        "--per-position",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.ron",
        "scores.json",
        "scores.safetensors",
        "circuit.json",
        "circuit.dot",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("scores.json")).unwrap()).unwrap();
    // gpt2-tiny: 262 addition edges and 3 layers × 4 heads × 3 q/k/v edges.
    assert_eq!(v["edges"].as_array().unwrap().len(), 298);
    assert_eq!(v["method"], "eap-ig");
    let cj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("circuit.json")).unwrap()).unwrap();
    let kept = cj["counts"]["kept"].as_u64().unwrap();
    assert!(kept <= 12 && kept as usize == cj["edges"].as_array().unwrap().len());
    let st =
        candle_core::safetensors::load(out.join("scores.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(st["scores"].dims(), &[298]);
    assert_eq!(st["scores_per_position"].dims(), &[298, 6]);

    let scores_s = out.join("scores.json").display().to_string();
    let f = tmp.path().join("faith");
    let o = cs(&[
        "faithfulness",
        "--scores",
        scores_s.as_str(),
        "--circuit",
        out.join("circuit.json").to_str().unwrap(),
        "--tokens",
        &t,
        "--corrupted-tokens",
        &c,
        "--answers",
        &a,
        "--ks",
        "1,20,298",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.join("faithfulness.json")).unwrap())
            .unwrap();
    let pts = j["curves"][0]["points"].as_array().unwrap();
    assert_eq!(pts.len(), 3);
    assert!((pts[2]["faithfulness"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!(j["curves"][0]["cpr"].as_f64().unwrap().is_finite());
    assert!(std::fs::read_to_string(f.join("faithfulness.svg"))
        .unwrap()
        .contains("<svg"));
    assert!(std::fs::read_to_string(f.join("faithfulness.csv"))
        .unwrap()
        .starts_with("label,kind"));

    // Bad input against these files: a circuit naming unknown edges, k too large, a score file
    // for another graph, a score file for another model; nothing written.
    let edges = tmp.path().join("edges.json");
    std::fs::write(&edges, r#"["a0.h0 -> logits", "a7.h2 -> logits"]"#).unwrap();
    let f2 = tmp.path().join("faith2");
    let toks = ["--tokens", &t, "--corrupted-tokens", &c, "--answers", &a];
    let mut args = vec![
        "faithfulness",
        "--scores",
        scores_s.as_str(),
        "--circuit",
        edges.to_str().unwrap(),
        "--out",
        f2.to_str().unwrap(),
    ];
    args.extend(toks);
    refused(&cs(&args), &["edges.json", "a7.h2", "does not exist"]);
    let mut args = vec![
        "faithfulness",
        "--scores",
        scores_s.as_str(),
        "--ks",
        "299",
        "--out",
        f2.to_str().unwrap(),
    ];
    args.extend(toks);
    refused(&cs(&args), &["--ks", "299", "298 edges"]);
    assert!(!f2.exists());

    let noqkv = tmp.path().join("noqkv");
    let o = cs(&[
        "attribute",
        "--model",
        &tiny(),
        "--tokens",
        &t,
        "--corrupted-tokens",
        &c,
        "--answers",
        &a,
        "--no-split-qkv",
        "--out",
        noqkv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let noqkv_s = noqkv.join("scores.json").display().to_string();
    let cfg = tmp.path().join("split.ron");
    std::fs::write(
        &cfg,
        format!(
            "AttributionConfig(model: \"{}\", task: Jsonl(path: \"tokens:x\"), split_qkv: true)",
            tiny()
        ),
    )
    .unwrap();
    let mut args = vec![
        "faithfulness",
        "--config",
        cfg.to_str().unwrap(),
        "--scores",
        noqkv_s.as_str(),
        "--out",
        f2.to_str().unwrap(),
    ];
    args.extend(toks);
    refused(&cs(&args), &["scores.json", "262 edges", "298"]);

    let other = tmp.path().join("other-model");
    let mut oc = circuitscope::model::random::gpt2_config(3, 48, 4, 100);
    oc.n_ctx = 32;
    common::save_random_gpt2(&other, &oc, 7);
    let mut args = vec![
        "faithfulness",
        "--scores",
        scores_s.as_str(),
        "--model",
        other.to_str().unwrap(),
        "--out",
        f2.to_str().unwrap(),
    ];
    args.extend(toks);
    refused(&cs(&args), &["scores.json", "another model"]);
    assert!(!f2.exists());
}

#[test]
fn bad_attribution_input() {
    let tmp = tempfile::tempdir().unwrap();
    let [t, c, a] = token_files(tmp.path());
    let out = tmp.path().join("out");
    let model = tiny();
    let base = |extra: &[&str]| -> Output {
        let mut v = vec![
            "attribute",
            "--model",
            &model,
            "--tokens",
            &t,
            "--corrupted-tokens",
            &c,
            "--answers",
            &a,
            "--out",
            out.to_str().unwrap(),
        ];
        v.extend(extra);
        cs(&v)
    };
    refused(
        &base(&["--metric", "accuracy"]),
        &["accuracy", "no gradient"],
    );
    refused(
        &base(&["--method", "eap-ig", "--ig-steps", "0"]),
        &["ig_steps = 0", "--ig-steps 0"],
    );
    refused(
        &base(&["--top-k", "100000"]),
        &["top-k 100000", "298 edges"],
    );
    refused(&base(&["--method", "magic"]), &["--method magic", "eap-ig"]);
    assert!(!out.exists(), "nothing may be written on bad input");
    // An existing result folder is not overwritten without --force.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("scores.json"), "keep me").unwrap();
    let before = snapshot(&out);
    refused(&base(&[]), &["already holds results", "--force"]);
    assert_eq!(snapshot(&out), before);
    // --help shows examples.
    let h = cs(&["attribute", "--help"]);
    assert!(String::from_utf8_lossy(&h.stdout).contains("Examples:"));
    let h = cs(&["faithfulness", "--help"]);
    assert!(String::from_utf8_lossy(&h.stdout).contains("Examples:"));
}

#[test]
fn faithfulness_of_a_hypothesis() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = root().join("configs/attribution/toy-induction.ron");
    let cfg = cfg.to_str().unwrap();
    let out = tmp.path().join("hyp");
    let hyp = root().join("hypotheses/toy/induction-refined.ron");
    let o = cs(&[
        "faithfulness",
        "--config",
        cfg,
        "--hypothesis",
        hyp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("faithfulness.json")).unwrap())
            .unwrap();
    let c = &j["circuits"][0];
    assert_eq!(c["label"], "hypothesis induction-refined");
    // The ten edges of the induction circuit that resampling another sequence can see; with
    // them kept and everything else resampled, the model is the full model (KL 0).
    assert_eq!(c["point"]["edges"], 10);
    let f = c["point"]["faithfulness"].as_f64().unwrap();
    assert!((f - 1.0).abs() < 1e-6, "faithfulness {f}");

    // A hypothesis naming a head the model does not have: refused, nothing written.
    let bad = tmp.path().join("bad.ron");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&hyp)
            .unwrap()
            .replace("to: [\"a1.h0\"]", "to: [\"a1.h3\"]"),
    )
    .unwrap();
    let out2 = tmp.path().join("hyp2");
    let o = cs(&[
        "faithfulness",
        "--config",
        cfg,
        "--hypothesis",
        bad.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
    ]);
    refused(&o, &["bad.ron:", "a1.h3"]);
    assert!(!out2.exists(), "nothing may be written on bad input");
}
