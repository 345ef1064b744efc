//! Fuzz target `hypothesis`: the body is shared with the corpus replay test (tests/fuzz_corpus.rs).
#![no_main]

#[path = "../bodies/hypothesis.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
