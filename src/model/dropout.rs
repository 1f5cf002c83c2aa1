//! Dropout masks: off, drawn from our own seeded RNG (one stream per batch
//! row, so a row's masks never depend on the rest of its batch), or injected
//! in call order (parity tests against recorded PyTorch masks). The seeded
//! source can also multiply its draws straight into the activations
//! ([`MaskSource::apply`]): the same draws and products as building
//! the mask tensor, without it.

use std::collections::VecDeque;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::ModelError;
use super::kernels;

/// SplitMix64: seeds and per-stream mixing.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++: a small, fast, seedable generator.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded through SplitMix64 (never the all-zero state).
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut s = [0u64; 4];
        for v in &mut s {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *v = splitmix64(x);
        }
        Rng { s }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let r = (self.s[0].wrapping_add(self.s[3]))
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }
}

/// Where a forward pass gets its dropout masks.
pub trait MaskSource {
    /// The scaled keep mask (values 0 or 1/(1-p)) for a dropout call on a
    /// tensor of `shape` in torch's layout (rows first), or `None` when
    /// dropout is off.
    fn mask(
        &mut self,
        shape: &[usize],
        p: f32,
        device: &Device,
    ) -> Result<Option<Tensor>, ModelError>;

    /// `x · mask` for a dropout call without building the mask tensor, the
    /// draws multiplied straight into a copy of `x` (the rows we hold, see
    /// [`RowLayout`]): bit-identical to multiplying by [`MaskSource::mask`].
    /// `None` when this source or tensor has no such path (another device,
    /// gradients tracked, the fused CPU kernels off); the caller then asks
    /// for the mask.
    fn apply(
        &mut self,
        _x: &Tensor,
        _p: f32,
        _layout: RowLayout,
    ) -> Option<Result<Tensor, ModelError>> {
        None
    }

    /// The per-row generators, for a kernel that draws a dropout call's
    /// mask itself, row `b` from stream `b` in [`RowRng::mask`]'s order
    /// ([`MaskStream`]). `None` when this source has none (dropout off,
    /// injected masks).
    fn row_streams(&mut self) -> Option<&mut [Rng]> {
        None
    }

    /// As [`MaskSource::apply`] on CPU values held in a vector, multiplied
    /// in place (no copy). `None` when this source has no such path.
    fn apply_slice(
        &mut self,
        _x: &mut [f32],
        _p: f32,
        _layout: RowLayout,
    ) -> Option<Result<(), ModelError>> {
        None
    }
}

/// Where one dropout call's draws land in the activations we hold: each
/// batch row is `held × channels` (tokens `start..start + held` of
/// `tokens`), while torch's call saw the row as `tokens × channels`, or as
/// `channels × tokens` when `channels_first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLayout {
    /// Tokens in torch's call (the full sequence).
    pub tokens: usize,
    /// First token held.
    pub start: usize,
    /// Tokens held.
    pub held: usize,
    /// Channels.
    pub channels: usize,
    /// Torch saw (channels, tokens) per row.
    pub channels_first: bool,
}

/// Applies one row's mask to its `held × channels` block: the mask drawn
/// first into `mask` (torch's order, [`MaskStream`]), then multiplied in our
/// layout (read transposed for channels-first, never writing `x` at a
/// stride).
fn apply_row(x: &mut [f32], mask: &mut [f32], rng: &mut Rng, p: f32, l: RowLayout) {
    MaskStream::new(rng, p).fill(mask);
    let c = l.channels;
    for (i, row) in x.chunks_mut(c.max(1)).enumerate() {
        let t = l.start + i;
        if l.channels_first {
            for (ch, v) in row.iter_mut().enumerate() {
                *v *= mask[ch * l.tokens + t];
            }
        } else {
            for (v, m) in row.iter_mut().zip(&mask[t * c..(t + 1) * c]) {
                *v *= m;
            }
        }
    }
}

/// One row stream's scaled keep mask, produced a piece at a time in
/// [`RowRng::mask`]'s order (each draw's low then high half, a half left
/// over carried to the next piece): the pieces laid end to end are that
/// row's mask, bit for bit, without holding it.
#[derive(Debug)]
pub struct MaskStream<'a> {
    rng: &'a mut Rng,
    spare: Option<u64>,
    threshold: u64,
    scale: f32,
}

impl<'a> MaskStream<'a> {
    /// The stream of `rng` for dropout probability `p`.
    pub fn new(rng: &'a mut Rng, p: f32) -> Self {
        MaskStream {
            rng,
            spare: None,
            // Keep when a uniform 32-bit draw is at or above p * 2^32.
            threshold: (p as f64 * 4_294_967_296.0) as u64,
            scale: 1.0 / (1.0 - p),
        }
    }

    /// The next `out.len()` mask values (`1/(1-p)` or 0).
    pub fn fill(&mut self, out: &mut [f32]) {
        let scale = self.scale;
        self.fill_with(out, scale, 0.0);
    }

