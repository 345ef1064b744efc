//! The exploration commands end to end on the gpt2-tiny fixture: result files against
//! TransformerLens, the JSON labels, heatmaps and self-contained reports, `--help` examples,
//! and clear errors.

mod analysis_common;

use analysis_common::{fixture_dir, load};
use candle_core::DType;
use circuitscope::analysis::sweep::load_f64;
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_circuitscope"))
}

/// Write the fixture's clean/corrupted tokens and answers as the JSON files users have.
fn inputs(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(fixture_dir().join("patching.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (k, f) in [
        ("clean_tokens", "clean.json"),
        ("corrupted_tokens", "corrupted.json"),
        ("answers", "answers.json"),
    ] {
        std::fs::write(dir.join(f), v[k].to_string()).unwrap();
    }
    vec![
        "--model".into(),
        fixture_dir().display().to_string(),
        "--tokens".into(),
        dir.join("clean.json").display().to_string(),
        "--corrupted-tokens".into(),
        dir.join("corrupted.json").display().to_string(),
        "--answers".into(),
        dir.join("answers.json").display().to_string(),
        "--dtype".into(),
        "f64".into(),
    ]
}

fn run_ok(args: &[String]) -> String {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    for bad in ["<link", " src=", "href=", "@import", "url("] {
        assert!(
            !html.contains(bad),
            "the report refers to something outside: {bad}"
        );
    }
    assert!(html.contains("<svg"), "the report has no picture");
}

#[test]
fn patch_act_writes_transformer_lens_numbers_labels_heatmap_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("head_out.safetensors");
    let mut args: Vec<String> = vec!["patch".into(), "act".into()];
    args.extend(inputs(tmp.path()));
    args.extend([
        "--target".into(),
        "attn_head_out_all_pos".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    run_ok(&args);
    let (shape, values) = load_f64(&out, "patch").unwrap();
    assert_eq!(shape, vec![3, 4], "[layers, heads] as in TransformerLens");
    let f = load(DType::F64);
    let (_, want) = f.expected("act_patch_attn_head_out_all_pos");
    let d = values
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(d <= 1e-5, "differs from TransformerLens by {d}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    let axes = &json["patch"]["axes"];
    assert_eq!(axes[0]["name"], "layer");
    assert_eq!(axes[1]["labels"][3], "H3");
    let svg = std::fs::read_to_string(out.with_extension("svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">L2<") && svg.contains(">H3<"));
    assert_self_contained(&std::fs::read_to_string(out.with_extension("html")).unwrap());
}

#[test]
fn position_axes_carry_token_strings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("resid.safetensors");
    let mut args: Vec<String> = vec!["patch".into(), "act".into()];
    args.extend(inputs(tmp.path()));
    args.extend([
        "--target".into(),
        "resid_pre".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    run_ok(&args);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    // row 0 of the fixture starts with BOS (id 0) then id 8 = "w7" in its word-level vocabulary
    assert_eq!(json["patch"]["axes"][1]["labels"][0], "0 <|endoftext|>");
    assert_eq!(json["patch"]["axes"][1]["labels"][1], "1 w7");
    let svg = std::fs::read_to_string(out.with_extension("svg")).unwrap();
    assert!(svg.contains("&lt;|endoftext|&gt;"));
}

#[test]
fn dla_and_iterative_path_patching_files() {
    let tmp = tempfile::tempdir().unwrap();
    let f = load(DType::F64);
    let dla = tmp.path().join("dla.safetensors");
    let mut args: Vec<String> = vec!["dla".into()];
    args.extend(inputs(tmp.path()));
    args.extend(["--out".into(), dla.display().to_string()]);
    run_ok(&args);
    for key in ["dla_heads", "dla_layers"] {
        let (shape, got) = load_f64(&dla, key).unwrap();
        let (wshape, want) = f.expected(key);
        assert_eq!(shape, wshape);
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(d <= 1e-5, "{key}: {d}");
    }
    let it = tmp.path().join("iter.safetensors");
    let mut args: Vec<String> = vec!["patch".into(), "iterative".into()];
    args.extend(inputs(tmp.path()));
    args.extend([
        "--receivers".into(),
        "a1.h0.q".into(),
        "--out".into(),
        it.display().to_string(),
    ]);
    run_ok(&args);
    let (shape, v) = load_f64(&it, "patch").unwrap();
    assert_eq!(shape, vec![3, 5], "[layers, heads + MLP]");
    assert!(v[..5].iter().all(|x| x.is_finite()));
    assert!(
        v[5..].iter().all(|x| x.is_nan()),
        "later senders cannot reach a1.h0.q"
    );
}

#[test]
fn every_command_shows_an_example() {
    for cmd in [
        vec!["patch", "act"],
        vec!["patch", "path"],
        vec!["patch", "iterative"],
        vec!["dla"],
        vec!["logit-lens"],
        vec!["attn"],
        vec!["ablate"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = bin().args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd:?} --help failed");
        assert!(
            text.contains("Examples:") && text.contains("circuitscope "),
            "{cmd:?} --help has no example:\n{text}"
        );
    }
}

#[test]
fn bad_inputs_fail_clearly_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut base = inputs(tmp.path());
    // no answers
    let cut = base.iter().position(|a| a == "--answers").unwrap();
    base.drain(cut..cut + 2);
    let out = tmp.path().join("x.safetensors");
    let mut args: Vec<String> = vec!["patch".into(), "act".into()];
    args.extend(base.clone());
    args.extend([
        "--target".into(),
        "resid_pre".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    let o = bin().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--answers"));
    assert!(!out.exists());
    // unknown target
    let mut args: Vec<String> = vec!["patch".into(), "act".into()];
    args.extend(inputs(tmp.path()));
    args.extend([
        "--target".into(),
        "attn_head_zz".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    let o = bin().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("attn_head_out_all_pos"));
    // output folder missing
    let mut args: Vec<String> = vec!["dla".into()];
    args.extend(inputs(tmp.path()));
    args.extend([
        "--out".into(),
        tmp.path()
            .join("no/such/dir/x.safetensors")
            .display()
            .to_string(),
    ]);
    let o = bin().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
    // a receiver that does not exist
    let mut args: Vec<String> = vec!["patch".into(), "path".into()];
    args.extend(inputs(tmp.path()));
    args.extend([
        "--senders".into(),
        "a0.h1".into(),
        "--receivers".into(),
        "a7.h0.q".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    let o = bin().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
    assert!(!out.exists());
}

#[test]
fn ablate_from_a_dataset_with_templates_and_named_positions_matches_transformer_lens() {
    // The rows of the fixture as a JSONL dataset: two templates (rows 0–1, 2–3), a named
    // position X = 3, the corrupted rows as the means (per template).
    let tmp = tempfile::tempdir().unwrap();
    let f = load(DType::F64);
    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("analysis.json")).unwrap(),
    )
    .unwrap();
    let mut lines = String::new();
    for i in 0..f.clean.len() {
        let line = serde_json::json!({
            "prompt": format!("row {i}"),
            "tokens": f.clean[i],
            "corrupted_tokens": f.corrupted[i],
            "answer": [f.answers[i].0],
            "wrong": [f.answers[i].1],
            "positions": {"END": 7, "X": 3},
            "features": {"template": if i < 2 { "t0" } else { "t1" }},
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    let ds = tmp.path().join("rows.jsonl");
    std::fs::write(&ds, lines).unwrap();
    let out = tmp.path().join("abl.safetensors");
    let args: Vec<String> = [
        "ablate",
        "--model",
        &fixture_dir().display().to_string(),
        "--dataset",
        &ds.display().to_string(),
        "--dtype",
        "f64",
        "--circuit",
        "a1.h2@END, a2.h0@END@-2, a0.h1@X",
        "--k",
        "a1.h2",
        "--out",
        &out.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run_ok(&args);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    let res = &json["ablation"]["notes"]["result"];
    let a = &refs["ablation"];
    let close = |x: &serde_json::Value, y: &serde_json::Value| {
        let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
        assert!((x - y).abs() < 1e-9, "{x} vs {y}");
    };
    close(&res["model"], &a["model"]);
    close(&res["circuit"], &a["circuit_metric"]);
    close(&res["nothing"], &a["nothing"]);
    close(
        &res["completeness"][0]["circuit_minus_k"],
        &a["circuit_minus_k"],
    );
    close(
        &res["completeness"][0]["model_minus_k"],
        &a["model_minus_k"],
    );
    assert_self_contained(&std::fs::read_to_string(out.with_extension("html")).unwrap());
}
