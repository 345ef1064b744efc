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

use super::dataset::{end_position, Dataset, Example};
pub use super::ioi_lists::*;
use crate::error::{Error, Result};
use crate::tokenizer::{whitespace_split, Encoded, Tokenizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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

/// Template families and how each is derived from the source lists.
const FAMILIES: [&str; 12] = [
    "baba",
    "abba",
    "baba-long",
    "abba-long",
    "baba-late",
    "abba-late",
    "baba-early",
    "abba-early",
    "abc",
    "bac",
    "remix-abba",
    "remix-baba",
];

/// Swap the first `[A]` and the first `[B]` (the paper's ABBA-from-BABA and BAC-from-ABC rule).
fn swap_first(t: &str, a: &str, b: &str) -> String {
    match (t.find(a), t.find(b)) {
        (Some(i), Some(j)) => {
            let (first, second, fa, fb) = if i < j { (i, j, a, b) } else { (j, i, b, a) };
            let mut s = String::with_capacity(t.len());
            s.push_str(&t[..first]);
            s.push_str(fb);
            s.push_str(&t[first + fa.len()..second]);
            s.push_str(fa);
            s.push_str(&t[second + fb.len()..]);
            s
        }
        _ => t.to_string(),
    }
}

/// The texts of a template family.
fn family(name: &str) -> Vec<String> {
    let owned = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ab = |xs: &[&str]| {
        xs.iter()
            .map(|s| swap_first(s, "[A]", "[B]"))
            .collect::<Vec<_>>()
    };
    match name {
        "baba" => owned(&BABA_TEMPLATES),
        "abba" => ab(&BABA_TEMPLATES),
        "baba-long" => owned(&BABA_LONG_TEMPLATES),
        "abba-long" => ab(&BABA_LONG_TEMPLATES),
        "baba-late" => owned(&BABA_LATE_IOS),
        "abba-late" => ab(&BABA_LATE_IOS),
        "baba-early" => owned(&BABA_EARLY_IOS),
        "abba-early" => ab(&BABA_EARLY_IOS),
        "abc" => owned(&ABC_TEMPLATES),
        "bac" => ab(&ABC_TEMPLATES),
        "remix-abba" => owned(&REMIX_ABBA_TEMPLATES),
        "remix-baba" => REMIX_ABBA_TEMPLATES
            .iter()
            .map(|s| swap_first(s, "{IO}", "{S1}"))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every built-in template id, in a fixed order.
pub fn template_ids() -> Vec<String> {
    let mut out = Vec::new();
    for f in FAMILIES {
        for i in 0..family(f).len() {
            out.push(format!("{f}-{i}"));
        }
    }
    out
}

/// The text of a built-in template.
pub fn template_text(id: &str) -> Option<String> {
    let (fam, idx) = id.rsplit_once('-')?;
    let idx: usize = idx.parse().ok()?;
    family(fam).get(idx).cloned()
}

/// Slots of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Name(char),
    Place,
    Object,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Slot(Slot),
}

/// A parsed template.
#[derive(Debug, Clone)]
struct Template {
    id: String,
    pieces: Vec<Piece>,
    /// The role letter of each name occurrence, in text order.
    letters: Vec<char>,
}

impl Template {
    fn parse(id: &str, text: &str) -> Result<Template> {
        const SLOTS: [(&str, Slot); 10] = [
            ("[A]", Slot::Name('A')),
            ("[B]", Slot::Name('B')),
            ("[C]", Slot::Name('C')),
            ("[PLACE]", Slot::Place),
            ("[OBJECT]", Slot::Object),
            ("{IO}", Slot::Name('A')),
            ("{S1}", Slot::Name('B')),
            ("{S2}", Slot::Name('B')),
            ("{PLACE}", Slot::Place),
            ("{OBJECT}", Slot::Object),
        ];
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        'outer: while !rest.is_empty() {
            for (pat, slot) in SLOTS {
                if let Some(r) = rest.strip_prefix(pat) {
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Slot(slot));
                    rest = r;
                    continue 'outer;
                }
            }
            let c = rest.chars().next().unwrap_or(' ');
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        // The final [A] is the answer: the prompt stops before it.
        if pieces.last() == Some(&Piece::Slot(Slot::Name('A'))) {
            pieces.pop();
            if let Some(Piece::Lit(l)) = pieces.last_mut() {
                while l.ends_with(' ') {
                    l.pop();
                }
            }
        }
        let letters: Vec<char> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Slot(Slot::Name(c)) => Some(*c),
                _ => None,
            })
            .collect();
        let count = |c: char| letters.iter().filter(|&&l| l == c).count();
        if count('A') < 1 || count('B') < 2 {
            return Err(Error::input(format!(
                "IOI template '{id}' ({text:?}) needs the indirect object [A] at least once \
                 before the answer and the subject [B] at least twice; write it like \
                 \"Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]\""
            )));
        }
        Ok(Template {
            id: id.to_string(),
            pieces,
            letters,
        })
    }

    fn has(&self, slot: Slot) -> bool {
        self.pieces.contains(&Piece::Slot(slot))
    }

    fn distinct_names(&self) -> usize {
        self.letters.iter().collect::<BTreeSet<_>>().len()
    }

    fn order(&self) -> String {
        let first: String = self.letters.iter().take(3).collect();
        if self.distinct_names() >= 3 {
            match &first[..] {
                "ABC" => "ABC".into(),
                "BAC" => "BAC".into(),
                other => other.into(),
            }
        } else if first.starts_with("AB") {
            "ABBA".into()
        } else if first.starts_with("BA") {
            "BABA".into()
        } else {
            first
        }
    }

    fn occurrences(&self, letter: char) -> Vec<usize> {
        self.letters
            .iter()
            .enumerate()
            .filter(|(_, &l)| l == letter)
            .map(|(i, _)| i)
            .collect()
    }
}

