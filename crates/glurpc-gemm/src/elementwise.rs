//! The forward pass's element-wise work at the CPU's full vector width:
//! GELU (an erf within 1.5e-7 of the exact one), the attention softmax's
//! exp, LayerNorm with the residual add fused in, and the distilling
//! ConvLayer's BatchNorm + ELU. Each function is written once as plain
//! scalar code over slices and compiled three times: for AVX-512F (512-bit
//! vectors), for AVX2 (256-bit) and for the baseline; the instance matching
//! the process's [`Kernel`] ([`selected`]) runs. Hand-written rather than
//! candle's ops because candle evaluates erf and exp one element at a time
//! through libm (scalar calls LLVM cannot vectorise) and makes one pass and
//! one allocation per op.
//!
//! Rounding: no fused multiply-adds (Rust never contracts `a * b + c`) and
//! every reduction runs over [`LANES`] fixed partial sums in the same order,
//! so the three instances give bit-identical results; only the speed differs.

use crate::select::{Kernel, selected};

/// Partial sums per reduction, whatever the vector width (16 f32 = one
/// 512-bit register, two 256-bit ones).
pub const LANES: usize = 16;

/// `e^x` for `x <= 0` (Cephes' expf polynomial on a round-to-nearest range
/// reduction, about 1 ulp); 0 below -87 (where f32 leaves the normal range).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let under = x < -87.0;
    let xc = if under { -87.0 } else { x.min(0.0) };
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits((((n as i32) + 127) << 23) as u32);
    if under { 0.0 } else { e * scale }
}

/// erf(x): its Taylor series to x^13 below |x| = 0.5, Abramowitz & Stegun
/// 7.1.26 above (absolute error under 3e-7 in f32, see the tests).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4;
    p = p * t - 1.453_152;
    p = p * t + 1.421_413_8;
    p = p * t - 0.284_496_72;
    p = p * t + 0.254_829_6;
    let far = 1.0 - p * t * exp_nonpositive(-(a * a));
    // 2/sqrt(pi) * (1 - x²/3 + x⁴/10 - x⁶/42 + x⁸/216 - x¹⁰/1320 + x¹²/9360)
    let s = a * a;
    let mut q = 1.205_533_6e-4;
    q = q * s - 8.548_327e-4;
    q = q * s + 5.223_977_6e-3;
    q = q * s - 2.686_617e-2;
    q = q * s + 1.128_379_2e-1;
    q = q * s - 3.761_264e-1;
    q = q * s + std::f32::consts::FRAC_2_SQRT_PI;
    let near = q * a;
    let y = if a < 0.5 { near } else { far };
    if x < 0.0 { -y } else { y }
}

/// GELU with the exact (erf) form, as torch's `F.gelu` default.
#[inline(always)]
pub fn gelu1(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// ELU with alpha 1 (`e^x - 1` below zero), as torch's `F.elu`.
#[inline(always)]
pub fn elu1(x: f32) -> f32 {
    if x >= 0.0 {
        x
    } else {
        exp_nonpositive(x) - 1.0
    }
}

/// Sum over [`LANES`] partial sums, then the lanes in order.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += f(*v);
        }
    }
    for (a, v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(*v);
    }
    acc.iter().sum()
}

/// Maximum over [`LANES`] partial maxima (exact in any order).
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.max(*v);
        }
    }
    for (a, v) in acc.iter_mut().zip(chunks.remainder()) {
        *a = a.max(*v);
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v))
}

#[inline(always)]
fn gelu_body(x: &mut [f32]) {
    for v in x {
        *v = gelu1(*v);
    }
}

#[inline(always)]
fn softmax_body(row: &mut [f32], visible: usize, scale: f32) {
    let (seen, hidden) = row.split_at_mut(visible.min(row.len()));
    for v in seen.iter_mut() {
        *v *= scale;
    }
    let max = lane_max(seen);
    for v in seen.iter_mut() {
        *v = exp_nonpositive(*v - max);
    }
    let inv = 1.0 / lane_sum(seen, |v| v);
    for v in seen.iter_mut() {
        *v *= inv;
    }
    hidden.fill(0.0);
}

#[inline(always)]
fn layer_norm_body(y: &mut [f32], x: &[f32], r: Option<&[f32]>, w: &[f32], b: &[f32], eps: f32) {
    let d = w.len();
    for (i, out) in y.chunks_exact_mut(d).enumerate() {
        let xs = &x[i * d..(i + 1) * d];
        match r {
            Some(r) => {
                for ((o, a), c) in out.iter_mut().zip(xs).zip(&r[i * d..(i + 1) * d]) {
                    *o = a + c;
                }
            }
            None => out.copy_from_slice(xs),
        }
        let mean = lane_sum(out, |v| v) / d as f32;
        let var = lane_sum(out, |v| (v - mean) * (v - mean)) / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((o, wv), bv) in out.iter_mut().zip(w).zip(b) {
            *o = (*o - mean) * inv * wv + bv;
        }
    }
}

#[inline(always)]
fn scale_shift_elu_body(x: &mut [f32], scale: &[f32], shift: &[f32]) {
    for row in x.chunks_exact_mut(scale.len()) {
        for ((v, s), t) in row.iter_mut().zip(scale).zip(shift) {
            *v = elu1(*v * s + t);
        }
    }
}

/// One function compiled for each vector width: `$on` runs a given
/// kernel's instance (the baseline one when the CPU lacks that kernel),
/// `$name` the process's.
macro_rules! widths {
    ($(#[$doc:meta])* pub fn $name:ident / $on:ident ($($arg:ident: $ty:ty),*) => $body:ident;) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            $on(selected().unwrap_or(Kernel::Portable), $($arg),*)
        }

        #[doc = concat!("[`", stringify!($name), "`] on a given kernel's vector width.")]
        pub fn $on(kernel: Kernel, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
                fn wide($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn narrow($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if kernel.supported() {
                    match kernel {
                        // SAFETY: the CPU has the features (checked above).
                        Kernel::Avx512 => return unsafe { wide($($arg),*) },
                        // SAFETY: as above.
                        Kernel::Avx2 => return unsafe { narrow($($arg),*) },
                        Kernel::Portable => {}
                    }
                }
            }
            $body($($arg),*)
        }
    };
}

widths! {
    /// GELU (erf form) in place.
    pub fn gelu / gelu_on(x: &mut [f32]) => gelu_body;
}

widths! {
    /// Attention's softmax on one row of scores: scaled by `scale`, softmax
    /// over the first `visible` entries, the rest (causally masked) set to 0.
    pub fn softmax / softmax_on(row: &mut [f32], visible: usize, scale: f32) => softmax_body;
}

widths! {
    /// LayerNorm of each `w.len()`-wide row of `x` (plus `r`, the residual,
    /// when given) into `y`: two-pass mean and biased variance, then
    /// `(v - mean) / sqrt(var + eps) * w + b`. `y` and `x` hold whole rows.
    pub fn layer_norm / layer_norm_on(y: &mut [f32], x: &[f32], r: Option<&[f32]>, w: &[f32], b: &[f32], eps: f32) => layer_norm_body;
}

widths! {
    /// `elu(v * scale[c] + shift[c])` in place over rows of `scale.len()`
    /// channels (eval BatchNorm folded into a scale and shift, then ELU).
    pub fn scale_shift_elu / scale_shift_elu_on(x: &mut [f32], scale: &[f32], shift: &[f32]) => scale_shift_elu_body;
}

#[cfg(test)]
#[path = "elementwise_tests.rs"]
mod tests;
