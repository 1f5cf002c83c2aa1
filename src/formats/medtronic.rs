//! Medtronic Guardian Connect CareLink CSV exports: `;` delimiter, decimal
//! commas, `-------` section lines and repeated headers, insulin and meals
//! from the `Event Marker` text, as cgm-format 0.13.0 maps them.

use super::csvtext::{CsvTable, HeaderClean, cell, parse_ts, probe_layout};
use super::error::FormatError;
use super::table::{EventType, Row};

const FORMAT: &str = "medtronic";
const REQUIRED: [&str; 4] = ["Index", "Date", "Time", "Sensor Glucose (mg/dL)"];
const LAYOUTS: [&str; 3] = [
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
];

/// The 0-based line of the header: the first of 30 lines holding all required
/// columns when split on `;` or `,`.
fn header_line(text: &str) -> Result<usize, FormatError> {
    for (idx, line) in text.split('\n').take(30).enumerate() {
        let stripped = line.trim().trim_start_matches('\u{feff}');
        if stripped.is_empty() {
            continue;
        }
        for sep in [';', ','] {
            if !stripped.contains(sep) {
                continue;
            }
            let cells: Vec<&str> = stripped
                .split(sep)
                .map(|c| c.trim().trim_matches('"'))
                .collect();
            if REQUIRED.iter().all(|r| cells.contains(r)) {
                return Ok(idx);
            }
        }
    }
    Err(FormatError::MissingColumns {
        format: FORMAT,
        columns: vec![format!(
            "a header row with {} in the first 30 lines",
            REQUIRED.join(", ")
        )],
    })
}

/// A decimal-comma number (`2747,00000`); placeholders such as `-------` are null.
fn euro(s: Option<&str>) -> Option<f64> {
    let s = s?;
    if s.contains(',') {
        s.replace(',', ".").parse::<f64>().ok()
    } else {
        s.parse::<f64>().ok()
    }
}

/// The first `KEY\s*([\d,.]+)` in `text`, optionally followed by `\s*gram`.
fn marker_number<'a>(text: &'a str, key: &str, need_grams: bool) -> Option<&'a str> {
    let mut from = 0;
    while let Some(pos) = text[from..].find(key) {
        let start = from + pos + key.len();
        let rest = text[start..].trim_start();
        let len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
            .unwrap_or(rest.len());
        if len > 0 && (!need_grams || rest[len..].trim_start().starts_with("gram")) {
            return Some(&rest[..len]);
        }
        from = start;
    }
    None
}

/// True when any of the value columns has text (rows without any are skipped early).
fn has_values(rec: super::csvtext::Rec<'_>, cols: [Option<usize>; 5]) -> bool {
    cols.iter().any(|c| cell(rec, *c).is_some())
}

/// Parses a Guardian Connect CareLink export.
pub fn parse(text: &str) -> Result<Vec<Row>, FormatError> {
    let skip = header_line(text)?;
    let table = CsvTable::read(text, b';', skip, HeaderClean::Medtronic, FORMAT)?;
    let [idx_i, date_i, time_i, sensor_i] = table.require(
        [
            &["Index"],
            &["Date"],
            &["Time"],
            &["Sensor Glucose (mg/dL)"],
        ],
        FORMAT,
    )?;
    let bg_i = table.col("BG Reading (mg/dL)");
    let bolus_i = table.col("Bolus Volume Delivered (U)");
    let bwz_i = table.col("BWZ Carb Input (grams)");
    let marker_i = table.col("Event Marker");

    let mut layout: Option<&str> = None;
    let mut rows = Vec::new();
    for (line, rec) in &table.records {
        let (Some(index), Some(date)) = (cell(rec, Some(idx_i)), cell(rec, Some(date_i))) else {
            continue;
        };
        if date == "Date" || index.starts_with("-------") {
            continue;
        }
        let time = cell(rec, Some(time_i));
        let stamp = if layout.is_none()
            || has_values(rec, [Some(sensor_i), bg_i, bolus_i, bwz_i, marker_i])
        {
            time.map(|t| format!("{date} {t}"))
        } else {
            continue;
        };
        if layout.is_none()
            && let Some(s) = &stamp
        {
            layout = Some(
                probe_layout(s, &LAYOUTS).ok_or_else(|| FormatError::BadTimestamp {
                    format: FORMAT,
                    value: s.clone(),
                    line,
                })?,
            );
        }
        let marker = cell(rec, marker_i).unwrap_or("");
        let insulin =
            euro(cell(rec, bolus_i)).or_else(|| euro(marker_number(marker, "Insulin:", false)));
        let carbs = euro(cell(rec, bwz_i)).or_else(|| euro(marker_number(marker, "Meal:", true)));
        let mut emitted: Vec<Row> = Vec::new();
        if let Some(g) = euro(cell(rec, Some(sensor_i))) {
            let mut r = Row::event(EventType::Glucose, 0, 0);
            r.glucose = Some(g);
            emitted.push(r);
        }
        if let Some(g) = euro(cell(rec, bg_i)) {
            let mut r = Row::event(EventType::Meter, 0, 0);
            r.glucose = Some(g);
            emitted.push(r);
        }
        if let Some(u) = insulin {
            let mut r = Row::event(EventType::InsulinFast, 0, 0);
            r.insulin_fast = Some(u);
            emitted.push(r);
        }
        if let Some(c) = carbs {
            let mut r = Row::event(EventType::Carbs, 0, 0);
            r.carbs = Some(c);
            emitted.push(r);
        }
        if emitted.is_empty() {
            continue;
        }
        let parsed = stamp
            .as_deref()
            .zip(layout)
            .and_then(|(s, l)| parse_ts(s, l));
        let Some(t) = parsed else {
            return Err(FormatError::BadTimestamp {
                format: FORMAT,
                value: stamp.unwrap_or_default(),
                line,
            });
        };
        for mut r in emitted {
            r.datetime = Some(t);
            rows.push(r);
        }
    }
    if rows.is_empty() {
        return Err(FormatError::NoData {
            format: FORMAT,
            reason: "no sensor, meter, insulin or meal values".into(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert_eq!(
            marker_number("Insulin: 27,00", "Insulin:", false),
            Some("27,00")
        );
        assert_eq!(
            marker_number("Meal: 60,00 grams", "Meal:", true),
            Some("60,00")
        );
        assert_eq!(marker_number("Meal: 60,00 units", "Meal:", true), None);
        assert_eq!(euro(Some("-------")), None);
        assert_eq!(euro(Some("2747,00000")), Some(2747.0));
    }
}
