//! Bad input, class by class: each ends with exit code 2, one message that names the file (or
//! flag) and the fix, and no partial output. Runs on the shipped toy models.

use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scrub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scrub"))
}

fn acdc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_acdc"))
}

fn cs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_circuitscope"))
}

/// Run; expect exit code 2 and one `error:` message containing every `want`.
fn refused(cmd: &mut Command, want: &[&str]) -> String {
    let out: Output = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{cmd:?}: expected exit 2\n{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "one message:\n{err}");
    for w in want {
        assert!(err.contains(w), "{cmd:?}: message lacks {w:?}:\n{err}");
    }
    err
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files in `dir` (names), sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A copy of a shipped model in `dir`.
fn copy_model(name: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(root().join("models").join(name).join(f), dir.join(f)).unwrap();
    }
}

/// Set one value of tensor `name` in a model folder's weights.
fn poison(dir: &Path, name: &str, index: usize, value: f32) {
    let path = dir.join("model.safetensors");
    let mut map: HashMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect();
    let t = &map[name];
    let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[index] = value;
    let bad = Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap();
    map.insert(name.to_string(), bad);
    candle_core::safetensors::save(&map, &path).unwrap();
}

/// A hypothesis on toy-induction (or the model folder `model`).
fn hypothesis(model: &str, n: usize, other_inputs: &str, sampler: &str) -> String {
    format!(
        "Hypothesis(\n  name: \"t\",\n  model: \"{model}\",\n  task: Induction(n: {n}, seed: 0, \
         seq_len: 5, min_token: 2),\n  metric: Nll,\n  seed: 0,\n  root: Node(\n    name: \
         \"logits\",\n    other_inputs: {other_inputs},\n    children: [\n      Node(name: \
         \"direct\", matcher: Direct(to: [\"embed\"], at: [\"END\"]), sampler: {sampler}),\n    \
         ],\n  ),\n)\n"
    )
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

// ---- non-finite values ------------------------------------------------------------------

#[test]
fn non_finite_weights_are_refused_at_load_naming_tensor_and_index() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    copy_model("toy-induction", &m);
    poison(&m, "transformer.ln_f.weight", 17, f32::NAN);
    let h = write(
        &tmp.path().join("h.ron"),
        &hypothesis(&m.display().to_string(), 8, "Uncond", "Exact"),
    );
    let json = tmp.path().join("out.json");
    let want = ["ln_f.weight", "NaN at index [17]", "model.safetensors"];
    refused(
        scrub().arg("--hypothesis").arg(&h).arg("--json").arg(&json),
        &want,
    );
    assert!(!json.exists(), "a result was written from NaN weights");
    let cfg = write(
        &tmp.path().join("c.ron"),
        &format!(
            "AcdcConfig(model: \"{}\", task: Induction(n: 6, seed: 5, seq_len: 5), tau: 0.01)",
            m.display()
        ),
    );
    let out = tmp.path().join("run");
    refused(
        acdc()
            .args(["--no-progress", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&out),
        &want,
    );
    assert!(files(&out).is_empty(), "acdc wrote {:?}", files(&out));
    // One row of the embedding: the infinity is found too.
    copy_model("toy-induction", &m);
    poison(&m, "transformer.wte.weight", 5 * 180 + 3, f32::INFINITY);
    let f = tmp.path().join("f.safetensors");
    refused(
        cs().args(["forward", "--prompt", "t3 t4", "--model"])
            .arg(&m)
            .arg("--out")
            .arg(&f),
        &["wte.weight", "inf at index [5, 3]"],
    );
    assert!(!f.exists());
}

#[test]
fn non_finite_metrics_are_refused_before_use() {
    use circuitscope::analysis::setup::tokens_dataset;
    use circuitscope::metric::Metric;
    let ds = tokens_dataset(&[vec![1, 2], vec![3, 4]], None, Some(&[(1, 2), (2, 1)])).unwrap();
    let mut v = vec![0f32; 2 * 5];
    v[7] = f32::NAN;
    let logits = Tensor::from_vec(v, (2, 5), &Device::Cpu).unwrap();
    for m in [Metric::LogitDiff, Metric::Nll, Metric::Prob] {
        let e = m
            .per_example(&logits, &ds, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 1") && e.contains("NaN"), "{m}: {e}");
    }
}

// ---- sizes checked before allocating ----------------------------------------------------

#[test]
fn huge_sizes_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let h = write(
        &tmp.path().join("h.ron"),
        &hypothesis("toy-induction", 1_000_000_000, "Uncond", "Exact"),
    );
    let e = refused(
        scrub().arg("--hypothesis").arg(&h).arg("--check"),
        &[
            "h.ron",
            "n = 1000000000",
            "needs at least",
            "limit",
            "--max-memory",
        ],
    );
    assert!(e.contains("lower n"), "{e}");
    let out = tmp.path().join("run");
    refused(
        acdc()
            .args(["--no-progress", "--n", "1000000000", "--config"])
            .arg(root().join("configs/acdc/toy-induction.ron"))
            .arg("--out")
            .arg(&out),
        &["--n", "n = 1000000000", "limit"],
    );
    assert!(files(&out).is_empty());
    let jl = tmp.path().join("d.jsonl");
    refused(
        cs().args([
            "data",
            "ioi",
            "--n",
            "1000000000",
            "--model",
            "toy-ioi",
            "--out",
        ])
        .arg(&jl),
        &["--n", "limit"],
    );
    assert!(!jl.exists());
    // The limit is a flag: a small run is refused under a tiny limit.
    let small = write(
        &tmp.path().join("s.ron"),
        &hypothesis("toy-induction", 8, "Uncond", "Exact"),
    );
    refused(
        scrub()
            .arg("--hypothesis")
            .arg(&small)
            .args(["--check", "--max-memory", "1K"]),
        &["set by --max-memory 1K"],
    );
}

// ---- undefined statistics ---------------------------------------------------------------

#[test]
fn one_example_is_refused_where_a_standard_error_is_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let h = write(
        &tmp.path().join("h.ron"),
        &hypothesis("toy-induction", 1, "Uncond", "Exact"),
    );
    refused(
        scrub().arg("--hypothesis").arg(&h),
        &["h.ron", "N = 1", "N ≥ 2", "raise the task's n"],
    );
    refused(
        scrub().arg("--hypothesis").arg(&h).args(["--seeds", "0"]),
        &["--seeds 0", "at least 1"],
    );
}

