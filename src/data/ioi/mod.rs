//! Indirect object identification (IOI): the paper's, ARENA's and REMIX's datasets and flips.
//!
//! A template has name slots `[A]` (the indirect object, IO), `[B]` (the subject, S) and `[C]`
//! (a third name, ABC templates), and `[PLACE]`/`[OBJECT]` (REMIX's `{IO}`, `{S1}`, `{S2}`,
//! `{PLACE}`, `{OBJECT}` are read the same way). The final `[A]` — the answer — is not part of
//! the prompt: the prompt ends at "… to", which is the END position.
//!
//! Template ids: `baba-0`…`baba-14`, `abba-*`, `baba-long-*`, `abba-long-*`, `baba-late-*`,
//! `abba-late-*`, `baba-early-*`, `abba-early-*`, `abc-0`…`abc-3`, `bac-*`, `remix-abba-0`,
//! `remix-baba-0` (see [`template_ids`]).
//!
//! Flips (corruptions aligned row by row with the clean prompts, same row order and seed
//! discipline), all given as one string:
//! - REMIX: `IO`, `S`, `S1`, `S2`, `order`;
//! - the paper's tuples: `IO->RAND`, `S->RAND`, `S1->RAND`, `S2->RAND`, `S2->IO`, `IO->S1`,
//!   `S+1->RAND`, `prefix` (also written `(IO, RAND)`);
//! - ARENA's patterns: `ABB->XYZ, BAB->XYZ` (the ABC baseline), `ABB->CDD, BAB->DCD`,
//!   `ABB->BAA, BAB->ABA`, …: the first names of the prompt, lettered by role (A = IO, B = S,
//!   C = third name), are rewritten by the part whose left side matches; new letters get new,
//!   distinct random names.

mod flips;
mod generate;
mod prompt;
mod templates;
mod vocabulary;

pub use super::ioi_lists::*;
pub use generate::generate;
pub use templates::{template_ids, template_text};
pub use vocabulary::ioi_vocabulary;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which templates to draw from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum PromptType {
    /// The paper's ABBA templates (IO first).
    Abba,
    /// The paper's BABA templates (S first).
    Baba,
    /// `templates / 2` BABA plus `templates / 2` ABBA templates (default 7 + 7), as the paper
    /// and ARENA do.
    #[default]
    Mixed,
    /// The paper's ABC templates (three distinct names).
    Abc,
    /// The BAC templates.
    Bac,
    /// Half ABC, half BAC.
    AbcMixed,
    /// The paper's long BABA templates.
    BabaLong,
    /// Long ABBA templates (the long BABA ones with the first two names swapped).
    AbbaLong,
    /// The paper's late-IO BABA templates.
    BabaLate,
    /// The paper's late-IO ABBA templates.
    AbbaLate,
    /// The paper's early-IO BABA templates.
    BabaEarly,
    /// The paper's early-IO ABBA templates.
    AbbaEarly,
    /// REMIX's ABBA template: `<|endoftext|>Then, {IO} and {S1} went to the {PLACE}. {S2} gave a {OBJECT} to`.
    RemixAbba,
    /// REMIX's BABA template: `<|endoftext|>Then, {S1} and {IO} went to …` (END = 15 on GPT-2).
    RemixBaba,
    /// REMIX's two templates.
    RemixMixed,
    /// A list of template ids (see [`template_ids`]) or literal templates using `[A]`, `[B]`,
    /// `[C]`, `[PLACE]`, `[OBJECT]`.
    Templates(Vec<String>),
}

impl std::str::FromStr for PromptType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match norm.as_str() {
            "abba" => PromptType::Abba,
            "baba" => PromptType::Baba,
            "mixed" => PromptType::Mixed,
            "abc" => PromptType::Abc,
            "bac" => PromptType::Bac,
            "abc-mixed" | "abc mixed" => PromptType::AbcMixed,
            "baba-long" => PromptType::BabaLong,
            "abba-long" => PromptType::AbbaLong,
            "baba-late" => PromptType::BabaLate,
            "abba-late" => PromptType::AbbaLate,
            "baba-early" => PromptType::BabaEarly,
            "abba-early" => PromptType::AbbaEarly,
            "remix-abba" => PromptType::RemixAbba,
            "remix-baba" => PromptType::RemixBaba,
            "remix-mixed" | "remix" => PromptType::RemixMixed,
            _ => {
                return Err(Error::input(format!(
                    "unknown IOI prompt type '{s}'; use one of {}, or list template ids \
                     (CLI --template ID, repeatable; ids: `circuitscope data ioi --list-templates`)",
                    PROMPT_TYPE_NAMES.join(", ")
                )))
            }
        })
    }
}

