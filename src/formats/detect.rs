//! Format detection from content, following cgm-format 0.13.0's priority table
//! (substring patterns in the first 26 lines), plus Nightscout JSON, which the
//! reference never detects.

use std::fmt;

use serde::Serialize;

use super::error::FormatError;

/// Number of leading lines searched for detection patterns (cgm-format's value).
pub const DETECTION_LINE_COUNT: usize = 26;

/// Every format the detector recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The unified CSV with extended columns (`annotations`).
    UnifiedExtended,
    /// The unified CSV (round trip).
    Unified,
    /// Dexcom Clarity, EU (mmol/L).
    DexcomEu,
    /// Dexcom Clarity, US (mg/dL).
    Dexcom,
    /// FreeStyle Libre / LibreView, EU (mmol/L).
    LibreEu,
    /// FreeStyle Libre / LibreView, US (mg/dL).
    Libre,
    /// Medtronic MiniMed pump CareLink export (extended schema).
    MedtronicPump,
    /// Medtronic Guardian Connect CareLink export.
    Medtronic,
    /// Nightscout exporter CSV.
    Nightscout,
    /// Nightscout REST API JSON (entries, optionally treatments).
    NightscoutJson,
    /// CGMacros research corpus file.
    Cgmacros,
    /// D1NAMO research corpus file.
    D1namo,
    /// BIG IDEAs research corpus food log.
    Bigideas,
}

impl Format {
    /// The format id (cgm-format's `SupportedCGMFormat` value where one exists).
    pub fn id(self) -> &'static str {
        match self {
            Format::UnifiedExtended => "unified_extended",
            Format::Unified => "unified",
            Format::DexcomEu => "dexcom_eu",
            Format::Dexcom => "dexcom",
            Format::LibreEu => "libre_eu",
            Format::Libre => "libre",
            Format::MedtronicPump => "medtronic_pump",
            Format::Medtronic => "medtronic",
            Format::Nightscout => "nightscout",
            Format::NightscoutJson => "nightscout_json",
            Format::Cgmacros => "cgmacros",
            Format::D1namo => "d1namo_diabetes",
            Format::Bigideas => "bigideas",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// cgm-format's detection table, in priority order.
const PATTERNS: &[(Format, &[&str])] = &[
    (Format::UnifiedExtended, &[",annotations"]),
    (Format::Unified, &["sequence_id", "event_type", "quality"]),
    (Format::DexcomEu, &["Glucose Value (mmol/L)"]),
    (
        Format::Dexcom,
        &[
            "Timestamp (YYYY-MM-DDThh:mm:ss)",
            "Event Type,Event Subtype",
            "Transmitter ID",
            "Transmitter Time (Long Integer)",
        ],
    ),
    (Format::LibreEu, &["Historic Glucose mmol/L"]),
    (
        Format::Libre,
        &[
            "Glucose Data,Generated",
            "Historic Glucose mg/dL",
            "FreeStyle Libre",
            "Serial Number,Device Timestamp",
        ],
    ),
    (
        Format::MedtronicPump,
        &["Estimated Reservoir Volume after Fill (U)"],
    ),
    (Format::Medtronic, &["Sensor Glucose (mg/dL)"]),
    (
        Format::Nightscout,
        &["# CGM ENTRIES", "Date,Time,Glucose (mg/dL)"],
    ),
    (Format::Cgmacros, &["Libre GL", "Dexcom GL"]),
    (Format::D1namo, &["date,time,glucose,type,comments"]),
    (
        Format::Bigideas,
        &["logged_food", "searched_food", "time_begin,time_end"],
    ),
];

/// True when the text is a JSON array or object (Nightscout API payloads).
pub fn looks_like_json(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('[') || t.starts_with('{')
}

/// Detects the format of decoded text.
pub fn detect(text: &str) -> Result<Format, FormatError> {
    if looks_like_json(text) {
        return Ok(Format::NightscoutJson);
    }
    let lines: Vec<&str> = text.split('\n').take(DETECTION_LINE_COUNT).collect();
    for (format, patterns) in PATTERNS {
        if lines
            .iter()
            .any(|line| patterns.iter().any(|p| line.contains(p)))
        {
            return Ok(*format);
        }
    }
    Err(FormatError::UnknownFormat {
        sample_lines: lines
            .iter()
            .take(3)
            .map(|l| l.chars().take(200).collect())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_order_is_the_reference_order() {
        assert_eq!(
            detect("Index,Timestamp (YYYY-MM-DDThh:mm:ss),Glucose Value (mmol/L)").unwrap(),
            Format::DexcomEu
        );
        assert_eq!(detect("note,quality,x").unwrap(), Format::Unified);
        assert_eq!(detect("  [{\"sgv\": 5}]").unwrap(), Format::NightscoutJson);
        let err = detect("invalid data").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unknown CGM data format. Sample lines: ['invalid data']"
        );
    }
}
