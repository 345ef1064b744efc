//! Gradient attribution on ACDC's edge graph: EAP, EAP-IG (inputs and activations) and AtP
//! node scores; circuits from scores; faithfulness of any circuit and curves over its size.
//!
//! - [`objective`]: the metric as a differentiable expression of the logits;
//! - [`gradients`]: one forward and backward pass through the evaluator, giving the gradient of
//!   the metric with respect to every receiver's input ([`backward`]: the hand-written
//!   backward pass it uses where it applies);
//! - [`scores`]: the methods; [`circuit`]: top-k / threshold circuits and pruning;
//! - [`faithfulness`]: the metric of any circuit, normalised, and curves with CPR and CMD;
//! - [`hypothesis`]: the circuit of a causal-scrubbing hypothesis (the paths it keeps);
//! - [`roc`]: ROC AUC of a ranking against a known circuit;
//! - [`config`], [`experiment`], [`output`], [`plot`]: the run around them.
//!
//! Everything runs through [`crate::eval::run`] (the one forward loop) on the graph of
//! [`crate::graph::EdgeGraph`], with the ablation values of [`crate::acdc::ablation`] and, for
//! faithfulness, ACDC's evaluator.

pub mod backward;
pub mod circuit;
pub mod config;
pub mod experiment;
pub mod faithfulness;
pub mod fused;
pub mod gradients;
pub mod hypothesis;
pub mod objective;
pub mod output;
pub mod plot;
pub mod roc;
pub mod scores;

pub use config::{Config, Overrides};
pub use objective::GradMetric;
pub use scores::{attribute, IgPoints, Inputs, Method, Options, Scores};
