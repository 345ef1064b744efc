//! The patched evaluator: one engine that runs the model with chosen sources per edge.
//!
//! Scrubbing, ACDC and the patching sweeps all call [`forward::run`]; it is the only place
//! where activations are swapped.

pub mod forward;
pub mod names;
pub mod patch;

pub use forward::{log_softmax, run, ActivationCache, Hook, LogitsAt, Run, RunOptions};
pub use names::{all_names, NameFilter};
pub use patch::{Patch, Patches};
