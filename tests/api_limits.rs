//! The front ends under pressure, over real servers: API keys on (REST and
//! gRPC, reload), a full queue (503 + Retry-After / RESOURCE_EXHAUSTED),
//! oversize uploads (413 / RESOURCE_EXHAUSTED), a client that leaves (its
//! queued work is cancelled), a cancelled stream, and graceful shutdown of
//! the binary under load.

mod common;

use std::time::{Duration, Instant};

use candle_core::Device;
use common::server::{Setup, TestServer, b64};
use futures_util::StreamExt;
use glurpc::api::auth::ApiKeys;
use glurpc::engine::EngineConfig;
use glurpc::model::{Gluformer, GluformerConfig, init};
use glurpc::proto;
use serde_json::{Value, json};
use tonic::Code;

fn with_key<T>(msg: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("x-api-key", key.parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_protect_rest_and_grpc_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, "# keys\nsecret-one\n").unwrap();
    let mut setup = Setup::small();
    setup.keys = ApiKeys::from_file(&file).unwrap();
    let s = TestServer::start(setup).await;
    let raw = common::dexcom_14d();
    let body = json!({"csv_base64": b64(&raw)});

    let r = s
        .http
        .post(s.url("/process_unified"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"],
        "API key required"
    );
    let r = s
        .http
        .post(s.url("/process_unified"))
        .header("X-API-Key", "wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"],
        "Invalid API key"
    );
    let r = s
        .http
        .post(s.url("/process_unified"))
        .header("x-api-key", "secret-one")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in [
        "/cache_management?action=info",
        "/draw_a_plot",
        "/quick_plot",
        "/forecast",
    ] {
        let r = s
            .http
            .post(s.url(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // Public endpoints.
    assert_eq!(
        s.http.get(s.url("/health")).send().await.unwrap().status(),
        200
    );
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(raw.clone()));
    assert_eq!(
        s.http
            .post(s.url("/convert_to_unified"))
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let mut c = s.grpc().await;
    let msg = || proto::ProcessUnifiedRequest {
        csv_base64: b64(&raw),
        force_calculate: false,
    };
    let e = c.process_unified(msg()).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::Unauthenticated,
            "API key required in metadata (x-api-key)"
        )
    );
    let e = c
        .process_unified(with_key(msg(), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::PermissionDenied, "Invalid API key")
    );
    assert!(
        c.process_unified(with_key(msg(), "secret-one"))
            .await
            .is_ok()
    );
    let e = c
        .stream_forecasts(proto::StreamForecastsRequest {
            handle: "x".into(),
            format: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(c.check_health(proto::HealthRequest {}).await.is_ok());
    assert!(
        c.convert_to_unified(proto::ConvertToUnifiedRequest {
            file_content: raw.clone()
        })
        .await
        .is_ok()
    );

    // A new key file takes effect on reload; the old key stops working.
    std::fs::write(&file, "secret-two-rotated\n").unwrap();
    s.svc().keys.reload().unwrap();
    let e = c
        .process_unified(with_key(msg(), "secret-one"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let r = s
        .http
        .post(s.url("/process_unified"))
        .header("x-api-key", "secret-two-rotated")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("endpoint=\"ProcessUnified\",status=\"Unauthenticated\"} 1"),
        "{m}"
    );
    assert!(!m.contains("secret"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_and_oversize_uploads_are_refused_clearly() {
    let mut setup = Setup::small();
    setup.engine = EngineConfig {
        queue_capacity: 20,
        interactive_reserve: 4,
        max_upload_bytes: 300_000,
        ..EngineConfig::default()
    };
    setup.max_body_bytes = 500_000;
    let s = TestServer::start(setup).await;
    let raw = common::dexcom_14d();
    assert!(raw.len() < 300_000);

    // 110 windows do not fit in a queue of 20: refused at once, not dropped.
    let r = s
        .http
        .post(s.url("/process_unified"))
        .json(&json!({"csv_base64": b64(&raw)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"],
        "Service overloaded. Queue is full. Please retry later."
    );
    let mut c = s.grpc().await;
    let e = c
        .process_unified(proto::ProcessUnifiedRequest {
            csv_base64: b64(&raw),
            force_calculate: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    // Interactive work still gets through.
    let q: Value = s
        .http
        .post(s.url("/quick_plot"))
        .json(&json!({"csv_base64": b64(&raw)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(q["error"].is_null(), "{q}");

    // Bodies over the HTTP limit: 413 before parsing, with or without a length.
    let big = vec![b'a'; 600_000];
    let r = s
        .http
        .post(s.url("/process_unified"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(
        r.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .starts_with("Upload too large")
    );
    let chunks =
        futures_util::stream::iter((0..6).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 100_001])));
    let r = s
        .http
        .post(s.url("/process_unified"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    // The server answers 413 as soon as the limit is passed and closes the
    // connection; a client still streaming may see the close before the answer.
    match r {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
    // Within the HTTP limit but over the upload limit once decoded.
    let upload = vec![b'x'; 350_000];
    let r = s
        .http
        .post(s.url("/process_unified"))
        .json(&json!({"csv_base64": b64(&upload)[..460_000]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e = c
        .convert_to_unified(proto::ConvertToUnifiedRequest {
            file_content: upload.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    let e = c
        .quick_plot(proto::QuickPlotRequest {
            csv_base64: b64(&upload),
            force_calculate: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    // Nothing cached was lost, and the service still answers.
    assert_eq!(
        s.http.get(s.url("/health")).send().await.unwrap().status(),
        200
    );
    s.stop().await;
}

/// The default (gluRPC) model size with random weights: slow enough on CPU
/// that queued work is still queued when a client leaves.
fn default_size_model() -> Gluformer {
    let cfg = GluformerConfig::default();
    let sd = init::random_state_dict(&cfg, 7).unwrap();
    Gluformer::from_state_dict(sd, cfg, &Device::Cpu).unwrap()
}

async fn settle(s: &TestServer) {
    let t = Instant::now();
    while s.svc().engine.queued() > 0 || s.svc().engine.health().available_general_models == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the queue never drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_leave_cancel_their_work() {
    let mut setup = Setup::small();
    setup.model = default_size_model();
    setup.engine = EngineConfig {
        samples: 10,
        ..EngineConfig::default()
    };
    let s = TestServer::start(setup).await;
    let raw = common::dexcom_14d();
    let mut c = s.grpc().await;
    // An upload with no background work queued: /forecast keeps it.
    let f = c
        .forecast(proto::ForecastRequest {
            csv_base64: b64(&raw),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    settle(&s).await;

    // A stream dropped after its first message: the rest is cancelled, and
    // no task is left behind.
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let tasks_before = tasks();
    let before = s.svc().engine.health();
    let mut stream = c
        .stream_forecasts(proto::StreamForecastsRequest {
            handle: f.handle.clone(),
            format: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.r#final);
    drop(stream);
    settle(&s).await;
    let after = s.svc().engine.health();
    let cancelled = after.cancelled_jobs - before.cancelled_jobs;
    let inferred = after.windows_inferred - before.windows_inferred;
    assert!(cancelled > 50, "cancelled {cancelled}, inferred {inferred}");
    assert_eq!(cancelled + inferred, 110);
    let t = Instant::now();
    while tasks() > tasks_before {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{} tasks, {tasks_before} before",
            tasks()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // While a stream keeps the model busy, single windows of another upload
    // whose clients leave are cancelled (the stream's own jobs still have
    // their waiter, so only the abandoned window can be cancelled).
    let other = std::fs::read(common::data_dir().join("real/libre_eu_1y.csv")).unwrap();
    let g = c
        .forecast(proto::ForecastRequest {
            csv_base64: b64(&other),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    settle(&s).await;
    let busy = c
        .stream_forecasts(proto::StreamForecastsRequest {
            handle: f.handle.clone(),
            format: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let cancelled = || s.svc().engine.health().cancelled_jobs;
    let wait_for = |n: u64| async move {
        let t = Instant::now();
        while cancelled() < n {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the abandoned window was not cancelled: {} < {n}",
                cancelled()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // A gRPC deadline that passes while the window waits.
    let base = cancelled();
    let mut req = tonic::Request::new(proto::PlotRequest {
        handle: g.handle.clone(),
        index: -80,
        force_calculate: false,
    });
    req.set_timeout(Duration::from_millis(30));
    let e = c.draw_plot(req).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{e:?}"
    );
    wait_for(base + 1).await;
    // An HTTP client that closes its connection while its window waits.
    let body = json!({"handle": g.handle, "index": -81}).to_string();
    let mut conn = tokio::net::TcpStream::connect(s.running.rest_addr.unwrap())
        .await
        .unwrap();
    let request = format!(
        "POST /draw_a_plot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut conn, request.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(conn);
    wait_for(base + 2).await;
    drop(busy);
    settle(&s).await;
    assert!(!s.svc().engine.handles().is_empty());
    s.stop().await;
}

#[test]
fn the_binary_shuts_down_gracefully_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::data_dir().join("model/small");
    let mut cmd =
        common::process::serve_command(std::path::Path::new(env!("CARGO_BIN_EXE_glurpc")));
    cmd.args(["--shutdown-grace-s", "20"])
        .arg("--model")
        .arg(&model)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"));
    let mut server = common::process::Process::start(cmd);
    let rest = server.rest.clone();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let codes: Vec<u16> = rt.block_on(async {
        let http = reqwest::Client::new();
        let raw = common::dexcom_14d();
        let p: Value = http
            .post(format!("http://{rest}/process_unified"))
            .json(&json!({"csv_base64": b64(&raw)}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let handle = p["handle"].as_str().unwrap().to_string();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (http, url, handle) = (
                http.clone(),
                format!("http://{rest}/draw_a_plot"),
                handle.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let r = http
                    .post(url)
                    .json(&json!({"handle": handle, "index": -(i * 6)}))
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        codes
    });
    // In-flight requests finish with their answer.
    assert!(codes.iter().all(|&c| c == 200), "{codes:?}");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // The cache was persisted on the way out.
    let files = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
    assert!(files >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_past_the_inference_timeout_is_504_or_deadline_exceeded() {
    let mut setup = Setup::small();
    setup.model = default_size_model();
    setup.timeout = Duration::from_millis(50);
    let s = TestServer::start(setup).await;
    let raw = common::dexcom_14d();
    let mut c = s.grpc().await;
    let f = c
        .forecast(proto::ForecastRequest {
            csv_base64: b64(&raw),
            ..Default::default()
        })
        .await;
    // The forward window alone takes longer than 50 ms on this model.
    assert_eq!(f.unwrap_err().code(), Code::DeadlineExceeded);
    let handle = s.svc().engine.handles().into_iter().next().unwrap();
    let r = s
        .http
        .post(s.url("/draw_a_plot"))
        .json(&json!({"handle": handle, "index": -3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"],
        "Request timeout"
    );
    let e = c
        .draw_plot(proto::PlotRequest {
            handle,
            index: -4,
            force_calculate: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::DeadlineExceeded, "Request timeout")
    );
    s.stop().await;
}
