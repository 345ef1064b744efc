//! Mean-ablation circuits (the IOI paper's and ARENA's minimal circuit): every head's output
//! (`hook_z`) is replaced by its mean over a means dataset — computed per template, position by
//! position — except the circuit's heads at the positions they are kept at. Reports
//! faithfulness F(C) against F(M) and, for chosen subsets K of the circuit, completeness
//! |F(C∖K) − F(M∖K)|, where M∖K mean-ablates only K's heads (at every position).

use super::setup::{Position, Setup};
use crate::error::{Error, Result};
use crate::eval::{self, HookName, NameFilter, Patches, Region, RunOptions, Site};
use crate::graph::Node;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A circuit of heads, each kept at some positions (an empty list: every position).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Circuit {
    /// `(layer, head)` → positions where its output is kept.
    pub heads: BTreeMap<(usize, usize), Vec<Position>>,
}

impl Circuit {
    /// Parse `a9.h9@END, a5.h5@S2, a2.h2@S1+1, a0.h1` (no `@`: every position; several
    /// positions as `a9.h9@END@S2`).
    pub fn parse(s: &str, cfg: &crate::model::ModelConfig) -> Result<Circuit> {
        let mut c = Circuit::default();
        for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let mut parts = item.split('@');
            let head = parts.next().unwrap_or_default();
            let (l, h) = match Node::parse(head, cfg)? {
                Node::Head(l, h) => (l, h),
                other => {
                    return Err(Error::input(format!(
                        "'{other}' in a circuit: mean-ablation circuits are made of heads \
                         (a9.h9@END)"
                    )))
                }
            };
            let entry = c.heads.entry((l, h)).or_default();
            for p in parts {
                entry.push(p.parse()?);
            }
        }
        if c.heads.is_empty() {
            return Err(Error::input(
                "the circuit is empty; list heads like 'a9.h9@END, a5.h5@S2'",
            ));
        }
        Ok(c)
    }

    /// Parse a JSON file's text: `{"a9.h9": ["END"], "a5.h5": ["S2"], …}` or the ARENA form
    /// `{"heads": {"name mover": [[9, 9], …]}, "positions": {"name mover": "end"}}`. `name`
    /// is used in messages.
    pub fn from_json(text: &str, name: &str, cfg: &crate::model::ModelConfig) -> Result<Circuit> {
        #[derive(Deserialize)]
        struct Grouped {
            heads: BTreeMap<String, Vec<(usize, usize)>>,
            positions: BTreeMap<String, PosList>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum PosList {
            One(String),
            Many(Vec<String>),
        }
        impl PosList {
            fn list(&self) -> Vec<String> {
                match self {
                    PosList::One(s) => vec![s.clone()],
                    PosList::Many(v) => v.clone(),
                }
            }
        }
        let bad = |e: serde_json::Error| {
            Error::input(format!(
                "{name}:{}:{}: {e}; a circuit file looks like {{\"a9.h9\": [\"END\"], \"a5.h5\": \
                 [\"S2\"]}} or {{\"heads\": {{\"name mover\": [[9, 9]]}}, \"positions\": \
                 {{\"name mover\": \"END\"}}}}",
                e.line(),
                e.column()
            ))
        };
        let v: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
        let mut c = Circuit::default();
        if v.get("heads").is_some() {
            let g: Grouped = serde_json::from_value(v).map_err(bad)?;
            for (group, heads) in &g.heads {
                let pos = g.positions.get(group).ok_or_else(|| {
                    Error::input(format!(
                        "{name}: group '{group}' has heads but no entry in \"positions\""
                    ))
                })?;
                for &(l, h) in heads {
                    Node::Head(l, h)
                        .check(cfg)
                        .map_err(|e| Error::input(format!("{name}: group '{group}': {e}")))?;
                    let entry = c.heads.entry((l, h)).or_default();
                    for p in pos.list() {
                        entry.push(p.parse()?);
                    }
                }
            }
        } else {
            let m: BTreeMap<String, PosList> = serde_json::from_value(v).map_err(bad)?;
            for (head, pos) in &m {
                let (l, h) = match Node::parse(head, cfg)
                    .map_err(|e| Error::input(format!("{name}: {e}")))?
                {
                    Node::Head(l, h) => (l, h),
                    other => {
                        return Err(Error::input(format!(
                            "{name}: '{other}': a circuit is made of heads"
                        )))
                    }
                };
                let entry = c.heads.entry((l, h)).or_default();
                for p in pos.list() {
                    entry.push(p.parse()?);
                }
            }
        }
        if c.heads.is_empty() {
            return Err(Error::input(format!("{name}: the circuit has no heads")));
        }
        Ok(c)
    }

    /// The circuit without the heads in `k`.
    pub fn without(&self, k: &BTreeSet<(usize, usize)>) -> Circuit {
        Circuit {
            heads: self
                .heads
                .iter()
                .filter(|(h, _)| !k.contains(h))
                .map(|(h, p)| (*h, p.clone()))
                .collect(),
        }
    }
}

