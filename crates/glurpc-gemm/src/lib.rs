//! The CPU matrix product behind glurpc's linear maps: `c = a · b + bias`
//! with `b` (the weights) packed once, at load, into panels as wide as the
//! chosen micro-kernel's register tile, and the micro-kernel reading `a` in
//! place. Weights never change, so no product repacks them; rows and panels
//! are shared out over rayon's pool (the one pool the rest of the forward
//! pass uses).
//!
//! Kernels ([`Kernel`], chosen once per process by [`selected`]): a 14×32
//! AVX-512F tile on 32-column panels (`avx512`), a 6×16 AVX2/FMA tile on
//! 16-column panels (`avx2`), and the portable path, for which
//! [`PackedWeights::pack`] returns `None` and callers keep their own
//! product. `GLURPC_GEMM=avx512|avx2|portable` forces one; a forced kernel
//! this CPU lacks is an error ([`selected`]), never a silent fallback.
//!
//! Rounding: every element's sum runs over the depth in 512-deep blocks,
//! in order, whatever the thread count or partition, and both SIMD kernels
//! accumulate identically, so their results are bit-identical.
//!
//! [`elementwise`] holds the rest of the pass's per-element work (GELU,
//! softmax, LayerNorm, BatchNorm + ELU), compiled for the same widths.
//!
//! Its own crate so that every build profile compiles it optimised (the
//! root `Cargo.toml` sets its dev opt-level): the intrinsics are unusable
//! unoptimised.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod elementwise;
mod select;
#[cfg(test)]
mod tests;

pub use select::{ENV, Kernel, SelectError, choose, selected};

use rayon::prelude::*;

