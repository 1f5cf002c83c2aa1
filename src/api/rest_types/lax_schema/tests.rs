//! Each pattern against the parser it describes, on every string of up to
//! six (units: five) characters over an alphabet of the characters that
//! matter, plus hand-picked cases.

use super::*;
use crate::api::rest_types::lax;

/// The pattern as Rust's `regex` reads it: no look-ahead, and its `$` is
/// already the end of the input.
fn rust_regex(pattern: &str) -> regex::Regex {
    regex::Regex::new(&pattern.replace(r"(?!\n)", "")).expect("pattern compiles")
}

/// Every string of length 0..=`max` over `alphabet`.
fn all_strings(alphabet: &[char], max: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..max {
        last = last
            .iter()
            .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
            .collect();
        out.extend(last.iter().cloned());
    }
    out
}

fn assert_same(pattern: &str, cases: &[String], accepts: impl Fn(&str) -> bool) {
    let re = rust_regex(pattern);
    let wrong: Vec<&String> = cases
        .iter()
        .filter(|s| re.is_match(s) != accepts(s))
        .take(10)
        .collect();
    assert!(wrong.is_empty(), "pattern and parser disagree on {wrong:?}");
}

#[test]
fn int_pattern_is_what_lax_int_le_0_accepts() {
    let mut cases = all_strings(&['0', '5', '-', '+', '_', '.', ' '], 6);
    cases.extend(
        [
            "\t-1\n",
            "\u{a0}0",
            "-1_000.00",
            "0-5",
            "+00_-_7.0",
            "1e3",
            "-0x1",
            "٣",
            "-1.5",
        ]
        .map(String::from),
    );
    let accepts = |s: &str| matches!(lax::lax_int(&serde_json::Value::String(s.to_string())), Ok(i) if i <= 0);
    assert_same(&int_le0_string_pattern(), &cases, accepts);
    // The pattern accepts something and refuses something.
    let re = rust_regex(&int_le0_string_pattern());
    assert!(re.is_match(" -1_0.0 ") && re.is_match("0") && !re.is_match("1") && !re.is_match(""));
}

#[test]
fn bool_pattern_is_what_lax_bool_accepts() {
    let mut cases = all_strings(&['t', 'R', 'u', 'e', 'o', 'N', '0', '1', ' '], 4);
    cases.extend(["false", "FaLsE", "off", "yes", "true ", "2", "tru"].map(String::from));
    let accepts = |s: &str| lax::lax_bool(&serde_json::Value::String(s.to_string())).is_ok();
    assert_same(&bool_string_pattern(), &cases, accepts);
}

#[test]
fn units_pattern_is_what_parse_units_accepts() {
    let mut cases = all_strings(&['m', 'G', 'd', 'L', 'o', '/', ' ', '\t', '_'], 5);
    cases.extend(["mg/dL", "MMOL/L", " mmol_l\n", "mg-dl", "mgdl/", "µg"].map(String::from));
    let accepts = |s: &str| crate::api::ops::parse_units(Some(s)).is_ok();
    assert_same(&units_pattern(), &cases, accepts);
}
