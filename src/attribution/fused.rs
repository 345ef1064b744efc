//! The backward pass's elementwise steps as single loops in the model's dtype: a norm's
//! backward per row, and the MLP activation's backward. Written as chains of candle operations
//! they allocate a tensor per step, and on `[heads, batch, pos, d_model]` gradients those
//! passes over memory cost more than the products.

use crate::error::{Error, Result};
use crate::model::Activation;
use candle_core::{DType, Tensor, WithDType};

/// The element types attribution computes in, with the functions the activations need.
trait Real: WithDType {
    fn exp(self) -> Self;
    fn erf(self) -> Self;
}

impl Real for f32 {
    fn exp(self) -> f32 {
        f32::exp(self)
    }
    fn erf(self) -> f32 {
        candle_core::cpu::erf::erf_f32(self)
    }
}

impl Real for f64 {
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    fn erf(self) -> f64 {
        candle_core::cpu::erf::erf_f64(self)
    }
}

fn values<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    Ok(t.flatten_all()?.to_vec1::<T>()?)
}

fn unsupported(dtype: DType) -> Error {
    Error::input(format!("attribution computes in f32 or f64, not {dtype:?}"))
}

/// A norm's backward: for `g` `[.., rows, d]` (the gradient with respect to the norm's output,
/// any number of leading copies, e.g. one per head), `xhat` `[rows, d]` and `scale` `[rows, 1]`
/// of the norm's input, and its weight `w` `[d]`: `(ĝ − mean ĝ − x̂ · mean(ĝ ⊙ x̂)) / scale`
/// with `ĝ = g ⊙ w`; without `centre` (RMSNorm) no `mean ĝ`.
pub fn norm_backward(
    g: &Tensor,
    w: &Tensor,
    xhat: &Tensor,
    scale: &Tensor,
    centre: bool,
) -> Result<Tensor> {
    fn typed<T: WithDType>(
        g: &Tensor,
        w: &Tensor,
        xhat: &Tensor,
        scale: &Tensor,
        centre: bool,
    ) -> Result<Tensor> {
        let (gv, wv, xv, sv) = (
            values::<T>(g)?,
            values::<T>(w)?,
            values::<T>(xhat)?,
            values::<T>(scale)?,
        );
        let d = wv.len();
        let rows = sv.len();
        if d == 0 || xv.len() != rows * d || gv.len() % (rows * d) != 0 {
            return Err(Error::input(format!(
                "internal: norm backward of {:?} with statistics {:?}",
                g.dims(),
                xhat.dims()
            )));
        }
        let zero = T::from_f64(0.0);
        let inv_d = T::from_f64(1.0 / d as f64);
        let mut out = Vec::with_capacity(gv.len());
        let mut gw = vec![zero; d];
        for (i, gr) in gv.chunks_exact(d).enumerate() {
            let r = i % rows;
            let xr = &xv[r * d..(r + 1) * d];
            let (mut s1, mut s2) = (zero, zero);
            for j in 0..d {
                let v = gr[j] * wv[j];
                gw[j] = v;
                s1 += v;
                s2 += v * xr[j];
            }
            let m1 = if centre { s1 * inv_d } else { zero };
            let m2 = s2 * inv_d;
            let inv_s = T::from_f64(1.0) / sv[r];
            out.extend(gw.iter().zip(xr).map(|(&v, &x)| (v - m1 - x * m2) * inv_s));
        }
        Ok(Tensor::from_vec(out, g.dims(), g.device())?)
    }
    match g.dtype() {
        DType::F32 => typed::<f32>(g, w, xhat, scale, centre),
        DType::F64 => typed::<f64>(g, w, xhat, scale, centre),
        d => Err(unsupported(d)),
    }
}

/// The activation and its derivative at `x` (candle's conventions: ReLU has slope 1 at 0).
fn act_and_slope<T: Real>(act: Activation, x: T) -> (T, T) {
    let f = T::from_f64;
    let one = f(1.0);
    match act {
        Activation::GeluNew => {
            // x·s with s = σ(2c·x(1 + a x²)); slope s + x·s(1 − s)·2c(1 + 3a x²).
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let a = f(0.044715);
            let x2 = x * x;
            let s = one / (one + (f(-2.0 * c) * x * (one + a * x2)).exp());
            (
                x * s,
                s + x * s * (one - s) * f(2.0 * c) * (one + f(3.0) * a * x2),
            )
        }
        Activation::Gelu => {
            // x·Φ(x); slope Φ(x) + x·φ(x).
            let cdf = f(0.5) * (one + (x * f(std::f64::consts::FRAC_1_SQRT_2)).erf());
            let pdf = (f(-0.5) * x * x).exp() * f(1.0 / (2.0 * std::f64::consts::PI).sqrt());
            (x * cdf, cdf + x * pdf)
        }
        Activation::Relu => {
            if x >= f(0.0) {
                (x, one)
            } else {
                (f(0.0), f(0.0))
            }
        }
        Activation::Silu => {
            let s = one / (one + (f(0.0) - x).exp());
            (x * s, s * (one + x * (one - s)))
        }
    }
}

/// The MLP activation's backward from `g`, the gradient with respect to `hook_post`, at the
/// pre-activation `pre`: the gradient with respect to `pre`, and for a gated MLP
/// (`post = act(pre) ⊙ lin`) also with respect to `lin`.
pub fn act_backward(
    act: Activation,
    g: &Tensor,
    pre: &Tensor,
    lin: Option<&Tensor>,
) -> Result<(Tensor, Option<Tensor>)> {
    fn typed<T: Real>(
        act: Activation,
        g: &Tensor,
        pre: &Tensor,
        lin: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (gv, pv) = (values::<T>(g)?, values::<T>(pre)?);
        let lv = lin.map(values::<T>).transpose()?;
        if gv.len() != pv.len() || lv.as_ref().is_some_and(|l| l.len() != pv.len()) {
            return Err(Error::input(format!(
                "internal: MLP backward of {:?} at {:?}",
                g.dims(),
                pre.dims()
            )));
        }
        let mut g_pre = Vec::with_capacity(gv.len());
        let mut g_lin = Vec::with_capacity(if lv.is_some() { gv.len() } else { 0 });
        for (i, (&gi, &xi)) in gv.iter().zip(&pv).enumerate() {
            let (a, slope) = act_and_slope(act, xi);
            match &lv {
                Some(l) => {
                    g_pre.push(gi * l[i] * slope);
                    g_lin.push(gi * a);
                }
                None => g_pre.push(gi * slope),
            }
        }
        let g_pre = Tensor::from_vec(g_pre, g.dims(), g.device())?;
        let g_lin = match lv {
            Some(_) => Some(Tensor::from_vec(g_lin, g.dims(), g.device())?),
            None => None,
        };
        Ok((g_pre, g_lin))
    }
    match g.dtype() {
        DType::F32 => typed::<f32>(act, g, pre, lin),
        DType::F64 => typed::<f64>(act, g, pre, lin),
        d => Err(unsupported(d)),
    }
}
