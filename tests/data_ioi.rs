use circuitscope::data::ioi::{template_ids, template_text, PREFIXES};
use circuitscope::data::{ioi_vocabulary, Dataset, IoiOptions, NameList, PromptType, TaskSpec};
use circuitscope::tokenizer::{word_level_tokenizer_json, Tokenizer};
use std::collections::BTreeSet;
use std::path::Path;

fn gpt2() -> Tokenizer {
    Tokenizer::from_model_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gpt2-tokenizer"))
        .unwrap()
}

fn ioi(prompt_type: PromptType, n: usize, flip: Option<&str>) -> IoiOptions {
    IoiOptions {
        prompt_type,
        n,
        seed: 7,
        flip: flip.map(str::to_string),
        ..Default::default()
    }
}

fn build(opts: &IoiOptions) -> Dataset {
    TaskSpec::Ioi(opts.clone()).build(&gpt2()).unwrap()
}

fn str_at(tok: &Tokenizer, ids: &[u32], i: usize) -> String {
    tok.decode(&[ids[i]]).unwrap()
}

#[test]
fn remix_baba_fixed_positions() {
    let tok = gpt2();
    let d = build(&IoiOptions {
        templates: 1,
        ..ioi(PromptType::RemixBaba, 30, None)
    });
    assert_eq!(d.len(), 30);
    for e in &d.examples {
        assert_eq!(e.tokens.len(), 16, "{}", e.prompt);
        assert!(e.prompt.starts_with("<|endoftext|>Then, "));
        assert!(e.prompt.ends_with(" to"));
        assert_eq!(e.positions["S1"], 3);
        assert_eq!(e.positions["IO"], 5);
        assert_eq!(e.positions["S2"], 11);
        assert_eq!(e.positions["S1+1"], 4);
        assert_eq!(e.positions["END"], 15);
        assert_eq!(e.tokens[5], e.answer[0]);
        assert_eq!(e.tokens[3], e.wrong[0]);
        assert_eq!(e.tokens[11], e.wrong[0]);
        assert_eq!(str_at(&tok, &e.tokens, 5), format!(" {}", e.features["IO"]));
        assert_eq!(e.features["order"], "BABA");
    }
    assert_eq!(d.end_positions(), vec![15; 30]);
    assert_eq!(d.position("IO").unwrap(), vec![5; 30]);
}

#[test]
fn remix_abba_puts_io_first() {
    let d = build(&ioi(PromptType::RemixAbba, 10, None));
    for e in &d.examples {
        assert_eq!(
            (e.positions["IO"], e.positions["S1"], e.positions["S2"]),
            (3, 5, 11)
        );
        assert!(e
            .prompt
            .starts_with(&format!("<|endoftext|>Then, {} and", e.features["IO"])));
    }
}

#[test]
fn arena_mixed_draws_from_seven_plus_seven() {
    let d = build(&IoiOptions {
        names: NameList::Arena,
        ..ioi(PromptType::Mixed, 25, None)
    });
    let allowed: BTreeSet<String> = (0..7)
        .flat_map(|i| [format!("baba-{i}"), format!("abba-{i}")])
        .collect();
    let used: BTreeSet<&str> = d.feature("template").unwrap().into_iter().collect();
    assert!(used.len() > 3, "{used:?}");
    for t in &used {
        assert!(
            allowed.contains(*t),
            "{t} is not among the 7 + 7 mixed templates"
        );
    }
    let orders: BTreeSet<&str> = d.feature("order").unwrap().into_iter().collect();
    assert_eq!(orders, BTreeSet::from(["ABBA", "BABA"]));
    let arena: BTreeSet<&str> = circuitscope::data::ioi::ARENA_NAMES
        .iter()
        .copied()
        .collect();
    for e in &d.examples {
        assert!(arena.contains(e.features["IO"].as_str()));
        assert!(arena.contains(e.features["S"].as_str()));
    }
    // Positions differ per example; the padded matrix is right-padded.
    let (ids, n, m) = d.padded_tokens(50256);
    assert_eq!((n, m), (25, d.max_len()));
    for (i, e) in d.examples.iter().enumerate() {
        assert_eq!(&ids[i * m..i * m + e.tokens.len()], &e.tokens[..]);
        assert!(ids[i * m + e.tokens.len()..(i + 1) * m]
            .iter()
            .all(|&t| t == 50256));
        assert_eq!(e.positions["END"], e.tokens.len() - 1);
    }
}

