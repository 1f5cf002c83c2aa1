//! The engine end to end on the default (gluRPC) model size with random
//! weights, MC dropout with 10 samples, the 14-day Dexcom export:
//! * `process_first_plot_cold`: `/process_unified` then the Plotly figure of
//!   window 0, on an empty cache (the rest of the upload queued behind it);
//! * `quick_plot_cold`: `/quick_plot` on an empty cache;
//! * `process_all_plots_cold`: every one of the 110 windows inferred and its
//!   Plotly figure drawn;
//! * `cached_plot`: a memoised figure;
//! * `forward_forecast_cold`: the next hour after the last reading, compact JSON.
//!
//! Cold runs flush the cache and wait for the queue to drain first.

use std::time::{Duration, Instant};

use candle_core::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use glurpc::engine::scheduler::PRIORITY_PROCESS;
use glurpc::engine::{Engine, EngineConfig, ProcessOptions, Target, WindowKey, WindowKind};
use glurpc::model::{Gluformer, GluformerConfig, init};
use glurpc::plot::PlotFormat;

fn engine() -> Engine {
    let cfg = GluformerConfig::default();
    let sd = init::random_state_dict(&cfg, 1234).unwrap();
    let model = Gluformer::from_state_dict(sd, cfg, &Device::Cpu).unwrap();
    Engine::start(model, EngineConfig::default()).unwrap()
}

fn dexcom() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/real/dexcom_us_14d.csv"
    ))
    .unwrap()
}

fn opts(kind: WindowKind, queue_windows: bool) -> ProcessOptions {
    ProcessOptions {
        kind,
        priority: PRIORITY_PROCESS,
        force: false,
        queue_windows,
    }
}

fn key(handle: &str, kind: WindowKind, target: Target) -> WindowKey {
    WindowKey {
        handle: handle.into(),
        kind,
        target,
    }
}

/// One timed cold run.
type Run = fn(Engine, Vec<u8>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Empties the caches once background work (a prefetch included) is done
/// and the model thread is idle.
async fn cold(e: &Engine) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    while e.queued() > 0 || e.health().available_priority_models == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    e.cache_management("flush", None).await.unwrap();
}

fn engine_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = engine();
    let bytes = dexcom();
    let mut g = c.benchmark_group("engine_default_mc10");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));

    // Each cold run: drain the queue and flush (not timed), then time `run`.
    let cold_bench = |g: &mut criterion::BenchmarkGroup<'_, _>, name: &str, run: Run| {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        cold(&e).await;
                        let t = Instant::now();
                        run(e.clone(), bytes.clone()).await;
                        total += t.elapsed();
                    }
                    total
                })
            })
        });
    };
    cold_bench(&mut g, "process_first_plot_cold", |e, bytes| {
        Box::pin(async move {
            let p = e
                .process(vec![bytes], opts(WindowKind::Full, true))
                .await
                .unwrap();
            let k = key(&p.handle, WindowKind::Full, Target::Index(0));
            e.plot(k, PlotFormat::Plotly, false).await.unwrap();
        })
    });
    cold_bench(&mut g, "quick_plot_cold", |e, bytes| {
        Box::pin(async move {
            let (_, plot) = e
                .quick_plot(vec![bytes], PlotFormat::Plotly, false)
                .await
                .unwrap();
            plot.unwrap();
        })
    });
    cold_bench(&mut g, "forward_forecast_cold", |e, bytes| {
        Box::pin(async move {
            let p = e
                .process(vec![bytes], opts(WindowKind::Quick, false))
                .await
                .unwrap();
            let k = key(&p.handle, WindowKind::Quick, Target::Forward);
            e.plot(k, PlotFormat::Json, false).await.unwrap();
        })
    });

    let handle = rt.block_on(async {
        cold(&e).await;
        let p = e
            .process(vec![bytes.clone()], opts(WindowKind::Full, false))
            .await
            .unwrap();
        let k = key(&p.handle, WindowKind::Full, Target::Index(0));
        e.plot(k, PlotFormat::Plotly, false).await.unwrap();
        p.handle
    });
    g.bench_function("cached_plot", |b| {
        b.iter(|| {
            let k = key(&handle, WindowKind::Full, Target::Index(0));
            rt.block_on(e.plot(k, PlotFormat::Plotly, false)).unwrap()
        })
    });

    cold_bench(&mut g, "process_all_plots_cold", |e, bytes| {
        Box::pin(async move {
            let p = e
                .process(vec![bytes], opts(WindowKind::Full, true))
                .await
                .unwrap();
            let plots: Vec<_> = (-109..=0)
                .map(|i| {
                    let k = key(&p.handle, WindowKind::Full, Target::Index(i));
                    let e = e.clone();
                    tokio::spawn(async move { e.plot(k, PlotFormat::Plotly, false).await })
                })
                .collect();
            for h in plots {
                h.await.unwrap().unwrap();
            }
        })
    });
    g.finish();
    e.shutdown();
}

criterion_group!(benches, engine_bench);
criterion_main!(benches);
