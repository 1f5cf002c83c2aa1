//! The unified CSV itself (cgm-format's round trip): columns found by name,
//! cast to the schema's types as polars would, missing columns null.

use super::csvtext::{CsvTable, HeaderClean, cell, parse_ts, probe_layout};
use super::error::FormatError;
use super::table::{EventType, Millis, Row};

const FORMAT: &str = "unified";
const LAYOUTS: [&str; 2] = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"];

/// How polars would have typed a numeric column, which decides how its cells
/// cast to Int64 (a float column truncates; a text column needs integer text).
enum IntColumn {
    Int,
    Float,
    Text,
}

fn int_column(table: &CsvTable, idx: Option<usize>) -> IntColumn {
    let Some(i) = idx else { return IntColumn::Text };
    let cells = || table.records.iter().filter_map(|(_, r)| cell(r, Some(i)));
    if cells().all(|c| c.parse::<i64>().is_ok()) {
        IntColumn::Int
    } else if cells().all(|c| c.parse::<f64>().is_ok()) {
        IntColumn::Float
    } else {
        IntColumn::Text
    }
}

fn to_int(kind: &IntColumn, s: Option<&str>) -> Option<i64> {
    let s = s?;
    match kind {
        IntColumn::Int | IntColumn::Text => s.parse::<i64>().ok(),
        IntColumn::Float => s
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && v.abs() < 9.2e18)
            .map(|v| v.trunc() as i64),
    }
}

fn to_float(s: Option<&str>) -> Option<f64> {
    s?.parse::<f64>().ok()
}

/// Parses a unified CSV. Returns the rows and whether the file lacked an
/// `original_datetime` column (then it is filled from `datetime`).
pub fn parse(text: &str) -> Result<(Vec<Row>, bool), FormatError> {
    let table = CsvTable::read(text, b',', 0, HeaderClean::Quotes, FORMAT)?;
    if table.records.is_empty() {
        return Err(FormatError::NoData {
            format: FORMAT,
            reason: "a header with no data rows".into(),
        });
    }
    let c = |name: &str| table.col(name);
    let dt_i = c("datetime").ok_or_else(|| FormatError::MissingColumns {
        format: FORMAT,
        columns: vec!["datetime".into()],
    })?;
    let odt_i = c("original_datetime");
    let (seq_i, q_i, ex_i) = (c("sequence_id"), c("quality"), c("exercise"));
    let kinds = [
        int_column(&table, seq_i),
        int_column(&table, q_i),
        int_column(&table, ex_i),
    ];
    let times = |idx: Option<usize>| -> Result<Vec<Option<Millis>>, FormatError> {
        let Some(i) = idx else {
            return Ok(vec![None; table.records.len()]);
        };
        let first = table
            .records
            .iter()
            .find_map(|(_, r)| cell(r, Some(i)).filter(|s| !s.trim().is_empty()));
        let Some(first) = first else {
            return Ok(vec![None; table.records.len()]);
        };
        let layout = probe_layout(first, &LAYOUTS).ok_or_else(|| FormatError::BadTimestamp {
            format: FORMAT,
            value: first.to_string(),
            line: 2,
        })?;
        table
            .records
            .iter()
            .map(|(line, r)| match cell(r, Some(i)) {
                None => Ok(None),
                Some(s) => parse_ts(s, layout)
                    .map(Some)
                    .ok_or_else(|| FormatError::BadTimestamp {
                        format: FORMAT,
                        value: s.to_string(),
                        line,
                    }),
            })
            .collect()
    };
    let datetimes = times(Some(dt_i))?;
    let originals = times(odt_i)?;
    let rows = table
        .records
        .iter()
        .zip(datetimes.into_iter().zip(originals))
        .map(|((_, r), (datetime, original))| Row {
            sequence_id: to_int(&kinds[0], cell(r, seq_i)),
            original_datetime: original,
            original_glucose: to_float(cell(r, c("original_glucose"))),
            quality: to_int(&kinds[1], cell(r, q_i)),
            event_type: cell(r, c("event_type")).map(EventType::from_code),
            datetime,
            glucose: to_float(cell(r, c("glucose"))),
            carbs: to_float(cell(r, c("carbs"))),
            insulin_slow: to_float(cell(r, c("insulin_slow"))),
            insulin_fast: to_float(cell(r, c("insulin_fast"))),
            exercise: to_int(&kinds[2], cell(r, ex_i)),
        })
        .collect();
    Ok((rows, odt_i.is_none()))
}
