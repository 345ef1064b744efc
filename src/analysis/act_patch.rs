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
use super::sweep::{Axis, Sweep};
use crate::error::{Error, Result};
use crate::eval::{self, Hook, NameFilter, Patches, Run, RunOptions, Stage};
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

/// Replaces one slice of one named activation with the clean run's values.
struct SliceHook<'a> {
    name: String,
    clean: &'a Tensor,
    ranges: Vec<Range<usize>>,
}

impl Hook for SliceHook<'_> {
    fn wants(&self, name: &str) -> bool {
        name == self.name
    }

    fn visit(&mut self, _name: &str, act: Tensor) -> Result<Tensor> {
        let mut src = self.clean.clone();
        for (d, r) in self.ranges.iter().enumerate() {
            src = src.narrow(d, r.start, r.end - r.start)?;
        }
        Ok(act.contiguous()?.slice_assign(&self.ranges, &src)?)
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
    fn new(setup: &'s Setup<'m>, cache: &[&str], opts: ActPatchOptions) -> Result<Self> {
        let patterns: Vec<String> = cache.iter().map(|s| s.to_string()).collect();
        let filter = NameFilter::new(&patterns, &setup.model.cfg)?;
        Ok(Patcher {
            setup,
            clean: setup.clean_run(filter)?,
            corrupted: setup.corrupted_run(NameFilter::none())?,
            opts,
        })
    }

    /// The metric of the corrupted run with `name[ranges]` taken from the clean run.
    fn patched(&mut self, name: &str, layer: usize, ranges: Vec<Range<usize>>) -> Result<f64> {
        let clean =
            self.clean.cache.get(name).ok_or_else(|| {
                Error::input(format!("internal: activation {name} was not cached"))
            })?;
        let mut hook = SliceHook {
            name: name.to_string(),
            clean,
            ranges,
        };
        let run = eval::run(
            self.setup.model,
            &self.setup.corrupted_tokens,
            &Patches::new(),
            RunOptions {
                logits: self.setup.logits_at(),
                hook: Some(&mut hook),
                // resid_mid and mlp_out come after the layer's attention, which the patch
                // cannot change: start at the MLP
                from: self.opts.resume.then(|| {
                    let mlp_half =
                        name.ends_with(".hook_resid_mid") || name.ends_with(".hook_mlp_out");
                    let stage = if mlp_half {
                        Stage::Mlp(layer)
                    } else {
                        Stage::Attn(layer)
                    };
                    (&self.corrupted, stage)
                }),
                ..Default::default()
            },
        )?;
        self.setup.score_run(&run)
    }

    fn dims(&self, name: &str) -> Result<Vec<usize>> {
        self.clean
            .cache
            .get(name)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| Error::input(format!("internal: activation {name} was not cached")))
    }
}

fn full(dims: &[usize]) -> Vec<Range<usize>> {
    dims.iter().map(|&d| 0..d).collect()
}

/// Run one activation-patching sweep with default options.
pub fn act_patch(setup: &Setup, target: ActTarget) -> Result<Sweep> {
    act_patch_with(setup, target, ActPatchOptions::default())
}

