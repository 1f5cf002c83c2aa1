//! CPU kernels for the hot paths. candle's CPU matmul (gemm 0.19) runs at
//! about half of PyTorch's speed on this class of machine, so on the CPU the
//! linear maps use the packed-weight kernel of `crates/glurpc-gemm` (AVX-512F
//! or AVX2/FMA, the widest the CPU has unless `GLURPC_GEMM` forces one;
//! weights packed once at load; see `layers::Linear`) or, on CPUs without
//! either (or with `GLURPC_GEMM=portable`), `matrixmultiply` ([`linear`], its
//! own threads); attention is
//! one fused pass per (batch, head): scores, mask, scale, softmax, dropout
//! and the weighted sum, reading the heads in place. Other devices use
//! candle's own ops.

use candle_core::{Device, Storage, Tensor};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

use super::ModelError;

/// Runs `f` on the CPU slice of a contiguous f32 tensor.
pub fn with_slice<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> Result<R, ModelError>,
) -> Result<R, ModelError> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| ModelError::Input("tensor is not contiguous".into()))?;
    match &*storage {
        Storage::Cpu(cpu) => f(&cpu.as_slice::<f32>()?[start..end]),
        _ => Err(ModelError::Device("CPU kernel on a non-CPU tensor".into())),
    }
}

/// `c (m×n) = a (m×k) · b (k×n) + bias`, all row-major. matrixmultiply
/// threads large products itself (`MATMUL_NUM_THREADS`, default the
/// physical cores), packing the weights once for all threads.
pub fn linear(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, bias: &[f32]) -> Vec<f32> {
    assert!(a.len() >= m * k && b.len() >= k * n && bias.len() == n);
    let mut c = Vec::with_capacity(m * n);
    for _ in 0..m {
        c.extend_from_slice(bias);
    }
    if m == 0 || n == 0 {
        return c;
    }
    // SAFETY: the pointers cover m×k, k×n and m×n row-major blocks inside
    // live slices; the strides match those layouts.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            1.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    c
}

/// Shapes of one fused attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Batch rows.
    pub batch: usize,
    /// Query tokens.
    pub nq: usize,
    /// Key tokens.
    pub nk: usize,
    /// Heads.
    pub heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// Causal mask (query i sees keys j <= q_offset + i).
    pub causal: bool,
    /// Token index of the first query (when only the last rows are computed).
    pub q_offset: usize,
}

/// A batch row's dropout mask drawn piece by piece, in torch's element
/// order (see `dropout::MaskStream`).
pub trait RowMask: Send {
    /// The next `out.len()` scaled mask values.
    fn fill(&mut self, out: &mut [f32]);
}

/// Dropout on attention's probabilities.
#[derive(Debug)]
pub enum AttnDropout<'a, S> {
    /// None (eval).
    Off,
    /// The scaled mask (B, H, Nq, Nk) of the computed query rows.
    Mask(&'a [f32]),
    /// One mask stream per batch row over (H, q_offset + Nq, Nk): drawn in
    /// the kernel a row at a time (the first `q_offset` rows of each head
    /// drawn and skipped), never held whole.
    Streams(&'a mut [S]),
}

/// Fused multi-head attention on projected q (B, Nq, I), k and v (B, Nk, I)
/// with I = heads × head_dim, head h owning columns [h·dk, (h+1)·dk);
/// dropout (`drop`) applied to the probabilities. Returns (B, Nq, I).
pub fn attention<S: RowMask>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    drop: AttnDropout<'_, S>,
    s: AttentionShape,
) -> Vec<f32> {
    let (nq, nk) = (s.nq, s.nk);
    let inner = s.heads * s.head_dim;
    assert!(q.len() >= s.batch * nq * inner && k.len() >= s.batch * nk * inner);
    assert!(v.len() >= s.batch * nk * inner);
    let mut out = vec![0f32; s.batch * nq * inner];
    // One task per batch row; heads run inside it (their outputs interleave
    // within the row's (Nq, I) block).
    let rows = out.par_chunks_mut((nq * inner).max(1)).enumerate();
    match drop {
        AttnDropout::Off => {
            rows.for_each(|(b, ob)| attend_row(q, k, v, s, b, ob, RowDrop::<S>::Off))
        }
        AttnDropout::Mask(m) => {
            assert!(m.len() >= s.batch * s.heads * nq * nk);
            rows.for_each(|(b, ob)| attend_row(q, k, v, s, b, ob, RowDrop::<S>::Mask(m)));
        }
        AttnDropout::Streams(streams) => {
            assert_eq!(streams.len(), s.batch);
            rows.zip(streams.par_iter_mut())
                .for_each(|((b, ob), m)| attend_row(q, k, v, s, b, ob, RowDrop::Stream(m)));
        }
    }
    out
}

