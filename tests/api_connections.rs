//! REST connections under slow, idle, numerous and half-closed clients
//! (issue 19, faults 2 and 3): real sockets against a real server.

mod common;

use std::time::{Duration, Instant};

use candle_core::Device;
use common::server::{Setup, TestServer, b64};
use glurpc::api::disconnect::Limits;
use glurpc::engine::EngineConfig;
use glurpc::model::{Gluformer, GluformerConfig, init};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn quick_limits(setup: &mut Setup) {
    setup.limits = Limits {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        max_connections: 64,
    };
    setup.body_timeout = Duration::from_secs(1);
}

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.running.rest_addr.unwrap())
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or 10 s pass without a
/// byte); returns what came and how long it took.
async fn until_closed(conn: &mut TcpStream) -> (String, Duration) {
    let t = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open for 10 s"),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), t.elapsed())
}

#[tokio::test]
async fn idle_and_slow_clients_are_closed() {
    let mut setup = Setup::small();
    quick_limits(&mut setup);
    let s = TestServer::start(setup).await;

    // an idle connection that never sends a byte
    let mut idle = connect(&s).await;
    let (got, took) = until_closed(&mut idle).await;
    assert!(got.is_empty(), "{got}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // slowloris: a head dribbled a byte at a time never completes
    let mut slow = connect(&s).await;
    let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let t = Instant::now();
    let mut closed = false;
    for b in head {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if t.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !closed {
        let (got, _) = until_closed(&mut slow).await;
        assert!(
            !got.contains("200 OK"),
            "the dribbled head was answered: {got}"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // a body that stops arriving: 408, then the connection closes
    let mut body = connect(&s).await;
    body.write_all(b"POST /process_unified HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"csv_base64\": \"")
        .await
        .unwrap();
    let (got, took) = until_closed(&mut body).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        got.contains("Request body not received within 1 s"),
        "{got}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");

    // keep-alive: answered, then closed once idle
    let mut ka = connect(&s).await;
    ka.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, took) = until_closed(&mut ka).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    s.stop().await;
}

/// Long requests are not cut by the idle timeout: it only runs while no
/// request is in flight, and starts again when the answer is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_request_outlives_the_idle_timeout() {
    let mut setup = Setup::small();
    // the default (gluRPC) model size with random weights: a cold forecast takes a while
    let cfg = GluformerConfig::default();
    let sd = init::random_state_dict(&cfg, 7).unwrap();
    setup.model = Gluformer::from_state_dict(sd, cfg, &Device::Cpu).unwrap();
    // and 100 MC samples instead of 10: several seconds, far beyond the idle timeout
    setup.engine = EngineConfig {
        samples: 100,
        ..EngineConfig::default()
    };
    let idle = Duration::from_millis(300);
    setup.limits = Limits {
        header_timeout: idle,
        idle_timeout: idle,
        max_connections: 64,
    };
    let s = TestServer::start(setup).await;
    let body = json!({"csv_base64": b64(&common::dexcom_14d())}).to_string();
    let mut conn = connect(&s).await;
    let head = format!(
        "POST /forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body.as_bytes()).await.unwrap();
    let t = Instant::now();
    let mut first = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(120), conn.read_exact(&mut first))
        .await
        .expect("no answer within 120 s")
        .unwrap();
    let took = t.elapsed();
    assert_eq!(&first, b"HTTP/1.1 200", "answered after {took:?}");
    assert!(
        took > idle * 2,
        "the request was too quick to test anything: {took:?}"
    );
    // then, idle, the connection is closed
    let (_, idle_for) = until_closed(&mut conn).await;
    assert!(idle_for < Duration::from_secs(3), "{idle_for:?}");
    s.stop().await;
}

#[tokio::test]
async fn beyond_the_connection_cap_new_clients_get_503() {
    let mut setup = Setup::small();
    setup.limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let s = TestServer::start(setup).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&s).await;
        // make sure each is accepted before the next
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(c);
    }
    let mut over = connect(&s).await;
    let (got, _) = until_closed(&mut over).await;
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.to_ascii_lowercase().contains("retry-after: 1"), "{got}");
    assert!(got.contains("Too many connections"), "{got}");
    // a connection that closes frees its place
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s.http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Each REST connection costs the server one descriptor (the disconnect
/// watch shares the socket instead of duplicating it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_descriptor_per_connection() {
    const N: usize = 200;
    let s = TestServer::start(Setup::small()).await;
    let before = open_descriptors();
    let mut conns = Vec::new();
    for _ in 0..N {
        let mut c = connect(&s).await;
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let _ = c.read(&mut buf).await.unwrap();
        conns.push(c);
    }
    let per_connection = (open_descriptors() - before) as f64 / N as f64;
    eprintln!("{per_connection} descriptors per connection (client and server ends)");
    // one for the client's end (this process), one for the server's
    assert!(
        per_connection <= 2.1,
        "{per_connection} descriptors per connection"
    );
    drop(conns);
    s.stop().await;
}

/// A client that sends its whole request and then shuts down its write side
/// (legal in HTTP/1.1) gets its answer; one that closes entirely is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_gets_its_answer() {
    let s = TestServer::start(Setup::small()).await;
    let raw = common::dexcom_14d();
    let p: Value = s
        .http
        .post(s.url("/process_unified"))
        .json(&json!({"csv_base64": b64(&raw)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let handle = p["handle"].as_str().unwrap();
    // one cached plot, one that still has to be computed
    for index in [0, -100] {
        if index == 0 {
            let r = s
                .http
                .post(s.url("/draw_a_plot?format=json"))
                .json(&json!({"handle": handle, "index": 0}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let body = json!({"handle": handle, "index": index}).to_string();
        let mut conn = connect(&s).await;
        let request = format!(
            "POST /draw_a_plot?format=json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        conn.shutdown().await.unwrap();
        let (got, _) = until_closed(&mut conn).await;
        assert!(
            got.starts_with("HTTP/1.1 200"),
            "index {index}: {}",
            &got[..got.len().min(200)]
        );
        assert!(got.contains("\"median\""));
    }
    s.stop().await;
}
