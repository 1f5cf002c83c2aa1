//! The roofline figure of issue 22: this CPU's f32 FMA peak on 1 and 2
//! threads for each packed kernel's vector width (256-bit AVX2/FMA, 512-bit
//! AVX-512F), and the forward pass of the default-size model (random
//! weights, eval, batch 32; and one window's 10 MC samples) in GFLOP/s on
//! the process's kernel (`GLURPC_GEMM`), so the two print side by side.
//! Criterion's throughput is in elements per second with one element per
//! FLOP, so "Gelem/s" reads GFLOP/s. A summary line at the end gives the
//! forward pass as a fraction of the 2-thread peak of the same width
//! (best of a few runs of each, outside criterion).
//!
//! Run it once per kernel:
//! `GLURPC_GEMM=avx512 cargo bench --bench roofline` and `GLURPC_GEMM=avx2 ...`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use candle_core::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use glurpc::model::{Gluformer, GluformerConfig, Mode, ModelWindow, PredictOptions, init};
use glurpc_gemm::Kernel;

/// Multiply-adds per thread per peak run.
const PEAK_ITERS: usize = 2_000_000;

#[cfg(target_arch = "x86_64")]
mod fma {
    use std::arch::x86_64::*;

    /// Independent 8-lane accumulators (FMA latency × ports, with room).
    pub const ACC256: usize = 12;
    /// Independent 16-lane accumulators (28 of 32 registers, as the kernel).
    pub const ACC512: usize = 24;

    /// `iters` rounds of ACC256 independent 256-bit FMAs; returns a lane so
    /// nothing is optimised away.
    ///
    /// # Safety
    /// AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn run256(iters: usize, x: f32, y: f32) -> f32 {
        let (x, y) = (_mm256_set1_ps(x), _mm256_set1_ps(y));
        let mut acc = [_mm256_setzero_ps(); ACC256];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let mut s = _mm256_setzero_ps();
        for a in acc {
            s = _mm256_add_ps(s, a);
        }
        _mm256_cvtss_f32(s)
    }

    /// `iters` rounds of ACC512 independent 512-bit FMAs.
    ///
    /// # Safety
    /// AVX-512F present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn run512(iters: usize, x: f32, y: f32) -> f32 {
        let (x, y) = (_mm512_set1_ps(x), _mm512_set1_ps(y));
        let mut acc = [_mm512_setzero_ps(); ACC512];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        let mut s = _mm512_setzero_ps();
        for a in acc {
            s = _mm512_add_ps(s, a);
        }
        _mm512_reduce_add_ps(s)
    }
}

/// FLOPs of one peak run on one thread.
fn peak_flops(kernel: Kernel) -> u64 {
    #[cfg(target_arch = "x86_64")]
    let per_iter = match kernel {
        Kernel::Avx512 => fma::ACC512 * 16,
        _ => fma::ACC256 * 8,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let per_iter = {
        let _ = kernel;
        0
    };
    (PEAK_ITERS * per_iter * 2) as u64
}

/// One peak run on each of `threads` threads.
fn peak_run(kernel: Kernel, threads: usize) -> f32 {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let (x, y) = (black_box(0.999f32), black_box(0.001f32));
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: only called for kernels `supported()` on this CPU.
                    unsafe {
                        match kernel {
                            Kernel::Avx512 => fma::run512(PEAK_ITERS, x, y),
                            _ => fma::run256(PEAK_ITERS, x, y),
                        }
                    }
                    #[cfg(not(target_arch = "x86_64"))]
                    {
                        x + y
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    })
}

fn simd_kernels() -> Vec<Kernel> {
    [Kernel::Avx512, Kernel::Avx2]
        .into_iter()
        .filter(|k| k.supported())
        .collect()
}

/// FLOPs (2 per multiply-add) of the products of one forward row: every
/// linear map and both attention products, as `model::network` runs them
/// (distilled encoder, the last decoder layer on its `len_pred` query rows
/// only); element-wise work is not counted.
fn forward_flops(cfg: &GluformerConfig) -> u64 {
    let (d, f, i) = (cfg.d_model, cfg.d_fcn, cfg.inner());
    let lin = |rows: usize, k: usize, n: usize| 2 * rows * k * n;
    let att = |nq: usize, nk: usize| 2 * 2 * nq * nk * i;
    let ffn = |rows: usize| lin(rows, d, f) + lin(rows, f, d);
    // Queries and output on nq rows, keys and values on nk rows.
    let attention = |nq: usize, nk: usize| 2 * lin(nq, d, i) + 2 * lin(nk, d, i) + att(nq, nk);
    let fs = cfg.num_static_features;
    let fd = cfg.num_dynamic_features;
    let embed = |l: usize| lin(l, 3, d) + lin(l, fd, d) + lin(1, fs, d);
    let mut t = cfg.len_seq + 1;
    let mut total = embed(cfg.len_seq) + lin(t, d, 1) + lin(1, t, 1);
    for l in 0..cfg.num_enc_layers {
        total += attention(t, t) + ffn(t);
        if l < cfg.num_conv_layers() {
            total += lin(t, 3 * d, d);
            t = (t - 1) / 2 + 1;
        }
    }
    let td = cfg.dec_len() + 1;
    total += embed(cfg.dec_len());
    for l in 0..cfg.num_dec_layers {
        let nq = if l + 1 == cfg.num_dec_layers {
            cfg.len_pred
        } else {
            td
        };
        total += attention(nq, td) + attention(nq, t) + ffn(nq);
    }
    (total + lin(cfg.len_pred, d, 1)) as u64
}