#[test]
fn every_name_is_one_token_where_it_stands() {
    let tok = gpt2();
    for pt in [
        PromptType::Mixed,
        PromptType::AbcMixed,
        PromptType::BabaLong,
        PromptType::AbbaEarly,
    ] {
        for names in [NameList::Paper, NameList::Arena] {
            let d = build(&IoiOptions {
                names,
                ..ioi(pt.clone(), 40, None)
            });
            for e in &d.examples {
                let io = format!(" {}", e.features["IO"]);
                let s = format!(" {}", e.features["S"]);
                assert_eq!(
                    str_at(&tok, &e.tokens, e.positions["IO"]),
                    io,
                    "{}",
                    e.prompt
                );
                assert_eq!(
                    str_at(&tok, &e.tokens, e.positions["S1"]),
                    s,
                    "{}",
                    e.prompt
                );
                assert_eq!(
                    str_at(&tok, &e.tokens, e.positions["S2"]),
                    s,
                    "{}",
                    e.prompt
                );
                assert!(e.positions["S1"] < e.positions["S2"]);
                assert_eq!(e.answer, vec![tok.single_token(&io).unwrap()]);
                assert_eq!(e.wrong, vec![tok.single_token(&s).unwrap()]);
                let p = str_at(&tok, &e.tokens, e.positions["punct"]);
                assert!(p == "." || p == ",", "{p}");
                if let Some(c) = e.features.get("C") {
                    assert_eq!(str_at(&tok, &e.tokens, e.positions["C"]), format!(" {c}"));
                }
            }
        }
    }
}

#[test]
fn same_seed_same_output() {
    let o = ioi(PromptType::Mixed, 50, Some("ABB->XYZ, BAB->XYZ"));
    assert_eq!(build(&o), build(&o));
    let other = IoiOptions {
        seed: 8,
        ..o.clone()
    };
    assert_ne!(build(&o), build(&other));
}

