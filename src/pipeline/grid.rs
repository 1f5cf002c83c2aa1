//! The 5-minute grid (cgm-format's `interpolate_gaps` and
//! `synchronize_timestamps`): each sequence's grid starts at its earliest
//! original time rounded to the minute; gaps of 5 < gap <= 15 minutes get new
//! readings on the grid points between their neighbours; every row is moved to
//! its nearest grid point and every reading re-timed onto it by linear
//! interpolation of the measured series.

use std::collections::BTreeMap;

use crate::formats::table::quality;
use crate::formats::{EventType, Row};

/// Grid step in minutes.
pub const INTERVAL_MINUTES: i64 = 5;
/// Largest gap (minutes) that is filled by interpolation.
pub const SMALL_GAP_MAX_MINUTES: f64 = 15.0;
const STEP_MS: i64 = INTERVAL_MINUTES * 60_000;

/// Row indices per sequence id, in ascending id order.
fn by_sequence(rows: &[Row]) -> BTreeMap<i64, Vec<usize>> {
    let mut m: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        m.entry(r.sequence_id.unwrap_or(0)).or_default().push(i);
    }
    m
}

/// The grid origin: the earliest original time, rounded to the nearest minute
/// (30 s and more round up; milliseconds ignored).
pub fn grid_start(rows: &[Row], idx: &[usize]) -> Option<i64> {
    let first = idx
        .iter()
        .filter_map(|&i| rows[i].original_datetime)
        .min()?;
    let minute = first.div_euclid(60_000) * 60_000;
    let seconds = (first - minute) / 1000;
    Some(if seconds >= 30 {
        minute + 60_000
    } else {
        minute
    })
}

/// Nearest grid point (round half up) of `t`, as cgm-format's `calculate_grid_point`.
fn nearest_grid_point(t: i64, start: i64) -> i64 {
    let elapsed = (t - start) as f64 / 1000.0;
    let intervals = ((elapsed + 150.0) / 300.0).floor() as i64;
    start + intervals * STEP_MS
}

/// Measured readings of a sequence: (original time, original glucose) of
/// non-imputed `EGV_READ` rows, one per time (the lowest value wins).
pub fn anchors(rows: &[Row], idx: &[usize]) -> Vec<(i64, f64)> {
    let mut a: Vec<(i64, f64)> = idx
        .iter()
        .map(|&i| &rows[i])
        .filter(|r| r.is_glucose() && r.flags() & quality::IMPUTATION == 0)
        .filter_map(|r| Some((r.original_datetime?, r.original_glucose?)))
        .collect();
    a.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
    a.dedup_by_key(|x| x.0);
    a
}

/// The measured series at `t`: linear between the anchors around it, clamped
/// to the end anchors.
pub fn glucose_at(anchors: &[(i64, f64)], t: i64) -> Option<f64> {
    if anchors.is_empty() {
        return None;
    }
    let after = anchors.partition_point(|a| a.0 < t);
    let next = anchors.get(after).copied();
    let before = if next.is_some_and(|n| n.0 == t) {
        next
    } else {
        after.checked_sub(1).map(|i| anchors[i])
    };
    match (before, next) {
        (None, n) => n.map(|n| n.1),
        (b, None) => b.map(|b| b.1),
        (Some((t0, g0)), Some((t1, g1))) => {
            let span = t1 - t0;
            if span <= 0 {
                Some(g0)
            } else {
                Some(g0 + ((t - t0) as f64 / span as f64) * (g1 - g0))
            }
        }
    }
}

