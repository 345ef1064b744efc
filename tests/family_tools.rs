//! Every tool on the Llama, Qwen2 and Gemma-2 fixtures: `acdc` (a few receivers), `scrub` and
//! `circuitscope patch act` from the command line; and grouped-query attention in ACDC's edge
//! graph: a k or v edge into a key/value group is one edge that feeds every query head of the
//! group.

use candle_core::{DType, Tensor};
use circuitscope::acdc::{self, Config, Oracle, Prepared};
use circuitscope::data::{InductionOptions, TaskSpec};
use circuitscope::eval::{self, LogitsAt, Patches, RunOptions};
use circuitscope::graph::{Edge, EdgeGraph, GraphOptions, Node, Qkv, Receiver};
use circuitscope::metric::Metric;
use std::path::PathBuf;
use std::process::Command;

const FAMILIES: [&str; 3] = ["llama-tiny", "qwen2-tiny", "gemma2-tiny"];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Run the `acdc` binary on fixture `m` with the config's fields after the model (`fields`),
/// into `dir/name`; returns the output folder.
fn acdc_cli(dir: &std::path::Path, name: &str, m: &str, fields: &str, extra: &[&str]) -> PathBuf {
    let cfg = dir.join(format!("{name}.ron"));
    std::fs::write(
        &cfg,
        format!("AcdcConfig(model: \"{}\", {fields})", fixture(m).display()),
    )
    .unwrap();
    let out = dir.join(name);
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    run(Command::new(env!("CARGO_BIN_EXE_acdc")).args(&args));
    out
}

#[test]
fn acdc_runs_on_every_family() {
    let tmp = tempfile::tempdir().unwrap();
    for m in FAMILIES {
        let out = acdc_cli(
            tmp.path(),
            m,
            m,
            "task: Induction(n: 6, seq_len: 6, seed: 0, min_token: 5), metric: Kl, \
             ablation: Resample(shift: 1), tau: 0.05, dtype: F64",
            &["--stop-after", "6"],
        );
        let show =
            run(Command::new(env!("CARGO_BIN_EXE_acdc")).args(["--show", out.to_str().unwrap()]));
        let tested: usize = show
            .lines()
            .find_map(|l| l.strip_prefix("count tested "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{m}: no tested count in\n{show}"));
        assert!(tested >= 20, "{m}: only {tested} edges tested\n{show}");
        let circuit: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("circuit.json")).unwrap())
                .unwrap();
        assert!(circuit.is_object(), "{m}: circuit.json");
    }
}

#[test]
fn scrub_runs_on_every_family() {
    let tmp = tempfile::tempdir().unwrap();
    for m in FAMILIES {
        let last = if m == "gemma2-tiny" { 2 } else { 1 };
        let hyp = tmp.path().join(format!("{m}.ron"));
        std::fs::write(
            &hyp,
            format!(
                r#"Hypothesis(
    name: "induction-{m}",
    model: "{}",
    task: Induction(n: 8, seed: 0, seq_len: 6, min_token: 5),
    metric: Nll,
    seed: 0,
    root: Node(name: "logits", other_inputs: Uncond, children: [
        Node(name: "direct", matcher: Direct(to: ["embed"], at: ["END"]), sampler: Exact),
        Node(name: "head", matcher: Direct(to: ["a{last}.h1"], at: ["END"]), sampler: Exact,
            other_inputs: Uncond, children: [
                Node(name: "q", matcher: Direct(to: ["embed"], via: [Q]), sampler: Exact),
                Node(name: "k", matcher: Direct(to: ["a0.h0"], via: [K]), sampler: Exact),
            ]),
    ]),
)"#,
                fixture(m).display()
            ),
        )
        .unwrap();
        let json = tmp.path().join(format!("{m}.json"));
        run(Command::new(env!("CARGO_BIN_EXE_scrub")).args([
            "--hypothesis",
            hyp.to_str().unwrap(),
            "--dtype",
            "f64",
            "--json",
            json.to_str().unwrap(),
        ]));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let mean = |k: &str| v[k]["mean"].as_f64().unwrap();
        let (clean, scrubbed, base) = (mean("clean"), mean("scrubbed"), mean("baseline"));
        assert!(
            clean.is_finite() && scrubbed.is_finite() && base.is_finite(),
            "{m}: {v}"
        );
        assert!(
            (scrubbed - clean).abs() > 1e-6,
            "{m}: nothing was resampled?"
        );

        // Every sampler and every other-inputs sampler Exact: the scrubbed model is the model.
        let exact = std::fs::read_to_string(&hyp)
            .unwrap()
            .replace("Uncond", "Exact");
        let hyp2 = tmp.path().join(format!("{m}-exact.ron"));
        std::fs::write(&hyp2, exact).unwrap();
        let json2 = tmp.path().join(format!("{m}-exact.json"));
        run(Command::new(env!("CARGO_BIN_EXE_scrub")).args([
            "--hypothesis",
            hyp2.to_str().unwrap(),
            "--dtype",
            "f64",
            "--json",
            json2.to_str().unwrap(),
        ]));
        let v2: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json2).unwrap()).unwrap();
        let d = (v2["scrubbed"]["mean"].as_f64().unwrap() - clean).abs();
        assert!(
            d < 1e-9,
            "{m}: an all-Exact hypothesis changes the metric by {d}"
        );
    }
}

