//! The unified table: the cgm-format 0.13.0 core schema as plain Rust rows, its
//! canonical row order, its CSV text (byte-identical to polars' `write_csv`) and
//! the content handle (SHA-256 of that text).

use std::cmp::Ordering;
use std::fmt::Write as _;

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

/// Header line of the unified CSV, in schema order.
pub const UNIFIED_HEADER: &str = "sequence_id,original_datetime,original_glucose,quality,event_type,datetime,glucose,carbs,insulin_slow,insulin_fast,exercise";

/// Column names of the core unified schema, in order.
pub const UNIFIED_COLUMNS: [&str; 11] = [
    "sequence_id",
    "original_datetime",
    "original_glucose",
    "quality",
    "event_type",
    "datetime",
    "glucose",
    "carbs",
    "insulin_slow",
    "insulin_fast",
    "exercise",
];

/// Bits of the `quality` column (cgm-format's `Quality` flags).
pub mod quality {
    /// Dexcom `High`/`Low` substitution (and imputed neighbours).
    pub const OUT_OF_RANGE: i64 = 1;
    /// Within 24 h after a gap of at least 2 h 45 min.
    pub const SENSOR_CALIBRATION: i64 = 2;
    /// Created by gap interpolation.
    pub const IMPUTATION: i64 = 4;
    /// A later row sharing its `datetime` with an earlier one.
    pub const TIME_DUPLICATE: i64 = 8;
    /// Moved onto the 5-minute grid.
    pub const SYNCHRONIZATION: i64 = 16;
    /// CGMacros merged track (never produced here).
    pub const TRACK_MERGE: i64 = 32;
    /// Glucose recomputed at its grid instant.
    pub const GRID_RETIMED: i64 = 64;
}

pub use super::timefmt::Millis;

/// Event codes of the unified schema (`event_type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `EGV_READ`: a sensor glucose reading (the series the model uses).
    Glucose,
    /// `CALIBRAT`: a calibration or strip fingerstick.
    Calibration,
    /// `BG_METER`: a meter fingerstick that is not a calibration.
    Meter,
    /// `CARBS_IN`: carbohydrates.
    Carbs,
    /// `INS_FAST`: fast-acting insulin.
    InsulinFast,
    /// `INS_SLOW`: long-acting insulin.
    InsulinSlow,
    /// `XRCS_LTE`: light exercise.
    ExerciseLight,
    /// `XRCS_MED`: medium exercise.
    ExerciseMedium,
    /// `XRCS_HVY`: heavy exercise.
    ExerciseHeavy,
    /// Any other code, as read from a unified CSV.
    Other(Box<str>),
}

impl EventType {
    /// The 8-character code written in the CSV.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::Glucose => "EGV_READ",
            EventType::Calibration => "CALIBRAT",
            EventType::Meter => "BG_METER",
            EventType::Carbs => "CARBS_IN",
            EventType::InsulinFast => "INS_FAST",
            EventType::InsulinSlow => "INS_SLOW",
            EventType::ExerciseLight => "XRCS_LTE",
            EventType::ExerciseMedium => "XRCS_MED",
            EventType::ExerciseHeavy => "XRCS_HVY",
            EventType::Other(s) => s,
        }
    }

    /// Parses a code; unknown codes are kept verbatim.
    pub fn from_code(code: &str) -> Self {
        match code {
            "EGV_READ" => EventType::Glucose,
            "CALIBRAT" => EventType::Calibration,
            "BG_METER" => EventType::Meter,
            "CARBS_IN" => EventType::Carbs,
            "INS_FAST" => EventType::InsulinFast,
            "INS_SLOW" => EventType::InsulinSlow,
            "XRCS_LTE" => EventType::ExerciseLight,
            "XRCS_MED" => EventType::ExerciseMedium,
            "XRCS_HVY" => EventType::ExerciseHeavy,
            other => EventType::Other(other.into()),
        }
    }
}

/// One row of the unified table. Nullable columns are `Option`s.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Continuous-run id; 0 after parsing.
    pub sequence_id: Option<i64>,
    /// Source timestamp.
    pub original_datetime: Option<Millis>,
    /// Source glucose (mg/dL).
    pub original_glucose: Option<f64>,
    /// Quality bit flags.
    pub quality: Option<i64>,
    /// Event code; `None` only for a unified CSV with an empty cell.
    pub event_type: Option<EventType>,
    /// Working timestamp.
    pub datetime: Option<Millis>,
    /// Glucose (mg/dL).
    pub glucose: Option<f64>,
    /// Carbohydrates (g).
    pub carbs: Option<f64>,
    /// Long-acting insulin (U).
    pub insulin_slow: Option<f64>,
    /// Fast-acting insulin (U).
    pub insulin_fast: Option<f64>,
    /// Exercise duration (s).
    pub exercise: Option<i64>,
}

