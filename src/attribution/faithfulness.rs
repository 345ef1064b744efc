//! Faithfulness of any circuit, and curves over circuit size.
//!
//! A circuit is a set of kept edges of ACDC's graph; every other edge is ablated exactly as ACDC
//! ablates it (corrupted, resample, zero or mean: the same [`crate::acdc::Evaluator`], which
//! runs [`crate::eval::run`]). With `m(C)` the metric of circuit `C`, `m(M)` the full model's
//! (every edge kept) and `m(∅)` the metric with every edge ablated, the normalised faithfulness
//! is `f(C) = (m(C) − m(∅)) / (m(M) − m(∅))` (MIB; Mueller et al. 2025).
//!
//! A curve takes the top-k edges of a score file for several k, prunes dangling edges, and
//! evaluates each circuit; several circuits go through one batched pass. The x-axis is the
//! fraction of the graph's edges the pruned circuit keeps. The summaries are MIB's: CPR, the
//! area under `f` (higher is better), and CMD, the area between `f` and 1 (`∫|1 − f|`, 0 is
//! best), by trapezoids over x ∈ [0, 1] with the empty circuit (0, 0) and the full model
//! (1, 1) as end points.

use super::circuit::{self, Selection};
use crate::acdc::{Evaluator, Prepared};
use crate::error::{Error, Result};
use crate::graph::{EdgeGraph, GraphOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Circuits evaluated in one batched pass.
const BATCH: usize = 8;

/// Evaluates circuits against the full model and the empty circuit.
pub struct Faithfulness<'a> {
    ev: Evaluator<'a>,
    /// The graph.
    pub graph: EdgeGraph,
    sign: f64,
    /// `m(M)`: every edge kept (the clean model).
    pub full: f64,
    /// `m(∅)`: every edge ablated.
    pub empty: f64,
    cache: BTreeMap<Vec<bool>, f64>,
}

/// One point of a curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Edges asked for (top-k).
    pub requested: usize,
    /// Edges kept after pruning.
    pub edges: usize,
    /// `edges / total`.
    pub fraction: f64,
    /// The metric of the circuit.
    pub metric: f64,
    /// Normalised faithfulness.
    pub faithfulness: f64,
}

/// A faithfulness curve with its summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// What it shows (a method, a file).
    pub label: String,
    /// The points, by increasing k.
    pub points: Vec<CurvePoint>,
    /// Area under the curve (MIB's CPR; higher is better).
    pub cpr: f64,
    /// Area between the curve and 1 (MIB's CMD; 0 is best).
    pub cmd: f64,
}

impl<'a> Faithfulness<'a> {
    /// Set up: the clean run, the ablation and the two reference metrics.
    pub fn new(prep: &'a Prepared) -> Result<Self> {
        let mut ev = prep.evaluator()?;
        let graph = EdgeGraph::new(
            &prep.model.cfg,
            GraphOptions {
                split_qkv: prep.config.split_qkv,
            },
        );
        let sign = ev.objective().sign();
        let n = graph.len();
        let logits = ev.logits_many(&[vec![true; n], vec![false; n]])?;
        let rows = prep.dataset.len();
        let full = sign * ev.objective().value(&logits.narrow(0, 0, rows)?)?;
        let empty = sign * ev.objective().value(&logits.narrow(0, rows, rows)?)?;
        Ok(Faithfulness {
            ev,
            graph,
            sign,
            full,
            empty,
            cache: BTreeMap::new(),
        })
    }

    /// `f` of a metric value.
    pub fn normalise(&self, m: f64) -> f64 {
        (m - self.empty) / (self.full - self.empty)
    }

    /// The metric of each circuit (`present` over the graph's edges).
    pub fn metrics(&mut self, circuits: &[Vec<bool>]) -> Result<Vec<f64>> {
        let todo: Vec<Vec<bool>> = {
            let mut v: Vec<Vec<bool>> = circuits
                .iter()
                .filter(|c| !self.cache.contains_key(*c))
                .cloned()
                .collect();
            v.dedup();
            v
        };
        for c in &todo {
            if c.len() != self.graph.len() {
                return Err(Error::input(format!(
                    "internal: a circuit over {} edges for a graph of {}",
                    c.len(),
                    self.graph.len()
                )));
            }
        }
        let rows = self.ev.objective().dataset.len();
        for chunk in todo.chunks(BATCH) {
            let logits = self.ev.logits_many(chunk)?;
            for (j, c) in chunk.iter().enumerate() {
                let v = self.sign
                    * self
                        .ev
                        .objective()
                        .value(&logits.narrow(0, j * rows, rows)?)?;
                self.cache.insert(c.clone(), v);
            }
        }
        Ok(circuits.iter().map(|c| self.cache[c]).collect())
    }

