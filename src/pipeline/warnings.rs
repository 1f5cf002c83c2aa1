//! Processing warnings: cgm-format's `ProcessingWarning` bits and gluRPC's
//! formatted form (seven booleans and messages in a fixed order).

use serde::Serialize;

/// `ProcessingWarning` bit values.
pub mod flags {
    /// Minimum duration not met.
    pub const TOO_SHORT: i64 = 1;
    /// Calibration events or the 24 h after a long gap.
    pub const CALIBRATION: i64 = 2;
    /// Dexcom High/Low placeholders.
    pub const OUT_OF_RANGE: i64 = 4;
    /// Imputed gaps.
    pub const IMPUTATION: i64 = 8;
    /// Repeated timestamps.
    pub const TIME_DUPLICATES: i64 = 16;
    /// Rows moved onto the grid (not exposed by gluRPC).
    pub const SYNCHRONIZATION: i64 = 32;
    /// Other quality issues (never set).
    pub const QUALITY: i64 = 64;
}

/// The warnings object of gluRPC's responses (`FormattedWarnings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FormattedWarnings {
    /// True when any message is present.
    pub has_warnings: bool,
    /// Minimum duration not met.
    pub too_short: bool,
    /// Calibration events present.
    pub calibration: bool,
    /// Other quality issues.
    pub quality: bool,
    /// Imputed gaps present.
    pub imputation: bool,
    /// Out-of-range values present.
    pub out_of_range: bool,
    /// Repeated timestamps present.
    pub time_duplicates: bool,
    /// One line per raised warning, in fixed order.
    pub messages: Vec<String>,
}

impl FormattedWarnings {
    /// Formats warning bits as gluRPC does; `notes` are appended to the messages
    /// (e.g. that an older sequence was used).
    pub fn from_flags(bits: i64, notes: &[String]) -> Self {
        let on = |f: i64| bits & f != 0;
        let mut w = FormattedWarnings {
            too_short: on(flags::TOO_SHORT),
            calibration: on(flags::CALIBRATION),
            quality: on(flags::QUALITY),
            imputation: on(flags::IMPUTATION),
            out_of_range: on(flags::OUT_OF_RANGE),
            time_duplicates: on(flags::TIME_DUPLICATES),
            ..Default::default()
        };
        let table = [
            (
                w.too_short,
                "TOO_SHORT: Minimum duration requirement not met",
            ),
            (
                w.calibration,
                "CALIBRATION: Sequence contains calibration events or 24hr period after gap ≥ CALIBRATION_GAP_THRESHOLD",
            ),
            (w.quality, "QUALITY: Other quality issues"),
            (w.imputation, "IMPUTATION: Contains imputed gaps"),
            (w.out_of_range, "OUT_OF_RANGE: Contains out-of-range values"),
            (
                w.time_duplicates,
                "TIME_DUPLICATES: Sequence contains non-unique time entries",
            ),
        ];
        w.messages = table
            .iter()
            .filter(|(b, _)| *b)
            .map(|(_, m)| m.to_string())
            .collect();
        w.messages.extend(notes.iter().cloned());
        w.has_warnings = !w.messages.is_empty();
        w
    }
}
