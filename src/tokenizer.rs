//! A thin wrapper over the `tokenizers` crate: text to token ids (with an optional BOS token),
//! ids to strings, and "is this word one token" checks.
//!
//! Works with any Hugging Face `tokenizer.json`: GPT-2's byte-level BPE (shipped in
//! `models/gpt2-tokenizer/`), Pythia's, and the word-level tokenizers of the toy models
//! (see [`word_level_tokenizer_json`]).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Names under which tokenizers commonly store their beginning-of-sequence token, in order of
/// preference, when no `tokenizer_config.json` names it. GPT-2, Pythia and Qwen2 use
/// `<|endoftext|>`, Llama 3 `<|begin_of_text|>`, Llama 2 `<s>`, Gemma `<bos>`.
const BOS_CANDIDATES: [&str; 7] = [
    "<|begin_of_text|>",
    "<|endoftext|>",
    "<s>",
    "<bos>",
    "[BOS]",
    "</s>",
    "<eos>",
];

/// Names of unknown-word tokens: a word that encodes to one of these is not "one token".
const UNK_CANDIDATES: [&str; 3] = ["[UNK]", "<unk>", "<|unk|>"];

/// Token ids with each token's byte range in the text.
pub type Encoded = (Vec<u32>, Vec<(usize, usize)>);

/// A tokenizer loaded from a `tokenizer.json`.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    source: PathBuf,
    bos: Option<u32>,
    unk: Option<u32>,
    vocab_size: usize,
    bos_by_default: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .finish()
    }
}

impl Tokenizer {
    /// Load a `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::error::read_to_string(path)?;
        let inner = tokenizers::Tokenizer::from_str(&text).map_err(|e| {
            Error::input(format!(
                "{}: not a valid Hugging Face tokenizer.json ({e}). Use the tokenizer.json \
                 saved with the model (e.g. `tokenizer.save_pretrained(dir)` in Python), or \
                 models/gpt2-tokenizer/tokenizer.json for GPT-2.",
                path.display()
            ))
        })?;
        let mut t = Self::wrap(inner, path.to_path_buf());
        let config = path.with_file_name("tokenizer_config.json");
        if config.is_file() {
            t.apply_config(&config)?;
        }
        Ok(t)
    }

    /// Take the BOS token and whether the family prepends it from `tokenizer_config.json`:
    /// `bos_token` (a string, `{"content": …}`, or `null` = none by default, as Qwen2), and
    /// `add_bos_token` when present.
    fn apply_config(&mut self, path: &Path) -> Result<()> {
        let text = crate::error::read_to_string(path)?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::input(format!(
                "{}:{}:{}: malformed JSON: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        match v.get("bos_token") {
            Some(serde_json::Value::Null) => self.bos_by_default = false,
            Some(b) => {
                let name = b
                    .as_str()
                    .or_else(|| b.get("content").and_then(|c| c.as_str()));
                if let Some(id) = name.and_then(|n| self.inner.token_to_id(n)) {
                    self.bos = Some(id);
                }
            }
            None => {}
        }
        if let Some(add) = v.get("add_bos_token").and_then(|a| a.as_bool()) {
            self.bos_by_default = add && self.bos.is_some();
        }
        Ok(())
    }

    /// Whether the model's family prepends BOS by default: Llama and Gemma (and GPT-2 as
    /// TransformerLens does) yes, Qwen2 no (its `tokenizer_config.json` has `bos_token: null`).
    pub fn prepends_bos_by_default(&self) -> bool {
        self.bos_by_default
    }

    /// Build a tokenizer from the text of a `tokenizer.json` (`name` is used in messages).
    pub fn from_json_str(json: &str, name: &str) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_str(json).map_err(|e| {
            Error::input(format!(
                "{name}: not a valid Hugging Face tokenizer.json ({e})"
            ))
        })?;
        Ok(Self::wrap(inner, PathBuf::from(name)))
    }

    /// Load `dir/tokenizer.json`.
    pub fn from_model_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::input(format!(
                "{}: no tokenizer.json in this model folder. Copy the model's tokenizer.json \
                 there (for GPT-2 models: models/gpt2-tokenizer/tokenizer.json; for Hugging Face \
                 models: the tokenizer.json of the same snapshot).",
                dir.display()
            )));
        }
        Self::from_file(&path)
    }

    fn wrap(inner: tokenizers::Tokenizer, source: PathBuf) -> Self {
        let bos = BOS_CANDIDATES.iter().find_map(|t| inner.token_to_id(t));
        let unk = UNK_CANDIDATES.iter().find_map(|t| inner.token_to_id(t));
        // Computing the size builds the whole vocabulary map: do it once.
        let vocab_size = inner.get_vocab_size(true);
        Tokenizer {
            inner,
            source,
            bos,
            unk,
            vocab_size,
            bos_by_default: bos.is_some(),
        }
    }

    /// Where this tokenizer was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Token ids of `text`, with the BOS token first when `prepend_bos`.
    pub fn to_tokens(&self, text: &str, prepend_bos: bool) -> Result<Vec<u32>> {
        Ok(self.encode_with_offsets(text, prepend_bos)?.0)
    }

    /// Token ids of `text` and each token's byte range in `text` (the BOS token, when
    /// prepended, gets the empty range `(0, 0)`).
    pub fn encode_with_offsets(&self, text: &str, prepend_bos: bool) -> Result<Encoded> {
        let enc = self.inner.encode(text, false).map_err(|e| {
            Error::input(format!(
                "{}: could not tokenize {text:?}: {e}",
                self.source.display()
            ))
        })?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        let mut offsets = Vec::with_capacity(enc.len() + 1);
        if prepend_bos {
            let Some(bos) = self.bos else {
                return Err(Error::input(format!(
                    "{}: this tokenizer has no BOS token (looked for {}); set prepend_bos to \
                     false (CLI: --prepend-bos false)",
                    self.source.display(),
                    BOS_CANDIDATES.join(", ")
                )));
            };
            ids.push(bos);
            offsets.push((0, 0));
        }
        ids.extend_from_slice(enc.get_ids());
        offsets.extend_from_slice(enc.get_offsets());
        Ok((ids, offsets))
    }

    /// One string per id, as the tokenizer decodes it alone (e.g. `" Mary"`).
    pub fn to_str_tokens(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter().map(|&id| self.decode(&[id])).collect()
    }

    /// Decode ids to text (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let vocab = self.vocab_size();
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            return Err(Error::input(format!(
                "token id {bad} is outside the vocabulary of {} ({vocab} tokens)",
                self.source.display()
            )));
        }
        self.inner.decode(ids, false).map_err(|e| {
            Error::input(format!(
                "{}: could not decode {ids:?}: {e}",
                self.source.display()
            ))
        })
    }

    /// `Some(id)` iff `word` encodes to exactly one token (and that token is not the unknown
    /// token). Write the word as it stands in the text, usually with its leading space: `" Mary"`.
    pub fn single_token(&self, word: &str) -> Option<u32> {
        let enc = self.inner.encode(word, false).ok()?;
        match enc.get_ids() {
            [id] if Some(*id) != self.unk || UNK_CANDIDATES.contains(&word.trim()) => Some(*id),
            _ => None,
        }
    }

    /// The id of a token given as the vocabulary spells it (GPT-2: `"ĠMary"`), or of an added
    /// token such as `"<|endoftext|>"`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary spelling of a token id (GPT-2: `"ĠMary"`).
    pub fn id_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of token ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The beginning-of-sequence token: `<|endoftext|>` for GPT-2 and Pythia, else the
    /// tokenizer's `<s>`/`<bos>`/`</s>`/`<eos>` if it has one.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos
    }

    /// The text of the BOS token, if any.
    pub fn bos_token(&self) -> Option<String> {
        self.bos.and_then(|b| self.inner.id_to_token(b))
    }

    /// The unknown-word token id, if the tokenizer has one.
    pub fn unk_token_id(&self) -> Option<u32> {
        self.unk
    }

    /// Ids of the added special tokens (BOS, UNK, padding …), sorted.
    pub fn special_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// Split text the way the word-level tokenizers' `Whitespace` pre-tokenizer does:
