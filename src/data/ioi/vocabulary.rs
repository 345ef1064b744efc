//! The words IOI prompts use: single-token filtering of name, place and object lists, and the
//! vocabulary of a toy word-level tokenizer.

use super::templates::{family, FAMILIES};
use super::*;
use crate::tokenizer::{whitespace_split, Tokenizer};
use std::collections::BTreeSet;

/// Words of `list` that are one token where they stand (after a space); the others are left out
/// with one warning.
pub(super) fn single_token_words(tok: &Tokenizer, list: &[&str], what: &str) -> Vec<String> {
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
