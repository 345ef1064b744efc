//! Training small GPT-2 models on the CPU with candle's autograd: the embedded default
//! `toy-ioi` is trained here (`circuitscope train --config configs/train/toy-ioi.ron`).
//!
//! Only differentiable operations are used in the forward pass ([`crate::eval::run`] builds
//! LayerNorm and softmax from primitives; candle-nn's fused kernels have no backward pass).

pub mod adamw;
pub mod card;
pub mod config;
pub mod export;
pub mod ioi;
pub mod params;
pub mod trainer;

pub use adamw::{AdamW, AdamWConfig, Param};
pub use config::{TrainConfig, TrainTask};
pub use params::Gpt2Params;
pub use trainer::{train, StepInfo, TrainOutcome};
