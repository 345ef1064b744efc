//! A circuit's run kept in memory, so that removing one more edge recomputes only what that
//! edge reaches.
//!
//! A circuit says, per receiver, which senders it reads as they are in this run and which as
//! their ablated values ([`Reads`]). [`CircuitRun::build`] runs the circuit from a layer on
//! (everything before it is the clean run) and keeps every head's q/k/v projections, pattern
//! output `z` and result, every MLP's input and output, and the logits' input. Then
//! [`CircuitRun::drop_edge`] evaluates the circuit with one more edge removed:
//!
//! - the changed receiver's input becomes `input + ablated(u) − current(u)` (or, when a head's
//!   q/k/v edge goes, the ablated input);
//! - only that head's projection and attention (or that MLP) are recomputed; its output change
//!   `Δout(u)` then reaches exactly the later receivers that read `u` as it is in this run
//!   (a receiver that reads `u` ablated does not see it), each of which is recomputed from
//!   `input + Σ Δout`, and so on to the logits; components whose inputs do not change are not
//!   touched;
//! - in the last layer only the answer positions matter: attention outputs, the MLP and the
//!   logits are computed at one position per row (keys and values at every position).
//!
//! The result ([`CircuitDiff`]) holds what changed; [`CircuitRun::apply`] makes it the current
//! run when the edge stays removed. Every value is mathematically the one a full patched run
//! ([`super::run`]) gives for the same circuit; the floating-point rounding differs, which is
//! why ACDC checks decisions near its threshold with a full run (see `acdc::evaluate`).

use super::ablated::Ablated;
use super::forward::Run;
use crate::error::{Error, Result};
use crate::graph::{Node, Qkv, Receiver};
use crate::model::Model;
use candle_core::Tensor;
use std::collections::{BTreeMap, BTreeSet};

/// How a receiver reads its senders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    /// The residual stream plus `ablated(u) − current(u)` for these removed senders.
    Removed(BTreeSet<Node>),
    /// The ablated input plus `current(u) − ablated(u)` for these kept senders.
    Kept(BTreeSet<Node>),
}

impl Reads {
    /// Whether the receiver reads `u`'s output as it is in this run.
    pub fn reads_current(&self, u: &Node) -> bool {
        match self {
            Reads::Removed(s) => !s.contains(u),
            Reads::Kept(s) => s.contains(u),
        }
    }

    fn drop_sender(&mut self, u: Node) {
        match self {
            Reads::Removed(s) => {
                s.insert(u);
            }
            Reads::Kept(s) => {
                s.remove(&u);
            }
        }
    }
}

/// What [`CircuitRun::drop_edge`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// The edge from this sender.
    Sender(Node),
    /// Every edge into the receiver (a head's q/k/v edge): it reads its ablated input.
    All,
}

/// The fixed inputs of circuit runs: the model, the clean run, the ablated values and the
/// answer position of every row.
pub struct CircuitInputs<'a> {
    model: &'a Model,
    clean: &'a Run,
    ablated: &'a Ablated,
    /// Flat indices `row · pos + answer` into `[batch · pos, …]`.
    idx: Tensor,
    batch: usize,
    pos: usize,
}

impl<'a> CircuitInputs<'a> {
    /// `clean` must be the unpatched run of the tokens; `rows[i]` is row i's answer position.
    pub fn new(
        model: &'a Model,
        clean: &'a Run,
        ablated: &'a Ablated,
        rows: &[usize],
    ) -> Result<Self> {
        let (batch, pos, _) = clean.embed.dims3()?;
        if rows.len() != batch {
            return Err(Error::input(format!(
                "internal: {} answer positions for {batch} rows",
                rows.len()
            )));
        }
        if let Some(&bad) = rows.iter().find(|&&x| x >= pos) {
            return Err(Error::input(format!(
                "answer position {bad} is past the sequence length {pos}"
            )));
        }
        let flat: Vec<u32> = rows
            .iter()
            .enumerate()
            .map(|(i, &x)| (i * pos + x) as u32)
            .collect();
        let idx = Tensor::from_vec(flat, batch, model.device())?;
        Ok(CircuitInputs {
            model,
            clean,
            ablated,
            idx,
            batch,
            pos,
        })
    }

    /// `[batch, pos, d]` → the answer positions, `[batch, 1, d]`.
    fn rows(&self, t: &Tensor) -> Result<Tensor> {
        let d = t.dim(2)?;
        Ok(t.reshape((self.batch * self.pos, d))?
            .index_select(&self.idx, 0)?
            .reshape((self.batch, 1, d))?)
    }

