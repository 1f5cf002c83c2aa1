//! The CPU matrix product behind glurpc's linear maps: `c = a · b + bias`
//! with `b` (the weights) packed once, at load, into 16-column panels, and
//! a 6×16 AVX2/FMA micro-kernel reading `a` in place. Weights never change,
//! so no product repacks them; rows and panels are shared out over rayon's
//! pool (the one pool the rest of the forward pass uses).
//!
//! Its own crate so that every build profile compiles it optimised (the
//! root `Cargo.toml` sets its dev opt-level): the intrinsics are unusable
//! unoptimised. [`PackedWeights::pack`] returns `None` where the CPU lacks
//! AVX2 or FMA; callers keep their portable path for that case.

use rayon::prelude::*;

/// Columns per packed panel (two 8-lane registers).
const NR: usize = 16;
/// Rows per micro-kernel call.
const MR: usize = 6;
/// Depth per block: a panel's 512 × 16 slice (32 KB) stays in L1/L2.
const KC: usize = 512;
/// Rows per block: their KC slice of `a` (192 KB) stays in L2.
const MC: usize = 96;
/// Products below this many multiply-adds run on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// A `k × n` row-major weight matrix packed into ⌈n/16⌉ panels, each `k`
/// rows of 16 contiguous values (zero-padded past `n`).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeights {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedWeights {
    /// Packs a row-major `k × n` matrix; `None` when this CPU has no
    /// AVX2 + FMA (or is not x86_64) or `b` is shorter than `k × n`.
    pub fn pack(b: &[f32], k: usize, n: usize) -> Option<Self> {
        if !supported() || b.len() < k * n {
            return None;
        }
        let np = n.div_ceil(NR);
        let mut panels = vec![0f32; np * k * NR];
        for (j, panel) in panels.chunks_mut(k * NR).enumerate() {
            let c0 = j * NR;
            let w = NR.min(n - c0);
            for (p, row) in panel.chunks_mut(NR).enumerate() {
                row[..w].copy_from_slice(&b[p * n + c0..p * n + c0 + w]);
            }
        }
        Some(PackedWeights { k, n, panels })
    }

    /// Input width (rows of the weight matrix).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width (columns of the weight matrix).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The matrix back in row-major `k × n` form.
    pub fn unpack(&self) -> Vec<f32> {
        let mut b = vec![0f32; self.k * self.n];
        for (j, panel) in self.panels.chunks(self.k * NR).enumerate() {
            let c0 = j * NR;
            let w = NR.min(self.n - c0);
            for (p, row) in panel.chunks(NR).enumerate() {
                b[p * self.n + c0..p * self.n + c0 + w].copy_from_slice(&row[..w]);
            }
        }
        b
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.panels.len() * std::mem::size_of::<f32>()
    }
}

/// True when this CPU runs the packed kernel (x86_64 with AVX2 and FMA).
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `a (m × k) · w + bias`, row-major, as a new `m × n` vector.
///
/// # Panics
/// When `a` holds fewer than `m × k` values or `bias` is not `n` long.
pub fn linear(a: &[f32], m: usize, w: &PackedWeights, bias: &[f32]) -> Vec<f32> {
    let (k, n) = (w.k, w.n);
    assert!(a.len() >= m * k, "input shorter than m × k");
    assert_eq!(bias.len(), n, "bias length");
    if m == 0 || n == 0 || k == 0 {
        return bias.iter().copied().cycle().take(m * n).collect();
    }
    // No pass over c before the product: the first depth block writes
    // `bias + partial sum` into fresh memory (its pages first touched by the
    // task that owns them), later blocks add to it. Same rounding as
    // starting from a copy of the bias.
    let mut c: Vec<f32> = Vec::with_capacity(m * n);
    let np = n.div_ceil(NR);
    let row_blocks = m.div_ceil(MC);
    let threads = rayon::current_num_threads();
    let out = SendPtr(c.as_mut_ptr());
    if threads < 2 || m * k * n < PARALLEL_MIN_MACS {
        // SAFETY: the whole of c, on this thread.
        unsafe { block(a, 0, m, w, bias, 0, np, out) };
    } else {
        // Enough tasks to balance the threads (at least four each where the
        // shape allows): row blocks, and panel groups too when there are
        // few rows. The partition never changes a result: every element's
        // sum runs over k in the same order.
        let groups = (threads * 4).div_ceil(row_blocks).clamp(1, np);
        let per_group = np.div_ceil(groups);
        (0..row_blocks * groups).into_par_iter().for_each(|t| {
            let (rb, g) = (t / groups, t % groups);
            let (r0, r1) = (rb * MC, ((rb + 1) * MC).min(m));
            let (p0, p1) = (g * per_group, ((g + 1) * per_group).min(np));
            // SAFETY: tasks cover disjoint (row block, panel group) tiles
            // of c, which outlives the parallel loop.
            unsafe { block(a, r0, r1, w, bias, p0, p1, out) };
        });
    }
    // SAFETY: the tasks above wrote every element of the m × n tiles
    // (row blocks cover 0..m, panel groups 0..np, each panel its columns).
    unsafe { c.set_len(m * n) };
    c
}

