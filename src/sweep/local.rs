//! Running a sweep's points: in parallel on this machine (a `rayon` pool, one worker per run),
//! or one point per process (a Slurm array task).
//!
//! Every point runs as `acdc` runs it alone: a fresh run into its folder, or a resumed one
//! when its folder holds a checkpoint; so killing a sweep at any moment and running it again
//! with `--resume` finishes exactly what is missing, and every `circuit.json` has the bytes an
//! uninterrupted run (or the point run alone) writes.

use super::folder::{PointState, SweepFolder};
use super::spec::Point;
use crate::acdc::checkpoint::CHECKPOINT;
use crate::acdc::experiment::{self, RunSettings};
use crate::acdc::Prepared;
use crate::error::{write_atomic, Error, Result};
use crate::memory::peak_rss_mib;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// How one point's attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It finished now: kept units, total units, seconds of this session.
    Finished {
        /// Units kept.
        kept: usize,
        /// Units in the graph.
        total: usize,
        /// Seconds this session.
        seconds: f64,
    },
    /// It had finished before; nothing to do.
    AlreadyDone,
    /// Another process is running it.
    Busy,
    /// It stopped cleanly before the end (`stop_after`), resumable.
    Stopped,
    /// It failed (the message, also in the point's `sweep-error.txt`).
    Failed(String),
}

/// What a running sweep reports (to draw progress); called from worker threads.
pub trait Observer: Sync {
    /// Point `index` starts (or resumes).
    fn started(&self, index: usize, point: &Point);
    /// Point `index` ended.
    fn ended(&self, index: usize, point: &Point, outcome: &Outcome);
}

/// An observer that reports nothing.
pub struct Quiet;

impl Observer for Quiet {
    fn started(&self, _: usize, _: &Point) {}
    fn ended(&self, _: usize, _: &Point, _: &Outcome) {}
}

/// Settings of a local run.
#[derive(Debug, Clone, Default)]
pub struct LocalSettings {
    /// Points run at once (≥ 1).
    pub jobs: usize,
    /// Run only these points (indices); `None`: every point.
    pub only: Option<Vec<usize>>,
    /// Stop every point cleanly after this many receivers (resumable; for tests).
    pub stop_after: Option<usize>,
    /// Record each point's peak memory (true when the process runs one point at a time).
    pub record_memory: bool,
}

/// Run one point into its folder: resume it if it has a checkpoint, start it otherwise.
pub fn run_point(
    folder: &SweepFolder,
    index: usize,
    stop_after: Option<usize>,
    record_memory: bool,
) -> Outcome {
    let p = &folder.points()[index];
    let dir = folder.point_dir(p);
    // A status query holds the lock for an instant; try a few times before calling it busy.
    let mut lock = None;
    for attempt in 0..5 {
        match folder.lock(p) {
            Ok(Some(l)) => {
                lock = Some(l);
                break;
            }
            Ok(None) if attempt < 4 => std::thread::sleep(std::time::Duration::from_millis(40)),
            Ok(None) => return Outcome::Busy,
            Err(e) => return Outcome::Failed(e.to_string()),
        }
    }
    let _lock = lock;
    if super::folder::finished(&dir) {
        return Outcome::AlreadyDone;
    }
    let _ = std::fs::remove_file(dir.join(super::folder::ERROR));
    let t0 = Instant::now();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<_> {
        let settings = RunSettings {
            out: dir.clone(),
            // A fresh start replaces only the config.ron the sweep wrote: no checkpoint, so
            // nothing computed is lost.
            force: true,
            resume: dir.join(CHECKPOINT).is_file(),
            stop_after,
            naive: false,
        };
        let prep = Prepared::new(&p.config)?;
        experiment::run(&prep, &settings)
    }));
    let seconds = t0.elapsed().as_secs_f64();
    let outcome = match res {
        Ok(Ok(s)) if s.finished => Outcome::Finished {
            kept: s.kept,
            total: s.total,
            seconds,
        },
        Ok(Ok(_)) => Outcome::Stopped,
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Outcome::Failed(format!("internal error (panic): {msg}"))
        }
    };
    let mem = if record_memory { peak_rss_mib() } else { None };
    let _ = folder.add_time(p, seconds, mem);
    if let Outcome::Failed(msg) = &outcome {
        let _ = write_atomic(
            dir.join(super::folder::ERROR),
            format!("{msg}\n").as_bytes(),
        );
    }
    outcome
}