    /// `t` at every position, or at the answer positions.
    fn at(&self, t: &Tensor, rows: bool) -> Result<Tensor> {
        if rows && t.dim(1)? != 1 {
            self.rows(t)
        } else {
            Ok(t.clone())
        }
    }

    fn n_layers(&self) -> usize {
        self.model.cfg.n_layers
    }

    /// A head's q, k or v from its input (before LayerNorm): `[batch, pos, 1, d_head]`,
    /// rotated for q and k where the model rotates.
    fn project(&self, l: usize, h: usize, x: Qkv, normed: &Tensor) -> Result<Tensor> {
        let blk = &self.model.w.blocks[l];
        let (which, b) = match x {
            Qkv::Q => (0, &blk.b_q),
            Qkv::K => (1, &blk.b_k),
            Qkv::V => (2, &blk.b_v),
        };
        let (bt, p, d) = normed.dims3()?;
        let dh = self.model.cfg.d_head;
        let y = normed
            .reshape((bt * p, d))?
            .matmul(&self.model.weight(&blk.w_head(which, h)?)?)?
            .broadcast_add(&self.model.weight(&b.get(h)?)?)?
            .reshape((bt, p, 1, dh))?;
        if x == Qkv::V {
            Ok(y)
        } else {
            self.model.rotate(&y)
        }
    }

    fn norm1(&self, l: usize, x: &Tensor) -> Result<Tensor> {
        let blk = &self.model.w.blocks[l];
        let m = self.model;
        Ok(
            m.layer_norm(x, &m.weight(&blk.ln1_w)?, &m.weight(&blk.ln1_b)?)?
                .0,
        )
    }

    /// One head's `z` from its q, k and v; at the answer positions only in the last layer.
    fn attend(&self, l: usize, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let scores = self.model.attn_scores(l, q, k)?;
        let mut pattern = crate::model::softmax_last(&scores)?;
        if l + 1 == self.n_layers() {
            // [b, 1, p, p] → the answer rows' patterns, [b, 1, 1, p].
            let p = self.pos;
            pattern = pattern
                .reshape((self.batch * p, p))?
                .index_select(&self.idx, 0)?
                .reshape((self.batch, 1, 1, p))?;
        }
        self.model.attn_z(&pattern, v)
    }

    /// One head's output (without `b_O`) from its `z`.
    fn head_out(&self, l: usize, h: usize, z: &Tensor) -> Result<Tensor> {
        let (b, p, _, dh) = z.dims4()?;
        let w = self.model.weight(&self.model.w.blocks[l].w_o.get(h)?)?;
        Ok(z.reshape((b * p, dh))?
            .matmul(&w)?
            .reshape((b, p, self.model.cfg.d_model))?)
    }

    fn mlp(&self, l: usize, x: &Tensor) -> Result<Tensor> {
        self.model.mlp(l, x)
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let (logits, _) = self.model.unembed(x)?;
        Ok(logits.squeeze(1)?)
    }
}

/// One head's kept values.
#[derive(Debug, Clone)]
struct HeadState {
    /// The q, k and v inputs where they differ from the layer's residual stream.
    input: [Option<Tensor>; 3],
    /// q, k, v: `[batch, pos, 1, d_head]`.
    proj: [Tensor; 3],
    /// Output without `b_O`: `[batch, pos, d_model]` (`[batch, 1, d_model]` in the last layer).
    result: Tensor,
}

/// One layer's kept values.
#[derive(Debug, Clone)]
struct LayerState {
    /// The residual stream entering the layer, `[batch, pos, d_model]`.
    resid_pre: Tensor,
    heads: Vec<HeadState>,
    /// The MLP's input and output (at the answer positions in the last layer).
    mlp: Option<(Tensor, Tensor)>,
}

/// A circuit's run from a layer on.
#[derive(Debug, Clone)]
pub struct CircuitRun {
    start: usize,
    reads: BTreeMap<Receiver, Reads>,
    layers: Vec<LayerState>,
    /// The logits' input at the answer positions, `[batch, 1, d_model]`.
    logits_in: Tensor,
    logits: Tensor,
}

/// What changes when one more edge is removed from a [`CircuitRun`].
#[derive(Debug, Clone)]
pub struct CircuitDiff {
    receiver: Receiver,
    drop: Drop,
    resid_pre: BTreeMap<usize, Tensor>,
    inputs: BTreeMap<(usize, usize, Qkv), Tensor>,
    proj: BTreeMap<(usize, usize, Qkv), Tensor>,
    results: BTreeMap<(usize, usize), Tensor>,
    mlp: BTreeMap<usize, (Tensor, Tensor)>,
    logits_in: Option<Tensor>,
    logits: Tensor,
}

