//! Fast naive-timestamp parsing and formatting for the few strftime layouts
//! CGM exports use (`%Y %m %d %H %I %M %S %p %.f` and literals). Fields of one
//! or two digits are accepted, as chrono and polars accept them.

/// A naive timestamp in milliseconds since 1970-01-01T00:00:00 (no time zone),
/// the unit of the schema's `Datetime(ms)` columns.
pub type Millis = i64;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *pos;
    let mut v: u32 = 0;
    while *pos < s.len() && *pos - start < max && s[*pos].is_ascii_digit() {
        v = v * 10 + u32::from(s[*pos] - b'0');
        *pos += 1;
    }
    (*pos - start >= min).then_some(v)
}

/// Parses `s` with `layout`; `None` unless the whole text matches a valid time.
pub fn parse(s: &str, layout: &str) -> Option<Millis> {
    let (s, f) = (s.as_bytes(), layout.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let (mut year, mut month, mut day) = (None, None, None);
    let (mut hour, mut hour12, mut pm) = (0u32, None, None);
    let (mut minute, mut second, mut millis) = (0u32, 0u32, 0u32);
    while j < f.len() {
        if f[j] != b'%' {
            if s.get(i) != Some(&f[j]) {
                return None;
            }
            i += 1;
            j += 1;
            continue;
        }
        let spec = *f.get(j + 1)?;
        j += 2;
        match spec {
            b'Y' => year = Some(digits(s, &mut i, 4, 4)? as i64),
            b'm' => month = Some(digits(s, &mut i, 1, 2)?),
            b'd' => day = Some(digits(s, &mut i, 1, 2)?),
            b'H' => hour = digits(s, &mut i, 1, 2)?,
            b'I' => hour12 = Some(digits(s, &mut i, 1, 2)?),
            b'M' => minute = digits(s, &mut i, 1, 2)?,
            b'S' => second = digits(s, &mut i, 1, 2)?,
            b'p' => {
                let t = s.get(i..i + 2)?;
                pm = Some(
                    match [t[0].to_ascii_uppercase(), t[1].to_ascii_uppercase()] {
                        [b'A', b'M'] => false,
                        [b'P', b'M'] => true,
                        _ => return None,
                    },
                );
                i += 2;
            }
            b'.' if f.get(j) == Some(&b'f') => {
                j += 1;
                if s.get(i) == Some(&b'.') {
                    i += 1;
                    let start = i;
                    let frac = digits(s, &mut i, 1, 9)?;
                    let n = (i - start) as u32;
                    millis = if n >= 3 {
                        frac / 10u32.pow(n - 3)
                    } else {
                        frac * 10u32.pow(3 - n)
                    };
                }
            }
            _ => return None,
        }
    }
    if i != s.len() {
        return None;
    }
    if let Some(h) = hour12 {
        if !(1..=12).contains(&h) {
            return None;
        }
        hour = match pm {
            Some(true) => h % 12 + 12,
            _ => h % 12,
        };
    }
    let (y, m, d) = (year?, month?, day?);
    if !(1..=12).contains(&m)
        || d == 0
        || d > days_in_month(y, m)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(secs * 1000 + i64::from(millis))
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmm` (polars' `Datetime(ms)` text).
pub fn push_iso_millis(out: &mut String, ms: Millis) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        out.push_str(&ms.to_string());
        return;
    }
    let (h, mi, s, f) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let mut buf = *b"0000-00-00T00:00:00.000";
    let mut put = |at: usize, v: i64, width: usize| {
        let mut v = v;
        for k in (0..width).rev() {
            buf[at + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y, 4);
    put(5, i64::from(m), 2);
    put(8, i64::from(d), 2);
    put(11, h, 2);
    put(14, mi, 2);
    put(17, s, 2);
    put(20, f, 3);
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn chrono_ms(s: &str, l: &str) -> Option<i64> {
        NaiveDateTime::parse_from_str(s, l)
            .ok()
            .map(|d| d.and_utc().timestamp_millis())
    }

    #[test]
    fn agrees_with_chrono() {
        let cases = [
            ("2019-10-14T16:42:37", "%Y-%m-%dT%H:%M:%S"),
            ("2025-05-01 0:01:47", "%Y-%m-%d %H:%M:%S"),
            ("22-11-2024 17:55", "%d-%m-%Y %H:%M"),
            ("11-22-2024 09:35", "%d-%m-%Y %H:%M"),
            ("4/7/2026 7:59:42 PM", "%m/%d/%Y %I:%M:%S %p"),
            ("4/7/2026 12:05:00 AM", "%m/%d/%Y %I:%M:%S %p"),
            ("4/7/2026 12:05:00 pm", "%m/%d/%Y %I:%M:%S %p"),
            ("2026-03-31T19:51:03.123Z", "%Y-%m-%dT%H:%M:%S%.fZ"),
            ("2026-03-31T19:51:03.123456Z", "%Y-%m-%dT%H:%M:%S%.fZ"),
            ("2026-03-31T19:51:03Z", "%Y-%m-%dT%H:%M:%S%.fZ"),
            ("2024-02-30 10:00", "%Y-%m-%d %H:%M"),
            ("2024-02-29 10:00", "%Y-%m-%d %H:%M"),
            ("2024-13-01 10:00", "%Y-%m-%d %H:%M"),
            ("2024-01-01 10:00 ", "%Y-%m-%d %H:%M"),
            ("2021/07/25 09:35:28", "%Y/%m/%d %H:%M:%S"),
        ];
        for (s, l) in cases {
            assert_eq!(parse(s, l), chrono_ms(s, l), "{s} with {l}");
        }
    }

    #[test]
    fn formats_like_chrono() {
        for ms in [
            0i64,
            1_571_071_357_000,
            1_571_071_357_123,
            951_782_400_000,
            4_102_444_799_999,
        ] {
            let mut s = String::new();
            push_iso_millis(&mut s, ms);
            let want = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .naive_utc()
                .format("%Y-%m-%dT%H:%M:%S%.3f")
                .to_string();
            assert_eq!(s, want);
        }
    }
}
