//! `acdc sweep`: points run in parallel give the bytes of points run one by one (and alone,
//! with plain `acdc`); a sweep killed at any moment and resumed merges to the same
//! `sweep.json`; status, collect, the Slurm script and every bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn acdc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acdc"))
        .args(args)
        .output()
        .expect("run acdc")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let o = acdc(args);
    assert!(o.status.success(), "acdc {args:?} failed:\n{}", text(&o));
    text(&o)
}

/// Exit code 2 and a message containing `want`.
fn bad(args: &[&str], want: &str) -> String {
    let o = acdc(args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "acdc {args:?}:\n{t}");
    assert!(t.contains(want), "acdc {args:?}: no `{want}` in:\n{t}");
    assert_eq!(
        t.matches("error:").count(),
        1,
        "one message, not several:\n{t}"
    );
    t
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A base config (the shipped toy induction model, a small dataset) and a sweep file of
/// `taus` next to it; returns the sweep file.
fn sweep_file(dir: &Path, taus: &str, extra_axes: &str) -> PathBuf {
    std::fs::write(
        dir.join("base.ron"),
        "AcdcConfig(model: \"toy-induction\", task: Induction(n: 12, seq_len: 8, seed: 1), \
         metric: Kl, ablation: Resample(shift: 1), tau: 0.001, dtype: F64)",
    )
    .unwrap();
    let p = dir.join("sweep.ron");
    std::fs::write(
        &p,
        format!(
            "AcdcSweep(base: \"base.ron\", axes: (tau: {taus}{extra_axes}), known_circuit: \"{}\")",
            root().join("models/toy-induction/CIRCUIT.json").display()
        ),
    )
    .unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn point_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("points"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Every point's circuit.json and the merged sweep.json (and the CSV but its time column)
/// are the same bytes in both folders.
fn assert_same_results(a: &Path, b: &Path) {
    let (pa, pb) = (point_dirs(a), point_dirs(b));
    assert_eq!(pa.len(), pb.len());
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(x.file_name(), y.file_name());
        assert_eq!(
            read(&x.join("circuit.json")),
            read(&y.join("circuit.json")),
            "{}",
            x.display()
        );
    }
    assert_eq!(read(&a.join("sweep.json")), read(&b.join("sweep.json")));
    let no_time = |p: &Path| -> Vec<String> {
        String::from_utf8(read(&p.join("sweep.csv")))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(no_time(a), no_time(b));
}

#[test]
fn parallel_serial_and_alone_give_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let f = sweep_file(tmp.path(), "\"-3:0:3\"", ", seed: [0, 1], order: [Random]");
    let (par, ser) = (tmp.path().join("par"), tmp.path().join("ser"));
    let out = ok(&[
        "sweep",
        "--config",
        s(&f),
        "--out",
        s(&par),
        "--jobs",
        "2",
        "--no-progress",
    ]);
    assert!(out.contains("6 points done"), "{out}");
    assert!(out.contains("ROC AUC"), "{out}");
    ok(&[
        "sweep",
        "--config",
        s(&f),
        "--out",
        s(&ser),
        "--jobs",
        "1",
        "--no-progress",
    ]);
    assert_same_results(&par, &ser);
    // A point run alone by plain `acdc` from its folder's config writes the same circuit.json.
    let name = "order-random_seed-1_tau-1e0";
    let alone = tmp.path().join("alone");
    ok(&[
        "--config",
        s(&par.join("points").join(name).join("config.ron")),
        "--out",
        s(&alone),
        "--no-progress",
    ]);
    assert_eq!(
        read(&alone.join("circuit.json")),
        read(&par.join("points").join(name).join("circuit.json"))
    );
    // The merged result: every point, its numbers, the ROC per group.
    let v: serde_json::Value = serde_json::from_slice(&read(&par.join("sweep.json"))).unwrap();
    assert_eq!(v["points"].as_array().unwrap().len(), 6);
    assert_eq!(v["roc"].as_array().unwrap().len(), 2, "one curve per seed");
    let p0 = &v["points"][0];
    assert_eq!(p0["name"], "order-random_seed-0_tau-1e-3");
    assert_eq!(p0["clean_metric"], 0.0);
    assert!(p0["faithfulness"].as_f64().unwrap() > 0.99, "{p0}");
    let csv = String::from_utf8(read(&par.join("sweep.csv"))).unwrap();
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.starts_with("name,group,tau,metric,ablation,n,seed,kept,total,"));
    for f in ["pareto.svg", "roc.svg", "sweep.html"] {
        assert!(par.join(f).is_file(), "{f}");
    }
    let html = String::from_utf8(read(&par.join("sweep.html"))).unwrap();
    assert!(html.contains("<svg") && html.contains("AUC"));
    // Resuming a finished sweep runs nothing and merges the same bytes.
    let before = read(&par.join("sweep.json"));
    let again = ok(&["sweep", "--out", s(&par), "--resume", "--no-progress"]);
    assert!(again.contains("0 points done"), "{again}");
    assert_eq!(read(&par.join("sweep.json")), before);
}

#[test]
fn killed_and_stopped_sweeps_resume_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let f = sweep_file(tmp.path(), "[0.0001, 0.001, 0.01, 0.1]", "");
    let full = tmp.path().join("full");
    ok(&[
        "sweep",
        "--config",
        s(&f),
        "--out",
        s(&full),
        "--no-progress",
    ]);

    // Stopped cleanly after one receiver per point: every point is interrupted; status says so.
    let stopped = tmp.path().join("stopped");
    let out = ok(&[
        "sweep",
        "--config",
        s(&f),
        "--out",
        s(&stopped),
        "--no-progress",
        "--stop-after",
        "1",
    ]);
    assert!(out.contains("4 stopped"), "{out}");
    let st = ok(&["sweep", "status", s(&stopped)]);
    assert!(st.contains("4 interrupted"), "{st}");
    assert!(st.contains("acdc.log:"), "last log lines: {st}");
    ok(&["sweep", "--out", s(&stopped), "--resume", "--no-progress"]);
    assert_same_results(&full, &stopped);

    // Killed (SIGKILL) as soon as the first checkpoint is written, then resumed.
    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_acdc"))
        .args([
            "sweep",
            "--config",
            s(&f),
            "--out",
            s(&killed),
            "--jobs",
            "2",
            "--no-progress",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let any_checkpoint = || {
        killed.join("points").is_dir()
            && point_dirs(&killed)
                .iter()
                .any(|d| d.join("checkpoint.json").exists())
    };
    while !any_checkpoint() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let st = ok(&["sweep", "status", s(&killed)]);
    assert!(
        !st.contains("4 points: 4 done"),
        "the kill came after the end; nothing was tested: {st}"
    );
    assert!(!killed.join("sweep.json").exists());
    ok(&["sweep", "--out", s(&killed), "--resume", "--no-progress"]);
    assert_same_results(&full, &killed);
}

#[test]
fn status_lists_a_failed_point_with_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let f = sweep_file(tmp.path(), "[0.001, 0.01]", "");
    let dir = tmp.path().join("sw");
    ok(&[
        "sweep",
        "--config",
        s(&f),
        "--out",
        s(&dir),
        "--no-progress",
        "--stop-after",
        "1",
    ]);
    // A damaged checkpoint: resuming that point fails, the other finishes.
    let bad_point = dir.join("points/tau-1e-3");
    std::fs::write(bad_point.join("checkpoint.json"), "{ not json").unwrap();
    let o = acdc(&["sweep", "--out", s(&dir), "--resume", "--no-progress"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("1 points done"), "{}", text(&o));
    let st = ok(&["sweep", "status", s(&dir)]);
    assert!(st.contains("1 done") && st.contains("1 failed"), "{st}");
    assert!(st.contains("point 0 tau-1e-3 failed"), "{st}");
    assert!(st.contains("not a readable ACDC checkpoint"), "{st}");
    assert!(st.contains("acdc.log:"), "{st}");
    // Collect merges what finished and names what did not.
    let c = ok(&["sweep", "collect", s(&dir)]);
    assert!(
        c.contains("merged 1 finished points (1 not finished)"),
        "{c}"
    );
    let v: serde_json::Value = serde_json::from_slice(&read(&dir.join("sweep.json"))).unwrap();
    assert_eq!(v["missing"][0], "tau-1e-3");
}

#[test]
fn slurm_script_has_one_task_per_missing_point() {
    let tmp = tempfile::tempdir().unwrap();
    let f = sweep_file(tmp.path(), "[0.001, 0.01, 0.1]", "");
    let text_of = |p: &Path| std::fs::read_to_string(p).unwrap();
    let sweep = std::fs::read_to_string(&f)
        .unwrap()
        .replace(
            "known_circuit",
            "slurm: (time: \"00:30:00\", mem: \"2G\", partition: \"cpu\", extra: [\"--qos=low\"]), known_circuit",
        );
    std::fs::write(&f, sweep).unwrap();
    let dir = tmp.path().join("sw");
    let out = ok(&[
        "sweep",
        "--config",
        s(&f),
        "--out",
        s(&dir),
        "--slurm",
        "--mem",
        "3G",
        "--cpus",
        "2",
    ]);
    assert!(out.contains("sbatch "), "{out}");
    let script = text_of(&dir.join("slurm/array.sh"));
    for want in [
        "#SBATCH --array=0-2\n",
        "#SBATCH --time=00:30:00\n",
        "#SBATCH --mem=3G\n",
        "#SBATCH --cpus-per-task=2\n",
        "#SBATCH --partition=cpu\n",
        "#SBATCH --qos=low\n",
        "#SBATCH --requeue\n",
        "--resume --point \"$SLURM_ARRAY_TASK_ID\"",
        "--threads-per-run \"${SLURM_CPUS_PER_TASK:-1}\"",
    ] {
        assert!(script.contains(want), "no {want:?} in:\n{script}");
    }
    // What a task runs: one point, by number; then the array holds only the others.
    ok(&["sweep", "--out", s(&dir), "--resume", "--point", "1"]);
    ok(&["sweep", "--out", s(&dir), "--slurm"]);
    assert!(text_of(&dir.join("slurm/array.sh")).contains("#SBATCH --array=0,2\n"));
    // A task of a finished point does nothing.
    let again = ok(&["sweep", "--out", s(&dir), "--resume", "--point", "tau-1e-2"]);
    assert!(again.contains("1 points done"), "{again}");
}

#[test]
fn bad_inputs_get_one_message_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let f = sweep_file(tmp.path(), "[0.001, 0.01]", "");
    let out = tmp.path().join("sw");
    // An axis with no values.
    let empty = tmp.path().join("empty.ron");
    std::fs::write(
        &empty,
        "AcdcSweep(base: \"base.ron\", axes: (tau: [0.1], seed: []))",
    )
    .unwrap();
    bad(
        &["sweep", "--config", s(&empty), "--out", s(&out)],
        "axis `seed` has no values",
    );
    // A point whose config is invalid: named, and nothing is written.
    let inv = tmp.path().join("inv.ron");
    std::fs::write(
        &inv,
        "AcdcSweep(base: \"base.ron\", axes: (tau: [0.1], ablation: [Resample(shift: 1), Resample(shift: 12)]))",
    )
    .unwrap();
    bad(
        &["sweep", "--config", s(&inv), "--out", s(&out)],
        "sweep point abl-resample12_tau-1e-1 is invalid",
    );
    assert!(!out.exists(), "nothing may be written before the check");
    // --jobs 0.
    bad(
        &["sweep", "--config", s(&f), "--out", s(&out), "--jobs", "0"],
        "--jobs 0",
    );
    // A folder made by another sweep file.
    ok(&["sweep", "--config", s(&f), "--out", s(&out), "--slurm"]);
    std::fs::create_dir(tmp.path().join("o")).unwrap();
    let other = sweep_file(&tmp.path().join("o"), "[0.5]", "");
    bad(
        &["sweep", "--config", s(&other), "--out", s(&out), "--resume"],
        "made by another sweep file",
    );
    // The same sweep again without --resume.
    bad(
        &["sweep", "--config", s(&f), "--out", s(&out)],
        "finish it with --resume",
    );
    // --submit without sbatch on PATH.
    let o = Command::new(env!("CARGO_BIN_EXE_acdc"))
        .args(["sweep", "--out", s(&out), "--slurm", "--submit"])
        .env("PATH", tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("`sbatch` was not found on PATH"),
        "{}",
        text(&o)
    );
    // Not a sweep folder.
    bad(&["sweep", "status", s(tmp.path())], "not a sweep folder");
}

#[test]
fn roc_is_a_sweep_of_one_config() {
    let tmp = tempfile::tempdir().unwrap();
    sweep_file(tmp.path(), "[0.1]", "");
    let out = tmp.path().join("roc");
    let circuit = root().join("models/toy-induction/CIRCUIT.json");
    let base = tmp.path().join("base.ron");
    let args = [
        "--config",
        s(&base),
        "--out",
        s(&out),
        "--roc",
        s(&circuit),
        "--taus=-4:0:3",
        "--no-progress",
    ];
    let o = ok(&args);
    assert!(o.contains("ROC AUC 1.0000 over 3 thresholds"), "{o}");
    let v: serde_json::Value = serde_json::from_slice(&read(&out.join("roc.json"))).unwrap();
    assert_eq!(v["auc"], 1.0);
    assert_eq!(v["truth_key"], "edges_resample");
    assert_eq!(v["points"].as_array().unwrap().len(), 3);
    assert_eq!(v["truth"], 10);
    // Each τ is an ordinary run folder; the sweep's report is there too.
    assert_eq!(point_dirs(&out).len(), 3);
    assert!(out.join("points/tau-1e-4/circuit.json").is_file());
    assert!(out.join("roc.svg").is_file() && out.join("sweep.html").is_file());
    bad(&args, "roc.json exists");
}
