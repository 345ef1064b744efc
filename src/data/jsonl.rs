//! User datasets: JSON lines, one object per line:
//! `{"prompt": "…", "answer": " Paris", "wrong": " Rome", "corrupted": "…", "features": {…}}`.
//!
//! `answer` and `wrong` are a string or a list of strings, each exactly one token as written
//! (mind the leading space), or token ids; `wrong`, `corrupted`, `features` and `positions`
//! (name → token index) are optional. The output of `circuitscope data` (with `tokens`,
//! `corrupted_prompt`, `corrupted_tokens` and token ids) is accepted too. Empty lines are skipped.

use super::dataset::{end_position, Dataset, Example};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Options of a JSONL dataset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct JsonlOptions {
    /// The file.
    pub path: String,
    /// Keep only the first `n` rows (0 = all).
    pub n: usize,
    /// Prepend the BOS token to prompts given as text.
    pub prepend_bos: bool,
}

const FIELDS: [&str; 9] = [
    "prompt",
    "answer",
    "wrong",
    "corrupted",
    "features",
    "positions",
    "tokens",
    "corrupted_prompt",
    "corrupted_tokens",
];

/// Load a JSONL dataset.
pub fn load(opts: &JsonlOptions, tok: &Tokenizer) -> Result<Dataset> {
    let path = Path::new(&opts.path);
    let text = crate::error::read_to_string(path)?;
    parse(&text, &path.display().to_string(), opts, tok)
}

/// Parse JSONL text; `name` (the file) is used in messages.
pub fn parse(text: &str, name: &str, opts: &JsonlOptions, tok: &Tokenizer) -> Result<Dataset> {
    let mut examples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if opts.n > 0 && examples.len() == opts.n {
            break;
        }
        examples.push(parse_line(line, name, i + 1, opts, tok)?);
    }
    if examples.is_empty() {
        return Err(Error::input(format!(
            "{name}: no examples; write one JSON object per line"
        )));
    }
    Ok(Dataset {
        task: "jsonl".into(),
        examples,
    })
}

/// A message about `field` of the current line.
type At<'a> = dyn Fn(&str, String) -> Error + 'a;

/// One line (`lineno`, from 1) of the file `name`: one example.
fn parse_line(
    line: &str,
    name: &str,
    lineno: usize,
    opts: &JsonlOptions,
    tok: &Tokenizer,
) -> Result<Example> {
    let at =
        |field: &str, msg: String| Error::input(format!("{name}:{lineno}: field `{field}`: {msg}"));
    let v: Value = serde_json::from_str(line).map_err(|e| {
        Error::input(format!(
            "{name}:{lineno}: not valid JSON ({e}); each line must be one object like \
             {{\"prompt\": \"…\", \"answer\": \" Paris\"}}"
        ))
    })?;
    let Value::Object(obj) = v else {
        return Err(Error::input(format!(
            "{name}:{lineno}: expected a JSON object with \"prompt\" and \"answer\""
        )));
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(at(
            k,
            format!("unknown field; known fields: {}", FIELDS.join(", ")),
        ));
    }
    let prompt = match obj.get("prompt") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(at("prompt", "must be a non-empty string".into())),
        None => return Err(at("prompt", "missing; every line needs a prompt".into())),
    };
    let tokens = match obj.get("tokens") {
        Some(t) => ids(t).ok_or_else(|| at("tokens", "must be a list of token ids".into()))?,
        None => known_words(&prompt, opts.prepend_bos, tok).map_err(|m| at("prompt", m))?,
    };
    if tokens.is_empty() {
        return Err(at("prompt", "tokenizes to no tokens".into()));
    }
    let (answer, wrong) = answers(&obj, tok, &at)?;
    let (corrupted_prompt, corrupted_tokens) = corrupted(&obj, opts, tok, &at)?;
    let features = features(&obj, &at)?;
    let mut positions = positions(&obj, tokens.len(), &at)?;
    positions
        .entry("END".to_string())
        .or_insert(end_position(&tokens));
    let vocab = tok.vocab_size();
    if let Some(bad) = tokens
        .iter()
        .chain(corrupted_tokens.iter().flatten())
        .find(|&&t| t as usize >= vocab)
    {
        return Err(at(
            "tokens",
            format!("token id {bad} is outside the vocabulary ({vocab} tokens)"),
        ));
    }
    Ok(Example {
        prompt,
        tokens,
        positions,
        answer,
        wrong,
        features,
        corrupted_prompt,
        corrupted_tokens,
    })
}

/// `answer` (required, at least one token) and `wrong` (optional).
fn answers(
    obj: &serde_json::Map<String, Value>,
    tok: &Tokenizer,
    at: &At,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let answer = match obj.get("answer") {
        Some(a) => token_set(a, tok).map_err(|m| at("answer", m))?,
        None => {
            return Err(at(
                "answer",
                "missing; give the answer token, e.g. \" Paris\"".into(),
            ))
        }
    };
    if answer.is_empty() {
        return Err(at(
            "answer",
            "is empty; give at least one answer token".into(),
        ));
    }
    let wrong = match obj.get("wrong") {
        Some(w) => token_set(w, tok).map_err(|m| at("wrong", m))?,
        None => Vec::new(),
    };
    Ok((answer, wrong))
}

