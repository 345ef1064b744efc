//! Replays every committed fuzz corpus file (`fuzz/corpus/TARGET/`) through the fuzz target's own
//! body (`fuzz/bodies/TARGET.rs`, which `fuzz/fuzz_targets/TARGET.rs` includes too, so the two
//! cannot drift): no input panics, every input is either accepted or refused with an error, and
//! each corpus still holds inputs the parsers accept (a body that refused everything would fuzz
//! nothing). This is CI's fuzz smoke test; the fuzzing itself needs nightly (see fuzz/README.md).

#[path = "../fuzz/bodies/acdc_config.rs"]
mod acdc_config;
#[path = "../fuzz/bodies/checkpoint.rs"]
mod checkpoint;
#[path = "../fuzz/bodies/hypothesis.rs"]
mod hypothesis;
#[path = "../fuzz/bodies/jsonl.rs"]
mod jsonl;
#[path = "../fuzz/bodies/model_files.rs"]
mod model_files;
#[path = "../fuzz/bodies/sweep.rs"]
mod sweep;
#[path = "../fuzz/bodies/token_files.rs"]
mod token_files;

use std::path::Path;

/// Run every file of `fuzz/corpus/TARGET` through `body`; returns (files, accepted).
fn replay(target: &str, body: fn(&[u8]) -> bool) -> (usize, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut accepted = 0;
    for f in &files {
        let data = std::fs::read(f).unwrap();
        match std::panic::catch_unwind(|| body(&data)) {
            Ok(ok) => accepted += usize::from(ok),
            Err(_) => panic!("{} panicked in the {target} fuzz body", f.display()),
        }
    }
    assert!(!files.is_empty(), "{}: no corpus files", dir.display());
    assert!(
        accepted > 0,
        "{}: the {target} body accepted none of {} files",
        dir.display(),
        files.len()
    );
    (files.len(), accepted)
}

#[test]
fn acdc_config_corpus() {
    replay("acdc_config", acdc_config::run);
}

#[test]
fn checkpoint_corpus() {
    replay("checkpoint", checkpoint::run);
}

#[test]
fn hypothesis_corpus() {
    replay("hypothesis", hypothesis::run);
}

#[test]
fn jsonl_corpus() {
    replay("jsonl", jsonl::run);
}

#[test]
fn model_files_corpus() {
    replay("model_files", model_files::run);
}

#[test]
fn sweep_corpus() {
    replay("sweep", sweep::run);
}

#[test]
fn token_files_corpus() {
    replay("token_files", token_files::run);
}