#[test]
fn loss_recovered_is_undefined_when_clean_equals_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    // Everything the hypothesis does not claim is drawn from the same rows: the baseline is the
    // clean run, and loss recovered is 0 / 0.
    let h = write(
        &tmp.path().join("h.ron"),
        &hypothesis("toy-induction", 6, "Exact", "Uncond"),
    );
    let json = tmp.path().join("r.json");
    let out = ok(scrub().arg("--hypothesis").arg(&h).arg("--json").arg(&json));
    assert!(out.contains("loss recovered  undefined:"), "{out}");
    assert!(out.contains("float noise") && !out.contains("NaN"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["loss_recovered_undefined"].is_string(), "{v}");
    // At the noise level of f32 (the 5e-7), and a real difference.
    use candle_core::DType;
    use circuitscope::metric::loss_recovered;
    assert!(loss_recovered(1.0, 1.0, 1.0 + 5e-7, DType::F32).is_err());
    assert!(loss_recovered(1.0, 1.0, 1.0 + 5e-7, DType::F64).is_ok());
    assert!(loss_recovered(1.0, 1.0, 1.0, DType::F64).is_err());
    let x = loss_recovered(1.5, 1.0, 2.0, DType::F32).unwrap();
    assert_eq!(x, 0.5);
}

// ---- unknown words ----------------------------------------------------------------------

#[test]
fn unknown_words_in_jsonl_prompts_are_refused_naming_line_and_word() {
    use circuitscope::data::jsonl::{parse, JsonlOptions};
    use circuitscope::tokenizer::Tokenizer;
    let tok = Tokenizer::from_model_dir(&root().join("models/toy-ioi")).unwrap();
    let opts = JsonlOptions::default();
    let good = "{\"prompt\": \"Then, Mary and John went\", \"answer\": \" Mary\"}\n";
    parse(good, "d.jsonl", &opts, &tok).unwrap();
    let bad =
        format!("{good}{{\"prompt\": \"Then, Mary and zebra went\", \"answer\": \" Mary\"}}\n");
    let e = parse(&bad, "d.jsonl", &opts, &tok).unwrap_err().to_string();
    assert!(e.starts_with("d.jsonl:2: field `prompt`"), "{e}");
    assert!(
        e.contains("\"zebra\"") && e.contains("not in the vocabulary"),
        "{e}"
    );
    let bad = "{\"prompt\": \"Then, Mary went\", \"corrupted\": \"Then, quokka went\", \
               \"answer\": \" Mary\"}\n";
    let e = parse(bad, "d.jsonl", &opts, &tok).unwrap_err().to_string();
    assert!(
        e.contains("d.jsonl:1: field `corrupted`") && e.contains("quokka"),
        "{e}"
    );
    // An answer the vocabulary lacks is not "1 tokens, not one".
    let bad = "{\"prompt\": \"Then, Mary went\", \"answer\": \" zebra\"}\n";
    let e = parse(bad, "d.jsonl", &opts, &tok).unwrap_err().to_string();
    assert!(
        e.contains("not in the vocabulary") && !e.contains("1 tokens"),
        "{e}"
    );
}