/// The CLI names of the prompt types.
pub const PROMPT_TYPE_NAMES: [&str; 15] = [
    "abba",
    "baba",
    "mixed",
    "abc",
    "bac",
    "abc-mixed",
    "baba-long",
    "abba-long",
    "baba-late",
    "abba-late",
    "baba-early",
    "abba-early",
    "remix-abba",
    "remix-baba",
    "remix-mixed",
];

/// Which list of names to draw from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum NameList {
    /// The paper's 99 names (also REMIX's).
    #[default]
    Paper,
    /// ARENA's 109 names.
    Arena,
}

impl NameList {
    /// The names.
    pub fn names(&self) -> &'static [&'static str] {
        match self {
            NameList::Paper => &PAPER_NAMES,
            NameList::Arena => &ARENA_NAMES,
        }
    }
}

impl std::str::FromStr for NameList {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "paper" | "remix" => Ok(NameList::Paper),
            "arena" => Ok(NameList::Arena),
            _ => Err(Error::input(format!(
                "unknown IOI name list '{s}'; use paper (99 names) or arena (109 names)"
            ))),
        }
    }
}

/// Options of the IOI generator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IoiOptions {
    /// Which templates.
    pub prompt_type: PromptType,
    /// How many templates of the prompt type to use (the first ones); 0 = all (mixed: 7 + 7).
    pub templates: usize,
    /// Which names.
    pub names: NameList,
    /// Number of prompts.
    pub n: usize,
    /// Seed of the generator (and, mixed with the flip, of the flip).
    pub seed: u64,
    /// Prepend the BOS token (REMIX templates already start with `<|endoftext|>`; none is added).
    pub prepend_bos: bool,
    /// The corruption, if any (see the module documentation).
    pub flip: Option<String>,
}

impl Default for IoiOptions {
    fn default() -> Self {
        IoiOptions {
            prompt_type: PromptType::Mixed,
            templates: 0,
            names: NameList::Paper,
            n: 100,
            seed: 0,
            prepend_bos: false,
            flip: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::flips::*;
    use super::prompt::*;
    use super::templates::*;
    use super::*;

    #[test]
    fn abba_swaps_first_names() {
        assert_eq!(
            swap_first(BABA_TEMPLATES[0], "[A]", "[B]"),
            "Then, [A] and [B] went to the [PLACE]. [B] gave a [OBJECT] to [A]"
        );
        assert_eq!(
            family("bac")[0],
            "Then, [B], [A] and [C] went to the [PLACE]. [B] and [C] gave a [OBJECT] to [A]"
        );
        assert_eq!(
            family("remix-baba")[0],
            "<|endoftext|>Then, {S1} and {IO} went to the {PLACE}. {S2} gave a {OBJECT} to"
        );
    }

    #[test]
    fn template_drops_final_answer() {
        let t = Template::parse("baba-0", BABA_TEMPLATES[0]).unwrap();
        assert_eq!(t.letters, vec!['B', 'A', 'B']);
        assert_eq!(t.order(), "BABA");
        let (text, spans) = render(
            &t.pieces,
            &["John".into(), "Mary".into(), "John".into()],
            "store",
            "ring",
        );
        assert_eq!(
            text,
            "Then, John and Mary went to the store. John gave a ring to"
        );
        assert_eq!(&text[spans[1].0..spans[1].1], "Mary");
    }

    #[test]
    fn flips_parse() {
        assert_eq!(parse_flip("IO").unwrap(), Flip::Io);
        assert_eq!(parse_flip("(S2, IO)").unwrap(), Flip::S2ToIo);
        assert_eq!(parse_flip("('IO', 'S1')").unwrap(), Flip::Order);
        assert!(matches!(
            parse_flip("ABB->XYZ, BAB->XYZ").unwrap(),
            Flip::Pattern(p) if p.len() == 2
        ));
        assert!(parse_flip("AB->XYZ").is_err());
        assert!(parse_flip("nonsense").is_err());
    }
}
