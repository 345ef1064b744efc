//! The fast scrubbing engine against brute-force treeification: every input path of a tiny
//! model is enumerated explicitly (per row and position), the interpretation node owning it
//! is found by matching the whole path against every matcher, and the model is evaluated in
//! plain f64 arithmetic along the resulting tree.

mod common;

use candle_core::DType;
use circuitscope::graph::{Node, Qkv, Receiver};
use circuitscope::model::{Model, ModelConfig};
use circuitscope::scrub::hypothesis::Hypothesis;
use circuitscope::scrub::sampler::Samples;
use circuitscope::scrub::{self, RunSettings};
use std::path::Path;

/// Plain f64 weights.
struct W {
    cfg: ModelConfig,
    w_e: Vec<Vec<f64>>,
    w_pos: Vec<Vec<f64>>,
    ln1: Vec<(Vec<f64>, Vec<f64>)>,
    ln2: Vec<(Vec<f64>, Vec<f64>)>,
    lnf: (Vec<f64>, Vec<f64>),
    wq: Vec<Vec<Vec<Vec<f64>>>>, // [l][h][d][dh]
    wk: Vec<Vec<Vec<Vec<f64>>>>,
    wv: Vec<Vec<Vec<Vec<f64>>>>,
    bq: Vec<Vec<Vec<f64>>>,
    bk: Vec<Vec<Vec<f64>>>,
    bv: Vec<Vec<Vec<f64>>>,
    wo: Vec<Vec<Vec<Vec<f64>>>>, // [l][h][dh][d]
    bo: Vec<Vec<f64>>,
    w_in: Vec<Vec<Vec<f64>>>,
    b_in: Vec<Vec<f64>>,
    w_out: Vec<Vec<Vec<f64>>>,
    b_out: Vec<Vec<f64>>,
    w_u: Vec<Vec<f64>>,
}

fn v1(t: &candle_core::Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}
fn v2(t: &candle_core::Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2().unwrap()
}

impl W {
    fn new(m: &Model) -> W {
        let b = &m.w.blocks;
        let per_head = |f: &dyn Fn(&circuitscope::model::BlockWeights) -> candle_core::Tensor| {
            b.iter()
                .map(|blk| {
                    let w = f(blk);
                    (0..m.cfg.n_heads).map(|h| v2(&w.get(h).unwrap())).collect()
                })
                .collect()
        };
        W {
            cfg: m.cfg.clone(),
            w_e: v2(&m.w.w_e),
            w_pos: v2(m.w.w_pos.as_ref().unwrap()),
            ln1: b.iter().map(|x| (v1(&x.ln1_w), v1(&x.ln1_b))).collect(),
            ln2: b.iter().map(|x| (v1(&x.ln2_w), v1(&x.ln2_b))).collect(),
            lnf: (v1(&m.w.ln_f_w), v1(&m.w.ln_f_b)),
            wq: per_head(&|x| x.w_q().unwrap()),
            wk: per_head(&|x| x.w_k().unwrap()),
            wv: per_head(&|x| x.w_v().unwrap()),
            bq: b.iter().map(|x| v2(&x.b_q)).collect(),
            bk: b.iter().map(|x| v2(&x.b_k)).collect(),
            bv: b.iter().map(|x| v2(&x.b_v)).collect(),
            wo: per_head(&|x| x.w_o.clone()),
            bo: b.iter().map(|x| v1(&x.b_o)).collect(),
            w_in: b.iter().map(|x| v2(x.w_in.as_ref().unwrap())).collect(),
            b_in: b.iter().map(|x| v1(x.b_in.as_ref().unwrap())).collect(),
            w_out: b.iter().map(|x| v2(x.w_out.as_ref().unwrap())).collect(),
            b_out: b.iter().map(|x| v1(x.b_out.as_ref().unwrap())).collect(),
            w_u: v2(&m.w.w_u),
        }
    }
}

fn ln(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let s = (var + 1e-5).sqrt();
    x.iter()
        .zip(w)
        .zip(b)
        .map(|((v, w), b)| (v - mean) / s * w + b)
        .collect()
}
fn vecmat(x: &[f64], m: &[Vec<f64>]) -> Vec<f64> {
    let mut out = vec![0.0; m[0].len()];
    for (xi, row) in x.iter().zip(m) {
        for (o, r) in out.iter_mut().zip(row) {
            *o += xi * r;
        }
    }
    out
}
fn add(a: &mut [f64], b: &[f64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
fn gelu_new(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh())
}

/// One edge of a path: the receiver it enters, the sender it leaves, the position.
#[derive(Clone, Copy)]
struct Edge {
    receiver: Receiver,
    sender: Node,
    pos: usize,
}

struct Brute<'a> {
    w: W,
    h: &'a Hypothesis,
    samples: &'a Samples,
    tokens: Vec<Vec<u32>>, // base dataset, padded
}