/// runs of word characters, and runs of other non-space characters (`"Then,"` → `Then`, `,`).
pub fn whitespace_split(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_word: Option<bool> = None;
    for c in text.chars() {
        if c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur_word = None;
            continue;
        }
        let is_word = c.is_alphanumeric() || c == '_';
        if cur_word.is_some_and(|w| w != is_word) && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
        cur_word = Some(is_word);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The text of a word-level `tokenizer.json` over `words`, for toy models.
///
/// Ids: the `specials` first (`<|endoftext|>` is always id 0 and `[UNK]` always present), then
/// the words in the order given, without repeats. Each word is split like the pre-tokenizer
/// splits text (`"Then,"` gives `Then` and `,`), so `" Mary"` and `"Mary"` are the same token.
/// The pre-tokenizer is `Whitespace` (`\w+|[^\w\s]+`); unknown words become `[UNK]`.
pub fn word_level_tokenizer_json(words: &[String], specials: &[&str]) -> String {
    let mut specials_all: Vec<String> = vec!["<|endoftext|>".to_string()];
    for s in specials {
        if !specials_all.iter().any(|x| x == s) {
            specials_all.push(s.to_string());
        }
    }
    if !specials_all.iter().any(|x| x == "[UNK]") {
        specials_all.push("[UNK]".to_string());
    }
    let mut vocab: Vec<String> = specials_all.clone();
    let mut seen: std::collections::BTreeSet<String> = vocab.iter().cloned().collect();
    for w in words {
        for piece in whitespace_split(w) {
            if seen.insert(piece.clone()) {
                vocab.push(piece);
            }
        }
    }
    let mut vocab_map = serde_json::Map::new();
    for (i, w) in vocab.iter().enumerate() {
        vocab_map.insert(w.clone(), serde_json::Value::from(i as u64));
    }
    let added: Vec<serde_json::Value> = specials_all
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({
                "id": i, "content": s, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true
            })
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab_map, "unk_token": "[UNK]"}
    });
    // serde_json's map keeps keys sorted (no preserve_order feature), so the text is stable.
    serde_json::to_string_pretty(&json).unwrap_or_default()
}