impl CircuitDiff {
    /// The logits at the answer positions, `[batch, vocab]`.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }
}

/// `Σ` of tensors (`None` for none).
fn sum(parts: impl IntoIterator<Item = Result<Tensor>>) -> Result<Option<Tensor>> {
    let mut acc: Option<Tensor> = None;
    for p in parts {
        let p = p?;
        acc = Some(match acc {
            None => p,
            Some(a) => (a + p)?,
        });
    }
    Ok(acc)
}

impl CircuitRun {
    /// The first layer this run recomputes.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The logits at the answer positions, `[batch, vocab]`.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// How the receivers read their senders.
    pub fn reads(&self) -> &BTreeMap<Receiver, Reads> {
        &self.reads
    }

    /// A sender's output in this run: full positions, or the answer positions (`rows`).
    fn out(
        &self,
        cx: &CircuitInputs,
        layers: &[LayerState],
        u: Node,
        rows: bool,
    ) -> Result<Tensor> {
        let t = match u {
            Node::Head(l, h) if l >= self.start => layers[l - self.start].heads[h].result.clone(),
            Node::Mlp(l) if l >= self.start => layers[l - self.start]
                .mlp
                .as_ref()
                .map(|(_, o)| o.clone())
                .ok_or_else(|| Error::input(format!("internal: MLP {l} not computed")))?,
            _ => cx.clean.sender_out(cx.model, u)?,
        };
        cx.at(&t, rows)
    }

    /// A receiver's input from its reads and its standard input (the residual stream).
    fn input_of(
        &self,
        cx: &CircuitInputs,
        layers: &[LayerState],
        r: &Receiver,
        standard: &Tensor,
        rows: bool,
    ) -> Result<Tensor> {
        let alt = |u: &Node| -> Result<Tensor> {
            let a = cx
                .ablated
                .output(u)
                .ok_or_else(|| Error::input(format!("internal: no ablated value of {u}")))?;
            cx.at(a, rows)
        };
        match self.reads.get(r) {
            None => Ok(standard.clone()),
            Some(Reads::Removed(set)) => {
                let mut x = standard.clone();
                for u in set {
                    x = (x + (alt(u)? - self.out(cx, layers, *u, rows)?)?)?;
                }
                Ok(x)
            }
            Some(Reads::Kept(set)) => {
                let mut x = cx.at(cx.ablated.input(r), rows)?;
                for u in set {
                    x = (x + (self.out(cx, layers, *u, rows)? - alt(u)?)?)?;
                }
                Ok(x)
            }
        }
    }

    /// Run the circuit described by `reads` from layer `start` on (earlier layers are the clean
    /// run; no receiver before `start` may be changed).
    pub fn build(
        cx: &CircuitInputs,
        reads: BTreeMap<Receiver, Reads>,
        start: usize,
    ) -> Result<CircuitRun> {
        let n_layers = cx.n_layers();
        let start = start.min(n_layers);
        if let Some(r) = reads.keys().find(|r| r.layer(n_layers) < start) {
            return Err(Error::input(format!(
                "internal: circuit run from layer {start} but {r} is changed"
            )));
        }
        let mut run = CircuitRun {
            start,
            reads,
            layers: Vec::with_capacity(n_layers - start),
            logits_in: cx.clean.embed.clone(),
            logits: cx.clean.embed.clone(),
        };
        let mut layers: Vec<LayerState> = Vec::with_capacity(n_layers - start);
        let mut resid = cx.clean.resid[start].clone();
        for l in start..n_layers {
            let last = l + 1 == n_layers;
            let resid_pre = resid;
            let shared = cx.norm1(l, &resid_pre)?;
            let mut heads = Vec::with_capacity(cx.model.cfg.n_heads);
            for h in 0..cx.model.cfg.n_heads {
                let mut input: [Option<Tensor>; 3] = [None, None, None];
                let mut proj = Vec::with_capacity(3);
                for x in Qkv::ALL {
                    let r = Receiver::Head(l, h, x);
                    if run.reads.contains_key(&r) {
                        let inp = run.input_of(cx, &layers, &r, &resid_pre, false)?;
                        proj.push(cx.project(l, h, x, &cx.norm1(l, &inp)?)?);
                        input[x.index()] = Some(inp);
                    } else {
                        proj.push(cx.project(l, h, x, &shared)?);
                    }
                }
                let z = cx.attend(l, &proj[0], &proj[1], &proj[2])?;
                let result = cx.head_out(l, h, &z)?;
                let proj = [proj[0].clone(), proj[1].clone(), proj[2].clone()];
                heads.push(HeadState {
                    input,
                    proj,
                    result,
                });
            }
            let b_o = cx.model.weight(&cx.model.w.blocks[l].b_o)?;
            let attn_out = sum(heads.iter().map(|h| Ok(h.result.clone())))?
                .ok_or_else(|| Error::input("internal: a layer without heads"))?
                .broadcast_add(&b_o)?;
            let pre = cx.at(&resid_pre, last)?;
            let mid = (&pre + &attn_out)?;
            layers.push(LayerState {
                resid_pre: resid_pre.clone(),
                heads,
                mlp: None,
            });
            let mut post = mid.clone();
            if cx.model.cfg.has_mlp() {
                let r = Receiver::Mlp(l);
                let standard = if cx.model.cfg.parallel_residual {
                    &pre
                } else {
                    &mid
                };
                let x = run.input_of(cx, &layers, &r, standard, last)?;
                let o = cx.mlp(l, &x)?;
                post = (post + &o)?;
                layers[l - start].mlp = Some((x, o));
            }
            resid = post;
        }
        let final_std = cx.at(&resid, true)?;
        run.logits_in = run.input_of(cx, &layers, &Receiver::Logits, &final_std, true)?;
        run.logits = cx.logits(&run.logits_in)?;
        run.layers = layers;
        Ok(run)
    }

