//! JSONL datasets, tokenized with toy-ioi's word-level tokenizer.

use circuitscope::data::jsonl::{parse, JsonlOptions};
use circuitscope::tokenizer::Tokenizer;
use std::sync::OnceLock;

fn tok() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        Tokenizer::from_json_str(
            include_str!("../../models/toy-ioi/tokenizer.json"),
            "toy-ioi",
        )
        .expect("the shipped tokenizer loads")
    })
}

/// Run one input; true when it loaded as a dataset.
pub fn run(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let opts = JsonlOptions {
        path: "fuzz.jsonl".into(),
        n: 0,
        prepend_bos: data.len().is_multiple_of(2),
    };
    let Ok(ds) = parse(text, "fuzz.jsonl", &opts, tok()) else {
        return false;
    };
    assert!(!ds.is_empty());
    for e in &ds.examples {
        assert!(!e.tokens.is_empty() && !e.answer.is_empty());
        assert!(e.end() < e.tokens.len());
    }
    let _ = ds.padded_tokens(0);
    true
}
