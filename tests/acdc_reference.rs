//! circuitscope's ACDC against the reference implementation itself.
//!
//! `tests/fixtures/acdc/reference-gpt2-tiny.json` holds what the reference
//! (`ArthurConmy/Automatic-Circuit-Discovery`, `TLACDCExperiment`, run through TransformerLens in
//! float64 by `scripts/acdc_reference.py`) decided on `tests/fixtures/gpt2-tiny`: the kept edges
//! and the metric change it measured for every edge it tested, at several thresholds, with
//! corrupted and zero ablation, in the normal and the reverse parent order. The same sweep here must keep the same edges and measure the
//! same effects.

use candle_core::DType;
use circuitscope::acdc::{self, Config, Prepared};
use circuitscope::data::{Dataset, Example, InductionOptions, TaskSpec};
use circuitscope::graph::Edge;
use circuitscope::metric::Metric;
use circuitscope::model::Model;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
#[allow(clippy::too_many_lines)] // one test scenario: its steps and assertions read in order
fn same_decisions_and_effects_as_the_reference() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/acdc/reference-gpt2-tiny.json"))
        .unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = |k: &str| -> Vec<Vec<u32>> {
        fx[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect()
    };
    let (clean, corrupted) = (rows("tokens"), rows("corrupted"));
    let p = clean[0].len();
    let examples: Vec<Example> = clean
        .iter()
        .zip(&corrupted)
        .map(|(t, c)| Example {
            prompt: String::new(),
            tokens: t.clone(),
            positions: [("END".to_string(), p - 1)].into_iter().collect(),
            answer: vec![t[1]],
            wrong: vec![],
            features: BTreeMap::new(),
            corrupted_prompt: Some(String::new()),
            corrupted_tokens: Some(c.clone()),
        })
        .collect();
    let ds = Dataset {
        task: "reference".into(),
        examples,
    };
    let model_dir = root().join("tests/fixtures/gpt2-tiny");
    let mut checked = 0;
    for run in fx["runs"].as_array().unwrap() {
        let tau = run["tau"].as_f64().unwrap();
        let ablation = match run["ablation"].as_str().unwrap() {
            "Zero" => acdc::Ablation::Zero,
            _ => acdc::Ablation::Corrupted,
        };
        let config = Config {
            model: model_dir.display().to_string(),
            task: TaskSpec::Induction(InductionOptions::default()),
            n: None,
            metric: Metric::Kl,
            ablation,
            tau,
            order: match run["order"].as_str().unwrap_or("normal") {
                "reverse" => acdc::Order::Reverse,
                _ => acdc::Order::Normal,
            },
            indices_order: None,
            seed: 0,
            level: acdc::Level::Edges,
            split_qkv: true,
            abs_value_threshold: false,
            dtype: acdc::Precision::F64,
            batch: 1,
        };
        let model = Model::load(&model_dir, DType::F64).unwrap();
        let prep = Prepared::from_parts(&config, model, ds.clone()).unwrap();
        let sweep = prep.sweep();
        let acdc::Units::Edges(g) = &sweep.units else {
            unreachable!()
        };
        assert_eq!(g.len() as u64, run["edges_total"].as_u64().unwrap());
        let mut ev = prep.evaluator().unwrap();
        let mut s = sweep.initial_state();
        while !sweep.done(&s) {
            sweep.step(&mut s, &mut ev, &mut |_| {}).unwrap();
        }
        let ours: BTreeSet<String> = g
            .edges()
            .iter()
            .enumerate()
            .filter(|(i, _)| s.present[*i])
            .map(|(_, e)| e.to_string())
            .collect();
        let theirs: BTreeSet<String> = run["kept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ours,
            theirs,
            "tau {tau} {:?}: only ours {:?}, only the reference's {:?}",
            config.ablation,
            ours.difference(&theirs).collect::<Vec<_>>(),
            theirs.difference(&ours).collect::<Vec<_>>()
        );
        let effects = run["effects"].as_object().unwrap();
        let mut tested = 0;
        for (i, e) in g.edges().iter().enumerate() {
            let name = e.to_string();
            match (effects.get(&name).and_then(|v| v.as_f64()), s.effect[i]) {
                (Some(a), Some(b)) => {
                    tested += 1;
                    assert!(
                        (a - b).abs() < 1e-9 * (1.0 + a.abs()),
                        "tau {tau}: {name}: reference {a}, ours {b}"
                    );
                }
                (None, None) => {}
                (a, b) => panic!("tau {tau}: {name} tested by one side only ({a:?} vs {b:?})"),
            }
        }
        let want = run["final_metric"].as_f64().unwrap();
        let got = s.cur_metric.unwrap();
        assert!(
            (want - got).abs() < 1e-9,
            "tau {tau}: final metric {want} vs {got}"
        );
        assert!(tested > 50, "{tested}");
        // Every edge kind occurs among the decisions.
        assert!(g
            .edges()
            .iter()
            .enumerate()
            .any(|(i, e)| matches!(e, Edge::Qkv { .. }) && s.effect[i].is_some()));
        checked += 1;
    }
    assert_eq!(checked, 4);
}
