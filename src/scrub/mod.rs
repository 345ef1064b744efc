//! Causal scrubbing (Chan et al. 2022), with Redwood's semantics.
//!
//! A hypothesis ([`hypothesis`]) is a tree of interpretation nodes, each owning a set of
//! paths through the model; samplers ([`sampler`]) draw a dataset per node; every path sees
//! the dataset of the node that owns it ([`path_state`]); [`treeify`] evaluates that exactly
//! without enumerating paths; [`experiment`] reports the clean, scrubbed and baseline metrics
//! and the loss recovered.

pub mod experiment;
pub mod hypothesis;
pub mod path_state;
pub mod sampler;
pub mod treeify;

pub use experiment::{prepare, run, PreparedHypothesis, RunSettings, SamplesFile, ScrubResult};
pub use hypothesis::Hypothesis;