fn windows(cfg: &GluformerConfig, n: usize) -> Vec<ModelWindow> {
    let mut rng = glurpc::model::dropout::Rng::new(42);
    let mut u = |k: usize| -> Vec<f32> {
        (0..k)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
            .collect()
    };
    (0..n)
        .map(|i| ModelWindow {
            static_features: vec![0.0; cfg.num_static_features],
            past: u(cfg.len_seq),
            past_covariates: u(cfg.len_seq * cfg.num_dynamic_features),
            future_covariates: u(cfg.len_pred * cfg.num_dynamic_features),
            seed: i as u64,
        })
        .collect()
}

/// Best of `runs` timings of `f`.
fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn roofline(c: &mut Criterion) {
    let mut g = c.benchmark_group("fma_peak");
    g.sample_size(20);
    for kernel in simd_kernels() {
        for threads in [1, 2] {
            g.throughput(Throughput::Elements(peak_flops(kernel) * threads as u64));
            g.bench_function(format!("{kernel}_{threads}_threads"), |b| {
                b.iter(|| peak_run(kernel, threads))
            });
        }
    }
    g.finish();

    let kernel = glurpc_gemm::selected().unwrap_or(Kernel::Portable);
    let cfg = GluformerConfig::default();
    let sd = match init::random_state_dict(&cfg, 1234) {
        Ok(sd) => sd,
        Err(e) => panic!("random weights: {e}"),
    };
    let model = match Gluformer::from_state_dict(sd, cfg.clone(), &Device::Cpu) {
        Ok(m) => m,
        Err(e) => panic!("model: {e}"),
    };
    let w = windows(&cfg, 32);
    let row = forward_flops(&cfg);
    let eval = PredictOptions {
        mode: Mode::Deterministic,
        batch_windows: 32,
        max_rows: 32,
    };
    let mc = PredictOptions::default();
    let mut g = c.benchmark_group("forward_gflops");
    g.sample_size(10);
    g.throughput(Throughput::Elements(row * 32));
    g.bench_function(format!("eval_batch32_{kernel}"), |b| {
        b.iter(|| model.predict(black_box(&w), &eval))
    });
    g.throughput(Throughput::Elements(row * 10));
    g.bench_function(format!("mc_one_window_x10_{kernel}"), |b| {
        b.iter(|| model.predict(black_box(&w[..1]), &mc))
    });
    g.finish();

    // The summary: forward pass against the 2-thread peak of each width.
    let t_eval = best(5, || drop(black_box(model.predict(&w, &eval))));
    let t_mc = best(5, || drop(black_box(model.predict(&w[..1], &mc))));
    let gf = |flops: u64, t: Duration| flops as f64 / t.as_secs_f64() / 1e9;
    let (eval_gf, mc_gf) = (gf(row * 32, t_eval), gf(row * 10, t_mc));
    println!(
        "roofline: forward row {:.3} GFLOP; kernel {kernel}; eval batch 32 {:.3} s = {eval_gf:.1} GFLOP/s; \
         MC 1 window x 10 {:.3} s = {mc_gf:.1} GFLOP/s",
        row as f64 / 1e9,
        t_eval.as_secs_f64(),
        t_mc.as_secs_f64()
    );
    for width in simd_kernels() {
        let t = best(5, || {
            black_box(peak_run(width, 2));
        });
        let peak = gf(peak_flops(width) * 2, t);
        println!(
            "roofline: {width} FMA peak, 2 threads {peak:.1} GFLOP/s; forward pass ({kernel} kernel) at {:.1}% (eval) / {:.1}% (MC 1x10) of it",
            100.0 * eval_gf / peak,
            100.0 * mc_gf / peak
        );
    }
}

criterion_group!(benches, roofline);
criterion_main!(benches);
