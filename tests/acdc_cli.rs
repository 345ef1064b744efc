//! The `acdc` binary on bad input: one clear message each, exit code 2, nothing overwritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn acdc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acdc"))
        .arg("--no-progress")
        .args(args)
        .output()
        .unwrap()
}

fn config(dir: &Path, name: &str, body: &str) -> String {
    let text = format!(
        "AcdcConfig(\n    model: \"{}\",\n{body}\n)\n",
        root().join("tests/fixtures/gpt2-tiny").display()
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const BASE: &str =
    "    task: Induction(n: 4, seed: 2, seq_len: 4),\n    metric: Kl,\n    tau: 0.02,";

/// Every file in a folder with its bytes.
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

#[test]
fn bad_flags_and_config_values() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = config(d, "good.ron", BASE);
    let out = d.join("out");
    let out_s = out.display().to_string();
    let o = acdc(&["--config", &good, "--out", &out_s, "--metric", "bleu"]);
    refused(&o, &["unknown metric 'bleu'", "kl"]);
    let o = acdc(&["--config", &good, "--out", &out_s, "--ablation", "noise"]);
    refused(&o, &["unknown ablation 'noise'", "zero"]);
    for t in ["0", "-0.5", "nan"] {
        let o = acdc(&["--config", &good, "--out", &out_s, "--tau", t]);
        refused(&o, &["tau", "> 0"]);
    }
    let o = acdc(&["--config", &good, "--out", &out_s, "--order", "sideways"]);
    refused(&o, &["unknown order 'sideways'"]);
    // In the file: the file, line and column.
    let bad = config(
        d,
        "bad-metric.ron",
        "    task: Induction(n: 4),\n    metric: Bleu,\n    tau: 0.02,",
    );
    let o = acdc(&["--config", &bad, "--out", &out_s]);
    refused(&o, &["bad-metric.ron:4:", "Bleu"]);
    let bad = config(
        d,
        "bad-tau.ron",
        "    task: Induction(n: 4),\n    tau: 0.0,",
    );
    let o = acdc(&["--config", &bad, "--out", &out_s]);
    refused(&o, &["bad-tau.ron", "tau = 0"]);
    let bad = config(
        d,
        "bad-ablation.ron",
        "    task: Induction(n: 4),\n    ablation: Noise,\n    tau: 0.1,",
    );
    let o = acdc(&["--config", &bad, "--out", &out_s]);
    refused(&o, &["bad-ablation.ron:4:"]);
    assert!(!out.exists(), "a refused run created its output folder");
    let o = acdc(&["--out", &out_s]);
    refused(&o, &["--config"]);
}

#[test]
fn misaligned_corrupted_prompts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let jsonl = d.join("ds.jsonl");
    std::fs::write(
        &jsonl,
        "{\"prompt\": \"w1 w2 w3 w4\", \"answer\": \"w5\", \"corrupted\": \"w7 w8 w9 w10\"}\n\
         {\"prompt\": \"w2 w3 w4 w5\", \"answer\": \"w6\", \"corrupted\": \"w7 w8 w9\"}\n",
    )
    .unwrap();
    let cfg = config(
        d,
        "c.ron",
        &format!(
            "    task: Jsonl(path: \"{}\"),\n    metric: Nll,\n    tau: 0.02,",
            jsonl.display()
        ),
    );
    let out = d.join("out");
    let o = acdc(&["--config", &cfg, "--out", &out.display().to_string()]);
    refused(&o, &["row 1", "3 tokens", "4", "align"]);
    assert!(!out.exists());
    // Zero ablation does not need corrupted prompts: the same file runs.
    let o = acdc(&[
        "--config",
        &cfg,
        "--out",
        &out.display().to_string(),
        "--ablation",
        "zero",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn output_folders_and_checkpoints_of_other_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = config(d, "c.ron", BASE);
    let out = d.join("run");
    let out_s = out.display().to_string();
    let o = acdc(&["--config", &cfg, "--out", &out_s, "--stop-after", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--resume"));
    let before = snapshot(&out);
    assert!(before.contains_key("checkpoint.json") && before.contains_key("circuit.svg"));

    // Starting again into the same folder: refused unless --force.
    let o = acdc(&["--config", &cfg, "--out", &out_s]);
    refused(&o, &["already holds", "--resume", "--force"]);
    assert_eq!(snapshot(&out), before);

    // Resuming with another config: refused, naming the difference.
    let o = acdc(&["--resume", &out_s, "--tau", "0.5"]);
    refused(&o, &["another config", "tau"]);
    assert_eq!(snapshot(&out), before);
    let other = config(d, "other.ron", &BASE.replace("seed: 2", "seed: 3"));
    let o = acdc(&["--resume", &out_s, "--config", &other]);
    refused(&o, &["another config", "task"]);
    assert_eq!(snapshot(&out), before);

    // A checkpoint from another run (other dataset) dropped into this folder: refused.
    let out2 = d.join("run2");
    let o = acdc(&[
        "--config",
        &other,
        "--out",
        &out2.display().to_string(),
        "--stop-after",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::copy(out2.join("checkpoint.json"), out.join("checkpoint.json")).unwrap();
    let before = snapshot(&out);
    let o = acdc(&["--resume", &out_s]);
    refused(&o, &["checkpoint.json", "another run", "dataset"]);
    assert_eq!(snapshot(&out), before);

    // A damaged checkpoint.
    std::fs::write(out.join("checkpoint.json"), "{ not json").unwrap();
    let before = snapshot(&out);
    let o = acdc(&["--resume", &out_s]);
    refused(&o, &["checkpoint.json", "damaged"]);
    assert_eq!(snapshot(&out), before);

    // Nothing to resume.
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = acdc(&["--resume", &empty.display().to_string()]);
    refused(&o, &["config.ron"]);

    // --force overwrites.
    let o = acdc(&["--config", &cfg, "--out", &out_s, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("circuit.json")).unwrap()).unwrap();
    assert_eq!(v["finished"], true);
    assert_eq!(v["counts"]["total"], 298);
}

#[test]
fn help_shows_an_example() {
    let o = Command::new(env!("CARGO_BIN_EXE_acdc"))
        .arg("--help")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        s.contains("acdc --config configs/acdc/toy-ioi.ron --out"),
        "{s}"
    );
    assert!(s.contains("--resume"));
}

#[test]
fn mean_ablation_per_template() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let jsonl = d.join("ds.jsonl");
    let mut lines = String::new();
    for i in 0..8 {
        let (a, b) = (2 + i, 20 + i);
        lines.push_str(&format!(
            "{{\"prompt\": \"w{a} w{b} w{a} w{b}\", \"answer\": \"w{a}\", \"wrong\": \"w{b}\", \
             \"corrupted\": \"w{b} w{a} w40 w41\", \"features\": {{\"template\": \"t{}\"}}}}\n",
            i % 2
        ));
    }
    std::fs::write(&jsonl, lines).unwrap();
    let body = |ablation: &str| {
        format!(
            "    task: Jsonl(path: \"{}\"),\n    metric: LogitDiff,\n    ablation: {ablation},\n    \
             tau: 0.05,",
            jsonl.display()
        )
    };
    let good = config(d, "mean.ron", &body("Mean(by: \"template\")"));
    let out = d.join("out");
    let o = acdc(&["--config", &good, "--out", &out.display().to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("circuit.json")).unwrap()).unwrap();
    assert_eq!(v["minimised"], "-logit-diff");
    assert!(v["clean_metric"].as_f64().unwrap().is_finite());
    let bad = config(d, "bad.ron", &body("Mean(by: \"shape\")"));
    let o = acdc(&[
        "--config",
        &bad,
        "--out",
        &d.join("o2").display().to_string(),
    ]);
    refused(&o, &["feature 'shape'", "template"]);
}

#[test]
fn resuming_after_the_model_files_changed_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = d.join("model");
    std::fs::create_dir(&model).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(
            root().join("tests/fixtures/gpt2-tiny").join(f),
            model.join(f),
        )
        .unwrap();
    }
    let cfg = d.join("c.ron");
    std::fs::write(
        &cfg,
        format!(
            "AcdcConfig(model: \"{}\", task: Induction(n: 4, seed: 2, seq_len: 4), tau: 0.02)",
            model.display()
        ),
    )
    .unwrap();
    let out = d.join("run");
    let out_s = out.display().to_string();
    let o = acdc(&[
        "--config",
        &cfg.display().to_string(),
        "--out",
        &out_s,
        "--stop-after",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Same shapes, other file: e.g. a retrained model saved over the old one.
    let mut text = std::fs::read_to_string(model.join("config.json")).unwrap();
    text.push('\n');
    std::fs::write(model.join("config.json"), text).unwrap();
    let before = snapshot(&out);
    let o = acdc(&["--resume", &out_s]);
    refused(&o, &["another run", "the model's files"]);
    assert_eq!(snapshot(&out), before);
}
