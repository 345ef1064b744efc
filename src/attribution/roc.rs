//! ROC AUC of an edge ranking against a known circuit: the probability that a true edge has a
//! larger |score| than a false one (ties count one half), which is the area under the ROC
//! curve traced by lowering a threshold on |score| — comparable with ACDC's ROC over τ
//! ([`crate::acdc::roc`]).

use std::collections::BTreeSet;

/// Area under the ROC curve of |scores| against `truth` (edge numbers); `None` when the truth
/// is empty or holds every edge.
pub fn ranking_auc(scores: &[f64], truth: &BTreeSet<usize>) -> Option<f64> {
    let pos = truth.len();
    let neg = scores.len().saturating_sub(pos);
    if pos == 0 || neg == 0 {
        return None;
    }
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
        assert_eq!(ranking_auc(&[5.0, -4.0, 1.0, 0.5], &truth), Some(1.0));
        assert_eq!(ranking_auc(&[0.1, 0.2, 1.0, -3.0], &truth), Some(0.0));
        assert_eq!(ranking_auc(&[0.0; 4], &truth), Some(0.5));
        // One true edge above both false ones, one between: (2 + 1) / 4.
        assert_eq!(ranking_auc(&[3.0, 1.0, 2.0, 0.5], &truth), Some(0.75));
        assert_eq!(ranking_auc(&[1.0], &BTreeSet::new()), None);
    }
}
