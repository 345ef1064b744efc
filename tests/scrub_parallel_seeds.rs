//! `scrub --seeds K` evaluates its seeds in parallel: the result must be bit-identical to a
//! serial run (a one-thread pool), whatever the number of threads.

use candle_core::DType;
use circuitscope::model::Model;
use circuitscope::scrub::{self, RunSettings, ScrubResult};
use std::path::PathBuf;

fn run_with_threads(file: &str, seeds: usize, threads: usize, dtype: DType) -> ScrubResult {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file);
    let p = scrub::prepare(&path, None).unwrap();
    let m = Model::load(&p.model_dir, dtype).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let (r, _) = pool
        .install(|| {
            scrub::run(
                &p,
                &m,
                &RunSettings {
                    seeds,
                    replay: None,
                },
            )
        })
        .unwrap();
    r
}

/// Every field as exact JSON (floats round-trip), the wall time left out.
fn exact(r: &ScrubResult) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap();
    v.as_object_mut().unwrap().remove("wall_time_s");
    v
}

#[test]
fn parallel_seeds_are_bit_identical_to_a_serial_run() {
    for (file, seeds, dtype) in [
        ("hypotheses/toy/induction-naive.ron", 4, DType::F32),
        ("hypotheses/toy/ioi-name-movers.ron", 2, DType::F32),
    ] {
        let serial = run_with_threads(file, seeds, 1, dtype);
        let got: Vec<u64> = serial.seeds.iter().map(|s| s.seed).collect();
        let want: Vec<u64> = (0..seeds as u64).map(|k| serial.seed + k).collect();
        assert_eq!(got, want, "seed order");
        // The seeds differ (otherwise the comparison below could not catch a mix-up).
        assert_ne!(
            serial.seeds[0].scrubbed.mean.to_bits(),
            serial.seeds[1].scrubbed.mean.to_bits(),
            "{file}"
        );
        let par = run_with_threads(file, seeds, 2, dtype);
        assert_eq!(exact(&par), exact(&serial), "{file} with 2 threads");
    }
    // A one-seed run is the first seed of a parallel run.
    let file = "hypotheses/toy/induction-naive.ron";
    let one = run_with_threads(file, 1, 2, DType::F32);
    let par = run_with_threads(file, 3, 2, DType::F32);
    assert_eq!(
        serde_json::to_value(&one.seeds[0]).unwrap(),
        serde_json::to_value(&par.seeds[0]).unwrap()
    );
}

/// The `scrub` binary runs its seeds one thread each, as many at once as `RAYON_NUM_THREADS`:
/// its JSON is the same with one thread and with two.
#[test]
fn the_binary_gives_one_result_for_any_number_of_threads() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut outs = vec![];
    for threads in ["1", "2"] {
        let json = dir.path().join(format!("t{threads}.json"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scrub"))
            .current_dir(&root)
            .env("RAYON_NUM_THREADS", threads)
            .args([
                "--hypothesis",
                "hypotheses/toy/induction-naive.ron",
                "--seeds",
                "3",
            ])
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("wall_time_s");
        assert_eq!(v["seeds"].as_array().map(Vec::len), Some(3));
        outs.push(v);
    }
    assert_eq!(outs[0], outs[1]);
}
