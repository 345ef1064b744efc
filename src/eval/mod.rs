//! The patched evaluator: one engine that runs the model with chosen sources per edge.
//!
//! Scrubbing, ACDC and the patching sweeps all call [`forward::run`] (or, for ACDC's one-edge
//! steps, [`circuit_run::CircuitRun`]); these are the only places where activations are
//! swapped.

pub mod ablated;
pub mod circuit_run;
pub mod forward;
pub mod names;
pub mod patch;
pub mod replace_input;

pub use ablated::Ablated;
pub use circuit_run::{CircuitRun, Reads};
pub use forward::{log_softmax, run, ActivationCache, Hook, LogitsAt, Run, RunOptions};
pub use names::{all_names, NameFilter};
pub use patch::{Patch, Patches};
pub use replace_input::{KeptSenders, ReplaceInputs};
