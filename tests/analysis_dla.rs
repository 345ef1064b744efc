//! Direct logit attribution and the logit lens against TransformerLens 3.9 on the gpt2-tiny
//! fixture, and the exact decomposition identities they rest on.

mod analysis_common;

use analysis_common::{load, max_diff};
use candle_core::DType;
use circuitscope::analysis::{dla_heads, dla_layers, logit_lens};

#[test]
fn dla_per_head_matches_transformer_lens() {
    let f = load(DType::F64);
    let s = f.setup();
    let sweep = dla_heads(&s).unwrap();
    let d = max_diff(&sweep, &f.expected("dla_heads"));
    assert!(d <= 1e-5, "dla_heads differs by {d}");
}

#[test]
fn dla_per_layer_matches_transformer_lens() {
    let f = load(DType::F64);
    let s = f.setup();
    let sweep = dla_layers(&s).unwrap();
    let d = max_diff(&sweep, &f.expected("dla_layers"));
    assert!(d <= 1e-5, "dla_layers differs by {d}");
    assert_eq!(
        sweep.axes[0].labels,
        [
            "embed",
            "pos_embed",
            "0_attn_out",
            "0_mlp_out",
            "1_attn_out",
            "1_mlp_out",
            "2_attn_out",
            "2_mlp_out"
        ]
    );
}

#[test]
fn logit_lens_matches_transformer_lens() {
    let f = load(DType::F64);
    let s = f.setup();
    let sweep = logit_lens(&s).unwrap();
    let d = max_diff(&sweep, &f.expected("logit_lens"));
    assert!(d <= 1e-5, "logit_lens differs by {d}");
}

#[test]
fn the_last_lens_entry_is_the_clean_logit_difference() {
    // The full final LayerNorm of the final residual, projected on W_U[a] − W_U[w], is the
    // logit difference itself (b_U cancels between answer and wrong).
    let f = load(DType::F64);
    let s = f.setup();
    let lens = logit_lens(&s).unwrap();
    let last = *lens.values.last().unwrap();
    assert!(
        (last - s.clean_metric).abs() < 1e-9,
        "{last} vs {}",
        s.clean_metric
    );
}

#[test]
fn layer_attributions_sum_to_the_logit_difference_without_ln_weights() {
    // With the final LayerNorm's weight 1 and bias 0, logits = centre(resid)/scale · W_U + b_U,
    // and resid is the sum of the components: the layer attributions add up to the logit
    // difference (b_U cancels between answer and wrong).
    let f = load(DType::F64);
    let mut model = f.model.clone();
    model.w.ln_f_w = model.w.ln_f_w.ones_like().unwrap();
    model.w.ln_f_b = model.w.ln_f_b.zeros_like().unwrap();
    let s = circuitscope::analysis::Setup::from_tokens(
        &model,
        &f.clean,
        &f.corrupted,
        &f.answers,
        circuitscope::metric::Metric::LogitDiff,
    )
    .unwrap();
    let layers = dla_layers(&s).unwrap();
    let total: f64 = layers.values.iter().sum();
    assert!(
        (total - s.clean_metric).abs() < 1e-9,
        "{total} vs {}",
        s.clean_metric
    );
}