/// The templates a set of options selects.
fn select_templates(opts: &IoiOptions) -> Result<Vec<Template>> {
    let k = opts.templates;
    let take = |fam: &str, k: usize| -> Result<Vec<(String, String)>> {
        let all = family(fam);
        let k = if k == 0 { all.len() } else { k };
        if k > all.len() {
            return Err(Error::input(format!(
                "templates: {k} but the {fam} family has only {} templates; use at most {}",
                all.len(),
                all.len()
            )));
        }
        Ok(all
            .into_iter()
            .take(k)
            .enumerate()
            .map(|(i, t)| (format!("{fam}-{i}"), t))
            .collect())
    };
    let mixed = |a: &str, b: &str, default: usize| -> Result<Vec<(String, String)>> {
        let k = if k == 0 { default } else { k };
        if k < 2 {
            return Err(Error::input(format!(
                "templates: {k} is too few for a mixed prompt type (half {a}, half {b}); use at \
                 least 2"
            )));
        }
        let mut v = take(a, k / 2)?;
        v.extend(take(b, k / 2)?);
        Ok(v)
    };
    let pairs = match &opts.prompt_type {
        PromptType::Abba => take("abba", k)?,
        PromptType::Baba => take("baba", k)?,
        PromptType::Mixed => mixed("baba", "abba", BABA_TEMPLATES.len())?,
        PromptType::Abc => take("abc", k)?,
        PromptType::Bac => take("bac", k)?,
        PromptType::AbcMixed => mixed("abc", "bac", ABC_TEMPLATES.len())?,
        PromptType::BabaLong => take("baba-long", k)?,
        PromptType::AbbaLong => take("abba-long", k)?,
        PromptType::BabaLate => take("baba-late", k)?,
        PromptType::AbbaLate => take("abba-late", k)?,
        PromptType::BabaEarly => take("baba-early", k)?,
        PromptType::AbbaEarly => take("abba-early", k)?,
        PromptType::RemixAbba => take("remix-abba", k)?,
        PromptType::RemixBaba => take("remix-baba", k)?,
        PromptType::RemixMixed => mixed("remix-baba", "remix-abba", 2)?,
        PromptType::Templates(list) => {
            if list.is_empty() {
                return Err(Error::input(
                    "prompt_type: Templates([]) lists no templates; give template ids such as \
                     \"baba-0\" (`circuitscope data ioi --list-templates`)",
                ));
            }
            let mut v = Vec::new();
            for (i, t) in list.iter().enumerate() {
                if t.contains('[') || t.contains('{') {
                    v.push((format!("custom-{i}"), t.clone()));
                } else if let Some(text) = template_text(t) {
                    v.push((t.clone(), text));
                } else {
                    return Err(Error::input(format!(
                        "unknown IOI template '{t}'; known ids: {} (or write a template with \
                         [A], [B], [PLACE], [OBJECT])",
                        template_ids().join(", ")
                    )));
                }
            }
            if k > 0 {
                if k > v.len() {
                    return Err(Error::input(format!(
                        "templates: {k} but only {} templates are listed",
                        v.len()
                    )));
                }
                v.truncate(k);
            }
            v
        }
    };
    // The same text twice (e.g. baba-0 and baba-late-0) would count its prompts twice.
    let mut seen = BTreeSet::new();
    pairs
        .iter()
        .filter(|(_, text)| seen.insert(text.clone()))
        .map(|(id, text)| Template::parse(id, text))
        .collect()
}

