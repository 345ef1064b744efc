//! IOI flips: corruptions aligned row by row with the clean prompts (REMIX's, the paper's
//! tuples and ARENA's letter patterns), parsed from one string and applied to one prompt.

use super::prompt::Instance;
use super::templates::{Piece, Slot, Template};
use super::PREFIXES;
use crate::error::{Error, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// A parsed flip.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Flip {
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

pub(super) const FLIP_HELP: &str =
    "known flips: REMIX's IO, S, S1, S2, order; the paper's IO->RAND, \
    S->RAND, S1->RAND, S2->RAND, S2->IO, IO->S1, S+1->RAND, prefix; ARENA's patterns such as \
    \"ABB->XYZ, BAB->XYZ\", \"ABB->CDD, BAB->DCD\", \"ABB->BAA, BAB->ABA\"";

pub(super) fn parse_flip(spec: &str) -> Result<Flip> {
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
pub(super) fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(super) fn pick<'a>(rng: &mut ChaCha8Rng, xs: &'a [String]) -> &'a String {
    &xs[rng.random_range(0..xs.len())]
}

/// A random name not in `exclude`.
pub(super) fn pick_other(
    rng: &mut ChaCha8Rng,
    names: &[String],
    exclude: &[&str],
) -> Result<String> {
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
pub(super) fn apply_flip(
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
        Flip::SPlus1 => after_first_subject(&mut pieces, b[0], t, rng)?,
        Flip::Prefix => add_prefix(&mut pieces, rng),
        Flip::Pattern(parts) => rewrite_pattern(parts, spec, t, inst, names, rng, &mut out)?,
    }
    Ok((pieces, out))
}

/// Flip `S+1->RAND`: rewrite the literal right after the first subject (`b0`: its name slot).
fn after_first_subject(
    pieces: &mut [Piece],
    b0: usize,
    t: &Template,
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    // The literal right after the first S.
    let mut seen = 0;
    let mut target = None;
    for (pi, p) in pieces.iter().enumerate() {
        if let Piece::Slot(Slot::Name(_)) = p {
            if seen == b0 {
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
    Ok(())
}

/// Flip `PREFIX`: a prefix sentence before the prompt (after its BOS).
fn add_prefix(pieces: &mut Vec<Piece>, rng: &mut ChaCha8Rng) {
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

/// A pattern flip (`ABB->XYZ, …`): the names rewritten by the part matching the template's
/// letters, new letters drawn from the names not yet used.
fn rewrite_pattern(
    parts: &[(Vec<char>, Vec<char>)],
    spec: &str,
    t: &Template,
    inst: &Instance,
    names: &[String],
    rng: &mut ChaCha8Rng,
    out: &mut [String],
) -> Result<()> {
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
    Ok(())
}
