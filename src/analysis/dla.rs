//! Direct logit attribution and the logit lens along the answer − wrong direction.
//!
//! The direction of row `b` is `mean W_U[:, answer_b] − mean W_U[:, wrong_b]` (no `b_U`);
//! every value is the mean over rows of a component's projection on it, at the row's END.
//!
//! - Per head and per layer (TransformerLens `stack_head_results` / `decompose_resid` with
//!   `apply_ln=True`): the component minus its mean over `d_model`, divided by the clean run's
//!   final LayerNorm scale at END (the cached `ln_final.hook_scale`); no LayerNorm weight or
//!   bias. Heads exclude `b_O`; the layer decomposition's attention outputs include it.
//! - The logit lens (`accumulated_resid` with `apply_ln=True`, TransformerLens 3.9): the full
//!   final LayerNorm (its own mean and scale, times the weight, plus the bias) applied to each
//!   accumulated residual stream: `resid_pre` and `resid_mid` of every layer, then the final
//!   `resid_post`.

use super::setup::Setup;
use super::sweep::{Axis, LabelledArray};
use crate::error::{Error, Result};
use crate::eval::{NameFilter, Run};
use crate::graph::Node;
use candle_core::{DType, Tensor, D};

/// Rows `[batch, d_model]` of `[batch, pos, d_model]` at each row's position.
pub fn at_positions(x: &Tensor, positions: &[usize]) -> Result<Tensor> {
    let (b, p, d) = x.dims3()?;
    if positions.len() != b {
        return Err(Error::input(format!(
            "{} positions for {b} rows",
            positions.len()
        )));
    }
    let idx: Vec<u32> = positions
        .iter()
        .enumerate()
        .map(|(i, &q)| (i * p + q) as u32)
        .collect();
    let idx = Tensor::from_vec(idx, b, x.device())?;
    Ok(x.reshape((b * p, d))?.index_select(&idx, 0)?)
}

/// The per-row logit-difference directions `[batch, d_model]`.
pub fn directions(setup: &Setup) -> Result<Tensor> {
    let w_u = setup.model.w.w_u.to_dtype(DType::F64)?; // [D, V]
    let wt = w_u.t()?.contiguous()?; // [V, D]
    let mean_rows = |ids: &[u32]| -> Result<Option<Tensor>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let idx = Tensor::from_vec(ids.to_vec(), ids.len(), wt.device())?;
        Ok(Some(wt.index_select(&idx, 0)?.mean(0)?))
    };
    let mut rows = Vec::with_capacity(setup.batch());
    for e in &setup.ds.examples {
        let a = mean_rows(&e.answer)?.ok_or_else(|| Error::input("a row has no answer token"))?;
        let r = match mean_rows(&e.wrong)? {
            Some(w) => (a - w)?,
            None => a,
        };
        rows.push(r);
    }
    Ok(Tensor::stack(&rows, 0)?)
}

/// Mean over rows of `<x_b, dir_b>` for `[batch, d_model]` tensors.
fn mean_projection(x: &Tensor, dirs: &Tensor) -> Result<f64> {
    let per_row = (x.to_dtype(DType::F64)? * dirs)?.sum(D::Minus1)?;
    let v = per_row.to_vec1::<f64>()?;
    Ok(crate::metric::mean(&v))
}

/// `x − mean(x)` over `d_model`, divided by `scale` `[batch, 1]`.
fn center_scale(x: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let x = x.to_dtype(DType::F64)?;
    let xc = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    Ok(xc.broadcast_div(scale)?)
}

/// The model's final LayerNorm ([`crate::model::Model::layer_norm`]) in float64 on `[batch,
/// d_model]` rows: `(output, scale)`.
fn final_ln_f64(setup: &Setup, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let model = setup.model;
    let w = model.w.ln_f_w.to_dtype(DType::F64)?;
    let b = model.w.ln_f_b.to_dtype(DType::F64)?;
    model.layer_norm(&x.to_dtype(DType::F64)?, &w, &b)
}

/// The clean run with what attribution needs, and the final LayerNorm scale at END.
struct Attrib<'s, 'm> {
    setup: &'s Setup<'m>,
    run: Run,
    scale: Tensor,
    dirs: Tensor,
}

impl<'s, 'm> Attrib<'s, 'm> {
    fn new(setup: &'s Setup<'m>, cache: &[&str]) -> Result<Self> {
        let patterns: Vec<String> = cache.iter().map(|s| s.to_string()).collect();
        let run = setup.clean_run(NameFilter::new(&patterns, &setup.model.cfg)?)?;
        let fin = at_positions(&run.resid[setup.model.cfg.n_layers], &setup.ends)?;
        let (_, scale) = final_ln_f64(setup, &fin)?;
        Ok(Attrib {
            setup,
            run,
            scale,
            dirs: directions(setup)?,
        })
    }

    fn attribute(&self, x: &Tensor) -> Result<f64> {
        let x = at_positions(x, &self.setup.ends)?;
        mean_projection(&center_scale(&x, &self.scale)?, &self.dirs)
    }
}