    /// The next `out.len()` draws as `keep` or `dropped` (a GPU's mask
    /// crosses the bus as 0/1 bytes).
    pub fn fill_with<T: Copy>(&mut self, out: &mut [T], keep: T, dropped: T) {
        let t = self.threshold;
        let pick = |half: u64| if half >= t { keep } else { dropped };
        let rest = match (self.spare.take(), out.split_first_mut()) {
            (Some(half), Some((first, rest))) => {
                *first = pick(half);
                rest
            }
            (spare, _) => {
                self.spare = spare;
                out
            }
        };
        let mut pairs = rest.chunks_exact_mut(2);
        for pair in &mut pairs {
            let bits = self.rng.next_u64();
            pair[0] = pick(bits & 0xFFFF_FFFF);
            pair[1] = pick(bits >> 32);
        }
        if let [last] = pairs.into_remainder() {
            let bits = self.rng.next_u64();
            *last = pick(bits & 0xFFFF_FFFF);
            self.spare = Some(bits >> 32);
        }
    }
}

impl kernels::RowMask for MaskStream<'_> {
    fn fill(&mut self, out: &mut [f32]) {
        MaskStream::fill(self, out);
    }
}

/// Dropout off (eval).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDropout;

impl MaskSource for NoDropout {
    fn mask(&mut self, _: &[usize], _: f32, _: &Device) -> Result<Option<Tensor>, ModelError> {
        Ok(None)
    }
}

/// Masks drawn from one RNG stream per batch row.
#[derive(Debug, Clone)]
pub struct RowRng {
    rows: Vec<Rng>,
}

impl RowRng {
    /// One stream per row, each seeded with its own seed.
    pub fn new(seeds: impl IntoIterator<Item = u64>) -> Self {
        RowRng {
            rows: seeds.into_iter().map(Rng::new).collect(),
        }
    }
}

impl MaskSource for RowRng {
    fn mask(
        &mut self,
        shape: &[usize],
        p: f32,
        device: &Device,
    ) -> Result<Option<Tensor>, ModelError> {
        if p <= 0.0 {
            return Ok(None);
        }
        let rows = shape.first().copied().unwrap_or(0);
        if rows != self.rows.len() {
            return Err(ModelError::Input(format!(
                "dropout mask for {rows} rows from {} streams",
                self.rows.len()
            )));
        }
        let per_row: usize = shape[1..].iter().product();
        if !device.is_cpu() {
            // On a GPU the same draws cross the bus as 0/1 bytes (a quarter of
            // f32's) and are scaled there: the mask is bit for bit the CPU's.
            let mut keep = vec![0u8; rows * per_row];
            keep.par_chunks_mut(per_row.max(1))
                .zip(self.rows.par_iter_mut())
                .for_each(|(out, rng)| MaskStream::new(rng, p).fill_with(out, 1, 0));
            let m = Tensor::from_vec(keep, shape, device)?.to_dtype(DType::F32)?;
            return Ok(Some(m.affine(f64::from(1.0 / (1.0 - p)), 0.0)?));
        }
        let mut data = vec![0f32; rows * per_row];
        // Rows are independent streams: fill them in parallel.
        data.par_chunks_mut(per_row.max(1))
            .zip(self.rows.par_iter_mut())
            .for_each(|(out, rng)| MaskStream::new(rng, p).fill(out));
        Ok(Some(Tensor::from_vec(data, shape, device)?))
    }

    fn apply(&mut self, x: &Tensor, p: f32, l: RowLayout) -> Option<Result<Tensor, ModelError>> {
        if !kernels::on_cpu(x.device()) || x.track_op() || x.rank() != 3 {
            return None;
        }
        let out = kernels::with_slice(x, |s| {
            let mut data = s.to_vec();
            self.apply_rows(&mut data, p, l)?;
            Ok(data)
        })
        .and_then(|data| Ok(Tensor::from_vec(data, x.dims(), x.device())?));
        Some(out)
    }

    fn row_streams(&mut self) -> Option<&mut [Rng]> {
        Some(&mut self.rows)
    }

    fn apply_slice(
        &mut self,
        x: &mut [f32],
        p: f32,
        l: RowLayout,
    ) -> Option<Result<(), ModelError>> {
        if !kernels::on_cpu(&Device::Cpu) {
            return None;
        }
        Some(self.apply_rows(x, p, l))
    }
}

impl RowRng {
    /// Multiplies each row stream's draws into its `held × channels` block
    /// of `x`, rows in parallel.
    fn apply_rows(&mut self, x: &mut [f32], p: f32, l: RowLayout) -> Result<(), ModelError> {
        if p <= 0.0 {
            return Ok(());
        }
        let per_row = l.held * l.channels;
        if x.len() != per_row * self.rows.len() || l.start + l.held > l.tokens {
            return Err(ModelError::Input(format!(
                "dropout on {} values for {} streams of {l:?}",
                x.len(),
                self.rows.len()
            )));
        }
        x.par_chunks_mut(per_row.max(1))
            .zip(self.rows.par_iter_mut())
            .for_each_init(
                || vec![0f32; l.tokens * l.channels],
                |mask, (row, rng)| apply_row(row, mask, rng, p, l),
            );
        Ok(())
    }
}

