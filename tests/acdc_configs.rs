//! The shipped ACDC configs parse, and their tasks build aligned datasets.

use circuitscope::acdc::{self, Config};
use circuitscope::tokenizer::Tokenizer;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_configs_parse() {
    let dir = root().join("configs/acdc");
    let mut names = vec![];
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) == Some("ron") {
            let c = Config::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(c.tau > 0.0);
            // The saved form reads back to the same config.
            let again = Config::from_ron(&c.to_ron(), "round trip").unwrap();
            assert_eq!(again, c);
            assert_eq!(again.hash(), c.hash());
            names.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    for want in ["ioi-gpt2.ron", "toy-induction.ron", "toy-ioi.ron"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
}

/// The reference's IOI setting on GPT-2's tokenizer: 100 ABBA prompts of one template, each
/// with a three-new-names (ABC) corruption of the same length.
#[test]
fn ioi_gpt2_dataset_is_the_reference_setting() {
    let c = Config::load(&root().join("configs/acdc/ioi-gpt2.ron")).unwrap();
    let tok = Tokenizer::from_file(&root().join("models/gpt2-tokenizer/tokenizer.json")).unwrap();
    let ds = c.task_with_n().build(&tok).unwrap();
    assert_eq!(ds.len(), 100);
    acdc::check_alignment(&ds).unwrap();
    let lens: std::collections::BTreeSet<usize> =
        ds.examples.iter().map(|e| e.tokens.len()).collect();
    assert_eq!(lens.len(), 1, "one template: one length");
    for e in &ds.examples {
        let names_clean: Vec<u32> = vec![e.tokens[e.positions["IO"]], e.tokens[e.positions["S1"]]];
        let c = e.corrupted_tokens.as_ref().unwrap();
        // The corruption changes both names.
        assert_ne!(c[e.positions["IO"]], names_clean[0]);
        assert_ne!(c[e.positions["S1"]], names_clean[1]);
        assert_eq!(e.answer.len(), 1);
    }
    assert_eq!(c.metric, circuitscope::metric::Metric::Kl);
    assert_eq!(c.tau, 0.0575);
}
