//! Results do not depend on the number of threads: `scrub`, `acdc` and the patching commands
//! write bit-identical outputs with `RAYON_NUM_THREADS=1` and `2`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(bin: &str, threads: &str, args: &[&str], extra: &[&Path]) {
    let out = Command::new(bin)
        .env("RAYON_NUM_THREADS", threads)
        .args(args)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn scrub_is_bit_identical_across_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outs = vec![];
    for threads in ["1", "2"] {
        let json = tmp.path().join(format!("r{threads}.json"));
        let samples = tmp.path().join(format!("s{threads}.json"));
        let h = root().join("hypotheses/toy/ioi-name-movers.ron");
        run(
            env!("CARGO_BIN_EXE_scrub"),
            threads,
            &["--seeds", "2", "--hypothesis"],
            &[
                &h,
                Path::new("--json"),
                &json,
                Path::new("--dump-samples"),
                &samples,
            ],
        );
        let mut v: serde_json::Value = serde_json::from_slice(&read(&json)).unwrap();
        v.as_object_mut().unwrap().remove("wall_time_s");
        outs.push((v.to_string(), read(&samples)));
    }
    assert_eq!(outs[0], outs[1]);
}

#[test]
fn acdc_is_bit_identical_across_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = root().join("configs/acdc/toy-ioi.ron");
    let mut outs = vec![];
    for threads in ["1", "2"] {
        let dir = tmp.path().join(format!("t{threads}"));
        run(
            env!("CARGO_BIN_EXE_acdc"),
            threads,
            &["--no-progress", "--n", "12", "--config"],
            &[&cfg, Path::new("--out"), &dir],
        );
        outs.push((
            read(&dir.join("circuit.json")),
            read(&dir.join("circuit.dot")),
        ));
    }
    assert_eq!(outs[0], outs[1]);
}

#[test]
fn patching_is_bit_identical_across_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = root().join("tests/fixtures/gpt2-tiny");
    let text = std::fs::read_to_string(fixture.join("patching.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (k, f) in [
        ("clean_tokens", "clean.json"),
        ("corrupted_tokens", "corrupted.json"),
        ("answers", "answers.json"),
    ] {
        std::fs::write(tmp.path().join(f), v[k].to_string()).unwrap();
    }
    let mut outs = vec![];
    for threads in ["1", "2"] {
        let mut files = vec![];
        for (kind, target) in [
            ("act", "attn_head_out_all_pos"),
            ("act", "resid_pre"),
            ("iterative", "logits"),
        ] {
            let out = tmp
                .path()
                .join(format!("{kind}-{target}-{threads}.safetensors"));
            let mut args = vec!["patch", kind];
            if kind == "act" {
                args.extend(["--target", target]);
            }
            run(
                env!("CARGO_BIN_EXE_circuitscope"),
                threads,
                &args,
                &[
                    Path::new("--model"),
                    &fixture,
                    Path::new("--tokens"),
                    &tmp.path().join("clean.json"),
                    Path::new("--corrupted-tokens"),
                    &tmp.path().join("corrupted.json"),
                    Path::new("--answers"),
                    &tmp.path().join("answers.json"),
                    Path::new("--out"),
                    &out,
                ],
            );
            files.push(read(&out));
        }
        outs.push(files);
    }
    assert_eq!(outs[0], outs[1]);
}
