//! The REST front end over a real server on a free port, driven by an HTTP
//! client: every endpoint of the reference, its error paths and bodies,
//! format negotiation, `/forecast`, `/metrics`, the docs.

mod common;

use common::server::{Setup, TestServer, b64};
use serde_json::{Value, json};

const HEALTH_FIELDS: [&str; 23] = [
    "status",
    "load_status",
    "cache_size",
    "models_initialized",
    "available_priority_models",
    "available_general_models",
    "avg_fulfillment_time_ms",
    "vmem_usage_mb",
    "device",
    "total_http_requests",
    "total_http_errors",
    "avg_request_time_ms",
    "median_request_time_ms",
    "min_request_time_ms",
    "max_request_time_ms",
    "inference_requests_by_priority",
    "total_inference_errors",
    "total_calc_runs",
    "total_calc_errors",
    "inference_queue_size",
    "inference_queue_capacity",
    "calc_queue_size",
    "calc_queue_capacity",
];

async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let r = s.http.post(s.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_process_draw_and_their_errors() {
    let s = TestServer::start(Setup::small()).await;
    let raw = common::dexcom_14d();

    // convert_to_unified: multipart `file`, public, errors in the body.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(raw.clone()).file_name("x.csv"),
    );
    let r = s
        .http
        .post(s.url("/convert_to_unified"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let conv: Value = r.json().await.unwrap();
    assert!(conv["error"].is_null());
    let csv = conv["csv_content"].as_str().unwrap().to_string();
    assert!(csv.starts_with("sequence_id,original_datetime,original_glucose,quality,"));
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"invalid data".to_vec()),
    );
    let r = s
        .http
        .post(s.url("/convert_to_unified"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bad: Value = r.json().await.unwrap();
    assert!(bad["csv_content"].is_null());
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .starts_with("Unknown CGM data format"),
        "{bad}"
    );
    let r = s
        .http
        .post(s.url("/convert_to_unified"))
        .multipart(reqwest::multipart::Form::new())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // process_unified: the raw export and its unified CSV give one handle.
    let (st, p) = post(&s, "/process_unified", json!({"csv_base64": b64(&raw)})).await;
    assert_eq!(st, 200, "{p}");
    let handle = p["handle"].as_str().unwrap().to_string();
    assert_eq!(handle.len(), 64);
    assert_eq!(p["total_samples"], 110);
    assert_eq!(p["warnings"]["imputation"], true);
    assert!(p["error"].is_null());
    let (_, p2) = post(
        &s,
        "/process_unified",
        json!({"csv_base64": b64(csv.as_bytes())}),
    )
    .await;
    assert_eq!(p2["handle"], handle.as_str());

    // Unusable uploads: 200 with error, null handle, default warnings.
    for (body, start) in [
        (json!({"csv_base64": "!!!"}), "Failed to decode base64 data"),
        (
            json!({"csv_base64": b64(b"invalid data")}),
            "Unknown CGM data format",
        ),
    ] {
        let (st, p) = post(&s, "/process_unified", body).await;
        assert_eq!(st, 200);
        assert!(p["handle"].is_null() && p["total_samples"].is_null());
        assert_eq!(p["warnings"]["has_warnings"], false);
        assert!(p["error"].as_str().unwrap().starts_with(start), "{p}");
    }
    // Validation: 422 with FastAPI's body.
    let (st, v) = post(&s, "/process_unified", json!({"csv_base64": ""})).await;
    assert_eq!(st, 422);
    assert!(v["detail"][0]["msg"].is_string(), "{v}");
    let r = s
        .http
        .post(s.url("/process_unified"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // draw_a_plot: the Plotly figure by default, other formats on request.
    let r = s
        .http
        .post(s.url("/draw_a_plot"))
        .json(&json!({"handle": handle, "index": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().contains_key("x-request-id"));
    let fig: Value = r.json().await.unwrap();
    assert_eq!(fig["layout"]["title"]["text"], "Gluformer Prediction");
    let names: Vec<&str> = fig["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["True Values", "Median Forecast"]);
    let r = s
        .http
        .post(s.url("/draw_a_plot?format=png"))
        .json(&json!({"handle": handle, "index": -3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(&r.bytes().await.unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    let r = s
        .http
        .post(s.url("/draw_a_plot"))
        .header("accept", "image/svg+xml")
        .json(&json!({"handle": handle, "index": -3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.text().await.unwrap().contains("<svg"));
    let r = s
        .http
        .post(s.url("/draw_a_plot?format=json"))
        .json(&json!({"handle": handle, "index": -109}))
        .send()
        .await
        .unwrap();
    let compact: Value = r.json().await.unwrap();
    assert_eq!(
        (
            compact["index"].as_i64(),
            compact["median"].as_array().map(Vec::len)
        ),
        (Some(-109), Some(12))
    );
    assert_eq!(compact["samples"].as_array().unwrap().len(), 10);

    // draw_a_plot errors.
    let (st, e) = post(&s, "/draw_a_plot", json!({"handle": handle, "index": -110})).await;
    assert_eq!(
        (st, e["detail"].as_str()),
        (400, Some("Index -110 out of range. Valid range: -109 to 0"))
    );
    let (st, _) = post(&s, "/draw_a_plot", json!({"handle": handle, "index": 1})).await;
    assert_eq!(st, 422);
    let (st, _) = post(&s, "/draw_a_plot", json!({"handle": "short", "index": 0})).await;
    assert_eq!(st, 422);
    let (st, e) = post(
        &s,
        "/draw_a_plot",
        json!({"handle": "0".repeat(64), "index": 0}),
    )
    .await;
    assert_eq!(
        (st, e["detail"].as_str()),
        (404, Some("Handle not found or expired"))
    );
    let r = s
        .http
        .post(s.url("/draw_a_plot?format=gif"))
        .json(&json!({"handle": handle, "index": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // quick_plot: a figure, or 200 with error (never 500).
    let (st, q) = post(&s, "/quick_plot", json!({"csv_base64": b64(&raw)})).await;
    assert_eq!(st, 200);
    assert!(q["error"].is_null());
    assert_eq!(
        q["plot_data"]["layout"]["title"]["text"],
        "Gluformer Prediction"
    );
    assert!(q["warnings"]["has_warnings"].is_boolean() && q["warnings"]["messages"].is_array());
    for bad in [b64(b"invalid data"), "@@@".to_string(), b64(&raw[..2000])] {
        let (st, q) = post(&s, "/quick_plot", json!({"csv_base64": bad})).await;
        assert_eq!(st, 200, "{q}");
        assert_eq!(q["plot_data"], json!({}));
        assert!(q["error"].as_str().is_some_and(|e| !e.is_empty()), "{q}");
    }

    // cache_management (query parameters).
    let r = s
        .http
        .post(s.url("/cache_management?action=info"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["success"], true);
    assert!(info["items_affected"].is_null());
    let r = s
        .http
        .post(s.url("/cache_management"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = s
        .http
        .post(s.url("/cache_management?action=explode"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        e["detail"],
        "Unknown action: explode. Valid actions are: flush, info, delete, save, load"
    );
    let r = s
        .http
        .post(s.url("/cache_management?action=delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .post(s.url(&format!("/cache_management?action=load&handle={handle}")))
        .send()
        .await
        .unwrap();
    let load: Value = r.json().await.unwrap();
    assert_eq!(
        (load["success"].as_bool(), load["items_affected"].as_i64()),
        (Some(true), Some(1))
    );

    // /health: exactly the reference's 23 fields, in order.
    let r = s.http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let h: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(h.keys().map(String::as_str).collect::<Vec<_>>().len(), 23);
    let mut at = 0;
    for f in HEALTH_FIELDS {
        let pos = text
            .find(&format!("\"{f}\":"))
            .unwrap_or_else(|| panic!("{f} missing"));
        assert!(pos > at, "{f} out of order");
        at = pos;
    }
    assert_eq!(h["status"], "ok");
    assert_eq!(h["device"], "cpu");
    assert!(h["total_http_requests"].as_i64().unwrap() >= 20);
    assert!(h["total_http_errors"].as_i64().unwrap() >= 8);
    assert!(h["median_request_time_ms"].as_f64().unwrap() > 0.0);
    assert!(h["inference_requests_by_priority"]["0"].as_i64().unwrap() >= 1);

    // /metrics, the docs and the document.
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
        m.contains(
            "glurpc_requests_total{protocol=\"http\",endpoint=\"/draw_a_plot\",status=\"404\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains("glurpc_request_duration_seconds_bucket{protocol=\"http\",endpoint=\"/health\"")
    );
    assert!(m.contains("glurpc_windows_inferred_total"));
    assert_eq!(
        s.http.get(s.url("/docs")).send().await.unwrap().status(),
        200
    );
    let doc: Value = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/draw_a_plot"]["post"].is_object());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_forecast_from_an_upload_or_a_handle() {
    let s = TestServer::start(Setup::small()).await;
    let raw = common::dexcom_14d();
    let r = s
        .http
        .post(s.url("/forecast"))
        .json(&json!({"csv_base64": b64(&raw)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let f: Value = r.json().await.unwrap();
    assert!(f["actual"].is_null());
    assert_eq!(f["median"].as_array().unwrap().len(), 12);
    let handle = f["handle"].as_str().unwrap().to_string();
    // The first forecast time is 5 minutes after the last input time.
    let last_in = f["history_times"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let first_out = f["forecast_times"][0].as_str().unwrap();
    assert!(first_out > last_in.as_str());
    // The same forecast by handle (reproducible), and as a PNG.
    let r = s
        .http
        .post(s.url("/forecast"))
        .json(&json!({"handle": handle}))
        .send()
        .await
        .unwrap();
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["median"], f["median"]);
    let r = s
        .http
        .post(s.url("/forecast"))
        .header("accept", "image/png")
        .json(&json!({"handle": handle}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    for body in [json!({}), json!({"handle": handle, "csv_base64": "x"})] {
        let (st, _) = post(&s, "/forecast", body).await;
        assert_eq!(st, 400);
    }
    let (st, e) = post(&s, "/forecast", json!({"csv_base64": b64(b"invalid data")})).await;
    assert_eq!(st, 400);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .starts_with("Unknown CGM data format")
    );
    let (st, _) = post(&s, "/forecast", json!({"handle": "f".repeat(64)})).await;
    assert_eq!(st, 404);
    s.stop().await;
}
