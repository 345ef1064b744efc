use circuitscope::data::{ioi_vocabulary, IoiOptions};
use circuitscope::tokenizer::{word_level_tokenizer_json, Tokenizer};
use std::path::Path;

fn gpt2() -> Tokenizer {
    Tokenizer::from_model_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gpt2-tokenizer"))
        .expect("shipped GPT-2 tokenizer loads")
}

#[test]
fn gpt2_known_ids() {
    let tok = gpt2();
    assert_eq!(tok.to_tokens(" Mary", false).unwrap(), vec![5335]);
    assert_eq!(tok.to_tokens(" John", false).unwrap(), vec![1757]);
    assert_eq!(tok.to_tokens("<|endoftext|>", false).unwrap(), vec![50256]);
    assert_eq!(tok.single_token(" Mary"), Some(5335));
    assert_eq!(tok.single_token("<|endoftext|>"), Some(50256));
    assert_eq!(tok.token_id("<|endoftext|>"), Some(50256));
    assert_eq!(tok.token_id("ĠMary"), Some(5335));
    assert_eq!(tok.bos_token_id(), Some(50256));
    assert_eq!(tok.vocab_size(), 50257);
    assert_eq!(
        tok.to_str_tokens(&[5335, 1757]).unwrap(),
        vec![" Mary", " John"]
    );
    assert_eq!(
        tok.to_tokens("Hello world", true).unwrap(),
        vec![50256, 15496, 995]
    );
}

#[test]
fn gpt2_single_token_checks() {
    let tok = gpt2();
    assert!(tok.single_token(" basketball").is_some());
    assert_eq!(tok.single_token(" circuitscope"), None);
    assert_eq!(tok.single_token(" Mary and"), None);
    assert_eq!(tok.single_token(""), None);
}

#[test]
fn remix_prompt_is_sixteen_tokens() {
    let tok = gpt2();
    let text = "<|endoftext|>Then, Mary and John went to the store. John gave a ring to";
    let ids = tok.to_tokens(text, false).unwrap();
    assert_eq!(ids.len(), 16);
    assert_eq!(ids[0], 50256);
    assert_eq!(ids[3], 5335);
    assert_eq!(ids[5], 1757);
    assert_eq!(ids[11], 1757);
    let strs = tok.to_str_tokens(&ids).unwrap();
    assert_eq!(strs[15], " to");
    assert_eq!(tok.decode(&ids).unwrap(), text);
}

#[test]
fn missing_tokenizer_names_dir_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_model_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(err.contains("tokenizer.json"), "{err}");
    let bad = dir.path().join("tokenizer.json");
    std::fs::write(&bad, "{not json").unwrap();
    let err = Tokenizer::from_file(&bad).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("not a valid"),
        "{err}"
    );
}

#[test]
fn decode_rejects_ids_outside_vocab() {
    let tok = gpt2();
    assert!(tok.decode(&[60000]).is_err());
}

#[test]
fn word_level_tokenizer_for_ioi() {
    let words = ioi_vocabulary(&IoiOptions::default());
    assert!(words.contains(&"Mary".to_string()));
    assert!(words.contains(&",".to_string()));
    assert!(!words.iter().any(|w| w.contains("endoftext")));
    let json = word_level_tokenizer_json(&words, &[]);
    let tok = Tokenizer::from_json_str(&json, "toy").unwrap();
    assert_eq!(tok.token_id("<|endoftext|>"), Some(0));
    assert_eq!(tok.bos_token_id(), Some(0));
    let mary = tok.single_token(" Mary").expect("Mary is a word");
    assert_eq!(tok.single_token("Mary"), Some(mary));
    assert_eq!(
        tok.single_token(" Zorglub"),
        None,
        "unknown words are not tokens"
    );
    let ids = tok
        .to_tokens("<|endoftext|>Then, Mary and John went to the store.", false)
        .unwrap();
    let strs: Vec<String> = ids.iter().map(|&i| tok.id_token(i).unwrap()).collect();
    assert_eq!(
        strs,
        [
            "<|endoftext|>",
            "Then",
            ",",
            "Mary",
            "and",
            "John",
            "went",
            "to",
            "the",
            "store",
            "."
        ]
    );
    // Same words → same file.
    assert_eq!(json, word_level_tokenizer_json(&words, &[]));
}
