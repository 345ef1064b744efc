use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_circuitscope"))
}

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/gpt2-tokenizer");

#[test]
fn data_ioi_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let st = bin()
            .args([
                "data",
                "ioi",
                "--n",
                "50",
                "--seed",
                "3",
                "--prompt-type",
                "mixed",
            ])
            .args(["--flip", "ABB->XYZ, BAB->XYZ", "--model", MODEL, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        std::fs::read(out).unwrap()
    };
    let a = run("a.jsonl");
    let b = run("b.jsonl");
    assert_eq!(a, b, "same seed, byte-identical output");
    let text = String::from_utf8(a).unwrap();
    assert_eq!(text.lines().count(), 50);
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    for k in [
        "prompt",
        "tokens",
        "positions",
        "answer",
        "wrong",
        "features",
        "corrupted_prompt",
        "corrupted_tokens",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert!(v["positions"]["END"].is_u64() && v["positions"]["S1+1"].is_u64());
}

#[test]
fn data_other_tasks() {
    let dir = tempfile::tempdir().unwrap();
    for task in [
        "induction",
        "greater-than",
        "digits",
        "number-words",
        "months",
    ] {
        let out = dir.path().join(format!("{task}.jsonl"));
        let st = bin()
            .args(["data", task, "--n", "5", "--model", MODEL, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{task}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let text = std::fs::read_to_string(out).unwrap();
        assert_eq!(text.lines().count(), 5, "{task}");
        assert!(text.contains("corrupted_tokens"), "{task}");
    }
}

#[test]
fn bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.jsonl");
    let cases: [&[&str]; 5] = [
        &["data", "ioi", "--flip", "XX->Y", "--model", MODEL],
        &["data", "ioi", "--template", "baba-77", "--model", MODEL],
        &["data", "months", "--n", "100", "--model", MODEL],
        &["data", "ioi", "--model", "/nonexistent/model"],
        &["data", "sorting", "--model", MODEL],
    ];
    for args in cases {
        let st = bin().args(args).arg("--out").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&st.stderr);
        assert_eq!(st.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!out.exists(), "nothing written on error");
    }
}

#[test]
fn help_shows_an_example() {
    let st = bin().args(["data", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("circuitscope data ioi --n 50"), "{text}");
}