fn add_notes(sweep: &mut LabelledArray, setup: &Setup, how: &str) {
    sweep.note("metric", setup.metric.to_string());
    sweep.note("clean_metric", setup.clean_metric);
    sweep.note(
        "direction",
        "mean W_U[:, answer] − mean W_U[:, wrong] per row (no b_U)",
    );
    sweep.note("value", how);
}

/// Direct logit attribution of every head at END: `[layer, head]`.
pub fn dla_heads(setup: &Setup) -> Result<LabelledArray> {
    let cfg = &setup.model.cfg;
    let a = Attrib::new(setup, &[])?;
    let mut sweep = LabelledArray::new(
        "dla_heads",
        "Direct logit attribution per head",
        vec![Axis::layers(cfg.n_layers), Axis::heads(cfg.n_heads)],
    );
    for l in 0..cfg.n_layers {
        for h in 0..cfg.n_heads {
            let out = a.run.sender_out(setup.model, Node::Head(l, h))?;
            sweep.set(&[l, h], a.attribute(&out)?);
        }
    }
    add_notes(
        &mut sweep,
        setup,
        "mean over rows of the head's output at END (without b_O), centred and divided by the \
         clean final LayerNorm scale, projected on the direction (TransformerLens \
         stack_head_results(apply_ln=True))",
    );
    Ok(sweep)
}

/// Direct logit attribution of the embeddings and every layer's attention and MLP output at
/// END: `[component]` labelled `embed`, `pos_embed`, `0_attn_out`, `0_mlp_out`, ….
pub fn dla_layers(setup: &Setup) -> Result<LabelledArray> {
    let cfg = &setup.model.cfg;
    let names: &[&str] = if cfg.rotary_dim == 0 {
        &["hook_embed", "hook_pos_embed"]
    } else {
        &["hook_embed"]
    };
    let a = Attrib::new(setup, names)?;
    let mut labels = Vec::new();
    let mut values = Vec::new();
    let cached = |n: &str| -> Result<&Tensor> {
        a.run
            .cache
            .get(n)
            .ok_or_else(|| Error::input(format!("internal: {n} not cached")))
    };
    labels.push("embed".to_string());
    values.push(a.attribute(cached("hook_embed")?)?);
    if a.run.cache.contains_key("hook_pos_embed") {
        labels.push("pos_embed".to_string());
        values.push(a.attribute(cached("hook_pos_embed")?)?);
    }
    for l in 0..cfg.n_layers {
        labels.push(format!("{l}_attn_out"));
        values.push(a.attribute(&a.run.attn_out[l])?);
        if let Some(m) = &a.run.mlp_out[l] {
            labels.push(format!("{l}_mlp_out"));
            values.push(a.attribute(m)?);
        }
    }
    let mut sweep = LabelledArray::new(
        "dla_layers",
        "Direct logit attribution per layer",
        vec![Axis::new("component", labels)],
    );
    sweep.values = values;
    add_notes(
        &mut sweep,
        setup,
        "mean over rows of the component at END, centred and divided by the clean final \
         LayerNorm scale, projected on the direction (TransformerLens \
         decompose_resid(apply_ln=True))",
    );
    Ok(sweep)
}

/// The logit lens at END: `[resid]` labelled `0_pre`, `0_mid`, …, `final_post`.
pub fn logit_lens(setup: &Setup) -> Result<LabelledArray> {
    let cfg = &setup.model.cfg;
    let mid: Vec<String> = (0..cfg.n_layers)
        .map(|l| format!("blocks.{l}.hook_resid_mid"))
        .collect();
    let cache: Vec<&str> = if cfg.parallel_residual {
        vec![]
    } else {
        mid.iter().map(String::as_str).collect()
    };
    let a = Attrib::new(setup, &cache)?;
    let lens = |x: &Tensor| -> Result<f64> {
        let (y, _) = final_ln_f64(setup, &at_positions(x, &setup.ends)?)?;
        mean_projection(&y, &a.dirs)
    };
    let mut labels = Vec::new();
    let mut values = Vec::new();
    for (l, mid_name) in mid.iter().enumerate() {
        labels.push(format!("{l}_pre"));
        values.push(lens(&a.run.resid[l])?);
        if let Some(m) = a.run.cache.get(mid_name) {
            labels.push(format!("{l}_mid"));
            values.push(lens(m)?);
        }
    }
    labels.push("final_post".into());
    values.push(lens(&a.run.resid[cfg.n_layers])?);
    let mut sweep = LabelledArray::new(
        "logit_lens",
        "Logit lens: logit difference of the accumulated residual stream",
        vec![Axis::new("resid", labels)],
    );
    sweep.values = values;
    add_notes(
        &mut sweep,
        setup,
        "mean over rows of the final LayerNorm (own statistics, weight and bias) of the \
         accumulated residual stream at END, projected on the direction (TransformerLens 3.9 \
         accumulated_resid(apply_ln=True))",
    );
    Ok(sweep)
}