#[test]
fn patch_act_runs_on_every_family() {
    let tmp = tempfile::tempdir().unwrap();
    for m in FAMILIES {
        let out = tmp.path().join(format!("{m}.safetensors"));
        run(Command::new(env!("CARGO_BIN_EXE_circuitscope")).args([
            "patch",
            "act",
            "--model",
            fixture(m).to_str().unwrap(),
            "--task",
            "Induction(n: 4, seq_len: 6, seed: 1, min_token: 5)",
            "--metric",
            "nll",
            "--target",
            "attn_head_out_all_pos",
            "--out",
            out.to_str().unwrap(),
        ]));
        let t = candle_core::safetensors::load(&out, &candle_core::Device::Cpu).unwrap();
        let cfg = circuitscope::model::ModelConfig::from_dir(&fixture(m)).unwrap();
        assert_eq!(t["patch"].dims(), &[cfg.n_layers, cfg.n_heads], "{m}");
    }
}

fn acdc_config(model: &str) -> Config {
    Config {
        model: fixture(model).display().to_string(),
        task: TaskSpec::Induction(InductionOptions {
            n: 5,
            seed: 3,
            prepend_bos: true,
            seq_len: 6,
            min_token: 5,
            max_token: 0,
        }),
        n: None,
        metric: Metric::Kl,
        ablation: acdc::Ablation::Zero,
        tau: 0.01,
        order: acdc::Order::Normal,
        indices_order: None,
        seed: 0,
        level: acdc::Level::Edges,
        split_qkv: true,
        abs_value_threshold: false,
        dtype: acdc::Precision::F64,
        batch: 1,
    }
}

/// llama-tiny: 2 layers, 4 query heads in 2 key/value groups, MLPs. Per layer the graph has 4
/// q receivers and 2 k and 2 v receivers (named after heads 0 and 2), and 8 q/k/v edges.
#[test]
fn grouped_edge_graph_counts_one_k_and_v_receiver_per_group() {
    let cfg = circuitscope::model::ModelConfig::from_dir(&fixture("llama-tiny")).unwrap();
    let g = EdgeGraph::new(&cfg, GraphOptions { split_qkv: true });
    // Senders: embed, 4 heads and an MLP per layer (11). logits: 11 parents; layer 1: MLP
    // input 10, 8 head inputs × 6, 8 q/k/v edges; layer 0: MLP input 5, 8 head inputs × 1, 8.
    assert_eq!(g.len(), 11 + (10 + 48 + 8) + (5 + 8 + 8));
    for l in 0..2 {
        for h in 0..4 {
            let leader = h % 2 == 0;
            assert!(g.qkv_id(l, h, Qkv::Q).is_some());
            assert_eq!(g.qkv_id(l, h, Qkv::K).is_some(), leader, "a{l}.h{h}.k");
            assert_eq!(
                g.add_id(Node::Embed, Receiver::Head(l, h, Qkv::V))
                    .is_some(),
                leader
            );
        }
    }
    let e = Edge::parse("a0.h1 -> a1.h3.k", &cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("a1.h2.k"), "{e}");
    assert!(Edge::parse("a0.h1 -> a1.h2.k", &cfg).is_ok());
    let qwen = circuitscope::model::ModelConfig::from_dir(&fixture("qwen2-tiny")).unwrap();
    let gq = EdgeGraph::new(&qwen, GraphOptions { split_qkv: false });
    // One key/value head: one k and one v receiver per layer.
    assert_eq!(gq.len(), 11 + (10 + 6 * 6) + (5 + 6));
}

