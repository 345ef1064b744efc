//! The forward pass with patched edges: the one place where activations are swapped.
//!
//! Every receiver (a head's q, k or v input, an MLP's input, the logits) reads
//! `standard_input + Σ_patched (alt_out(u) − cur_out(u))`, where the standard input is the
//! residual stream and `cur_out(u)` the sender's output in this run. Hooks see (and may
//! replace) every TransformerLens-named activation, which is how activation patching works.

use super::names::NameFilter;
use super::patch::Patches;
use crate::error::{Error, Result};
use crate::graph::{Node, Qkv, Receiver};
use crate::model::{HeadInput, Model};
use candle_core::{Tensor, D};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Named activations kept from a run.
pub type ActivationCache = BTreeMap<String, Tensor>;

/// Sees every named activation of a run, and may replace it.
pub trait Hook {
    /// Whether this hook wants `name` (per-head inputs and head results are only built when
    /// somebody wants them).
    fn wants(&self, name: &str) -> bool;
    /// Called with the activation; returns the value the run continues with.
    fn visit(&mut self, name: &str, act: Tensor) -> Result<Tensor>;
}

/// Where logits are computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogitsAt {
    /// No logits.
    None,
    /// Every position: `[batch, pos, vocab]`.
    All,
    /// One position per row: `[batch, vocab]`.
    Rows(Vec<usize>),
}

/// Options of a run.
pub struct RunOptions<'a> {
    /// Activations to keep in [`Run::cache`].
    pub cache: NameFilter,
    /// Where to compute logits.
    pub logits: LogitsAt,
    /// A hook that sees every activation.
    pub hook: Option<&'a mut dyn Hook>,
    /// Start from this layer, taking everything before it from a previous run on the same
    /// tokens whose patches into earlier layers were the same.
    pub resume: Option<(&'a Run, usize)>,
    /// With `resume`: keep the previous run's attention of the resume layer and start at its
    /// MLP (the previous run must have computed that layer's attention).
    pub resume_at_mlp: bool,
    /// Compute only the layers before this one (no logits unless it is `n_layers`).
    pub stop: Option<usize>,
    /// With `stop`: compute the attention of the last layer (`stop − 1`) but not its MLP.
    pub stop_after_attn: bool,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            cache: NameFilter::none(),
            logits: LogitsAt::All,
            hook: None,
            resume: None,
            resume_at_mlp: false,
            stop: None,
            stop_after_attn: false,
        }
    }
}

/// The outputs of every sender in one run, the residual stream at each layer, logits and cache.
#[derive(Debug, Clone)]
pub struct Run {
    /// `[batch, pos]` token ids.
    pub tokens: Tensor,
    /// The embedding sender's output (token + positional), `[batch, pos, d_model]`.
    pub embed: Tensor,
    /// Per layer: `hook_z`, `[batch, pos, n_heads, d_head]`.
    pub z: Vec<Tensor>,
    /// Per layer: the attention output (all heads plus `b_O`).
    pub attn_out: Vec<Tensor>,
    /// Per layer: the MLP output (absent in attention-only models).
    pub mlp_out: Vec<Option<Tensor>>,
    /// The residual stream entering each layer, and after the last (index `n_layers`).
    pub resid: Vec<Tensor>,
    /// Logits where asked for.
    pub logits: Option<Tensor>,
    /// Kept activations.
    pub cache: ActivationCache,
    head_results: RefCell<BTreeMap<(usize, usize), Tensor>>,
}

impl Run {
    /// A sender's output in this run, `[batch, pos, d_model]` (head outputs exclude `b_O`).
    pub fn sender_out(&self, model: &Model, node: Node) -> Result<Tensor> {
        match node {
            Node::Embed => Ok(self.embed.clone()),
            Node::Mlp(l) => self.mlp_out[l]
                .clone()
                .ok_or_else(|| Error::input("this model has no MLPs")),
            Node::Head(l, h) => {
                if let Some(t) = self.head_results.borrow().get(&(l, h)) {
                    return Ok(t.clone());
                }
                let t = model.head_result(l, h, &self.z[l])?;
                self.head_results.borrow_mut().insert((l, h), t.clone());
                Ok(t)
            }
        }
    }

