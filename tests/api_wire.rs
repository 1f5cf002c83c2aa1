//! What existing clients of the reference send, over a real server: the
//! field conversions of pydantic 2's lax mode (and nothing more), a JSON
//! body without a `Content-Type`, FastAPI's 422 bodies, the key file
//! reloaded on a content change, and the admin key list of
//! `/cache_management` and `ManageCache`.
//!
//! The conversion tables come from pydantic's documentation, "Conversion
//! Table" (<https://docs.pydantic.dev/latest/concepts/conversion_table/>:
//! `int` from `float` "must be exact int", from `str` "must be numeric
//! only", from `bool`; `bool` from `int` and `float` "allowed values: 0, 1",
//! from `str` "allowed values: 'f', 'n', 'no', 'off', 'false', 't', 'y',
//! 'on', 'yes', 'true'" in any case, and `0`, `1` ("Standard Library
//! Types", Booleans); `str` from a number is not a conversion), the error
//! types and messages from "Validation Errors"
//! (<https://docs.pydantic.dev/latest/errors/validation_errors/>), and the
//! string cleaning (whitespace, `+`, leading zeros, `.0`, `_`) from
//! pydantic-core's `str_as_int`, which those pages summarise.

mod common;

use std::time::Duration;

use common::server::{Setup, TestServer, b64};
use glurpc::api::auth::ApiKeys;
use glurpc::proto;
use serde_json::{Value, json};