/// Removing `embed → a1.h0.k` (the key input of group {0, 1}) in ACDC equals patching the
/// embedding out of the k input of both query heads 0 and 1, and differs from patching head 0
/// alone. The same holds for the group's q/k/v edge `a1.h0.k -> a1.h0`.
#[test]
fn removing_a_grouped_k_edge_patches_every_head_of_the_group() {
    for model in ["llama-tiny", "gemma2-tiny"] {
        let prep = Prepared::new(&acdc_config(model)).unwrap();
        let sweep = prep.sweep();
        let acdc::Units::Edges(g) = &sweep.units else {
            unreachable!()
        };
        let mut ev = prep.evaluator().unwrap();
        let l = prep.model.cfg.n_layers - 1;
        let r = Receiver::Head(l, 0, Qkv::K);
        let i = g.add_id(Node::Embed, r).unwrap();
        let mut present = vec![true; g.len()];
        present[i] = false;
        let acdc_metric = ev.metric(&present).unwrap();

        let zeros = Tensor::zeros(
            prep.tokens
                .dims2()
                .map(|(b, p)| (b, p, prep.model.cfg.d_model))
                .unwrap(),
            DType::F64,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let metric_with = |heads: &[usize]| -> f64 {
            let mut patches = Patches::new();
            for &h in heads {
                patches.add(
                    Receiver::Head(l, h, Qkv::K),
                    Node::Embed,
                    zeros.clone(),
                    None,
                );
            }
            let out = eval::run(
                &prep.model,
                &prep.tokens,
                &patches,
                RunOptions {
                    logits: LogitsAt::Rows(prep.end.clone()),
                    ..Default::default()
                },
            )
            .unwrap();
            ev.objective().value(out.logits.as_ref().unwrap()).unwrap()
        };
        let group = metric_with(&[0, 1]);
        let leader_only = metric_with(&[0]);
        assert!(
            (acdc_metric - group).abs() < 1e-10,
            "{model}: ACDC {acdc_metric} vs both heads patched {group}"
        );
        assert!(
            (acdc_metric - leader_only).abs() > 1e-6,
            "{model}: the group edge must reach head 1 too"
        );

        // The group's q/k/v edge: the whole k input of heads 0 and 1 reads the ablation.
        let j = g.qkv_id(l, 0, Qkv::K).unwrap();
        let mut present = vec![true; g.len()];
        present[j] = false;
        let whole = ev.metric(&present).unwrap();
        let mut all_parents = vec![true; g.len()];
        for (k, e) in g.edges().iter().enumerate() {
            if matches!(e, Edge::Add { receiver, .. } if *receiver == r) {
                all_parents[k] = false;
            }
        }
        let b = ev.metric(&all_parents).unwrap();
        assert!((whole - b).abs() < 1e-10, "{model}: {whole} vs {b}");
    }
}

/// The fast evaluator (resumed runs, replaced inputs) and the naive one (every removed edge a
/// patch) agree on random circuits of the grouped, soft-capped, post-normed models.
#[test]
fn fast_and_naive_acdc_agree_on_families() {
    use rand::{Rng, SeedableRng};
    for model in FAMILIES {
        let mut c = acdc_config(model);
        c.ablation = acdc::Ablation::Resample(Default::default());
        let prep = Prepared::new(&c).unwrap();
        let n = prep.sweep().units.len();
        let mut fast = prep.evaluator().unwrap();
        let mut naive = prep.evaluator().unwrap();
        naive.naive = true;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for p_keep in [0.9, 0.4, 0.05] {
            let present: Vec<bool> = (0..n).map(|_| rng.random::<f64>() < p_keep).collect();
            let a = fast.metric(&present).unwrap();
            let b = naive.metric(&present).unwrap();
            assert!(
                (a - b).abs() < 1e-9 * (1.0 + a.abs()),
                "{model}: {a} vs {b}"
            );
        }
    }
}

/// Attribution's gradient with respect to a grouped k receiver is the derivative of adding one
/// delta to the k input of every query head of the group (finite differences, float64).
#[test]
fn attribution_gradient_of_a_grouped_k_receiver_covers_the_group() {
    use circuitscope::analysis::setup::tokens_dataset;
    use circuitscope::attribution::gradients::receiver_grads;
    use circuitscope::attribution::GradMetric;
    let m = circuitscope::model::Model::load(&fixture("llama-tiny"), DType::F64).unwrap();
    let clean: Vec<Vec<u32>> = vec![vec![0, 20, 31, 44, 20, 31], vec![0, 50, 61, 72, 50, 61]];
    let answers = vec![(44, 45), (72, 73)];
    let ds = tokens_dataset(&clean, None, Some(&answers)).unwrap();
    let tokens = m.tokens_tensor(&clean).unwrap();
    let ends = ds.end_positions();
    let obj = GradMetric::new(
        Metric::LogitDiff,
        &ds,
        m.cfg.d_vocab,
        None,
        DType::F64,
        m.device(),
    )
    .unwrap();
    let g = receiver_grads(&m, &tokens, &ends, &obj, None, None).unwrap();
    let r = Receiver::Head(1, 0, Qkv::K);
    let v = {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let n = 2 * 6 * m.cfg.d_model;
        let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>() - 0.5).collect();
        Tensor::from_vec(x, (2, 6, m.cfg.d_model), m.device()).unwrap()
    };
    let value = |delta: &Tensor, heads: &[usize]| -> f64 {
        let mut p = Patches::new();
        for &h in heads {
            p.add_delta(Receiver::Head(1, h, Qkv::K), delta.clone())
                .unwrap();
        }
        let out = eval::run(
            &m,
            &tokens,
            &p,
            RunOptions {
                logits: LogitsAt::Rows(ends.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        let l = out.logits.unwrap();
        circuitscope::metric::mean(&Metric::LogitDiff.per_example(&l, &ds, None, None).unwrap())
    };
    let eps = 1e-5;
    let fd = |heads: &[usize]| {
        (value(&(&v * eps).unwrap(), heads) - value(&(&v * -eps).unwrap(), heads)) / (2.0 * eps)
    };
    let an = g.grads[&r]
        .mul(&v)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let (group, leader) = (fd(&[0, 1]), fd(&[0]));
    assert!(
        (an - group).abs() < 1e-6 * (1.0 + an.abs()),
        "{an} vs {group}"
    );
    assert!(
        (an - leader).abs() > 1e-6,
        "the gradient must cover head 1 too"
    );
}

/// `dtype: F32` and `Checked` run on every family (the float32 one-edge screen does not take
/// grouped or post-normed models; the general evaluator does), and `Checked` keeps exactly the
/// edges `F64` keeps.
#[test]
fn every_precision_runs_on_every_family_and_checked_equals_f64() {
    let tmp = tempfile::tempdir().unwrap();
    for m in FAMILIES {
        let mut kept = Vec::new();
        for dtype in ["F64", "Checked", "F32"] {
            let out = acdc_cli(
                tmp.path(),
                &format!("{m}-{dtype}"),
                m,
                &format!(
                    "task: Induction(n: 5, seq_len: 6, seed: 3, min_token: 5), metric: Kl, \
                     ablation: Zero, tau: 0.01, dtype: {dtype}"
                ),
                &[],
            );
            let circuit: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("circuit.json")).unwrap())
                    .unwrap();
            let edges = circuit["edges"].clone();
            assert!(
                edges.is_array() || edges.is_object(),
                "{m} {dtype}: {circuit}"
            );
            kept.push(edges);
        }
        assert_eq!(kept[0], kept[1], "{m}: Checked must keep F64's edges");
    }
}