    /// Number of rows.
    pub fn batch(&self) -> usize {
        self.embed.dims()[0]
    }
}

struct Emitter<'a, 'h> {
    filter: &'a NameFilter,
    hook: Option<&'a mut (dyn Hook + 'h)>,
    cache: ActivationCache,
}

impl Emitter<'_, '_> {
    fn wants(&self, name: &str) -> bool {
        self.filter.matches(name) || self.hook.as_ref().is_some_and(|h| h.wants(name))
    }

    fn emit(&mut self, name: &str, act: Tensor) -> Result<Tensor> {
        let act = match self.hook.as_mut() {
            Some(h) if h.wants(name) => h.visit(name, act)?,
            _ => act,
        };
        if self.filter.matches(name) {
            self.cache.insert(name.to_string(), act.clone());
        }
        Ok(act)
    }
}

/// Run `model` on `tokens` (`[batch, pos]` u32) with `patches`.
pub fn run(model: &Model, tokens: &Tensor, patches: &Patches, opts: RunOptions) -> Result<Run> {
    let cfg = &model.cfg;
    let n_layers = cfg.n_layers;
    let RunOptions {
        cache,
        logits,
        hook,
        resume,
        resume_at_mlp,
        stop,
        stop_after_attn,
    } = opts;
    let stop = stop.unwrap_or(n_layers).min(n_layers);
    let mut em = Emitter {
        filter: &cache,
        hook,
        cache: ActivationCache::new(),
    };

    let (start, mut out) = match resume {
        Some((prev, layer)) => {
            let layer = layer.min(n_layers);
            let keep_attn = if resume_at_mlp && layer < n_layers {
                layer + 1
            } else {
                layer
            };
            if prev.z.len() < keep_attn || prev.resid.len() <= layer {
                return Err(Error::input(format!(
                    "internal: cannot resume at layer {layer} from a run that stopped earlier"
                )));
            }
            let mut out = Run {
                tokens: tokens.clone(),
                embed: prev.embed.clone(),
                z: prev.z[..keep_attn].to_vec(),
                attn_out: prev.attn_out[..keep_attn].to_vec(),
                mlp_out: prev.mlp_out[..layer].to_vec(),
                resid: prev.resid[..=layer].to_vec(),
                logits: None,
                cache: ActivationCache::new(),
                head_results: RefCell::new(BTreeMap::new()),
            };
            for (&(l, h), t) in prev.head_results.borrow().iter() {
                if l < keep_attn {
                    out.head_results.borrow_mut().insert((l, h), t.clone());
                }
            }
            out.resid.truncate(layer + 1);
            (layer, out)
        }
        None => {
            let (e, pos) = model.embed(tokens)?;
            let e = em.emit("hook_embed", e)?;
            let embed = match pos {
                Some(p) => {
                    let p = em.emit("hook_pos_embed", p)?;
                    (e + p)?
                }
                None => e,
            };
            let out = Run {
                tokens: tokens.clone(),
                embed: embed.clone(),
                z: Vec::with_capacity(n_layers),
                attn_out: Vec::with_capacity(n_layers),
                mlp_out: Vec::with_capacity(n_layers),
                resid: vec![embed],
                logits: None,
                cache: ActivationCache::new(),
                head_results: RefCell::new(BTreeMap::new()),
            };
            (0, out)
        }
    };

    for l in start..stop.max(start) {
        let skip_attn = l == start && resume_at_mlp;
        let resid_pre = if skip_attn {
            out.resid[l].clone()
        } else {
            em.emit(&format!("blocks.{l}.hook_resid_pre"), out.resid[l].clone())?
        };
        if !skip_attn {
            // The q, k and v inputs: shared unless patched or watched per head.
            let mut inputs = Vec::with_capacity(3);
            for x in Qkv::ALL {
                let name = format!("blocks.{l}.hook_{}_input", x.letter());
                let patched = (0..cfg.n_heads).any(|h| patches.changes(&Receiver::Head(l, h, x)));
                if !patched && !em.wants(&name) {
                    inputs.push(HeadInput::Shared(resid_pre.clone()));
                    continue;
                }
                let per_head = if patched {
                    let mut heads = Vec::with_capacity(cfg.n_heads);
                    for h in 0..cfg.n_heads {
                        let r = Receiver::Head(l, h, x);
                        heads.push(patched_input(model, &out, &resid_pre, patches, &r)?);
                    }
                    Tensor::stack(&heads, 2)?
                } else {
                    HeadInput::Shared(resid_pre.clone()).per_head(cfg.n_heads)?
                };
                inputs.push(HeadInput::PerHead(em.emit(&name, per_head)?));
            }
            let (q, k, v, scales) = model.qkv(l, &inputs[0], &inputs[1], &inputs[2])?;
            em.emit(&format!("blocks.{l}.ln1.hook_scale"), scales[0].clone())?;
            let q = em.emit(&format!("blocks.{l}.attn.hook_q"), q)?;
            let k = em.emit(&format!("blocks.{l}.attn.hook_k"), k)?;
            let v = em.emit(&format!("blocks.{l}.attn.hook_v"), v)?;
            let (q, k) = if model.has_rotary() {
                (
                    em.emit(&format!("blocks.{l}.attn.hook_rot_q"), model.rotate(&q)?)?,
                    em.emit(&format!("blocks.{l}.attn.hook_rot_k"), model.rotate(&k)?)?,
                )
            } else {
                (q, k)
            };
            let scores = model.attn_scores(l, &q, &k)?;
            let scores = em.emit(&format!("blocks.{l}.attn.hook_attn_scores"), scores)?;
            let pattern = crate::model::softmax_last(&scores)?;
            let pattern = em.emit(&format!("blocks.{l}.attn.hook_pattern"), pattern)?;
            let z = model.attn_z(&pattern, &v)?;
            let z = em.emit(&format!("blocks.{l}.attn.hook_z"), z)?;
            let result_name = format!("blocks.{l}.attn.hook_result");
            let attn_out = if em.wants(&result_name) {
                let results = em.emit(&result_name, model.head_results(l, &z)?)?;
                results.sum(2)?.broadcast_add(&model.w.blocks[l].b_o)?
            } else {
                model.attn_out(l, &z)?
            };
            let attn_out = em.emit(&format!("blocks.{l}.hook_attn_out"), attn_out)?;
            out.z.push(z);
            out.attn_out.push(attn_out);
        }
        let attn_out = out.attn_out[l].clone();
        if stop_after_attn && l + 1 == stop {
            break;
        }

        let resid_mid = if cfg.parallel_residual {
            None
        } else {
            Some(em.emit(
                &format!("blocks.{l}.hook_resid_mid"),
                (&resid_pre + &attn_out)?,
            )?)
        };
        let mlp_out = if cfg.has_mlp() {
            let standard = resid_mid.as_ref().unwrap_or(&resid_pre);
            let x = patched_input(model, &out, standard, patches, &Receiver::Mlp(l))?;
            let x = em.emit(&format!("blocks.{l}.hook_mlp_in"), x)?;
            let [pre, post_in, _, scale] = {
                let blk = &model.w.blocks[l];
                let (xn, scale) = model.layer_norm(&x, &blk.ln2_w, &blk.ln2_b)?;
                let pre = match (&blk.w_in, &blk.b_in) {
                    (Some(w), Some(b)) => xn.broadcast_matmul(w)?.broadcast_add(b)?,
                    _ => return Err(Error::input("MLP weights missing")),
                };
                [pre, xn, x.clone(), scale]
            };
            let _ = post_in;
            em.emit(&format!("blocks.{l}.ln2.hook_scale"), scale)?;
            let pre = em.emit(&format!("blocks.{l}.mlp.hook_pre"), pre)?;
            let post = em.emit(&format!("blocks.{l}.mlp.hook_post"), model.mlp_act(&pre)?)?;
            let o = model.mlp_out_from_post(l, &post)?;
            Some(em.emit(&format!("blocks.{l}.hook_mlp_out"), o)?)
        } else {
            None
        };
        let base = resid_mid.unwrap_or_else(|| (&resid_pre + &attn_out).expect("same shapes"));
        let resid_post = match &mlp_out {
            Some(m) => (&base + m)?,
            None => base,
        };
        let resid_post = em.emit(&format!("blocks.{l}.hook_resid_post"), resid_post)?;
        out.mlp_out.push(mlp_out);
        out.resid.push(resid_post);
    }

    if stop < n_layers || stop_after_attn {
        out.cache = em.cache;
        return Ok(out);
    }
    let final_in = patched_input(
        model,
        &out,
        &out.resid[n_layers],
        patches,
        &Receiver::Logits,
    )?;
    out.logits = match logits {
        LogitsAt::None => None,
        LogitsAt::All => Some(unembed(model, &mut em, &final_in)?),
        LogitsAt::Rows(pos) => {
            let (b, p, d) = final_in.dims3()?;
            if pos.len() != b {
                return Err(Error::input(format!(
                    "{} logit positions given for {b} rows",
                    pos.len()
                )));
            }
            if let Some(&bad) = pos.iter().find(|&&x| x >= p) {
                return Err(Error::input(format!(
                    "logit position {bad} is past the sequence length {p}"
                )));
            }
            let idx: Vec<u32> = pos
                .iter()
                .enumerate()
                .map(|(i, &x)| (i * p + x) as u32)
                .collect();
            let idx = Tensor::from_vec(idx, b, final_in.device())?;
            let rows = final_in.reshape((b * p, d))?.index_select(&idx, 0)?;
            Some(unembed(model, &mut em, &rows)?)
        }
    };
    out.cache = em.cache;
    Ok(out)
}

