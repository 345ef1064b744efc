//! Copying scores (IOI paper §3, ARENA's replication): does a head's OV circuit copy names?
//!
//! For each name token: its embedding plus MLP0's output on it (MLP0 as an extended
//! embedding; `resid = W_E[name] + MLP0(LN2(W_E[name]))`), through the head's `W_V W_O`
//! (positive) or `−W_V W_O` (negative), the final LayerNorm and the unembedding. The score is
//! the fraction of names whose own token is among the top-k logits. Attention-only models have
//! no MLP0: the embedding alone is used.

use super::sweep::{Axis, LabelledArray};
use crate::error::{Error, Result};
use crate::model::Model;
use candle_core::{DType, Tensor};

/// The top-k indices of a row, largest first; ties go to the smaller index.
fn top_k(row: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Copying scores `[sign (positive, negative), layer, head]` for single-token `names`.
pub fn copying_scores(model: &Model, names: &[u32], k: usize) -> Result<LabelledArray> {
    let cfg = &model.cfg;
    if names.is_empty() {
        return Err(Error::input("copying scores need at least one name token"));
    }
    if k == 0 {
        return Err(Error::input("copying scores need k ≥ 1"));
    }
    if let Some(&bad) = names.iter().find(|&&t| t as usize >= cfg.d_vocab) {
        return Err(Error::input(format!(
            "name token {bad} is outside the vocabulary of {}",
            cfg.d_vocab
        )));
    }
    let n = names.len();
    let idx = Tensor::from_vec(names.to_vec(), n, model.device())?;
    let emb = model.embedding_rows(&idx)?; // [N, D]
    let resid = if cfg.has_mlp() {
        (&emb + model.mlp(0, &emb)?)?
    } else {
        emb
    };
    let axes = vec![
        Axis::new("sign", vec!["positive".into(), "negative".into()]),
        Axis::layers(cfg.n_layers),
        Axis::heads(cfg.n_heads),
    ];
    let mut sweep = LabelledArray::new(
        "copying_scores",
        &format!("Copying scores of the heads' OV circuits (top {k})"),
        axes,
    );
    for l in 0..cfg.n_layers {
        let blk = &model.w.blocks[l];
        for h in 0..cfg.n_heads {
            let w_ov = blk.w_head(2, h)?.matmul(&blk.w_o.get(h)?)?; // [D, D]
            let pos = resid.matmul(&w_ov)?;
            for (sign, x) in [(0usize, pos.clone()), (1, pos.neg()?)] {
                let (logits, _) = model.unembed(&x)?;
                let rows = logits.to_dtype(DType::F64)?.to_vec2::<f64>()?;
                let hits = rows
                    .iter()
                    .zip(names)
                    .filter(|(r, &t)| top_k(r, k).contains(&(t as usize)))
                    .count();
                sweep.set(&[sign, l, h], hits as f64 / n as f64);
            }
        }
    }
    sweep.note("k", k as u64);
    sweep.note("names", n as u64);
    sweep.note(
        "value",
        "fraction of names whose own token is in the top-k logits of unembed(ln_final((W_E[name] \
         + MLP0) · ±W_V W_O))",
    );
    Ok(sweep)
}