// ---- messages that misled ---------------------------------------------------------------

#[test]
fn an_existing_file_is_not_called_a_missing_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(&tmp.path().join("afile"), "x");
    refused(
        scrub()
            .arg("--hypothesis")
            .arg(root().join("hypotheses/toy/induction-refined.ron"))
            .arg("--json")
            .arg(file.join("out.json")),
        &["--json", "is a file, not a folder"],
    );
    refused(
        cs().args([
            "forward",
            "--prompt",
            "t3",
            "--model",
            "toy-induction",
            "--out",
        ])
        .arg(file.join("f.safetensors")),
        &["--out", "is a file, not a folder"],
    );
}

#[test]
fn os_errors_are_printed_once() {
    let e = refused(
        scrub().arg("--hypothesis").arg("/no/such/hypothesis.ron"),
        &["/no/such/hypothesis.ron"],
    );
    assert_eq!(e.matches("No such file").count(), 1, "{e}");
}

#[test]
fn forward_with_tokens_and_no_out_says_nothing_would_be_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(&tmp.path().join("t.json"), "[[0, 3, 4]]");
    refused(
        cs().args(["forward", "--model", "toy-induction", "--tokens"])
            .arg(&t),
        &["--tokens", "--out"],
    );
}

#[test]
fn an_answer_id_out_of_range_names_the_answers_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(&tmp.path().join("t.json"), "[[0, 3, 4], [0, 5, 6]]");
    let c = write(&tmp.path().join("c.json"), "[[0, 5, 6], [0, 3, 4]]");
    let a = write(&tmp.path().join("a.json"), "[[3, 999], [5, 3]]");
    let out = tmp.path().join("p.safetensors");
    refused(
        cs().args([
            "patch",
            "act",
            "--model",
            "toy-induction",
            "--target",
            "attn_head_out_all_pos",
            "--tokens",
        ])
        .arg(&t)
        .arg("--corrupted-tokens")
        .arg(&c)
        .arg("--answers")
        .arg(&a)
        .arg("--out")
        .arg(&out),
        &["999", "--answers"],
    );
    assert!(!out.exists());
}

#[test]
fn fixed_sampler_files_are_read_by_check_with_file_line_and_node() {
    let tmp = tempfile::tempdir().unwrap();
    let text = hypothesis("toy-induction", 4, "Uncond", "Fixed(\"rows.json\")");
    let h = write(&tmp.path().join("h.ron"), &text);
    let tried = tmp.path().join("rows.json");
    refused(
        scrub().arg("--hypothesis").arg(&h).arg("--check"),
        &[
            "h.ron:11:",
            "'direct'",
            "Fixed(\"rows.json\")",
            &tried.display().to_string(),
        ],
    );
    write(&tried, "[0, 1, 2]");
    refused(
        scrub().arg("--hypothesis").arg(&h).arg("--check"),
        &["h.ron:11:", "lists 3 rows but the dataset has 4"],
    );
    write(&tried, "[0, 1, 2, 9]");
    refused(
        scrub().arg("--hypothesis").arg(&h).arg("--check"),
        &["row 9 is past"],
    );
    write(&tried, "[3, 1, 2, 0]");
    // Read relative to the hypothesis, from any working directory.
    ok(scrub()
        .current_dir(std::env::temp_dir())
        .arg("--hypothesis")
        .arg(&h)
        .arg("--check"));
}

#[test]
fn roc_under_a_file_fails_before_the_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(&tmp.path().join("afile"), "x");
    let t0 = std::time::Instant::now();
    refused(
        acdc()
            .args(["--no-progress", "--config"])
            .arg(root().join("configs/acdc/toy-induction.ron"))
            .arg("--out")
            .arg(file.join("roc"))
            .arg("--roc")
            .arg(root().join("models/toy-induction/CIRCUIT.json"))
            .args(["--taus=-6:0:200"]),
        &["--out", "is a file, not a folder"],
    );
    // 200 sweeps take minutes; the refusal comes before the first.
    assert!(t0.elapsed().as_secs() < 20, "{:?}", t0.elapsed());
}

