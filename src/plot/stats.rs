//! The numbers behind a plot, computed the way numpy 1.26 and scipy 1.17 compute them:
//! linear quantiles, the population standard deviation, `linspace`, and the Scott-bandwidth
//! Gaussian KDE of `scipy.stats.gaussian_kde`, operation for operation so that results
//! match the reference bit for bit where the reference's own order of operations is fixed.

/// Number of grid points of one fan (`np.linspace(.., .., 200)`).
pub const KDE_GRID: usize = 200;

/// A step whose samples have a population standard deviation below this is not drawn.
pub const MIN_STD: f64 = 1e-6;

/// numpy's pairwise summation (`pairwise_sum_DOUBLE`): plain below 8 values, eight
/// interleaved partial sums up to 128, halves (multiples of 8) above.
pub fn pairwise_sum(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in xs {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&xs[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for (k, acc) in r.iter_mut().enumerate() {
                *acc += xs[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &xs[i..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&xs[..n2]) + pairwise_sum(&xs[n2..])
    }
}

/// `np.std(xs)` (ddof 0): pairwise mean, squared deviations, pairwise sum, divide, sqrt.
pub fn population_std(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = pairwise_sum(xs) / n;
    let sq: Vec<f64> = xs.iter().map(|x| (x - mean) * (x - mean)).collect();
    (pairwise_sum(&sq) / n).sqrt()
}

/// `np.linspace(start, stop, num)` with the endpoint: `i * step + start`, the last value
/// set to `stop` exactly (and `i / div * delta + start` when the step underflows to zero).
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> = (0..num)
        .map(|i| {
            let i = i as f64;
            if step == 0.0 {
                i / div * delta + start
            } else {
                i * step + start
            }
        })
        .collect();
    y[num - 1] = stop;
    y
}

/// `np.quantile(xs, q)` with numpy's default `linear` method: virtual index `(n - 1) q`
/// between the sorted neighbours, interpolated by numpy's `_lerp` (which works from the
/// upper neighbour when the fraction is at least 0.5). NaN for an empty slice, a NaN
/// sample or a `q` outside `[0, 1]`.
pub fn quantile(step_samples: &[f64], q: f64) -> f64 {
    let n = step_samples.len();
    if n == 0 || !(0.0..=1.0).contains(&q) || step_samples.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let mut sorted = step_samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let virtual_index = (n - 1) as f64 * q;
    let (prev, next) = if virtual_index >= (n - 1) as f64 {
        (n - 1, n - 1)
    } else {
        let p = virtual_index.floor() as usize;
        (p, p + 1)
    };
    let gamma = virtual_index - prev as f64;
    let (a, b) = (sorted[prev], sorted[next]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// `np.quantile(xs, 0.5)`: the median as the reference computes it (for 10 samples
/// the 5th and 6th sorted values interpolated halfway).
pub fn median(step_samples: &[f64]) -> f64 {
    quantile(step_samples, 0.5)
}

/// The fan of one horizon step: `(grid, density)` with 200 grid values
/// `linspace(0.8 min, 1.2 max)` (both ends moved out by 1 when they coincide) and the
/// Gaussian KDE on that grid divided by its maximum (left as is when the maximum is 0).
///
/// `None` when the reference skips the step: fewer than two samples, a non-finite
/// sample (scipy raises, the reference skips silently), or a population standard
/// deviation below 1e-6.
///
/// The KDE is scipy's `gaussian_kde(pts)` with Scott's factor `neff^(-1/5)`, the weighted
/// covariance of `np.cov(.., aweights=1/n)`, and the Cython kernel sum (points and grid
/// scaled by the inverse of the bandwidth as OpenBLAS's triangular solve does, data points in
/// the outer loop). The covariance's dot product is summed in order, which is what OpenBLAS
/// does below 16 samples; with 16 or more its SIMD kernels reorder the sum (CPU-dependent),
/// so results there agree to a few ulps rather than exactly.
pub fn kde_fan(step_samples: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let n = step_samples.len();
    if n < 2 || step_samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    if population_std(step_samples) < MIN_STD {
        return None;
    }
    let max = step_samples
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let min = step_samples.iter().copied().fold(f64::INFINITY, f64::min);
    let (mut maxi, mut mini) = (1.2 * max, 0.8 * min);
    if maxi == mini {
        maxi += 1.0;
        mini -= 1.0;
    }
    let grid = linspace(mini, maxi, KDE_GRID);

    // gaussian_kde.__init__: weights, neff, Scott's factor
    let w = 1.0 / n as f64;
    let w_sq = vec![w * w; n];
    let neff = 1.0 / pairwise_sum(&w_sq);
    let factor = neff.powf(-1.0 / 5.0);
    // np.cov(dataset, bias=False, aweights=weights)
    let w_sum = pairwise_sum(&vec![w; n]);
    let weighted: Vec<f64> = step_samples.iter().map(|x| x * w).collect();
    let avg = pairwise_sum(&weighted) / w_sum;
    let fact = w_sum - pairwise_sum(&w_sq) / w_sum;
    let mut cov = 0.0;
    for &x in step_samples {
        let d = x - avg;
        cov += d * (d * w);
    }
    cov *= 1.0 / fact;
    if cov.is_nan() || cov <= 0.0 {
        return None; // cholesky would fail: the reference skips the step
    }
    let cho = cov.sqrt() * factor;
    // gaussian_kernel_estimate
    let inv = 1.0 / cho;
    let points: Vec<f64> = step_samples.iter().map(|x| x * inv).collect();
    let xi: Vec<f64> = grid.iter().map(|y| y * inv).collect();
    let norm = (2.0 * std::f64::consts::PI).powf(-0.5) / cho;
    let mut estimate = vec![0.0; grid.len()];
    for &p in &points {
        for (e, &g) in estimate.iter_mut().zip(&xi) {
            let r = p - g;
            let arg = (-(r * r) / 2.0).exp() * norm;
            *e += w * arg;
        }
    }
    let peak = estimate.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if peak > 0.0 {
        for e in &mut estimate {
            *e /= peak;
        }
    }
    Some((grid, estimate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_ten() {
        let xs = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0];
        assert_eq!(median(&xs), 5.5);
        assert_eq!(quantile(&xs, 0.0), 1.0);
        assert_eq!(quantile(&xs, 1.0), 10.0);
        // (n-1) q = 0.45 -> 1 + 0.45 (2 - 1)
        assert!((quantile(&xs, 0.05) - 1.45).abs() < 1e-15);
        assert_eq!(quantile(&[3.0], 0.5), 3.0);
        assert!(quantile(&[], 0.5).is_nan());
        assert!(quantile(&[1.0, f64::NAN], 0.5).is_nan());
        assert!(quantile(&[1.0, 2.0], 1.5).is_nan());
    }

    #[test]
    fn pairwise_matches_plain_sum_on_exact_values() {
        let xs: Vec<f64> = (0..300).map(f64::from).collect();
        assert_eq!(pairwise_sum(&xs), 44850.0);
        assert_eq!(pairwise_sum(&[]), 0.0);
    }

    #[test]
    fn linspace_ends() {
        let y = linspace(80.0, 120.0, 200);
        assert_eq!(y.len(), 200);
        assert_eq!(y[0], 80.0);
        assert_eq!(y[199], 120.0);
        assert_eq!(linspace(1.0, 1.0, 3), vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn kde_skips_flat_and_bad_steps() {
        assert!(kde_fan(&[100.0; 10]).is_none());
        assert!(kde_fan(&[100.0]).is_none());
        let tiny: Vec<f64> = (0..10).map(|i| 100.0 + 1e-8 * f64::from(i)).collect();
        assert!(kde_fan(&tiny).is_none());
        assert!(kde_fan(&[1.0, f64::NAN, 3.0]).is_none());
    }

    #[test]
    fn kde_peak_is_one_and_grid_spans() {
        let xs = [
            100.0, 104.0, 98.0, 110.0, 95.0, 101.0, 99.0, 102.0, 97.0, 105.0,
        ];
        let (grid, dens) = kde_fan(&xs).expect("fan");
        assert_eq!(grid.len(), KDE_GRID);
        assert_eq!(grid[0], 0.8 * 95.0);
        assert_eq!(grid[199], 1.2 * 110.0);
        let peak = dens.iter().copied().fold(0.0, f64::max);
        assert_eq!(peak, 1.0);
        assert!(dens.iter().all(|d| (0.0..=1.0).contains(d)));
    }

    #[test]
    fn kde_widens_equal_ends() {
        // 1.2 * -20 == 0.8 * -30 == -24: the grid ends coincide and are moved out by 1
        let xs = [-30.0, -20.0, -25.0, -22.0, -28.0];
        let (grid, _) = kde_fan(&xs).expect("fan");
        assert_eq!(grid[0], -25.0);
        assert_eq!(grid[199], -23.0);
    }

    #[test]
    fn kde_matches_closed_form() {
        // independent formula: sum of Gaussians with sigma = n^(-1/5) * std(ddof=1)
        let xs = [
            120.0, 131.5, 118.2, 140.9, 125.0, 129.3, 122.7, 135.1, 127.4, 119.9,
        ];
        let (grid, dens) = kde_fan(&xs).expect("fan");
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let sigma = n.powf(-0.2) * var.sqrt();
        let raw: Vec<f64> = grid
            .iter()
            .map(|g| {
                xs.iter()
                    .map(|x| (-((g - x) / sigma).powi(2) / 2.0).exp())
                    .sum()
            })
            .collect();
        let peak = raw.iter().copied().fold(0.0, f64::max);
        for (d, r) in dens.iter().zip(&raw) {
            assert!((d - r / peak).abs() < 1e-12, "{d} vs {}", r / peak);
        }
    }
}
