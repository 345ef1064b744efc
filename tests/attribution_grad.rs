//! Gradients through the evaluator against finite differences (float64), and EAP's edge scores
//! against the exact effect of removing each edge when the ablated values are a tiny
//! perturbation of the clean ones (where the first-order estimate must be exact to O(ε²)).

use candle_core::{DType, Tensor};
use circuitscope::acdc::ablation::Ablated;
use circuitscope::analysis::setup::tokens_dataset;
use circuitscope::attribution::gradients::receiver_grads;
use circuitscope::attribution::{attribute, GradMetric, IgPoints, Inputs, Method, Options};
use circuitscope::data::Dataset;
use circuitscope::eval::{self, LogitsAt, Patches, RunOptions};
use circuitscope::graph::edges::{receivers_reverse, senders_reverse};
use circuitscope::graph::{Edge, GraphOptions, Node, Qkv, Receiver};
use circuitscope::metric::{self, Metric};
use circuitscope::model::Model;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn model() -> Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tiny");
    Model::load(&dir, DType::F64).unwrap()
}

fn rows(seed: u64, n: usize, p: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..p).map(|_| rng.random_range(0..vocab as u32)).collect())
        .collect()
}

fn dataset(m: &Model) -> Dataset {
    let clean = rows(1, 3, 6, m.cfg.d_vocab);
    let corrupted = rows(2, 3, 6, m.cfg.d_vocab);
    let answers = vec![(5, 7), (11, 3), (42, 9)];
    tokens_dataset(&clean, Some(&corrupted), Some(&answers)).unwrap()
}

fn noise(seed: u64, shape: (usize, usize, usize), m: &Model) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.0 * shape.1 * shape.2;
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, m.device()).unwrap()
}

/// The metric (metric.rs, f64) with `delta` added to receiver `r`'s input.
fn metric_with(
    m: &Model,
    tokens: &Tensor,
    ds: &Dataset,
    metric: Metric,
    reference: &Tensor,
    r: Receiver,
    delta: Tensor,
) -> f64 {
    let mut patches = Patches::new();
    patches.add_delta(r, delta).unwrap();
    let run = eval::run(
        m,
        tokens,
        &patches,
        RunOptions {
            logits: LogitsAt::Rows(ds.end_positions()),
            ..Default::default()
        },
    )
    .unwrap();
    let v = metric
        .per_example(run.logits.as_ref().unwrap(), ds, Some(reference), None)
        .unwrap();
    metric::mean(&v)
}

#[test]
fn receiver_gradients_match_finite_differences() {
    let m = model();
    let ds = dataset(&m);
    let tokens = m.tokens_tensor(&rows(1, 3, 6, m.cfg.d_vocab)).unwrap();
    let corrupted = m.tokens_tensor(&rows(2, 3, 6, m.cfg.d_vocab)).unwrap();
    let ends = ds.end_positions();
    // KL's reference: the corrupted run's logits, so that the gradient is not zero.
    let reference = eval::run(
        &m,
        &corrupted,
        &Patches::new(),
        RunOptions {
            logits: LogitsAt::Rows(ends.clone()),
            ..Default::default()
        },
    )
    .unwrap()
    .logits
    .unwrap();
    let shape = tokens.dims2().unwrap();
    let shape = (shape.0, shape.1, m.cfg.d_model);
    let eps = 1e-5;
    for metric in [Metric::LogitDiff, Metric::Kl, Metric::Prob, Metric::Nll] {
        let obj =
            GradMetric::new(metric, &ds, m.cfg.d_vocab, None, DType::F64, m.device()).unwrap();
        let g = receiver_grads(&m, &tokens, &ends, &obj, Some(&reference), None).unwrap();
        let base = metric_with(
            &m,
            &tokens,
            &ds,
            metric,
            &reference,
            Receiver::Logits,
            Tensor::zeros(shape, DType::F64, m.device()).unwrap(),
        );
        assert!(
            (g.metric - base).abs() < 1e-10,
            "{metric}: {} vs {base}",
            g.metric
        );
        for (i, r) in receivers_reverse(&m.cfg).into_iter().enumerate() {
            let v = noise(100 + i as u64, shape, &m);
            let plus = metric_with(&m, &tokens, &ds, metric, &reference, r, (&v * eps).unwrap());
            let minus = metric_with(
                &m,
                &tokens,
                &ds,
                metric,
                &reference,
                r,
                (&v * -eps).unwrap(),
            );
            let fd = (plus - minus) / (2.0 * eps);
            let an = g.grads[&r]
                .mul(&v)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            let tol = 1e-6 * (1.0 + an.abs());
            assert!(
                (fd - an).abs() < tol,
                "{metric} {r}: finite difference {fd} vs gradient {an}"
            );
        }
    }
}

