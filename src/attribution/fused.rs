//! The backward pass's elementwise steps as single loops in the model's dtype: a norm's
//! backward per row, and the MLP activation's backward. Written as chains of candle operations
//! they allocate a tensor per step, and on `[heads, batch, pos, d_model]` gradients those
//! passes over memory cost more than the products.

use crate::error::{Error, Result};
use crate::model::Activation;
use candle_core::{DType, Layout, Storage, Tensor, WithDType};

/// The element types attribution computes in, with the functions the activations need.
///
/// `exp` is written out (range reduction to `r ∈ [−ln 2/2, ln 2/2]`, a polynomial, and the
/// power of two built in the exponent bits) rather than calling the C library: a library call
/// per element keeps the activation's backward loop from vectorising, and took two thirds of
/// its time. Accuracy: a few units in the last place (checked against `std` in this module's
/// tests); arguments are clamped where `exp` leaves the normal range (below ≈ 1e−38 in f32,
/// 1e−307 in f64, it gives that bound instead of a subnormal or zero; above, the largest
/// normal power rather than infinity), which only the tails of a sigmoid see, where its value
/// is already 0 or 1 in the dtype.
trait Real: WithDType {
    fn exp(self) -> Self;
    fn erf(self) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn exp(self) -> f32 {
        // Cephes' expf: n = round(x / ln 2), r = x − n ln 2 (ln 2 in two parts), e^r by a
        // degree-7 polynomial, 2^n in the exponent bits.
        const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
        let x = self.clamp(-87.0, 88.0);
        let t = x * std::f32::consts::LOG2_E + MAGIC;
        let n = t - MAGIC;
        // n as an integer: t's mantissa holds MAGIC's plus n (no float-to-int conversion,
        // which does not vectorise).
        let ni = t.to_bits().wrapping_sub(MAGIC.to_bits());
        let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
        let p = 1.987_569_1e-4_f32;
        let p = p * r + 1.398_199_9e-3;
        let p = p * r + 8.333_452e-3;
        let p = p * r + 4.166_579_6e-2;
        let p = p * r + 1.666_666_5e-1;
        let p = p * r + 0.5;
        let e = p * r * r + r + 1.0;
        e * f32::from_bits(ni.wrapping_add(127) << 23)
    }
    fn erf(self) -> f32 {
        candle_core::cpu::erf::erf_f32(self)
    }
}

impl Real for f64 {
    #[inline(always)]
    fn exp(self) -> f64 {
        // n = round(x / ln 2), r = x − n ln 2 (fdlibm's two-part ln 2), e^r by its Taylor
        // series to r¹³ (the next term is below 5e−18 on |r| ≤ ln 2/2), 2^n in the exponent.
        const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
        let x = self.clamp(-708.0, 709.0);
        let t = x * std::f64::consts::LOG2_E + MAGIC;
        let n = t - MAGIC;
        let ni = t.to_bits().wrapping_sub(MAGIC.to_bits());
        let r = x - n * 6.931_471_803_691_238e-1 - n * 1.908_214_929_270_587_7e-10;
        let mut p = 1.0 / 6_227_020_800.0; // 1/13!
        for k in (1..13).rev() {
            p = p * r + 1.0 / FACTORIALS[k];
        }
        let e = p * r + 1.0;
        e * f64::from_bits(ni.wrapping_add(1023) << 52)
    }
    fn erf(self) -> f64 {
        candle_core::cpu::erf::erf_f64(self)
    }
}

/// k! for k = 0..13.
const FACTORIALS: [f64; 13] = [
    1.0,
    1.0,
    2.0,
    6.0,
    24.0,
    120.0,
    720.0,
    5040.0,
    40320.0,
    362_880.0,
    3_628_800.0,
    39_916_800.0,
    479_001_600.0,
];

/// Partial sums kept apart in a reduction.
const LANES: usize = 8;

fn unsupported(dtype: DType) -> Error {
    Error::input(format!("attribution computes in f32 or f64, not {dtype:?}"))
}

/// A contiguous tensor's elements, borrowed from its storage.
fn slice<'a, T: WithDType>(storage: &'a Storage, layout: &Layout) -> Result<&'a [T]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::input("internal: a strided tensor in a fused kernel"))?;
    match storage {
        Storage::Cpu(cpu) => Ok(&cpu.as_slice::<T>()?[start..end]),
        _ => Err(Error::input("internal: fused kernels run on the CPU")),
    }
}

/// `gw = g ⊙ w`, returning `(Σ gw, Σ gw ⊙ x)` (LANES partial sums each, so that the loop
/// vectorises).
fn weighted_sums<T: WithDType>(gw: &mut [T], g: &[T], w: &[T], x: &[T]) -> (T, T) {
    let zero = T::from_f64(0.0);
    let (mut a1, mut a2) = ([zero; LANES], [zero; LANES]);
    let chunks = gw
        .chunks_mut(LANES)
        .zip(g.chunks(LANES))
        .zip(w.chunks(LANES).zip(x.chunks(LANES)));
    for ((v, gc), (wc, xc)) in chunks {
        for k in 0..v.len() {
            v[k] = gc[k] * wc[k];
            a1[k] += v[k];
            a2[k] += v[k] * xc[k];
        }
    }
    let (mut s1, mut s2) = (zero, zero);
    for k in 0..LANES {
        s1 += a1[k];
        s2 += a2[k];
    }
    (s1, s2)
}