/// Words of `list` that are one token where they stand (after a space); the others are left out
/// with one warning.
fn single_token_words(tok: &Tokenizer, list: &[&str], what: &str) -> Vec<String> {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for w in list {
        if tok.single_token(&format!(" {w}")).is_some() {
            kept.push(w.to_string());
        } else {
            dropped.push(*w);
        }
    }
    if !dropped.is_empty() {
        tracing::warn!(
            "{} of {} IOI {what} are not one token with {} and are left out: {}",
            dropped.len(),
            list.len(),
            tok.source().display(),
            dropped.join(", ")
        );
    }
    kept
}

/// The words of the IOI prompts for `opts` (templates, names, places, objects, flip words), as
/// a word-level tokenizer splits them, in a fixed order without repeats. Build a toy tokenizer
/// with [`crate::tokenizer::word_level_tokenizer_json`]`(&ioi_vocabulary(&opts), &[])`.
pub fn ioi_vocabulary(opts: &IoiOptions) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for f in FAMILIES {
        texts.extend(family(f));
    }
    if let PromptType::Templates(list) = &opts.prompt_type {
        texts.extend(list.iter().filter(|t| t.contains('[')).cloned());
    }
    texts.extend(PREFIXES.iter().map(|s| s.to_string()));
    texts.push("with one friend named accompanied by, after a great day,".into());
    texts.extend(opts.names.names().iter().map(|s| s.to_string()));
    texts.extend(PLACES.iter().map(|s| s.to_string()));
    texts.extend(OBJECTS.iter().map(|s| s.to_string()));
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for t in texts {
        let mut t = t.replace("<|endoftext|>", " ");
        for slot in [
            "[A]", "[B]", "[C]", "[PLACE]", "[OBJECT]", "{IO}", "{S1}", "{S2}", "{PLACE}",
            "{OBJECT}",
        ] {
            t = t.replace(slot, " ");
        }
        for w in whitespace_split(&t) {
            if seen.insert(w.clone()) {
                out.push(w);
            }
        }
    }
    out
}

/// One generated prompt, before tokenization.
#[derive(Debug, Clone)]
struct Instance {
    template: usize,
    /// The name at each name occurrence.
    names: Vec<String>,
    io: String,
    s: String,
    c: Option<String>,
    place: String,
    object: String,
}

/// Render pieces with names; returns the text and the byte span of each name occurrence.
fn render(
    pieces: &[Piece],
    names: &[String],
    place: &str,
    object: &str,
) -> (String, Vec<(usize, usize)>) {
    let mut text = String::new();
    let mut spans = Vec::new();
    let mut k = 0;
    for p in pieces {
        match p {
            Piece::Lit(l) => text.push_str(l),
            Piece::Slot(Slot::Name(_)) => {
                let start = text.len();
                text.push_str(&names[k]);
                spans.push((start, text.len()));
                k += 1;
            }
            Piece::Slot(Slot::Place) => text.push_str(place),
            Piece::Slot(Slot::Object) => text.push_str(object),
        }
    }
    (text, spans)
}

