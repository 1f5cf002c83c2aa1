//! Dexcom Clarity CSV exports (US mg/dL and EU mmol/L; 14- and 12-column
//! layouts), mapped to unified rows exactly as cgm-format 0.13.0 does.

use super::MMOL_TO_MGDL;
use super::csvtext::{CsvTable, HeaderClean, cell, parse_ts, probe_layout, to_f64, to_i64};
use super::error::FormatError;
use super::table::{EventType, Row};

const TIMESTAMP: &str = "Timestamp (YYYY-MM-DDThh:mm:ss)";
const LAYOUTS: [&str; 2] = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"];
/// Placeholder for a `High` reading (mg/dL).
pub const HIGH_MGDL: f64 = 401.0;
/// Placeholder for a `Low` reading (mg/dL).
pub const LOW_MGDL: f64 = 39.0;

/// Parses a Clarity export; `european` selects the mmol/L columns.
pub fn parse(text: &str, european: bool) -> Result<Vec<Row>, FormatError> {
    let format = if european { "dexcom_eu" } else { "dexcom" };
    let glucose_col = if european {
        "Glucose Value (mmol/L)"
    } else {
        "Glucose Value (mg/dL)"
    };
    let table = CsvTable::read(text, b',', 0, HeaderClean::Quotes, format)?;
    let [ts_i, type_i, glu_i] =
        table.require([&[TIMESTAMP], &["Event Type"], &[glucose_col]], format)?;
    let sub_i = table.col("Event Subtype");
    let ins_i = table.col("Insulin Value (u)");
    let carb_i = table.col("Carb Value (grams)");
    let dur_i = table.col("Duration (hh:mm:ss)");

    // Rows with a blank Timestamp are the metadata block (or stray metadata).
    let data: Vec<_> = table
        .records
        .iter()
        .filter_map(|(line, rec)| {
            let ts = cell(rec, Some(ts_i))?;
            (!ts.trim().is_empty()).then_some((line, rec, ts))
        })
        .collect();
    let Some(&(_, _, first)) = data.first() else {
        return Err(FormatError::NoData {
            format,
            reason: "no row has a timestamp".into(),
        });
    };
    let layout = probe_layout(first, &LAYOUTS).ok_or_else(|| FormatError::BadTimestamp {
        format,
        value: first.to_string(),
        line: data[0].0,
    })?;

    let mut rows = Vec::with_capacity(data.len());
    for (line, rec, ts) in data {
        let event = cell(rec, Some(type_i)).unwrap_or("");
        let subtype = cell(rec, sub_i).unwrap_or("");
        let mut row = match event {
            e if e.eq_ignore_ascii_case("egv") || e.eq_ignore_ascii_case("fasting glucose") => {
                let raw = cell(rec, Some(glu_i));
                let out_of_range = raw.is_some_and(|g| {
                    g.eq_ignore_ascii_case("high") || g.eq_ignore_ascii_case("low")
                });
                let value = raw.and_then(|g| {
                    let g = g.replacen("High", "401", 1).replacen("Low", "39", 1);
                    g.parse::<f64>().ok()
                });
                let value = if european && !out_of_range {
                    value.map(|v| v * MMOL_TO_MGDL)
                } else {
                    value
                };
                let mut r = Row::event(EventType::Glucose, 0, i64::from(out_of_range));
                r.glucose = value;
                r
            }
            "Insulin" => {
                let value = to_f64(cell(rec, ins_i));
                let mut r;
                if subtype == "Long-Acting" {
                    r = Row::event(EventType::InsulinSlow, 0, 0);
                    r.insulin_slow = value;
                } else {
                    r = Row::event(EventType::InsulinFast, 0, 0);
                    r.insulin_fast = value;
                }
                r
            }
            "Carbs" => {
                let mut r = Row::event(EventType::Carbs, 0, 0);
                r.carbs = to_f64(cell(rec, carb_i));
                r
            }
            "Exercise" | "Activity" => {
                let kind = match subtype {
                    "Light" => EventType::ExerciseLight,
                    "Heavy" => EventType::ExerciseHeavy,
                    _ => EventType::ExerciseMedium,
                };
                let mut r = Row::event(kind, 0, 0);
                r.exercise = cell(rec, dur_i).and_then(hms_seconds);
                r
            }
            // Calibration, Alert, Health, Device rows are dropped, as in cgm-format.
            _ => continue,
        };
        row.datetime = Some(
            parse_ts(ts, layout).ok_or_else(|| FormatError::BadTimestamp {
                format,
                value: ts.to_string(),
                line,
            })?,
        );
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(FormatError::NoData {
            format,
            reason: "no glucose, insulin, carb or exercise rows".into(),
        });
    }
    Ok(rows)
}

/// `H:M:S` to seconds; `None` unless all three parts are integers.
fn hms_seconds(s: &str) -> Option<i64> {
    let mut parts = s.split(':');
    let h = to_i64(parts.next())?;
    let m = to_i64(parts.next())?;
    let sec = to_i64(parts.next())?;
    h.checked_mul(3600)?
        .checked_add(m.checked_mul(60)?)?
        .checked_add(sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(hms_seconds("00:30:00"), Some(1800));
        assert_eq!(hms_seconds("1:30"), None);
    }
}
