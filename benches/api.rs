//! The front ends over real sockets (server in-process, default model size
//! with random weights, the 14-day Dexcom file): cached plots over REST
//! and gRPC, `/health`, a warm `/quick_plot`, and the streaming method's
//! first message, for a cached window (pure streaming overhead) and cold
//! (compare with `engine_stream_first_window_cold`, the same stream
//! through the engine alone: the difference is the gRPC layer's delay).

use std::time::Duration;

use base64::Engine as _;
use candle_core::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt;
use glurpc::api::auth::ApiKeys;
use glurpc::api::{self, ServerConfig, Service};
use glurpc::engine::{Engine, EngineConfig, ProcessOptions, WindowKind};
use glurpc::model::{Gluformer, GluformerConfig, init};
use glurpc::plot::PlotFormat;
use glurpc::proto;
use glurpc::proto::glucose_prediction_client::GlucosePredictionClient;
use serde_json::json;

fn model() -> Gluformer {
    let cfg = GluformerConfig::default();
    let sd = init::random_state_dict(&cfg, 1234).unwrap();
    Gluformer::from_state_dict(sd, cfg, &Device::Cpu).unwrap()
}

fn dexcom_b64() -> String {
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/real/dexcom_us_14d.csv"
    ))
    .unwrap();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::start(model(), EngineConfig::default()).unwrap();
    let svc = Service::new(
        engine.clone(),
        ApiKeys::disabled(),
        Duration::from_secs(600),
    );
    let cfg = ServerConfig {
        host: "127.0.0.1".parse().unwrap(),
        rest_port: Some(0),
        grpc_port: Some(0),
        max_body_bytes: 96 << 20,
        grpc_max_message_bytes: 96 << 20,
        snet_service_id: "glucose_forecast".into(),
        shutdown_grace: Duration::from_secs(5),
        limits: Default::default(),
        body_timeout: Duration::from_secs(120),
        cors_origins: Vec::new(),
    };
    let running = rt.block_on(api::start(svc, &cfg)).unwrap();
    let rest = format!("http://{}", running.rest_addr.unwrap());
    let grpc_url = format!("http://{}", running.grpc_addr.unwrap());
    let http = reqwest::Client::new();
    let b64 = dexcom_b64();
    let (grpc, handle) = rt.block_on(async {
        let ch = tonic::transport::Channel::from_shared(grpc_url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut g = GlucosePredictionClient::new(ch).max_decoding_message_size(64 << 20);
        let p = g
            .process_unified(proto::ProcessUnifiedRequest {
                csv_base64: b64.clone(),
                force_calculate: false,
            })
            .await
            .unwrap()
            .into_inner();
        // Every window forecast and its Plotly figure cached.
        let mut s = g
            .stream_forecasts(proto::StreamForecastsRequest {
                handle: p.handle.clone(),
                format: "plotly".into(),
            })
            .await
            .unwrap()
            .into_inner();
        while s.next().await.is_some() {}
        http.post(format!("{rest}/quick_plot"))
            .json(&json!({"csv_base64": b64}))
            .send()
            .await
            .unwrap();
        (g, p.handle)
    });

    let mut g = c.benchmark_group("api");
    g.sample_size(50);
    g.bench_function("rest_draw_a_plot_cached", |b| {
        b.to_async(&rt).iter(|| async {
            let r = http
                .post(format!("{rest}/draw_a_plot"))
                .json(&json!({"handle": handle, "index": -5}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().len()
        })
    });
    g.bench_function("grpc_draw_plot_cached", |b| {
        b.to_async(&rt).iter(|| {
            let mut c = grpc.clone();
            let handle = handle.clone();
            async move {
                c.draw_plot(proto::PlotRequest {
                    handle,
                    index: -5,
                    force_calculate: false,
                })
                .await
                .unwrap()
                .into_inner()
                .plot_json
                .len()
            }
        })
    });
    g.bench_function("rest_health", |b| {
        b.to_async(&rt).iter(|| async {
            http.get(format!("{rest}/health"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len()
        })
    });
    g.bench_function("rest_quick_plot_warm", |b| {
        b.to_async(&rt).iter(|| async {
            http.post(format!("{rest}/quick_plot"))
                .json(&json!({"csv_base64": b64}))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len()
        })
    });
    // Time to the first message only; the rest of the stream is read
    // outside the timing (a dropped stream is reset by the client library,
    // which allows only so many per connection).
    g.bench_function("grpc_stream_first_message_cached", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut c = grpc.clone();
            let handle = handle.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = std::time::Instant::now();
                    let mut s = c
                        .stream_forecasts(proto::StreamForecastsRequest {
                            handle: handle.clone(),
                            format: String::new(),
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    s.next().await.unwrap().unwrap();
                    total += t.elapsed();
                    while s.next().await.is_some() {}
                }
                total
            }
        })
    });
    g.sample_size(10);
    // Cold: before each (untimed) run the upload gets a new version with
    // nothing queued and the model thread is idle, so the stream's first
    // message waits for the first batch. The same through the engine
    // alone: the difference is what the gRPC layer adds.
    let fresh = |engine: Engine| async move {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/real/dexcom_us_14d.csv"
        ))
        .unwrap();
        let opts = ProcessOptions {
            kind: WindowKind::Full,
            priority: 1,
            force: true,
            queue_windows: false,
        };
        engine.process(vec![raw], opts).await.unwrap();
        while engine.queued() > 0 || engine.health().available_general_models == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    g.bench_function("grpc_stream_first_message_cold", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut c = grpc.clone();
            let handle = handle.clone();
            let engine = engine.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    fresh(engine.clone()).await;
                    let t = std::time::Instant::now();
                    let mut s = c
                        .stream_forecasts(proto::StreamForecastsRequest {
                            handle: handle.clone(),
                            format: String::new(),
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    s.next().await.unwrap().unwrap();
                    total += t.elapsed();
                }
                total
            }
        })
    });
    g.bench_function("engine_stream_first_window_cold", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let handle = handle.clone();
            let engine = engine.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    fresh(engine.clone()).await;
                    let t = std::time::Instant::now();
                    let (_, s) = engine
                        .stream_windows(&handle, WindowKind::Full, PlotFormat::Json)
                        .await
                        .unwrap();
                    let mut s = Box::pin(s);
                    s.next().await.unwrap().plot.unwrap();
                    total += t.elapsed();
                }
                total
            }
        })
    });
    g.finish();
    drop(grpc);
    rt.block_on(running.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
