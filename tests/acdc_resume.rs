//! Checkpoints and resume: a run stopped (or killed with SIGKILL) after any receiver and
//! resumed writes the same `circuit.json`, byte for byte, as an uninterrupted run.

use circuitscope::acdc::experiment::{self, RunSettings};
use circuitscope::acdc::{Config, Prepared};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config_text(tau: f64) -> String {
    format!(
        "AcdcConfig(\n    model: \"{}\",\n    task: Induction(n: 6, seed: 5, seq_len: 5),\n    \
         metric: Kl,\n    ablation: Corrupted,\n    tau: {tau},\n)\n",
        root().join("tests/fixtures/gpt2-tiny").display()
    )
}

fn settings(out: &Path) -> RunSettings {
    RunSettings {
        out: out.to_path_buf(),
        ..Default::default()
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn stop_and_resume_after_any_receiver_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config::from_ron(&config_text(0.01), "test").unwrap();
    let prep = Prepared::new(&config).unwrap();
    let full = tmp.path().join("full");
    let s = experiment::run(&prep, &settings(&full)).unwrap();
    assert!(s.finished);
    assert!(
        s.kept > 3 && s.kept < s.total / 2,
        "{} of {} kept",
        s.kept,
        s.total
    );
    let want = read(&full.join("circuit.json"));
    let receivers = s.steps_done; // an upper bound on the receivers that did work
    let mut checked = 0;
    for k in [1usize, 2, 5, 11, 23, 40] {
        if k >= receivers {
            continue;
        }
        let dir = tmp.path().join(format!("stop{k}"));
        let mut st = settings(&dir);
        st.stop_after = Some(k);
        let part = experiment::run(&prep, &st).unwrap();
        if part.finished {
            continue;
        }
        assert_ne!(
            read(&dir.join("circuit.json")),
            want,
            "k = {k}: stopped run looks finished"
        );
        // Resume in stages, stopping again once, then to the end.
        st.resume = true;
        st.stop_after = Some(3);
        experiment::run(&prep, &st).unwrap();
        st.stop_after = None;
        let done = experiment::run(&prep, &st).unwrap();
        assert!(done.finished);
        assert_eq!(read(&dir.join("circuit.json")), want, "k = {k}");
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} stop points exercised");
}

#[test]
fn resume_refuses_another_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Config::from_ron(&config_text(0.01), "a").unwrap();
    let b = Config::from_ron(&config_text(0.02), "b").unwrap();
    let pa = Prepared::new(&a).unwrap();
    let pb = Prepared::new(&b).unwrap();
    let dir = tmp.path().join("run");
    let mut st = settings(&dir);
    st.stop_after = Some(2);
    experiment::run(&pa, &st).unwrap();
    let before = read(&dir.join("circuit.json"));
    let ck_before = read(&dir.join("checkpoint.json"));
    // Another config: refused, nothing touched.
    st.resume = true;
    let err = experiment::run(&pb, &st).unwrap_err().to_string();
    assert!(
        err.contains("belongs to another run") && err.contains("the config"),
        "{err}"
    );
    assert_eq!(read(&dir.join("circuit.json")), before);
    assert_eq!(read(&dir.join("checkpoint.json")), ck_before);
    // A fresh start into a folder holding a run: refused without --force.
    st.resume = false;
    let err = experiment::run(&pa, &st).unwrap_err().to_string();
    assert!(
        err.contains("already holds an ACDC run") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(read(&dir.join("circuit.json")), before);
    // A damaged checkpoint: refused with a message naming it.
    std::fs::write(dir.join("checkpoint.json"), b"{\"format\": 3").unwrap();
    st.resume = true;
    let err = experiment::run(&pa, &st).unwrap_err().to_string();
    assert!(
        err.contains("checkpoint.json") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(read(&dir.join("circuit.json")), before);
    // --force starts afresh.
    st.resume = false;
    st.force = true;
    st.stop_after = None;
    let s = experiment::run(&pb, &st).unwrap();
    assert!(s.finished);
}

fn acdc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_acdc"))
}

fn next_step(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("checkpoint.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["state"]["next_step"].as_u64()
}

/// A real `kill -9` in the middle of a run, then `acdc --resume`.
#[test]
fn sigkill_then_resume_gives_the_same_circuit() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.ron");
    // Larger n: each receiver takes a while, so the kill lands mid-run.
    std::fs::write(&cfg, config_text(0.01).replace("n: 6", "n: 40")).unwrap();
    let full = tmp.path().join("full");
    let st = acdc()
        .args(["--no-progress", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&full)
        .status()
        .unwrap();
    assert!(st.success());
    let want = read(&full.join("circuit.json"));
    let total_steps: u64 = {
        let v: serde_json::Value = serde_json::from_slice(&want).unwrap();
        v["steps_total"].as_u64().unwrap()
    };
    let mut kills = 0;
    for (i, target) in [3u64, total_steps / 2].into_iter().enumerate() {
        let dir = tmp.path().join(format!("killed{i}"));
        let mut child = acdc()
            .args(["--no-progress", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&dir)
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while next_step(&dir).unwrap_or(0) < target && t0.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // SIGKILL: no chance to clean up.
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            continue; // finished before the kill; nothing to test on this one
        }
        kills += 1;
        let st = acdc()
            .args(["--no-progress", "--resume"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(
            read(&dir.join("circuit.json")),
            want,
            "kill at step ≥ {target}"
        );
        let log = std::fs::read_to_string(dir.join("acdc.log")).unwrap();
        assert!(log.contains("resumed at step"), "{log}");
    }
    assert!(kills >= 1, "the runs finished before they could be killed");
}

/// The result does not depend on the number of threads.
#[test]
fn thread_count_does_not_change_the_circuit() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.ron");
    std::fs::write(&cfg, config_text(0.005)).unwrap();
    let mut outs = vec![];
    for threads in ["1", "2"] {
        let dir = tmp.path().join(format!("t{threads}"));
        let st = acdc()
            .env("RAYON_NUM_THREADS", threads)
            .args(["--no-progress", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
        outs.push(read(&dir.join("circuit.json")));
    }
    assert_eq!(outs[0], outs[1]);
}
