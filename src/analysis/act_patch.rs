//! Activation patching, the `transformer_lens.patching` family: run the corrupted input,
//! copy one slice of one activation in from the clean run, and apply the metric.
//!
//! Every variant of `get_act_patch_*` is here with TransformerLens's axis order:
//! residual stream (pre/mid), attention and MLP output by `[layer, pos]`; head output (`z`),
//! q, k, v by `[layer, pos, head]` and over all positions `[layer, head]`; the pattern by
//! `[layer, head, dest_pos]`, `[layer, head]` and `[layer, head, dest_pos, src_pos]`; and the
//! `_every` stacks. A patch at layer `l` resumes from the corrupted run at layer `l` (earlier
//! layers cannot change; for `resid_mid` and `mlp_out`, at layer `l`'s MLP), which gives the
//! same numbers as a full run at a fraction of the cost.

use super::setup::Setup;
use super::sweep::{Axis, LabelledArray};
use crate::error::{Error, Result};
use crate::eval::{self, HookName, NameFilter, Patches, Region, Run, RunOptions, Site};
use candle_core::Tensor;
use std::ops::Range;

/// Which activation is patched and how it is indexed (TransformerLens's `get_act_patch_*`
/// suffixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActTarget {
    /// `resid_pre`: `[layer, pos]`.
    ResidPre,
    /// `resid_mid`: `[layer, pos]`.
    ResidMid,
    /// `attn_out`: `[layer, pos]`.
    AttnOut,
    /// `mlp_out`: `[layer, pos]`.
    MlpOut,
    /// `attn_head_out_by_pos` (`hook_z`): `[layer, pos, head]`.
    HeadOutByPos,
    /// `attn_head_q_by_pos`: `[layer, pos, head]`.
    HeadQByPos,
    /// `attn_head_k_by_pos`: `[layer, pos, head]`.
    HeadKByPos,
    /// `attn_head_v_by_pos`: `[layer, pos, head]`.
    HeadVByPos,
    /// `attn_head_pattern_by_pos`: `[layer, head, dest_pos]`.
    HeadPatternByPos,
    /// `attn_head_out_all_pos`: `[layer, head]`.
    HeadOutAllPos,
    /// `attn_head_q_all_pos`: `[layer, head]`.
    HeadQAllPos,
    /// `attn_head_k_all_pos`: `[layer, head]`.
    HeadKAllPos,
    /// `attn_head_v_all_pos`: `[layer, head]`.
    HeadVAllPos,
    /// `attn_head_pattern_all_pos`: `[layer, head]`.
    HeadPatternAllPos,
    /// `attn_head_pattern_dest_src_pos`: `[layer, head, dest_pos, src_pos]`.
    HeadPatternDestSrcPos,
    /// `block_every`: resid_pre, attn_out, mlp_out stacked: `[3, layer, pos]`.
    BlockEvery,
    /// `attn_head_all_pos_every`: output, q, k, v, pattern: `[5, layer, head]`.
    HeadAllPosEvery,
    /// `attn_head_by_pos_every`: output, q, k, v, pattern (as `[layer, pos, head]`):
    /// `[5, layer, pos, head]`.
    HeadByPosEvery,
}

impl ActTarget {
    /// Every target, in the order of [`ActTarget::name`].
    pub const ALL: [ActTarget; 18] = [
        ActTarget::ResidPre,
        ActTarget::ResidMid,
        ActTarget::AttnOut,
        ActTarget::MlpOut,
        ActTarget::HeadOutByPos,
        ActTarget::HeadQByPos,
        ActTarget::HeadKByPos,
        ActTarget::HeadVByPos,
        ActTarget::HeadPatternByPos,
        ActTarget::HeadOutAllPos,
        ActTarget::HeadQAllPos,
        ActTarget::HeadKAllPos,
        ActTarget::HeadVAllPos,
        ActTarget::HeadPatternAllPos,
        ActTarget::HeadPatternDestSrcPos,
        ActTarget::BlockEvery,
        ActTarget::HeadAllPosEvery,
        ActTarget::HeadByPosEvery,
    ];

