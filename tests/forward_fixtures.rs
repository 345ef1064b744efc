//! The forward pass against Hugging Face logits and TransformerLens activations, on the tiny
//! random models made by `scripts/make_fixtures.py`.

use candle_core::{DType, Device, Tensor};
use circuitscope::eval::{self, LogitsAt, NameFilter, Patches, RunOptions};
use circuitscope::model::Model;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = a
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let b = b
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| {
            if x.is_infinite() && y.is_infinite() && x.signum() == y.signum() {
                0.0
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f64::max)
}

fn check(name: &str, dtype: DType) {
    let dir = fixture(name);
    let model = Model::load(&dir, dtype).unwrap();
    let expected =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    let tokens = expected["tokens"].to_dtype(DType::U32).unwrap();
    let run = eval::run(
        &model,
        &tokens,
        &Patches::new(),
        RunOptions {
            cache: NameFilter::all(),
            logits: LogitsAt::All,
            ..Default::default()
        },
    )
    .unwrap();
    let logits = run.logits.as_ref().unwrap();
    let d = max_abs_diff(logits, &expected["logits"]);
    assert!(d <= 1e-4, "{name}: logits differ from Hugging Face by {d}");

    let mut compared = 0;
    let mut failures = Vec::new();
    for (k, ours) in &run.cache {
        let Some(theirs) = expected.get(k) else {
            continue;
        };
        let theirs = if theirs.dims() != ours.dims() && theirs.elem_count() == ours.elem_count() {
            theirs.reshape(ours.dims()).unwrap()
        } else {
            theirs.clone()
        };
        if theirs.dims() != ours.dims() {
            failures.push(format!(
                "{k}: shape {:?} vs TransformerLens {:?}",
                ours.dims(),
                theirs.dims()
            ));
            continue;
        }
        let d = max_abs_diff(ours, &theirs);
        if d > 1e-4 {
            failures.push(format!("{k}: max |Δ| {d}"));
        }
        compared += 1;
    }
    for k in expected.keys() {
        let skip = ["tokens", "logits", "tl_logits"].contains(&k.as_str())
            || k.ends_with("hook_normalized");
        if !skip && !run.cache.contains_key(k) {
            failures.push(format!("{k}: TransformerLens has it, we do not"));
        }
    }
    assert!(failures.is_empty(), "{name}: {failures:#?}");
    assert!(
        compared >= 10 * model.cfg.n_layers,
        "{name}: only {compared} activations compared"
    );
}

#[test]
fn gpt2_tiny_matches_hugging_face() {
    check("gpt2-tiny", DType::F32);
}

#[test]
fn gpt2_tiny_f64_matches_hugging_face() {
    check("gpt2-tiny", DType::F64);
}

#[test]
fn pythia_tiny_parallel_matches_hugging_face() {
    check("pythia-tiny", DType::F32);
}

#[test]
fn pythia_tiny_sequential_matches_hugging_face() {
    check("pythia-tiny-seq", DType::F32);
}

#[test]
fn logits_at_chosen_rows_equal_full_logits() {
    let dir = fixture("gpt2-tiny");
    let model = Model::load(&dir, DType::F32).unwrap();
    let tokens = model
        .tokens_tensor(&[vec![0, 5, 7, 9], vec![0, 3, 3, 2]])
        .unwrap();
    let full = eval::run(&model, &tokens, &Patches::new(), RunOptions::default()).unwrap();
    let rows = eval::run(
        &model,
        &tokens,
        &Patches::new(),
        RunOptions {
            logits: LogitsAt::Rows(vec![3, 1]),
            ..Default::default()
        },
    )
    .unwrap();
    let full = full.logits.unwrap();
    let rows = rows.logits.unwrap();
    let want = Tensor::stack(
        &[
            full.get(0).unwrap().get(3).unwrap(),
            full.get(1).unwrap().get(1).unwrap(),
        ],
        0,
    )
    .unwrap();
    assert!(max_abs_diff(&rows, &want) < 1e-6);
}

#[test]
fn bad_tokens_are_refused_clearly() {
    let model = Model::load(&fixture("gpt2-tiny"), DType::F32).unwrap();
    let e = model
        .tokens_tensor(&[vec![0, 1], vec![0]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("ragged"), "{e}");
    let e = model
        .tokens_tensor(&[vec![0, 100_000]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("vocabulary"), "{e}");
    let e = model
        .tokens_tensor(&[vec![0; 1000]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("context"), "{e}");
}
