//! ROC curves of ACDC's edge decisions against a known circuit, over a sweep of τ.
//!
//! Each τ gives a set of kept edges; against the true edges it is one point (false-positive
//! rate, true-positive rate). As in the ACDC paper, the curve joins the points sorted by FPR,
//! from (0, 0) to (1, 1), and the area under it (trapezoids) is the ROC AUC.

use std::collections::BTreeSet;

/// One point of the curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    /// The threshold that produced it (NaN for the end points).
    pub tau: f64,
    /// False-positive rate.
    pub fpr: f64,
    /// True-positive rate.
    pub tpr: f64,
}

/// The (FPR, TPR) of a kept set against the truth, over `total` units.
pub fn rates(kept: &BTreeSet<usize>, truth: &BTreeSet<usize>, total: usize) -> (f64, f64) {
    let tp = kept.intersection(truth).count();
    let fp = kept.len() - tp;
    let pos = truth.len();
    let neg = total - pos;
    let tpr = if pos == 0 {
        1.0
    } else {
        tp as f64 / pos as f64
    };
    let fpr = if neg == 0 {
        0.0
    } else {
        fp as f64 / neg as f64
    };
    (fpr, tpr)
}

/// The curve through `(τ, kept set)` runs, with the end points added, sorted by (FPR, TPR).
pub fn curve(
    runs: &[(f64, BTreeSet<usize>)],
    truth: &BTreeSet<usize>,
    total: usize,
) -> Vec<RocPoint> {
    let mut pts: Vec<RocPoint> = runs
        .iter()
        .map(|(tau, kept)| {
            let (fpr, tpr) = rates(kept, truth, total);
            RocPoint {
                tau: *tau,
                fpr,
                tpr,
            }
        })
        .collect();
    pts.push(RocPoint {
        tau: f64::NAN,
        fpr: 0.0,
        tpr: 0.0,
    });
    pts.push(RocPoint {
        tau: f64::NAN,
        fpr: 1.0,
        tpr: 1.0,
    });
    pts.sort_by(|a, b| a.fpr.total_cmp(&b.fpr).then(a.tpr.total_cmp(&b.tpr)));
    pts
}

/// Area under a curve sorted by FPR (trapezoids).
pub fn auc(points: &[RocPoint]) -> f64 {
    points
        .windows(2)
        .map(|w| (w[1].fpr - w[0].fpr) * (w[0].tpr + w[1].tpr) / 2.0)
        .sum()
}

/// Run a whole sweep (in memory, no checkpoints) for each τ; the kept units of each.
pub fn kept_sets(
    prep: &super::Prepared,
    taus: &[f64],
) -> crate::Result<Vec<(f64, BTreeSet<usize>)>> {
    let mut ev = prep.evaluator()?;
    let mut out = Vec::with_capacity(taus.len());
    for &tau in taus {
        let mut opts = prep.sweep_options();
        opts.tau = tau;
        let sweep = super::Sweep::new(&prep.model.cfg, opts);
        let mut s = sweep.initial_state();
        while !sweep.done(&s) {
            sweep.step(&mut s, &mut ev, &mut |_| {})?;
        }
        let kept = (0..s.present.len()).filter(|&i| s.present[i]).collect();
        out.push((tau, kept));
    }
    Ok(out)
}

/// `n` thresholds spaced evenly in log10 between `10^lo` and `10^hi` (the ACDC paper's sweep
/// is `10^linspace(-6, 0, 31)`).
pub fn log_taus(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![10f64.powf(lo)];
    }
    (0..n)
        .map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / (n - 1) as f64))
        .collect()
}

/// Read a known circuit from JSON: a list of edges, or an object holding one under `key`
/// (e.g. `edges` or `edges_resample` in a toy's `CIRCUIT.json`). An edge is a string
/// `"a0.h1 -> a1.h2.q"`, a pair `["a0.h1", "a1.h2.q"]`, or an object with `sender` and
/// `receiver`. With the q/k/v split, an edge into a head's input implies that input's edge
/// into the head (`a1.h2.q -> a1.h2`), which the known circuit needs as well.
pub fn read_truth(
    path: &std::path::Path,
    key: &str,
    graph: &crate::graph::EdgeGraph,
    cfg: &crate::model::ModelConfig,
) -> crate::Result<BTreeSet<usize>> {
    use crate::error::Error;
    use crate::graph::{Edge, Receiver};
    let v: serde_json::Value = crate::json_file::read(path, |e| format!("not JSON ({e})"))?;
    let list = match &v {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Object(o) => {
            o.get(key)
                .and_then(|e| e.as_array())
                .cloned()
                .ok_or_else(|| {
                    let keys: Vec<&String> = o.keys().filter(|k| o[*k].is_array()).collect();
                    Error::input(format!(
                        "{}: no edge list under \"{key}\"; lists here: {keys:?}",
                        path.display()
                    ))
                })?
        }
        _ => {
            return Err(Error::input(format!(
                "{}: expected a list of edges",
                path.display()
            )))
        }
    };
    let mut out = BTreeSet::new();
    for (i, e) in list.iter().enumerate() {
        let s = match e {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(p) if p.len() == 2 => format!(
                "{} -> {}",
                p[0].as_str().unwrap_or_default(),
                p[1].as_str().unwrap_or_default()
            ),
            serde_json::Value::Object(o) => format!(
                "{} -> {}",
                o.get("sender").and_then(|x| x.as_str()).unwrap_or_default(),
                o.get("receiver")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        let edge = Edge::parse(&s, cfg)
            .map_err(|err| Error::input(format!("{}: edge {i} ({e}): {err}", path.display())))?;
        let id = graph.id(&edge).ok_or_else(|| {
            Error::input(format!(
                "{}: edge {i} ({edge}) is not in this graph (q/k/v split: {})",
                path.display(),
                graph.options.split_qkv
            ))
        })?;
        out.insert(id);
        if let Edge::Add {
            receiver: Receiver::Head(l, h, x),
            ..
        } = edge
        {
            if let Some(q) = graph.qkv_id(l, h, x) {
                out.insert(q);
            }
        }
    }
    Ok(out)
}

/// The list in a toy's `CIRCUIT.json` that matches an ablation: `edges_resample` for
/// resampling, `edges_second_copy` for the induction task's own corruption, `edges` otherwise.
pub fn truth_key(ablation: &super::Ablation) -> &'static str {
    match ablation {
        super::Ablation::Resample(_) => "edges_resample",
        super::Ablation::Corrupted => "edges_second_copy",
        _ => "edges",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_chance() {
        let truth: BTreeSet<usize> = [0, 1].into_iter().collect();
        // A run that keeps exactly the truth: the curve passes through (0, 1).
        let perfect = vec![(0.1, truth.clone())];
        assert_eq!(auc(&curve(&perfect, &truth, 4)), 1.0);
        // Keeping half the truth and half the rest: the diagonal.
        let half: BTreeSet<usize> = [0, 2].into_iter().collect();
        let c = curve(&[(0.1, half)], &truth, 4);
        assert!((auc(&c) - 0.5).abs() < 1e-12);
        // One true edge and nothing false: (0, 0.5) then (1, 1): 0.5 + 0.25 = 0.75.
        let one: BTreeSet<usize> = [1].into_iter().collect();
        assert!((auc(&curve(&[(1.0, one)], &truth, 4)) - 0.75).abs() < 1e-12);
    }
}