/// One batch row's dropout in [`attend_row`].
enum RowDrop<'a, S> {
    Off,
    Mask(&'a [f32]),
    Stream(&'a mut S),
}

/// Attention for batch row `b` into its output block `ob` (Nq, I).
fn attend_row<S: RowMask>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttentionShape,
    b: usize,
    ob: &mut [f32],
    mut drop: RowDrop<'_, S>,
) {
    let (nq, nk, h, dk) = (s.nq, s.nk, s.heads, s.head_dim);
    let inner = h * dk;
    let scale = 1.0 / (dk as f32).sqrt();
    let mut p = vec![0f32; nq * nk];
    let mut drawn = vec![
        0f32;
        if matches!(drop, RowDrop::Stream(_)) {
            nk
        } else {
            0
        }
    ];
    for head in 0..h {
        let qo = b * nq * inner + head * dk;
        let ko = b * nk * inner + head * dk;
        // SAFETY: strided views of (Nq×dk), (dk×Nk) and (Nq×Nk) blocks
        // within the q, k and p slices.
        unsafe {
            matrixmultiply::sgemm(
                nq,
                dk,
                nk,
                1.0,
                q[qo..].as_ptr(),
                inner as isize,
                1,
                k[ko..].as_ptr(),
                1,
                inner as isize,
                0.0,
                p.as_mut_ptr(),
                nk as isize,
                1,
            );
        }
        if let RowDrop::Stream(m) = &mut drop {
            for _ in 0..s.q_offset {
                m.fill(&mut drawn);
            }
        }
        for i in 0..nq {
            let row = &mut p[i * nk..(i + 1) * nk];
            let visible = if s.causal {
                (s.q_offset + i + 1).min(nk)
            } else {
                nk
            };
            glurpc_gemm::elementwise::softmax(row, visible, scale);
            let w = match &mut drop {
                RowDrop::<S>::Off => continue,
                RowDrop::Mask(m) => {
                    let mo = ((b * h + head) * nq + i) * nk;
                    &m[mo..mo + nk]
                }
                RowDrop::Stream(m) => {
                    m.fill(&mut drawn);
                    &drawn[..]
                }
            };
            for (x, w) in row.iter_mut().zip(w) {
                *x *= w;
            }
        }
        let vo = b * nk * inner + head * dk;
        // SAFETY: (Nq×Nk)·(Nk×dk) into the head's columns of ob.
        unsafe {
            matrixmultiply::sgemm(
                nq,
                nk,
                dk,
                1.0,
                p.as_ptr(),
                nk as isize,
                1,
                v[vo..].as_ptr(),
                inner as isize,
                1,
                0.0,
                ob[head * dk..].as_mut_ptr(),
                inner as isize,
                1,
            );
        }
    }
}

static FUSED_CPU: AtomicBool = AtomicBool::new(true);

/// Turns the fused CPU kernels off (process-wide) so the CPU runs candle's
/// generic ops, the path other devices take: lets the tests check that path
/// against PyTorch on a machine without a GPU.
pub fn set_fused_cpu_kernels(on: bool) {
    FUSED_CPU.store(on, Ordering::Relaxed);
}

/// True when the fused CPU kernels apply.
pub fn on_cpu(d: &Device) -> bool {
    matches!(d, Device::Cpu) && FUSED_CPU.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_a_naive_product() {
        let (m, k, n) = (130, 7, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 3) as f32 * 0.5).collect();
        let bias = vec![0.25; n];
        let c = linear(&a, m, k, &b, n, &bias);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum::<f32>() + 0.25;
                assert!((c[i * n + j] - want).abs() < 1e-4);
            }
        }
    }
}
