//! IOI templates: the paper's, ARENA's and REMIX's template families, their ids and texts,
//! and the parsed form (literal pieces and name / place / object slots).

use super::*;
use crate::error::{Error, Result};
use std::collections::BTreeSet;

/// Template families and how each is derived from the source lists.
pub(super) const FAMILIES: [&str; 12] = [
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
pub(super) fn swap_first(t: &str, a: &str, b: &str) -> String {
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
pub(super) fn family(name: &str) -> Vec<String> {
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
pub(super) enum Slot {
    Name(char),
    Place,
    Object,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Lit(String),
    Slot(Slot),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub(super) struct Template {
    pub(super) id: String,
    pub(super) pieces: Vec<Piece>,
    /// The role letter of each name occurrence, in text order.
    pub(super) letters: Vec<char>,
}

impl Template {
    pub(super) fn parse(id: &str, text: &str) -> Result<Template> {
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

    pub(super) fn has(&self, slot: Slot) -> bool {
        self.pieces.contains(&Piece::Slot(slot))
    }

    pub(super) fn distinct_names(&self) -> usize {
        self.letters.iter().collect::<BTreeSet<_>>().len()
    }

    pub(super) fn order(&self) -> String {
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

    pub(super) fn occurrences(&self, letter: char) -> Vec<usize> {
        self.letters
            .iter()
            .enumerate()
            .filter(|(_, &l)| l == letter)
            .map(|(i, _)| i)
            .collect()
    }
}

/// The templates a set of options selects.
pub(super) fn select_templates(opts: &IoiOptions) -> Result<Vec<Template>> {
    let k = opts.templates;
    let family_k = |fam: &str| take(fam, k);
    let mixed_k = |a: &str, b: &str, default: usize| mixed(a, b, k, default);
    let pairs = match &opts.prompt_type {
        PromptType::Abba => family_k("abba")?,
        PromptType::Baba => family_k("baba")?,
        PromptType::Mixed => mixed_k("baba", "abba", BABA_TEMPLATES.len())?,
        PromptType::Abc => family_k("abc")?,
        PromptType::Bac => family_k("bac")?,
        PromptType::AbcMixed => mixed_k("abc", "bac", ABC_TEMPLATES.len())?,
        PromptType::BabaLong => family_k("baba-long")?,
        PromptType::AbbaLong => family_k("abba-long")?,
        PromptType::BabaLate => family_k("baba-late")?,
        PromptType::AbbaLate => family_k("abba-late")?,
        PromptType::BabaEarly => family_k("baba-early")?,
        PromptType::AbbaEarly => family_k("abba-early")?,
        PromptType::RemixAbba => family_k("remix-abba")?,
        PromptType::RemixBaba => family_k("remix-baba")?,
        PromptType::RemixMixed => mixed_k("remix-baba", "remix-abba", 2)?,
        PromptType::Templates(list) => listed(list, k)?,
    };
    // The same text twice (e.g. baba-0 and baba-late-0) would count its prompts twice.
    let mut seen = BTreeSet::new();
    pairs
        .iter()
        .filter(|(_, text)| seen.insert(text.clone()))
        .map(|(id, text)| Template::parse(id, text))
        .collect()
}

/// The first `k` templates of a family (all of them when `k` is 0), with their ids.
fn take(fam: &str, k: usize) -> Result<Vec<(String, String)>> {
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
}

/// A mixed prompt type: `k` templates (`default` when 0), half from family `a`, half from `b`.
fn mixed(a: &str, b: &str, k: usize, default: usize) -> Result<Vec<(String, String)>> {
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
}

/// `Templates(list)`: ids of shipped templates or custom templates, the first `k` (all when 0).
fn listed(list: &[String], k: usize) -> Result<Vec<(String, String)>> {
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
    Ok(v)
}