/// Run one activation-patching sweep.
pub fn act_patch_with(setup: &Setup, target: ActTarget, opts: ActPatchOptions) -> Result<Sweep> {
    let cfg = &setup.model.cfg;
    use ActTarget::*;
    match target {
        ResidMid if cfg.parallel_residual => {
            return Err(Error::input(
                "resid_mid does not exist in a model with parallel attention and MLP (GPT-NeoX, \
                 Pythia); patch resid_pre, attn_out or mlp_out",
            ))
        }
        MlpOut if !cfg.has_mlp() => {
            return Err(Error::input(
                "mlp_out does not exist in an attention-only model; patch resid_pre or attn_out",
            ))
        }
        BlockEvery if !cfg.has_mlp() => {
            return Err(Error::input(
                "block_every includes mlp_out, which an attention-only model lacks; patch \
                 resid_pre and attn_out separately",
            ))
        }
        _ => {}
    }
    let mut sweep = match target {
        ResidPre | ResidMid | AttnOut | MlpOut => {
            let suffix = match target {
                ResidPre => "hook_resid_pre",
                ResidMid => "hook_resid_mid",
                AttnOut => "hook_attn_out",
                _ => "hook_mlp_out",
            };
            layer_pos(setup, suffix, target, opts)?
        }
        HeadOutByPos | HeadQByPos | HeadKByPos | HeadVByPos => {
            head_vector(setup, head_letter(target), true, target, opts)?
        }
        HeadOutAllPos | HeadQAllPos | HeadKAllPos | HeadVAllPos => {
            head_vector(setup, head_letter(target), false, target, opts)?
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
            Sweep::stack(target.name(), &title(target), axis, &parts)?
        }
        HeadAllPosEvery | HeadByPosEvery => {
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
            Sweep::stack(target.name(), &title(target), axis, &parts)?
        }
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

fn head_letter(t: ActTarget) -> &'static str {
    use ActTarget::*;
    match t {
        HeadQByPos | HeadQAllPos => "q",
        HeadKByPos | HeadKAllPos => "k",
        HeadVByPos | HeadVAllPos => "v",
        _ => "z",
    }
}

fn title(t: ActTarget) -> String {
    format!("Activation patching: {}", t.name())
}

fn layer_pos(setup: &Setup, suffix: &str, t: ActTarget, opts: ActPatchOptions) -> Result<Sweep> {
    let n_layers = setup.model.cfg.n_layers;
    let pattern = format!("blocks.*.{suffix}");
    let mut p = Patcher::new(setup, &[&pattern], opts)?;
    let axes = vec![
        Axis::layers(n_layers),
        Axis::new("pos", setup.pos_labels.clone()),
    ];
    let mut sweep = Sweep::new(t.name(), &title(t), axes);
    for l in 0..n_layers {
        let name = format!("blocks.{l}.{suffix}");
        let dims = p.dims(&name)?;
        for pos in 0..setup.seq_len() {
            let mut r = full(&dims);
            r[1] = pos..pos + 1;
            let v = p.patched(&name, l, r)?;
            sweep.set(&[l, pos], v);
        }
    }
    Ok(sweep)
}

fn head_vector(
    setup: &Setup,
    letter: &str,
    by_pos: bool,
    t: ActTarget,
    opts: ActPatchOptions,
) -> Result<Sweep> {
    let cfg = &setup.model.cfg;
    let pattern = format!("blocks.*.attn.hook_{letter}");
    let mut p = Patcher::new(setup, &[&pattern], opts)?;
    let mut axes = vec![Axis::layers(cfg.n_layers)];
    if by_pos {
        axes.push(Axis::new("pos", setup.pos_labels.clone()));
    }
    axes.push(Axis::heads(cfg.n_heads));
    let mut sweep = Sweep::new(t.name(), &title(t), axes);
    let positions: Vec<Option<usize>> = if by_pos {
        (0..setup.seq_len()).map(Some).collect()
    } else {
        vec![None]
    };
    for l in 0..cfg.n_layers {
        let name = format!("blocks.{l}.attn.hook_{letter}");
        let dims = p.dims(&name)?;
        for &pos in &positions {
            for h in 0..cfg.n_heads {
                let mut r = full(&dims);
                if let Some(pos) = pos {
                    r[1] = pos..pos + 1;
                }
                r[2] = h..h + 1;
                let v = p.patched(&name, l, r)?;
                match pos {
                    Some(pos) => sweep.set(&[l, pos, h], v),
                    None => sweep.set(&[l, h], v),
                }
            }
        }
    }
    Ok(sweep)
}

fn pattern(setup: &Setup, t: ActTarget, opts: ActPatchOptions) -> Result<Sweep> {
    let cfg = &setup.model.cfg;
    let mut p = Patcher::new(setup, &["blocks.*.attn.hook_pattern"], opts)?;
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
    let mut sweep = Sweep::new(t.name(), &title(t), axes);
    for l in 0..cfg.n_layers {
        let name = format!("blocks.{l}.attn.hook_pattern");
        let dims = p.dims(&name)?;
        for h in 0..cfg.n_heads {
            let mut r = full(&dims);
            r[1] = h..h + 1;
            match t {
                ActTarget::HeadPatternAllPos => {
                    let v = p.patched(&name, l, r)?;
                    sweep.set(&[l, h], v);
                }
                ActTarget::HeadPatternByPos => {
                    for d in 0..n_pos {
                        let mut r = r.clone();
                        r[2] = d..d + 1;
                        let v = p.patched(&name, l, r)?;
                        sweep.set(&[l, h, d], v);
                    }
                }
                _ => {
                    for d in 0..n_pos {
                        for s in 0..n_pos {
                            let mut r = r.clone();
                            r[2] = d..d + 1;
                            r[3] = s..s + 1;
                            let v = p.patched(&name, l, r)?;
                            sweep.set(&[l, h, d, s], v);
                        }
                    }
                }
            }
        }
    }
    Ok(sweep)
}
