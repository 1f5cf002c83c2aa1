//! Nightscout: the nightscout-exporter CSV (`# CGM ENTRIES` / `# TREATMENTS`
//! sections, locale date formats) and the REST API JSON (`entries.json`, with
//! optional `treatments.json` records), including timestamps with UTC offsets
//! (`+0100`, `+01:00`), which are converted to UTC like the `Z` times.

use chrono::DateTime;
use serde_json::Value;

use super::csvtext::{CsvTable, HeaderClean, cell, parse_ts, to_f64};
use super::error::FormatError;
use super::table::{EventType, Millis, Row};

const CSV_FORMAT: &str = "nightscout";
const JSON_FORMAT: &str = "nightscout_json";
const BOLUS_TYPES: [&str; 4] = ["Bolus", "SMB", "Meal Bolus", "Correction Bolus"];
const EXPORTER_LAYOUTS: [&str; 4] = [
    "%m/%d/%Y %I:%M:%S %p",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %I:%M:%S %p",
    "%Y-%m-%d %H:%M:%S",
];
const JSON_LAYOUTS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
];

/// Parses a nightscout-exporter CSV.
pub fn parse_exporter_csv(text: &str) -> Result<Vec<Row>, FormatError> {
    let mut entries: Vec<&str> = Vec::new();
    let mut treatments: Vec<&str> = Vec::new();
    let mut in_treatments = false;
    for line in text.lines() {
        let s = line.trim();
        if s.starts_with("# CGM ENTRIES") {
            in_treatments = false;
        } else if s.starts_with("# TREATMENTS") {
            in_treatments = true;
        } else if !s.starts_with('#') && !s.is_empty() {
            if in_treatments {
                &mut treatments
            } else {
                &mut entries
            }
            .push(line);
        }
    }
    if entries.is_empty() {
        return Err(FormatError::NoData {
            format: CSV_FORMAT,
            reason: "no entries section".into(),
        });
    }
    let e = CsvTable::read(&entries.join("\n"), b',', 0, HeaderClean::Trim, CSV_FORMAT)?;
    let [e_date, e_time, e_glu] =
        e.require([&["Date"], &["Time"], &["Glucose (mg/dL)"]], CSV_FORMAT)?;
    let t = if treatments.is_empty() {
        None
    } else {
        Some(CsvTable::read(
            &treatments.join("\n"),
            b',',
            0,
            HeaderClean::Trim,
            CSV_FORMAT,
        )?)
    };
    let t_cols = match &t {
        Some(t) => Some(t.require([&["Date"], &["Time"]], CSV_FORMAT)?),
        None => None,
    };
    let stamp = |rec: super::csvtext::Rec<'_>, d: usize, tm: usize| -> Option<String> {
        Some(format!("{} {}", cell(rec, Some(d))?, cell(rec, Some(tm))?))
    };
    let mut stamps: Vec<String> = e
        .records
        .iter()
        .filter_map(|(_, r)| stamp(r, e_date, e_time))
        .collect();
    if let (Some(t), Some([d, tm])) = (&t, t_cols) {
        stamps.extend(t.records.iter().filter_map(|(_, r)| stamp(r, d, tm)));
    }
    let layout = exporter_layout(&stamps)?;

    let mut rows = Vec::new();
    for (_, rec) in &e.records {
        let (Some(ts), Some(g)) = (
            stamp(rec, e_date, e_time).and_then(|s| parse_ts(&s, layout)),
            to_f64(cell(rec, Some(e_glu))),
        ) else {
            continue;
        };
        let mut r = Row::event(EventType::Glucose, ts, 0);
        r.glucose = Some(g);
        rows.push(r);
    }
    if let (Some(t), Some([d, tm])) = (&t, t_cols) {
        let ev_i = t.col("Event Type");
        let ins_i = t.col("Insulin (U)");
        let carb_i = t.col("Carbs (g)");
        for (_, rec) in &t.records {
            let Some(ts) = stamp(rec, d, tm).and_then(|s| parse_ts(&s, layout)) else {
                continue;
            };
            let event = cell(rec, ev_i).unwrap_or("");
            push_treatment(
                &mut rows,
                ts,
                event,
                to_f64(cell(rec, ins_i)),
                to_f64(cell(rec, carb_i)),
                None,
            );
        }
    }
    Ok(rows)
}

/// One layout for the whole file: the first that reads every stamp, else the one
/// reading most (unreadable rows are then dropped).
fn exporter_layout(stamps: &[String]) -> Result<&'static str, FormatError> {
    if stamps.is_empty() {
        return Ok(EXPORTER_LAYOUTS[0]);
    }
    let mut best = (0usize, EXPORTER_LAYOUTS[0]);
    for layout in EXPORTER_LAYOUTS {
        let read = stamps
            .iter()
            .filter(|s| parse_ts(s, layout).is_some())
            .count();
        if read == stamps.len() {
            return Ok(layout);
        }
        if read > best.0 {
            best = (read, layout);
        }
    }
    if best.0 == 0 {
        return Err(FormatError::BadTimestamp {
            format: CSV_FORMAT,
            value: stamps[0].clone(),
            line: 0,
        });
    }
    Ok(best.1)
}

