//! Training: every parameter gets a gradient, gradients match finite differences, runs are
//! deterministic (and resume to the same bytes).

use candle_core::{DType, Tensor};
use circuitscope::train::config::TrainConfig;
use circuitscope::train::ioi::{derive_seed, IoiTask, Split};
use circuitscope::train::trainer::loss_and_grads;
use circuitscope::train::{self, Gpt2Params, TrainTask};

const TINY: &str = r#"TrainConfig(
    name: "tiny-ioi",
    task: Ioi(heldout_templates: ["baba-2", "abba-2"], heldout_pairs: 0.1),
    model: (n_layers: 1, d_model: 16, n_heads: 2, d_mlp: 32, n_ctx: 32),
    seed: 3,
    steps: 6,
    batch: 8,
    lr: 3e-3,
    warmup: 2,
    checkpoint_every: 3,
    eval_every: 3,
    eval: (n: 8, seed: 1),
)"#;

fn tiny() -> TrainConfig {
    TrainConfig::from_ron(TINY, "tiny.ron").unwrap()
}

fn setup() -> (TrainConfig, IoiTask, Gpt2Params) {
    let cfg = tiny();
    let TrainTask::Ioi(t) = &cfg.task;
    let task = IoiTask::new(t).unwrap();
    let mcfg = cfg.model_config(task.tok.vocab_size()).unwrap();
    let params = Gpt2Params::init(&mcfg, cfg.seed).unwrap();
    (cfg, task, params)
}

#[test]
fn every_parameter_gets_a_nonzero_gradient() {
    let (cfg, task, params) = setup();
    let ds = task
        .sample(Split::Train, cfg.batch, derive_seed(0, "batch", 0), None)
        .unwrap();
    let (loss, grads) = loss_and_grads(&params, &ds, 0).unwrap();
    // An untrained model spreads probability over the vocabulary: loss ≈ ln(vocab).
    let ln_v = (task.tok.vocab_size() as f64).ln();
    assert!((loss - ln_v).abs() < 0.5, "loss {loss} vs ln V {ln_v}");
    for p in &params.params {
        let g = grads
            .get(p.var.as_tensor())
            .unwrap_or_else(|| panic!("{} has no gradient", p.name));
        let n = g
            .to_dtype(DType::F64)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(n > 0.0 && n.is_finite(), "{}: gradient norm² {n}", p.name);
    }
}

/// Central differences on the largest-gradient element of several tensors.
#[test]
fn gradients_match_finite_differences() {
    let (cfg, task, params) = setup();
    let ds = task
        .sample(Split::Train, cfg.batch, derive_seed(0, "batch", 1), None)
        .unwrap();
    let (_, grads) = loss_and_grads(&params, &ds, 0).unwrap();
    for name in [
        "transformer.h.0.ln_1.weight",
        "transformer.h.0.attn.c_attn.weight",
        "transformer.h.0.mlp.c_fc.weight",
        "transformer.wte.weight",
        "transformer.wpe.weight",
    ] {
        let p = params.params.iter().find(|p| p.name == name).unwrap();
        let g: Vec<f32> = grads
            .get(p.var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (idx, &gi) = g
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        let orig = p.var.as_tensor().clone().detach();
        let shape = orig.dims().to_vec();
        let flat: Vec<f32> = orig.flatten_all().unwrap().to_vec1().unwrap();
        let eps = 1e-2f32;
        let at = |delta: f32| {
            let mut v = flat.clone();
            v[idx] += delta;
            p.var
                .set(&Tensor::from_vec(v, shape.clone(), orig.device()).unwrap())
                .unwrap();
            let (l, _) = loss_and_grads(&params, &ds, 0).unwrap();
            l
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
        p.var
            .set(&Tensor::from_vec(flat.clone(), shape.clone(), orig.device()).unwrap())
            .unwrap();
        let gi = f64::from(gi);
        eprintln!("{name}[{idx}]: autograd {gi:.6}, finite difference {fd:.6}");
        assert!(
            (fd - gi).abs() <= 0.02 * gi.abs() + 1e-4,
            "{name}[{idx}]: autograd {gi}, finite difference {fd}"
        );
    }
}

#[test]
fn micro_batches_give_the_same_gradients() {
    let (cfg, task, params) = setup();
    let ds = task
        .sample(Split::Train, cfg.batch, derive_seed(0, "batch", 2), None)
        .unwrap();
    let (l1, g1) = loss_and_grads(&params, &ds, 0).unwrap();
    let (l2, g2) = loss_and_grads(&params, &ds, 2).unwrap();
    assert!((l1 - l2).abs() < 1e-5, "{l1} vs {l2}");
    for p in &params.params {
        let a = g1.get(p.var.as_tensor()).unwrap();
        let b = g2.get(p.var.as_tensor()).unwrap();
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "{}: micro-batch gradients differ by {d}", p.name);
    }
}

fn weights_bytes(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn training_is_deterministic_and_resumes_to_the_same_bytes() {
    let cfg = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let out_a = train::train(&cfg, &a, false, &mut |_| {}).unwrap();
    train::train(&cfg, &b, false, &mut |_| {}).unwrap();
    assert_eq!(weights_bytes(&a), weights_bytes(&b), "two runs differ");
    for f in [
        "config.json",
        "tokenizer.json",
        "train_log.csv",
        "eval_log.csv",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
    // Stop after 3 steps (a checkpoint is written at step 3 of a 6-step run), then resume.
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train::train(&cfg, &c, false, &mut |s| {
            if s.step == 4 {
                panic!("interrupted");
            }
        })
    }));
    assert!(interrupted.is_err());
    assert!(c.join("checkpoint/state.json").is_file());
    let out_c = train::train(&cfg, &c, true, &mut |_| {}).unwrap();
    assert_eq!(out_c.resumed_from, Some(3));
    assert_eq!(weights_bytes(&a), weights_bytes(&c), "resumed run differs");
    assert!(!c.join("checkpoint").exists(), "checkpoint left behind");
    assert_eq!(out_a.weights_sha256, out_c.weights_sha256);
    // The folder loads as a model and the metrics file parses.
    let m = circuitscope::model::Model::load(&a, DType::F32).unwrap();
    assert_eq!(m.cfg.d_model, 16);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(v["steps"], 6);
}

#[test]
fn bad_configs_name_the_file_and_place() {
    let e = TrainConfig::from_ron("TrainConfig(name: 1)", "cfg.ron")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cfg.ron:1:"), "{e}");
    let bad = TINY.replace("n_heads: 2", "n_heads: 3");
    let e = TrainConfig::from_ron(&bad, "cfg.ron")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not divisible"), "{e}");
}
