//! Transformer models: configuration, weight loading and the per-component computations.

pub mod resolve;
