//! The forward pass with patches: the one place where activations are swapped.
//!
//! Every receiver (a head's q, k or v input, an MLP's input, the logits) reads its standard
//! input (the residual stream) changed by the run's [`Patches`]; named activations may be
//! replaced too. A run is a sequence of [`Stage`]s — the embedding, each layer's attention and
//! MLP half, the logits — and may start from a cached run at any stage and stop before any
//! stage. A [`Hook`] sees every named activation (for caching or observation; typed patches
//! are the way to change a run).

use super::hook_name::{HookName, Site};
use super::names::NameFilter;
use super::patch::Patches;
use super::schedule::Stage;
use crate::error::{Error, Result};
use crate::graph::{Node, Qkv, Receiver};
use crate::model::{HeadInput, Model};
use candle_core::{Tensor, D};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Named activations kept from a run.
pub type ActivationCache = BTreeMap<String, Tensor>;

/// Sees every named activation of a run, and may replace it. Library code changes runs with
/// typed [`Patches`]; a hook is for observing (and for experiments of a user's own).
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
    /// Start at this stage, taking everything before it from a previous run on the same tokens
    /// whose patches before the stage were the same (it must have computed the stages before
    /// this one). `None`: start from the embedding.
    pub from: Option<(&'a Run, Stage)>,
    /// Stop before this stage (`None`: run through the logits).
    pub until: Option<Stage>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            cache: NameFilter::none(),
            logits: LogitsAt::All,
            hook: None,
            from: None,
            until: None,
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
    /// Per layer, [`Model::attn_post_factor`] of this run's `z` (Gemma-2; `None` otherwise),
    /// computed once for all the layer's heads.
    post_factors: RefCell<BTreeMap<usize, Option<Tensor>>>,
}

impl Run {
    fn empty(tokens: &Tensor, embed: Tensor) -> Run {
        Run {
            tokens: tokens.clone(),
            embed,
            z: Vec::new(),
            attn_out: Vec::new(),
            mlp_out: Vec::new(),
            resid: Vec::new(),
            logits: None,
            cache: ActivationCache::new(),
            head_results: RefCell::new(BTreeMap::new()),
            post_factors: RefCell::new(BTreeMap::new()),
        }
    }

    /// A kept activation ([`RunOptions::cache`]); asking for one the run did not keep is an
    /// internal error.
    pub fn cached(&self, name: HookName) -> Result<&Tensor> {
        let key = name.to_string();
        self.cache
            .get(&key)
            .ok_or_else(|| Error::input(format!("internal: {key} was not kept by the run")))
    }

    /// A sender's output in this run, `[batch, pos, d_model]` (head outputs exclude `b_O`).
    /// Head outputs are computed on first use and kept.
    pub fn sender_out(&self, model: &Model, node: Node) -> Result<Tensor> {
        if let Node::Head(l, h) = node {
            if let Some(t) = self.head_results.borrow().get(&(l, h)) {
                return Ok(t.clone());
            }
            let t = self.compute_sender_out(model, node)?;
            self.head_results.borrow_mut().insert((l, h), t.clone());
            return Ok(t);
        }
        self.compute_sender_out(model, node)
    }

    /// A sender's output in this run, computed without keeping it (a head's output costs a
    /// matrix product; use this for values read once).
    pub fn compute_sender_out(&self, model: &Model, node: Node) -> Result<Tensor> {
        match node {
            Node::Embed => Ok(self.embed.clone()),
            Node::Mlp(l) => self
                .mlp_out
                .get(l)
                .ok_or_else(|| Error::input(format!("internal: layer {l} was not computed")))?
                .clone()
                .ok_or_else(|| Error::input("this model has no MLPs")),
            Node::Head(l, h) => {
                if let Some(t) = self.head_results.borrow().get(&(l, h)) {
                    return Ok(t.clone());
                }
                let z = self
                    .z
                    .get(l)
                    .ok_or_else(|| Error::input(format!("internal: layer {l} was not computed")))?;
                let cached = self.post_factors.borrow().get(&l).cloned();
                let factor = match cached {
                    Some(f) => f,
                    None => {
                        let f = model.attn_post_factor(l, z)?;
                        self.post_factors.borrow_mut().insert(l, f.clone());
                        f
                    }
                };
                model.head_result(l, h, z, factor.as_ref())
            }
        }
    }

    /// Forget the residual stream and the attention outputs, keeping what the senders' outputs
    /// are computed from (`embed`, `z`, `mlp_out`) and the logits: a run kept to be read, not
    /// continued (starting from it is then an error).
    pub fn drop_residuals(&mut self) {
        self.resid = Vec::new();
        self.attn_out = Vec::new();
    }

