//! Exploration: activation and path patching sweeps, direct logit attribution, the logit
//! lens, copying scores, attention patterns and mean-ablation circuits.
//!
//! Every patched run goes through the one patched evaluator, [`crate::eval::run`], with typed
//! [`Patches`]: activation patching replaces a slice of a named activation, path patching
//! patches edges (through MLPs: replaced `hook_z` and q/k/v), mean ablation replaces `hook_z`.
//!
//! [`Patches`]: crate::eval::Patches

pub mod act_patch;
pub mod attention;
pub mod copying;
pub mod dla;
pub mod mean_ablation;
pub mod path_patch;
pub mod setup;
pub mod sweep;

pub use act_patch::{act_patch, act_patch_with, ActPatchOptions, ActTarget};
pub use attention::{attention_patterns, AttentionPatterns};
pub use copying::copying_scores;
pub use dla::{dla_heads, dla_layers, logit_lens};
pub use mean_ablation::{AblationResult, Circuit, MeanAblation};
pub use path_patch::{PathMode, PathPatcher, PathResult};
pub use setup::{Position, Setup};
pub use sweep::{Axis, LabelledArray};
