//! One prompt: the names, place and object drawn for a template, rendered to text with the
//! byte span of every name, tokenized, and each span located in the tokens.

use super::templates::{Piece, Slot};
use crate::error::Result;
use crate::tokenizer::{Encoded, Tokenizer};

/// One generated prompt, before tokenization.
#[derive(Debug, Clone)]
pub(super) struct Instance {
    pub(super) template: usize,
    /// The name at each name occurrence.
    pub(super) names: Vec<String>,
    pub(super) io: String,
    pub(super) s: String,
    pub(super) c: Option<String>,
    pub(super) place: String,
    pub(super) object: String,
}

/// Render pieces with names; returns the text and the byte span of each name occurrence.
pub(super) fn render(
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
pub(super) fn tokenize(tok: &Tokenizer, text: &str, prepend_bos: bool) -> Result<Encoded> {
    let starts_with_bos = tok.bos_token().is_some_and(|b| text.starts_with(&b));
    tok.encode_with_offsets(text, prepend_bos && !starts_with_bos)
}

/// The token that holds exactly the byte span, if there is one.
pub(super) fn locate(offsets: &[(usize, usize)], span: (usize, usize)) -> Option<usize> {
    offsets
        .iter()
        .position(|&(s, e)| e > s && s <= span.0 && span.0 < e)
        .filter(|&i| offsets[i].1 == span.1)
}