/// Tokenize a prompt, prepending BOS when asked unless the text already starts with it.
fn tokenize(tok: &Tokenizer, text: &str, prepend_bos: bool) -> Result<Encoded> {
    let starts_with_bos = tok.bos_token().is_some_and(|b| text.starts_with(&b));
    tok.encode_with_offsets(text, prepend_bos && !starts_with_bos)
}

/// The token that holds exactly the byte span, if there is one.
fn locate(offsets: &[(usize, usize)], span: (usize, usize)) -> Option<usize> {
    offsets
        .iter()
        .position(|&(s, e)| e > s && s <= span.0 && span.0 < e)
        .filter(|&i| offsets[i].1 == span.1)
}

/// A parsed flip.
#[derive(Debug, Clone, PartialEq)]
enum Flip {
    Io,
    S,
    S1,
    S2,
    S2ToIo,
    Order,
    SPlus1,
    Prefix,
    Pattern(Vec<(Vec<char>, Vec<char>)>),
}

const FLIP_HELP: &str = "known flips: REMIX's IO, S, S1, S2, order; the paper's IO->RAND, \
    S->RAND, S1->RAND, S2->RAND, S2->IO, IO->S1, S+1->RAND, prefix; ARENA's patterns such as \
    \"ABB->XYZ, BAB->XYZ\", \"ABB->CDD, BAB->DCD\", \"ABB->BAA, BAB->ABA\"";

fn parse_flip(spec: &str) -> Result<Flip> {
    let cleaned: String = spec
        .chars()
        .filter(|c| !matches!(c, '(' | ')' | '\'' | '"'))
        .collect();
    let cleaned = cleaned.trim();
    let words = ["IO", "S", "S1", "S2", "S+1", "RAND"];
    // The paper's tuple syntax "(X, Y)".
    let tuple = match cleaned.split(',').map(str::trim).collect::<Vec<_>>()[..] {
        [a, b] if words.contains(&a) && words.contains(&b) => Some(format!("{a}->{b}")),
        _ => None,
    };
    let norm: String = tuple.unwrap_or_else(|| cleaned.split_whitespace().collect());
    let flip = match norm.as_str() {
        "IO" | "IO->RAND" => Flip::Io,
        "S" | "S->RAND" => Flip::S,
        "S1" | "S1->RAND" => Flip::S1,
        "S2" | "S2->RAND" => Flip::S2,
        "S2->IO" => Flip::S2ToIo,
        "order" | "ORDER" | "IO->S1" => Flip::Order,
        "S+1" | "S+1->RAND" => Flip::SPlus1,
        "prefix" | "PREFIX" => Flip::Prefix,
        _ => {
            let mut parts = Vec::new();
            for part in norm.split(',') {
                let Some((l, r)) = part.split_once("->") else {
                    return Err(Error::input(format!(
                        "unknown IOI flip '{spec}': part '{part}' has no '->'; {FLIP_HELP}"
                    )));
                };
                let l: Vec<char> = l.chars().collect();
                let r: Vec<char> = r.chars().collect();
                let ok = |v: &[char]| !v.is_empty() && v.iter().all(|c| c.is_ascii_uppercase());
                if !ok(&l) || !ok(&r) || l.len() != r.len() {
                    return Err(Error::input(format!(
                        "unknown IOI flip '{spec}': in an ARENA pattern each part is LETTERS->LETTERS \
                         of equal length (e.g. ABB->XYZ); {FLIP_HELP}"
                    )));
                }
                if parts
                    .iter()
                    .any(|(pl, _): &(Vec<char>, Vec<char>)| *pl == l)
                {
                    return Err(Error::input(format!(
                        "IOI flip '{spec}': the left side {} appears twice",
                        l.iter().collect::<String>()
                    )));
                }
                parts.push((l, r));
            }
            Flip::Pattern(parts)
        }
    };
    Ok(flip)
}

/// A stable 64-bit hash (FNV-1a) for deriving the flip's seed.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn pick<'a>(rng: &mut ChaCha8Rng, xs: &'a [String]) -> &'a String {
    &xs[rng.random_range(0..xs.len())]
}