/// Indices where two equal-length token rows differ.
fn diff(a: &[u32], b: &[u32]) -> Vec<usize> {
    assert_eq!(a.len(), b.len());
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

#[test]
fn abc_flip_keeps_positions_and_makes_names_distinct() {
    let tok = gpt2();
    let d = build(&ioi(PromptType::Mixed, 40, Some("ABB->XYZ, BAB->XYZ")));
    let clean = build(&ioi(PromptType::Mixed, 40, None));
    for (e, c) in d.examples.iter().zip(&clean.examples) {
        assert_eq!(e.prompt, c.prompt, "flips keep the clean rows");
        let ct = e.corrupted_tokens.as_ref().unwrap();
        assert_eq!(ct.len(), e.tokens.len());
        assert_eq!(ct.last(), e.tokens.last());
        let (io, s1, s2) = (e.positions["IO"], e.positions["S1"], e.positions["S2"]);
        let mut changed = vec![io, s1, s2];
        changed.sort();
        assert_eq!(
            diff(&e.tokens, ct),
            changed,
            "{} / {:?}",
            e.prompt,
            e.corrupted_prompt
        );
        let names: BTreeSet<u32> = [ct[io], ct[s1], ct[s2]].into_iter().collect();
        assert_eq!(names.len(), 3, "three distinct names");
        for n in names {
            assert!(!e.answer.contains(&n) && !e.wrong.contains(&n));
            assert!(str_at(&tok, ct, ct.len() - 1) == " to" || e.prompt.ends_with(" to"));
        }
    }
    let cd = d.corrupted().unwrap();
    for (c, e) in cd.examples.iter().zip(&d.examples) {
        assert_eq!(c.positions, e.positions);
        assert_eq!(c.features, e.features);
        assert_eq!(c.answer, e.answer);
        assert_eq!(Some(&c.tokens), e.corrupted_tokens.as_ref());
    }
}

#[test]
fn remix_flips() {
    let base = |f: &str| build(&ioi(PromptType::RemixBaba, 30, Some(f)));
    for (flip, expect) in [
        ("IO", vec!["IO"]),
        ("S", vec!["S1", "S2"]),
        ("S1", vec!["S1"]),
        ("S2", vec!["S2"]),
        ("S2->RAND", vec!["S2"]),
        ("(IO, RAND)", vec!["IO"]),
    ] {
        let d = base(flip);
        for e in &d.examples {
            let ct = e.corrupted_tokens.as_ref().unwrap();
            let mut want: Vec<usize> = expect.iter().map(|k| e.positions[*k]).collect();
            want.sort();
            assert_eq!(
                diff(&e.tokens, ct),
                want,
                "flip {flip}: {:?}",
                e.corrupted_prompt
            );
            for &p in &want {
                assert_ne!(ct[p], e.answer[0], "flip {flip}");
                assert_ne!(ct[p], e.wrong[0], "flip {flip}");
            }
            if flip == "S" {
                assert_eq!(ct[e.positions["S1"]], ct[e.positions["S2"]]);
            }
        }
    }
    for flip in ["order", "IO->S1"] {
        for e in &base(flip).examples {
            let ct = e.corrupted_tokens.as_ref().unwrap();
            assert_eq!(ct[e.positions["IO"]], e.wrong[0]);
            assert_eq!(ct[e.positions["S1"]], e.answer[0]);
            assert_eq!(ct[e.positions["S2"]], e.wrong[0]);
        }
    }
    for e in &base("S2->IO").examples {
        let ct = e.corrupted_tokens.as_ref().unwrap();
        assert_eq!(diff(&e.tokens, ct), vec![e.positions["S2"]]);
        assert_eq!(ct[e.positions["S2"]], e.answer[0]);
    }
}

#[test]
fn arena_patterns() {
    let d = build(&ioi(PromptType::Mixed, 40, Some("ABB->BAA, BAB->ABA")));
    for e in &d.examples {
        let ct = e.corrupted_tokens.as_ref().unwrap();
        // Every name swapped: IO's slot gets S, S's slots get IO.
        assert_eq!(ct[e.positions["IO"]], e.wrong[0]);
        assert_eq!(ct[e.positions["S1"]], e.answer[0]);
        assert_eq!(ct[e.positions["S2"]], e.answer[0]);
    }
    let d = build(&ioi(PromptType::Mixed, 40, Some("ABB->CDD, BAB->DCD")));
    for e in &d.examples {
        let ct = e.corrupted_tokens.as_ref().unwrap();
        let (io, s1, s2) = (
            ct[e.positions["IO"]],
            ct[e.positions["S1"]],
            ct[e.positions["S2"]],
        );
        assert_eq!(s1, s2);
        assert_ne!(io, s1);
        for t in [io, s1] {
            assert!(t != e.answer[0] && t != e.wrong[0]);
        }
    }
    let err = TaskSpec::Ioi(ioi(PromptType::Baba, 5, Some("ABB->XYZ")))
        .build(&gpt2())
        .unwrap_err()
        .to_string();
    assert!(err.contains("BAB"), "{err}");
}

#[test]
fn length_changing_flips() {
    let d = build(&ioi(PromptType::Mixed, 30, Some("prefix")));
    for e in &d.examples {
        let c = e.corrupted_prompt.as_ref().unwrap();
        assert!(
            c.starts_with("After the lunch, the") || PREFIXES.iter().any(|p| c.starts_with(p)),
            "{c}"
        );
        let tail: String = e.prompt.chars().rev().take(12).collect();
        let ctail: String = c.chars().rev().take(12).collect();
        assert_eq!(tail, ctail);
    }
    let d = build(&ioi(PromptType::Mixed, 30, Some("S+1->RAND")));
    for e in &d.examples {
        let c = e.corrupted_prompt.as_ref().unwrap();
        assert!(
            c.contains(" with one friend named ")
                || c.contains(" accompanied by ")
                || c.contains(", after a great day,"),
            "{c}"
        );
    }
    let cd = d.corrupted().unwrap();
    for e in &cd.examples {
        assert_eq!(e.positions["END"], e.tokens.len() - 1);
    }
}

#[test]
fn bad_input_messages() {
    let tok = gpt2();
    let e = TaskSpec::Ioi(ioi(PromptType::Templates(vec!["baba-99".into()]), 5, None))
        .build(&tok)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown IOI template 'baba-99'") && e.contains("abba-14"),
        "{e}"
    );
    let e = TaskSpec::Ioi(ioi(PromptType::Baba, 5, Some("IO->XYZ")))
        .build(&tok)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown IOI flip") && e.contains("ABB->XYZ, BAB->XYZ"),
        "{e}"
    );
    let e = TaskSpec::Ioi(IoiOptions {
        templates: 16,
        ..ioi(PromptType::Baba, 5, None)
    })
    .build(&tok)
    .unwrap_err()
    .to_string();
    assert!(e.contains("15"), "{e}");
    let clean = build(&ioi(PromptType::Baba, 5, None));
    let e = clean.corrupted().unwrap_err().to_string();
    assert!(e.contains("flip"), "{e}");
    let e = clean.position("nope").unwrap_err().to_string();
    assert!(e.contains("S2") && e.contains("END"), "{e}");
    let e = clean.feature("nope").unwrap_err().to_string();
    assert!(e.contains("template"), "{e}");
}

