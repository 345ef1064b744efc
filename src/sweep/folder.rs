//! A sweep's folder: its manifest, one ordinary ACDC run folder per point, and each point's
//! state (done, running, failed, interrupted, missing).
//!
//! ```text
//! DIR/sweep-manifest.json   the points (names and full configs), the sweep's hash, where it ran
//! DIR/sweep.ron             a copy of the sweep file
//! DIR/points/NAME/          an ACDC run folder: config.ron, checkpoint.json, circuit.json, …,
//!                           plus sweep-lock (held while the point runs), sweep-time.json
//!                           (seconds spent) and sweep-error.txt (why its last attempt failed)
//! DIR/logs/                 Slurm task logs (point-INDEX-JOB.out)
//! DIR/slurm/array.sh        the Slurm array script
//! DIR/sweep.json, sweep.csv, sweep.html, pareto.svg, roc.svg   written by `sweep collect`
//! ```
//!
//! A point folder is an ordinary run: `acdc --resume DIR/points/NAME` continues it alone, and
//! `acdc --config DIR/points/NAME/config.ron --out OTHER` reruns it anywhere.

use super::spec::{Point, SweepPlan};
use crate::error::{read_to_string, write_atomic, Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The manifest's file name.
pub const MANIFEST: &str = "sweep-manifest.json";
/// The manifest's format tag.
pub const FORMAT: &str = "circuitscope-sweep/1";
/// Held (advisory lock) while a process runs the point.
pub const LOCK: &str = "sweep-lock";
/// Seconds a point has spent, over all its sessions.
pub const TIME: &str = "sweep-time.json";
/// Why a point's last attempt failed.
pub const ERROR: &str = "sweep-error.txt";

/// What `DIR/sweep-manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The program version that made the folder.
    pub version: String,
    /// [`SweepPlan::hash`].
    pub hash: String,
    /// The working directory the sweep was made in (Slurm tasks start there).
    pub workdir: String,
    /// The sweep.
    pub plan: SweepPlan,
}

/// Time a point has spent (written by the sweep runner; a point resumed by plain `acdc
/// --resume` keeps the time of its sweep sessions only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointTime {
    /// Wall-clock seconds over all sessions (loading, sweeping, writing).
    pub seconds: f64,
    /// Number of sessions.
    pub sessions: u32,
    /// Peak resident memory (MiB) of a process that ran this point alone, if known.
    pub peak_rss_mib: Option<f64>,
}

/// The state of one point.
#[derive(Debug, Clone, PartialEq)]
pub enum PointState {
    /// Finished: its `circuit.json` says so.
    Done,
    /// A process holds its lock now.
    Running,
    /// Its last attempt ended with an error (the message).
    Failed(String),
    /// Started but stopped without an error (killed, pre-empted, out of time): resume it.
    Interrupted,
    /// Never started.
    Missing,
}

impl PointState {
    /// A one-word label.
    pub fn label(&self) -> &'static str {
        match self {
            PointState::Done => "done",
            PointState::Running => "running",
            PointState::Failed(_) => "failed",
            PointState::Interrupted => "interrupted",
            PointState::Missing => "missing",
        }
    }
}

/// A sweep's folder.
#[derive(Debug, Clone)]
pub struct SweepFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// An exclusive hold on a point (released when dropped, or when the process dies).
#[derive(Debug)]
pub struct PointLock {
    _file: File,
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

/// Read a folder's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let p = manifest_path(dir);
    if !p.is_file() {
        return Err(Error::input(format!(
            "{}: not a sweep folder (no {MANIFEST}); make one with `acdc sweep --config \
             SWEEP.ron --out {}`",
            dir.display(),
            dir.display()
        )));
    }
    let text = read_to_string(&p)?;
    let m: Manifest = crate::json_file::parse(&text, &p, |e| {
        format!(
            "not a readable sweep manifest ({e}); it is damaged or from another program — start \
             the sweep in another folder"
        )
    })?;
    if m.format != FORMAT {
        return Err(Error::input(format!(
            "{}: format '{}' is not '{FORMAT}'; start the sweep in another folder",
            p.display(),
            m.format
        )));
    }
    Ok(m)
}

