//! pydantic-core's conversions, case by case.

use super::*;
use serde_json::json;

#[test]
fn integers_follow_pydantic_core() {
    for (input, want) in [
        (json!(0), Some(0)),
        (json!(-1.0), Some(-1)),
        (json!(true), Some(1)),
        (json!("0"), Some(0)),
        (json!(" -12 "), Some(-12)),
        (json!("+3"), Some(3)),
        (json!("-1.0"), Some(-1)),
        (json!("-007"), Some(-7)),
        (json!("-1_000"), Some(-1000)),
        (json!("0.00"), Some(0)),
        (json!("1.5"), None),
        (json!("1e3"), None),
        (json!("1__0"), None),
        (json!("_1"), None),
        (json!("+-1"), None),
        (json!("0x10"), None),
        (json!(""), None),
        (json!("1."), None),
        (json!(-0.5), None),
        (json!(null), None),
        (json!([0]), None),
    ] {
        assert_eq!(lax_int(&input).ok(), want, "{input}");
    }
}

#[test]
fn booleans_follow_pydantic_core() {
    for (input, want) in [
        (json!(true), Some(true)),
        (json!(1), Some(true)),
        (json!(0.0), Some(false)),
        (json!("YES"), Some(true)),
        (json!("Off"), Some(false)),
        (json!("0"), Some(false)),
        (json!(2), None),
        (json!(" true"), None),
        (json!("maybe"), None),
        (json!(null), None),
    ] {
        assert_eq!(lax_bool(&input).ok(), want, "{input}");
    }
}

#[test]
fn long_inputs_are_truncated() {
    let v = echo(&json!({ "csv_base64": "A".repeat(500) }));
    assert_eq!(v["csv_base64"].as_str().map(str::len), Some(ECHO_CHARS + 3));
}
