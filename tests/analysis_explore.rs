//! Copying scores, value-weighted attention and mean-ablation circuits against TransformerLens
//! 3.9 (float64) on the gpt2-tiny fixture: `scripts/make_analysis_fixtures.py` wrote the
//! references to `tests/fixtures/gpt2-tiny/analysis.json`.

mod analysis_common;

use analysis_common::{fixture_dir, load};
use candle_core::DType;
use circuitscope::analysis::{attention_patterns, copying_scores, Circuit, MeanAblation, Position};
use serde_json::Value;
use std::collections::BTreeSet;

fn refs() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("analysis.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn copying_scores_match_transformer_lens() {
    let fx = load(DType::F64);
    let r = refs();
    let names: Vec<u32> = r["copying"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let k = r["copying"]["k"].as_u64().unwrap() as usize;
    let s = copying_scores(&fx.model, &names, k).unwrap();
    let want = &r["copying"]["scores"];
    let cfg = &fx.model.cfg;
    let mut nonzero = 0;
    for sign in 0..2 {
        for l in 0..cfg.n_layers {
            for h in 0..cfg.n_heads {
                let w = f(&want[sign][l][h]);
                assert_eq!(s.get(&[sign, l, h]), w, "sign {sign} a{l}.h{h}");
                if w > 0.0 {
                    nonzero += 1;
                }
            }
        }
    }
    assert!(nonzero > 5);
}

#[test]
fn attention_patterns_and_value_weighting_match_transformer_lens() {
    let fx = load(DType::F64);
    let s = fx.setup();
    let r = refs();
    let heads = [(0, 1), (2, 3)];
    let rows = [0, 2];
    for (vw, key) in [(false, "pattern"), (true, "value_weighted")] {
        let a = attention_patterns(&fx.model, &s.clean_tokens, &rows, &heads, vw).unwrap();
        let want = &r["attention"][key];
        let mut worst = 0.0f64;
        for i in 0..rows.len() {
            for j in 0..heads.len() {
                for (q, row) in a.patterns[i][j].iter().enumerate() {
                    for (k, &v) in row.iter().enumerate() {
                        worst = worst.max((v - f(&want[i][j][q][k])).abs());
                    }
                }
            }
        }
        assert!(worst < 1e-9, "{key}: differs by {worst}");
    }
}

#[test]
fn mean_ablation_matches_transformer_lens() {
    let fx = load(DType::F64);
    let s = fx.setup();
    let r = refs();
    let a = &r["ablation"];
    let groups: Vec<String> = a["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect();
    let ma = MeanAblation::new(&s, &s.corrupted_tokens, &groups, &groups).unwrap();
    let mut c = Circuit::default();
    for item in a["circuit"].as_array().unwrap() {
        let l = item[0].as_u64().unwrap() as usize;
        let h = item[1].as_u64().unwrap() as usize;
        let pos = item[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Position::Index(p.as_i64().unwrap()))
            .collect();
        c.heads.insert((l, h), pos);
    }
    let k: BTreeSet<(usize, usize)> = a["k"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x[0].as_u64().unwrap() as usize,
                x[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let res = ma.evaluate(&c, &[k]).unwrap();
    let close = |x: f64, y: &Value, what: &str| {
        assert!((x - f(y)).abs() < 1e-9, "{what}: {x} vs {}", f(y));
    };
    close(res.model, &a["model"], "F(M)");
    close(res.circuit, &a["circuit_metric"], "F(C)");
    close(res.nothing, &a["nothing"], "F(nothing)");
    close(
        res.completeness[0].circuit_minus_k,
        &a["circuit_minus_k"],
        "F(C∖K)",
    );
    close(
        res.completeness[0].model_minus_k,
        &a["model_minus_k"],
        "F(M∖K)",
    );
}

#[test]
fn a_circuit_of_every_head_everywhere_is_the_model() {
    let fx = load(DType::F64);
    let s = fx.setup();
    let groups = vec!["all".to_string(); s.batch()];
    let ma = MeanAblation::new(&s, &s.corrupted_tokens, &groups, &groups).unwrap();
    let text: Vec<String> = (0..3)
        .flat_map(|l| (0..4).map(move |h| format!("a{l}.h{h}")))
        .collect();
    let c = Circuit::parse(&text.join(","), &fx.model.cfg).unwrap();
    let res = ma.evaluate(&c, &[]).unwrap();
    assert!((res.circuit - s.clean_metric).abs() < 1e-12);
    assert!((res.faithfulness_ratio - 1.0).abs() < 1e-12);
}

#[test]
fn the_shipped_ioi_minimal_circuit_parses_for_gpt2_small() {
    let fx = load(DType::F64);
    let mut cfg = fx.model.cfg.clone();
    cfg.n_layers = 12;
    cfg.n_heads = 12;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/ioi-minimal-circuit.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = Circuit::from_json(&text, "ioi-minimal-circuit.json", &cfg).unwrap();
    assert_eq!(c.heads.len(), 26, "ARENA's circuit has 26 heads");
    assert_eq!(c.heads[&(9, 9)], vec![Position::Named("END".into())]);
    assert_eq!(c.heads[&(2, 2)], vec![Position::Named("S1+1".into())]);
    assert_eq!(c.heads[&(5, 5)], vec![Position::Named("S2".into())]);
    // the tiny model has no layer 9: a clear error naming the file
    let err = Circuit::from_json(&text, "ioi-minimal-circuit.json", &fx.model.cfg).unwrap_err();
    assert!(
        err.to_string().contains("ioi-minimal-circuit.json"),
        "{err}"
    );
}

/// A GPT-2-shaped model (12 layers × 12 heads, GPT-2's vocabulary) with random weights and
/// GPT-2's tokenizer, for the IOI task's named positions and templates.
fn ioi_model() -> (
    circuitscope::model::Model,
    circuitscope::tokenizer::Tokenizer,
) {
    use circuitscope::model::{random, Model};
    let cfg = random::gpt2_config(12, 96, 12, 50257);
    let w = random::random_weights(&cfg, 3, DType::F64).unwrap();
    let model = Model::from_weights(cfg, w, DType::F64).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gpt2-tokenizer");
    let tok = circuitscope::tokenizer::Tokenizer::from_model_dir(&dir).unwrap();
    (model, tok)
}

#[test]
fn ioi_minimal_circuit_runs_on_ioi_rows_with_per_template_means() {
    use circuitscope::analysis::mean_ablation::template_groups;
    use circuitscope::analysis::Setup;
    use circuitscope::data::TaskSpec;
    use circuitscope::metric::Metric;
    let (model, tok) = ioi_model();
    let spec = TaskSpec::from_ron(
        r#"Ioi(n: 12, prompt_type: Mixed, templates: 4, seed: 1, flip: "ABB->XYZ, BAB->XYZ")"#,
        "test",
    )
    .unwrap();
    let ds = spec.build(&tok).unwrap();
    let s = Setup::from_dataset(&model, ds, Metric::LogitDiff).unwrap();
    let groups = template_groups(&s.ds);
    let distinct: BTreeSet<&String> = groups.iter().collect();
    assert!(distinct.len() > 1, "mixed templates: several groups");
    let ma = MeanAblation::new(&s, &s.corrupted_tokens, &groups, &groups).unwrap();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/ioi-minimal-circuit.json");
    let c = Circuit::from_json(&std::fs::read_to_string(path).unwrap(), "ioi", &model.cfg).unwrap();
    let k: BTreeSet<(usize, usize)> = [(9, 9), (10, 0), (9, 6)].into_iter().collect();
    let res = ma.evaluate(&c, &[k]).unwrap();
    assert!(res.circuit.is_finite() && res.completeness[0].gap.is_finite());
    // the circuit keeps S2 / S1+1 / END per row: different from keeping nothing and from
    // keeping everything
    assert!((res.circuit - res.nothing).abs() > 1e-9);
    assert!((res.circuit - res.model).abs() > 1e-9);
    // every head kept everywhere is the model itself
    let all: Vec<String> = (0..12)
        .flat_map(|l| (0..12).map(move |h| format!("a{l}.h{h}")))
        .collect();
    let full = Circuit::parse(&all.join(","), &model.cfg).unwrap();
    assert!((mean(&ma.circuit(&full).unwrap()) - s.clean_metric).abs() < 1e-12);
    // per-template means differ from one mean over all rows
    let one = vec!["all".to_string(); s.batch()];
    let ma1 = MeanAblation::new(&s, &s.corrupted_tokens, &one, &one).unwrap();
    assert!((mean(&ma1.circuit(&c).unwrap()) - res.circuit).abs() > 1e-9);
}

fn mean(v: &[f64]) -> f64 {
    circuitscope::metric::mean(v)
}
