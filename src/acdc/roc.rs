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