/// Recorded keep masks (u8 or float 0/1), consumed in call order.
#[derive(Debug, Default)]
pub struct Injected {
    masks: VecDeque<Tensor>,
}

impl Injected {
    /// The masks in the order the forward pass will ask for them.
    pub fn new(masks: impl IntoIterator<Item = Tensor>) -> Self {
        Injected {
            masks: masks.into_iter().collect(),
        }
    }

    /// Masks not consumed yet.
    pub fn remaining(&self) -> usize {
        self.masks.len()
    }
}

impl MaskSource for Injected {
    fn mask(
        &mut self,
        shape: &[usize],
        p: f32,
        device: &Device,
    ) -> Result<Option<Tensor>, ModelError> {
        let m = self
            .masks
            .pop_front()
            .ok_or_else(|| ModelError::Input("more dropout calls than injected masks".into()))?;
        if m.dims() != shape {
            return Err(ModelError::Input(format!(
                "injected mask is {:?}, the dropout call is {shape:?}",
                m.dims()
            )));
        }
        let scale = 1.0 / (1.0 - p as f64);
        Ok(Some(
            m.to_dtype(DType::F32)?
                .to_device(device)?
                .affine(scale, 0.0)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_reproducible_and_seed_dependent() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(1).next_u64()).collect();
        assert!(a.iter().all(|v| *v == a[0]));
        let mut r1 = Rng::new(1);
        let mut r2 = Rng::new(2);
        assert_ne!(r1.next_u64(), r2.next_u64());
    }

    #[test]
    fn row_masks_keep_the_right_fraction_and_scale() {
        let mut src = RowRng::new([3, 4]);
        let m = src.mask(&[2, 50_001], 0.2, &Device::Cpu).unwrap().unwrap();
        let v: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        let kept = v.iter().filter(|x| **x > 0.0).count() as f64 / v.len() as f64;
        assert!((kept - 0.8).abs() < 0.01, "{kept}");
        assert!(v.iter().all(|x| *x == 0.0 || *x == 1.25));
        assert!(src.mask(&[3, 5], 0.2, &Device::Cpu).is_err());
    }

    #[test]
    fn applying_equals_multiplying_by_the_mask() {
        // Odd row sizes (a half draw left over), both layouts, all rows or
        // only the last tokens held.
        for (tokens, channels) in [(7, 5), (6, 4), (1, 3)] {
            for channels_first in [false, true] {
                for start in [0, tokens - 1, tokens / 2] {
                    let held = tokens - start;
                    let seeds = [5, 6, 7];
                    let torch: Vec<usize> = if channels_first {
                        vec![3, channels, tokens]
                    } else {
                        vec![3, tokens, channels]
                    };
                    let m = RowRng::new(seeds)
                        .mask(&torch, 0.3, &Device::Cpu)
                        .unwrap()
                        .unwrap();
                    let m: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
                    let x: Vec<f32> = (0..3 * held * channels)
                        .map(|i| i as f32 * 0.37 - 2.0)
                        .collect();
                    let mut want = x.clone();
                    for b in 0..3 {
                        for t in 0..held {
                            for c in 0..channels {
                                let e = if channels_first {
                                    c * tokens + t + start
                                } else {
                                    (t + start) * channels + c
                                };
                                want[(b * held + t) * channels + c] *= m[b * tokens * channels + e];
                            }
                        }
                    }
                    let l = RowLayout {
                        tokens,
                        start,
                        held,
                        channels,
                        channels_first,
                    };
                    let x = Tensor::from_vec(x, (3, held, channels), &Device::Cpu).unwrap();
                    let got: Vec<f32> = RowRng::new(seeds)
                        .apply(&x, 0.3, l)
                        .unwrap()
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    assert_eq!(got, want, "{tokens}x{channels} {channels_first} {start}");
                }
            }
        }
    }

    #[test]
    fn a_streamed_mask_is_the_row_mask_in_pieces() {
        let whole: Vec<f32> = RowRng::new([9])
            .mask(&[1, 3, 7, 5], 0.3, &Device::Cpu)
            .unwrap()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut rng = Rng::new(9);
        let mut stream = MaskStream::new(&mut rng, 0.3);
        let mut got = Vec::new();
        for len in [5, 0, 1, 4, 7, 2, 3, 20, 11, 5, 5, 42] {
            let mut piece = vec![0f32; len];
            stream.fill(&mut piece);
            got.extend(piece);
        }
        assert_eq!(got.len(), whole.len());
        assert_eq!(got, whole);
    }

    #[test]
    fn a_row_mask_does_not_depend_on_its_neighbours() {
        let mut alone = RowRng::new([11]);
        let mut pair = RowRng::new([11, 12]);
        let a: Vec<f32> = alone
            .mask(&[1, 7, 9], 0.5, &Device::Cpu)
            .unwrap()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = pair
            .mask(&[2, 7, 9], 0.5, &Device::Cpu)
            .unwrap()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(a, b[..63]);
    }
}
