//! Attention patterns of chosen heads on chosen prompts, optionally value-weighted: each key
//! column scaled by the norm of that position's value vector, `a[q, k] · ‖v_k‖` (REMIX).

use super::sweep::{Axis, LabelledArray};
use crate::error::{Error, Result};
use crate::eval::{self, LogitsAt, NameFilter, Patches, RunOptions};
use crate::model::Model;
use candle_core::{DType, Tensor, D};

/// Patterns `[row][head][query][key]` for the chosen rows and heads.
#[derive(Debug, Clone)]
pub struct AttentionPatterns {
    /// The heads, `(layer, head)`.
    pub heads: Vec<(usize, usize)>,
    /// The rows of the token batch.
    pub rows: Vec<usize>,
    /// `[row][head][query][key]` over the padded length.
    pub patterns: Vec<Vec<Vec<Vec<f64>>>>,
    /// Whether the values are value-weighted.
    pub value_weighted: bool,
}

/// Compute the patterns of `heads` on `rows` of `tokens` `[batch, pos]`.
pub fn attention_patterns(
    model: &Model,
    tokens: &Tensor,
    rows: &[usize],
    heads: &[(usize, usize)],
    value_weighted: bool,
) -> Result<AttentionPatterns> {
    let (b, _) = tokens.dims2()?;
    if let Some(&r) = rows.iter().find(|&&r| r >= b) {
        return Err(Error::input(format!(
            "row {r} does not exist: there are {b} prompts (rows count from 0)"
        )));
    }
    let cfg = &model.cfg;
    for &(l, h) in heads {
        crate::graph::Node::Head(l, h).check(cfg)?;
    }
    let mut names: Vec<String> = Vec::new();
    for &(l, _) in heads {
        names.push(format!("blocks.{l}.attn.hook_pattern"));
        if value_weighted {
            names.push(format!("blocks.{l}.attn.hook_v"));
        }
    }
    names.sort();
    names.dedup();
    let idx = Tensor::from_vec(
        rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
        rows.len(),
        tokens.device(),
    )?;
    let sub = tokens.index_select(&idx, 0)?;
    let run = eval::run(
        model,
        &sub,
        &Patches::new(),
        RunOptions {
            cache: NameFilter::new(&names, cfg)?,
            logits: LogitsAt::None,
            ..Default::default()
        },
    )?;
    let get = |n: String| -> Result<&Tensor> {
        run.cache
            .get(&n)
            .ok_or_else(|| Error::input(format!("internal: {n} not cached")))
    };
    let mut patterns = vec![Vec::with_capacity(heads.len()); rows.len()];
    for &(l, h) in heads {
        // [rows, q, k]
        let mut p = get(format!("blocks.{l}.attn.hook_pattern"))?
            .narrow(1, h, 1)?
            .squeeze(1)?
            .to_dtype(DType::F64)?;
        if value_weighted {
            // ‖v_k‖ per row and key: [rows, 1, k]
            let v = get(format!("blocks.{l}.attn.hook_v"))?
                .narrow(2, h, 1)?
                .squeeze(2)?
                .to_dtype(DType::F64)?;
            let norm = v.sqr()?.sum(D::Minus1)?.sqrt()?.unsqueeze(1)?;
            p = p.broadcast_mul(&norm)?;
        }
        let p = p.to_vec3::<f64>()?;
        for (i, m) in p.into_iter().enumerate() {
            patterns[i].push(m);
        }
    }
    Ok(AttentionPatterns {
        heads: heads.to_vec(),
        rows: rows.to_vec(),
        patterns,
        value_weighted,
    })
}

impl AttentionPatterns {
    /// As a sweep `[row, head, query, key]` (positions labelled by index).
    pub fn to_sweep(&self) -> LabelledArray {
        let p = self
            .patterns
            .first()
            .and_then(|r| r.first())
            .map_or(0, Vec::len);
        let pos: Vec<String> = (0..p).map(|i| i.to_string()).collect();
        let axes = vec![
            Axis::new("row", self.rows.iter().map(|r| r.to_string()).collect()),
            Axis::new(
                "head",
                self.heads
                    .iter()
                    .map(|&(l, h)| format!("a{l}.h{h}"))
                    .collect(),
            ),
            Axis::new("query", pos.clone()),
            Axis::new("key", pos),
        ];
        let mut s = LabelledArray::new(
            "attention",
            if self.value_weighted {
                "Value-weighted attention patterns"
            } else {
                "Attention patterns"
            },
            axes,
        );
        s.values = self
            .patterns
            .iter()
            .flat_map(|r| {
                r.iter()
                    .flat_map(|h| h.iter().flat_map(|q| q.iter().copied()))
            })
            .collect();
        s.note(
            "value",
            if self.value_weighted {
                "attention probability times the norm of the key position's value vector"
            } else {
                "attention probability"
            },
        );
        s
    }
}