impl Brute<'_> {
    /// Prefix lengths at which node `n` matches `path` (for reference row `row`).
    fn matches(&self, n: usize, path: &[Edge], row: usize) -> Vec<usize> {
        let node = &self.h.nodes[n];
        let Some(parent) = node.parent else {
            return vec![0];
        };
        let m = node.matcher.as_ref().unwrap();
        let mut out = Vec::new();
        for k0 in self.matches(parent, path, row) {
            if k0 >= path.len() {
                continue;
            }
            if let Some(via) = &m.via {
                match path[k0].receiver {
                    Receiver::Head(_, _, x) if via.contains(&x) => {}
                    _ => continue,
                }
            }
            if !m.any {
                let e = path[k0];
                if m.to.contains(&e.sender) && m.at_ok(row, e.pos) {
                    out.push(k0 + 1);
                }
            } else {
                for (j, e) in path.iter().enumerate().skip(k0) {
                    if m.to.contains(&e.sender) {
                        if m.at_ok(row, e.pos) {
                            out.push(j + 1);
                        }
                        if m.stop {
                            break;
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The base-dataset row whose tokens this path sees, for reference row `row`.
    fn data_row(&self, path: &[Edge], row: usize) -> usize {
        let mut owner = 0;
        let mut seen: Vec<(usize, usize)> = Vec::new();
        for n in 0..self.h.nodes.len() {
            for k in self.matches(n, path, row) {
                assert!(
                    !seen.iter().any(|&(kk, nn)| kk == k && nn != n),
                    "two nodes match one prefix"
                );
                seen.push((k, n));
                owner = owner.max(n);
            }
        }
        let leaf = self.h.nodes[owner].is_leaf();
        self.samples.data_of(owner, leaf)[row]
    }

    fn input(&self, r: Receiver, p: usize, path: &mut Vec<Edge>, row: usize) -> Vec<f64> {
        let cfg = &self.w.cfg;
        let mut x = vec![0.0; cfg.d_model];
        let rl = r.layer(cfg.n_layers);
        for (l, bo) in self.w.bo.iter().enumerate() {
            let before = l < rl || (matches!(r, Receiver::Mlp(m) if m == l));
            if before {
                add(&mut x, bo);
            }
        }
        for u in circuitscope::graph::edges::senders(&r, cfg) {
            path.push(Edge {
                receiver: r,
                sender: u,
                pos: p,
            });
            let v = self.value(u, p, path, row);
            path.pop();
            add(&mut x, &v);
        }
        x
    }

    fn value(&self, u: Node, p: usize, path: &mut Vec<Edge>, row: usize) -> Vec<f64> {
        let w = &self.w;
        match u {
            Node::Embed => {
                let r = self.data_row(path, row);
                let t = self.tokens[r][p] as usize;
                let mut e = w.w_e[t].clone();
                add(&mut e, &w.w_pos[p]);
                e
            }
            Node::Mlp(l) => {
                let x = self.input(Receiver::Mlp(l), p, path, row);
                let xn = ln(&x, &w.ln2[l].0, &w.ln2[l].1);
                let mut pre = vecmat(&xn, &w.w_in[l]);
                add(&mut pre, &w.b_in[l]);
                let post: Vec<f64> = pre.iter().map(|&v| gelu_new(v)).collect();
                let mut o = vecmat(&post, &w.w_out[l]);
                add(&mut o, &w.b_out[l]);
                o
            }
            Node::Head(l, h) => {
                let proj = |x: &[f64], wm: &[Vec<f64>], b: &[f64]| {
                    let mut y = vecmat(&ln(x, &w.ln1[l].0, &w.ln1[l].1), wm);
                    add(&mut y, b);
                    y
                };
                let q = proj(
                    &self.input(Receiver::Head(l, h, Qkv::Q), p, path, row),
                    &w.wq[l][h],
                    &w.bq[l][h],
                );
                let dh = q.len() as f64;
                let mut scores = Vec::new();
                let mut vals = Vec::new();
                for pk in 0..=p {
                    let k = proj(
                        &self.input(Receiver::Head(l, h, Qkv::K), pk, path, row),
                        &w.wk[l][h],
                        &w.bk[l][h],
                    );
                    let v = proj(
                        &self.input(Receiver::Head(l, h, Qkv::V), pk, path, row),
                        &w.wv[l][h],
                        &w.bv[l][h],
                    );
                    scores.push(q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>() / dh.sqrt());
                    vals.push(v);
                }
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z_sum: f64 = e.iter().sum();
                let mut z = vec![0.0; vals[0].len()];
                for (a, v) in e.iter().zip(&vals) {
                    for (zi, vi) in z.iter_mut().zip(v) {
                        *zi += a / z_sum * vi;
                    }
                }
                vecmat(&z, &w.wo[l][h])
            }
        }
    }

    fn logits(&self, row: usize, end: usize) -> Vec<f64> {
        let x = self.input(Receiver::Logits, end, &mut Vec::new(), row);
        vecmat(&ln(&x, &self.w.lnf.0, &self.w.lnf.1), &self.w.w_u)
    }
}

fn setup(dir: &Path, layers: usize, heads: usize) {
    common::save_random_gpt2(&dir.join("model"), &common::tiny_config(layers, heads), 7);
    // Rows of different lengths (so END differs per row) with features for Same samplers.
    let rows = [
        ("w1 w2 w3 w4", "w5", "w6", "a", 1),
        ("w2 w2 w7", "w1", "w3", "b", 1),
        ("w3 w8 w1 w1", "w2", "w4", "a", 2),
        ("w4 w1 w6", "w3", "w9", "b", 0),
        ("w5 w5 w5 w2", "w4", "w8", "a", 2),
    ];
    let mut jsonl = String::new();
    for (prompt, ans, wrong, f, mid) in rows {
        jsonl.push_str(
            &serde_json::json!({
                "prompt": prompt, "answer": ans, "wrong": wrong,
                "features": {"f": f}, "positions": {"MID": mid}
            })
            .to_string(),
        );
        jsonl.push('\n');
    }
    std::fs::write(dir.join("data.jsonl"), jsonl).unwrap();
}

fn write_hypothesis(dir: &Path, name: &str, tree: &str) -> std::path::PathBuf {
    let text = format!(
        "Hypothesis(name: \"{name}\", model: \"{}\", task: Jsonl(path: \"{}\"), metric: LogitDiff, seed: 3,\n groups: {{ \"G\": [\"a0.h0\", \"m0\"] }},\n root: {tree})",
        dir.join("model").display(),
        dir.join("data.jsonl").display()
    );
    let p = dir.join(format!("{name}.ron"));
    std::fs::write(&p, text).unwrap();
    p
}

fn check(layers: usize, heads: usize, name: &str, tree: &str) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), layers, heads);
    let path = write_hypothesis(tmp.path(), name, tree);
    let prepared = scrub::prepare(&path, None).unwrap();
    let model = Model::load(&prepared.model_dir, DType::F64).unwrap();
    let (_, samples) = scrub::run(
        &prepared,
        &model,
        &RunSettings {
            seeds: 1,
            replay: None,
        },
    )
    .unwrap();
    let s = &samples.seeds[0];
    // Engine logits at END for each reference row.
    let ds = &prepared.dataset;
    let (flat, n, pos) = ds.padded_tokens(0);
    let tokens: Vec<Vec<u32>> = (0..n)
        .map(|r| flat[r * pos..(r + 1) * pos].to_vec())
        .collect();
    let brute = Brute {
        w: W::new(&model),
        h: &prepared.hypothesis,
        samples: s,
        tokens,
    };
    // Run the engine again to get the logits tensor.
    let ends: Vec<usize> = s.reference.iter().map(|&r| ds.examples[r].end()).collect();
    let tokens_of = |rows: &[usize]| -> circuitscope::Result<candle_core::Tensor> {
        let v: Vec<u32> = rows
            .iter()
            .flat_map(|&r| flat[r * pos..(r + 1) * pos].to_vec())
            .collect();
        Ok(candle_core::Tensor::from_vec(
            v,
            (rows.len(), pos),
            &candle_core::Device::Cpu,
        )?)
    };
    let ends_of = |rows: &[usize]| {
        rows.iter()
            .map(|&r| ds.examples[r].end())
            .collect::<Vec<_>>()
    };
    let mut pure = scrub::treeify::PureRuns::new(&model, &tokens_of, &ends_of, ends.clone());
    let h = &prepared.hypothesis;
    let data_of = |st: &scrub::path_state::PathState| {
        s.data_of(st.owner, h.nodes[st.owner].is_leaf()).to_vec()
    };
    let (logits, _) =
        scrub::treeify::evaluate(&model, h, &prepared.plan, &data_of, &mut pure, &ends).unwrap();
    let logits: Vec<Vec<f64>> = logits.to_vec2().unwrap();
    let mut worst: f64 = 0.0;
    let mut spread: f64 = 0.0;
    for row in 0..n {
        let want = brute.logits(row, ends[row]);
        for (a, b) in logits[row].iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
        // How far the scrubbed logits are from the clean ones (so the test is not vacuous).
        let clean = pure
            .get(&s.reference)
            .unwrap()
            .logits
            .clone()
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        for (a, b) in clean[row].iter().zip(&want) {
            spread = spread.max((a - b).abs());
        }
    }
    assert!(
        worst <= 1e-5,
        "{name}: engine and brute force differ by {worst}"
    );
    spread
}

#[test]
fn direct_paths_at_positions() {
    let spread = check(
        2,
        2,
        "direct",
        r#"Node(name: "out", other_inputs: Uncond, children: [
            Node(name: "A", matcher: Direct(to: ["a1.h0", "m0"], at: ["END"]), sampler: Exact),
            Node(name: "B", matcher: Direct(to: ["a0.h1"]), sampler: Uncond),
        ])"#,
    );
    assert!(spread > 1e-3, "scrubbing changed nothing: {spread}");
}

