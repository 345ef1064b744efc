//! `circuitscope forward` as a user runs it: outputs, and one clear message per bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_circuitscope"))
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tiny")
}

fn forward(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("forward")
        .args(args)
        .output()
        .unwrap()
}

fn copy_model(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture().join(f), to.join(f)).unwrap();
    }
}

#[test]
fn prompt_prints_tokens_and_top_k_and_out_holds_logits_and_activations() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.safetensors");
    let o = forward(&[
        "--model",
        fixture().to_str().unwrap(),
        "--prompt",
        "w1 w2 w3",
        "--top-k",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--cache",
        "blocks.*.attn.hook_pattern,hook_embed",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("\"<|endoftext|>\", \"w1\", \"w2\", \"w3\""),
        "{s}"
    );
    assert_eq!(
        s.lines()
            .filter(|l| l.contains("logit") && l.contains("prob"))
            .count(),
        3,
        "{s}"
    );
    let t = candle_core::safetensors::load(&out, &candle_core::Device::Cpu).unwrap();
    assert_eq!(t["logits"].dims(), &[1, 4, 100]);
    assert_eq!(t["blocks.2.attn.hook_pattern"].dims(), &[1, 4, 4, 4]);
    assert!(t.contains_key("hook_embed"));
}

fn expect_refusal(o: Output, needles: &[&str], out: &Path) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    for n in needles {
        assert!(e.contains(n), "missing {n:?} in {e}");
    }
    assert_eq!(
        e.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{e}"
    );
    assert!(!out.exists(), "partial output written");
}

#[test]
#[allow(clippy::too_many_lines)] // one table of bad inputs, each with its expected message
fn bad_input_gets_one_clear_message_and_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("o.safetensors");
    let outs = out.to_str().unwrap();
    let tokens = d.join("t.json");
    std::fs::write(&tokens, "[[0, 1, 2]]").unwrap();
    let toks = tokens.to_str().unwrap();

    // Missing config.json.
    let m = d.join("noconfig");
    copy_model(&m);
    std::fs::remove_file(m.join("config.json")).unwrap();
    expect_refusal(
        forward(&[
            "--model",
            m.to_str().unwrap(),
            "--tokens",
            toks,
            "--out",
            outs,
        ]),
        &["config.json"],
        &out,
    );
    // Malformed config.json, with line:column.
    let m = d.join("badjson");
    copy_model(&m);
    std::fs::write(
        m.join("config.json"),
        "{\n  \"model_type\": \"gpt2\",\n  oops\n}",
    )
    .unwrap();
    expect_refusal(
        forward(&[
            "--model",
            m.to_str().unwrap(),
            "--tokens",
            toks,
            "--out",
            outs,
        ]),
        &["config.json:3:"],
        &out,
    );
    // Unknown model_type (llama is supported now: use one that is not).
    let m = d.join("mamba");
    copy_model(&m);
    std::fs::write(m.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    expect_refusal(
        forward(&[
            "--model",
            m.to_str().unwrap(),
            "--tokens",
            toks,
            "--out",
            outs,
        ]),
        &["mamba", "gpt2", "gpt_neox", "llama"],
        &out,
    );
    // Shape mismatch: config says a wider model than the weights hold.
    let m = d.join("shape");
    copy_model(&m);
    let cfg = std::fs::read_to_string(fixture().join("config.json"))
        .unwrap()
        .replace("\"n_embd\": 48", "\"n_embd\": 64");
    std::fs::write(m.join("config.json"), cfg).unwrap();
    expect_refusal(
        forward(&[
            "--model",
            m.to_str().unwrap(),
            "--tokens",
            toks,
            "--out",
            outs,
        ]),
        &["wte.weight", "[100, 48]", "[100, 64]"],
        &out,
    );
    // Missing tensor.
    let m = d.join("missing");
    copy_model(&m);
    let cfg = std::fs::read_to_string(fixture().join("config.json"))
        .unwrap()
        .replace("\"n_layer\": 3", "\"n_layer\": 4");
    std::fs::write(m.join("config.json"), cfg).unwrap();
    expect_refusal(
        forward(&[
            "--model",
            m.to_str().unwrap(),
            "--tokens",
            toks,
            "--out",
            outs,
        ]),
        &["missing tensor", "h.3."],
        &out,
    );
    // Missing tokenizer.json with --prompt.
    let m = d.join("notok");
    copy_model(&m);
    std::fs::remove_file(m.join("tokenizer.json")).unwrap();
    expect_refusal(
        forward(&[
            "--model",
            m.to_str().unwrap(),
            "--prompt",
            "w1",
            "--out",
            outs,
        ]),
        &["tokenizer.json"],
        &out,
    );
    // Token id past the vocabulary, too long, ragged.
    let f = fixture();
    let fs = f.to_str().unwrap();
    std::fs::write(&tokens, "[[0, 100]]").unwrap();
    expect_refusal(
        forward(&["--model", fs, "--tokens", toks, "--out", outs]),
        &["t.json", "100", "vocabulary"],
        &out,
    );
    std::fs::write(&tokens, format!("[{:?}]", vec![1; 40])).unwrap();
    expect_refusal(
        forward(&["--model", fs, "--tokens", toks, "--out", outs]),
        &["context"],
        &out,
    );
    std::fs::write(&tokens, "[[0, 1], [0]]").unwrap();
    expect_refusal(
        forward(&["--model", fs, "--tokens", toks, "--out", outs]),
        &["ragged"],
        &out,
    );
    std::fs::write(&tokens, "[[0, 1], ").unwrap();
    expect_refusal(
        forward(&["--model", fs, "--tokens", toks, "--out", outs]),
        &["t.json:1:"],
        &out,
    );
    // Unknown activation name, with close matches.
    std::fs::write(&tokens, "[[0, 1]]").unwrap();
    expect_refusal(
        forward(&[
            "--model",
            fs,
            "--tokens",
            toks,
            "--out",
            outs,
            "--cache",
            "blocks.0.attn.hook_patern",
        ]),
        &["hook_patern", "blocks.0.attn.hook_pattern"],
        &out,
    );
    // An absent model says where it looked.
    expect_refusal(
        forward(&[
            "--model",
            "no-org/no-model",
            "--tokens",
            toks,
            "--out",
            outs,
        ]),
        &["looked in", "never downloads"],
        &out,
    );
}