/// A norm's backward: for `g` `[.., rows, d]` (the gradient with respect to the norm's output,
/// any number of leading copies, e.g. one per head), `xhat` `[rows, d]` and `scale` `[rows, 1]`
/// of the norm's input, and its weight `w` `[d]`: `(ĝ − mean ĝ − x̂ · mean(ĝ ⊙ x̂)) / scale`
/// with `ĝ = g ⊙ w`; without `centre` (RMSNorm) no `mean ĝ`. With `sum`, also the sum over
/// the copies, `[rows, d]` shaped like `xhat`.
pub fn norm_backward(
    g: &Tensor,
    w: &Tensor,
    xhat: &Tensor,
    scale: &Tensor,
    centre: bool,
    sum: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    fn typed<T: WithDType>(
        g: &Tensor,
        w: &Tensor,
        xhat: &Tensor,
        scale: &Tensor,
        centre: bool,
        sum: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (g, w, xhat, scale) = (
            g.contiguous()?,
            w.contiguous()?,
            xhat.contiguous()?,
            scale.contiguous()?,
        );
        let (gs, gl) = g.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (xs, xl) = xhat.storage_and_layout();
        let (ss, sl) = scale.storage_and_layout();
        let (gv, wv, xv, sv) = (
            slice::<T>(&gs, gl)?,
            slice::<T>(&ws, wl)?,
            slice::<T>(&xs, xl)?,
            slice::<T>(&ss, sl)?,
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
        let mut total = if sum { vec![zero; rows * d] } else { vec![] };
        let mut gw = vec![zero; d];
        for (i, gr) in gv.chunks_exact(d).enumerate() {
            let r = i % rows;
            let xr = &xv[r * d..(r + 1) * d];
            let (s1, s2) = weighted_sums(&mut gw, gr, wv, xr);
            let m1 = if centre { s1 * inv_d } else { zero };
            let m2 = s2 * inv_d;
            let inv_s = T::from_f64(1.0) / sv[r];
            let start = out.len();
            out.extend(gw.iter().zip(xr).map(|(&v, &x)| (v - m1 - x * m2) * inv_s));
            if sum {
                for (t, &o) in total[r * d..(r + 1) * d].iter_mut().zip(&out[start..]) {
                    *t += o;
                }
            }
        }
        let total = if sum {
            Some(Tensor::from_vec(total, xhat.dims(), g.device())?)
        } else {
            None
        };
        Ok((Tensor::from_vec(out, g.dims(), g.device())?, total))
    }
    match g.dtype() {
        DType::F32 => typed::<f32>(g, w, xhat, scale, centre, sum),
        DType::F64 => typed::<f64>(g, w, xhat, scale, centre, sum),
        d => Err(unsupported(d)),
    }
}

/// The activation and its derivative at `x` (candle's conventions: ReLU has slope 1 at 0).
#[inline(always)]
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
        let (g, pre) = (g.contiguous()?, pre.contiguous()?);
        let lin = lin.map(Tensor::contiguous).transpose()?;
        let (gs, gl) = g.storage_and_layout();
        let (ps, pl) = pre.storage_and_layout();
        let (gv, pv) = (slice::<T>(&gs, gl)?, slice::<T>(&ps, pl)?);
        let ls = lin.as_ref().map(|l| l.storage_and_layout());
        let lv = match &ls {
            Some((s, l)) => Some(slice::<T>(s, l)?),
            None => None,
        };
        if gv.len() != pv.len() || lv.as_ref().is_some_and(|l| l.len() != pv.len()) {
            return Err(Error::input(format!(
                "internal: MLP backward of {:?} at {:?}",
                g.dims(),
                pre.dims()
            )));
        }
        let zero = T::from_f64(0.0);
        let mut g_pre = vec![zero; gv.len()];
        let mut g_lin = vec![zero; if lv.is_some() { gv.len() } else { 0 }];
        // One loop per case, with no branch on the activation inside, so that each vectorises.
        macro_rules! each {
            ($act:expr) => {
                match &lv {
                    Some(l) => {
                        for i in 0..gv.len() {
                            let (a, slope) = act_and_slope($act, pv[i]);
                            g_pre[i] = gv[i] * l[i] * slope;
                            g_lin[i] = gv[i] * a;
                        }
                    }
                    None => {
                        for ((o, &gi), &xi) in g_pre.iter_mut().zip(gv).zip(pv) {
                            *o = gi * act_and_slope($act, xi).1;
                        }
                    }
                }
            };
        }
        match act {
            Activation::GeluNew => each!(Activation::GeluNew),
            Activation::Gelu => each!(Activation::Gelu),
            Activation::Relu => each!(Activation::Relu),
            Activation::Silu => each!(Activation::Silu),
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

#[cfg(test)]
mod tests {
    use super::Real;

    #[test]
    fn exp_agrees_with_std_to_a_few_ulps() {
        let mut worst32 = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (a, b) = (Real::exp(x), x.exp());
            worst32 = worst32.max(f64::from((a - b).abs() / b) / f64::from(f32::EPSILON));
            x += 0.003_7;
        }
        assert!(worst32 <= 2.0, "f32 exp off by {worst32} ulps");
        let mut worst64 = 0f64;
        let mut x = -708.0f64;
        while x <= 709.0 {
            let (a, b) = (Real::exp(x), x.exp());
            worst64 = worst64.max((a - b).abs() / b / f64::EPSILON);
            x += 0.001_3;
        }
        assert!(worst64 <= 4.0, "f64 exp off by {worst64} ulps");
        // Clamped tails stay finite and ordered; NaN stays NaN.
        assert!(Real::exp(-200.0f32) < 2e-38 && Real::exp(200.0f32) > 1e38);
        assert!(Real::exp(f64::NAN).is_nan());
        assert_eq!(Real::exp(0.0f64), 1.0);
    }
}
