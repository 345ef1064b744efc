//! Sweeps: many ACDC runs (τ grids, metrics, ablations, seeds, dataset sizes, configs) as one
//! folder of ordinary run folders, run in parallel on this machine or as a Slurm array, then
//! merged.
//!
//! - [`spec`]: the sweep file (RON, `configs/sweeps/`) and its points, named from their
//!   parameters;
//! - [`folder`]: the sweep's folder, its manifest and each point's state;
//! - [`local`]: running points here (`rayon`, one worker per run) or one per process;
//! - [`slurm`]: the array job's submission script;
//! - [`collect`]: `sweep.json`, `sweep.csv`, the Pareto and ROC plots, the HTML report;
//! - [`plot`]: the SVG plots;
//! - [`estimate`]: a point's time and memory from a short run.

pub mod collect;
pub mod estimate;
pub mod folder;
pub mod local;
pub mod plot;
pub mod slurm;
pub mod spec;

pub use collect::{collect, Collected};
pub use folder::{PointState, SweepFolder};
pub use local::{run_local, LocalSettings, Observer, Outcome};
pub use spec::{Grid, Point, SlurmResources, SweepFile, SweepPlan, TauAxis};
