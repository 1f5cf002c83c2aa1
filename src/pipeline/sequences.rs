//! Sequence detection (cgm-format's `detect_and_assign_sequences`): split the
//! glucose readings at gaps over 15 minutes, then attach every other event to
//! the sequence of the nearest reading.

use crate::formats::Row;

/// Gaps strictly longer than this (seconds, whole seconds as polars counts them)
/// start a new sequence.
pub const SPLIT_GAP_SECONDS: i64 = 15 * 60;

/// Assigns `sequence_id` (1, 2, ...) in place. Without readings every row gets 0.
pub fn assign_sequences(rows: &mut [Row]) {
    for r in rows.iter_mut() {
        r.sequence_id = Some(0);
    }
    let mut glucose: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].is_glucose()).collect();
    if glucose.is_empty() {
        return;
    }
    glucose.sort_by_key(|&i| rows[i].datetime);
    let mut seq = 1i64;
    let mut prev: Option<i64> = None;
    for (k, &i) in glucose.iter().enumerate() {
        let t = rows[i].original_datetime;
        if k > 0
            && let (Some(a), Some(b)) = (prev, t)
            && (b - a) / 1000 > SPLIT_GAP_SECONDS
        {
            seq += 1;
        }
        rows[i].sequence_id = Some(seq);
        prev = t;
    }
    // Nearest reading by original time; equal distances go to the later reading
    // (polars `join_asof(strategy="nearest")`).
    let mut anchors: Vec<(i64, i64)> = glucose
        .iter()
        .filter_map(|&i| Some((rows[i].original_datetime?, rows[i].sequence_id?)))
        .collect();
    anchors.sort_by_key(|a| a.0);
    for r in rows.iter_mut().filter(|r| !r.is_glucose()) {
        r.sequence_id = Some(r.original_datetime.map_or(0, |t| nearest(&anchors, t)));
    }
}

fn nearest(anchors: &[(i64, i64)], t: i64) -> i64 {
    // First anchor strictly after t, and the last one at or before t.
    let after = anchors.partition_point(|a| a.0 <= t);
    let before = after.checked_sub(1).map(|i| anchors[i]);
    let next = anchors.get(after).copied();
    match (before, next) {
        (Some(b), Some(n)) => {
            if n.0 - t <= t - b.0 {
                // The first of equal keys after t is as near as any of them.
                n.1
            } else {
                b.1
            }
        }
        (Some(b), None) => b.1,
        (None, Some(n)) => n.1,
        (None, None) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{EventType, Row};

    fn reading(min: i64) -> Row {
        let mut r = Row::event(EventType::Glucose, min * 60_000, 0);
        r.original_datetime = r.datetime;
        r.glucose = Some(100.0);
        r
    }

    fn insulin(min: i64) -> Row {
        let mut r = Row::event(EventType::InsulinFast, min * 60_000, 0);
        r.original_datetime = r.datetime;
        r
    }

    #[test]
    fn split_at_gaps_over_fifteen_minutes() {
        // 0, 5 (gap 5), 20 (gap 15: same), 36 (gap 16: new), event at 28 (equidistant: later wins)
        let mut rows = vec![
            reading(0),
            reading(5),
            reading(20),
            reading(36),
            insulin(28),
            insulin(-100),
        ];
        assign_sequences(&mut rows);
        let ids: Vec<i64> = rows.iter().map(|r| r.sequence_id.unwrap()).collect();
        assert_eq!(ids, vec![1, 1, 1, 2, 2, 1]);
    }

    #[test]
    fn no_readings_means_sequence_zero() {
        let mut rows = vec![insulin(0), insulin(100)];
        assign_sequences(&mut rows);
        assert!(rows.iter().all(|r| r.sequence_id == Some(0)));
    }
}
