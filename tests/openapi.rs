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

/// The document says what the server does: fields sent as `null` are
/// nullable, every operation with inputs documents FastAPI's 422, an
/// endpoint lists only the formats it accepts, `X-API-Key` is a security
/// scheme (Swagger UI's Authorize button), and the request bodies carry
/// real examples.
#[test]
fn the_document_matches_what_is_served() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("UnifiedResponse", "handle"),
        ("UnifiedResponse", "total_samples"),
        ("UnifiedResponse", "error"),
        ("ConvertResponse", "csv_content"),
        ("ConvertResponse", "error"),
        ("QuickPlotResponse", "error"),
        ("CacheManagementResponse", "message"),
        ("CacheManagementResponse", "items_affected"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["nullable"], true,
            "{schema}.{field} is sent as null"
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        let op = &item["post"];
        if op.is_null() {
            continue;
        }
        assert!(op["responses"]["422"].is_object(), "{path}: no 422");
        if path != "/convert_to_unified" {
            assert_eq!(
                op["security"],
                serde_json::json!([{"APIKeyHeader": []}, {}]),
                "{path}"
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["APIKeyHeader"],
        serde_json::json!({"type": "apiKey", "in": "header", "name": "X-API-Key",
            "description": "An API key from the server's key file; required when the server runs with ENABLE_API_KEYS"})
    );
    let quick_format = &doc["paths"]["/quick_plot"]["post"]["parameters"][0]["schema"]["$ref"];
    let name = quick_format.as_str().unwrap().rsplit('/').next().unwrap();
    assert_eq!(schemas[name]["enum"], serde_json::json!(["plotly", "json"]));
    for schema in ["ProcessRequest", "PlotRequest", "ForecastRequest"] {
        let example = &schemas[schema]["example"];
        assert!(example.is_object(), "{schema}: no example");
        assert!(
            !example.to_string().contains("\"string\""),
            "{schema}: {example}"
        );
    }
    assert_eq!(
        schemas["HTTPValidationError"]["properties"]["detail"]["type"],
        "array"
    );
}