/// Remove `dir/points/NAME` folders and the sweep's own files (for `--force`).
fn clear(dir: &Path) -> Result<()> {
    let points = dir.join("points");
    if points.exists() {
        std::fs::remove_dir_all(&points).map_err(|e| Error::io(&points, e))?;
    }
    for f in [
        MANIFEST,
        "sweep.ron",
        "sweep.json",
        "sweep.csv",
        "sweep.html",
        "pareto.svg",
        "roc.svg",
        "roc.json",
    ] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// Refuse a folder that holds other results (points or an ACDC run) but no sweep manifest.
fn refuse_other_results(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let busy = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .any(|e| e.file_name() == "points" || e.file_name() == "checkpoint.json");
    if busy {
        return Err(Error::input(format!(
            "--out {}: this folder holds other results (points/ or an ACDC run) but no \
             sweep manifest; choose another --out or pass --force",
            dir.display()
        )));
    }
    Ok(())
}

impl SweepFolder {
    /// Open an existing sweep folder.
    pub fn open(dir: &Path) -> Result<SweepFolder> {
        Ok(SweepFolder {
            dir: dir.to_path_buf(),
            manifest: read_manifest(dir)?,
        })
    }

    /// Make `dir` the folder of `plan`, or check that it already is.
    ///
    /// A new folder gets the manifest, a copy of the sweep file (`text`) and every point's
    /// `config.ron`. A folder of the same plan is reused only with `resume` (its finished
    /// points are kept); a folder of another plan is refused unless `force` (which deletes
    /// its points).
    pub fn create_or_check(
        dir: &Path,
        plan: &SweepPlan,
        text: &str,
        resume: bool,
        force: bool,
    ) -> Result<SweepFolder> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::input(format!(
                "--out {}: exists and is not a folder",
                dir.display()
            )));
        }
        let hash = plan.hash();
        if manifest_path(dir).exists() && !force {
            return Self::reopen(dir, plan, &hash, resume);
        }
        if !force {
            refuse_other_results(dir)?;
        }
        if force {
            clear(dir)?;
        }
        Self::write_new(dir, plan, text, hash)
    }

    /// `dir` holds a sweep manifest: reuse it when it is this plan's and `resume` was asked.
    fn reopen(dir: &Path, plan: &SweepPlan, hash: &str, resume: bool) -> Result<SweepFolder> {
        let m = read_manifest(dir)?;
        if m.hash != hash {
            let theirs: Vec<&str> = m.plan.points.iter().map(|p| p.name.as_str()).collect();
            let ours: Vec<&str> = plan.points.iter().map(|p| p.name.as_str()).collect();
            let detail = if theirs == ours {
                "the same point names with other settings".to_string()
            } else {
                format!(
                    "{} points there, {} in this sweep",
                    theirs.len(),
                    ours.len()
                )
            };
            return Err(Error::input(format!(
                "--out {}: this folder holds a sweep made by another sweep file ({}; {detail}); \
                 mixing them would merge runs of two sweeps. Choose another --out, resume it \
                 with `acdc sweep --resume --out {}` alone, or pass --force to delete its points",
                dir.display(),
                m.plan.source,
                dir.display()
            )));
        }
        if !resume {
            return Err(Error::input(format!(
                "--out {}: this folder already holds this sweep; finish it with --resume \
                 (finished points are kept), choose another --out, or pass --force to start \
                 over",
                dir.display()
            )));
        }
        Ok(SweepFolder {
            dir: dir.to_path_buf(),
            manifest: m,
        })
    }

    /// Write a new sweep folder: every point's `config.ron`, the sweep file, then the manifest.
    fn write_new(dir: &Path, plan: &SweepPlan, text: &str, hash: String) -> Result<SweepFolder> {
        std::fs::create_dir_all(dir.join("points")).map_err(|e| Error::io(dir, e))?;
        let workdir = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let manifest = Manifest {
            format: FORMAT.into(),
            version: crate::version().into(),
            hash,
            workdir,
            plan: plan.clone(),
        };
        let folder = SweepFolder {
            dir: dir.to_path_buf(),
            manifest,
        };
        for p in &plan.points {
            let pd = folder.point_dir(p);
            std::fs::create_dir_all(&pd).map_err(|e| Error::io(&pd, e))?;
            write_atomic(pd.join("config.ron"), p.config.to_ron().as_bytes())?;
        }
        write_atomic(dir.join("sweep.ron"), text.as_bytes())?;
        // The manifest last: a folder without it was never a complete sweep folder.
        let json = serde_json::to_string_pretty(&folder.manifest)
            .map_err(|e| Error::input(format!("cannot serialise the manifest: {e}")))?;
        write_atomic(manifest_path(dir), format!("{json}\n").as_bytes())?;
        Ok(folder)
    }

    /// The points.
    pub fn points(&self) -> &[Point] {
        &self.manifest.plan.points
    }

    /// A point's run folder.
    pub fn point_dir(&self, p: &Point) -> PathBuf {
        self.dir.join("points").join(&p.name)
    }

    /// Try to hold a point; `None` when another process holds it.
    pub fn lock(&self, p: &Point) -> Result<Option<PointLock>> {
        let d = self.point_dir(p);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        let path = d.join(LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(PointLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The state of a point.
    pub fn state(&self, p: &Point) -> PointState {
        let d = self.point_dir(p);
        if finished(&d) {
            return PointState::Done;
        }
        if d.join(LOCK).exists() && matches!(self.lock(p), Ok(None)) {
            return PointState::Running;
        }
        if let Ok(e) = std::fs::read_to_string(d.join(ERROR)) {
            return PointState::Failed(e.trim().to_string());
        }
        if d.join(crate::acdc::checkpoint::CHECKPOINT).exists() {
            return PointState::Interrupted;
        }
        PointState::Missing
    }

    /// The time a point has spent.
    pub fn time(&self, p: &Point) -> Option<PointTime> {
        let t = std::fs::read_to_string(self.point_dir(p).join(TIME)).ok()?;
        serde_json::from_str(&t).ok()
    }

    /// Add a session's seconds to a point's time.
    pub fn add_time(&self, p: &Point, seconds: f64, peak_rss_mib: Option<f64>) -> Result<()> {
        let mut t = self.time(p).unwrap_or_default();
        t.seconds += seconds;
        t.sessions += 1;
        if let Some(m) = peak_rss_mib {
            t.peak_rss_mib = Some(t.peak_rss_mib.map_or(m, |x| x.max(m)));
        }
        let text = serde_json::to_string_pretty(&t).unwrap_or_default();
        write_atomic(self.point_dir(p).join(TIME), text.as_bytes())
    }

    /// The last `k` lines of a point's `acdc.log` and of its newest Slurm log.
    pub fn last_log_lines(&self, index: usize, k: usize) -> Vec<String> {
        let p = &self.points()[index];
        let mut out = vec![];
        let tail = |path: &Path, out: &mut Vec<String>| {
            if let Ok(t) = std::fs::read_to_string(path) {
                let lines: Vec<&str> = t.lines().collect();
                let from = lines.len().saturating_sub(k);
                out.push(format!("{}:", path.display()));
                out.extend(lines[from..].iter().map(|l| format!("  {l}")));
            }
        };
        tail(&self.point_dir(p).join("acdc.log"), &mut out);
        let logs = self.dir.join("logs");
        let prefix = format!("point-{index}-");
        if let Ok(rd) = std::fs::read_dir(&logs) {
            let newest = rd
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
            if let Some(e) = newest {
                tail(&e.path(), &mut out);
            }
        }
        out
    }
}

/// Whether the run folder `dir` holds a finished run.
pub fn finished(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("circuit.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["finished"] == serde_json::Value::Bool(true))
}
