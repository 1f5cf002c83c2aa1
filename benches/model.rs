//! Gluformer forward-pass benchmarks on the default (gluRPC) size with random
//! weights: batch 32 deterministic, one MC batch as gluRPC runs it (32
//! windows x 10 samples, BatchNorm on batch statistics, one pass of 320
//! rows), and the same 320 rows in glurpc's default mode (running statistics,
//! 64 rows per pass), one window's 10 MC samples (the inference behind a cold
//! `/quick_plot`), and the encoder's feed-forward product alone (1440 x 512 x
//! 1024) on each packed-weight kernel this CPU runs (AVX-512F, AVX2) and on
//! matrixmultiply. The model groups run on the process's kernel
//! (`GLURPC_GEMM=avx512|avx2|portable` forces one).
//! `tools/bench_torch_forward.py` times PyTorch on the same work and thread
//! count.

use candle_core::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use glurpc::model::{
    BatchNormMode, Gluformer, GluformerConfig, Mode, ModelWindow, PredictOptions, init,
};

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

fn model_bench(c: &mut Criterion) {
    let cfg = GluformerConfig::default();
    let sd = init::random_state_dict(&cfg, 1234).unwrap();
    let model = Gluformer::from_state_dict(sd, cfg.clone(), &Device::Cpu).unwrap();
    let w = windows(&cfg, 32);
    let mut g = c.benchmark_group("gluformer_default");
    g.sample_size(10);
    g.bench_function("eval_batch32", |b| {
        let o = PredictOptions {
            mode: Mode::Deterministic,
            batch_windows: 32,
            max_rows: 32,
        };
        b.iter(|| model.predict(std::hint::black_box(&w), &o).unwrap())
    });
    g.bench_function("mc_reference_32x10", |b| {
        let o = PredictOptions {
            mode: Mode::MonteCarlo {
                samples: 10,
                batch_norm: BatchNormMode::Batch,
            },
            batch_windows: 32,
            max_rows: 320,
        };
        b.iter(|| model.predict(std::hint::black_box(&w), &o).unwrap())
    });
    g.bench_function("mc_running_32x10", |b| {
        let o = PredictOptions::default();
        b.iter(|| model.predict(std::hint::black_box(&w), &o).unwrap())
    });
    g.bench_function("mc_one_window_x10", |b| {
        let o = PredictOptions::default();
        let one = &w[..1];
        b.iter(|| model.predict(std::hint::black_box(one), &o).unwrap())
    });
    g.finish();
}

fn linear_bench(c: &mut Criterion) {
    let (m, k, n) = (1440, 512, 1024);
    let mut rng = glurpc::model::dropout::Rng::new(7);
    let mut u = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect()
    };
    let (a, b, bias) = (u(m * k), u(k * n), u(n));
    let mut g = c.benchmark_group("linear_1440x512x1024");
    g.sample_size(20);
    for kernel in glurpc_gemm::Kernel::ALL {
        if let Some(w) = glurpc_gemm::PackedWeights::pack_for(kernel, &b, k, n) {
            g.bench_function(format!("packed_{kernel}"), |bch| {
                bch.iter(|| glurpc_gemm::linear(std::hint::black_box(&a), m, &w, &bias))
            });
        }
    }
    g.bench_function("matrixmultiply", |bch| {
        bch.iter(|| glurpc::model::kernels::linear(std::hint::black_box(&a), m, k, &b, n, &bias))
    });
    g.finish();
}

criterion_group!(benches, model_bench, linear_bench);
criterion_main!(benches);