/// A random name not in `exclude`.
fn pick_other(rng: &mut ChaCha8Rng, names: &[String], exclude: &[&str]) -> Result<String> {
    let avail = names
        .iter()
        .filter(|n| !exclude.contains(&n.as_str()))
        .count();
    if avail == 0 {
        return Err(Error::input(format!(
            "too few single-token names ({}) for this flip: every name is already in the \
             prompt; use a tokenizer that knows more names or the other name list",
            names.len()
        )));
    }
    loop {
        let n = pick(rng, names);
        if !exclude.contains(&n.as_str()) {
            return Ok(n.clone());
        }
    }
}

/// Apply a flip: the corrupted pieces and names of one instance.
fn apply_flip(
    flip: &Flip,
    spec: &str,
    t: &Template,
    inst: &Instance,
    names: &[String],
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<Piece>, Vec<String>)> {
    let mut pieces = t.pieces.clone();
    let mut out = inst.names.clone();
    let present: Vec<&str> = inst.names.iter().map(String::as_str).collect();
    let a = t.occurrences('A');
    let b = t.occurrences('B');
    match flip {
        Flip::Io => {
            let x = pick_other(rng, names, &present)?;
            for &i in &a {
                out[i] = x.clone();
            }
        }
        Flip::S => {
            let x = pick_other(rng, names, &present)?;
            for &i in &b {
                out[i] = x.clone();
            }
        }
        Flip::S1 => out[b[0]] = pick_other(rng, names, &present)?,
        Flip::S2 => out[*b.last().unwrap_or(&b[0])] = pick_other(rng, names, &present)?,
        Flip::S2ToIo => out[*b.last().unwrap_or(&b[0])] = inst.io.clone(),
        Flip::Order => out.swap(a[0], b[0]),
        Flip::SPlus1 => {
            // The literal right after the first S.
            let mut seen = 0;
            let mut target = None;
            for (pi, p) in pieces.iter().enumerate() {
                if let Piece::Slot(Slot::Name(_)) = p {
                    if seen == b[0] {
                        target = Some(pi + 1);
                        break;
                    }
                    seen += 1;
                }
            }
            let Some(Piece::Lit(next)) = target.and_then(|i| pieces.get_mut(i)) else {
                return Err(Error::input(format!(
                    "flip S+1->RAND needs text after the first subject in template '{}'",
                    t.id
                )));
            };
            if let Some(rest) = next.strip_prefix(" and ") {
                let repl = ["with one friend named", "accompanied by"][rng.random_range(0..2)];
                *next = format!(" {repl} {rest}");
            } else {
                *next = format!(", after a great day,{next}");
            }
        }
        Flip::Prefix => {
            let bos = "<|endoftext|>";
            match pieces.first_mut() {
                Some(Piece::Lit(first)) => {
                    let (lead, body) = match first.strip_prefix(bos) {
                        Some(b) => (bos, b.to_string()),
                        None => ("", first.clone()),
                    };
                    *first = if let Some(rest) = body.strip_prefix("The ") {
                        format!("{lead}After the lunch, the {rest}")
                    } else {
                        let p = PREFIXES[rng.random_range(0..PREFIXES.len())];
                        format!("{lead}{p} ")
                    };
                }
                _ => {
                    let p = PREFIXES[rng.random_range(0..PREFIXES.len())];
                    pieces.insert(0, Piece::Lit(format!("{p} ")));
                }
            }
        }
        Flip::Pattern(parts) => {
            let len = parts[0].0.len();
            if t.letters.len() < len {
                return Err(Error::input(format!(
                    "IOI flip '{spec}' rewrites {len} names but template '{}' has only {}",
                    t.id,
                    t.letters.len()
                )));
            }
            let key: Vec<char> = t.letters[..len].to_vec();
            let Some((l, r)) = parts.iter().find(|(l, _)| *l == key) else {
                let k: String = key.iter().collect();
                return Err(Error::input(format!(
                    "IOI flip '{spec}' has no part for prompts whose names run {k} (template \
                     '{}'); add a part '{k}->…' (e.g. \"ABB->XYZ, BAB->XYZ\" covers ABBA and BABA)",
                    t.id
                )));
            };
            let mut map: BTreeMap<char, String> = BTreeMap::new();
            for (i, &c) in l.iter().enumerate() {
                map.insert(c, inst.names[i].clone());
            }
            let mut used: Vec<String> = inst.names.clone();
            for &c in r {
                if let std::collections::btree_map::Entry::Vacant(slot) = map.entry(c) {
                    let used_ref: Vec<&str> = used.iter().map(String::as_str).collect();
                    let x = pick_other(rng, names, &used_ref)?;
                    used.push(x.clone());
                    slot.insert(x);
                }
            }
            for (i, c) in r.iter().enumerate() {
                out[i] = map[c].clone();
            }
        }
    }
    Ok((pieces, out))
}

