//! ACDC on the shipped toy models.
//!
//! toy-induction is built by hand, with its true circuit in `models/toy-induction/CIRCUIT.json`:
//! ACDC must return exactly that circuit at the shipped config's threshold, and its edge
//! decisions over a sweep of thresholds must have a ROC AUC of 1.

use circuitscope::acdc::{self, roc, Config, Prepared};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn prepared(ablation: Option<acdc::Ablation>) -> Prepared {
    let mut c = Config::load(&root().join("configs/acdc/toy-induction.ron")).unwrap();
    c.model = root().join("models/toy-induction").display().to_string();
    if let Some(a) = ablation {
        c.ablation = a;
    }
    Prepared::new(&c).unwrap()
}

fn truth(prep: &Prepared) -> BTreeSet<usize> {
    let sweep = prep.sweep();
    let acdc::Units::Edges(g) = &sweep.units else {
        unreachable!()
    };
    roc::read_truth(
        &root().join("models/toy-induction/CIRCUIT.json"),
        roc::truth_key(&prep.config.ablation),
        g,
        &prep.model.cfg,
    )
    .unwrap()
}

#[test]
fn toy_induction_gives_exactly_its_true_circuit() {
    let prep = prepared(None);
    let t = truth(&prep);
    // 6 edges matter under resampling, plus the 4 head-input edges they imply.
    assert_eq!(t.len(), 10);
    let runs = roc::kept_sets(&prep, &[prep.config.tau]).unwrap();
    let sweep = prep.sweep();
    let name =
        |s: &BTreeSet<usize>| -> Vec<String> { s.iter().map(|&i| sweep.units.name(i)).collect() };
    assert_eq!(name(&runs[0].1), name(&t));
}

#[test]
fn toy_induction_roc_auc_is_one() {
    // Resampling (the shipped config) and the task's own corruption, each against the list of
    // CIRCUIT.json that belongs to it. (Zero ablation reaches AUC 0.999–1 depending on the grid:
    // removing a vector changes LayerNorm scales, so edges outside the circuit matter a little.)
    for ablation in [None, Some(acdc::Ablation::Corrupted)] {
        let prep = prepared(ablation);
        let t = truth(&prep);
        let taus = roc::log_taus(-6.0, 0.0, 5);
        let runs = roc::kept_sets(&prep, &taus).unwrap();
        let total = prep.sweep().units.len();
        let curve = roc::curve(&runs, &t, total);
        let auc = roc::auc(&curve);
        assert_eq!(auc, 1.0, "{:?}: AUC {auc}, {curve:?}", prep.config.ablation);
        // The known circuit itself is found at some threshold.
        assert!(
            runs.iter().any(|(_, k)| *k == t),
            "{:?}: never exactly the true circuit",
            prep.config.ablation
        );
    }
}
