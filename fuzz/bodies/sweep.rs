//! Sweep files (`acdc sweep --config`): parse any text as a file in `configs/sweeps/`, expand it
//! into points (each point's config validated, as `acdc sweep` does before anything is written),
//! and check each point's dataset size against the memory limit, as preparing it would first.
//!
//! Preparing a point (`sweep::local::check_points`: loading the model, building the dataset, a
//! forward pass) is left out: it takes seconds per input under the sanitizer, and the model and
//! dataset parsers have targets of their own. Base configs must lie in the repository's
//! `configs/` folder, so the fuzzer reads no other file of the machine.

use circuitscope::sweep::SweepFile;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository's `configs/` folder (canonical), found from this crate's folder.
fn configs_dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|d| d.join("configs"))
            .find(|d| d.join("sweeps").is_dir())
            .and_then(|d| d.canonicalize().ok())
            .expect("the repository's configs/sweeps folder exists")
    })
}

/// Whether `written` (a path in the sweep file) names a file inside `configs/`.
fn inside_configs(sweep: &Path, written: &str) -> bool {
    circuitscope::ron_file::resolve(sweep, written)
        .canonicalize()
        .is_ok_and(|p| p.starts_with(configs_dir()))
}

/// Run one input; true when it expanded into valid points.
pub fn run(data: &[u8]) -> bool {
    let path = configs_dir().join("sweeps").join("fuzz.ron");
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(file) = SweepFile::from_ron(text, &path.display().to_string()) else {
        return false;
    };
    let bases = file.base.iter().chain(file.axes.configs.iter().flatten());
    if !bases.into_iter().all(|b| inside_configs(&path, b)) {
        return false;
    }
    let Ok(plan) = file.plan(&path) else {
        return false;
    };
    assert!(!plan.points.is_empty(), "a plan without points");
    let mut names: Vec<&str> = plan.points.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), plan.points.len(), "two points with one name");
    for p in &plan.points {
        let _ = circuitscope::memory::check_task(&p.config.task_with_n(), &p.name);
    }
    true
}
