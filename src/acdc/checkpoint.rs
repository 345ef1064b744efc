//! Checkpoints: the whole sweep state after a receiver, with hashes of what produced it.
//!
//! Written atomically (temporary file, then rename) after every receiver, so a run killed at
//! any moment (even with `kill -9`) leaves the last complete checkpoint. Floats are written
//! with shortest round-trip formatting and read back exactly, so a resumed run continues with
//! bit-identical numbers.

use super::sweep::SweepState;
use crate::error::{read_to_string, write_atomic, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The checkpoint file's name inside the output folder.
pub const CHECKPOINT: &str = "checkpoint.json";

/// The format tag of checkpoint files.
pub const FORMAT: &str = "circuitscope-acdc-checkpoint/1";

/// Hashes that identify a run: a checkpoint only continues the run it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// SHA-256 of the effective config.
    pub config_hash: String,
    /// SHA-256 of the model's files (config.json and weights).
    pub model_hash: String,
    /// SHA-256 of the dataset (prompts, tokens, corruptions, answers).
    pub dataset_hash: String,
}

/// A checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`FORMAT`].
    pub format: String,
    /// The program version that wrote it.
    pub version: String,
    /// What run it belongs to.
    pub identity: RunIdentity,
    /// Number of units (edges or nodes) of the sweep.
    pub units: usize,
    /// Number of steps of the sweep.
    pub steps: usize,
    /// The clean model's metric.
    pub clean_metric: f64,
    /// The sweep state.
    pub state: SweepState,
}

impl Checkpoint {
    /// Write `dir/checkpoint.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string(self)
            .map_err(|e| Error::input(format!("cannot serialise the checkpoint: {e}")))?;
        write_atomic(dir.join(CHECKPOINT), text.as_bytes())
    }

    /// Read `dir/checkpoint.json`.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(CHECKPOINT);
        if !path.is_file() {
            return Err(Error::input(format!(
                "{}: no checkpoint here; --resume needs the --out folder of an ACDC run that \
                 was started before",
                path.display()
            )));
        }
        let text = read_to_string(&path)?;
        Self::from_json(&text, &path)
    }

    /// Parse and check the text of a checkpoint; `path` names it in messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Checkpoint> {
        let c: Checkpoint = crate::json_file::parse(text, path, |e| {
            format!(
                "not a readable ACDC checkpoint ({e}); it is damaged or from another program — \
                 start the run again with --force"
            )
        })?;
        if c.format != FORMAT {
            return Err(Error::input(format!(
                "{}: checkpoint format '{}' is not '{FORMAT}'; start the run again with --force",
                path.display(),
                c.format
            )));
        }
        if c.state.present.len() != c.units || c.state.effect.len() != c.units {
            return Err(Error::input(format!(
                "{}: the checkpoint is inconsistent ({} units but {} states); it is damaged — \
                 start the run again with --force",
                path.display(),
                c.units,
                c.state.present.len()
            )));
        }
        if c.state.next_step > c.steps {
            return Err(Error::input(format!(
                "{}: the checkpoint is at step {} of a sweep of {} steps; it is damaged — start \
                 the run again with --force",
                path.display(),
                c.state.next_step,
                c.steps
            )));
        }
        let finite = |x: &f64| x.is_finite();
        if !finite(&c.clean_metric)
            || !c.state.cur_metric.as_ref().is_none_or(finite)
            || !c.state.effect.iter().flatten().all(finite)
        {
            return Err(Error::input(format!(
                "{}: the checkpoint holds a non-finite metric; it is damaged — start the run \
                 again with --force",
                path.display()
            )));
        }
        Ok(c)
    }

    /// Refuse to continue a different run: names what differs and what to do.
    pub fn check_identity(&self, dir: &Path, now: &RunIdentity, units: usize) -> Result<()> {
        let path = dir.join(CHECKPOINT);
        let mut what = vec![];
        if self.identity.config_hash != now.config_hash {
            what.push("the config");
        }
        if self.identity.model_hash != now.model_hash {
            what.push("the model's files");
        }
        if self.identity.dataset_hash != now.dataset_hash {
            what.push("the dataset");
        }
        if self.units != units && what.is_empty() {
            what.push("the graph");
        }
        if what.is_empty() {
            return Ok(());
        }
        Err(Error::input(format!(
            "{}: this checkpoint belongs to another run ({} changed since it was written); \
             resuming would mix two runs. Resume with the same config and model, or start \
             afresh with --force (which overwrites {})",
            path.display(),
            what.join(", "),
            dir.display()
        )))
    }
}
