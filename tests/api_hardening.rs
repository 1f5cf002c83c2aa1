//! Faults found when the service was attacked from outside, and the last
//! incompatibilities with existing REST clients (issue 19): each test here
//! failed before its fix.

mod common;

use std::time::Duration;

use common::server::{Setup, TestServer, b64};
use glurpc::api::auth::ApiKeys;
use serde_json::{Value, json};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn keys_on(dir: &tempfile::TempDir) -> TestServer {
    let path = dir.path().join("keys");
    std::fs::write(&path, "good-key\n").unwrap();
    let mut setup = Setup::small();
    setup.keys = ApiKeys::from_file(&path).unwrap();
    TestServer::start(setup).await
}

/// Unknown paths and wrong methods answer FastAPI's JSON, and with keys on a
/// `GET` on a protected path is 405 (the route exists, the method does not),
/// not 401.
#[tokio::test]
async fn routing_failures_answer_json_like_fastapi() {
    let dir = tempfile::tempdir().unwrap();
    let s = keys_on(&dir).await;
    let http = &s.http;
    let r = http.get(s.url("/no/such/path")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Not Found"})
    );
    for path in [
        "/draw_a_plot",
        "/process_unified",
        "/forecast",
        "/convert_to_unified",
    ] {
        let r = http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{path}");
        assert_eq!(r.headers()["allow"], "POST", "{path}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"detail": "Method Not Allowed"}),
            "{path}"
        );
    }
    let r = http.post(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    // TRACE too names what is allowed (schemathesis' ST204)
    let r = http
        .request(reqwest::Method::TRACE, s.url("/forecast"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    // POST still needs the key
    let r = http
        .post(s.url("/draw_a_plot"))
        .json(&json!({"handle": "x", "index": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

/// `/draw_a_plot/` redirects to `/draw_a_plot` (307 keeps the method and
/// body), query included, as FastAPI's `redirect_slashes` does.
#[tokio::test]
async fn a_trailing_slash_redirects() {
    let s = TestServer::start(Setup::small()).await;
    let http = no_redirects();
    let r = http
        .post(s.url("/draw_a_plot/?format=json"))
        .json(&json!({"handle": "x", "index": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "/draw_a_plot?format=json");
    let r = http.get(s.url("/health/")).send().await.unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "/health");
    // a client that follows the redirect gets its answer
    let r = s.http.get(s.url("/health/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// Answers carrying patient data are never stored by browsers or proxies,
/// and no response is sniffed as another type.
#[tokio::test]
async fn responses_are_not_stored_or_sniffed() {
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
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    for path in ["/health", "/metrics", "/no/such/path", "/openapi.json"] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    // the page is public and revalidated, not stored-forbidden
    let r = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    s.stop().await;
}

async fn preflight(s: &TestServer, origin: &str) -> reqwest::Response {
    s.http
        .request(reqwest::Method::OPTIONS, s.url("/forecast"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-api-key")
        .send()
        .await
        .unwrap()
}

/// CORS is off unless origins are configured; then those origins (and only
/// those) may call the API from their pages.
#[tokio::test]
async fn cors_is_opt_in() {
    let s = TestServer::start(Setup::small()).await;
    let r = preflight(&s, "https://app.example.org").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
    s.stop().await;

    let mut setup = Setup::small();
    setup.cors_origins = vec!["https://app.example.org".into()];
    let s = TestServer::start(setup).await;
    let r = preflight(&s, "https://app.example.org").await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-api-key"), "{allowed}");
    let r = preflight(&s, "https://elsewhere.example.com").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // a real request from the allowed origin can read its request id
    let r = s
        .http
        .get(s.url("/health"))
        .header("origin", "https://app.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    s.stop().await;
}

/// A message with field 1 as raw bytes: invalid UTF-8 there is not a valid
/// `ProcessUnifiedRequest` (its field 1 is a string).
#[derive(Clone, PartialEq, prost::Message)]
struct RawField1 {
    #[prost(bytes = "vec", tag = "1")]
    data: Vec<u8>,
}

async fn raw_call(
    s: &TestServer,
    method: &str,
    data: Vec<u8>,
) -> Result<glurpc::proto::ConvertToUnifiedResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(s.channel().await);
    grpc.ready().await.unwrap();
    let path =
        http::uri::PathAndQuery::try_from(format!("/glurpc.GlucosePrediction/{method}")).unwrap();
    let codec =
        tonic_prost::ProstCodec::<RawField1, glurpc::proto::ConvertToUnifiedResponse>::default();
    grpc.unary(tonic::Request::new(RawField1 { data }), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

/// gRPC statuses follow gRPC's conventions and the README: a malformed
/// message is INVALID_ARGUMENT (not INTERNAL), one over the size limit
/// RESOURCE_EXHAUSTED (not OUT_OF_RANGE), whichever direction is too big.
#[tokio::test]
async fn grpc_codec_failures_have_the_documented_codes() {
    let mut setup = Setup::small();
    setup.grpc_max_message_bytes = 300_000;
    let s = TestServer::start(setup).await;
    let e = raw_call(&s, "ProcessUnified", vec![0xff, 0xfe, 0xfd])
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // a request over the limit
    let e = raw_call(&s, "ConvertToUnified", vec![b'x'; 400_000])
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    // an answer over the limit: the 264 KB Dexcom export unifies to about 306 KB
    let e = raw_call(&s, "ConvertToUnified", common::dexcom_14d())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    // the statistics count the corrected codes
    let m = s.svc().metrics_text();
    assert!(
        m.contains("endpoint=\"ProcessUnified\",status=\"InvalidArgument\"} 1"),
        "{m}"
    );
    s.stop().await;
}
