use circuitscope::data::jsonl::{self, JsonlOptions};
use circuitscope::data::{GreaterThanOptions, InductionOptions, SequenceOptions, TaskSpec};
use circuitscope::tokenizer::Tokenizer;
use std::path::Path;

fn gpt2() -> Tokenizer {
    Tokenizer::from_model_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gpt2-tokenizer"))
        .unwrap()
}

#[test]
fn induction_repeats() {
    let opts = InductionOptions {
        n: 10,
        seq_len: 12,
        ..Default::default()
    };
    let d = TaskSpec::Induction(opts.clone()).build(&gpt2()).unwrap();
    assert_eq!(d.len(), 10);
    for e in &d.examples {
        let (r1, r2, end) = (e.positions["R1"], e.positions["R2"], e.positions["END"]);
        assert_eq!((r1, r2, end), (1, 13, 24));
        assert_eq!(e.tokens[0], 50256);
        assert_eq!(e.tokens[r1..r2], e.tokens[r2..]);
        assert_eq!(e.answer, vec![e.tokens[r1]]);
        let c = e.corrupted_tokens.as_ref().unwrap();
        assert_eq!(c.len(), e.tokens.len());
        assert_eq!(c[..r2], e.tokens[..r2]);
        assert!(c[r2..].iter().all(|t| !e.tokens[r1..r2].contains(t)));
    }
    assert_eq!(d, TaskSpec::Induction(opts).build(&gpt2()).unwrap());
}

#[test]
fn greater_than_sets() {
    let tok = gpt2();
    let d = TaskSpec::GreaterThan(GreaterThanOptions {
        n: 30,
        ..Default::default()
    })
    .build(&tok)
    .unwrap();
    for e in &d.examples {
        let yy: usize = e.features["YY"].parse().unwrap();
        let xx = &e.features["century"];
        assert_eq!(
            e.prompt,
            format!(
                "The {} lasted from the year {xx}{yy:02} to {xx}",
                e.features["noun"]
            )
        );
        assert_eq!(e.answer.len(), 99 - yy);
        assert_eq!(e.wrong.len(), yy + 1);
        assert_eq!(
            tok.decode(&[e.answer[0]]).unwrap(),
            format!("{:02}", yy + 1)
        );
        assert_eq!(
            tok.decode(&[e.tokens[e.positions["YY"]]]).unwrap(),
            format!("{yy:02}")
        );
        assert_eq!(
            tok.decode(&[e.tokens[e.positions["END"]]]).unwrap(),
            format!(" {xx}")
        );
        let c = e.corrupted_prompt.as_ref().unwrap();
        assert!(c.contains(&format!("year {xx}01 to")), "{c}");
        assert_eq!(e.corrupted_tokens.as_ref().unwrap().len(), e.tokens.len());
        assert!((2..99).contains(&yy));
    }
}

#[test]
fn sequences() {
    let tok = gpt2();
    let opts = SequenceOptions {
        n: 8,
        ..Default::default()
    };
    let months = TaskSpec::Months(opts.clone()).build(&tok).unwrap();
    assert_eq!(months.len(), 8);
    for e in &months.examples {
        assert_eq!(e.tokens.len(), 5);
        assert_eq!(e.positions["END"], 4);
        let items: Vec<&str> = e.prompt.split(' ').collect();
        let months_list = circuitscope::data::sequence::MONTHS;
        let i = months_list.iter().position(|m| *m == items[0]).unwrap();
        assert_eq!(items, months_list[i..i + 4]);
        assert_eq!(
            tok.decode(&e.answer).unwrap(),
            format!(" {}", months_list[i + 4])
        );
        assert_ne!(e.wrong, e.answer);
        assert_eq!(e.corrupted_tokens.as_ref().unwrap().len(), 5);
    }
    let e = TaskSpec::Months(SequenceOptions {
        n: 9,
        ..opts.clone()
    })
    .build(&tok)
    .unwrap_err()
    .to_string();
    assert!(e.contains("n = 9") && e.contains("8 distinct"), "{e}");
    let digits = TaskSpec::Digits(SequenceOptions {
        n: 20,
        ..opts.clone()
    })
    .build(&tok)
    .unwrap();
    for e in &digits.examples {
        let s: u32 = e.features["start"].parse().unwrap();
        assert_eq!(e.prompt, format!("{} {} {} {}", s, s + 1, s + 2, s + 3));
        assert_eq!(tok.decode(&e.answer).unwrap(), format!(" {}", s + 4));
    }
    let words = TaskSpec::NumberWords(opts).build(&tok).unwrap();
    let e = &words.examples[0];
    assert_eq!(
        tok.decode(&e.answer).unwrap(),
        format!(" {}", e.features["answer"])
    );
}

