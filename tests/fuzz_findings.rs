//! Inputs found while fuzzing (fuzz/README.md), each refused with one clear message instead of
//! a huge allocation or minutes of work.

use circuitscope::sweep::{SweepFile, TauAxis};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A τ range of 2·10^8 steps allocated 1.6 GB (and then listed 2·10^8 points) before anything
/// was checked; every caller of the range (sweep files, `acdc --roc --taus`) now refuses it.
#[test]
fn a_tau_range_with_too_many_steps_is_refused_before_allocating() {
    let e = TauAxis::parse_range("-4:0:200000000", "--taus")
        .unwrap_err()
        .to_string();
    assert!(e.contains("--taus") && e.contains("N ≤ 10000"), "{e}");
    assert!(e.contains("\"-4:0:31\""), "{e}");
    assert!(TauAxis::parse_range("-4:0:10000", "--taus").is_ok());
}

/// The product of the axes was expanded whatever its size: a few short lists made millions of
/// points. It is counted first and refused with each axis's size.
#[test]
fn a_sweep_with_too_many_points_is_refused_before_expanding() {
    let sweeps = root().join("configs/sweeps");
    let seeds: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    let text = format!(
        "AcdcSweep(base: \"../acdc/toy-induction.ron\", axes: (seed: [{}], tau: \"-4:0:100\"))",
        seeds.join(", ")
    );
    let e = SweepFile::from_ron(&text, "big.ron")
        .and_then(|f| f.plan(&sweeps.join("big.ron")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("big.ron") && e.contains("10100 points (seed 101 × tau 100)"),
        "{e}"
    );
    assert!(e.contains("split the sweep into several files"), "{e}");
    // At the limit, the plan is made.
    let text =
        "AcdcSweep(base: \"../acdc/toy-induction.ron\", axes: (seed: [0, 1], tau: \"-4:0:5000\"))";
    let plan = SweepFile::from_ron(text, "ok.ron")
        .and_then(|f| f.plan(&sweeps.join("ok.ron")))
        .unwrap();
    assert_eq!(plan.points.len(), 10_000);
}

/// The fuzzer's input as a user would give it: exit 2, one message naming the file and the
/// fix, no --out folder.
#[test]
fn acdc_sweep_refuses_a_huge_tau_range_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("huge.ron");
    let base = root().join("configs/acdc/toy-induction.ron");
    std::fs::write(
        &cfg,
        format!(
            "AcdcSweep(base: {:?}, axes: (tau: \"-4:0:200000000\"))",
            base.display().to_string()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_acdc"))
        .args(["sweep", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "one message:\n{err}");
    assert!(
        err.contains("huge.ron") && err.contains("N ≤ 10000"),
        "{err}"
    );
    assert!(!Path::new(&out).exists(), "nothing written");
}
