//! `glurpc serve --otlp-endpoint` (feature `otlp`) against a collector
//! that speaks OTLP/HTTP: the real binary posts protobuf batches to a real
//! HTTP server in this test, which decodes them with the OpenTelemetry
//! protocol's own message types. A request that carries a W3C
//! `traceparent` becomes a child of that trace, the model's `inference`
//! spans link to the requests whose windows they computed, the resource
//! names the service, and what is batched at SIGTERM is still sent.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use poem::{EndpointExt, handler, post, web::Data};
use prost::Message;
use serde_json::{Value, json};

type Batches = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

#[handler]
fn collect(body: bytes::Bytes, batches: Data<&Batches>) -> poem::Response {
    let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("an OTLP protobuf body");
    batches.lock().unwrap().push(request);
    poem::Response::builder()
        .content_type("application/x-protobuf")
        .body(Vec::<u8>::new())
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

#[test]
fn spans_reach_an_otlp_collector_with_the_callers_trace_and_links() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let batches: Batches = Arc::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let collector = listener.local_addr().unwrap();
    let app = poem::Route::new()
        .at("/v1/traces", post(collect))
        .data(batches.clone());
    rt.spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        poem::Server::new_with_acceptor(acceptor).run(app).await
    });

    let mut cmd =
        common::process::serve_command(std::path::Path::new(env!("CARGO_BIN_EXE_glurpc")));
    cmd.arg("--model")
        .arg(common::data_dir().join("model/small"))
        .args(["--disk-cache-mb", "0"])
        .args(["--otlp-endpoint", &format!("http://{collector}")])
        .args(["--otlp-service-name", "glurpc-under-test"]);
    let mut server = common::process::Process::start(cmd);

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent_id}-01");
    rt.block_on(async {
        let http = reqwest::Client::new();
        let raw = common::dexcom_14d();
        let p: Value = http
            .post(server.url("/process_unified"))
            .header("traceparent", &traceparent)
            .json(&json!({"csv_base64": common::server::b64(&raw)}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let handle = p["handle"].as_str().expect("a handle").to_string();
        let r = http
            .post(server.url("/draw_a_plot"))
            .header("traceparent", &traceparent)
            .json(&json!({"handle": handle, "index": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(server.child.wait().unwrap().success());
    // The batch is posted before the process exits; give the collector's
    // task a moment to store it.
    std::thread::sleep(Duration::from_millis(200));

    let batches = batches.lock().unwrap();
    assert!(!batches.is_empty(), "nothing reached the collector");
    let services: Vec<&str> = batches
        .iter()
        .flat_map(|b| &b.resource_spans)
        .filter_map(|rs| rs.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    assert!(!services.is_empty() && services.iter().all(|s| *s == "glurpc-under-test"));
    let spans: Vec<&Span> = batches
        .iter()
        .flat_map(|b| &b.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let requests: Vec<&&Span> = spans.iter().filter(|s| s.name == "http").collect();
    for path in ["/process_unified", "/draw_a_plot"] {
        let span = requests
            .iter()
            .find(|s| attribute(s, "path") == Some(path))
            .unwrap_or_else(|| panic!("no http span for {path}"));
        assert_eq!(
            hex(&span.trace_id),
            trace_id,
            "{path} is not in the caller's trace"
        );
        assert_eq!(hex(&span.parent_span_id), parent_id, "{path}'s parent");
        assert_eq!(attribute(span, "method"), Some("POST"));
    }
    let inference: Vec<&&Span> = spans.iter().filter(|s| s.name == "inference").collect();
    assert!(!inference.is_empty(), "no inference span");
    let linked = inference
        .iter()
        .flat_map(|s| &s.links)
        .filter(|l| hex(&l.trace_id) == trace_id)
        .count();
    assert!(linked > 0, "no inference span links to the requests' trace");
}
