//! Replicas sharing one Redis (issue 20), as processes: real `glurpc serve`
//! binaries, a real `redis-server`, real `kill -9`. An upload processed on
//! one replica is drawn on the others with identical bytes, every window is
//! computed exactly once across replicas (their `glurpc_windows_inferred_total`
//! sum to N) and by more than one of them; a replica killed mid-upload
//! loses nothing another cannot finish; Redis restarted mid-upload still
//! lets every window reach a stream, and gets the upload and its unfinished
//! windows back from the replicas; a flush on one replica empties the
//! others' view; replicas share through a Redis that speaks only TLS and
//! checks their certificates (made with the `openssl` command). The work
//! streams alone: the most urgent items first, in one pull, and items held
//! past the lease taken over.

mod common;

use std::time::{Duration, Instant};

use common::process::{Process, serve_command};
use common::redis::Redis;
use common::server::b64;
use glurpc::proto;
use glurpc::proto::glucose_prediction_client::GlucosePredictionClient;
use serde_json::{Value, json};
use tokio_stream::StreamExt as _;

/// A replica on `redis`, with the small model, `samples` MC samples and a
/// short lease.
fn replica(redis: &Redis, samples: usize) -> Process {
    let mut cmd = serve_command(std::path::Path::new(env!("CARGO_BIN_EXE_glurpc")));
    cmd.arg("--model")
        .arg(common::data_dir().join("model/small"))
        .args(["--enable-cache-persistence", "false"])
        .args(["--samples", &samples.to_string()])
        .args(["--redis-url", &redis.url()])
        .args(["--redis-lease-s", "2"])
        .args(["--redis-timeout-ms", "500"]);
    Process::start(cmd)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A counter of `/metrics`.
async fn metric(http: &reqwest::Client, p: &Process, name: &str) -> f64 {
    let text = http
        .get(p.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// The JSON answer of a request.
async fn json(r: reqwest::RequestBuilder) -> Value {
    r.send().await.unwrap().json().await.unwrap()
}

async fn process(http: &reqwest::Client, p: &Process) -> (String, i64) {
    let raw = common::dexcom_14d();
    let v = json(
        http.post(p.url("/process_unified"))
            .json(&json!({"csv_base64": b64(&raw)})),
    )
    .await;
    (
        v["handle"].as_str().unwrap().to_string(),
        v["total_samples"].as_i64().unwrap(),
    )
}

async fn png(http: &reqwest::Client, p: &Process, handle: &str, index: i64) -> (u16, Vec<u8>) {
    let r = http
        .post(p.url("/draw_a_plot?format=png"))
        .json(&json!({"handle": handle, "index": index}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// Every window of `handle` through `StreamForecasts` at gRPC address
/// `grpc`: the indices seen (each at most once), sorted.
async fn stream_all(grpc: String, handle: String, n: i64) -> Vec<i64> {
    let mut c = GlucosePredictionClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let mut stream = c
        .stream_forecasts(proto::StreamForecastsRequest {
            handle,
            format: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Some(m) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .expect("the stream hung")
    {
        let m = m.unwrap();
        assert!(m.error.is_empty(), "window {}: {}", m.index, m.error);
        assert_eq!(m.total as i64, n);
        assert!(
            !seen.contains(&(m.index as i64)),
            "window {} twice",
            m.index
        );
        seen.push(m.index as i64);
    }
    seen.sort_unstable();
    seen
}

#[test]
fn three_replicas_share_one_upload_and_one_flush() {
    let redis = Redis::start();
    // 16 samples: 4 windows per forward pass, so a replica holds at most 8
    // of the 110 at a time and B and C get a share even when their pullers
    // wake a few passes after A's (2 cores shared by 3 processes).
    let (a, b, c) = (
        replica(&redis, 16),
        replica(&redis, 16),
        replica(&redis, 16),
    );
    runtime().block_on(async {
        let http = client();
        let (handle, n) = process(&http, &a).await;
        for index in [0, -7, -(n - 1)] {
            let (sa, pa) = png(&http, &a, &handle, index).await;
            let (sb, pb) = png(&http, &b, &handle, index).await;
            let (sc, pc) = png(&http, &c, &handle, index).await;
            assert_eq!((sa, sb, sc), (200, 200, 200));
            assert!(
                pa == pb && pb == pc,
                "window {index} differs between replicas"
            );
        }
        // Every window computed once, somewhere.
        let started = Instant::now();
        let counts = loop {
            let mut counts = Vec::new();
            for p in [&a, &b, &c] {
                counts.push(metric(&http, p, "glurpc_windows_inferred_total").await);
            }
            if counts.iter().sum::<f64>() >= n as f64 || started.elapsed() > Duration::from_secs(90)
            {
                break counts;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut after = Vec::new();
        for p in [&a, &b, &c] {
            after.push(metric(&http, p, "glurpc_windows_inferred_total").await);
        }
        eprintln!("windows computed per replica (A, B, C): {counts:?}");
        assert_eq!(counts, after, "windows computed again after all were done");
        assert_eq!(
            counts.iter().sum::<f64>(),
            n as f64,
            "per replica: {counts:?}"
        );
        assert!(
            counts[1] > 0.0 && counts[2] > 0.0,
            "B and C took a share: {counts:?}"
        );
        // B streams every window, computed anywhere.
        let all: Vec<i64> = (-(n - 1)..=0).collect();
        assert_eq!(
            stream_all(b.grpc.clone().unwrap(), handle.clone(), n).await,
            all
        );
        // A flush on A empties B's and C's view.
        let r = json(http.post(a.url("/cache_management?action=flush"))).await;
        assert_eq!(r["success"], true);
        tokio::time::sleep(Duration::from_millis(500)).await;
        for p in [&b, &c] {
            assert_eq!(png(&http, p, &handle, 0).await.0, 404);
            let info = json(http.post(p.url("/cache_management?action=info"))).await;
            assert_eq!(info["cache_size"], 0, "{info}");
        }
    });
}

#[test]
fn a_replica_killed_mid_upload_loses_no_window() {
    let redis = Redis::start();
    // Many samples: each window is slow enough to kill A in the middle.
    let (a, b) = (replica(&redis, 30), replica(&redis, 30));
    runtime().block_on(async {
        let http = client();
        let (handle, n) = process(&http, &a).await;
        let started = Instant::now();
        while metric(&http, &a, "glurpc_windows_claimed_total").await < 1.0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "A never claimed a window"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.kill();
        let all: Vec<i64> = (-(n - 1)..=0).collect();
        assert_eq!(stream_all(b.grpc.clone().unwrap(), handle, n).await, all);
        // A died holding work items (it keeps its next pass queued while
        // work is left); B's puller claims them again once their lease has
        // passed, whether B's stream had already computed their windows
        // (it computes a window nobody delivered for a lease) or not.
        let started = Instant::now();
        while metric(&http, &b, "glurpc_windows_reclaimed_total").await < 1.0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "B never claimed A's work items again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn redis_restarted_mid_upload_still_delivers_every_window() {
    let mut redis = Redis::start();
    let port = redis.port;
    let (a, b) = (replica(&redis, 30), replica(&redis, 30));
    runtime().block_on(async {
        let http = client();
        let (handle, n) = process(&http, &a).await;
        // B has the upload in memory before Redis goes.
        assert_eq!(png(&http, &b, &handle, -3).await.0, 200);
        let streaming = tokio::spawn(stream_all(b.grpc.clone().unwrap(), handle.clone(), n));
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.kill();
        // Requests while Redis is away answer, never hang.
        let t = Instant::now();
        let (status, _) = png(&http, &b, &handle, -5).await;
        assert_eq!(status, 200);
        assert!(t.elapsed() < Duration::from_secs(30));
        let health = json(http.get(b.url("/health"))).await;
        assert_eq!(health["status"], "degraded", "{health}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let redis = Redis::on(port);
        let seen = streaming.await.unwrap();
        assert_eq!(seen, (-(n - 1)..=0).collect::<Vec<_>>());
        // The restarted Redis was empty: the replicas shared the upload again
        // and put its unfinished windows back on the streams, so a replica
        // that never saw it before the restart draws it too.
        let requeued = metric(&http, &a, "glurpc_windows_requeued_total").await
            + metric(&http, &b, "glurpc_windows_requeued_total").await;
        assert!(requeued > 0.0, "no window was queued again");
        let c = replica(&redis, 30);
        let (status, from_c) = png(&http, &c, &handle, -7).await;
        assert_eq!(status, 200);
        assert_eq!(from_c, png(&http, &b, &handle, -7).await.1);
        let started = Instant::now();
        loop {
            let health = json(http.get(b.url("/health"))).await;
            if health["status"] == "ok" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still degraded: {health}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(a);
    });
}

/// `glurpc serve` with the small model on the TLS Redis `url`, with `tls`
/// arguments (certificates).
fn tls_replica(url: &str, tls: &[&std::path::Path]) -> std::process::Command {
    let mut cmd = serve_command(std::path::Path::new(env!("CARGO_BIN_EXE_glurpc")));
    cmd.arg("--model")
        .arg(common::data_dir().join("model/small"))
        .args(["--enable-cache-persistence", "false", "--samples", "3"])
        .args(["--redis-url", url]);
    for (flag, file) in ["--redis-ca-file", "--redis-cert-file", "--redis-key-file"]
        .iter()
        .zip(tls)
    {
        cmd.arg(flag).arg(file);
    }
    cmd
}

/// Runs `cmd`, which must refuse to start: its exit code and standard error.
fn refused(mut cmd: std::process::Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("it started (or hung) instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn replicas_share_through_a_redis_that_speaks_only_tls() {
    let dir = tempfile::tempdir().unwrap();
    let files = common::redis::TlsFiles::make(dir.path());
    let redis = Redis::tls(&files);
    let url = redis.tls_url();
    let (ca, cert, key) = (
        files.ca.as_path(),
        files.client.0.as_path(),
        files.client.1.as_path(),
    );
    // A server certificate of an unknown CA is not trusted: refused at start.
    let (code, err) = refused(tls_replica(&url, &[]));
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("Redis"), "{err}");
    // Trusted, but this Redis wants a client certificate.
    let (code, err) = refused(tls_replica(&url, &[ca]));
    assert_eq!(code, Some(69), "{err}");
    // TLS certificates with a plain redis:// URL: a clear refusal.
    let plain = url.replace("rediss://", "redis://");
    let (code, err) = refused(tls_replica(&plain, &[ca, cert, key]));
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("rediss://"), "{err}");
    // With both, two replicas share one upload over TLS.
    let a = Process::start(tls_replica(&url, &[ca, cert, key]));
    let b = Process::start(tls_replica(&url, &[ca, cert, key]));
    runtime().block_on(async {
        let http = client();
        let (handle, _) = process(&http, &a).await;
        let (sa, pa) = png(&http, &a, &handle, -2).await;
        let (sb, pb) = png(&http, &b, &handle, -2).await;
        assert_eq!((sa, sb), (200, 200));
        assert!(pa == pb, "the replicas drew different plots");
        assert_eq!(metric(&http, &b, "glurpc_shared_store_up").await, 1.0);
        let health = json(http.get(b.url("/health"))).await;
        assert_eq!(health["status"], "ok", "{health}");
    });
}

#[test]
fn the_work_streams_give_the_most_urgent_items_first_and_take_over_past_the_lease() {
    use glurpc::cache::shared::{PullLeases, RedisTls, Shared, SharedConfig};
    let redis = Redis::start();
    let shared = Shared::connect(SharedConfig {
        url: redis.url(),
        tls: RedisTls::default(),
        prefix: "t:".into(),
        ttl: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    shared.enqueue(3, &names("later", 3)).unwrap();
    shared.enqueue(1, &names("sooner", 3)).unwrap();
    let long = Duration::from_secs(60);
    let payloads = |items: &[glurpc::cache::shared::Pulled]| {
        items.iter().map(|i| i.payload.clone()).collect::<Vec<_>>()
    };
    // The urgent stream first, at most `count`, then the rest of it, then
    // the next stream.
    let a = shared.pull("a", 2, long, &[0, 1, 3], None).unwrap();
    assert_eq!(payloads(&a), ["sooner0", "sooner1"]);
    assert!(a.iter().all(|i| i.priority == 1 && !i.reclaimed));
    let a2 = shared.pull("a", 5, long, &[0, 1, 3], None).unwrap();
    assert_eq!(payloads(&a2), ["sooner2"]);
    // With leases: each item's lease taken, its check key looked for.
    shared.set("done:later1", b"x").unwrap();
    shared.set("lease:later2", b"someone").unwrap();
    let leases = PullLeases {
        lease_prefix: "lease:",
        check_prefix: "done:",
        holder: "b",
        ttl: long,
    };
    let b = shared
        .pull("b", 5, long, &[0, 1, 3], Some(&leases))
        .unwrap();
    assert_eq!(payloads(&b), ["later0", "later1", "later2"]);
    assert!(b.iter().all(|i| i.priority == 3 && !i.reclaimed));
    let found: Vec<_> = b.iter().map(|i| i.lease).collect();
    assert_eq!(
        found,
        [
            Some((true, false)),
            Some((true, true)),
            Some((false, false))
        ]
    );
    assert_eq!(
        shared.get("lease:later0").unwrap().as_deref(),
        Some(&b"b"[..])
    );
    assert_eq!(
        shared.get("lease:later2").unwrap().as_deref(),
        Some(&b"someone"[..])
    );
    assert!(a.iter().chain(&a2).all(|i| i.lease.is_none()));
    // Nothing new, nothing held past a long lease.
    assert!(
        shared
            .pull("c", 5, long, &[0, 1, 3], None)
            .unwrap()
            .is_empty()
    );
    // Acknowledged items are gone; the others are taken over once held
    // past the lease.
    shared.ack(1, &a[0].id).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let short = Duration::from_millis(20);
    let c = shared
        .pull("c", 5, short, &[0, 1, 3], Some(&leases))
        .unwrap();
    assert_eq!(payloads(&c), ["sooner1", "sooner2"]);
    assert!(c.iter().all(|i| i.priority == 1 && i.reclaimed));
    assert!(c.iter().all(|i| i.lease == Some((true, false))));
    assert!(
        shared
            .pull("c", 0, short, &[0, 1, 3], None)
            .unwrap()
            .is_empty()
    );
}
