//! `/metrics` from `prometheus-client` (issue 21, item 2): every metric
//! name the README lists is there and parses as Prometheus text, the model
//! batch durations are a histogram, servers in one process keep their own
//! figures, and `--metrics-port` moves `/metrics` to a port of its own.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::server::{Setup, TestServer, b64};
use prometheus_parse::{Scrape, Value};
use serde_json::json;

/// Every metric served before the move to `prometheus-client`.
const NAMES: [&str; 17] = [
    "glurpc_requests_total",
    "glurpc_request_duration_seconds",
    "glurpc_model_batches_total",
    "glurpc_windows_inferred_total",
    "glurpc_inference_errors_total",
    "glurpc_jobs_cancelled_total",
    "glurpc_model_batch_duration_seconds",
    "glurpc_inference_queue_size",
    "glurpc_inference_queue_capacity",
    "glurpc_idle_model_workers",
    "glurpc_plot_renders_total",
    "glurpc_plot_render_errors_total",
    "glurpc_cache_entries",
    "glurpc_cache_bytes",
    "glurpc_cached_handles",
    "process_resident_memory_bytes",
    "glurpc_peak_resident_memory_bytes",
];

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text")
}

async fn scrape(s: &TestServer) -> String {
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    assert_eq!(kind, Some(glurpc::api::metrics::CONTENT_TYPE));
    r.text().await.unwrap()
}

/// The `glurpc_requests_total` sample of `endpoint` and `status`, if any.
fn requests(text: &str, endpoint: &str, status: &str) -> Option<f64> {
    parse(text)
        .samples
        .into_iter()
        .find(|s| {
            s.metric == "glurpc_requests_total"
                && s.labels.get("endpoint") == Some(endpoint)
                && s.labels.get("status") == Some(status)
        })
        .map(|s| match s.value {
            Value::Counter(v) | Value::Untyped(v) => v,
            other => panic!("{other:?}"),
        })
}

#[tokio::test]
async fn batch_durations_are_a_histogram_and_every_name_is_kept() {
    let s = TestServer::start(Setup::small()).await;
    let r = s
        .http
        .post(s.url("/quick_plot?format=json"))
        .json(&json!({ "csv_base64": b64(&common::dexcom_14d()) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = scrape(&s).await;
    for name in NAMES {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing: {text}"
        );
    }
    assert!(
        text.contains("# TYPE glurpc_model_batch_duration_seconds histogram"),
        "{text}"
    );
    let scraped = parse(&text);
    let batches = scraped
        .samples
        .iter()
        .find(|s| s.metric == "glurpc_model_batch_duration_seconds")
        .expect("the batch histogram");
    let Value::Histogram(buckets) = &batches.value else {
        panic!("not a histogram: {:?}", batches.value)
    };
    let inf = buckets.last().expect("buckets");
    assert!(
        inf.less_than.is_infinite() && inf.count >= 1.0,
        "{buckets:?}"
    );
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "cumulative"
    );
    let count = scraped
        .samples
        .iter()
        .find(|s| s.metric == "glurpc_model_batch_duration_seconds_count");
    // prometheus-parse folds _count into the histogram; the text has it.
    assert!(count.is_some() || text.contains("glurpc_model_batch_duration_seconds_count "));
    s.stop().await;
}

#[tokio::test]
async fn servers_in_one_process_keep_their_own_metrics() {
    let a = TestServer::start(Setup::small()).await;
    let b = TestServer::start(Setup::small()).await;
    for _ in 0..3 {
        let r = a.http.get(a.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = b.http.get(b.url("/no/such/path")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let (ta, tb) = (scrape(&a).await, scrape(&b).await);
    assert_eq!(requests(&ta, "/health", "200"), Some(3.0), "{ta}");
    assert_eq!(requests(&ta, "other", "404"), None, "{ta}");
    assert_eq!(requests(&tb, "/health", "200"), None, "{tb}");
    assert_eq!(requests(&tb, "other", "404"), Some(1.0), "{tb}");
    a.stop().await;
    b.stop().await;
}

#[test]
fn a_metrics_port_serves_metrics_and_the_public_port_no_longer_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_glurpc"))
        .args(["serve", "--host", "127.0.0.1", "--rest-port", "0"])
        .args(["--grpc-port", "0", "--metrics-port", "0", "--model"])
        .arg(common::data_dir().join("model/small"))
        .arg("--cache-dir")
        .arg(dir.path())
        .env_remove("GLURPC_LOG_JSON")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("glurpc ready:"));
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let Some(ready) = ready else {
        let _ = child.kill();
        panic!("no ready line");
    };
    let addr = |key: &str| {
        ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} missing: {ready}"))
            .to_string()
    };
    let (rest, metrics) = (addr("rest="), addr("metrics="));
    assert!(ready.ends_with(" ms"), "{ready}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (public, private, kind, text) = rt.block_on(async {
        let public = reqwest::get(format!("http://{rest}/metrics"))
            .await
            .unwrap();
        let private = reqwest::get(format!("http://{metrics}/metrics"))
            .await
            .unwrap();
        let kind = private
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (
            public.status(),
            private.status(),
            kind,
            private.text().await.unwrap(),
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(public, 404);
    assert_eq!(private, 200);
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    // The refused public scrape was counted; the private one was not.
    assert_eq!(requests(&text, "/metrics", "404"), Some(1.0), "{text}");
    assert_eq!(requests(&text, "/metrics", "200"), None, "{text}");
}