/// A handle nobody uploaded: a valid body gets 404, an invalid one 422.
const UNKNOWN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let r = s.http.post(s.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `(input, accepted)` for an `int` field constrained `le=0` (`index`).
fn index_table() -> Vec<(Value, Option<&'static str>)> {
    vec![
        // int: strict.
        (json!(0), None),
        (json!(-3), None),
        // float: exact integers only.
        (json!(-1.0), None),
        (json!(0.0), None),
        (json!(-1.5), Some("int_from_float")),
        // bool: lax (False is 0; True is 1, above the bound).
        (json!(false), None),
        (json!(true), Some("less_than_equal")),
        // str: numeric only, after pydantic-core's cleaning.
        (json!("0"), None),
        (json!("-1"), None),
        (json!(" -2 "), None),
        (json!("-1.0"), None),
        (json!("-0.00"), None),
        (json!("+0"), None),
        (json!("-007"), None),
        (json!("-1_000"), None),
        (json!("1"), Some("less_than_equal")),
        (json!("-1.5"), Some("int_parsing")),
        (json!("-1e2"), Some("int_parsing")),
        (json!("zero"), Some("int_parsing")),
        (json!(""), Some("int_parsing")),
        (json!("-1__0"), Some("int_parsing")),
        (json!("0x0"), Some("int_parsing")),
        // Never an int.
        (json!(null), Some("int_type")),
        (json!([0]), Some("int_type")),
        (json!({"v": 0}), Some("int_type")),
        // The constraint.
        (json!(1), Some("less_than_equal")),
    ]
}

/// `(input, accepted)` for a `bool` field (`force_calculate`).
fn bool_table() -> Vec<(Value, Option<&'static str>)> {
    let mut t = vec![
        (json!(true), None),
        (json!(false), None),
        (json!(0), None),
        (json!(1), None),
        (json!(0.0), None),
        (json!(1.0), None),
        (json!("0"), None),
        (json!("1"), None),
        (json!(2), Some("bool_parsing")),
        (json!(-1), Some("bool_parsing")),
        (json!("2"), Some("bool_parsing")),
        (json!("maybe"), Some("bool_parsing")),
        (json!(" true"), Some("bool_parsing")),
        (json!(""), Some("bool_parsing")),
        (json!(null), Some("bool_type")),
        (json!([]), Some("bool_type")),
        (json!({}), Some("bool_type")),
    ];
    for word in [
        "f", "n", "no", "off", "false", "t", "y", "on", "yes", "true",
    ] {
        t.push((json!(word), None));
        t.push((json!(word.to_uppercase()), None));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_are_converted_as_pydantic_lax_mode_converts_them() {
    let s = TestServer::start(Setup::small()).await;
    for (index, refused) in index_table() {
        let (st, body) = post(
            &s,
            "/draw_a_plot",
            json!({"handle": UNKNOWN, "index": index}),
        )
        .await;
        match refused {
            None => assert_eq!(st, 404, "index {index} should be accepted: {body}"),
            Some(kind) => {
                assert_eq!(st, 422, "index {index} should be refused: {body}");
                assert_eq!(body["detail"][0]["type"], kind, "index {index}: {body}");
                assert_eq!(body["detail"][0]["loc"], json!(["body", "index"]));
            }
        }
    }
    for (flag, refused) in bool_table() {
        let body = json!({"csv_base64": "!!!", "force_calculate": flag});
        let (st, answer) = post(&s, "/process_unified", body).await;
        match refused {
            None => assert_eq!(
                st, 200,
                "force_calculate {flag} should be accepted: {answer}"
            ),
            Some(kind) => {
                assert_eq!(
                    st, 422,
                    "force_calculate {flag} should be refused: {answer}"
                );
                assert_eq!(answer["detail"][0]["type"], kind, "{flag}: {answer}");
                assert_eq!(
                    answer["detail"][0]["loc"],
                    json!(["body", "force_calculate"])
                );
            }
        }
    }
    // A string field takes strings only, as in the reference.
    for bad in [json!(12345), json!(true), json!(null), json!(["QQ=="])] {
        let (st, v) = post(&s, "/process_unified", json!({"csv_base64": bad})).await;
        assert_eq!(
            (st, &v["detail"][0]["type"]),
            (422, &json!("string_type")),
            "{v}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_without_content_type_is_read_as_json() {
    let s = TestServer::start(Setup::small()).await;
    // `requests.post(url, data=json.dumps(body))` sends no Content-Type.
    let text = json!({"handle": UNKNOWN, "index": "0", "force_calculate": "false"}).to_string();
    let r = s
        .http
        .post(s.url("/draw_a_plot"))
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "{}", r.text().await.unwrap());
    let raw = common::dexcom_14d();
    let r = s
        .http
        .post(s.url("/process_unified"))
        .body(json!({"csv_base64": b64(&raw), "force_calculate": 0}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["total_samples"], 110, "{p}");
    // `+json` media types are JSON too; other types are not (FastAPI hands
    // the raw bytes to validation, which wants an object).
    for (ct, status) in [
        ("application/vnd.api+json", 404),
        ("application/json; charset=utf-8", 404),
        ("text/plain", 422),
    ] {
        let r = s
            .http
            .post(s.url("/draw_a_plot"))
            .header("content-type", ct)
            .body(text.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{ct}");
        if status == 422 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["detail"][0]["type"], "model_attributes_type", "{v}");
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_are_fastapi_bodies_with_pydantic_names() {
    let s = TestServer::start(Setup::small()).await;
    let detail = |v: &Value| v["detail"][0].clone();
    let (st, v) = post(&s, "/process_unified", json!({"force_calculate": true})).await;
    assert_eq!(st, 422);
    assert_eq!(
        detail(&v),
        json!({"type": "missing", "loc": ["body", "csv_base64"], "msg": "Field required",
               "input": {"force_calculate": true}})
    );
    let (_, v) = post(&s, "/process_unified", json!({"csv_base64": 12345})).await;
    assert_eq!(
        detail(&v),
        json!({"type": "string_type", "loc": ["body", "csv_base64"],
               "msg": "Input should be a valid string", "input": 12345})
    );
    let (_, v) = post(&s, "/process_unified", json!({"csv_base64": ""})).await;
    assert_eq!(
        detail(&v),
        json!({"type": "string_too_short", "loc": ["body", "csv_base64"],
               "msg": "String should have at least 1 character", "input": "",
               "ctx": {"min_length": 1}})
    );
    let (_, v) = post(&s, "/draw_a_plot", json!({"handle": UNKNOWN, "index": "x"})).await;
    assert_eq!(
        detail(&v),
        json!({"type": "int_parsing", "loc": ["body", "index"],
               "msg": "Input should be a valid integer, unable to parse string as an integer",
               "input": "x"})
    );
    let (_, v) = post(&s, "/draw_a_plot", json!({"handle": UNKNOWN, "index": 1})).await;
    assert_eq!(
        detail(&v),
        json!({"type": "less_than_equal", "loc": ["body", "index"],
               "msg": "Input should be less than or equal to 0", "input": 1, "ctx": {"le": 0}})
    );
    let body = json!({"handle": "short", "index": 0, "force_calculate": "maybe"});
    let (_, v) = post(&s, "/draw_a_plot", body).await;
    assert_eq!(
        v["detail"],
        json!([
            {"type": "string_too_short", "loc": ["body", "handle"],
             "msg": "String should have at least 8 characters", "input": "short",
             "ctx": {"min_length": 8}},
            {"type": "bool_parsing", "loc": ["body", "force_calculate"],
             "msg": "Input should be a valid boolean, unable to interpret input",
             "input": "maybe"}
        ])
    );
    // Long inputs are echoed truncated.
    let (_, v) = post(&s, "/draw_a_plot", json!({"csv_base64": "A".repeat(5000)})).await;
    assert_eq!(v["detail"].as_array().map(Vec::len), Some(2), "{v}");
    let echoed = v["detail"][0]["input"]["csv_base64"].as_str().unwrap();
    assert!(echoed.len() < 120 && echoed.ends_with("..."), "{echoed}");
    // Not JSON, not an object, no body.
    let r = s
        .http
        .post(s.url("/process_unified"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        detail(&v),
        json!({"type": "json_invalid", "loc": ["body", 1], "msg": "JSON decode error", "input": {},
               "ctx": {"error": "Expecting property name enclosed in double quotes"}})
    );
    let (_, v) = post(&s, "/process_unified", json!(["x"])).await;
    assert_eq!(detail(&v)["type"], "model_attributes_type");
    let r = s.http.post(s.url("/process_unified")).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        detail(&v),
        json!({"type": "missing", "loc": ["body"], "msg": "Field required", "input": null})
    );
    // Query parameters and the multipart file.
    let r = s
        .http
        .post(s.url("/cache_management"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        detail(&v),
        json!({"type": "missing", "loc": ["query", "action"], "msg": "Field required", "input": null})
    );
    let r = s
        .http
        .post(s.url("/quick_plot?format=png"))
        .json(&json!({"csv_base64": "QQ=="}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        detail(&v),
        json!({"type": "enum", "loc": ["query", "format"],
               "msg": "Input should be 'plotly' or 'json'", "input": "png",
               "ctx": {"expected": "'plotly' or 'json'"}})
    );
    let r = s
        .http
        .post(s.url("/convert_to_unified"))
        .multipart(reqwest::multipart::Form::new())
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        detail(&v),
        json!({"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": null})
    );
    s.stop().await;
}

/// A server with keys on, from files in `dir`, polling them every 50 ms.
async fn keyed_server(dir: &std::path::Path, admins: Option<&str>) -> TestServer {
    let path = dir.join("keys");
    let mut keys = ApiKeys::from_file(&path).unwrap();
    if let Some(list) = admins {
        let admin_path = dir.join("admins");
        std::fs::write(&admin_path, list).unwrap();
        keys = keys.with_admin_file(&admin_path).unwrap();
    }
    let setup = Setup {
        keys,
        ..Setup::small()
    };
    let s = TestServer::start(setup).await;
    s.svc().keys.watch(Duration::from_millis(50));
    s
}

async fn status_with_key(s: &TestServer, path: &str, key: &str, body: Option<Value>) -> u16 {
    let mut req = s.http.post(s.url(path)).header("x-api-key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_size_key_file_with_its_old_mtime_revokes_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    std::fs::write(&path, "key-alpha\n").unwrap();
    let s = keyed_server(dir.path(), None).await;
    let info = "/cache_management?action=info";
    assert_eq!(status_with_key(&s, info, "key-alpha", None).await, 200);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, "key-bravo\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let mut revoked = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if status_with_key(&s, info, "key-alpha", None).await == 403 {
            revoked = true;
            break;
        }
    }
    assert!(revoked, "the replaced key is still accepted");
    assert_eq!(status_with_key(&s, info, "key-bravo", None).await, 200);
    s.stop().await;
}

async fn manage(s: &TestServer, key: &str, action: &str, handle: &str) -> Result<(), tonic::Code> {
    let mut client = s.grpc().await;
    let mut req = tonic::Request::new(proto::CacheManagementRequest {
        action: action.into(),
        handle: handle.into(),
    });
    req.metadata_mut().insert("x-api-key", key.parse().unwrap());
    client
        .manage_cache(req)
        .await
        .map(|_| ())
        .map_err(|e| e.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_guard_flush_save_load_and_deleting_others_uploads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys"), "alice\nbob\n").unwrap();
    let s = keyed_server(dir.path(), Some("root\n")).await;
    let raw = common::dexcom_14d();
    let r = s
        .http
        .post(s.url("/process_unified"))
        .header("x-api-key", "alice")
        .json(&json!({"csv_base64": b64(&raw)}))
        .send()
        .await
        .unwrap();
    let handle = r.json::<Value>().await.unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_string();
    let cm = |q: String| format!("/cache_management?{q}");
    let delete = cm(format!("action=delete&handle={handle}"));
    let load = cm(format!("action=load&handle={handle}"));
    // Any key may look; only an admin key flushes, saves or loads.
    assert_eq!(
        status_with_key(&s, &cm("action=info".into()), "bob", None).await,
        200
    );
    for action in [
        "action=flush".to_string(),
        "action=save".into(),
        load.clone(),
    ] {
        let path = if action.starts_with('/') {
            action.clone()
        } else {
            cm(action)
        };
        assert_eq!(
            status_with_key(&s, &path, "alice", None).await,
            403,
            "{path}"
        );
    }
    let r = s
        .http
        .post(s.url(&cm("action=flush".into())))
        .header("x-api-key", "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["detail"],
        "An admin API key is required for the flush action"
    );
    // Requests the reference refuses anyway keep their answers.
    assert_eq!(
        status_with_key(&s, &cm("action=delete".into()), "bob", None).await,
        400
    );
    // Only the creator (or an admin) deletes an upload, on both protocols.
    assert_eq!(status_with_key(&s, &delete, "bob", None).await, 403);
    assert_eq!(
        manage(&s, "bob", "delete", &handle).await,
        Err(tonic::Code::PermissionDenied)
    );
    assert_eq!(
        manage(&s, "bob", "flush", "").await,
        Err(tonic::Code::PermissionDenied)
    );
    assert_eq!(manage(&s, "alice", "delete", &handle).await, Ok(()));
    assert_eq!(status_with_key(&s, &load, "root", None).await, 200);
    assert_eq!(manage(&s, "root", "save", "").await, Ok(()));
    assert_eq!(
        status_with_key(&s, &cm("action=flush".into()), "root", None).await,
        200
    );
    s.stop().await;
}

/// Starlette reads the `file` part of a form whatever the other parts'
/// names hold; `multer` refused the whole form when one held a control
/// character or invalid UTF-8 (schemathesis found it), answering 422.
#[tokio::test]
async fn a_form_whose_other_parts_have_odd_names_still_gives_its_file() {
    let s = TestServer::start(Setup::small()).await;
    let export = std::fs::read(common::data_dir().join("real/dexcom_us_14d.csv")).unwrap();
    let part = |name: &[u8], filename: &str, content: &[u8]| {
        let mut p = b"--B\r\nContent-Disposition: form-data; name=\"".to_vec();
        p.extend_from_slice(name);
        p.extend_from_slice(format!("\"{filename}\r\n\r\n").as_bytes());
        p.extend_from_slice(content);
        p.extend_from_slice(b"\r\n");
        p
    };
    let mut body = part("\u{23e}".as_bytes(), "", b"{}");
    body.extend(part(b"\xc2\xb8\xf1\x80\x90\x8dH\x1ew", "", b"4229"));
    body.extend(part(b"", "", b"3.1e+132"));
    body.extend(part(b"file", "; filename=\"export.csv\"", &export));
    body.extend_from_slice(b"--B--\r\n");
    let r = s
        .http
        .post(s.url("/convert_to_unified"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], Value::Null, "{v}");
    let csv = v["csv_content"].as_str().unwrap();
    assert!(
        csv.starts_with("sequence_id,") && csv.lines().count() > 3000,
        "{}",
        &csv[..200]
    );
    s.stop().await;
}
