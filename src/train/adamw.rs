//! AdamW (Loshchilov & Hutter), written out on candle tensors so that every update is a fixed
//! sequence of element-wise operations: the same inputs give the same bits on any thread count.

use crate::error::{Error, Result};
use candle_core::{backprop::GradStore, Tensor, Var};

/// Hyper-parameters of AdamW.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (applied to matrices only, see [`Param::decay`]).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// One trained tensor with its optimiser state.
#[derive(Debug)]
pub struct Param {
    /// Its name (Hugging Face GPT-2 naming).
    pub name: String,
    /// The variable.
    pub var: Var,
    /// Whether weight decay applies (matrices and embeddings; not biases or LayerNorm).
    pub decay: bool,
    /// First moment.
    pub m: Tensor,
    /// Second moment.
    pub v: Tensor,
}

impl Param {
    /// A parameter with zeroed moments.
    pub fn new(name: impl Into<String>, var: Var, decay: bool) -> Result<Self> {
        let m = var.as_tensor().zeros_like()?;
        let v = m.clone();
        Ok(Param {
            name: name.into(),
            var,
            decay,
            m,
            v,
        })
    }
}

/// The optimiser: its settings and the number of steps taken.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// Settings.
    pub cfg: AdamWConfig,
    /// Steps taken so far (bias correction uses `t + 1` for the next step).
    pub t: u64,
}

impl AdamW {
    /// A fresh optimiser.
    pub fn new(cfg: AdamWConfig) -> Self {
        AdamW { cfg, t: 0 }
    }

    /// The global L2 norm of the gradients, summed parameter by parameter in order (f64).
    pub fn grad_norm(params: &[Param], grads: &GradStore) -> Result<f64> {
        let mut total = 0.0f64;
        for p in params {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                let s = g
                    .to_dtype(candle_core::DType::F64)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f64>()?;
                total += s;
            }
        }
        Ok(total.sqrt())
    }

    /// One update with learning rate `lr`; gradients are multiplied by `grad_scale` first
    /// (gradient clipping). A parameter without a gradient is an error: it would silently
    /// never train.
    pub fn step(
        &mut self,
        params: &mut [Param],
        grads: &GradStore,
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        self.t += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for p in params.iter_mut() {
            let g = grads.get(p.var.as_tensor()).ok_or_else(|| {
                Error::input(format!(
                    "parameter {} got no gradient; the loss does not depend on it",
                    p.name
                ))
            })?;
            // Gradients of variables keep their backward graph (which holds the forward
            // activations); detach so that the moments do not chain every step's graph.
            let g = g.detach();
            let g = if grad_scale == 1.0 {
                g
            } else {
                (g * grad_scale)?
            };
            p.m = ((&p.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?.detach();
            p.v = ((&p.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?.detach();
            let m_hat = (&p.m / bc1)?;
            let v_hat = (&p.v / bc2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let w = p.var.as_tensor();
            let w = if p.decay && c.weight_decay > 0.0 {
                (w * (1.0 - lr * c.weight_decay))?
            } else {
                w.clone()
            };
            let next = (w - (update * lr)?)?;
            p.var.set(&next.detach())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Two steps by hand: x = 1, loss = x², lr 0.1, no decay.
    #[test]
    fn matches_hand_computation() {
        let var = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let mut ps = vec![Param::new("x", var.clone(), false).unwrap()];
        let mut opt = AdamW::new(AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        });
        let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8, 0.1);
        let (mut x, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        for t in 1..=2 {
            let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&mut ps, &grads, lr, 1.0).unwrap();
            let g = 2.0 * x;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let mh = m / (1.0 - b1.powi(t));
            let vh = v / (1.0 - b2.powi(t));
            x -= lr * mh / (vh.sqrt() + eps);
            let got = var.as_tensor().to_vec1::<f64>().unwrap()[0];
            assert!((got - x).abs() < 1e-12, "step {t}: {got} vs {x}");
        }
        // After two steps from 1.0 with a constant-sign gradient, Adam moves ≈ lr per step.
        assert!((x - 0.8).abs() < 1e-3, "{x}");
    }

    #[test]
    fn decay_shrinks_weights() {
        let var = Var::new(&[2.0f64], &Device::Cpu).unwrap();
        let mut ps = vec![Param::new("w", var.clone(), true).unwrap()];
        let mut opt = AdamW::new(AdamWConfig {
            weight_decay: 0.5,
            ..Default::default()
        });
        // Zero gradient: loss = w − w (multiplying by 0 would drop the graph).
        let w = var.as_tensor();
        let loss = (w - w).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&mut ps, &grads, 0.1, 1.0).unwrap();
        let got = var.as_tensor().to_vec1::<f64>().unwrap()[0];
        assert!((got - 2.0 * (1.0 - 0.1 * 0.5)).abs() < 1e-12, "{got}");
    }
}