fn tmp_jsonl(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.jsonl");
    std::fs::write(&p, text).unwrap();
    (dir, p.display().to_string())
}

#[test]
fn jsonl_datasets() {
    let tok = gpt2();
    let (_d, path) = tmp_jsonl(
        "{\"prompt\": \"The capital of France is\", \"answer\": \" Paris\", \"wrong\": [\" Rome\", \" London\"], \"corrupted\": \"The capital of Italy is\", \"features\": {\"country\": \"France\", \"n\": 1}}\n\n{\"prompt\": \"When Mary and John went to the store, John gave a drink to\", \"answer\": \" Mary\"}\n",
    );
    let d = TaskSpec::Jsonl(JsonlOptions {
        path: path.clone(),
        ..Default::default()
    })
    .build(&tok)
    .unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(
        d.examples[0].answer,
        vec![tok.single_token(" Paris").unwrap()]
    );
    assert_eq!(d.examples[0].wrong.len(), 2);
    assert_eq!(d.examples[0].features["n"], "1");
    assert_eq!(d.examples[1].answer, vec![5335]);
    assert_eq!(
        d.examples[1].positions["END"],
        d.examples[1].tokens.len() - 1
    );
    assert!(d.examples[1].corrupted_tokens.is_none());
    // The data subcommand's own output reads back unchanged.
    let again = jsonl::parse(&d.to_jsonl(), "out.jsonl", &JsonlOptions::default(), &tok).unwrap();
    assert_eq!(again.examples, d.examples);
}

#[test]
fn jsonl_errors_name_line_and_field() {
    let tok = gpt2();
    let cases = [
        (
            "{\"prompt\": \"a\", \"answer\": \" b\"}\n{\"prompt\": \"a\"}\n",
            "d.jsonl:2: field `answer`",
        ),
        (
            "{\"prompt\": \"a\", \"answer\": \" Parisianism\"}\n",
            "d.jsonl:1: field `answer`",
        ),
        (
            "{\"prompt\": \"a\", \"answer\": \" b\", \"colour\": 1}\n",
            "d.jsonl:1: field `colour`",
        ),
        (
            "{\"prompt\": \"a\", \"answer\": \" b\"}\nnot json\n",
            "d.jsonl:2: not valid JSON",
        ),
        (
            "{\"prompt\": 3, \"answer\": \" b\"}\n",
            "d.jsonl:1: field `prompt`",
        ),
        (
            "{\"prompt\": \"a\", \"answer\": \" b\", \"features\": {\"x\": [1]}}\n",
            "field `features`: feature 'x' must be a string, number or boolean",
        ),
        (
            "{\"prompt\": \"a\", \"answer\": \" b\", \"features\": [1]}\n",
            "d.jsonl:1: field `features`: must be an object of name → value",
        ),
        (
            "{\"prompt\": \"a\", \"answer\": \" b\", \"positions\": {\"IO\": 7}}\n",
            "d.jsonl:1: field `positions`: position 'IO' must be a token index below 1",
        ),
        (
            "{\"prompt\": \"a\", \"answer\": \" b\", \"positions\": 3}\n",
            "d.jsonl:1: field `positions`: must be an object of name → index",
        ),
    ];
    for (text, want) in cases {
        let e = jsonl::parse(text, "d.jsonl", &JsonlOptions::default(), &tok)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e} (wanted {want})");
    }
    let e = jsonl::parse(
        "{\"prompt\": \"a\", \"answer\": \" Parisianism\"}",
        "d.jsonl",
        &JsonlOptions::default(),
        &tok,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("single tokens"), "{e}");
}
