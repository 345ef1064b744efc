//! The patched evaluator: one engine that runs the model with chosen sources per edge.
//!
//! Scrubbing, ACDC, the patching sweeps and ablations all call [`forward::run`] with typed
//! [`Patches`] (edge patches, deltas, replaced inputs, replaced activations) named by typed
//! [`HookName`]s and scheduled in [`Stage`]s; ACDC's one-edge steps run a kept circuit
//! ([`circuit_run::CircuitRun`]). These are the only places where activations are swapped.

pub mod ablated;
pub mod circuit_run;
pub mod forward;
pub mod hook_name;
pub mod names;
pub mod patch;
pub mod schedule;

pub use ablated::Ablated;
pub use circuit_run::{CircuitRun, Reads};
pub use forward::{log_softmax, run, ActivationCache, Hook, LogitsAt, Run, RunOptions};
pub use hook_name::{HookName, Site};
pub use names::{all_names, NameFilter};
pub use patch::{ActivationPatch, InputPatch, Patch, Patches, Region};
pub use schedule::Stage;
