//! Axis ticks of the PNG and SVG charts: wall-clock times on the x axis (with the date under
//! the first tick and under the first tick of each new day) and round glucose values on the
//! y axis.

use chrono::NaiveDateTime;

use super::units::Units;

/// Tick steps of the time axis, in minutes; each divides a day, so ticks fall on round
/// wall-clock times.
const TIME_STEPS: [i64; 10] = [5, 10, 15, 20, 30, 60, 120, 180, 360, 720];

/// One tick of the time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeTick {
    /// Its time, ms since the epoch (naive: the upload's clock).
    pub ms: i64,
    /// `HH:MM`.
    pub label: String,
    /// The date (`28 Oct 2019`) under the first tick and the first tick of each new day.
    pub date: Option<String>,
}

/// The naive date-time of `ms`, if representable.
pub fn datetime(ms: i64) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.naive_utc())
}

/// `HH:MM` of `ms`.
pub fn clock_text(ms: i64) -> String {
    datetime(ms)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

/// `28 Oct 2019` of `ms`.
pub fn date_text(ms: i64) -> String {
    datetime(ms)
        .map(|t| t.format("%-d %b %Y").to_string())
        .unwrap_or_default()
}

/// Ticks on round wall-clock times between `from` and `to` (ms), at most `max_ticks` of
/// them (the finest step that allows it); the first tick and the first tick of each
/// new day carry the date.
pub fn time_ticks(from: i64, to: i64, max_ticks: usize) -> Vec<TimeTick> {
    if to <= from {
        return Vec::new();
    }
    let max_ticks = max_ticks.max(1);
    let span_min = (to as f64 - from as f64) / 60_000.0;
    let step = TIME_STEPS
        .iter()
        .copied()
        .find(|s| span_min / *s as f64 <= max_ticks as f64)
        .unwrap_or_else(|| {
            // whole days
            let days = (span_min / 1440.0 / max_ticks as f64).ceil().max(1.0);
            1440 * days.min(1e9) as i64
        });
    let step_ms = step * 60_000;
    let first = from.div_euclid(step_ms) + i64::from(from.rem_euclid(step_ms) != 0);
    let last = to.div_euclid(step_ms).min(first + 2 * max_ticks as i64);
    let mut ticks = Vec::new();
    let mut day = None;
    for k in first..=last {
        let ms = k * step_ms;
        let this_day = datetime(ms).map(|t| t.date());
        let date = (this_day != day).then(|| date_text(ms));
        day = this_day;
        ticks.push(TimeTick {
            ms,
            label: clock_text(ms),
            date,
        });
    }
    ticks
}

/// The midnights strictly inside `from..to` (ms), at most 32.
pub fn midnights(from: i64, to: i64) -> Vec<i64> {
    const DAY: i64 = 86_400_000;
    let first = from.div_euclid(DAY) + 1;
    (first..)
        .map(|d| d * DAY)
        .take_while(|&m| m < to)
        .take(32)
        .collect()
}

/// A round step (1, 2, 2.5 or 5 times a power of ten) giving at most `max_ticks` ticks
/// over `span`.
fn nice_step(span: f64, max_ticks: usize) -> f64 {
    let raw = span / max_ticks.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Glucose ticks over `lo..hi` (in `units`), each with its label: whole numbers in mg/dL
/// (steps of at least 10), mmol/L with one decimal where the step needs it.
pub fn value_ticks(lo: f64, hi: f64, units: Units, max_ticks: usize) -> Vec<(f64, String)> {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return Vec::new();
    }
    let mut step = nice_step(hi - lo, max_ticks);
    if units == Units::MgDl {
        step = step.max(10.0);
    } else {
        step = step.max(0.5);
    }
    let decimals = if step.fract().abs() < 1e-9 { 0 } else { 1 };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            (v, format!("{v:.decimals$}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_572_220_620_000; // 2019-10-27T23:57:00

    #[test]
    fn ticks_on_round_times_with_dates() {
        let ticks = time_ticks(T0 - 175 * 60_000, T0 + 62 * 60_000, 9);
        let labels: Vec<&str> = ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "21:30", "22:00", "22:30", "23:00", "23:30", "00:00", "00:30"
            ]
        );
        assert_eq!(ticks[0].date.as_deref(), Some("27 Oct 2019"));
        assert_eq!(ticks[5].date.as_deref(), Some("28 Oct 2019"));
        assert!(ticks.iter().filter(|t| t.date.is_some()).count() == 2);
        assert_eq!(midnights(T0 - 3_600_000, T0 + 3_600_000).len(), 1);
        assert!(midnights(T0 - 3_600_000, T0).is_empty());
        assert_eq!(clock_text(T0), "23:57");
        assert_eq!(date_text(T0), "27 Oct 2019");
    }

    #[test]
    fn round_values() {
        let t = value_ticks(55.0, 240.0, Units::MgDl, 8);
        assert_eq!(t.first().map(|x| x.1.as_str()), Some("75"));
        assert!(t.iter().all(|(v, _)| v % 25.0 == 0.0));
        let t = value_ticks(3.1, 13.2, Units::MmolL, 8);
        let labels: Vec<&str> = t.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(labels, ["4", "6", "8", "10", "12"]);
        let t = value_ticks(4.0, 6.0, Units::MmolL, 8);
        assert_eq!(t[0].1, "4.0");
        assert!(value_ticks(1.0, 1.0, Units::MgDl, 8).is_empty());
    }
}