/// Number of distinct prompts the templates can produce (saturating).
fn distinct_prompts(templates: &[Template], names: usize, places: usize, objects: usize) -> u128 {
    let mut total: u128 = 0;
    for t in templates {
        let k = t.distinct_names();
        let mut c: u128 = 1;
        for i in 0..k {
            c = c.saturating_mul(names.saturating_sub(i) as u128);
        }
        if t.has(Slot::Place) {
            c = c.saturating_mul(places as u128);
        }
        if t.has(Slot::Object) {
            c = c.saturating_mul(objects as u128);
        }
        total = total.saturating_add(c);
    }
    total
}

/// Generate an IOI dataset.
pub fn generate(opts: &IoiOptions, tok: &Tokenizer) -> Result<Dataset> {
    let templates = select_templates(opts)?;
    let flip = opts.flip.as_deref().map(parse_flip).transpose()?;
    if opts.n == 0 {
        return Err(Error::input("IOI: n is 0; ask for at least one prompt"));
    }
    let names = single_token_words(tok, opts.names.names(), "names");
    let places = single_token_words(tok, &PLACES, "places");
    let objects = single_token_words(tok, &OBJECTS, "objects");
    let need_names = templates
        .iter()
        .map(Template::distinct_names)
        .max()
        .unwrap_or(2);
    if names.len() < need_names
        || (places.is_empty() && templates.iter().any(|t| t.has(Slot::Place)))
        || (objects.is_empty() && templates.iter().any(|t| t.has(Slot::Object)))
    {
        return Err(Error::input(format!(
            "IOI: too few single-token words with {}: {} names, {} places, {} objects; the \
             templates need {need_names} distinct names and one place and object. Use a \
             tokenizer whose vocabulary has these words",
            tok.source().display(),
            names.len(),
            places.len(),
            objects.len()
        )));
    }
    let available = distinct_prompts(&templates, names.len(), places.len(), objects.len());
    if opts.n as u128 > available {
        return Err(Error::input(format!(
            "IOI: n = {} is larger than the {available} distinct prompts available from {} \
             template(s), {} names, {} places and {} objects; lower n or use more templates",
            opts.n,
            templates.len(),
            names.len(),
            places.len(),
            objects.len()
        )));
    }

    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut seen = BTreeSet::new();
    let mut instances = Vec::with_capacity(opts.n);
    while instances.len() < opts.n {
        let ti = rng.random_range(0..templates.len());
        let t = &templates[ti];
        let io = pick(&mut rng, &names).clone();
        let s = pick_other(&mut rng, &names, &[&io])?;
        let c = if t.distinct_names() >= 3 {
            Some(pick_other(&mut rng, &names, &[&io, &s])?)
        } else {
            None
        };
        let place = pick(&mut rng, &places).clone();
        let object = pick(&mut rng, &objects).clone();
        let inst_names = t
            .letters
            .iter()
            .map(|l| match l {
                'A' => io.clone(),
                'B' => s.clone(),
                _ => c.clone().unwrap_or_default(),
            })
            .collect();
        let inst = Instance {
            template: ti,
            names: inst_names,
            io,
            s,
            c,
            place,
            object,
        };
        let (text, _) = render(&t.pieces, &inst.names, &inst.place, &inst.object);
        if seen.insert(text) {
            instances.push(inst);
        }
    }

    let mut flip_rng = opts
        .flip
        .as_deref()
        .map(|f| ChaCha8Rng::seed_from_u64(opts.seed ^ fnv1a(f.trim())));
    let mut examples = Vec::with_capacity(instances.len());
    for inst in &instances {
        let t = &templates[inst.template];
        let mut ex = build_example(tok, t, inst, opts.prepend_bos)?;
        if let (Some(flip), Some(frng)) = (&flip, flip_rng.as_mut()) {
            let spec = opts.flip.as_deref().unwrap_or_default();
            let (pieces, cnames) = apply_flip(flip, spec, t, inst, &names, frng)?;
            let (ctext, _) = render(&pieces, &cnames, &inst.place, &inst.object);
            let (ctoks, _) = tokenize(tok, &ctext, opts.prepend_bos)?;
            ex.corrupted_prompt = Some(ctext);
            ex.corrupted_tokens = Some(ctoks);
        }
        examples.push(ex);
    }
    Ok(Dataset {
        task: "ioi".into(),
        examples,
    })
}

