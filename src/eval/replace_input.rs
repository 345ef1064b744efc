//! Replaced receiver inputs: a receiver reads its ablated input plus, for each sender it keeps,
//! `current(u) − ablated(u)` — the reference's form of a receiver whose incoming edges are
//! mostly removed (equal to the residual stream plus `ablated(u) − current(u)` over the removed
//! senders, but shorter to sum when few senders are kept).
//!
//! [`ReplaceInputs`] is a [`Hook`] for [`super::run`]: it watches the head outputs and MLP
//! outputs of the run from the resume layer on and rewrites the inputs of the receivers it was
//! given. Hook names are matched through a table built once (name → typed site), never parsed.

use super::ablated::Ablated;
use super::forward::{Hook, Run};
use crate::error::{Error, Result};
use crate::graph::{Node, Qkv, Receiver};
use crate::model::Model;
use candle_core::Tensor;
use std::collections::{BTreeMap, HashMap};

/// Kept senders per replaced receiver, each with its row mask (`None`: every row).
pub type KeptSenders = BTreeMap<Receiver, Vec<(Node, Option<Tensor>)>>;

/// What a watched activation is.
#[derive(Debug, Clone, Copy)]
enum Site {
    /// `blocks.{l}.attn.hook_z`.
    Z(usize),
    /// `blocks.{l}.hook_mlp_out`.
    MlpOut(usize),
    /// `blocks.{l}.hook_{q,k,v}_input` (all heads).
    HeadInputs(usize, Qkv),
    /// `blocks.{l}.hook_mlp_in`.
    MlpIn(usize),
    /// The last `hook_resid_post` (the logits' input).
    Final,
}

/// The hook that replaces the inputs of receivers.
pub struct ReplaceInputs<'a> {
    model: &'a Model,
    clean: &'a Run,
    ablated: &'a Ablated,
    start: usize,
    replace: KeptSenders,
    z: BTreeMap<usize, Tensor>,
    mlp_out: BTreeMap<usize, Tensor>,
    results: BTreeMap<(usize, usize), Tensor>,
    sites: HashMap<String, Site>,
}

impl<'a> ReplaceInputs<'a> {
    /// Replace the inputs of the receivers in `replace` in a run resumed at layer `start` from
    /// `clean` (senders before `start` read their clean outputs).
    pub fn new(
        model: &'a Model,
        clean: &'a Run,
        ablated: &'a Ablated,
        start: usize,
        replace: KeptSenders,
    ) -> Self {
        let n_layers = model.cfg.n_layers;
        let mut sites = HashMap::new();
        for l in start..n_layers {
            sites.insert(format!("blocks.{l}.attn.hook_z"), Site::Z(l));
            sites.insert(format!("blocks.{l}.hook_mlp_out"), Site::MlpOut(l));
        }
        for r in replace.keys() {
            let (name, site) = match *r {
                Receiver::Head(l, _, x) => (
                    format!("blocks.{l}.hook_{}_input", x.letter()),
                    Site::HeadInputs(l, x),
                ),
                Receiver::Mlp(l) => (format!("blocks.{l}.hook_mlp_in"), Site::MlpIn(l)),
                Receiver::Logits => (
                    format!("blocks.{}.hook_resid_post", n_layers - 1),
                    Site::Final,
                ),
            };
            sites.insert(name, site);
        }
        ReplaceInputs {
            model,
            clean,
            ablated,
            start,
            replace,
            z: BTreeMap::new(),
            mlp_out: BTreeMap::new(),
            results: BTreeMap::new(),
            sites,
        }
    }

    /// Whether there is anything to replace.
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty()
    }

    fn current(&mut self, u: Node) -> Result<Tensor> {
        match u {
            Node::Embed => Ok(self.clean.embed.clone()),
            Node::Head(l, _) | Node::Mlp(l) if l < self.start => {
                self.clean.sender_out(self.model, u)
            }
            Node::Head(l, h) => {
                if let Some(t) = self.results.get(&(l, h)) {
                    return Ok(t.clone());
                }
                let z = self.z.get(&l).ok_or_else(|| {
                    Error::input(format!("internal: layer {l} attention not seen yet"))
                })?;
                let t = self.model.head_result(l, h, z)?;
                self.results.insert((l, h), t.clone());
                Ok(t)
            }
            Node::Mlp(l) => self
                .mlp_out
                .get(&l)
                .cloned()
                .ok_or_else(|| Error::input(format!("internal: MLP {l} not seen yet"))),
        }
    }

    fn input(&mut self, r: &Receiver) -> Result<Tensor> {
        let mut x = self.ablated.input(r).clone();
        let kept = self.replace.get(r).cloned().unwrap_or_default();
        for (u, mask) in kept {
            let cur = self.current(u)?;
            let d = (cur - &self.ablated.out[&u])?;
            x = match mask {
                Some(m) => (x + d.broadcast_mul(&m)?)?,
                None => (x + d)?,
            };
        }
        Ok(x)
    }
}

impl Hook for ReplaceInputs<'_> {
    fn wants(&self, name: &str) -> bool {
        self.sites.contains_key(name)
    }

    fn visit(&mut self, name: &str, act: Tensor) -> Result<Tensor> {
        let Some(&site) = self.sites.get(name) else {
            return Ok(act);
        };
        match site {
            Site::Z(l) => {
                self.z.insert(l, act.clone());
                Ok(act)
            }
            Site::MlpOut(l) => {
                self.mlp_out.insert(l, act.clone());
                Ok(act)
            }
            Site::MlpIn(l) => self.input(&Receiver::Mlp(l)),
            Site::Final => self.input(&Receiver::Logits),
            Site::HeadInputs(l, x) => {
                let n_heads = self.model.cfg.n_heads;
                let mut heads = Vec::with_capacity(n_heads);
                for h in 0..n_heads {
                    let r = Receiver::Head(l, h, x);
                    if self.replace.contains_key(&r) {
                        heads.push(self.input(&r)?);
                    } else {
                        heads.push(act.narrow(2, h, 1)?.squeeze(2)?);
                    }
                }
                Ok(Tensor::stack(&heads, 2)?)
            }
        }
    }
}