#[test]
fn qkv_restrictions_and_same_samplers() {
    let spread = check(
        2,
        2,
        "qkv",
        r#"Node(name: "out", other_inputs: Uncond, children: [
            Node(name: "A", matcher: Direct(to: ["a1.h1"]), sampler: Exact, other_inputs: Same(["f"]), children: [
                Node(name: "AK", matcher: Direct(to: ["G"], via: [K], at: ["MID"]), sampler: Same(["f"])),
                Node(name: "AV", matcher: Direct(to: ["embed", "a0.h1"], via: [V, Q]), sampler: Exact),
            ]),
        ])"#,
    );
    assert!(spread > 1e-3, "scrubbing changed nothing: {spread}");
}

#[test]
fn nested_any_matchers() {
    let spread = check(
        2,
        2,
        "any",
        r#"Node(name: "out", other_inputs: Uncond, children: [
            Node(name: "A", matcher: Any(to: ["a0.h0"], stop: true), sampler: Exact, other_inputs: Uncond, children: [
                Node(name: "A1", matcher: Direct(to: ["embed"], via: [Q]), sampler: Exact),
            ]),
            Node(name: "B", matcher: Any(to: ["m1"]), sampler: Same(["f"]), other_inputs: Uncond, children: [
                Node(name: "B1", matcher: Any(to: ["a0.h1"], at: ["END"]), sampler: Exact),
            ]),
        ])"#,
    );
    assert!(spread > 1e-3, "scrubbing changed nothing: {spread}");
}