/// Final LayerNorm and unembedding, with their hooks.
fn unembed(model: &Model, em: &mut Emitter, x: &Tensor) -> Result<Tensor> {
    let (xn, scale) = model.layer_norm(x, &model.w.ln_f_w, &model.w.ln_f_b)?;
    em.emit("ln_final.hook_scale", scale)?;
    let xn = em.emit("unembed.hook_in", xn)?;
    let mut logits = xn.broadcast_matmul(&model.w.w_u)?;
    if let Some(b) = &model.w.b_u {
        logits = logits.broadcast_add(b)?;
    }
    em.emit("unembed.hook_out", logits)
}

/// The input of receiver `r`: the standard residual plus the patched edges' differences.
fn patched_input(
    model: &Model,
    run: &Run,
    standard: &Tensor,
    patches: &Patches,
    r: &Receiver,
) -> Result<Tensor> {
    let mut x = standard.clone();
    for p in patches.get(r) {
        if !p.sender.feeds(r, &model.cfg) {
            return Err(Error::input(format!(
                "cannot patch {} → {r}: {} does not feed {r}",
                p.sender, p.sender
            )));
        }
        let cur = run.sender_out(model, p.sender)?;
        let delta = (&p.alt - &cur)?;
        let delta = match &p.mask {
            Some(m) => delta.broadcast_mul(m)?,
            None => delta,
        };
        x = (x + delta)?;
    }
    if let Some(d) = patches.delta(r) {
        x = x.broadcast_add(d)?;
    }
    Ok(x)
}

/// Log-probabilities over the last dimension, computed stably.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let m = logits.max_keepdim(D::Minus1)?;
    let x = logits.broadcast_sub(&m)?;
    let lse = x.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(x.broadcast_sub(&lse)?)
}