/// Fills gaps of 5 < gap <= 15 minutes inside each sequence with readings on
/// the grid, then sorts all rows into canonical order.
pub fn interpolate_gaps(rows: &mut Vec<Row>) {
    let mut new_rows = Vec::new();
    for (seq, idx) in by_sequence(rows) {
        if idx.len() < 2 {
            continue;
        }
        let mut glucose: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| rows[i].is_glucose())
            .collect();
        if glucose.len() < 2 {
            continue;
        }
        let Some(start) = grid_start(rows, &idx) else {
            continue;
        };
        glucose.sort_by_key(|&i| rows[i].original_datetime);
        let mut placements: Vec<(i64, i64)> = Vec::new();
        for w in glucose.windows(2) {
            let (p, c) = (&rows[w[0]], &rows[w[1]]);
            let (Some(tp), Some(tc)) = (p.original_datetime, c.original_datetime) else {
                continue;
            };
            let diff = ((tc - tp) / 1000) as f64 / 60.0;
            if !(diff > INTERVAL_MINUTES as f64 && diff <= SMALL_GAP_MAX_MINUTES) {
                continue;
            }
            if p.glucose.is_none() || c.glucose.is_none() {
                continue;
            }
            let q = p.flags() | c.flags() | quality::IMPUTATION | quality::SYNCHRONIZATION;
            let from = (nearest_grid_point(tp, start) - start) / STEP_MS;
            let to = (nearest_grid_point(tc, start) - start) / STEP_MS;
            for pos in from + 1..to {
                placements.push((start + pos * STEP_MS, q));
            }
        }
        if placements.is_empty() {
            continue;
        }
        let a = anchors(rows, &idx);
        for (t, q) in placements {
            let g = glucose_at(&a, t);
            let mut r = Row::event(EventType::Glucose, t, q);
            r.sequence_id = Some(seq);
            r.original_datetime = Some(t);
            r.glucose = g;
            r.original_glucose = g;
            new_rows.push(r);
        }
    }
    rows.extend(new_rows);
    crate::formats::UnifiedTable::sort_rows(rows);
}

/// Moves every row to its sequence's nearest grid point (flag
/// SYNCHRONIZATION) and re-times every reading's glucose at that point (flag
/// GRID_RETIMED), then sorts into canonical order. Rows are never merged.
pub fn synchronize(rows: &mut [Row]) {
    for (_, idx) in by_sequence(rows) {
        let Some(start) = grid_start(rows, &idx) else {
            continue;
        };
        for &i in &idx {
            let r = &mut rows[i];
            r.datetime = r.original_datetime.map(|t| {
                let secs = (t - start) / 1000;
                let offset = (secs as f64 / 60.0 / INTERVAL_MINUTES as f64 + 0.5).floor() as i64;
                start + offset * STEP_MS
            });
            r.quality = r.quality.map(|q| q | quality::SYNCHRONIZATION);
        }
        let a = anchors(rows, &idx);
        if a.is_empty() {
            continue;
        }
        for &i in &idx {
            let r = &mut rows[i];
            if r.is_glucose() {
                r.glucose = r.datetime.and_then(|t| glucose_at(&a, t));
                r.quality = r.quality.map(|q| q | quality::GRID_RETIMED);
            }
        }
    }
    crate::formats::UnifiedTable::sort_rows(rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_is_linear_and_clamped() {
        let a = vec![(0, 100.0), (600_000, 120.0)];
        assert_eq!(glucose_at(&a, 300_000), Some(110.0));
        assert_eq!(glucose_at(&a, -5), Some(100.0));
        assert_eq!(glucose_at(&a, 700_000), Some(120.0));
        assert_eq!(glucose_at(&a, 600_000), Some(120.0));
    }

    #[test]
    fn grid_origin_rounds_to_the_minute() {
        let mut r = Row::event(EventType::Glucose, 0, 0);
        r.original_datetime = Some(16 * 3_600_000 + 42 * 60_000 + 37_000);
        assert_eq!(
            grid_start(&[r.clone()], &[0]),
            Some(16 * 3_600_000 + 43 * 60_000)
        );
        r.original_datetime = Some(16 * 3_600_000 + 42 * 60_000 + 29_999);
        assert_eq!(grid_start(&[r], &[0]), Some(16 * 3_600_000 + 42 * 60_000));
    }
}
