//! Llama, Qwen2 and Gemma-2: the forward pass against Hugging Face logits and TransformerLens
//! activations (by name), on the tiny random models made by `scripts/make_family_fixtures.py`.
//! Also: their tokenizers, and that an unpatched run's head outputs sum exactly to the
//! attention output (Gemma-2's post-attention norm).

use candle_core::{DType, Device, Tensor};
use circuitscope::eval::{self, LogitsAt, NameFilter, Patches, RunOptions};
use circuitscope::graph::Node;
use circuitscope::model::Model;
use circuitscope::tokenizer::Tokenizer;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let v = |t: &Tensor| {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    };
    let (a, b) = (v(a), v(b));
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

/// Returns the max |logit difference| against Hugging Face.
fn check(name: &str, dtype: DType) -> f64 {
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
    let d_logits = max_abs_diff(logits, &expected["logits"]);
    assert!(
        d_logits <= 1e-4,
        "{name}: logits differ from Hugging Face by {d_logits}"
    );
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
        // Not emitted: the normalised inputs, and the scales of Gemma-2's post-attention and
        // post-MLP norms (their outputs are hook_attn_out and hook_mlp_out).
        let skip = ["tokens", "logits", "tl_logits"].contains(&k.as_str())
            || k.ends_with("hook_normalized")
            || k.contains("_post.");
        if !skip && !run.cache.contains_key(k) {
            failures.push(format!("{k}: TransformerLens has it, we do not"));
        }
    }
    assert!(failures.is_empty(), "{name}: {failures:#?}");
    assert!(
        compared >= 12 * model.cfg.n_layers,
        "{name}: only {compared} activations compared"
    );
    eprintln!(
        "{name} ({dtype:?}): max |logits − Hugging Face| = {d_logits:.3e}, {compared} activations"
    );
    d_logits
}

#[test]
fn llama_tiny_matches_hugging_face_and_transformer_lens() {
    check("llama-tiny", DType::F32);
}

#[test]
fn qwen2_tiny_matches_hugging_face_and_transformer_lens() {
    check("qwen2-tiny", DType::F32);
}

#[test]
fn gemma2_tiny_matches_hugging_face_and_transformer_lens() {
    check("gemma2-tiny", DType::F32);
}

#[test]
fn families_f64_match_hugging_face() {
    for name in ["llama-tiny", "qwen2-tiny", "gemma2-tiny"] {
        check(name, DType::F64);
    }
}

/// Heads' sender outputs plus `b_O` sum to the attention output of the same run, in every
/// layer (for Gemma-2 this is the normed output: each head's result times the post-norm's
/// factor of this run).
#[test]
fn head_outputs_sum_to_the_attention_output() {
    for name in ["llama-tiny", "qwen2-tiny", "gemma2-tiny"] {
        let model = Model::load(&fixture(name), DType::F64).unwrap();
        let expected = candle_core::safetensors::load(
            fixture(name).join("expected.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        let tokens = expected["tokens"].to_dtype(DType::U32).unwrap();
        let run = eval::run(&model, &tokens, &Patches::new(), RunOptions::default()).unwrap();
        for l in 0..model.cfg.n_layers {
            let mut sum = model.w.blocks[l]
                .b_o
                .broadcast_as(run.attn_out[l].dims())
                .unwrap()
                .clone();
            for h in 0..model.cfg.n_heads {
                sum = (sum + run.sender_out(&model, Node::Head(l, h)).unwrap()).unwrap();
            }
            let d = max_abs_diff(&sum, &run.attn_out[l]);
            assert!(
                d < 1e-12,
                "{name} layer {l}: heads sum to the attention output ± {d}"
            );
        }
    }
}

#[test]
fn tokenizers_match_the_tokenizers_package() {
    for name in ["llama-tiny", "qwen2-tiny", "gemma2-tiny"] {
        let dir = fixture(name);
        let tok = Tokenizer::from_model_dir(&dir).unwrap();
        let cases: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("tokenizer_cases.json")).unwrap(),
        )
        .unwrap();
        for c in cases["cases"].as_array().unwrap() {
            let text = c["text"].as_str().unwrap();
            let want: Vec<u32> = c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                tok.to_tokens(text, false).unwrap(),
                want,
                "{name}: {text:?}"
            );
        }
        match cases["bos_id"].as_u64() {
            Some(bos) => {
                let ids = tok.to_tokens("Mary", true).unwrap();
                assert_eq!(ids[0] as u64, bos, "{name}: BOS");
            }
            None => assert!(
                !tok.prepends_bos_by_default(),
                "{name}: this family prepends no BOS"
            ),
        }
    }
}
