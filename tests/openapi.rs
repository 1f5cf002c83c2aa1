//! `openapi/openapi.json` is the document the server serves: this test fails
//! when it is stale. Regenerate with
//! `UPDATE_OPENAPI=1 cargo test --test openapi`.

mod common;

use std::time::Duration;

use glurpc::api::Service;
use glurpc::api::auth::ApiKeys;
use glurpc::engine::{Engine, EngineConfig};

#[tokio::test]
async fn the_committed_openapi_document_is_current() {
    let engine = Engine::start(common::small_model(), EngineConfig::default()).unwrap();
    let svc = Service::new(engine.clone(), ApiKeys::disabled(), Duration::from_secs(1));
    let spec = format!("{}\n", glurpc::api::rest::openapi_json(svc));
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &spec).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == spec,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test openapi` and commit it\n{}",
        common::first_difference(&spec, &committed)
    );
    let doc: serde_json::Value = serde_json::from_str(&spec).unwrap();
    for path in [
        "/convert_to_unified",
        "/process_unified",
        "/draw_a_plot",
        "/quick_plot",
        "/cache_management",
        "/health",
        "/forecast",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}
