//! The shipped toy hypotheses on the shipped toy models give the results their comments state.

use candle_core::DType;
use circuitscope::model::Model;
use circuitscope::scrub::{self, RunSettings};
use std::path::PathBuf;

fn loss_recovered(file: &str) -> f64 {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file);
    let p = scrub::prepare(&path, None).unwrap();
    let m = Model::load(&p.model_dir, DType::F32).unwrap();
    let (r, _) = scrub::run(
        &p,
        &m,
        &RunSettings {
            seeds: 1,
            replay: None,
        },
    )
    .unwrap();
    assert!(
        r.forward_equivalents <= (p.hypothesis.nodes.len() + 2) as f64,
        "{r:?}"
    );
    r.loss_recovered
}

#[test]
fn induction_refined_recovers_everything_and_naive_about_a_third() {
    let refined = loss_recovered("hypotheses/toy/induction-refined.ron");
    assert!(refined > 0.999 && refined < 1.001, "refined: {refined}");
    let naive = loss_recovered("hypotheses/toy/induction-naive.ron");
    assert!((naive - 0.326).abs() < 0.02, "naive: {naive}");
}
