//! What operators read (issue 21): the plot-render figures of `/health` and
//! `/metrics` move when plots are rendered, and `/metrics` is valid
//! Prometheus text.

mod common;

use common::server::{Setup, TestServer, b64};
use serde_json::{Value, json};

/// The value of the unlabelled sample `name` in Prometheus text `text`,
/// read with a Prometheus text-format parser.
fn sample(text: &str, name: &str) -> f64 {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn renders_are_counted_in_health_and_metrics() {
    let s = TestServer::start(Setup::small()).await;
    let health = |s: &TestServer| {
        let url = s.url("/health");
        let http = s.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let metrics = |s: &TestServer| {
        let url = s.url("/metrics");
        let http = s.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let before = health(&s).await;
    assert_eq!(before["total_calc_runs"], 0);
    assert_eq!(sample(&metrics(&s).await, "glurpc_plot_renders_total"), 0.0);

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
    for format in ["png", "svg", "json"] {
        let r = s
            .http
            .post(s.url(&format!("/draw_a_plot?format={format}")))
            .json(&json!({"handle": handle, "index": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{format}");
    }
    // a memoised plot is not rendered again
    let r = s
        .http
        .post(s.url("/draw_a_plot?format=png"))
        .json(&json!({"handle": handle, "index": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let after = health(&s).await;
    assert_eq!(after["total_calc_runs"], 3, "{after}");
    assert_eq!(after["total_calc_errors"], 0);
    assert_eq!(after["calc_queue_size"], 0);
    let text = metrics(&s).await;
    assert_eq!(sample(&text, "glurpc_plot_renders_total"), 3.0);
    assert_eq!(sample(&text, "glurpc_plot_render_errors_total"), 0.0);
    s.stop().await;
}

/// `GET /info` says which model answers, as `glurpc model info` does for the
/// same weights.
#[test]
fn info_names_the_model_that_answers() {
    let bin = env!("CARGO_BIN_EXE_glurpc");
    let cli = std::process::Command::new(bin)
        .args(["model", "info", "default", "--json"])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(
        cli["calibration"]["scales"].as_array().map(Vec::len),
        Some(12)
    );

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::process::serve_command(std::path::Path::new(bin));
    cmd.args(["--seed", "7", "--samples", "12"])
        .arg("--cache-dir")
        .arg(dir.path())
        .env_remove("GLURPC_MODEL");
    let server = common::process::Process::start(cmd);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let info: Value = rt.block_on(async {
        reqwest::get(server.url("/info"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    drop(server);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["model"], "default");
    assert_eq!(info["sha256"], cli["sha256"]);
    assert_eq!(info["parameters"], cli["parameters"]);
    assert_eq!(info["config"], cli["config"]);
    assert_eq!(info["calibration"], cli["calibration"]);
    assert_eq!(info["device"], "cpu");
    assert_eq!(
        (info["samples"].as_u64(), info["seed"].as_u64()),
        (Some(12), Some(7))
    );
    assert!(
        info["model_id"]
            .as_str()
            .unwrap()
            .starts_with(cli["sha256"].as_str().unwrap()),
        "{info}"
    );
}