    /// The TransformerLens suffix: `get_act_patch_<name>`.
    pub fn name(self) -> &'static str {
        match self {
            ActTarget::ResidPre => "resid_pre",
            ActTarget::ResidMid => "resid_mid",
            ActTarget::AttnOut => "attn_out",
            ActTarget::MlpOut => "mlp_out",
            ActTarget::HeadOutByPos => "attn_head_out_by_pos",
            ActTarget::HeadQByPos => "attn_head_q_by_pos",
            ActTarget::HeadKByPos => "attn_head_k_by_pos",
            ActTarget::HeadVByPos => "attn_head_v_by_pos",
            ActTarget::HeadPatternByPos => "attn_head_pattern_by_pos",
            ActTarget::HeadOutAllPos => "attn_head_out_all_pos",
            ActTarget::HeadQAllPos => "attn_head_q_all_pos",
            ActTarget::HeadKAllPos => "attn_head_k_all_pos",
            ActTarget::HeadVAllPos => "attn_head_v_all_pos",
            ActTarget::HeadPatternAllPos => "attn_head_pattern_all_pos",
            ActTarget::HeadPatternDestSrcPos => "attn_head_pattern_dest_src_pos",
            ActTarget::BlockEvery => "block_every",
            ActTarget::HeadAllPosEvery => "attn_head_all_pos_every",
            ActTarget::HeadByPosEvery => "attn_head_by_pos_every",
        }
    }

    /// Parse a TransformerLens suffix (also with `get_act_patch_` or `act_patch_` in front,
    /// and `-` for `_`).
    pub fn parse(s: &str) -> Result<ActTarget> {
        let t = s.trim().replace('-', "_");
        let t = t
            .strip_prefix("get_act_patch_")
            .or_else(|| t.strip_prefix("act_patch_"))
            .unwrap_or(&t);
        ActTarget::ALL
            .iter()
            .copied()
            .find(|x| x.name() == t)
            .ok_or_else(|| {
                Error::input(format!(
                    "unknown patching target '{s}'; use one of {}",
                    ActTarget::ALL
                        .iter()
                        .map(|x| x.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

impl std::fmt::Display for ActTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Options of an activation-patching sweep.
#[derive(Debug, Clone, Copy)]
pub struct ActPatchOptions {
    /// Resume each patched run from the corrupted run at the patched layer (default). Off,
    /// every patched run starts from the embedding; the numbers are the same.
    pub resume: bool,
}

impl Default for ActPatchOptions {
    fn default() -> Self {
        ActPatchOptions { resume: true }
    }
}

/// The clean and corrupted runs a sweep patches between.
struct Patcher<'s, 'm> {
    setup: &'s Setup<'m>,
    clean: Run,
    corrupted: Run,
    opts: ActPatchOptions,
}

impl<'s, 'm> Patcher<'s, 'm> {
    /// Run clean (keeping `site` of every layer) and corrupted.
    fn new(setup: &'s Setup<'m>, site: Site, opts: ActPatchOptions) -> Result<Self> {
        let names: Vec<HookName> = (0..setup.model.cfg.n_layers)
            .map(|l| HookName::Block(l, site))
            .collect();
        Ok(Patcher {
            setup,
            clean: setup.clean_run(NameFilter::of(&names))?,
            corrupted: setup.corrupted_run(NameFilter::none())?,
            opts,
        })
    }

    fn clean_act(&self, name: HookName) -> Result<&Tensor> {
        self.clean.cached(name)
    }

    /// The metric of the corrupted run with `name[ranges]` taken from the clean run.
    fn patched(&mut self, name: HookName, ranges: Vec<Range<usize>>) -> Result<f64> {
        let clean = self.clean_act(name)?.clone();
        let mut patches = Patches::new();
        patches.replace_activation(name, clean, Region::Slice(ranges));
        // Stages before the patched activation's cannot change: start there from the
        // corrupted run (for resid_mid and mlp_out, at the layer's MLP half).
        let from = self.opts.resume.then(|| (&self.corrupted, name.stage()));
        let run = eval::run(
            self.setup.model,
            &self.setup.corrupted_tokens,
            &patches,
            RunOptions {
                logits: self.setup.logits_at(),
                from,
                ..Default::default()
            },
        )?;
        self.setup.score_run(&run)
    }

    fn dims(&self, name: HookName) -> Result<Vec<usize>> {
        Ok(self.clean_act(name)?.dims().to_vec())
    }
}

fn full(dims: &[usize]) -> Vec<Range<usize>> {
    dims.iter().map(|&d| 0..d).collect()
}

/// Run one activation-patching sweep with default options.
pub fn act_patch(setup: &Setup, target: ActTarget) -> Result<LabelledArray> {
    act_patch_with(setup, target, ActPatchOptions::default())
}

/// Refuse a target the model lacks (`resid_mid` with parallel attention and MLP, `mlp_out`
/// without an MLP).
fn check_target(cfg: &crate::model::ModelConfig, target: ActTarget) -> Result<()> {
    use ActTarget::*;
    match target {
        ResidMid if cfg.parallel_residual => Err(Error::input(
            "resid_mid does not exist in a model with parallel attention and MLP (GPT-NeoX, \
             Pythia); patch resid_pre, attn_out or mlp_out",
        )),
        MlpOut if !cfg.has_mlp() => Err(Error::input(
            "mlp_out does not exist in an attention-only model; patch resid_pre or attn_out",
        )),
        BlockEvery if !cfg.has_mlp() => Err(Error::input(
            "block_every includes mlp_out, which an attention-only model lacks; patch \
             resid_pre and attn_out separately",
        )),
        _ => Ok(()),
    }
}

/// Run one activation-patching sweep.
pub fn act_patch_with(
    setup: &Setup,
    target: ActTarget,
    opts: ActPatchOptions,
) -> Result<LabelledArray> {
    check_target(&setup.model.cfg, target)?;
    use ActTarget::*;
    let mut sweep = match target {
        ResidPre | ResidMid | AttnOut | MlpOut => {
            let site = match target {
                ResidPre => Site::ResidPre,
                ResidMid => Site::ResidMid,
                AttnOut => Site::AttnOut,
                _ => Site::MlpOut,
            };
            layer_pos(setup, site, target, opts)?
        }
        HeadOutByPos | HeadQByPos | HeadKByPos | HeadVByPos => {
            head_vector(setup, head_site(target), true, target, opts)?
        }
        HeadOutAllPos | HeadQAllPos | HeadKAllPos | HeadVAllPos => {
            head_vector(setup, head_site(target), false, target, opts)?
        }
        HeadPatternByPos | HeadPatternAllPos | HeadPatternDestSrcPos => {
            pattern(setup, target, opts)?
        }
        BlockEvery => {
            let parts = [ResidPre, AttnOut, MlpOut]
                .iter()
                .map(|&t| act_patch_with(setup, t, opts))
                .collect::<Result<Vec<_>>>()?;
            let axis = Axis::new(
                "component",
                vec!["resid_pre".into(), "attn_out".into(), "mlp_out".into()],
            );
            LabelledArray::stack(target.name(), &title(target), axis, &parts)?
        }
        HeadAllPosEvery | HeadByPosEvery => every_head_target(setup, target, opts)?,
    };
    sweep.name = format!("act_patch_{}", target.name());
    sweep.note("metric", setup.metric.to_string());
    sweep.note("clean_metric", setup.clean_metric);
    sweep.note("corrupted_metric", setup.corrupted_metric);
    sweep.note(
        "value",
        "the metric of the corrupted run with this slice of the activation copied from the clean \
         run (transformer_lens.patching semantics)",
    );
    Ok(sweep)
}

/// `head_all_pos_every` / `head_by_pos_every`: output, query, key, value and pattern stacked
/// along a `component` axis.
fn every_head_target(
    setup: &Setup,
    target: ActTarget,
    opts: ActPatchOptions,
) -> Result<LabelledArray> {
    use ActTarget::*;
    let by_pos = target == HeadByPosEvery;
    let ts = if by_pos {
        [
            HeadOutByPos,
            HeadQByPos,
            HeadKByPos,
            HeadVByPos,
            HeadPatternByPos,
        ]
    } else {
        [
            HeadOutAllPos,
            HeadQAllPos,
            HeadKAllPos,
            HeadVAllPos,
            HeadPatternAllPos,
        ]
    };
    let mut parts = Vec::with_capacity(5);
    for t in ts {
        let s = act_patch_with(setup, t, opts)?;
        // TransformerLens rearranges the pattern's [layer, head, pos] to [layer, pos, head].
        parts.push(if t == HeadPatternByPos {
            s.permute(&[0, 2, 1])
        } else {
            s
        });
    }
    let axis = Axis::new(
        "component",
        ["output", "query", "key", "value", "pattern"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    LabelledArray::stack(target.name(), &title(target), axis, &parts)
}

fn head_site(t: ActTarget) -> Site {
    use ActTarget::*;
    match t {
        HeadQByPos | HeadQAllPos => Site::Q,
        HeadKByPos | HeadKAllPos => Site::K,
        HeadVByPos | HeadVAllPos => Site::V,
        _ => Site::Z,
    }
}

fn title(t: ActTarget) -> String {
    format!("Activation patching: {}", t.name())
}

fn layer_pos(
    setup: &Setup,
    site: Site,
    t: ActTarget,
    opts: ActPatchOptions,
) -> Result<LabelledArray> {
    let n_layers = setup.model.cfg.n_layers;
    let mut p = Patcher::new(setup, site, opts)?;
    let axes = vec![
        Axis::layers(n_layers),
        Axis::new("pos", setup.pos_labels.clone()),
    ];
    let mut sweep = LabelledArray::new(t.name(), &title(t), axes);
    for l in 0..n_layers {
        let name = HookName::Block(l, site);
        let dims = p.dims(name)?;
        for pos in 0..setup.seq_len() {
            let mut r = full(&dims);
            r[1] = pos..pos + 1;
            let v = p.patched(name, r)?;
            sweep.set(&[l, pos], v);
        }
    }
    Ok(sweep)
}

fn head_vector(
    setup: &Setup,
    site: Site,
    by_pos: bool,
    t: ActTarget,
    opts: ActPatchOptions,
) -> Result<LabelledArray> {
    let cfg = &setup.model.cfg;
    let mut p = Patcher::new(setup, site, opts)?;
    let mut axes = vec![Axis::layers(cfg.n_layers)];
    if by_pos {
        axes.push(Axis::new("pos", setup.pos_labels.clone()));
    }
    axes.push(Axis::heads(cfg.n_heads));
    let mut sweep = LabelledArray::new(t.name(), &title(t), axes);
    let positions: Vec<Option<usize>> = if by_pos {
        (0..setup.seq_len()).map(Some).collect()
    } else {
        vec![None]
    };
    for l in 0..cfg.n_layers {
        let name = HookName::Block(l, site);
        let dims = p.dims(name)?;
        for &pos in &positions {
            for h in 0..cfg.n_heads {
                let mut r = full(&dims);
                if let Some(pos) = pos {
                    r[1] = pos..pos + 1;
                }
                r[2] = h..h + 1;
                let v = p.patched(name, r)?;
                match pos {
                    Some(pos) => sweep.set(&[l, pos, h], v),
                    None => sweep.set(&[l, h], v),
                }
            }
        }
    }
    Ok(sweep)
}

fn pattern(setup: &Setup, t: ActTarget, opts: ActPatchOptions) -> Result<LabelledArray> {
    let cfg = &setup.model.cfg;
    let mut p = Patcher::new(setup, Site::Pattern, opts)?;
    let n_pos = setup.seq_len();
    let mut axes = vec![Axis::layers(cfg.n_layers), Axis::heads(cfg.n_heads)];
    match t {
        ActTarget::HeadPatternByPos => axes.push(Axis::new("dest_pos", setup.pos_labels.clone())),
        ActTarget::HeadPatternDestSrcPos => {
            axes.push(Axis::new("dest_pos", setup.pos_labels.clone()));
            axes.push(Axis::new("src_pos", setup.pos_labels.clone()));
        }
        _ => {}
    }
    let mut sweep = LabelledArray::new(t.name(), &title(t), axes);
    for l in 0..cfg.n_layers {
        let name = HookName::Block(l, Site::Pattern);
        let dims = p.dims(name)?;
        for h in 0..cfg.n_heads {
            let mut r = full(&dims);
            r[1] = h..h + 1;
            match t {
                ActTarget::HeadPatternAllPos => {
                    let v = p.patched(name, r)?;
                    sweep.set(&[l, h], v);
                }
                ActTarget::HeadPatternByPos => {
                    for d in 0..n_pos {
                        let mut r = r.clone();
                        r[2] = d..d + 1;
                        let v = p.patched(name, r)?;
                        sweep.set(&[l, h, d], v);
                    }
                }
                _ => {
                    for d in 0..n_pos {
                        for s in 0..n_pos {
                            let mut r = r.clone();
                            r[2] = d..d + 1;
                            r[3] = s..s + 1;
                            let v = p.patched(name, r)?;
                            sweep.set(&[l, h, d, s], v);
                        }
                    }
                }
            }
        }
    }
    Ok(sweep)
}
