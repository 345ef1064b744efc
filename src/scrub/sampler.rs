//! Conditional samplers: drawing each interpretation node's rows from its parent's.
//!
//! Sampling runs root → leaves in depth-first pre-order with one seeded ChaCha stream: for each
//! node its dataset is drawn from its parent's (the root's from the reference rows), then, for
//! non-leaves, its other-inputs dataset from its own. Row i of every dataset belongs to
//! example i.

use super::hypothesis::{Hypothesis, SamplerSpec};
use crate::data::Dataset;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The rows drawn for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSamples {
    /// The node's name.
    pub name: String,
    /// Its dataset: one row index of the base dataset per example.
    pub rows: Vec<usize>,
    /// Its other-inputs dataset (non-leaves).
    pub other_inputs: Option<Vec<usize>>,
}

/// Every dataset drawn for one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// The seed they were drawn with.
    pub seed: u64,
    /// The reference rows (example i is base row `reference[i]`).
    pub reference: Vec<usize>,
    /// Per node, in depth-first pre-order.
    pub nodes: Vec<NodeSamples>,
    /// The fully scrubbed baseline's rows (the root's other inputs).
    pub baseline: Vec<usize>,
}

impl Samples {
    /// The rows of the dataset a path ends in when `node` owns it: a leaf's own dataset, a
    /// non-leaf's other-inputs dataset. As in Redwood's causal scrubbing (`rust_circuit`'s
    /// `SampledInputs`, where a leaf takes its own dataset), this holds for the root too: a
    /// root without children evaluates every path on the root's own rows (with an `Exact`
    /// root, the clean run). The fully scrubbed baseline is the root's other-inputs dataset.
    pub fn data_of(&self, node: usize, is_leaf: bool) -> &[usize] {
        let n = &self.nodes[node];
        if is_leaf {
            &n.rows
        } else {
            n.other_inputs.as_deref().unwrap_or(&n.rows)
        }
    }
}

/// Draw every node's datasets with `seed`.
pub fn sample(h: &Hypothesis, ds: &Dataset, n: usize, seed: u64) -> Result<Samples> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut groups = FeatureGroups::default();
    let reference: Vec<usize> = (0..n).collect();
    let mut nodes: Vec<NodeSamples> = Vec::with_capacity(h.nodes.len());
    for (i, node) in h.nodes.iter().enumerate() {
        let parent_rows = match node.parent {
            None => reference.clone(),
            Some(p) => nodes[p].rows.clone(),
        };
        let rows = draw(
            &node.sampler,
            &parent_rows,
            ds,
            &mut rng,
            &mut groups,
            &h.path,
            &node.name,
        )?;
        let other_inputs = if node.is_leaf() && i != 0 {
            None
        } else {
            Some(draw(
                &node.other_inputs,
                &rows,
                ds,
                &mut rng,
                &mut groups,
                &h.path,
                &node.name,
            )?)
        };
        nodes.push(NodeSamples {
            name: node.name.clone(),
            rows,
            other_inputs,
        });
    }
    let baseline = nodes[0].other_inputs.clone().unwrap_or_default();
    Ok(Samples {
        seed,
        reference,
        nodes,
        baseline,
    })
}

/// For one set of features: each row's joined feature values, and the rows of each value.
type Grouping = (Vec<String>, BTreeMap<String, Vec<usize>>);

/// Rows grouped by the values of a set of features, built on first use.
#[derive(Default)]
struct FeatureGroups {
    by_features: BTreeMap<Vec<String>, Grouping>,
}

impl FeatureGroups {
    fn get(&mut self, features: &[String], ds: &Dataset) -> Result<&Grouping> {
        if !self.by_features.contains_key(features) {
            let cols: Vec<Vec<&str>> = features
                .iter()
                .map(|f| ds.feature(f))
                .collect::<Result<_>>()?;
            let keys: Vec<String> = (0..ds.len())
                .map(|r| cols.iter().map(|c| c[r]).collect::<Vec<_>>().join("\u{1f}"))
                .collect();
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (r, k) in keys.iter().enumerate() {
                groups.entry(k.clone()).or_default().push(r);
            }
            self.by_features.insert(features.to_vec(), (keys, groups));
        }
        Ok(&self.by_features[features])
    }
}

fn draw(
    spec: &SamplerSpec,
    parent: &[usize],
    ds: &Dataset,
    rng: &mut ChaCha8Rng,
    groups: &mut FeatureGroups,
    hypothesis: &Path,
    node: &str,
) -> Result<Vec<usize>> {
    let total = ds.len();
    Ok(match spec {
        SamplerSpec::Exact => parent.to_vec(),
        SamplerSpec::Uncond => (0..parent.len())
            .map(|_| rng.random_range(0..total))
            .collect(),
        SamplerSpec::Same(features) => {
            let (keys, by_key) = groups.get(features, ds)?;
            parent
                .iter()
                .map(|&r| {
                    let pool = &by_key[&keys[r]];
                    pool[rng.random_range(0..pool.len())]
                })
                .collect()
        }
        SamplerSpec::Fixed(file) => {
            let rows =
                super::hypothesis::read_fixed_rows(hypothesis, file, total).map_err(|e| {
                    Error::input(format!(
                        "{}: Fixed sampler of '{node}': {e}",
                        hypothesis.display()
                    ))
                })?;
            if rows.len() != parent.len() {
                return Err(Error::input(format!(
                    "{}: Fixed sampler of '{node}' lists {} rows but the experiment has {}",
                    hypothesis.display(),
                    rows.len(),
                    parent.len()
                )));
            }
            rows
        }
    })
}