#[test]
fn too_few_names_for_n() {
    // A toy vocabulary with three names, one place, one object: REMIX BABA has 3·2 prompts.
    let opts = ioi(PromptType::RemixBaba, 6, None);
    let mut words: Vec<String> = ioi_vocabulary(&opts)
        .into_iter()
        .filter(|w| !circuitscope::data::ioi::PAPER_NAMES.contains(&w.as_str()))
        .filter(|w| !circuitscope::data::ioi::PLACES.contains(&w.as_str()) || w == "store")
        .filter(|w| !circuitscope::data::ioi::OBJECTS.contains(&w.as_str()) || w == "ring")
        .collect();
    words.extend(["Mary", "John", "Paul"].map(String::from));
    let tok = Tokenizer::from_json_str(&word_level_tokenizer_json(&words, &[]), "toy").unwrap();
    let d = TaskSpec::Ioi(opts.clone()).build(&tok).unwrap();
    assert_eq!(d.len(), 6);
    let prompts: BTreeSet<&str> = d.examples.iter().map(|e| e.prompt.as_str()).collect();
    assert_eq!(prompts.len(), 6, "distinct prompts");
    let e = TaskSpec::Ioi(IoiOptions { n: 7, ..opts })
        .build(&tok)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("n = 7") && e.contains("6 distinct prompts"),
        "{e}"
    );
}

#[test]
fn word_level_tokenizer_ioi() {
    let opts = ioi(PromptType::Mixed, 20, Some("ABB->XYZ, BAB->XYZ"));
    let tok = Tokenizer::from_json_str(
        &word_level_tokenizer_json(&ioi_vocabulary(&opts), &[]),
        "toy",
    )
    .unwrap();
    let d = TaskSpec::Ioi(opts).build(&tok).unwrap();
    for e in &d.examples {
        assert_eq!(e.tokens[e.positions["IO"]], e.answer[0]);
        assert_eq!(e.tokens[e.positions["S2"]], e.wrong[0]);
        assert_eq!(tok.id_token(e.answer[0]).unwrap(), e.features["IO"]);
        assert_eq!(e.positions["END"], e.tokens.len() - 1);
        assert_eq!(e.corrupted_tokens.as_ref().unwrap().len(), e.tokens.len());
        assert!(
            !e.tokens.contains(&tok.unk_token_id().unwrap()),
            "{}",
            e.prompt
        );
    }
}

#[test]
fn templates_list_and_ids() {
    let ids = template_ids();
    assert!(ids.contains(&"baba-14".to_string()) && ids.contains(&"remix-baba-0".to_string()));
    assert_eq!(
        template_text("abba-0").unwrap(),
        "Then, [A] and [B] went to the [PLACE]. [B] gave a [OBJECT] to [A]"
    );
    let d = build(&ioi(
        PromptType::Templates(vec![
            "baba-0".into(),
            "Friends [A] and [B] met. [B] thanked [A]".into(),
        ]),
        20,
        None,
    ));
    let used: BTreeSet<&str> = d.feature("template").unwrap().into_iter().collect();
    assert_eq!(used, BTreeSet::from(["baba-0", "custom-1"]));
}

#[test]
fn ron_task_specs() {
    let t = TaskSpec::from_ron(
        "Ioi(prompt_type: Baba, n: 200, templates: 1, seed: 42, flip: \"IO\")",
        "h.ron",
    )
    .unwrap();
    let TaskSpec::Ioi(o) = &t else { panic!() };
    assert_eq!((o.n, o.templates, o.seed), (200, 1, 42));
    assert_eq!(o.prompt_type, PromptType::Baba);
    assert_eq!(o.flip.as_deref(), Some("IO"));
    assert_eq!(t.name(), "ioi");
    let t = TaskSpec::from_ron("Ioi(prompt_type: Templates([\"baba-0\"]))", "h.ron").unwrap();
    assert!(matches!(t, TaskSpec::Ioi(IoiOptions { n: 100, .. })));
    let e = TaskSpec::from_ron("Ioi(n: 5, bogus: 1)", "h.ron")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("h.ron:1:") && e.contains("bogus"), "{e}");
    assert!(TaskSpec::from_ron("Months(n: 3)", "x").is_ok());
}
