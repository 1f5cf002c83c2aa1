//! Python-compatible text: `repr(float)`, `json.dumps` strings as plotly writes them,
//! `datetime.isoformat()`, and `timedelta(minutes=x)` rounding.

use chrono::{DateTime, NaiveDateTime};

use crate::formats::timefmt::civil_from_days;

/// Python's `repr(x)` for an `f64` (`1.0`, `0.1`, `1e-05`, `1e+16`, `-0.0`, `nan`, `inf`).
///
/// Both Python and Rust print the shortest digit string that round-trips; only the layout
/// differs: Python switches to exponent form when the decimal exponent is below -4 or at
/// least 16, writes a sign and two or more digits in the exponent, and always shows `.0`
/// in positional form.
pub fn py_float_repr(x: f64) -> String {
    let mut out = String::with_capacity(24);
    push_py_float(&mut out, x);
    out
}

/// Appends [`py_float_repr`] of `x` to `out`.
pub fn push_py_float(out: &mut String, x: f64) {
    use std::fmt::Write;

    if x.is_nan() {
        out.push_str("nan");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "inf" } else { "-inf" });
        return;
    }
    let mut sci = String::with_capacity(32);
    let _ = write!(sci, "{x:e}");
    let split = sci.find('e').unwrap_or(sci.len());
    let ndig = sci[..split].bytes().filter(u8::is_ascii_digit).count();
    // On an exact tie (two shortest strings of 16 or 17 digits both round-trip) Python
    // picks the correctly rounded, half-to-even one and Rust's shortest algorithm may pick
    // the other; with 15 digits or fewer a tie cannot happen.
    if ndig >= 16 {
        let mut exact = String::with_capacity(32);
        let _ = write!(exact, "{:.*e}", ndig - 1, x);
        if exact != sci && exact.parse::<f64>().ok() == Some(x) {
            sci = exact;
        }
    }
    let split = sci.find('e').unwrap_or(sci.len());
    let exp: i32 = sci
        .get(split + 1..)
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let mantissa = &sci[..split];
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    // the digits without the point: at most 17 of them
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for b in mantissa.bytes().filter(u8::is_ascii_digit) {
        if nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    let digits = match std::str::from_utf8(&digits[..nd]) {
        Ok(d) if !d.is_empty() => d,
        _ => "0",
    };
    let ndigits = digits.len() as i32;
    let decpt = exp + 1;
    if negative {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if ndigits > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-decpt) as usize));
        out.push_str(digits);
    } else if decpt >= ndigits {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (decpt - ndigits) as usize));
        out.push_str(".0");
    } else {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    }
}

/// Appends a float as plotly's JSON encoder writes it: Python's repr for finite values and
/// `null` for NaN and infinities (plotly's encoder turns those into `null`).
pub fn push_json_float(out: &mut String, x: f64) {
    if x.is_finite() {
        push_py_float(out, x);
    } else {
        out.push_str("null");
    }
}

/// Appends a JSON string literal as `json.dumps` (ensure_ascii) followed by plotly's
/// `<`, `>`, `/` to `\u003c`, `\u003e`, `\u002f` swap writes it.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '/' => out.push_str("\\u002f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The naive UTC date-time of `us` microseconds since the Unix epoch, if chrono can hold it.
pub fn datetime_from_micros(us: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(us).map(|d| d.naive_utc())
}

/// Microseconds since the epoch of 0001-01-01T00:00:00 and of 10000-01-01T00:00:00:
/// the dates Python's `datetime` can hold.
const PY_MIN_US: i64 = -62_135_596_800_000_000;
const PY_END_US: i64 = 253_402_300_800_000_000;

/// Python's `datetime.isoformat()` of a naive date-time: `YYYY-MM-DDTHH:MM:SS`, plus
/// `.ffffff` only when the microseconds are not zero. `None` outside the years 1 to 9999.
pub fn iso_micros(us: i64) -> Option<String> {
    let mut s = String::with_capacity(26);
    push_iso_micros(&mut s, us).then_some(s)
}

/// Appends [`iso_micros`] of `us` to `out`; `false` (and nothing appended) outside the
/// years 1 to 9999.
pub fn push_iso_micros(out: &mut String, us: i64) -> bool {
    if !(PY_MIN_US..PY_END_US).contains(&us) {
        return false;
    }
    let days = us.div_euclid(86_400_000_000);
    let in_day = us.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let micro = in_day % 1_000_000;
    let mut buf = [0u8; 26];
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, i64::from(month), 2);
    put(8, i64::from(day), 2);
    put(11, secs / 3600, 2);
    put(14, secs / 60 % 60, 2);
    put(17, secs % 60, 2);
    put(20, micro, 6);
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b'T';
    buf[13] = b':';
    buf[16] = b':';
    buf[19] = b'.';
    let len = if micro == 0 { 19 } else { 26 };
    out.push_str(std::str::from_utf8(&buf[..len]).unwrap_or(""));
    true
}

/// [`iso_micros`] of a time in milliseconds since the epoch.
pub fn iso_millis(ms: i64) -> Option<String> {
    iso_micros(ms.checked_mul(1000)?)
}