    /// The circuit with one more edge removed from receiver `r` (whose layer must not be
    /// before [`Self::start`]).
    pub fn drop_edge(&self, cx: &CircuitInputs, r: Receiver, drop: Drop) -> Result<CircuitDiff> {
        let n_layers = cx.n_layers();
        let rl = r.layer(n_layers);
        if rl < self.start {
            return Err(Error::input(format!(
                "internal: {r} is before the run's first layer {}",
                self.start
            )));
        }
        let mut diff = CircuitDiff {
            receiver: r,
            drop,
            resid_pre: BTreeMap::new(),
            inputs: BTreeMap::new(),
            proj: BTreeMap::new(),
            results: BTreeMap::new(),
            mlp: BTreeMap::new(),
            logits_in: None,
            logits: self.logits.clone(),
        };
        // Changed senders and their output changes (at the answer positions in the last layer).
        let mut changed: Vec<(Node, Tensor)> = vec![];
        for l in rl.max(self.start)..n_layers {
            let ls = &self.layers[l - self.start];
            if let Some(d) = sum(changed.iter().map(|(_, t)| Ok(t.clone())))? {
                diff.resid_pre.insert(l, (&ls.resid_pre + d)?);
            }
            let heads = self.heads_after_drop(cx, l, &changed, &mut diff)?;
            changed.extend(heads);
            if let Some(m) = self.mlp_after_drop(cx, l, &changed, &mut diff)? {
                changed.push(m);
            }
        }
        let new_in = if r == Receiver::Logits {
            Some(self.first_input(cx, r, drop, &self.logits_in, true)?)
        } else {
            self.delta_in(cx, &changed, &Receiver::Logits, true)?
                .map(|d| &self.logits_in + d)
                .transpose()?
        };
        if let Some(x) = new_in {
            diff.logits = cx.logits(&x)?;
            diff.logits_in = Some(x);
        }
        Ok(diff)
    }

    /// The new input of the receiver `r` whose edge is dropped, from its `current` input.
    fn first_input(
        &self,
        cx: &CircuitInputs,
        r: Receiver,
        drop: Drop,
        current: &Tensor,
        rows: bool,
    ) -> Result<Tensor> {
        match drop {
            Drop::All => cx.at(cx.ablated.input(&r), rows),
            // A sender the receiver already reads ablated: nothing changes.
            Drop::Sender(u) if self.reads.get(&r).is_some_and(|x| !x.reads_current(&u)) => {
                Ok(current.clone())
            }
            Drop::Sender(u) => {
                let a = cx
                    .ablated
                    .output(&u)
                    .ok_or_else(|| Error::input(format!("internal: no ablated {u}")))?;
                let d = (cx.at(a, rows)? - self.out(cx, &self.layers, u, rows)?)?;
                Ok((current + d)?)
            }
        }
    }

    /// The input change of receiver `rr` from the changed senders it reads as they are.
    fn delta_in(
        &self,
        cx: &CircuitInputs,
        changed: &[(Node, Tensor)],
        rr: &Receiver,
        rows: bool,
    ) -> Result<Option<Tensor>> {
        let cfg = &cx.model.cfg;
        let reads = self.reads.get(rr);
        sum(changed
            .iter()
            .filter(|(u, _)| u.feeds(rr, cfg) && reads.is_none_or(|x| x.reads_current(u)))
            .map(|(_, t)| cx.at(t, rows)))
    }