/// Depth per block: a panel's 512-deep slice stays in L1/L2. The same for
/// every kernel, which keeps their results identical.
const KC: usize = 512;
/// Products below this many multiply-adds run on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// A `k × n` row-major weight matrix packed for one kernel into ⌈n/w⌉
/// panels of its width `w`, each `k` rows of `w` contiguous values
/// (zero-padded past `n`).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeights {
    kernel: Kernel,
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedWeights {
    /// Packs a row-major `k × n` matrix for the process's kernel
    /// ([`selected`]); `None` when that is the portable path (or the
    /// selection failed: callers that must refuse a bad [`ENV`] call
    /// [`selected`] first) or `b` is shorter than `k × n`.
    pub fn pack(b: &[f32], k: usize, n: usize) -> Option<Self> {
        Self::pack_for(selected().ok()?, b, k, n)
    }

    /// Packs for a given kernel; `None` when it is the portable path, this
    /// CPU cannot run it, or `b` is shorter than `k × n`.
    pub fn pack_for(kernel: Kernel, b: &[f32], k: usize, n: usize) -> Option<Self> {
        let nr = kernel.panel_width();
        if nr == 0 || !kernel.supported() || b.len() < k * n {
            return None;
        }
        let np = n.div_ceil(nr);
        let mut panels = vec![0f32; np * k * nr];
        for (j, panel) in panels.chunks_mut((k * nr).max(1)).enumerate() {
            let c0 = j * nr;
            let w = nr.min(n - c0);
            for (p, row) in panel.chunks_mut(nr).enumerate() {
                row[..w].copy_from_slice(&b[p * n + c0..p * n + c0 + w]);
            }
        }
        Some(PackedWeights {
            kernel,
            k,
            n,
            panels,
        })
    }

    /// The kernel these panels are laid out for.
    pub fn kernel(&self) -> Kernel {
        self.kernel
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
        let nr = self.kernel.panel_width();
        let mut b = vec![0f32; self.k * self.n];
        for (j, panel) in self.panels.chunks((self.k * nr).max(1)).enumerate() {
            let c0 = j * nr;
            let w = nr.min(self.n - c0);
            for (p, row) in panel.chunks(nr).enumerate() {
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

/// True when the process's kernel is a packed one (AVX-512F or AVX2 + FMA
/// on x86_64), i.e. [`PackedWeights::pack`] packs.
pub fn supported() -> bool {
    selected().is_ok_and(|k| k != Kernel::Portable)
}

/// The register tile of a packed kernel: rows per micro-kernel call,
/// columns per panel, rows per cache block.
#[derive(Clone, Copy)]
struct Tile {
    mr: usize,
    nr: usize,
    mc: usize,
}

#[cfg(target_arch = "x86_64")]
fn tile(kernel: Kernel) -> Tile {
    match kernel {
        Kernel::Avx512 => Tile {
            mr: avx512::MR,
            nr: avx512::NR,
            mc: avx512::MC,
        },
        Kernel::Avx2 => Tile {
            mr: avx2::MR,
            nr: avx2::NR,
            mc: avx2::MC,
        },
        Kernel::Portable => unreachable!("portable weights are never packed"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn tile(_: Kernel) -> Tile {
    unreachable!("weights are packed on x86_64 only")
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
    let t = tile(w.kernel);
    // No pass over c before the product: the first depth block writes
    // `bias + partial sum` into fresh memory (its pages first touched by the
    // task that owns them), later blocks add to it. Same rounding as
    // starting from a copy of the bias.
    let mut c: Vec<f32> = Vec::with_capacity(m * n);
    let np = n.div_ceil(t.nr);
    let row_blocks = m.div_ceil(t.mc);
    let threads = rayon::current_num_threads();
    let out = SendPtr(c.as_mut_ptr());
    if threads < 2 || m * k * n < PARALLEL_MIN_MACS {
        // SAFETY: the whole of c, on this thread.
        unsafe { block(a, 0, m, w, t, bias, 0, np, out) };
    } else {
        // Enough tasks to balance the threads (at least four each where the
        // shape allows): row blocks, and panel groups too when there are
        // few rows. The partition never changes a result: every element's
        // sum runs over k in the same order.
        let groups = (threads * 4).div_ceil(row_blocks).clamp(1, np);
        let per_group = np.div_ceil(groups);
        (0..row_blocks * groups).into_par_iter().for_each(|i| {
            let (rb, g) = (i / groups, i % groups);
            let (r0, r1) = (rb * t.mc, ((rb + 1) * t.mc).min(m));
            let (p0, p1) = (g * per_group, ((g + 1) * per_group).min(np));
            // SAFETY: tasks cover disjoint (row block, panel group) tiles
            // of c, which outlives the parallel loop.
            unsafe { block(a, r0, r1, w, t, bias, p0, p1, out) };
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
/// thread touches in this tile; `t` is the tile of `w`'s kernel.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    a: &[f32],
    r0: usize,
    r1: usize,
    w: &PackedWeights,
    t: Tile,
    bias: &[f32],
    p0: usize,
    p1: usize,
    c: SendPtr,
) {
    let (k, n, nr) = (w.k, w.n, t.nr);
    let mut pc = 0;
    while pc < k {
        let kc = KC.min(k - pc);
        let mut i0 = r0;
        while i0 < r1 {
            let i1 = (i0 + t.mc).min(r1);
            for jp in p0..p1 {
                let panel = &w.panels[(jp * k + pc) * nr..(jp * k + pc + kc) * nr];
                let cols = nr.min(n - jp * nr);
                // The first depth block starts from the bias, not from c.
                let init = (pc == 0).then(|| bias[jp * nr..jp * nr + cols].as_ptr());
                let mut i = i0;
                while i < i1 {
                    let rows = t.mr.min(i1 - i);
                    let ap = a[i * k + pc..].as_ptr();
                    let cp = c.0.wrapping_add(i * n + jp * nr);
                    // SAFETY: rows i..i+rows of a (stride k, kc values from
                    // pc) and of c (stride n, `cols` values from the panel's
                    // first column) lie inside their buffers; the caller owns
                    // this tile of c, written by this task's first block
                    // before any later block reads it.
                    unsafe { micro(w.kernel, rows, kc, ap, k, panel.as_ptr(), cp, n, cols, init) };
                    i += rows;
                }
            }
            i0 = i1;
        }
        pc += kc;
    }
}

/// Runs `kernel`'s micro-kernel on `rows` rows.
///
/// # Safety
/// As the kernels' own `micro`; `kernel` is one [`PackedWeights::pack_for`]
/// checked this CPU supports.
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    kernel: Kernel,
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
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded from `block`; the kernel's CPU features were
    // checked when the weights were packed (`PackedWeights` for a kernel
    // exists only where it runs).
    unsafe {
        match kernel {
            Kernel::Avx512 => avx512::micro(rows, kc, a, lda, b, c, ldc, cols, init),
            Kernel::Avx2 => avx2::micro(rows, kc, a, lda, b, c, ldc, cols, init),
            Kernel::Portable => unreachable!("portable weights are never packed"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (kernel, rows, kc, a, lda, b, c, ldc, cols, init);
        unreachable!("weights are packed on x86_64 only");
    }
}
