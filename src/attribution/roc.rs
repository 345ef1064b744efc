//! ROC AUC of an edge ranking against a known circuit: the probability that a true edge has a
//! larger |score| than a false one (ties count one half), which is the area under the ROC
//! curve traced by lowering a threshold on |score| — comparable with ACDC's ROC over τ
//! ([`crate::acdc::roc`]).
//!
//! Scores at the level of rounding noise (|score| at most `noise` times the largest |score|)
//! are ties at zero: an edge the metric does not see scores 0 or ±1e−20 depending on the order
//! of a sum, and ranking those by their noise would move the AUC (by 0.025 on toy-induction's
//! EAP) when nothing but the summation order changes. [`noise_floor`] gives the floor for a
//! dtype.

use std::collections::BTreeSet;

/// The relative noise floor of scores computed in `dtype`: 1e−12 in f64, 1e−6 otherwise
/// (a few thousand ulps of the largest score in f64, eight in f32).
pub fn noise_floor(dtype: candle_core::DType) -> f64 {
    if dtype == candle_core::DType::F64 {
        1e-12
    } else {
        1e-6
    }
}

/// Area under the ROC curve of |scores| against `truth` (edge numbers), scores within `noise`
/// of zero relative to the largest |score| counting as zero; `None` when the truth is empty or
/// holds every edge.
pub fn ranking_auc(scores: &[f64], truth: &BTreeSet<usize>, noise: f64) -> Option<f64> {
    let pos = truth.len();
    let neg = scores.len().saturating_sub(pos);
    if pos == 0 || neg == 0 {
        return None;
    }
    let largest = scores.iter().fold(0f64, |m, s| m.max(s.abs()));
    let scores: Vec<f64> = scores
        .iter()
        .map(|s| if s.abs() <= noise * largest { 0.0 } else { *s })
        .collect();
    // Rank-sum (Mann–Whitney U) with average ranks for ties.
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].abs().total_cmp(&scores[b].abs()));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]].abs() == scores[idx[i]].abs() {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if truth.contains(&k) {
                rank_sum += avg;
            }
        }
        i = j + 1;
    }
    let u = rank_sum - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos * neg) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_reversed_and_tied() {
        let truth: BTreeSet<usize> = [0, 1].into_iter().collect();
        assert_eq!(ranking_auc(&[5.0, -4.0, 1.0, 0.5], &truth, 0.0), Some(1.0));
        assert_eq!(ranking_auc(&[0.1, 0.2, 1.0, -3.0], &truth, 0.0), Some(0.0));
        assert_eq!(ranking_auc(&[0.0; 4], &truth, 0.0), Some(0.5));
        // One true edge above both false ones, one between: (2 + 1) / 4.
        assert_eq!(ranking_auc(&[3.0, 1.0, 2.0, 0.5], &truth, 0.0), Some(0.75));
        assert_eq!(ranking_auc(&[1.0], &BTreeSet::new(), 0.0), None);
    }

    #[test]
    fn noise_level_scores_tie() {
        // Edge 1 (true) at 1e-20, edges 2 and 3 (false) at 0 and -3e-20: rounding noise of
        // the largest score 1.0, so all three tie; edge 0 (true) is first.
        let truth: BTreeSet<usize> = [0, 1].into_iter().collect();
        let s = [1.0, 1e-20, 0.0, -3e-20];
        assert_eq!(ranking_auc(&s, &truth, 1e-12), Some(0.75));
        // Without the floor the noise decides: edge 1 ranks between 2 and 3.
        assert_eq!(ranking_auc(&s, &truth, 0.0), Some(0.75));
        let s2 = [1.0, 1e-20, 2e-20, -3e-20];
        assert_eq!(ranking_auc(&s2, &truth, 1e-12), Some(0.75));
        assert_eq!(ranking_auc(&s2, &truth, 0.0), Some(0.5));
        assert_eq!(noise_floor(candle_core::DType::F32), 1e-6);
    }
}
