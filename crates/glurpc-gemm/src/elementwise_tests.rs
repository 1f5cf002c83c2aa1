//! The element-wise functions against f64 references, and every vector
//! width this CPU has against the baseline instance, bit for bit.

use super::*;

/// erf in f64 by its Taylor series (|x| <= 5; ±1 to f64 precision past it).
fn erf64(x: f64) -> f64 {
    if x.abs() > 5.0 {
        return x.signum();
    }
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        let add = term / (2 * n + 1) as f64;
        sum += add;
        if add.abs() < 1e-18 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// A deterministic spread of values over [-lim, lim] with some exact
/// specials.
fn values(n: usize, lim: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n)
        .map(|i| ((i as f32 * 0.618_034).fract() * 2.0 - 1.0) * lim)
        .collect();
    v.extend([0.0, -0.0, 1e-30, -1e-30, lim, -lim]);
    v
}

#[test]
fn exp_is_within_two_ulps_and_zero_past_the_range() {
    for x in values(100_000, 87.0).into_iter().map(|v| -v.abs()) {
        let want = (x as f64).exp();
        let got = exp_nonpositive(x) as f64;
        assert!(
            (got - want).abs() <= 2.4e-7 * want,
            "exp({x}) = {got}, want {want}"
        );
    }
    assert_eq!(exp_nonpositive(0.0), 1.0);
    assert_eq!(exp_nonpositive(-88.0), 0.0);
    assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
}

#[test]
fn erf_and_gelu_are_within_the_documented_error() {
    let mut worst = 0f64;
    for x in values(100_000, 9.0) {
        let e = erf64(x as f64);
        worst = worst.max((erf(x) as f64 - e).abs());
        assert!(
            (erf(x) as f64 - e).abs() < 3.0e-7,
            "erf({x}): {} against {e}",
            erf(x)
        );
        let g = 0.5 * x as f64 * (1.0 + erf64(x as f64 / std::f64::consts::SQRT_2));
        let tol = 2.0e-7 * (x as f64).abs().max(1.0);
        assert!(
            (gelu1(x) as f64 - g).abs() < tol,
            "gelu({x}) = {}, want {g}",
            gelu1(x)
        );
    }
    eprintln!("erf: worst absolute error {worst:e}");
}

#[test]
fn softmax_sums_to_one_and_clears_the_masked_tail() {
    let mut row: Vec<f32> = values(37, 20.0);
    let n = row.len();
    let scores = row.clone();
    softmax(&mut row, 30, 0.125);
    let s: f64 = row[..30].iter().map(|v| *v as f64).sum();
    assert!((s - 1.0).abs() < 1e-6, "{s}");
    assert!(row[30..n].iter().all(|v| *v == 0.0));
    let max = scores[..30].iter().fold(f32::MIN, |m, v| m.max(*v)) as f64 * 0.125;
    let z: f64 = scores[..30]
        .iter()
        .map(|v| (*v as f64 * 0.125 - max).exp())
        .sum();
    for (got, v) in row.iter().zip(&scores[..30]) {
        let want = (*v as f64 * 0.125 - max).exp() / z;
        assert!((*got as f64 - want).abs() < 1e-6, "{got} {want}");
    }
}

#[test]
fn layer_norm_matches_a_two_pass_f64_norm() {
    let d = 19;
    let x = values(d * 7 - 6, 3.0);
    let r = values(d * 7 - 6, 1.5);
    let w: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 * 0.1).collect();
    let b: Vec<f32> = (0..d).map(|i| i as f32 * -0.05).collect();
    let mut y = vec![0f32; x.len()];
    layer_norm(&mut y, &x, Some(&r), &w, &b, 1e-5);
    for i in 0..7 {
        let row: Vec<f64> = (0..d)
            .map(|c| (x[i * d + c] + r[i * d + c]) as f64)
            .collect();
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        for c in 0..d {
            let want = (row[c] - mean) / (var + 1e-5).sqrt() * w[c] as f64 + b[c] as f64;
            assert!((y[i * d + c] as f64 - want).abs() < 2e-6, "{i} {c}");
        }
    }
}

#[test]
fn every_width_this_cpu_has_is_bit_identical_to_the_baseline() {
    let kernels: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.supported()).collect();
    for len in [0, 1, 15, 16, 17, 97, 1000] {
        let x = values(len, 6.0)[..len].to_vec();
        let mut base = x.clone();
        gelu_on(Kernel::Portable, &mut base);
        let mut soft = x.clone();
        softmax_on(Kernel::Portable, &mut soft, len.saturating_sub(3), 0.3);
        let d = 8.max(len / 4).min(len.max(1));
        let rows = len / d * d;
        let (w, b) = (values(d, 1.0), values(d, 0.5));
        let (w, b) = (&w[..d], &b[..d]);
        let mut norm = vec![0f32; rows];
        layer_norm_on(
            Kernel::Portable,
            &mut norm,
            &x[..rows],
            Some(&x[..rows]),
            w,
            b,
            1e-5,
        );
        let mut elu = x[..rows].to_vec();
        scale_shift_elu_on(Kernel::Portable, &mut elu, w, b);
        for k in &kernels {
            let mut g = x.clone();
            gelu_on(*k, &mut g);
            assert_eq!(bits(&g), bits(&base), "gelu {k} {len}");
            let mut s = x.clone();
            softmax_on(*k, &mut s, len.saturating_sub(3), 0.3);
            assert_eq!(bits(&s), bits(&soft), "softmax {k} {len}");
            let mut n = vec![0f32; rows];
            layer_norm_on(*k, &mut n, &x[..rows], Some(&x[..rows]), w, b, 1e-5);
            assert_eq!(bits(&n), bits(&norm), "layer norm {k} {len}");
            let mut e = x[..rows].to_vec();
            scale_shift_elu_on(*k, &mut e, w, b);
            assert_eq!(bits(&e), bits(&elu), "elu {k} {len}");
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