#[test]
fn a_run_folder_with_config_but_no_checkpoint_resumes_or_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = root().join("configs/acdc/toy-induction.ron");
    let full = tmp.path().join("full");
    ok(acdc()
        .args(["--no-progress", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&full));
    let want = std::fs::read(full.join("circuit.json")).unwrap();
    // A kill in the first milliseconds leaves config.ron (and perhaps the log) only.
    for (i, resume) in [true, false].into_iter().enumerate() {
        let dir = tmp.path().join(format!("early{i}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(full.join("config.ron"), dir.join("config.ron")).unwrap();
        write(&dir.join("acdc.log"), "");
        if resume {
            ok(acdc().args(["--no-progress", "--resume"]).arg(&dir));
        } else {
            ok(acdc()
                .args(["--no-progress", "--config"])
                .arg(&cfg)
                .arg("--out")
                .arg(&dir));
        }
        assert_eq!(std::fs::read(dir.join("circuit.json")).unwrap(), want);
    }
}

// ---- relative paths in RON files --------------------------------------------------------

#[test]
fn relative_paths_in_ron_files_are_relative_to_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let sub = tmp.path().join("exp");
    copy_model("toy-ioi", &sub.join("model"));
    write(
        &sub.join("d.jsonl"),
        "{\"prompt\": \"Then, Mary and John went to the store. John gave a drink to\", \
         \"answer\": \" Mary\", \"wrong\": \" John\"}\n\
         {\"prompt\": \"Then, John and Mary went to the store. Mary gave a drink to\", \
         \"answer\": \" John\", \"wrong\": \" Mary\"}\n",
    );
    let text = "Hypothesis(name: \"r\", model: \"model\", task: Jsonl(path: \"d.jsonl\"), \
                metric: LogitDiff, root: Node(name: \"logits\", children: [Node(name: \"e\", \
                matcher: Direct(to: [\"embed\"]), sampler: Exact)]))";
    let h = write(&sub.join("h.ron"), text);
    // From anywhere: both paths are found next to the hypothesis.
    ok(scrub()
        .current_dir(std::env::temp_dir())
        .arg("--hypothesis")
        .arg(&h)
        .arg("--check"));
    let cfg = write(
        &sub.join("c.ron"),
        "AcdcConfig(model: \"model\", task: Jsonl(path: \"d.jsonl\"), metric: LogitDiff, \
         ablation: Zero, tau: 0.01)",
    );
    let out = tmp.path().join("run");
    ok(acdc()
        .current_dir(std::env::temp_dir())
        .args(["--no-progress", "--stop-after", "1", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out));
    // A path that exists only relative to the working directory is refused, naming the path
    // that was tried.
    let h2 = write(
        &sub.join("h2.ron"),
        &text.replace("model: \"model\"", "model: \"exp/model\""),
    );
    refused(
        scrub()
            .current_dir(tmp.path())
            .arg("--hypothesis")
            .arg(&h2)
            .arg("--check"),
        &[
            "h2.ron",
            &sub.join("exp/model").display().to_string(),
            "relative to the file's folder",
        ],
    );
    let h3 = write(
        &sub.join("h3.ron"),
        &text.replace("d.jsonl", "missing.jsonl"),
    );
    refused(
        scrub().arg("--hypothesis").arg(&h3).arg("--check"),
        &[&sub.join("missing.jsonl").display().to_string()],
    );
}

// ---- RON parse errors: one typed error with file, line and column -----------------------

#[test]
fn every_ron_reader_reports_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let h = write(&tmp.path().join("h.ron"), "Hypothesis(\n  name: 3,\n)");
    refused(scrub().arg("--hypothesis").arg(&h), &["h.ron:2:9:"]);
    let c = write(&tmp.path().join("c.ron"), "AcdcConfig(\n  tau: \"x\",\n)");
    refused(
        acdc()
            .arg("--config")
            .arg(&c)
            .arg("--out")
            .arg(tmp.path().join("o")),
        &["c.ron:2:8:"],
    );
    let t = write(&tmp.path().join("t.ron"), "TrainConfig(\n\n  bogus: 1)");
    refused(
        cs().arg("train")
            .arg("--config")
            .arg(&t)
            .arg("--out")
            .arg(tmp.path().join("m")),
        &["t.ron:3:"],
    );
    let e = circuitscope::data::TaskSpec::from_ron("Ioi(n: -1)", "task.ron").unwrap_err();
    assert!(
        matches!(e, circuitscope::Error::Parse { line: 1, .. }),
        "{e:?}"
    );
}