#[test]
fn three_layers_deep_tree() {
    check(
        3,
        1,
        "deep",
        r#"Node(name: "out", other_inputs: Uncond, children: [
            Node(name: "A", matcher: Direct(to: ["a2.h0"]), sampler: Exact, other_inputs: Uncond, children: [
                Node(name: "B", matcher: Direct(to: ["a1.h0", "m1"], via: [K, V]), sampler: Same(["f"]), other_inputs: Uncond, children: [
                    Node(name: "C", matcher: Any(to: ["embed"]), sampler: Exact),
                ]),
            ]),
        ])"#,
    );
}

#[test]
fn two_nodes_matching_one_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 2, 2);
    let path = write_hypothesis(
        tmp.path(),
        "clash",
        r#"Node(name: "out", other_inputs: Uncond, children: [
            Node(name: "A", matcher: Any(to: ["a0.h0"], stop: true), sampler: Exact, other_inputs: Uncond, children: [
                Node(name: "A1", matcher: Direct(to: ["embed"], via: [Q]), sampler: Exact),
            ]),
            Node(name: "B", matcher: Any(to: ["m1"]), sampler: Exact, other_inputs: Uncond, children: [
                Node(name: "B1", matcher: Any(to: ["embed"]), sampler: Exact),
            ]),
        ])"#,
    );
    let err = scrub::prepare(&path, None)
        .err()
        .expect("must be refused")
        .to_string();
    assert!(err.contains("clash.ron:"), "{err}");
    assert!(err.contains("both match"), "{err}");
}
