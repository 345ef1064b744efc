//! The inputs every sweep shares: the one experiment setup ([`crate::experiment::Setup`]) and
//! positions.

pub use crate::experiment::{Position, Setup};

use crate::data::Dataset;
use crate::error::Result;

/// A dataset from token rows: [`Dataset::from_token_rows`] (END is each row's last position;
/// corrupted rows and `[answer, wrong]` pairs are optional).
pub fn tokens_dataset(
    clean: &[Vec<u32>],
    corrupted: Option<&[Vec<u32>]>,
    answers: Option<&[(u32, u32)]>,
) -> Result<Dataset> {
    Dataset::from_token_rows(clean, corrupted, answers)
}
