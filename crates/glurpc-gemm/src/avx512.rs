//! The 14×32 AVX-512F micro-kernel: 28 accumulator registers (of 32), two
//! 16-lane loads of the panel and fourteen broadcasts of `a` per step of
//! depth; partial panels (fewer than 32 columns) through write masks.
//!
//! Each element's sum runs over the depth block in the same order, from
//! zero, then adds to its base, exactly as the AVX2 kernel does, so both
//! kernels give bit-identical results.

use std::arch::x86_64::*;

/// Columns per packed panel (two 16-lane registers).
pub(crate) const NR: usize = 32;
/// Rows per micro-kernel call.
pub(crate) const MR: usize = 14;
/// Rows per block (8 micro-kernel calls): their 512-deep slice of `a`
/// (224 KB) stays in L2.
pub(crate) const MC: usize = 112;

/// Dispatches to the kernel for `rows` (1..=14) rows.
///
/// # Safety
/// As [`kernel`], with `rows` in place of `R`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn micro(
    rows: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Option<*const f32>,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        match rows {
            14 => kernel::<14>(kc, a, lda, b, c, ldc, cols, init),
            13 => kernel::<13>(kc, a, lda, b, c, ldc, cols, init),
            12 => kernel::<12>(kc, a, lda, b, c, ldc, cols, init),
            11 => kernel::<11>(kc, a, lda, b, c, ldc, cols, init),
            10 => kernel::<10>(kc, a, lda, b, c, ldc, cols, init),
            9 => kernel::<9>(kc, a, lda, b, c, ldc, cols, init),
            8 => kernel::<8>(kc, a, lda, b, c, ldc, cols, init),
            7 => kernel::<7>(kc, a, lda, b, c, ldc, cols, init),
            6 => kernel::<6>(kc, a, lda, b, c, ldc, cols, init),
            5 => kernel::<5>(kc, a, lda, b, c, ldc, cols, init),
            4 => kernel::<4>(kc, a, lda, b, c, ldc, cols, init),
            3 => kernel::<3>(kc, a, lda, b, c, ldc, cols, init),
            2 => kernel::<2>(kc, a, lda, b, c, ldc, cols, init),
            _ => kernel::<1>(kc, a, lda, b, c, ldc, cols, init),
        }
    }
}

/// The write mask of the first `n` of 16 lanes (`n` clamped to 0..=16).
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xFFFF
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// `c (R × cols) = base + a (R × kc, row stride lda) · panel (kc × 32)`,
/// accumulating in 2R registers from zero over the depth in order; `base`
/// is the row vector `init` where given (c may then be uninitialised), c
/// itself otherwise.
///
/// # Safety
/// AVX-512F present; `a` covers R rows of `kc` values at stride `lda`, `b`
/// kc × 32 values, `c` R rows of `cols` (1..=32) at stride `ldc`, `init`
/// (if any) `cols` values. Lanes past `cols` are neither read nor written
/// (masked, so they never fault).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Option<*const f32>,
) {
    // SAFETY: see the function's contract.
    unsafe {
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        for p in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(p * NR));
            let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
            for r in 0..R {
                let x = _mm512_set1_ps(*a.add(r * lda + p));
                lo[r] = _mm512_fmadd_ps(x, b0, lo[r]);
                hi[r] = _mm512_fmadd_ps(x, b1, hi[r]);
            }
        }
        if cols == NR {
            for r in 0..R {
                let cp = c.add(r * ldc);
                let base = init.unwrap_or(cp);
                _mm512_storeu_ps(cp, _mm512_add_ps(_mm512_loadu_ps(base), lo[r]));
                _mm512_storeu_ps(
                    cp.add(16),
                    _mm512_add_ps(_mm512_loadu_ps(base.add(16)), hi[r]),
                );
            }
        } else {
            let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
            for r in 0..R {
                // wrapping_add: the second half's address may lie past the
                // row's end when cols <= 16; its mask is then empty, so
                // nothing there is touched.
                let cp = c.wrapping_add(r * ldc);
                let base = init.unwrap_or(cp);
                let v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, base), lo[r]);
                _mm512_mask_storeu_ps(cp, m0, v0);
                let v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, base.wrapping_add(16)), hi[r]);
                _mm512_mask_storeu_ps(cp.wrapping_add(16), m1, v1);
            }
        }
    }
}
