//! Unit tests: every packed kernel this CPU runs against a naive product on
//! edge shapes, thread-count independence, bit-identical kernels, and the
//! `GLURPC_GEMM` selection rules.

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

/// The packed kernels this CPU runs.
fn packed_kernels() -> Vec<Kernel> {
    Kernel::ALL
        .into_iter()
        .filter(|k| *k != Kernel::Portable && k.supported())
        .collect()
}

/// Rows not a multiple of 6, 14, 96 or 112; columns not a multiple of 16 or
/// 32 (and under one panel); depth over one 512 block and under one
/// step; one row; parallel and serial sizes; empty rows, columns, depth.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 37, 45),
    (7, 3, 17),
    (13, 520, 33),
    (15, 9, 31),
    (29, 513, 47),
    (97, 64, 15),
    (113, 100, 65),
    (200, 1030, 70),
    (450, 96, 510),
    (12, 512, 1024),
    (0, 8, 8),
    (5, 0, 9),
    (5, 9, 0),
];

#[test]
fn every_kernel_matches_a_naive_product_on_every_edge_shape() {
    for kernel in packed_kernels() {
        for &(m, k, n) in SHAPES {
            let (a, b, bias) = (data(m * k, 1), data(k * n, 2), data(n, 3));
            let w = PackedWeights::pack_for(kernel, &b, k, n).unwrap();
            assert_eq!((w.k(), w.n(), w.kernel()), (k, n, kernel));
            assert_eq!(w.unpack(), b);
            let got = linear(&a, m, &w, &bias);
            let want = naive(&a, m, k, &b, n, &bias);
            assert_eq!(got.len(), m * n);
            for (x, y) in got.iter().zip(&want) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{kernel} {m}x{k}x{n}: {x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn the_kernels_give_bit_identical_results() {
    let kernels = packed_kernels();
    for &(m, k, n) in SHAPES {
        let (a, b, bias) = (data(m * k, 7), data(k * n, 8), data(n, 9));
        let outs: Vec<Vec<f32>> = kernels
            .iter()
            .map(|&kr| {
                linear(
                    &a,
                    m,
                    &PackedWeights::pack_for(kr, &b, k, n).unwrap(),
                    &bias,
                )
            })
            .collect();
        for o in &outs[1..] {
            assert_eq!(o, &outs[0], "{m}x{k}x{n}");
        }
    }
}

#[test]
fn results_do_not_depend_on_threads() {
    let (m, k, n) = (300, 700, 130);
    let (a, b, bias) = (data(m * k, 4), data(k * n, 5), data(n, 6));
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for kernel in packed_kernels() {
        let w = PackedWeights::pack_for(kernel, &b, k, n).unwrap();
        let many = three.install(|| linear(&a, m, &w, &bias));
        let one = one_thread.install(|| linear(&a, m, &w, &bias));
        assert_eq!(many, one, "{kernel}");
    }
}

#[test]
fn refuses_short_weights_and_the_portable_path() {
    for kernel in Kernel::ALL {
        assert!(PackedWeights::pack_for(kernel, &[1.0, 2.0], 2, 2).is_none());
    }
    assert!(PackedWeights::pack_for(Kernel::Portable, &[1.0; 4], 2, 2).is_none());
}

#[test]
fn unsupported_kernels_do_not_pack() {
    for kernel in Kernel::ALL {
        if !kernel.supported() {
            assert!(PackedWeights::pack_for(kernel, &[1.0; 4], 2, 2).is_none());
        }
    }
}

#[test]
fn the_environment_variable_forces_or_refuses_a_kernel() {
    assert_eq!(choose(None), Ok(Kernel::best()));
    assert_eq!(choose(Some("  ")), Ok(Kernel::best()));
    assert_eq!(choose(Some("portable")), Ok(Kernel::Portable));
    for kernel in Kernel::ALL {
        let got = choose(Some(&kernel.name().to_uppercase()));
        if kernel.supported() {
            assert_eq!(got, Ok(kernel));
        } else {
            let e = got.unwrap_err();
            assert_eq!(e, SelectError::Unsupported(kernel));
            assert!(e.to_string().contains("lacks"), "{e}");
        }
    }
    let e = choose(Some("avx1024")).unwrap_err();
    assert!(matches!(e, SelectError::Unknown(_)));
    assert!(e.to_string().contains("GLURPC_GEMM"), "{e}");
    // The best kernel is the widest supported one.
    let best = Kernel::best();
    assert!(best.supported());
    assert!(
        Kernel::ALL
            .into_iter()
            .take_while(|k| *k != best)
            .all(|k| !k.supported())
    );
}