    /// The curve of a score vector at these k (each ≤ the edge count).
    pub fn curve(&mut self, label: &str, scores: &[f64], ks: &[usize]) -> Result<Curve> {
        let total = self.graph.len();
        if scores.len() != total {
            return Err(Error::input(format!(
                "{label}: {} scores for a graph of {total} edges",
                scores.len()
            )));
        }
        let mut circuits = vec![];
        for &k in ks {
            circuits.push(circuit::circuit(&self.graph, scores, Selection::TopK(k))?);
        }
        let ms = self.metrics(&circuits)?;
        let points: Vec<CurvePoint> = ks
            .iter()
            .zip(&circuits)
            .zip(&ms)
            .map(|((&k, c), &m)| {
                let edges = c.iter().filter(|p| **p).count();
                CurvePoint {
                    requested: k,
                    edges,
                    fraction: edges as f64 / total as f64,
                    metric: m,
                    faithfulness: self.normalise(m),
                }
            })
            .collect();
        let (cpr, cmd) = areas(&points);
        Ok(Curve {
            label: label.to_string(),
            points,
            cpr,
            cmd,
        })
    }

    /// One circuit as a point.
    pub fn point(&mut self, present: &[bool]) -> Result<CurvePoint> {
        let m = self.metrics(&[present.to_vec()])?[0];
        let edges = present.iter().filter(|p| **p).count();
        Ok(CurvePoint {
            requested: edges,
            edges,
            fraction: edges as f64 / self.graph.len() as f64,
            metric: m,
            faithfulness: self.normalise(m),
        })
    }
}

/// CPR and CMD of points (trapezoids over the fraction of edges, with (0, 0) and (1, 1) added).
pub fn areas(points: &[CurvePoint]) -> (f64, f64) {
    let mut xy: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.fraction, p.faithfulness))
        .collect();
    xy.push((0.0, 0.0));
    xy.push((1.0, 1.0));
    xy.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut cpr = 0.0;
    let mut cmd = 0.0;
    for w in xy.windows(2) {
        let dx = w[1].0 - w[0].0;
        cpr += dx * (w[0].1 + w[1].1) / 2.0;
        cmd += dx * ((1.0 - w[0].1).abs() + (1.0 - w[1].1).abs()) / 2.0;
    }
    (cpr, cmd)
}

/// MIB's circuit sizes (fractions of all edges): 0.1 % … 100 %.
pub const MIB_FRACTIONS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

/// Edge counts for fractions of `total` edges (rounded up, at least 1, deduplicated).
pub fn ks_for_fractions(fractions: &[f64], total: usize) -> Result<Vec<usize>> {
    let mut ks = vec![];
    for &f in fractions {
        if !(f > 0.0 && f <= 1.0) {
            return Err(Error::input(format!(
                "--fractions: {f} is not in (0, 1]; give fractions of the edge count such as \
                 0.01,0.1,0.5"
            )));
        }
        ks.push(((f * total as f64).ceil() as usize).clamp(1, total));
    }
    ks.sort();
    ks.dedup();
    Ok(ks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(fraction: f64, faithfulness: f64) -> CurvePoint {
        CurvePoint {
            requested: 0,
            edges: 0,
            fraction,
            metric: 0.0,
            faithfulness,
        }
    }

    #[test]
    fn areas_of_simple_curves() {
        // A perfect circuit at 0 edges' worth: f = 1 from x = 0+ — here at x = 0.5.
        let (cpr, cmd) = areas(&[pt(0.5, 1.0)]);
        assert!((cpr - 0.75).abs() < 1e-12);
        assert!((cmd - 0.25).abs() < 1e-12);
        // The diagonal.
        let (cpr, cmd) = areas(&[]);
        assert!((cpr - 0.5).abs() < 1e-12 && (cmd - 0.5).abs() < 1e-12);
        // Overshoot counts in CMD but raises CPR.
        let (cpr, cmd) = areas(&[pt(0.5, 1.5)]);
        assert!((cpr - 1.0).abs() < 1e-12);
        assert!((cmd - 0.5).abs() < 1e-12);
    }

    #[test]
    fn fractions_to_ks() {
        assert_eq!(
            ks_for_fractions(&[0.001, 0.01, 0.5, 1.0], 305).unwrap(),
            vec![1, 4, 153, 305]
        );
        assert!(ks_for_fractions(&[0.0], 10).is_err());
    }
}
