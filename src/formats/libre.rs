//! FreeStyle Libre / LibreView CSV exports (US mg/dL and EU mmol/L), including
//! the US "Patient report" variant with an extra line before the header and
//! 12-hour `AM/PM` times, which cgm-format 0.13.0 cannot read.

use super::MMOL_TO_MGDL;
use super::csvtext::{CsvTable, HeaderClean, cell, parse_ts, to_f64, to_i64};
use super::error::FormatError;
use super::table::{EventType, Millis, Row};

/// Timestamp layouts, the reference's two first (day-first, then month-first),
/// then the 12-hour layouts of US exports.
const LAYOUTS: [&str; 6] = [
    "%d-%m-%Y %H:%M",
    "%m-%d-%Y %H:%M",
    "%m-%d-%Y %I:%M %p",
    "%d-%m-%Y %I:%M %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M",
];

/// Finds the header line: cgm-format assumes line 2; patient reports put it on line 3.
fn header_line(text: &str) -> usize {
    text.split('\n')
        .take(6)
        .position(|l| l.contains("Device Timestamp") && l.contains("Record Type"))
        .unwrap_or(1)
}

/// Parses a LibreView export; `european` selects the mmol/L columns.
pub fn parse(text: &str, european: bool) -> Result<Vec<Row>, FormatError> {
    let format = if european { "libre_eu" } else { "libre" };
    let unit = if european { "mmol/L" } else { "mg/dL" };
    let factor = if european { MMOL_TO_MGDL } else { 1.0 };
    let table = CsvTable::read(text, b',', header_line(text), HeaderClean::Quotes, format)?;
    let historic = format!("Historic Glucose {unit}");
    let scan = format!("Scan Glucose {unit}");
    let strip = format!("Strip Glucose {unit}");
    let [
        ts_i,
        type_i,
        hist_i,
        scan_i,
        strip_i,
        rapid_i,
        long_i,
        carb_i,
    ] = table.require(
        [
            &["Device Timestamp"],
            &["Record Type"],
            &[historic.as_str()],
            &[scan.as_str()],
            &[strip.as_str()],
            &["Rapid-Acting Insulin (units)"],
            &[
                "Long-Acting Insulin Value (units)",
                "Long-Acting Insulin (units)",
            ],
            &["Carbohydrates (grams)"],
        ],
        format,
    )?;

    let mut rows = Vec::with_capacity(table.records.len());
    let mut stamps: Vec<(usize, &str)> = Vec::with_capacity(table.records.len());
    for (line, rec) in &table.records {
        let kind = to_i64(cell(rec, Some(type_i)));
        let glucose = |i: usize| to_f64(cell(rec, Some(i))).map(|v| v * factor);
        let row = match kind {
            Some(0) => {
                let mut r = Row::event(EventType::Glucose, 0, 0);
                r.glucose = glucose(hist_i);
                r
            }
            Some(1) => {
                let mut r = Row::event(EventType::Glucose, 0, 0);
                r.glucose = glucose(scan_i);
                r
            }
            Some(2) => {
                let mut r = Row::event(EventType::Calibration, 0, 0);
                r.glucose = glucose(strip_i);
                r
            }
            Some(4) => {
                let rapid = cell(rec, Some(rapid_i));
                let long = cell(rec, Some(long_i));
                let kind = if rapid.is_none() && long.is_some() {
                    EventType::InsulinSlow
                } else {
                    EventType::InsulinFast
                };
                let mut r = Row::event(kind, 0, 0);
                r.insulin_fast = to_f64(rapid);
                r.insulin_slow = to_f64(long);
                r
            }
            Some(5) => {
                let mut r = Row::event(EventType::Carbs, 0, 0);
                r.carbs = to_f64(cell(rec, Some(carb_i)));
                r
            }
            _ => continue,
        };
        stamps.push((line, cell(rec, Some(ts_i)).unwrap_or("")));
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(FormatError::NoData {
            format,
            reason: "no glucose, insulin or food records (record types 0, 1, 2, 4, 5)".into(),
        });
    }
    let times = parse_times(&stamps, format)?;
    for (r, t) in rows.iter_mut().zip(times) {
        r.datetime = Some(t);
    }
    Ok(rows)
}

/// Reads every timestamp with one layout for the whole file: among the layouts
/// that read every row, the one giving the shortest span (a day/month swap
/// spreads a file over months), earlier layouts winning ties.
fn parse_times(stamps: &[(usize, &str)], format: &'static str) -> Result<Vec<Millis>, FormatError> {
    let mut best: Option<(i64, Vec<Millis>)> = None;
    let mut first_failure: Option<(usize, &str)> = None;
    for layout in LAYOUTS {
        let mut out = Vec::with_capacity(stamps.len());
        let mut failed = None;
        for &(line, s) in stamps {
            match parse_ts(s.trim(), layout) {
                Some(t) => out.push(t),
                None => {
                    failed = Some((line, s));
                    break;
                }
            }
        }
        if let Some(f) = failed {
            // Report the failure of the layout that got furthest.
            if first_failure.is_none_or(|(l, _)| f.0 > l) {
                first_failure = Some(f);
            }
            continue;
        }
        let span = out.iter().max().copied().unwrap_or(0) - out.iter().min().copied().unwrap_or(0);
        if best.as_ref().is_none_or(|(b, _)| span < *b) {
            best = Some((span, out));
        }
    }
    match (best, first_failure) {
        (Some((_, out)), _) => Ok(out),
        (None, Some((line, value))) => Err(FormatError::BadTimestamp {
            format,
            value: value.to_string(),
            line,
        }),
        (None, None) => Err(FormatError::NoData {
            format,
            reason: "no timestamps".into(),
        }),
    }
}
