//! Window selection (cgm-format's `prepare_for_inference` with gluRPC's
//! limits): the newest sequence long enough is truncated to the last
//! `max_minutes`, duplicates and calibration periods are marked, warning bits
//! computed; then the glucose-only series with one value per grid time.

use std::collections::{BTreeMap, HashSet};

use crate::formats::table::{format_millis, quality};
use crate::formats::{EventType, Row};

use super::PipelineError;
use super::warnings::flags;

/// Gap (whole seconds) after which 24 h are marked as a calibration period.
pub const CALIBRATION_GAP_SECONDS: i64 = 9900;
/// Length of a calibration period in hours.
pub const CALIBRATION_PERIOD_HOURS: i64 = 24;

/// A selected window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Rows of the window (all event types), quality bits marked.
    pub rows: Vec<Row>,
    /// `ProcessingWarning` bits.
    pub flags: i64,
    /// The sequence used.
    pub sequence_id: i64,
    /// Number of sequences in the data.
    pub sequences: usize,
    /// Explanations added to the warning messages (e.g. an older sequence used).
    pub notes: Vec<String>,
}

/// Picks the window: sequences from the newest (by last reading) backwards;
/// each truncated to readings within `max_minutes` of its last reading and
/// accepted when its readings span at least `min_minutes`. Durations count
/// glucose readings only (cgm-format also counts insulin and carb rows).
pub fn select(rows: &[Row], min_minutes: i64, max_minutes: i64) -> Result<Window, PipelineError> {
    if !rows.iter().any(Row::is_reading) {
        return Err(PipelineError::NoGlucose);
    }
    let mut seqs: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        seqs.entry(r.sequence_id.unwrap_or(0)).or_default().push(i);
    }
    let last_reading = |idx: &[usize]| {
        idx.iter()
            .filter(|&&i| rows[i].is_reading())
            .filter_map(|&i| rows[i].datetime)
            .max()
    };
    let mut order: Vec<(i64, Option<i64>)> = seqs
        .iter()
        .map(|(s, idx)| (*s, last_reading(idx)))
        .collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut longest = 0.0f64;
    for (rank, (seq, end)) in order.iter().enumerate() {
        let Some(end) = *end else { continue };
        let cutoff = end - max_minutes * 60_000;
        let window: Vec<Row> = seqs[seq]
            .iter()
            .map(|&i| &rows[i])
            .filter(|r| r.datetime.is_some_and(|t| t >= cutoff))
            .cloned()
            .collect();
        let times = window
            .iter()
            .filter(|r| r.is_reading())
            .filter_map(|r| r.datetime);
        let (lo, hi) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
        let minutes = (hi - lo) as f64 / 60_000.0;
        longest = longest.max(minutes);
        if minutes < min_minutes as f64 {
            continue;
        }
        let mut notes = Vec::new();
        if rank > 0 {
            notes.push(format!(
                "OLDER_SEQUENCE: The most recent data (up to {}) covers less than {min_minutes} minutes; using an earlier sequence ending {}",
                &format_millis(order[0].1.unwrap_or(end))[..16],
                &format_millis(end)[..16],
            ));
        }
        let mut window = window;
        mark_time_duplicates(&mut window);
        mark_calibration_periods(&mut window);
        let flags = warning_flags(&window, min_minutes);
        return Ok(Window {
            rows: window,
            flags,
            sequence_id: *seq,
            sequences: seqs.keys().filter(|s| **s > 0).count(),
            notes,
        });
    }
    Err(PipelineError::TooShort {
        tried: order.len(),
        required_minutes: min_minutes,
        available_minutes: longest,
    })
}

/// Every row after the first (in frame order) sharing a `datetime` gets TIME_DUPLICATE.
fn mark_time_duplicates(rows: &mut [Row]) {
    let mut seen = HashSet::new();
    for r in rows.iter_mut() {
        if !seen.insert(r.datetime) {
            r.quality = r.quality.map(|q| q | quality::TIME_DUPLICATE);
        }
    }
}

/// Rows within 24 h after a gap of at least 2 h 45 min (any rows, by original
/// time) get SENSOR_CALIBRATION.
fn mark_calibration_periods(rows: &mut [Row]) {
    let mut times: Vec<i64> = rows.iter().filter_map(|r| r.original_datetime).collect();
    times.sort_unstable();
    let starts: Vec<i64> = times
        .windows(2)
        .filter(|w| (w[1] - w[0]) / 1000 >= CALIBRATION_GAP_SECONDS)
        .map(|w| w[1])
        .collect();
    if starts.is_empty() {
        return;
    }
    let period = CALIBRATION_PERIOD_HOURS * 3_600_000;
    for r in rows.iter_mut() {
        if let Some(t) = r.original_datetime
            && starts.iter().any(|&s| t >= s && t <= s + period)
        {
            r.quality = r.quality.map(|q| q | quality::SENSOR_CALIBRATION);
        }
    }
}

fn warning_flags(rows: &[Row], min_minutes: i64) -> i64 {
    let any = |bit: i64| rows.iter().any(|r| r.flags() & bit != 0);
    let mut f = 0;
    let times = rows.iter().filter_map(|r| r.datetime);
    let (lo, hi) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if lo <= hi && ((hi - lo) as f64 / 60_000.0) < min_minutes as f64 {
        f |= flags::TOO_SHORT;
    }
    if rows
        .iter()
        .any(|r| r.event_type == Some(EventType::Calibration))
        || any(quality::SENSOR_CALIBRATION)
    {
        f |= flags::CALIBRATION;
    }
    if any(quality::OUT_OF_RANGE) {
        f |= flags::OUT_OF_RANGE;
    }
    if any(quality::IMPUTATION) {
        f |= flags::IMPUTATION;
    }
    if any(quality::SYNCHRONIZATION | quality::GRID_RETIMED) {
        f |= flags::SYNCHRONIZATION;
    }
    let unique: HashSet<Option<i64>> = rows.iter().map(|r| r.datetime).collect();
    if unique.len() < rows.len() || any(quality::TIME_DUPLICATE) {
        f |= flags::TIME_DUPLICATES;
    }
    f
}

/// The glucose-only series: `EGV_READ` rows merged per `datetime` (first
/// non-null glucose), sorted by time. cgm-format's
/// `to_data_only_df(drop_service_columns=False, drop_duplicates=True, glucose_only=True)`.
pub fn glucose_series(window: &[Row]) -> Vec<(i64, Option<f64>)> {
    let mut merged: BTreeMap<i64, Option<f64>> = BTreeMap::new();
    for r in window.iter().filter(|r| r.is_glucose()) {
        let Some(t) = r.datetime else { continue };
        let slot = merged.entry(t).or_insert(None);
        if slot.is_none() {
            *slot = r.glucose;
        }
    }
    merged.into_iter().collect()
}
