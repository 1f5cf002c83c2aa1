//! The 6×16 AVX2/FMA micro-kernel: 12 accumulator registers, two 8-lane
//! loads of the panel and six broadcasts of `a` per step of depth.

use std::arch::x86_64::*;

/// Columns per packed panel (two 8-lane registers).
pub(crate) const NR: usize = 16;
/// Rows per micro-kernel call.
pub(crate) const MR: usize = 6;
/// Rows per block: their 512-deep slice of `a` (192 KB) stays in L2.
pub(crate) const MC: usize = 96;

/// Dispatches to the kernel for `rows` (1..=6) rows.
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
            6 => kernel::<6>(kc, a, lda, b, c, ldc, cols, init),
            5 => kernel::<5>(kc, a, lda, b, c, ldc, cols, init),
            4 => kernel::<4>(kc, a, lda, b, c, ldc, cols, init),
            3 => kernel::<3>(kc, a, lda, b, c, ldc, cols, init),
            2 => kernel::<2>(kc, a, lda, b, c, ldc, cols, init),
            _ => kernel::<1>(kc, a, lda, b, c, ldc, cols, init),
        }
    }
}

/// `c (R × cols) = base + a (R × kc, row stride lda) · panel (kc × 16)`,
/// accumulating in 2R registers from zero over the depth in order; `base`
/// is the row vector `init` where given (c may then be uninitialised), c
/// itself otherwise.
///
/// # Safety
/// AVX2 and FMA present; `a` covers R rows of `kc` values at stride `lda`,
/// `b` kc × 16 values, `c` R rows of `cols` (1..=16) at stride `ldc`,
/// `init` (if any) `cols` values.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
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
        let mut lo = [_mm256_setzero_ps(); R];
        let mut hi = [_mm256_setzero_ps(); R];
        for p in 0..kc {
            let b0 = _mm256_loadu_ps(b.add(p * NR));
            let b1 = _mm256_loadu_ps(b.add(p * NR + 8));
            for r in 0..R {
                let x = _mm256_broadcast_ss(&*a.add(r * lda + p));
                lo[r] = _mm256_fmadd_ps(x, b0, lo[r]);
                hi[r] = _mm256_fmadd_ps(x, b1, hi[r]);
            }
        }
        if cols == NR {
            for r in 0..R {
                let cp = c.add(r * ldc);
                let base = init.unwrap_or(cp);
                _mm256_storeu_ps(cp, _mm256_add_ps(_mm256_loadu_ps(base), lo[r]));
                _mm256_storeu_ps(
                    cp.add(8),
                    _mm256_add_ps(_mm256_loadu_ps(base.add(8)), hi[r]),
                );
            }
        } else {
            let mut tmp = [0f32; NR];
            for r in 0..R {
                _mm256_storeu_ps(tmp.as_mut_ptr(), lo[r]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), hi[r]);
                let cp = c.add(r * ldc);
                let base = init.unwrap_or(cp);
                for (j, v) in tmp.iter().enumerate().take(cols) {
                    *cp.add(j) = *base.add(j) + v;
                }
            }
        }
    }
}