/// Shares the output pointer among tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint tiles only (see `linear`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `c[r0..r1, panels p0..p1] = bias + a[r0..r1, ..] · w[.., panels p0..p1]`.
///
/// # Safety
/// `c` must point at an `m × n` buffer (possibly uninitialised) no other
/// thread touches in this tile.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    a: &[f32],
    r0: usize,
    r1: usize,
    w: &PackedWeights,
    bias: &[f32],
    p0: usize,
    p1: usize,
    c: SendPtr,
) {
    let (k, n) = (w.k, w.n);
    let mut pc = 0;
    while pc < k {
        let kc = KC.min(k - pc);
        let mut i0 = r0;
        while i0 < r1 {
            let i1 = (i0 + MC).min(r1);
            for jp in p0..p1 {
                let panel = &w.panels[(jp * k + pc) * NR..(jp * k + pc + kc) * NR];
                let cols = NR.min(n - jp * NR);
                // The first depth block starts from the bias, not from c.
                let init = (pc == 0).then(|| bias[jp * NR..jp * NR + cols].as_ptr());
                let mut i = i0;
                while i < i1 {
                    let rows = MR.min(i1 - i);
                    let ap = &a[i * k + pc..];
                    let cp = c.0.wrapping_add(i * n + jp * NR);
                    // SAFETY: rows i..i+rows of a (stride k, kc values from
                    // pc) and of c (stride n, `cols` values from the panel's
                    // first column) lie inside their buffers; the caller owns
                    // this tile of c, written by this task's first block
                    // before any later block reads it.
                    unsafe { micro(rows, kc, ap, k, panel, cp, n, cols, init) };
                    i += rows;
                }
            }
            i0 = i1;
        }
        pc += kc;
    }
}

/// Dispatches to the micro-kernel for `rows` (1..=6) rows.
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    rows: usize,
    kc: usize,
    a: &[f32],
    lda: usize,
    panel: &[f32],
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Option<*const f32>,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded from `block`; AVX2 and FMA were checked when the
    // weights were packed (`PackedWeights` exists only where they are).
    unsafe {
        let (a, b) = (a.as_ptr(), panel.as_ptr());
        match rows {
            6 => avx::kernel::<6>(kc, a, lda, b, c, ldc, cols, init),
            5 => avx::kernel::<5>(kc, a, lda, b, c, ldc, cols, init),
            4 => avx::kernel::<4>(kc, a, lda, b, c, ldc, cols, init),
            3 => avx::kernel::<3>(kc, a, lda, b, c, ldc, cols, init),
            2 => avx::kernel::<2>(kc, a, lda, b, c, ldc, cols, init),
            _ => avx::kernel::<1>(kc, a, lda, b, c, ldc, cols, init),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, kc, a, lda, panel, c, ldc, cols, init);
        unreachable!("PackedWeights::pack refuses CPUs without AVX2 + FMA");
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::NR;
    use std::arch::x86_64::*;

    /// `c (R × cols) = base + a (R × kc, row stride lda) · panel (kc × 16)`,
    /// accumulating in 2R registers; `base` is the row vector `init` where
    /// given (c may then be uninitialised), c itself otherwise.
    ///
    /// # Safety
    /// AVX2 and FMA present; `a` covers R rows of `kc` values at stride
    /// `lda`, `b` kc × 16 values, `c` R rows of `cols` at stride `ldc`,
    /// `init` (if any) `cols` values.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel<const R: usize>(
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, bias: &[f32]) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    s += a[i * k + p] as f64 * b[p * n + j] as f64;
                }
                c[i * n + j] = (s + bias[j] as f64) as f32;
            }
        }
        c
    }

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn matches_a_naive_product_on_every_edge_shape() {
        if !supported() {
            assert!(PackedWeights::pack(&[1.0], 1, 1).is_none());
            return;
        }
        // Rows not a multiple of 6 or 96, columns not a multiple of 16,
        // depth over one 512 block, parallel and serial sizes, empty rows.
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 3, 17),
            (13, 520, 33),
            (97, 64, 15),
            (200, 1030, 70),
            (450, 96, 510),
            (12, 512, 1024),
            (0, 8, 8),
        ] {
            let (a, b, bias) = (data(m * k, 1), data(k * n, 2), data(n, 3));
            let w = PackedWeights::pack(&b, k, n).unwrap();
            assert_eq!((w.k(), w.n()), (k, n));
            assert_eq!(w.unpack(), b);
            let got = linear(&a, m, &w, &bias);
            let want = naive(&a, m, k, &b, n, &bias);
            assert_eq!(got.len(), m * n);
            for (x, y) in got.iter().zip(&want) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{m}x{k}x{n}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_threads() {
        if !supported() {
            return;
        }
        let (m, k, n) = (300, 700, 130);
        let (a, b, bias) = (data(m * k, 4), data(k * n, 5), data(n, 6));
        let w = PackedWeights::pack(&b, k, n).unwrap();
        let many = linear(&a, m, &w, &bias);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| linear(&a, m, &w, &bias));
        assert_eq!(many, one);
    }

    #[test]
    fn refuses_short_weights() {
        assert!(PackedWeights::pack(&[1.0, 2.0], 2, 2).is_none());
    }
}
