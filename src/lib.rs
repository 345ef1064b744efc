//! circuitscope: test and discover circuits inside transformer language models.
//!
//! Data flows model → graph → eval → (scrub, acdc, analysis, attribution) → report;
//! [`experiment`] is the setup they share (model, rows, tokens, metric, hashes);
//! `sweep` runs many ACDC runs and merges them.

pub mod acdc;
pub mod allocator;
pub mod analysis;
pub mod attribution;
pub mod data;
pub mod detect;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod finite;
pub mod graph;
pub mod json_file;
pub mod memory;
pub mod metric;
pub mod model;
pub mod report;
pub mod ron_file;
pub mod scrub;
pub mod sweep;
pub mod threads;
pub mod tokenizer;
pub mod toy;
pub mod train;

pub use error::{Error, Result};

/// The program version, recorded in every results file.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
