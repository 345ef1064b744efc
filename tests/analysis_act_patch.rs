//! Every `transformer_lens.patching.get_act_patch_*` variant against TransformerLens 3.9's
//! own results on the gpt2-tiny fixture (computed in float64, stored as float32).

mod analysis_common;

use analysis_common::{load, max_diff};
use candle_core::DType;
use circuitscope::analysis::{act_patch, act_patch_with, ActPatchOptions, ActTarget};

#[test]
fn clean_and_corrupted_metrics_match_transformer_lens() {
    let f = load(DType::F64);
    let s = f.setup();
    let c = f.scalar("clean_metric");
    let x = f.scalar("corrupted_metric");
    assert!(
        (s.clean_metric - c).abs() < 1e-5,
        "{} vs {c}",
        s.clean_metric
    );
    assert!(
        (s.corrupted_metric - x).abs() < 1e-5,
        "{} vs {x}",
        s.corrupted_metric
    );
    assert!((c - x).abs() > 0.5, "the fixture's corruption must matter");
}

#[test]
fn every_act_patch_variant_matches_transformer_lens() {
    let f = load(DType::F64);
    let s = f.setup();
    let mut report = Vec::new();
    for t in ActTarget::ALL {
        let sweep = act_patch(&s, t).unwrap();
        let key = format!("act_patch_{}", t.name());
        let d = max_diff(&sweep, &f.expected(&key));
        report.push(format!("{key}: {d:.2e}"));
        assert!(
            d <= 1e-5,
            "{key} differs from TransformerLens by {d}\n{}",
            report.join("\n")
        );
        // not a constant: patching must move the metric somewhere
        let spread = sweep.values.iter().cloned().fold(f64::MIN, f64::max)
            - sweep.values.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 1e-3, "{key} is flat");
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn resuming_at_the_patched_layer_gives_identical_numbers() {
    let f = load(DType::F64);
    let s = f.setup();
    for t in [
        ActTarget::ResidPre,
        ActTarget::ResidMid,
        ActTarget::MlpOut,
        ActTarget::HeadVByPos,
        ActTarget::HeadPatternAllPos,
    ] {
        let fast = act_patch_with(&s, t, ActPatchOptions { resume: true }).unwrap();
        let slow = act_patch_with(&s, t, ActPatchOptions { resume: false }).unwrap();
        assert_eq!(fast.values, slow.values, "{t}");
    }
}