/// The corrupted prompt (`corrupted` or `corrupted_prompt`) and its tokens
/// (`corrupted_tokens`, or the prompt tokenized).
fn corrupted(
    obj: &serde_json::Map<String, Value>,
    opts: &JsonlOptions,
    tok: &Tokenizer,
    at: &At,
) -> Result<(Option<String>, Option<Vec<u32>>)> {
    let corrupted_prompt = match obj.get("corrupted").or_else(|| obj.get("corrupted_prompt")) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(_) => return Err(at("corrupted", "must be a string".into())),
    };
    let corrupted_tokens = match (obj.get("corrupted_tokens"), &corrupted_prompt) {
        (Some(t), _) => Some(
            ids(t).ok_or_else(|| at("corrupted_tokens", "must be a list of token ids".into()))?,
        ),
        (None, Some(c)) => {
            Some(known_words(c, opts.prepend_bos, tok).map_err(|m| at("corrupted", m))?)
        }
        (None, None) => None,
    };
    Ok((corrupted_prompt, corrupted_tokens))
}

/// The optional object `field` (absent or `null`: empty), each entry's value converted by
/// `value` (its `Err` says what is wrong with that entry); `whole` is the message when the
/// field is not an object.
fn name_map<T>(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    whole: &str,
    at: &At,
    value: impl Fn(&str, &Value) -> std::result::Result<T, String>,
) -> Result<BTreeMap<String, T>> {
    let mut out = BTreeMap::new();
    match obj.get(field) {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                out.insert(k.clone(), value(k, v).map_err(|msg| at(field, msg))?);
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => return Err(at(field, whole.into())),
    }
    Ok(out)
}

/// `features`: name → value (strings, numbers and booleans, as text).
fn features(obj: &serde_json::Map<String, Value>, at: &At) -> Result<BTreeMap<String, String>> {
    name_map(
        obj,
        "features",
        "must be an object of name → value",
        at,
        |k, v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(format!("feature '{k}' must be a string, number or boolean")),
        },
    )
}

/// `positions`: name → token index below `len`.
fn positions(
    obj: &serde_json::Map<String, Value>,
    len: usize,
    at: &At,
) -> Result<BTreeMap<String, usize>> {
    name_map(
        obj,
        "positions",
        "must be an object of name → index",
        at,
        |k, v| {
            v.as_u64()
                .map(|p| p as usize)
                .filter(|&p| p < len)
                .ok_or_else(|| format!("position '{k}' must be a token index below {len}"))
        },
    )
}

/// Tokens of `text`, refusing words the vocabulary lacks (they would all become the same
/// unknown token, silently changing the prompt).
fn known_words(
    text: &str,
    prepend_bos: bool,
    tok: &Tokenizer,
) -> std::result::Result<Vec<u32>, String> {
    let (ids, offsets) = tok
        .encode_with_offsets(text, prepend_bos)
        .map_err(|e| e.to_string())?;
    let Some(unk) = tok.unk_token_id() else {
        return Ok(ids);
    };
    for (&id, &(a, b)) in ids.iter().zip(&offsets) {
        let word = text.get(a..b).unwrap_or("");
        if id == unk && word.trim() != tok.id_token(unk).unwrap_or_default() {
            return Err(format!(
                "the word {word:?} (at byte {a}) is not in the vocabulary of {} and would become \
                 {}; use words the model knows, or give token ids in `tokens`",
                tok.source().display(),
                tok.id_token(unk).unwrap_or_default()
            ));
        }
    }
    Ok(ids)
}

fn ids(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
        .collect()
}

/// A string, a token id, or a list of either; strings must be exactly one token.
fn token_set(v: &Value, tok: &Tokenizer) -> std::result::Result<Vec<u32>, String> {
    let one = |x: &Value| -> std::result::Result<u32, String> {
        match x {
            Value::String(s) => tok.single_token(s).ok_or_else(|| {
                let ids = tok.to_tokens(s, false).unwrap_or_default();
                if ids.len() == 1 && Some(ids[0]) == tok.unk_token_id() {
                    return format!(
                        "{s:?} is not in the vocabulary of {} (it would become the unknown \
                         token); answers must be words the model knows",
                        tok.source().display()
                    );
                }
                format!(
                    "{s:?} is {} tokens, not one; answers must be single tokens (write them as \
                     they follow the prompt, usually with a leading space)",
                    ids.len()
                )
            }),
            Value::Number(n) => n
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .filter(|&x| (x as usize) < tok.vocab_size())
                .ok_or_else(|| format!("{n} is not a token id of this tokenizer")),
            _ => Err("must be a string, a token id, or a list of them".into()),
        }
    };
    match v {
        Value::Array(xs) => xs.iter().map(one).collect(),
        x => one(x).map(|t| vec![t]),
    }
}
