//! Path patching checked against cases computed by hand on the gpt2-tiny fixture.

mod analysis_common;

use analysis_common::load;
use candle_core::{DType, Tensor};
use circuitscope::analysis::dla::at_positions;
use circuitscope::analysis::{PathPatcher, Position, Setup};
use circuitscope::eval::{self, NameFilter, Patches, RunOptions};
use circuitscope::graph::{Node, Qkv, Receiver};
use circuitscope::metric::Metric;
use circuitscope::model::Model;

fn logit_diff(logits: &Tensor, answers: &[(u32, u32)]) -> f64 {
    let rows = logits
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let s: f64 = rows
        .iter()
        .zip(answers)
        .map(|(r, &(a, w))| r[a as usize] - r[w as usize])
        .sum();
    s / answers.len() as f64
}

/// The direct effect of `u` computed by hand: the clean final residual at the last position
/// plus (corrupted − clean) output of `u`, through the final LayerNorm and the unembedding.
fn direct_effect_by_hand(model: &Model, s: &Setup, u: Node, answers: &[(u32, u32)]) -> f64 {
    let run = |t: &Tensor| {
        eval::run(
            model,
            t,
            &Patches::new(),
            RunOptions {
                cache: NameFilter::none(),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let clean = run(&s.clean_tokens);
    let corr = run(&s.corrupted_tokens);
    let n = model.cfg.n_layers;
    let resid = ((&clean.resid[n] + corr.sender_out(model, u).unwrap()).unwrap()
        - clean.sender_out(model, u).unwrap())
    .unwrap();
    let last = at_positions(&resid, &s.ends).unwrap();
    let (logits, _) = model.unembed(&last).unwrap();
    logit_diff(&logits, answers)
}

#[test]
fn receiver_logits_is_the_direct_effect() {
    let f = load(DType::F64);
    let s = f.setup();
    let pp = PathPatcher::new(&s).unwrap();
    let mut moved = 0;
    for u in [
        Node::Embed,
        Node::Head(0, 1),
        Node::Head(1, 2),
        Node::Mlp(0),
        Node::Head(2, 3),
        Node::Mlp(2),
    ] {
        let got = pp.run(&[u], &[Receiver::Logits], None).unwrap();
        let want = direct_effect_by_hand(&f.model, &s, u, &f.answers);
        assert!(
            (got.metric - want).abs() < 1e-9,
            "{u}: {} vs {want}",
            got.metric
        );
        assert_eq!(got.edges, 1);
        if got.change.abs() > 1e-4 {
            moved += 1;
        }
    }
    assert!(moved >= 3, "the direct effects should not all vanish");
}

#[test]
fn a_cut_path_changes_nothing() {
    let f = load(DType::F64);
    // a0.h1 → a1.h2 (q, k and v): with the original model this moves the metric ...
    let receivers: Vec<Receiver> = Qkv::ALL.iter().map(|&x| Receiver::Head(1, 2, x)).collect();
    let s = f.setup();
    let pp = PathPatcher::new(&s).unwrap();
    let r = pp
        .run(
            &[Node::Head(0, 1), Node::Mlp(0), Node::Embed],
            &receivers,
            None,
        )
        .unwrap();
    assert!(
        r.change.abs() > 1e-6,
        "the path should matter in the intact model: {}",
        r.change
    );
    // ... but once a1.h2's output is cut (W_O = 0) the path leads nowhere.
    let mut cut = f.model.clone();
    let w_o = &cut.w.blocks[1].w_o;
    let mut heads: Vec<Tensor> = (0..cut.cfg.n_heads).map(|h| w_o.get(h).unwrap()).collect();
    heads[2] = heads[2].zeros_like().unwrap();
    cut.w.blocks[1].w_o = Tensor::stack(&heads, 0).unwrap();
    let flat = cut.w.blocks[1].w_o.dims().to_vec();
    cut.w.blocks[1].w_o_flat = cut.w.blocks[1]
        .w_o
        .reshape((flat[0] * flat[1], flat[2]))
        .unwrap();
    let s2 =
        Setup::from_tokens(&cut, &f.clean, &f.corrupted, &f.answers, Metric::LogitDiff).unwrap();
    let pp2 = PathPatcher::new(&s2).unwrap();
    let r2 = pp2
        .run(
            &[Node::Head(0, 1), Node::Mlp(0), Node::Embed],
            &receivers,
            None,
        )
        .unwrap();
    assert!(r2.edges > 0);
    assert_eq!(r2.metric, s2.clean_metric, "a cut path must change nothing");
    // a sender after the receiver has no path at all
    let r3 = pp.run(&[Node::Head(2, 0)], &receivers, None).unwrap();
    assert_eq!(r3.edges, 0);
    assert_eq!(r3.metric, s.clean_metric);
}

#[test]
fn every_sender_into_every_receiver_is_the_corrupted_run() {
    let f = load(DType::F64);
    let s = f.setup();
    let cfg = &f.model.cfg;
    let pp = PathPatcher::new(&s).unwrap();
    let mut senders = vec![Node::Embed];
    let mut receivers = vec![Receiver::Logits];
    for l in 0..cfg.n_layers {
        for h in 0..cfg.n_heads {
            senders.push(Node::Head(l, h));
            for x in Qkv::ALL {
                receivers.push(Receiver::Head(l, h, x));
            }
        }
        senders.push(Node::Mlp(l));
        receivers.push(Receiver::Mlp(l));
    }
    let r = pp.run(&senders, &receivers, None).unwrap();
    assert!(
        (r.metric - s.corrupted_metric).abs() < 1e-9,
        "{} vs {}",
        r.metric,
        s.corrupted_metric
    );
    assert!((r.normalized + 1.0).abs() < 1e-9);
}

#[test]
fn positions_where_the_inputs_agree_change_nothing() {
    let f = load(DType::F64);
    let s = f.setup();
    let pp = PathPatcher::new(&s).unwrap();
    let receivers = [
        Receiver::Logits,
        Receiver::Mlp(0),
        Receiver::Head(1, 0, Qkv::V),
        Receiver::Head(2, 3, Qkv::K),
    ];
    // position 0 (BOS) is never corrupted: the embedding there is the same in both runs
    let at0 = s.position_mask(&[Position::Index(0)]).unwrap();
    let r = pp.run(&[Node::Embed], &receivers, Some(&at0)).unwrap();
    assert!((r.metric - s.clean_metric).abs() < 1e-12);
    // the corrupted positions do change it
    let all = pp.run(&[Node::Embed], &receivers, None).unwrap();
    assert!(all.change.abs() > 1e-4);
}

#[test]
fn iterative_path_patching_matches_single_runs() {
    let f = load(DType::F64);
    let s = f.setup();
    let cfg = &f.model.cfg;
    let pp = PathPatcher::new(&s).unwrap();
    let sweep = pp.iterative(&[Receiver::Logits], None, false).unwrap();
    assert_eq!(sweep.shape(), vec![cfg.n_layers, cfg.n_heads + 1]);
    for l in 0..cfg.n_layers {
        for h in 0..=cfg.n_heads {
            let u = if h == cfg.n_heads {
                Node::Mlp(l)
            } else {
                Node::Head(l, h)
            };
            let want = direct_effect_by_hand(&f.model, &s, u, &f.answers) - s.clean_metric;
            assert!((sweep.get(&[l, h]) - want).abs() < 1e-9, "{u}");
        }
    }
    // receivers in layer 1: senders of layers 1 and 2 cannot reach them
    let recv = [Receiver::Head(1, 0, Qkv::Q), Receiver::Head(1, 3, Qkv::V)];
    let sweep = pp.iterative(&recv, None, true).unwrap();
    for h in 0..=cfg.n_heads {
        assert!(sweep.get(&[0, h]).is_finite());
        assert!(sweep.get(&[1, h]).is_nan() && sweep.get(&[2, h]).is_nan());
    }
    let r = pp.run(&[Node::Head(0, 2)], &recv, None).unwrap();
    assert_eq!(sweep.get(&[0, 2]), r.normalized);
}

#[test]
fn through_mlps_matches_arenas_path_patching() {
    // scripts/make_analysis_fixtures.py ran ARENA's get_path_patch_head_to_final_resid_post
    // and get_path_patch_head_to_heads with TransformerLens in float64.
    use circuitscope::analysis::PathMode;
    let f = load(DType::F64);
    let s = f.setup();
    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(analysis_common::fixture_dir().join("analysis.json")).unwrap(),
    )
    .unwrap();
    let r = &refs["path_through_mlps"];
    let pp = PathPatcher::new(&s)
        .unwrap()
        .with_mode(PathMode::ThroughMlps);
    let close = |got: f64, want: &serde_json::Value, what: String| {
        let w = want.as_f64().unwrap();
        assert!((got - w).abs() < 1e-9, "{what}: {got} vs {w}");
    };
    for l in 0..3 {
        for h in 0..4 {
            let got = pp
                .run(&[Node::Head(l, h)], &[Receiver::Logits], None)
                .unwrap();
            close(
                got.metric,
                &r["to_logits"][l][h],
                format!("a{l}.h{h} → logits"),
            );
        }
    }
    let to_q = [Receiver::Head(2, 3, Qkv::Q), Receiver::Head(2, 0, Qkv::Q)];
    for l in 0..2 {
        for h in 0..4 {
            let got = pp.run(&[Node::Head(l, h)], &to_q, None).unwrap();
            close(
                got.metric,
                &r["to_q"]["values"][l][h],
                format!("a{l}.h{h} → q"),
            );
        }
    }
    let to_v = [Receiver::Head(1, 1, Qkv::V)];
    for h in 0..4 {
        let got = pp.run(&[Node::Head(0, h)], &to_v, None).unwrap();
        close(
            got.metric,
            &r["to_v"]["values"][0][h],
            format!("a0.h{h} → a1.h1.v"),
        );
    }
    // the direct effect leaves out the paths through the MLPs (and through other heads)
    let direct = PathPatcher::new(&s).unwrap();
    let a = direct
        .run(&[Node::Head(0, 1)], &[Receiver::Logits], None)
        .unwrap();
    let b = pp
        .run(&[Node::Head(0, 1)], &[Receiver::Logits], None)
        .unwrap();
    assert!((a.metric - b.metric).abs() > 1e-6);
}
