//! Tasks and datasets: IOI, induction, greater-than, sequence continuation and user JSONL,
//! with named positions, answers, corruptions and per-example features.

pub mod dataset;
pub mod greater_than;
pub mod induction;
pub mod ioi;
pub mod ioi_lists;
pub mod jsonl;
pub mod sequence;
pub mod task;

pub use dataset::{end_position, Dataset, Example, Side};
pub use greater_than::GreaterThanOptions;
pub use induction::InductionOptions;
pub use ioi::{ioi_vocabulary, IoiOptions, NameList, PromptType};
pub use jsonl::JsonlOptions;
pub use sequence::SequenceOptions;
pub use task::TaskSpec;