    /// Recompute what [`Run::drop_residuals`] forgot, with the operations the forward pass
    /// uses (so bit for bit the same values), to continue from this run. Exact for runs whose
    /// residual-stream activations (`hook_resid_*`, `hook_attn_out`) were not replaced; patches
    /// into receivers never change them.
    pub fn rebuild_residuals(&mut self, model: &Model) -> Result<()> {
        if !self.resid.is_empty() {
            return Ok(());
        }
        let mut resid = vec![self.embed.clone()];
        let mut attn_out = Vec::with_capacity(self.z.len());
        for (l, z) in self.z.iter().enumerate() {
            let a = model.attn_out(l, z)?;
            if let Some(m) = self.mlp_out.get(l) {
                let mid = (&resid[l] + &a)?;
                resid.push(match m {
                    Some(m) => (&mid + m)?,
                    None => mid,
                });
            }
            attn_out.push(a);
        }
        self.resid = resid;
        self.attn_out = attn_out;
        Ok(())
    }

    /// Number of rows.
    pub fn batch(&self) -> usize {
        self.embed.dims()[0]
    }

    /// The part of this run before `stage`, to continue from there (see [`RunOptions::from`]).
    fn prefix(&self, stage: Stage, tokens: &Tensor, n_layers: usize) -> Result<Run> {
        let (attn, mlp, resid) = match stage {
            Stage::Embed => (0, 0, 0),
            Stage::Attn(l) => (l, l, l + 1),
            Stage::Mlp(l) => (l + 1, l, l + 1),
            Stage::Logits => (n_layers, n_layers, n_layers + 1),
        };
        if self.z.len() < attn
            || self.attn_out.len() < attn
            || self.mlp_out.len() < mlp
            || self.resid.len() < resid
        {
            return Err(Error::input(format!(
                "internal: cannot start at {stage:?} from a run that stopped earlier"
            )));
        }
        let mut out = Run::empty(tokens, self.embed.clone());
        out.z = self.z[..attn].to_vec();
        out.attn_out = self.attn_out[..attn].to_vec();
        out.mlp_out = self.mlp_out[..mlp].to_vec();
        out.resid = self.resid[..resid].to_vec();
        for (&(l, h), t) in self.head_results.borrow().iter() {
            if l < attn {
                out.head_results.borrow_mut().insert((l, h), t.clone());
            }
        }
        for (&l, f) in self.post_factors.borrow().iter() {
            if l < attn {
                out.post_factors.borrow_mut().insert(l, f.clone());
            }
        }
        Ok(out)
    }
}

/// Hands every named activation to the patches, the hook and the cache.
struct Emitter<'a, 'h> {
    patches: &'a Patches,
    filter: &'a NameFilter,
    hook: Option<&'a mut (dyn Hook + 'h)>,
    cache: ActivationCache,
}

impl Emitter<'_, '_> {
    /// Whether anybody needs `name` built (per-head inputs and head results are optional).
    fn wants(&self, name: HookName) -> bool {
        if self.patches.replaces(name) {
            return true;
        }
        if self.filter.is_empty() && self.hook.is_none() {
            return false;
        }
        let s = name.to_string();
        self.filter.matches(&s) || self.hook.as_ref().is_some_and(|h| h.wants(&s))
    }

    fn emit(&mut self, name: HookName, act: Tensor) -> Result<Tensor> {
        let mut act = act;
        for p in self.patches.activation(name) {
            act = p.apply(&act)?;
        }
        if self.filter.is_empty() && self.hook.is_none() {
            return Ok(act);
        }
        let s = name.to_string();
        let act = match self.hook.as_mut() {
            Some(h) if h.wants(&s) => h.visit(&s, act)?,
            _ => act,
        };
        if self.filter.matches(&s) {
            self.cache.insert(s, act.clone());
        }
        Ok(act)
    }
}

/// Run `model` on `tokens` (`[batch, pos]` u32) with `patches`, over the stages `opts` asks for.
pub fn run(model: &Model, tokens: &Tensor, patches: &Patches, opts: RunOptions) -> Result<Run> {
    let n_layers = model.cfg.n_layers;
    let RunOptions {
        cache,
        logits,
        hook,
        from,
        until,
    } = opts;
    let clamp = |s: Stage| match s {
        Stage::Attn(l) | Stage::Mlp(l) if l >= n_layers => Stage::Logits,
        s => s,
    };
    let mut em = Emitter {
        patches,
        filter: &cache,
        hook,
        cache: ActivationCache::new(),
    };
    let (mut stage, mut out) = match from {
        Some((prev, s)) if clamp(s) > Stage::Embed => {
            let s = clamp(s);
            (s, prev.prefix(s, tokens, n_layers)?)
        }
        _ => (Stage::Embed, Run::empty(tokens, tokens.clone())),
    };
    let until = until.map(clamp);
    loop {
        if until.is_some_and(|u| stage >= u) {
            break;
        }
        match stage {
            Stage::Embed => embed_stage(model, tokens, &mut em, &mut out)?,
            Stage::Attn(l) => attention_stage(model, l, &mut em, &mut out)?,
            Stage::Mlp(l) => mlp_stage(model, l, &mut em, &mut out)?,
            Stage::Logits => out.logits = logits_stage(model, &logits, &mut em, &out)?,
        }
        match stage.next(n_layers) {
            Some(s) => stage = s,
            None => break,
        }
    }
    out.cache = em.cache;
    Ok(out)
}

