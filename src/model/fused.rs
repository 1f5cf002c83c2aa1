//! The CPU fast paths between the linear maps, on plain slices: GELU/ReLU,
//! LayerNorm with its residual add, the distilling ConvLayer's BatchNorm,
//! ELU and max-pool in two passes, and the circular neighbours of a
//! convolution's input. Each pass is shared out over rayon's pool in chunks
//! of about [`CHUNK`] elements, and the per-element work runs at the CPU's
//! vector width (`glurpc_gemm::elementwise`). Row results never depend on
//! the chunking, so they are independent of the thread count.

use glurpc_gemm::elementwise as ew;
use rayon::prelude::*;

/// Elements per rayon task in the element-wise passes.
const CHUNK: usize = 1 << 14;

/// Whole rows of width `d` per task.
fn rows_per_task(d: usize) -> usize {
    (CHUNK / d.max(1)).max(1)
}

/// GELU (erf form) in place.
pub fn gelu(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(ew::gelu);
}

/// ReLU in place.
pub fn relu(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|v| *v = v.max(0.0)));
}

/// LayerNorm over rows of `w.len()` of `x + r` (or `x`), eps `eps`.
pub fn layer_norm(x: &[f32], r: Option<&[f32]>, w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len().max(1);
    let mut y = vec![0f32; x.len()];
    let per = rows_per_task(d) * d;
    y.par_chunks_mut(per).enumerate().for_each(|(i, out)| {
        let span = i * per..i * per + out.len();
        ew::layer_norm(out, &x[span.clone()], r.map(|r| &r[span]), w, b, eps);
    });
    y
}

/// The distilling ConvLayer after its convolution, eval mode: `y`
/// (batch × t rows of `scale.len()` channels) through the folded BatchNorm
/// and ELU in place, then max-pool (kernel 3, stride 2, padding 1) over the
/// tokens: (batch, (t-1)/2+1, channels).
pub fn norm_elu_pool(mut y: Vec<f32>, scale: &[f32], shift: &[f32], t: usize) -> Vec<f32> {
    let d = scale.len().max(1);
    let per = rows_per_task(d) * d;
    y.par_chunks_mut(per)
        .for_each(|c| ew::scale_shift_elu(c, scale, shift));
    max_pool(&y, t, d)
}

/// Max-pool, kernel 3, stride 2, padding 1 (padding never wins), over the
/// `t` tokens of each batch row of `y` (rows of `d` channels).
pub fn max_pool(y: &[f32], t: usize, d: usize) -> Vec<f32> {
    if t == 0 || d == 0 {
        return Vec::new();
    }
    let out_len = (t - 1) / 2 + 1;
    let batch = y.len() / (t * d);
    let mut out = vec![0f32; batch * out_len * d];
    out.par_chunks_mut(out_len * d)
        .zip(y.par_chunks(t * d))
        .for_each(|(ob, yb)| {
            for (i, row) in ob.chunks_exact_mut(d).enumerate() {
                let lo = (2 * i).saturating_sub(1);
                let hi = (2 * i + 1).min(t - 1);
                row.copy_from_slice(&yb[lo * d..(lo + 1) * d]);
                for j in lo + 1..=hi {
                    for (o, v) in row.iter_mut().zip(&yb[j * d..(j + 1) * d]) {
                        *o = o.max(*v);
                    }
                }
            }
        });
    out
}

/// (B, T, C) rows with each step's circular neighbours,
/// `[x[t-1], x[t], x[t+1]]`, giving (B, T, 3C).
pub fn circular_neighbours(x: &[f32], t: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len() * 3];
    if t == 0 || c == 0 {
        return out;
    }
    out.par_chunks_mut(t * 3 * c)
        .zip(x.par_chunks(t * c))
        .for_each(|(ob, xb)| {
            for (i, row) in ob.chunks_exact_mut(3 * c).enumerate() {
                for (k, src) in [(i + t - 1) % t, i, (i + 1) % t].into_iter().enumerate() {
                    row[k * c..(k + 1) * c].copy_from_slice(&xb[src * c..(src + 1) * c]);
                }
            }
        });
    out
}

/// The data embedding's sum: for each batch row, the subject token `id`
/// (D) then `value + pos + time` per step ((S, D) each, `pos` shared),
/// giving (B, S+1, D) in one pass.
pub fn embed(
    value: &[f32],
    pos: &[f32],
    time: &[f32],
    id: &[f32],
    b: usize,
    s: usize,
    d: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; b * (s + 1) * d];
    if d == 0 {
        return out;
    }
    out.par_chunks_mut((s + 1) * d)
        .enumerate()
        .for_each(|(row, ob)| {
            let (head, steps) = ob.split_at_mut(d);
            head.copy_from_slice(&id[row * d..(row + 1) * d]);
            let span = row * s * d..(row + 1) * s * d;
            for (((o, v), p), t) in steps
                .iter_mut()
                .zip(&value[span.clone()])
                .zip(pos)
                .zip(&time[span])
            {
                *o = v + p + t;
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_takes_each_window_of_three_around_the_even_steps() {
        // One batch row, 5 steps of 2 channels: windows {0,1}, {1,2,3}, {3,4}.
        let y = [1., -1., 5., 0., 2., 7., 3., 3., -4., 9.];
        assert_eq!(max_pool(&y, 5, 2), vec![5., 0., 5., 7., 3., 9.]);
        assert_eq!(max_pool(&[2., 3.], 1, 2), vec![2., 3.]);
    }

    #[test]
    fn neighbours_wrap_around() {
        let x = [1., 2., 3., 10., 20., 30.]; // (2, 3, 1)
        assert_eq!(
            circular_neighbours(&x, 3, 1),
            vec![
                3., 1., 2., 1., 2., 3., 2., 3., 1., 30., 10., 20., 10., 20., 30., 20., 30., 10.
            ]
        );
    }
}
