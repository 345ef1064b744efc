//! How long a point takes and how much memory it needs, from a short run: the numbers to
//! choose `--jobs` on a laptop and `--time` / `--mem` on a cluster.
//!
//! An ACDC run tests each unit (edge) at most once, and each test is one patched pass that
//! recomputes the model from the receiver's layer on. So a point takes at most
//! `load + units × (one pass from layer 0)`, and about `load + units × (seconds per tested
//! unit)` at the pace of its first receivers (an underestimate: the first receivers sit near
//! the output, where a pass recomputes fewer layers).

use super::spec::Point;
use crate::acdc::experiment::{self, RunSettings};
use crate::acdc::Prepared;
use crate::error::Result;
use crate::memory::peak_rss_mib;
use std::path::Path;
use std::time::Instant;

/// What a short run measured, and what it predicts for the whole point.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The point measured.
    pub point: String,
    /// Units (edges or nodes) of its graph.
    pub units: usize,
    /// Seconds to load the model and data and run the clean and ablated passes.
    pub load_s: f64,
    /// Seconds of one patched pass from layer 0 (the slowest kind).
    pub full_pass_s: f64,
    /// Receivers of the short run.
    pub receivers: usize,
    /// Units tested in the short run.
    pub tested: usize,
    /// Seconds of the short run.
    pub short_s: f64,
    /// Peak resident memory of this process (MiB), if known.
    pub peak_rss_mib: Option<f64>,
}

impl Estimate {
    /// Seconds per point at the short run's pace.
    pub fn at_pace_s(&self) -> f64 {
        if self.tested == 0 {
            return self.upper_s();
        }
        self.load_s + self.units as f64 * self.short_s / self.tested as f64
    }

    /// Seconds per point if every unit took a pass from layer 0 (an upper bound).
    pub fn upper_s(&self) -> f64 {
        self.load_s + self.units as f64 * self.full_pass_s
    }

    /// Suggested Slurm `--time` (twice the upper bound, at least 5 minutes) and `--mem`
    /// (1.5× the peak, at least 512 MiB, in MiB).
    pub fn slurm_suggestion(&self) -> (String, String) {
        let secs = (2.0 * self.upper_s()).max(300.0).ceil() as u64;
        let mins = secs.div_ceil(60);
        let time = format!("{:02}:{:02}:00", mins / 60, mins % 60);
        let mem = self
            .peak_rss_mib
            .map_or(2048.0, |m| (1.5 * m).max(512.0))
            .ceil() as u64;
        (time, format!("{mem}M"))
    }
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (time, mem) = self.slurm_suggestion();
        writeln!(f, "estimate from a short run of point {}:", self.point)?;
        writeln!(
            f,
            "  load (model, data, clean and ablated passes): {:.2} s",
            self.load_s
        )?;
        writeln!(
            f,
            "  one patched pass from layer 0 (the slowest kind): {:.2} ms; {} units in the graph",
            self.full_pass_s * 1e3,
            self.units
        )?;
        writeln!(
            f,
            "  short run: {} receivers, {} units tested in {:.2} s",
            self.receivers, self.tested, self.short_s
        )?;
        writeln!(
            f,
            "  time per point: about {:.1} s at that pace, at most {:.1} s (every unit a pass \
             from layer 0); on one thread",
            self.at_pace_s(),
            self.upper_s()
        )?;
        match self.peak_rss_mib {
            Some(m) => writeln!(
                f,
                "  peak memory: {m:.0} MiB (this process; a local sweep with --jobs J needs \
                 about J times that)"
            )?,
            None => writeln!(f, "  peak memory: unknown on this system")?,
        }
        write!(
            f,
            "  suggested Slurm resources per point: --time {time} --mem {mem} --cpus 1"
        )
    }
}

/// Measure `point` in the scratch folder `scratch` (removed afterwards): load it, time one
/// pass from layer 0, and run its first `receivers` receivers.
pub fn estimate(point: &Point, receivers: usize, scratch: &Path) -> Result<Estimate> {
    let t0 = Instant::now();
    let prep = Prepared::new(&point.config)?;
    let units = prep.sweep().units.len();
    let (full_pass_s, load_s) = {
        let mut ev = prep.evaluator()?;
        let load_end = t0.elapsed().as_secs_f64();
        let empty = vec![false; units];
        let reps = 3;
        let t1 = Instant::now();
        for _ in 0..reps {
            ev.logits(&empty)?;
        }
        (t1.elapsed().as_secs_f64() / reps as f64, load_end)
    };
    let settings = RunSettings {
        out: scratch.to_path_buf(),
        force: true,
        resume: false,
        stop_after: Some(receivers.max(1)),
        naive: false,
    };
    let s = experiment::run(&prep, &settings);
    let _ = std::fs::remove_dir_all(scratch);
    let s = s?;
    Ok(Estimate {
        point: point.name.clone(),
        units,
        load_s,
        full_pass_s,
        receivers: receivers.max(1),
        tested: s.tested_now,
        short_s: s.seconds,
        peak_rss_mib: peak_rss_mib(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_round_up() {
        let e = Estimate {
            point: "p".into(),
            units: 1000,
            load_s: 10.0,
            full_pass_s: 1.0,
            receivers: 2,
            tested: 100,
            short_s: 20.0,
            peak_rss_mib: Some(1000.0),
        };
        assert_eq!(e.upper_s(), 1010.0);
        assert_eq!(e.at_pace_s(), 210.0);
        assert_eq!(
            e.slurm_suggestion(),
            ("00:34:00".to_string(), "1500M".to_string())
        );
        assert!(e.to_string().contains("--time 00:34:00 --mem 1500M"));
    }
}
