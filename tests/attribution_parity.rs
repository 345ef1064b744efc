//! Edge scores against the references, in float64 on `tests/fixtures/gpt2-tiny`.
//!
//! `tests/fixtures/attribution/gpt2-tiny.json` is written by `scripts/attribution_reference.py`:
//! EAP from PyPI's auto-circuit 1.0.1 (`mask_gradient_prune_scores` at mask 0 and
//! `edge_attribution_patching_prune_scores`, on TransformerLens 2.18) and EAP-IG (inputs)
//! written directly on TransformerLens from the paper's formula, for k = 1..m (the paper) and
//! k = 0..m−1 (the authors' current code). auto-circuit differentiates the loss −logit diff, so
//! its scores are −1 × ours; its graph has no q/k/v edges (`split_qkv: false`).

use candle_core::DType;
use circuitscope::acdc::ablation::{ablate, Ablation};
use circuitscope::analysis::setup::tokens_dataset;
use circuitscope::attribution::{attribute, GradMetric, IgPoints, Inputs, Method, Options};
use circuitscope::graph::GraphOptions;
use circuitscope::metric::Metric;
use circuitscope::model::Model;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rows(v: &serde_json::Value) -> Vec<Vec<u32>> {
    v.as_array()
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
}

#[test]
#[allow(clippy::too_many_lines)] // one test scenario: its steps and assertions read in order
fn eap_and_eap_ig_match_the_references() {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/attribution/gpt2-tiny.json")).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let model = Model::load(&root().join("tests/fixtures/gpt2-tiny"), DType::F64).unwrap();
    let clean = rows(&fx["tokens"]);
    let corrupted = rows(&fx["corrupted"]);
    let answers: Vec<(u32, u32)> = rows(&fx["answers"])
        .into_iter()
        .map(|r| (r[0], r[1]))
        .collect();
    let ds = tokens_dataset(&clean, Some(&corrupted), Some(&answers)).unwrap();
    let tokens = model.tokens_tensor(&clean).unwrap();
    let corr = model.tokens_tensor(&corrupted).unwrap();
    let ablated = ablate(&model, &Ablation::Corrupted, &tokens, Some(&corr), &[], &[]).unwrap();
    let objective = GradMetric::new(
        Metric::LogitDiff,
        &ds,
        model.cfg.d_vocab,
        None,
        DType::F64,
        model.device(),
    )
    .unwrap();
    let inputs = Inputs {
        model: &model,
        tokens,
        ends: ds.end_positions(),
        ablated: &ablated,
        objective,
    };
    let run = |method: Method, steps: usize, points: IgPoints| {
        attribute(
            &inputs,
            &Options {
                method,
                ig_steps: steps,
                ig_points: points,
                per_position: false,
                graph: GraphOptions { split_qkv: false },
            },
            &mut |_, _| {},
        )
        .unwrap()
    };
    let check = |name: &str, ours: &circuitscope::attribution::Scores, sign: f64| {
        let refs = fx[name].as_object().unwrap();
        assert_eq!(refs.len(), ours.graph.len(), "{name}: edge count");
        let mut worst = 0.0f64;
        for (i, e) in ours.graph.edges().iter().enumerate() {
            let r = refs
                .get(&e.to_string())
                .unwrap_or_else(|| panic!("{name}: no reference for {e}"))
                .as_f64()
                .unwrap();
            let d = (ours.edges[i] - sign * r).abs();
            worst = worst.max(d);
            assert!(
                d <= 1e-5,
                "{name} {e}: ours {} vs reference {}",
                ours.edges[i],
                sign * r
            );
        }
        eprintln!(
            "{name}: {} edges, largest difference {worst:.2e}",
            refs.len()
        );
    };
    let eap = run(Method::Eap, 1, IgPoints::Paper);
    assert!((eap.clean_metric - fx["clean_logit_diff"].as_f64().unwrap()).abs() < 1e-10);
    check("mask_gradient", &eap, -1.0);
    check("edge_attribution_patching", &eap, -1.0);
    check("eap_ig_paper_1", &eap, 1.0);
    check(
        "eap_ig_paper_3",
        &run(Method::EapIg, 3, IgPoints::Paper),
        1.0,
    );
    check(
        "eap_ig_from_zero_1",
        &run(Method::EapIg, 1, IgPoints::FromZero),
        1.0,
    );
    check(
        "eap_ig_from_zero_3",
        &run(Method::EapIg, 3, IgPoints::FromZero),
        1.0,
    );
}