/// Token and positional embeddings: `out.embed` and the residual stream entering layer 0.
fn embed_stage(model: &Model, tokens: &Tensor, em: &mut Emitter, out: &mut Run) -> Result<()> {
    let (e, pos) = model.embed(tokens)?;
    let e = em.emit(HookName::Embed, e)?;
    let embed = match pos {
        Some(p) => {
            let p = em.emit(HookName::PosEmbed, p)?;
            (e + p)?
        }
        None => e,
    };
    out.embed = embed.clone();
    out.resid = vec![embed];
    Ok(())
}

/// One layer's attention: the q/k/v inputs (shared unless patched or watched per head), the
/// heads, `hook_attn_out`. Pushes `z` and the attention output.
fn attention_stage(model: &Model, l: usize, em: &mut Emitter, out: &mut Run) -> Result<()> {
    let cfg = &model.cfg;
    let site = |s: Site| HookName::Block(l, s);
    let resid_pre = em.emit(site(Site::ResidPre), out.resid[l].clone())?;
    out.resid[l] = resid_pre.clone();
    let mut inputs = Vec::with_capacity(3);
    for x in Qkv::ALL {
        let name = site(Site::input(x));
        let patched = (0..cfg.n_heads).any(|h| em.patches.changes(&Receiver::Head(l, h, x)));
        if !patched && !em.wants(name) {
            inputs.push(HeadInput::Shared(resid_pre.clone()));
            continue;
        }
        let per_head = if patched {
            let mut heads = Vec::with_capacity(cfg.n_heads);
            for h in 0..cfg.n_heads {
                let r = Receiver::Head(l, h, x);
                heads.push(patched_input(model, out, &resid_pre, em.patches, &r)?);
            }
            Tensor::stack(&heads, 2)?
        } else {
            HeadInput::Shared(resid_pre.clone()).per_head(cfg.n_heads)?
        };
        inputs.push(HeadInput::PerHead(em.emit(name, per_head)?));
    }
    let (q, k, v, scales) = model.qkv(l, &inputs[0], &inputs[1], &inputs[2])?;
    drop(inputs);
    em.emit(site(Site::Ln1Scale), scales[0].clone())?;
    let q = em.emit(site(Site::Q), q)?;
    let k = em.emit(site(Site::K), k)?;
    let v = em.emit(site(Site::V), v)?;
    let (q, k) = if model.has_rotary() {
        (
            em.emit(site(Site::RotQ), model.rotate(&q)?)?,
            em.emit(site(Site::RotK), model.rotate(&k)?)?,
        )
    } else {
        (q, k)
    };
    let scores = em.emit(site(Site::AttnScores), model.attn_scores(l, &q, &k)?)?;
    let pattern = crate::model::softmax_last(&scores)?;
    let pattern = em.emit(site(Site::Pattern), pattern)?;
    let z = em.emit(site(Site::Z), model.attn_z(&pattern, &v)?)?;
    let attn_out = if em.wants(site(Site::Result)) {
        let results = em.emit(site(Site::Result), model.head_results(l, &z)?)?;
        model.attn_out_from_results(l, &results)?
    } else {
        model.attn_out(l, &z)?
    };
    let attn_out = em.emit(site(Site::AttnOut), attn_out)?;
    out.z.push(z);
    out.attn_out.push(attn_out);
    Ok(())
}