/// Appends the rows one treatment produces (bolus, temp basal, carbs).
fn push_treatment(
    rows: &mut Vec<Row>,
    ts: Millis,
    event: &str,
    insulin: Option<f64>,
    carbs: Option<f64>,
    rate: Option<f64>,
) {
    if let Some(u) = insulin.filter(|u| *u > 0.0 && BOLUS_TYPES.contains(&event)) {
        let mut r = Row::event(EventType::InsulinFast, ts, 0);
        r.insulin_fast = Some(u);
        rows.push(r);
    }
    // cgm-format puts a Temp Basal rate (U/h) in `insulin_slow`; kept for handle parity.
    if let Some(rate) = rate.filter(|r| *r > 0.0 && event == "Temp Basal") {
        let mut r = Row::event(EventType::InsulinSlow, ts, 0);
        r.insulin_slow = Some(rate);
        rows.push(r);
    }
    if let Some(c) = carbs.filter(|c| *c > 0.0) {
        let mut r = Row::event(EventType::Carbs, ts, 0);
        r.carbs = Some(c);
        rows.push(r);
    }
}

/// A JSON number, or a numeric string (Nightscout uploaders send both); never a bool.
fn json_number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn json_str(v: Option<&Value>) -> Option<&str> {
    v?.as_str().filter(|s| !s.is_empty())
}

/// A Nightscout time: naive ISO (taken as UTC, like the reference), `Z`, or
/// with an offset (converted to UTC).
fn json_time(s: &str) -> Option<Millis> {
    let s = s.trim();
    JSON_LAYOUTS
        .iter()
        .find_map(|l| parse_ts(s, l))
        .or_else(|| {
            DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
                .or_else(|_| DateTime::parse_from_rfc3339(s))
                .ok()
                .map(|d| d.naive_utc().and_utc().timestamp_millis())
        })
}

/// Parses one or more Nightscout JSON payloads: arrays of entries and/or
/// treatments (records are told apart by their fields), or an object with
/// `entries` and `treatments` arrays.
pub fn parse_json(payloads: &[&str]) -> Result<Vec<Row>, FormatError> {
    let mut records: Vec<(usize, Value)> = Vec::new();
    for text in payloads {
        let value: Value = serde_json::from_str(text.trim())
            .map_err(|e| FormatError::malformed(JSON_FORMAT, format!("invalid JSON: {e}")))?;
        match value {
            Value::Array(items) => records.extend(items.into_iter().enumerate()),
            Value::Object(mut obj) => {
                let mut found = false;
                for key in ["entries", "treatments"] {
                    if let Some(Value::Array(items)) = obj.remove(key) {
                        records.extend(items.into_iter().enumerate());
                        found = true;
                    }
                }
                if !found {
                    let detail = ["message", "description", "status"]
                        .iter()
                        .find_map(|k| obj.get(*k).map(|v| v.to_string()));
                    return Err(FormatError::malformed(
                        JSON_FORMAT,
                        match detail {
                            Some(d) => format!(
                                "Nightscout returned an error object instead of entries: {d}"
                            ),
                            None => "expected an array of entries or treatments, got a JSON object"
                                .into(),
                        },
                    ));
                }
            }
            other => {
                return Err(FormatError::malformed(
                    JSON_FORMAT,
                    format!(
                        "expected an array of entries or treatments, got {}",
                        kind(&other)
                    ),
                ));
            }
        }
    }
    let mut rows = Vec::new();
    let mut glucose_rows = 0usize;
    for (i, rec) in &records {
        let Some(obj) = rec.as_object() else { continue };
        let line = i + 1;
        if let Some(event) = json_str(obj.get("eventType")) {
            let Some(created) = json_str(obj.get("created_at")) else {
                continue;
            };
            let ts = json_time(created).ok_or_else(|| FormatError::BadTimestamp {
                format: JSON_FORMAT,
                value: created.to_string(),
                line,
            })?;
            push_treatment(
                &mut rows,
                ts,
                event,
                json_number(obj.get("insulin")),
                json_number(obj.get("carbs")),
                json_number(obj.get("rate")),
            );
            continue;
        }
        match obj.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "sgv" => {}
            Some(_) => continue,
        }
        let sgv = obj
            .get("sgv")
            .filter(|v| !v.is_null())
            .or_else(|| obj.get("glucose"));
        let Some(glucose) = json_number(sgv) else {
            continue;
        };
        let ts = match json_str(obj.get("dateString")).or_else(|| json_str(obj.get("sysTime"))) {
            Some(s) => json_time(s).ok_or_else(|| FormatError::BadTimestamp {
                format: JSON_FORMAT,
                value: s.to_string(),
                line,
            })?,
            None => match obj.get("date").and_then(Value::as_i64) {
                Some(ms) => ms,
                None => continue,
            },
        };
        let mut r = Row::event(EventType::Glucose, ts, 0);
        r.glucose = Some(glucose);
        rows.push(r);
        glucose_rows += 1;
    }
    if glucose_rows == 0 {
        return Err(FormatError::NoData {
            format: JSON_FORMAT,
            reason: "no sgv entries (a treatments file needs its entries file in the same upload)"
                .into(),
        });
    }
    Ok(rows)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_utc() {
        let z = json_time("2026-03-31T09:05:00.000Z").unwrap();
        assert_eq!(json_time("2026-03-31T10:05:00.000+0100"), Some(z));
        assert_eq!(json_time("2026-03-31T10:05:00+01:00"), Some(z));
        assert_eq!(json_time("2026-03-31T09:05:00"), Some(z));
    }
}