#[test]
fn accuracy_has_no_gradient() {
    let m = model();
    let ds = dataset(&m);
    let err = GradMetric::new(
        Metric::Accuracy,
        &ds,
        m.cfg.d_vocab,
        None,
        DType::F64,
        m.device(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no gradient"), "{err}");
}

/// Ablated values = clean values + ε · noise: every EAP score is the first-order change of the
/// metric when that one edge is removed.
#[test]
#[allow(clippy::too_many_lines)] // one test scenario: its steps and assertions read in order
fn eap_scores_are_first_order_edge_effects() {
    let m = model();
    let ds = dataset(&m);
    let tokens = m.tokens_tensor(&rows(1, 3, 6, m.cfg.d_vocab)).unwrap();
    let ends = ds.end_positions();
    let clean = eval::run(
        &m,
        &tokens,
        &Patches::new(),
        RunOptions {
            logits: LogitsAt::Rows(ends.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let (b, p) = tokens.dims2().unwrap();
    let shape = (b, p, m.cfg.d_model);
    let eps = 1e-6;
    let mut out = BTreeMap::new();
    for (i, u) in senders_reverse(&m.cfg).into_iter().enumerate() {
        let t =
            (clean.sender_out(&m, u).unwrap() + (noise(7 + i as u64, shape, &m) * eps)).unwrap();
        out.insert(u, t);
    }
    let resid: Vec<Tensor> = (0..=m.cfg.n_layers)
        .map(|l| (&clean.resid[l] + (noise(500 + l as u64, shape, &m) * eps).unwrap()).unwrap())
        .collect();
    let ablated = Ablated {
        out: out.clone(),
        resid: resid.clone(),
        mid: vec![],
    };
    let obj = GradMetric::new(
        Metric::LogitDiff,
        &ds,
        m.cfg.d_vocab,
        None,
        DType::F64,
        m.device(),
    )
    .unwrap();
    let clean_metric = metric::mean(
        &Metric::LogitDiff
            .per_example(clean.logits.as_ref().unwrap(), &ds, None, None)
            .unwrap(),
    );
    let inputs = Inputs {
        model: &m,
        tokens: tokens.clone(),
        ends: ends.clone(),
        ablated: &ablated,
        objective: obj,
    };
    let opts = Options {
        method: Method::Eap,
        ig_steps: 1,
        ig_points: IgPoints::Paper,
        per_position: true,
        graph: GraphOptions { split_qkv: true },
    };
    let s = attribute(&inputs, &opts, &mut |_, _| {}).unwrap();
    assert_eq!(s.forwards, 1);
    assert_eq!(s.backwards, 1);
    for (i, e) in s.graph.edges().iter().enumerate() {
        // The exact effect of removing this edge alone.
        let mut patches = Patches::new();
        match *e {
            Edge::Add { sender, receiver } => {
                patches.add(receiver, sender, out[&sender].clone(), None);
            }
            Edge::Qkv { layer, head, qkv } => {
                let r = Receiver::Head(layer, head, qkv);
                let d = (&resid[layer] - &clean.resid[layer]).unwrap();
                patches.add_delta(r, d).unwrap();
            }
        }
        let run = eval::run(
            &m,
            &tokens,
            &patches,
            RunOptions {
                logits: LogitsAt::Rows(ends.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        let v = metric::mean(
            &Metric::LogitDiff
                .per_example(run.logits.as_ref().unwrap(), &ds, None, None)
                .unwrap(),
        );
        let effect = v - clean_metric;
        let score = s.edges[i];
        assert!(
            (effect - score).abs() < 1e-2 * score.abs() + 1e-11,
            "{e}: effect {effect:e} vs EAP {score:e}"
        );
        let per_pos: f64 = s.per_position.as_ref().unwrap()[i * p..(i + 1) * p]
            .iter()
            .sum();
        assert!((per_pos - score).abs() < 1e-12);
    }
    // Without the q/k/v split the addition edges keep their scores.
    let opts2 = Options {
        graph: GraphOptions { split_qkv: false },
        per_position: false,
        ..opts
    };
    let s2 = attribute(&inputs, &opts2, &mut |_, _| {}).unwrap();
    for (i, e) in s2.graph.edges().iter().enumerate() {
        let j = s.graph.id(e).unwrap();
        assert_eq!(s2.edges[i], s.edges[j]);
    }
    // AtP: a node's score is the sum of its outgoing edges' scores; EAP-IG with one point is EAP.
    let atp = attribute(
        &inputs,
        &Options {
            method: Method::Atp,
            ..opts2
        },
        &mut |_, _| {},
    )
    .unwrap();
    let a00 = atp
        .nodes
        .iter()
        .find(|(n, _)| *n == Node::Head(0, 0))
        .unwrap()
        .1;
    let sum: f64 = s2
        .graph
        .edges()
        .iter()
        .zip(&s2.edges)
        .filter(|(e, _)| {
            matches!(
                e,
                Edge::Add {
                    sender: Node::Head(0, 0),
                    ..
                }
            )
        })
        .map(|(_, v)| v)
        .sum();
    assert!((a00 - sum).abs() < 1e-12);
    let ig1 = attribute(
        &inputs,
        &Options {
            method: Method::EapIg,
            ..opts2
        },
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(ig1.edges, s2.edges);
    let _ = Qkv::Q;
}

/// Integrated gradients move one activation along a line: at α = 0 the run is the one where
/// that activation carries its ablated value (checked against edge patches of every edge out of
/// layer 1's heads, and against the corrupted run for the embedding).
#[test]
fn interpolation_points_are_the_ablated_runs() {
    use circuitscope::attribution::gradients::Interpolation;
    use circuitscope::eval::{HookName, Site};
    let m = model();
    let ds = dataset(&m);
    let tokens = m.tokens_tensor(&rows(1, 3, 6, m.cfg.d_vocab)).unwrap();
    let corrupted = m.tokens_tensor(&rows(2, 3, 6, m.cfg.d_vocab)).unwrap();
    let ends = ds.end_positions();
    let ablated = circuitscope::acdc::ablation::ablate(
        &m,
        &circuitscope::acdc::Ablation::Corrupted,
        &tokens,
        Some(&corrupted),
        &[],
        &[],
    )
    .unwrap();
    let obj = GradMetric::new(
        Metric::LogitDiff,
        &ds,
        m.cfg.d_vocab,
        None,
        DType::F64,
        m.device(),
    )
    .unwrap();
    let metric_of = |patches: &Patches, t: &Tensor| {
        let run = eval::run(
            &m,
            t,
            patches,
            RunOptions {
                logits: LogitsAt::Rows(ends.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        metric::mean(
            &Metric::LogitDiff
                .per_example(run.logits.as_ref().unwrap(), &ds, None, None)
                .unwrap(),
        )
    };
    let heads: Vec<Tensor> = (0..m.cfg.n_heads)
        .map(|h| ablated.out[&Node::Head(1, h)].clone())
        .collect();
    let point = Interpolation {
        name: HookName::Block(1, Site::Result),
        base: Tensor::stack(&heads, 2).unwrap(),
        alpha: 0.0,
    };
    let g = receiver_grads(&m, &tokens, &ends, &obj, None, Some(&point)).unwrap();
    let mut patches = Patches::new();
    for r in receivers_reverse(&m.cfg) {
        for h in 0..m.cfg.n_heads {
            let u = Node::Head(1, h);
            if u.feeds(&r, &m.cfg) {
                patches.add(r, u, ablated.out[&u].clone(), None);
            }
        }
    }
    let want = metric_of(&patches, &tokens);
    assert!((g.metric - want).abs() < 1e-10, "{} vs {want}", g.metric);
    let point = Interpolation {
        name: HookName::Block(0, Site::ResidPre),
        base: ablated.out[&Node::Embed].clone(),
        alpha: 0.0,
    };
    let g = receiver_grads(&m, &tokens, &ends, &obj, None, Some(&point)).unwrap();
    let want = metric_of(&Patches::new(), &corrupted);
    assert!((g.metric - want).abs() < 1e-10, "{} vs {want}", g.metric);
}
