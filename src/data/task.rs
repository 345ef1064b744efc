//! Task specifications, as written in hypothesis files and ACDC configs (RON) and on the CLI.

use super::dataset::Dataset;
use super::greater_than::GreaterThanOptions;
use super::induction::InductionOptions;
use super::ioi::IoiOptions;
use super::jsonl::JsonlOptions;
use super::sequence::{SequenceKind, SequenceOptions};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

/// A task and its options, e.g. `Ioi(prompt_type: Baba, n: 200, templates: 1, seed: 42)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum TaskSpec {
    /// Indirect object identification.
    Ioi(IoiOptions),
    /// Repeated random tokens.
    Induction(InductionOptions),
    /// "The war lasted from the year 1732 to 17".
    GreaterThan(GreaterThanOptions),
    /// "1 2 3 4" → " 5".
    Digits(SequenceOptions),
    /// "one two three four" → " five".
    NumberWords(SequenceOptions),
    /// "January February March April" → " May".
    Months(SequenceOptions),
    /// A user's JSONL file.
    Jsonl(JsonlOptions),
}

/// The task names of the CLI.
pub const TASK_NAMES: [&str; 7] = [
    "ioi",
    "induction",
    "greater-than",
    "digits",
    "number-words",
    "months",
    "jsonl",
];

impl TaskSpec {
    /// Build the dataset.
    pub fn build(&self, tok: &Tokenizer) -> Result<Dataset> {
        match self {
            TaskSpec::Ioi(o) => super::ioi::generate(o, tok),
            TaskSpec::Induction(o) => super::induction::generate(o, tok),
            TaskSpec::GreaterThan(o) => super::greater_than::generate(o, tok),
            TaskSpec::Digits(o) => super::sequence::generate(SequenceKind::Digits, o, tok),
            TaskSpec::NumberWords(o) => {
                super::sequence::generate(SequenceKind::NumberWords, o, tok)
            }
            TaskSpec::Months(o) => super::sequence::generate(SequenceKind::Months, o, tok),
            TaskSpec::Jsonl(o) => super::jsonl::load(o, tok),
        }
    }

    /// The task's name (`ioi`, `induction`, `greater-than`, `digits`, `number-words`,
    /// `months`, `jsonl`).
    pub fn name(&self) -> &str {
        match self {
            TaskSpec::Ioi(_) => "ioi",
            TaskSpec::Induction(_) => "induction",
            TaskSpec::GreaterThan(_) => "greater-than",
            TaskSpec::Digits(_) => "digits",
            TaskSpec::NumberWords(_) => "number-words",
            TaskSpec::Months(_) => "months",
            TaskSpec::Jsonl(_) => "jsonl",
        }
    }

    /// The task with default options, by CLI name.
    pub fn default_for(name: &str) -> Result<TaskSpec> {
        Ok(match name {
            "ioi" => TaskSpec::Ioi(Default::default()),
            "induction" => TaskSpec::Induction(Default::default()),
            "greater-than" | "greaterthan" => TaskSpec::GreaterThan(Default::default()),
            "digits" => TaskSpec::Digits(Default::default()),
            "number-words" => TaskSpec::NumberWords(Default::default()),
            "months" => TaskSpec::Months(Default::default()),
            "jsonl" => TaskSpec::Jsonl(Default::default()),
            _ => {
                return Err(Error::input(format!(
                    "unknown task '{name}'; use one of {}",
                    TASK_NAMES.join(", ")
                )))
            }
        })
    }

    /// Parse a task from RON text (`name` is used in messages), written in the short form
    /// `Ioi(n: 10, flip: "IO")` (see [`ron_options`]).
    pub fn from_ron(text: &str, name: &str) -> Result<TaskSpec> {
        crate::ron_file::parse(
            text,
            std::path::Path::new(name),
            "a task looks like Ioi(prompt_type: Baba, n: 200, templates: 1, seed: 42)",
        )
    }
}

/// The RON options that read task specifications as written in hypothesis files and configs:
/// newtype variants unwrapped (`Ioi(n: 10)`) and implicit `Some` (`flip: "IO"`). Use these
/// options to parse any file that embeds a [`TaskSpec`].
pub fn ron_options() -> ron::Options {
    crate::ron_file::options()
}