/// One layer's second half: `resid_mid`, the MLP on its (patched) input, `resid_post`.
fn mlp_stage(model: &Model, l: usize, em: &mut Emitter, out: &mut Run) -> Result<()> {
    let cfg = &model.cfg;
    let site = |s: Site| HookName::Block(l, s);
    let resid_pre = out.resid[l].clone();
    let attn_out = out.attn_out[l].clone();
    let resid_mid = if cfg.parallel_residual {
        None
    } else {
        Some(em.emit(site(Site::ResidMid), (&resid_pre + &attn_out)?)?)
    };
    let mlp_out = if cfg.has_mlp() {
        let standard = resid_mid.as_ref().unwrap_or(&resid_pre);
        let x = patched_input(model, out, standard, em.patches, &Receiver::Mlp(l))?;
        let x = em.emit(site(Site::MlpIn), x)?;
        let (xn, scale) = model.mlp_norm(l, &x)?;
        em.emit(site(Site::Ln2Scale), scale)?;
        let pre = em.emit(site(Site::MlpPre), model.mlp_pre_normed(l, &xn)?)?;
        // Gated MLPs (SwiGLU, GeGLU): act(pre) ⊙ pre_linear.
        let post = match model.mlp_pre_linear(l, &xn)? {
            Some(lin) => {
                let lin = em.emit(site(Site::MlpPreLinear), lin)?;
                model.mlp_gated(&pre, &lin)?
            }
            None => model.mlp_act(&pre)?,
        };
        drop((xn, pre));
        let post = em.emit(site(Site::MlpPost), post)?;
        let o = model.mlp_out_from_post(l, &post)?;
        Some(em.emit(site(Site::MlpOut), o)?)
    } else {
        None
    };
    let base = match resid_mid {
        Some(m) => m,
        None => (&resid_pre + &attn_out)?,
    };
    let resid_post = match &mlp_out {
        Some(m) => (&base + m)?,
        None => base,
    };
    let resid_post = em.emit(site(Site::ResidPost), resid_post)?;
    out.mlp_out.push(mlp_out);
    out.resid.push(resid_post);
    Ok(())
}

/// The logits' (patched) input, then the final LayerNorm and unembedding where asked for.
fn logits_stage(
    model: &Model,
    at: &LogitsAt,
    em: &mut Emitter,
    out: &Run,
) -> Result<Option<Tensor>> {
    if *at == LogitsAt::None {
        return Ok(None);
    }
    let n_layers = model.cfg.n_layers;
    let final_in = patched_input(
        model,
        out,
        &out.resid[n_layers],
        em.patches,
        &Receiver::Logits,
    )?;
    match at {
        LogitsAt::None => Ok(None),
        LogitsAt::All => Ok(Some(unembed(model, em, &final_in)?)),
        LogitsAt::Rows(pos) => {
            let rows = select_rows(&final_in, pos)?;
            Ok(Some(unembed(model, em, &rows)?))
        }
    }
}

/// `[batch, d]` rows of `[batch, pos, d]`, one position per row.
fn select_rows(x: &Tensor, pos: &[usize]) -> Result<Tensor> {
    let (b, p, d) = x.dims3()?;
    if pos.len() != b {
        return Err(Error::input(format!(
            "{} logit positions given for {b} rows",
            pos.len()
        )));
    }
    if let Some(&bad) = pos.iter().find(|&&q| q >= p) {
        return Err(Error::input(format!(
            "logit position {bad} is past the sequence length {p}"
        )));
    }
    let idx: Vec<u32> = pos
        .iter()
        .enumerate()
        .map(|(i, &q)| (i * p + q) as u32)
        .collect();
    let idx = Tensor::from_vec(idx, b, x.device())?;
    Ok(x.reshape((b * p, d))?.index_select(&idx, 0)?)
}

/// Final LayerNorm and unembedding, with their hooks.
fn unembed(model: &Model, em: &mut Emitter, x: &Tensor) -> Result<Tensor> {
    let (xn, scale) = model.final_norm(x)?;
    em.emit(HookName::LnFinalScale, scale)?;
    let xn = em.emit(HookName::UnembedIn, xn)?;
    let logits = model.unembed_normed(&xn)?;
    let logits = em.emit(HookName::UnembedOut, logits)?;
    model.cap_logits(&logits)
}

/// The input of receiver `r`: its standard input (or a replacement base) changed by the
/// receiver's patches, in a fixed order: kept senders, edge patches, the delta.
fn patched_input(
    model: &Model,
    run: &Run,
    standard: &Tensor,
    patches: &Patches,
    r: &Receiver,
) -> Result<Tensor> {
    let Some(ip) = patches.input(r) else {
        return Ok(standard.clone());
    };
    let check = |u: Node| -> Result<()> {
        if u.feeds(r, &model.cfg) {
            Ok(())
        } else {
            Err(Error::input(format!(
                "cannot patch {u} → {r}: {u} does not feed {r}"
            )))
        }
    };
    let mut x = ip.base.as_ref().unwrap_or(standard).clone();
    for p in &ip.kept {
        check(p.sender)?;
        let d = (run.sender_out(model, p.sender)? - &p.alt)?;
        x = match &p.mask {
            Some(m) => (x + d.broadcast_mul(m)?)?,
            None => (x + d)?,
        };
    }
    for p in &ip.edges {
        check(p.sender)?;
        let cur = run.sender_out(model, p.sender)?;
        let delta = (&p.alt - &cur)?;
        let delta = match &p.mask {
            Some(m) => delta.broadcast_mul(m)?,
            None => delta,
        };
        x = (x + delta)?;
    }
    if let Some(d) = &ip.delta {
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
