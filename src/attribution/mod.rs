//! Gradient attribution on ACDC's edge graph: EAP, EAP-IG (inputs and activations) and AtP
//! node scores; circuits from scores; faithfulness of any circuit and curves over its size.
//!
//! - [`objective`]: the metric as a differentiable expression of the logits;
//! - [`gradients`]: one forward and backward pass through the evaluator, giving the gradient of
//!   the metric with respect to every receiver's input;
//! - [`scores`]: the methods;
//!
//! Everything runs through [`crate::eval::run`] (the one forward loop) on the graph of
//! [`crate::graph::EdgeGraph`], with the ablation values of [`crate::acdc::ablation`].

pub mod gradients;
pub mod objective;
pub mod scores;

pub use objective::GradMetric;
pub use scores::{attribute, IgPoints, Inputs, Method, Options, Scores};