/// `YYYY-MM-DDTHH:MM:SS` (whole seconds, the fraction dropped) of a time in ms since the epoch.
pub fn iso_seconds(ms: i64) -> Option<String> {
    let t = datetime_from_micros(ms.checked_mul(1000)?)?;
    Some(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// The microseconds of CPython's `timedelta(minutes=m)` for a finite, non-negative float `m`
/// below 2^52: the integer part times 60,000,000 exactly, then `60000000.0 * frac` split again
/// into an exact integer part and a leftover that is rounded half to even (`delta_new` and
/// `accum` in `_datetimemodule.c`).
pub fn timedelta_minutes_micros(m: f64) -> i64 {
    let int_part = m.trunc();
    let frac = m - int_part;
    let mut us = (int_part as i64).saturating_mul(60_000_000);
    if frac == 0.0 {
        return us;
    }
    let prod = 60_000_000.0 * frac;
    let int2 = prod.trunc();
    let leftover = prod - int2;
    us = us.saturating_add(int2 as i64);
    let mut whole = leftover.round();
    if (whole - leftover).abs() == 0.5 {
        // exactly halfway: round so that the total is even
        let odd = (us & 1) as f64;
        whole = 2.0 * ((leftover + odd) * 0.5).round() - odd;
    }
    us.saturating_add(whole as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_layouts() {
        let cases = [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1.0 / 12.0, "0.08333333333333333"),
            (0.25, "0.25"),
            (123.456, "123.456"),
            (1e-5, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.2345e16, "1.2345e+16"),
            (1e15, "1000000000000000.0"),
            (9007199254740993.0, "9007199254740992.0"),
            (1e100, "1e+100"),
            (-2.5e-300, "-2.5e-300"),
            (600000.0, "600000.0"),
            // exact tie at 16 digits: Python rounds half to even
            (-(625_909_020_994_358.0 + 0.25), "-625909020994358.2"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(x), want, "{x:e}");
        }
        assert_eq!(py_float_repr(f64::NAN), "nan");
        let mut s = String::new();
        push_json_float(&mut s, f64::INFINITY);
        assert_eq!(s, "null");
    }

    #[test]
    fn json_strings_as_plotly() {
        let mut s = String::new();
        push_json_str(&mut s, "mg/dL <a> \"q\" \\ \n é €");
        assert_eq!(s, r#""mg\u002fdL \u003ca\u003e \"q\" \\ \n \u00e9 \u20ac""#);
    }

    #[test]
    fn iso_like_python() {
        assert_eq!(iso_millis(0).as_deref(), Some("1970-01-01T00:00:00"));
        assert_eq!(
            iso_micros(1_714_550_397_413_250).as_deref(),
            Some("2024-05-01T07:59:57.413250")
        );
        assert_eq!(
            iso_millis(-1).as_deref(),
            Some("1969-12-31T23:59:59.999000")
        );
        assert_eq!(
            iso_seconds(1_714_550_397_413).as_deref(),
            Some("2024-05-01T07:59:57")
        );
        assert_eq!(iso_millis(i64::MAX), None);
        assert_eq!(iso_micros(PY_END_US), None);
        assert_eq!(
            iso_micros(PY_END_US - 1).as_deref(),
            Some("9999-12-31T23:59:59.999999")
        );
        assert_eq!(
            iso_micros(PY_MIN_US).as_deref(),
            Some("0001-01-01T00:00:00")
        );
        assert_eq!(iso_micros(PY_MIN_US - 1), None);
        // every day of a leap-year span agrees with chrono
        for day in -800..800i64 {
            let us = 951_782_400_000_000 + day * 86_400_000_000 + 3_723_000_042;
            let want =
                datetime_from_micros(us).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string());
            assert_eq!(iso_micros(us), want);
        }
    }

    /// Python's own answers (tools/make_plot_goldens.py, tests/data/plot/python_formatting.json).
    #[test]
    fn matches_python_goldens() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/plot/python_formatting.json"
        );
        let text = std::fs::read_to_string(path).expect("golden file");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let mut n = 0;
        for x in v["float_repr"].as_array().expect("float_repr") {
            let s = x.as_str().expect("repr string");
            let parsed: f64 = s.parse().expect("float");
            assert_eq!(py_float_repr(parsed), s);
            n += 1;
        }
        for pair in v["timedelta_minutes_us"].as_array().expect("timedelta") {
            let m: f64 = pair[0].as_str().and_then(|s| s.parse().ok()).expect("m");
            let us = pair[1].as_i64().expect("us");
            assert_eq!(timedelta_minutes_micros(m), us, "timedelta(minutes={m})");
            n += 1;
        }
        for pair in v["isoformat_us"].as_array().expect("isoformat") {
            let us = pair[0].as_i64().expect("us");
            assert_eq!(iso_micros(us).as_deref(), pair[1].as_str(), "{us}");
            n += 1;
        }
        assert!(n > 150, "{n} checks");
    }

    #[test]
    fn timedelta_rounding() {
        assert_eq!(timedelta_minutes_micros(0.0), 0);
        assert_eq!(timedelta_minutes_micros(4.5), 270_000_000);
        assert_eq!(timedelta_minutes_micros(1.0 / 60.0), 1_000_000);
        // 2.5 us and 3.5 us: halves go to the even total
        assert_eq!(timedelta_minutes_micros(2.5 / 60_000_000.0), 2);
        assert_eq!(timedelta_minutes_micros(3.5 / 60_000_000.0), 4);
        assert_eq!(timedelta_minutes_micros(1e-12), 0);
    }
}