/// Check every point before anything runs: its config, its model, its dataset and its metric.
/// Points that share everything but τ, seed and order are checked once. The error names the
/// first bad point.
pub fn check_points(points: &[Point]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for p in points {
        if !seen.insert(super::spec::preparation_key(&p.config)) {
            continue;
        }
        let check = || -> Result<()> {
            let prep = Prepared::new(&p.config)?;
            prep.evaluator()?;
            Ok(())
        };
        check().map_err(|e| {
            Error::input(format!(
                "sweep point {} is invalid: {e} (nothing has run; fix the sweep file or its \
                 base config)",
                p.name
            ))
        })?;
    }
    Ok(())
}

/// Order `todo` (point indices) so that the points expected to take longest start first,
/// which keeps the workers busy until the end (longest-processing-time scheduling). More
/// examples take longer, and a lower τ keeps more edges, so more edges are tested; ties keep
/// sweep order. Only the order of work changes: every point writes what it writes alone.
pub fn longest_first(todo: &mut [usize], points: &[Point]) {
    let n = |i: usize| points[i].config.n.unwrap_or(0);
    todo.sort_by(|&a, &b| {
        n(b).cmp(&n(a))
            .then(points[a].config.tau.total_cmp(&points[b].config.tau))
    });
}

/// Run the points that are not done, `settings.jobs` at a time, longest expected first;
/// returns each attempted point's outcome (by index).
pub fn run_local(
    folder: &SweepFolder,
    settings: &LocalSettings,
    observer: &dyn Observer,
) -> Result<Vec<(usize, Outcome)>> {
    if settings.jobs == 0 {
        return Err(Error::input(
            "--jobs 0: at least one point must run at a time; give --jobs 1 or more (the \
             default is the number of cores)",
        ));
    }
    let mut todo: Vec<usize> = match &settings.only {
        Some(v) => v.clone(),
        None => (0..folder.points().len())
            .filter(|&i| folder.state(&folder.points()[i]) != PointState::Done)
            .collect(),
    };
    longest_first(&mut todo, folder.points());
    let results = std::sync::Mutex::new(Vec::with_capacity(todo.len()));
    let pool = crate::threads::pool(settings.jobs.min(todo.len()), "sweep")?;
    let next = AtomicUsize::new(0);
    pool.scope(|s| {
        for _ in 0..settings.jobs.min(todo.len()) {
            s.spawn(|_| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = todo.get(k) else { break };
                let p = &folder.points()[i];
                observer.started(i, p);
                let o = run_point(folder, i, settings.stop_after, settings.record_memory);
                observer.ended(i, p, &o);
                if let Ok(mut r) = results.lock() {
                    r.push((i, o));
                }
            });
        }
    });
    let mut r = results
        .into_inner()
        .map_err(|_| Error::input("internal: a sweep worker panicked"))?;
    r.sort_by_key(|(i, _)| *i);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acdc::Config;

    fn point(name: &str, n: Option<usize>, tau: f64) -> Point {
        let mut config = Config::from_ron(
            "AcdcConfig(model: \"toy-ioi\", task: Ioi(n: 10), metric: Kl, ablation: Corrupted, \
             tau: 0.01)",
            "test.ron",
        )
        .expect("a minimal config");
        config.n = n;
        config.tau = tau;
        Point {
            name: name.into(),
            config,
        }
    }

    #[test]
    fn larger_datasets_then_lower_taus_start_first() {
        let points = vec![
            point("a", Some(10), 0.1),
            point("b", Some(10), 0.001),
            point("c", Some(50), 0.1),
            point("d", Some(10), 0.01),
            point("e", Some(10), 0.001),
        ];
        let mut todo = vec![0, 1, 2, 3, 4];
        longest_first(&mut todo, &points);
        assert_eq!(
            todo,
            vec![2, 1, 4, 3, 0],
            "n descending, then τ ascending, ties in order"
        );
    }
}