    /// Layer `l`'s heads after the drop recorded in `diff`: the heads whose q, k or v input
    /// changes (the dropped edge's receiver, or a reader of a `changed` sender) are recomputed
    /// into `diff`; returns their output changes.
    fn heads_after_drop(
        &self,
        cx: &CircuitInputs,
        l: usize,
        changed: &[(Node, Tensor)],
        diff: &mut CircuitDiff,
    ) -> Result<Vec<(Node, Tensor)>> {
        let (r, drop) = (diff.receiver, diff.drop);
        let ls = &self.layers[l - self.start];
        let mut layer_changes = vec![];
        for h in 0..cx.model.cfg.n_heads {
            let hs = &ls.heads[h];
            let mut proj: [Option<Tensor>; 3] = [None, None, None];
            for x in Qkv::ALL {
                let rr = Receiver::Head(l, h, x);
                let current = hs.input[x.index()].as_ref().unwrap_or(&ls.resid_pre);
                let new_in = if rr == r {
                    Some(self.first_input(cx, r, drop, current, false)?)
                } else {
                    self.delta_in(cx, changed, &rr, false)?
                        .map(|d| current + d)
                        .transpose()?
                };
                if let Some(inp) = new_in {
                    proj[x.index()] = Some(cx.project(l, h, x, &cx.norm1(l, &inp)?)?);
                    if rr == r || hs.input[x.index()].is_some() {
                        diff.inputs.insert((l, h, x), inp);
                    }
                }
            }
            if proj.iter().all(Option::is_none) {
                continue;
            }
            let pick = |i: usize| proj[i].as_ref().unwrap_or(&hs.proj[i]);
            let z = cx.attend(l, pick(0), pick(1), pick(2))?;
            let result = cx.head_out(l, h, &z)?;
            layer_changes.push((Node::Head(l, h), (&result - &hs.result)?));
            diff.results.insert((l, h), result);
            for (i, p) in proj.into_iter().enumerate() {
                if let Some(p) = p {
                    diff.proj.insert((l, h, Qkv::ALL[i]), p);
                }
            }
        }
        Ok(layer_changes)
    }

    /// Layer `l`'s MLP after the drop recorded in `diff`, recomputed into `diff` when its
    /// input changes; returns its output change.
    fn mlp_after_drop(
        &self,
        cx: &CircuitInputs,
        l: usize,
        changed: &[(Node, Tensor)],
        diff: &mut CircuitDiff,
    ) -> Result<Option<(Node, Tensor)>> {
        let Some((cur_in, cur_out)) = &self.layers[l - self.start].mlp else {
            return Ok(None);
        };
        let last = l + 1 == cx.n_layers();
        let rr = Receiver::Mlp(l);
        let new_in = if rr == diff.receiver {
            Some(self.first_input(cx, rr, diff.drop, cur_in, last)?)
        } else {
            self.delta_in(cx, changed, &rr, last)?
                .map(|d| cur_in + d)
                .transpose()?
        };
        let Some(x) = new_in else {
            return Ok(None);
        };
        let o = cx.mlp(l, &x)?;
        let change = (&o - cur_out)?;
        diff.mlp.insert(l, (x, o));
        Ok(Some((Node::Mlp(l), change)))
    }

    /// Make the circuit of `diff` (made by [`Self::drop_edge`] on this run) the current one.
    pub fn apply(&mut self, diff: CircuitDiff) {
        let r = diff.receiver;
        match diff.drop {
            Drop::All => {
                self.reads.insert(r, Reads::Kept(BTreeSet::new()));
            }
            Drop::Sender(u) => self
                .reads
                .entry(r)
                .or_insert_with(|| Reads::Removed(BTreeSet::new()))
                .drop_sender(u),
        }
        let s = self.start;
        for (l, t) in diff.resid_pre {
            self.layers[l - s].resid_pre = t;
        }
        for ((l, h, x), t) in diff.inputs {
            self.layers[l - s].heads[h].input[x.index()] = Some(t);
        }
        for ((l, h, x), t) in diff.proj {
            self.layers[l - s].heads[h].proj[x.index()] = t;
        }
        for ((l, h), t) in diff.results {
            self.layers[l - s].heads[h].result = t;
        }
        for (l, m) in diff.mlp {
            self.layers[l - s].mlp = Some(m);
        }
        if let Some(x) = diff.logits_in {
            self.logits_in = x;
        }
        self.logits = diff.logits;
    }
}