impl Row {
    /// True for an `EGV_READ` row.
    pub fn is_glucose(&self) -> bool {
        self.event_type == Some(EventType::Glucose)
    }

    /// A sensor reading with a value (cgm-format's "reading": `EGV_READ` or the
    /// legacy `IMPUTATN`, glucose not null).
    pub fn is_reading(&self) -> bool {
        self.glucose.is_some()
            && match &self.event_type {
                Some(EventType::Glucose) => true,
                Some(EventType::Other(s)) => &**s == "IMPUTATN",
                _ => false,
            }
    }

    /// The quality bits, 0 when null.
    pub fn flags(&self) -> i64 {
        self.quality.unwrap_or(0)
    }
    /// A vendor row: sequence 0, given type, time and quality, every data column null.
    pub fn event(event_type: EventType, datetime: Millis, quality: i64) -> Self {
        Row {
            sequence_id: Some(0),
            original_datetime: None,
            original_glucose: None,
            quality: Some(quality),
            event_type: Some(event_type),
            datetime: Some(datetime),
            glucose: None,
            carbs: None,
            insulin_slow: None,
            insulin_fast: None,
            exercise: None,
        }
    }
}

/// The unified table: rows in canonical order (see [`UnifiedTable::from_rows`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnifiedTable {
    rows: Vec<Row>,
}

fn cmp_opt<T, F: Fn(&T, &T) -> Ordering>(a: &Option<T>, b: &Option<T>, f: F) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => f(x, y),
    }
}

/// polars' float order: NaN sorts above every number.
fn cmp_f64(a: &f64, b: &f64) -> Ordering {
    a.partial_cmp(b)
        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

/// The schema's stable sort: every column in schema order, ascending, nulls first.
pub fn cmp_rows(a: &Row, b: &Row) -> Ordering {
    cmp_opt(&a.sequence_id, &b.sequence_id, Ord::cmp)
        .then_with(|| cmp_opt(&a.original_datetime, &b.original_datetime, Ord::cmp))
        .then_with(|| cmp_opt(&a.original_glucose, &b.original_glucose, cmp_f64))
        .then_with(|| cmp_opt(&a.quality, &b.quality, Ord::cmp))
        .then_with(|| {
            cmp_opt(&a.event_type, &b.event_type, |x, y| {
                x.as_str().as_bytes().cmp(y.as_str().as_bytes())
            })
        })
        .then_with(|| cmp_opt(&a.datetime, &b.datetime, Ord::cmp))
        .then_with(|| cmp_opt(&a.glucose, &b.glucose, cmp_f64))
        .then_with(|| cmp_opt(&a.carbs, &b.carbs, cmp_f64))
        .then_with(|| cmp_opt(&a.insulin_slow, &b.insulin_slow, cmp_f64))
        .then_with(|| cmp_opt(&a.insulin_fast, &b.insulin_fast, cmp_f64))
        .then_with(|| cmp_opt(&a.exercise, &b.exercise, Ord::cmp))
}

impl UnifiedTable {
    /// Finishes a parse exactly as cgm-format's `_postprocess_unified`: fills
    /// `original_datetime` from `datetime` when the source had no such column,
    /// coalesces `original_glucose` with `glucose`, and sorts by every column.
    pub fn from_rows(mut rows: Vec<Row>, copy_original_datetime: bool) -> Self {
        for r in &mut rows {
            if copy_original_datetime {
                r.original_datetime = r.datetime;
            }
            if r.original_glucose.is_none() {
                r.original_glucose = r.glucose;
            }
        }
        rows.sort_by(cmp_rows);
        UnifiedTable { rows }
    }

    /// A table of already-processed rows (no parse post-processing), sorted.
    pub fn from_processed(mut rows: Vec<Row>) -> Self {
        rows.sort_by(cmp_rows);
        UnifiedTable { rows }
    }

    /// Sorts rows into the schema's canonical order (every column, nulls first).
    pub fn sort_rows(rows: &mut [Row]) {
        rows.sort_by(cmp_rows);
    }

    /// The rows, in canonical order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows per event code, sorted by code.
    pub fn event_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for r in &self.rows {
            let k = r.event_type.as_ref().map_or("", |e| e.as_str());
            *m.entry(k.to_string()).or_insert(0) += 1;
        }
        m
    }

    /// Earliest and latest `datetime`, if any.
    pub fn time_range(&self) -> Option<(Millis, Millis)> {
        let mut it = self.rows.iter().filter_map(|r| r.datetime);
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), t| (lo.min(t), hi.max(t))))
    }

    /// The unified CSV text, byte-identical to polars' `DataFrame.write_csv()`.
    pub fn to_csv(&self) -> String {
        let mut out = String::with_capacity(64 + self.rows.len() * 96);
        out.push_str(UNIFIED_HEADER);
        out.push('\n');
        for r in &self.rows {
            write_opt_i64(&mut out, r.sequence_id);
            out.push(',');
            write_opt_ts(&mut out, r.original_datetime);
            out.push(',');
            write_opt_f64(&mut out, r.original_glucose);
            out.push(',');
            write_opt_i64(&mut out, r.quality);
            out.push(',');
            if let Some(e) = &r.event_type {
                write_str_field(&mut out, e.as_str());
            }
            out.push(',');
            write_opt_ts(&mut out, r.datetime);
            out.push(',');
            write_opt_f64(&mut out, r.glucose);
            out.push(',');
            write_opt_f64(&mut out, r.carbs);
            out.push(',');
            write_opt_f64(&mut out, r.insulin_slow);
            out.push(',');
            write_opt_f64(&mut out, r.insulin_fast);
            out.push(',');
            write_opt_i64(&mut out, r.exercise);
            out.push('\n');
        }
        out
    }

    /// The content handle: lowercase hex SHA-256 of [`UnifiedTable::to_csv`].
    pub fn handle(&self) -> String {
        handle_of(self.to_csv().as_bytes())
    }
}

