//! An ACDC run killed with SIGKILL at ten points — the first milliseconds (config.ron written,
//! no checkpoint yet) and nine places spread over the sweep — resumes with `acdc --resume` to
//! the same `circuit.json`, byte for byte, as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn acdc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_acdc"));
    c.env("RAYON_NUM_THREADS", "1");
    c
}

fn config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/acdc/toy-induction.ron")
}

fn next_step(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("checkpoint.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["state"]["next_step"].as_u64()
}

#[test]
fn sigkill_at_ten_points_then_resume_gives_the_same_circuit() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let st = acdc()
        .args(["--no-progress", "--config"])
        .arg(config())
        .arg("--out")
        .arg(&full)
        .status()
        .unwrap();
    assert!(st.success());
    let want = std::fs::read(full.join("circuit.json")).unwrap();
    let steps: u64 = {
        let v: serde_json::Value = serde_json::from_slice(&want).unwrap();
        v["steps_total"].as_u64().unwrap()
    };
    // Point 0: as soon as config.ron exists. Points 1–9: once the checkpoint reaches a step
    // spread over the sweep.
    // Where each kill landed: the step the run had saved (None: no checkpoint yet).
    let mut landed: Vec<Option<u64>> = vec![];
    for point in 0..10u64 {
        let dir = tmp.path().join(format!("killed{point}"));
        let mut child = acdc()
            .args(["--no-progress", "--config"])
            .arg(config())
            .arg("--out")
            .arg(&dir)
            .spawn()
            .unwrap();
        let target = point * steps / 10;
        let reached = |d: &Path| {
            if point == 0 {
                d.join("config.ron").exists()
            } else {
                next_step(d).unwrap_or(0) >= target
            }
        };
        let t0 = Instant::now();
        while !reached(&dir) && t0.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // SIGKILL: no chance to clean up.
        let _ = child.kill();
        let status = child.wait().unwrap();
        let saved = next_step(&dir);
        if !status.success() && saved.is_none_or(|s| s < steps) {
            landed.push(saved);
        }
        let out = acdc()
            .args(["--no-progress", "--resume"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "point {point}: resume failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(dir.join("circuit.json")).unwrap(),
            want,
            "point {point} (step ≥ {target})"
        );
    }
    // Killed before the end, at different steps: each resume had a different amount left.
    landed.sort();
    landed.dedup();
    assert!(
        landed.len() >= 8,
        "only {} of 10 runs were killed before they finished, at different steps: {landed:?}",
        landed.len()
    );
}