/// One completeness check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Completeness {
    /// The heads of K.
    pub k: Vec<String>,
    /// F(C∖K).
    pub circuit_minus_k: f64,
    /// F(M∖K).
    pub model_minus_k: f64,
    /// |F(C∖K) − F(M∖K)|.
    pub gap: f64,
}

/// The results of a mean-ablation experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AblationResult {
    /// The metric's name.
    pub metric: String,
    /// F(M): the model's metric (clean, nothing ablated).
    pub model: f64,
    /// F(C): only the circuit kept.
    pub circuit: f64,
    /// F(C) / F(M).
    pub faithfulness_ratio: f64,
    /// |F(C) − F(M)|.
    pub faithfulness_gap: f64,
    /// F(∅): every head mean-ablated.
    pub nothing: f64,
    /// One entry per subset K.
    pub completeness: Vec<Completeness>,
    /// Per-example metric of the circuit.
    pub circuit_per_example: Vec<f64>,
}

/// Mean ablation against per-template means of a means dataset.
pub struct MeanAblation<'s, 'm> {
    setup: &'s Setup<'m>,
    means: Vec<Tensor>,
}

impl<'s, 'm> MeanAblation<'s, 'm> {
    /// Means of every head's `hook_z` over `means_tokens` `[n, pos']`, per group: row `i` of
    /// the setup is given the mean over the means rows whose group equals `groups[i]`
    /// (`means_groups[j]` is the group of means row `j`; one group for all when both are
    /// the same constant).
    pub fn new(
        setup: &'s Setup<'m>,
        means_tokens: &Tensor,
        means_groups: &[String],
        groups: &[String],
    ) -> Result<Self> {
        let model = setup.model;
        let cfg = &model.cfg;
        let (nm, pm) = means_tokens.dims2()?;
        if means_groups.len() != nm || groups.len() != setup.batch() {
            return Err(Error::input(
                "internal: one group per row of the means and of the dataset",
            ));
        }
        let names: Vec<HookName> = (0..cfg.n_layers)
            .map(|l| HookName::Block(l, Site::Z))
            .collect();
        let run = eval::run(
            model,
            means_tokens,
            &Patches::new(),
            RunOptions {
                cache: NameFilter::of(&names),
                logits: crate::eval::LogitsAt::None,
                ..Default::default()
            },
        )?;
        let p = setup.seq_len();
        let mut by_group: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (j, g) in means_groups.iter().enumerate() {
            by_group.entry(g.as_str()).or_default().push(j as u32);
        }
        for g in groups {
            if !by_group.contains_key(g.as_str()) {
                return Err(Error::input(format!(
                    "template '{g}' of the dataset has no rows in the means dataset; build the \
                     means from the same templates (e.g. the dataset's own ABC flip)"
                )));
            }
        }
        let mut means = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let z = run.cached(HookName::Block(l, Site::Z))?;
            let mut group_mean: BTreeMap<&str, Tensor> = BTreeMap::new();
            for (g, rows) in &by_group {
                let idx = Tensor::from_vec(rows.clone(), rows.len(), z.device())?;
                let m = z.index_select(&idx, 0)?.to_dtype(DType::F64)?.mean(0)?; // [pm, H, dh]
                                                                                 // fit to the dataset's length: cut, or pad with zeros (padding is never read)
                let m = if pm >= p {
                    m.narrow(0, 0, p)?
                } else {
                    let pad =
                        Tensor::zeros((p - pm, cfg.n_heads, cfg.d_head), DType::F64, z.device())?;
                    Tensor::cat(&[&m, &pad], 0)?
                };
                group_mean.insert(g, m.to_dtype(model.dtype)?);
            }
            let rows: Vec<Tensor> = groups
                .iter()
                .map(|g| group_mean[g.as_str()].clone())
                .collect();
            means.push(Tensor::stack(&rows, 0)?.contiguous()?);
        }
        Ok(MeanAblation { setup, means })
    }

    /// Keep masks for "keep these heads at these positions, ablate everything else"
    /// (`keep_rest`: the opposite sense for heads not listed — keep them everywhere).
    fn masks(&self, listed: &Circuit, keep_rest: bool) -> Result<Vec<Tensor>> {
        let cfg = &self.setup.model.cfg;
        let (b, p, nh) = (self.setup.batch(), self.setup.seq_len(), cfg.n_heads);
        let mut out = Vec::with_capacity(cfg.n_layers);
        let mut resolved: BTreeMap<(usize, usize), Option<Vec<Vec<usize>>>> = BTreeMap::new();
        for (&head, positions) in &listed.heads {
            let r = if positions.is_empty() {
                None
            } else {
                let per_pos = positions
                    .iter()
                    .map(|q| self.setup.resolve(q))
                    .collect::<Result<Vec<_>>>()?;
                Some(per_pos)
            };
            resolved.insert(head, r);
        }
        for l in 0..cfg.n_layers {
            let mut m = vec![u8::from(keep_rest); b * p * nh];
            for h in 0..nh {
                let Some(r) = resolved.get(&(l, h)) else {
                    continue;
                };
                match (keep_rest, r) {
                    // listed heads are ablated everywhere (M∖K)
                    (true, _) => {
                        for row in 0..b {
                            for q in 0..p {
                                m[(row * p + q) * nh + h] = 0;
                            }
                        }
                    }
                    (false, None) => {
                        for row in 0..b {
                            for q in 0..p {
                                m[(row * p + q) * nh + h] = 1;
                            }
                        }
                    }
                    (false, Some(per_pos)) => {
                        for rows in per_pos {
                            for (row, &q) in rows.iter().enumerate() {
                                m[(row * p + q) * nh + h] = 1;
                            }
                        }
                    }
                }
            }
            out.push(Tensor::from_vec(
                m,
                (b, p, nh, 1),
                self.setup.model.device(),
            )?);
        }
        Ok(out)
    }

    /// The per-example metric with every head's `hook_z` replaced by its mean where `keep`
    /// (per layer `[batch, pos, heads, 1]` u8) is 0.
    fn run_with(&self, keep: Vec<Tensor>) -> Result<Vec<f64>> {
        let mut patches = Patches::new();
        for (l, keep) in keep.into_iter().enumerate() {
            let ablate = keep.eq(0u8)?;
            let name = HookName::Block(l, Site::Z);
            patches.replace_activation(name, self.means[l].clone(), Region::Mask(ablate));
        }
        let run = eval::run(
            self.setup.model,
            &self.setup.clean_tokens,
            &patches,
            RunOptions {
                logits: self.setup.logits_at(),
                ..Default::default()
            },
        )?;
        let logits = run
            .logits
            .as_ref()
            .ok_or_else(|| Error::input("the run computed no logits"))?;
        self.setup.per_example(logits)
    }

    /// F(C): per-example metric with only `c` kept.
    pub fn circuit(&self, c: &Circuit) -> Result<Vec<f64>> {
        self.run_with(self.masks(c, false)?)
    }

    /// F(M∖K): per-example metric with only the heads of `k` mean-ablated (everywhere).
    pub fn model_without(&self, k: &BTreeSet<(usize, usize)>) -> Result<Vec<f64>> {
        let listed = Circuit {
            heads: k.iter().map(|&h| (h, Vec::new())).collect(),
        };
        self.run_with(self.masks(&listed, true)?)
    }

    /// Faithfulness of `c` and completeness for each subset in `ks`.
    pub fn evaluate(&self, c: &Circuit, ks: &[BTreeSet<(usize, usize)>]) -> Result<AblationResult> {
        let mean = crate::metric::mean;
        let f_m = self.setup.clean_metric;
        let circuit_rows = self.circuit(c)?;
        let f_c = mean(&circuit_rows);
        let nothing = mean(&self.circuit(&Circuit::default())?);
        let mut completeness = Vec::with_capacity(ks.len());
        for k in ks {
            let c_k = mean(&self.circuit(&c.without(k))?);
            let m_k = mean(&self.model_without(k)?);
            completeness.push(Completeness {
                k: k.iter().map(|&(l, h)| format!("a{l}.h{h}")).collect(),
                circuit_minus_k: c_k,
                model_minus_k: m_k,
                gap: (c_k - m_k).abs(),
            });
        }
        Ok(AblationResult {
            metric: self.setup.metric.to_string(),
            model: f_m,
            circuit: f_c,
            faithfulness_ratio: f_c / f_m,
            faithfulness_gap: (f_c - f_m).abs(),
            nothing,
            completeness,
            circuit_per_example: circuit_rows,
        })
    }
}

/// Each row's template group: the `template` feature when every row has one, else one group.
pub fn template_groups(ds: &crate::data::Dataset) -> Vec<String> {
    if ds
        .examples
        .iter()
        .all(|e| e.features.contains_key("template"))
    {
        ds.examples
            .iter()
            .map(|e| e.features["template"].clone())
            .collect()
    } else {
        vec!["all".to_string(); ds.len()]
    }
}