fn build_example(
    tok: &Tokenizer,
    t: &Template,
    inst: &Instance,
    prepend_bos: bool,
) -> Result<Example> {
    let (text, spans) = render(&t.pieces, &inst.names, &inst.place, &inst.object);
    let (tokens, offsets) = tokenize(tok, &text, prepend_bos)?;
    let mut idx = Vec::with_capacity(spans.len());
    for (k, span) in spans.iter().enumerate() {
        match locate(&offsets, *span) {
            Some(i) => idx.push(i),
            None => {
                return Err(Error::input(format!(
                    "IOI template '{}': the name '{}' in {text:?} is not one token with {}; \
                     names must be single tokens where they stand",
                    t.id,
                    inst.names[k],
                    tok.source().display()
                )))
            }
        }
    }
    let a = t.occurrences('A');
    let b = t.occurrences('B');
    let io = idx[a[0]];
    let s1 = idx[b[0]];
    let s2 = idx[*b.last().unwrap_or(&b[0])];
    let end = end_position(&tokens);
    let mut pos = BTreeMap::new();
    let mut put = |k: &str, v: usize| {
        pos.insert(k.to_string(), v);
    };
    put("IO", io);
    put("IO-1", io.saturating_sub(1));
    put("IO+1", io + 1);
    put("S1", s1);
    put("S1-1", s1.saturating_sub(1));
    put("S1+1", s1 + 1);
    put("S", s1);
    put("S-1", s1.saturating_sub(1));
    put("S+1", s1 + 1);
    put("S2", s2);
    put("end", end);
    put("END", end);
    put("starts", 0);
    if let Some(&c) = t.occurrences('C').first() {
        put("C", idx[c]);
    }
    let strs = tok.to_str_tokens(&tokens)?;
    let last = |p: &str| strs.iter().rposition(|s| s.trim() == p);
    if let Some(p) = last(".").or_else(|| last(",")) {
        put("punct", p);
    }
    let answer = tok.single_token(&format!(" {}", inst.io)).ok_or_else(|| {
        Error::input(format!(
            "IOI: the answer ' {}' is not one token with {}",
            inst.io,
            tok.source().display()
        ))
    })?;
    let wrong = tok.single_token(&format!(" {}", inst.s)).ok_or_else(|| {
        Error::input(format!(
            "IOI: the subject ' {}' is not one token with {}",
            inst.s,
            tok.source().display()
        ))
    })?;
    let mut features = BTreeMap::new();
    features.insert("template".to_string(), t.id.clone());
    features.insert("order".to_string(), t.order());
    features.insert("IO".to_string(), inst.io.clone());
    features.insert("S".to_string(), inst.s.clone());
    if let Some(c) = &inst.c {
        features.insert("C".to_string(), c.clone());
    }
    if t.has(Slot::Place) {
        features.insert("place".to_string(), inst.place.clone());
    }
    if t.has(Slot::Object) {
        features.insert("object".to_string(), inst.object.clone());
    }
    Ok(Example {
        prompt: text,
        tokens,
        positions: pos,
        answer: vec![answer],
        wrong: vec![wrong],
        features,
        corrupted_prompt: None,
        corrupted_tokens: None,
    })
}

#[cfg(test)]
mod tests {
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