/// Lowercase hex SHA-256 of some CSV text.
pub fn handle_of(csv: &[u8]) -> String {
    hex::encode(Sha256::digest(csv))
}

fn write_opt_i64(out: &mut String, v: Option<i64>) {
    if let Some(v) = v {
        let _ = write!(out, "{v}");
    }
}

fn write_opt_ts(out: &mut String, v: Option<Millis>) {
    if let Some(v) = v {
        super::timefmt::push_iso_millis(out, v);
    }
}

fn write_opt_f64(out: &mut String, v: Option<f64>) {
    if let Some(v) = v {
        push_f64(out, v);
    }
}

/// Writes a string cell, quoting it the way polars does when needed.
fn write_str_field(out: &mut String, s: &str) {
    let needs_quotes = s.is_empty()
        || s.contains([',', '"', '\n', '\r'])
        || s.starts_with(' ')
        || s.ends_with(' ');
    if needs_quotes {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Formats a naive millisecond timestamp as polars does for `Datetime(ms)`:
/// `YYYY-MM-DDTHH:MM:SS.mmm`.
pub fn format_millis(ms: Millis) -> String {
    let mut s = String::with_capacity(23);
    super::timefmt::push_iso_millis(&mut s, ms);
    s
}

/// Converts a naive datetime to milliseconds.
pub fn to_millis(dt: NaiveDateTime) -> Millis {
    dt.and_utc().timestamp_millis()
}

/// Formats an `f64` exactly as polars' CSV writer: the shortest text that reads
/// back to the same value, always with a decimal part in plain notation, and
/// scientific notation (`1e-7`, `1e+16`) outside `[1e-5, 1e16)`.
pub fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "inf" } else { "-inf" });
        return;
    }
    let a = v.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) {
        let start = out.len();
        let _ = write!(out, "{v}");
        if !out[start..].contains('.') {
            out.push_str(".0");
        }
    } else {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => {
                out.push_str(m);
                out.push_str("e+");
                out.push_str(e);
            }
            _ => out.push_str(&s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        push_f64(&mut s, v);
        s
    }

    #[test]
    fn floats_match_polars_text() {
        // Expected strings produced by Python polars 2.1.0 `write_csv`.
        let cases = [
            (1e-7, "1e-7"),
            (1e20, "1e+20"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e16, "1e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (5e-5, "0.00005"),
            (-0.0, "-0.0"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e-5, "0.00001"),
            (1.5e-6, "1.5e-6"),
            (55.0, "55.0"),
            (6.4 * 18.0182, "115.31648000000001"),
        ];
        for (v, want) in cases {
            assert_eq!(f(v), want, "formatting {v:?}");
        }
    }

    #[test]
    fn timestamps_have_millis() {
        let ms = to_millis(
            NaiveDateTime::parse_from_str("2019-10-14 16:42:37", "%Y-%m-%d %H:%M:%S").unwrap(),
        );
        assert_eq!(format_millis(ms), "2019-10-14T16:42:37.000");
    }

    #[test]
    fn sort_puts_null_original_glucose_first() {
        let mut a = Row::event(EventType::Glucose, 1000, 0);
        a.glucose = Some(100.0);
        let b = Row::event(EventType::InsulinFast, 1000, 0);
        let t = UnifiedTable::from_rows(vec![a, b], true);
        assert_eq!(t.rows()[0].event_type, Some(EventType::InsulinFast));
        assert_eq!(t.rows()[1].original_glucose, Some(100.0));
    }
}
