//! Ingestion: detects and parses every supported CGM export into the unified
//! table of cgm-format 0.13.0 (byte-identical CSV text and handle wherever that
//! library parses a file correctly), with a typed error for every bad input.
//!
//! Entry points: [`parse_bytes`] for one upload, [`parse_uploads`] for an
//! upload split over several files (Nightscout entries + treatments).

pub mod csvtext;
pub mod decode;
pub mod detect;
pub mod dexcom;
pub mod error;
#[cfg(feature = "polars")]
pub mod frame;
pub mod libre;
pub mod medtronic;
pub mod nightscout;
pub mod table;
pub mod timefmt;
pub mod unified;

pub use detect::{Format, detect};
pub use error::FormatError;
pub use table::{EventType, Millis, Row, UnifiedTable};

/// mmol/L to mg/dL, applied as `value * 18.0182` (cgm-format's factor).
pub const MMOL_TO_MGDL: f64 = 18.0182;

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Largest accepted upload, in bytes after decompression.
    pub max_bytes: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_bytes: decode::DEFAULT_MAX_BYTES,
        }
    }
}

/// A parsed upload: its format, the unified table, its CSV text and handle.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The detected format.
    pub format: Format,
    /// The unified table, in canonical order.
    pub table: UnifiedTable,
    /// The unified CSV text (as cgm-format's `write_csv`).
    pub csv: String,
    /// SHA-256 hex of `csv`.
    pub handle: String,
}

impl Parsed {
    fn new(format: Format, table: UnifiedTable) -> Self {
        let csv = table.to_csv();
        let handle = table::handle_of(csv.as_bytes());
        Parsed {
            format,
            table,
            csv,
            handle,
        }
    }
}

/// Parses one upload (any supported format, optionally gzip-compressed).
pub fn parse_bytes(bytes: &[u8], opts: &ParseOptions) -> Result<Parsed, FormatError> {
    // The text is dropped before the table is built: at most one of them is
    // held at once besides the rows (memory of large uploads).
    let (format, rows, copy_original) = {
        let raw = decode::decompress(bytes, opts.max_bytes)?;
        let text = decode::decode_text(&raw)?;
        rows_of(&text)?
    };
    finish(format, rows, copy_original)
}

/// Parses decoded text.
pub fn parse_text(text: &str) -> Result<Parsed, FormatError> {
    let (format, rows, copy_original) = rows_of(text)?;
    finish(format, rows, copy_original)
}

/// The format of decoded text, its rows, and whether the unified table keeps
/// the original values.
fn rows_of(text: &str) -> Result<(Format, Vec<Row>, bool), FormatError> {
    let format = detect(text)?;
    let (rows, copy_original) = match format {
        Format::Unified => unified::parse(text)?,
        Format::Dexcom => (dexcom::parse(text, false)?, true),
        Format::DexcomEu => (dexcom::parse(text, true)?, true),
        Format::Libre => (libre::parse(text, false)?, true),
        Format::LibreEu => (libre::parse(text, true)?, true),
        Format::Medtronic => (medtronic::parse(text)?, true),
        Format::Nightscout => (nightscout::parse_exporter_csv(text)?, true),
        Format::NightscoutJson => (nightscout::parse_json(&[text])?, true),
        other => return Err(unsupported(other)),
    };
    Ok((format, rows, copy_original))
}

/// Parses an upload made of several files. A single file is parsed as by
/// [`parse_bytes`]; several files must all be Nightscout JSON (entries and
/// treatments), which are merged into one table.
pub fn parse_uploads(files: &[&[u8]], opts: &ParseOptions) -> Result<Parsed, FormatError> {
    match files {
        [] => Err(FormatError::Empty),
        [one] => parse_bytes(one, opts),
        many => {
            let mut texts = Vec::with_capacity(many.len());
            let mut total = 0usize;
            for bytes in many {
                let raw = decode::decompress(bytes, opts.max_bytes)?;
                total += raw.len();
                if total > opts.max_bytes {
                    return Err(FormatError::TooLarge {
                        limit: opts.max_bytes,
                    });
                }
                let text = decode::decode_text(&raw)?;
                let format = detect(&text)?;
                if format != Format::NightscoutJson {
                    return Err(FormatError::Unsupported {
                        format: format.id(),
                        reason: "only Nightscout JSON (entries + treatments) can be split over several files; upload other exports one at a time".into(),
                    });
                }
                texts.push(text);
            }
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            finish(Format::NightscoutJson, nightscout::parse_json(&refs)?, true)
        }
    }
}

fn unsupported(format: Format) -> FormatError {
    let reason = match format {
        Format::UnifiedExtended => {
            "the extended unified schema (pump basal rates, wearables, annotations) is not served; convert to the core unified schema"
        }
        Format::MedtronicPump => {
            "MiniMed pump exports carry basal programs in the extended schema; export the sensor data (Guardian/CareLink sensor report) instead"
        }
        Format::Cgmacros => {
            "CGMacros files carry two independent sensor series; upload one sensor's data"
        }
        Format::D1namo => "a D1NAMO glucose.csv is one file of a multi-file research bundle",
        Format::Bigideas => "a BIG IDEAs food log has no glucose; upload the subject's Dexcom file",
        _ => "not supported",
    };
    FormatError::Unsupported {
        format: format.id(),
        reason: reason.into(),
    }
}

fn finish(format: Format, rows: Vec<Row>, copy_original: bool) -> Result<Parsed, FormatError> {
    if rows.is_empty() {
        return Err(FormatError::NoData {
            format: format.id(),
            reason: "no rows".into(),
        });
    }
    check_plausible(format, &rows)?;
    Ok(Parsed::new(
        format,
        UnifiedTable::from_rows(rows, copy_original),
    ))
}

/// Latest accepted timestamp: 2100-01-01T00:00:00.
const MAX_MILLIS: Millis = 4_102_444_800_000;

/// Rejects values no real device or person produces, naming the first one.
fn check_plausible(format: Format, rows: &[Row]) -> Result<(), FormatError> {
    let bad = |what, value: String, r: &Row, range| FormatError::Implausible {
        format: format.id(),
        what,
        value,
        at: r
            .datetime
            .map_or_else(|| "an unknown time".into(), table::format_millis),
        range,
    };
    let in_range =
        |v: Option<f64>, hi: f64| v.is_none_or(|v| v.is_finite() && (0.0..=hi).contains(&v));
    for r in rows {
        for t in [r.datetime, r.original_datetime].into_iter().flatten() {
            if !(0..MAX_MILLIS).contains(&t) {
                return Err(bad("timestamp", t.to_string(), r, "years 1970 to 2099"));
            }
        }
        for g in [r.glucose, r.original_glucose] {
            if !in_range(g, 1500.0) {
                return Err(bad("glucose", fmt_opt(g), r, "0 to 1500 mg/dL"));
            }
        }
        if !in_range(r.carbs, 2000.0) {
            return Err(bad("carbs", fmt_opt(r.carbs), r, "0 to 2000 g"));
        }
        for u in [r.insulin_fast, r.insulin_slow] {
            if !in_range(u, 500.0) {
                return Err(bad("insulin", fmt_opt(u), r, "0 to 500 U"));
            }
        }
        if r.exercise.is_some_and(|s| !(0..=7 * 86_400).contains(&s)) {
            return Err(bad(
                "exercise duration",
                fmt_opt(r.exercise.map(|s| s as f64)),
                r,
                "0 to 7 days",
            ));
        }
    }
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}
