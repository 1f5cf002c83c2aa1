//! The compact JSON summary of a window: what a client needs to draw its own chart.

use serde::Serialize;

use super::notes::plain_warnings;
use super::pyfmt::iso_seconds;
use super::{PlotData, medians, quantile, step_samples};

/// The quantile levels of the compact JSON, with their keys.
const LEVELS: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];

#[derive(Serialize)]
struct Quantiles {
    #[serde(rename = "0.05")]
    q05: Vec<f64>,
    #[serde(rename = "0.25")]
    q25: Vec<f64>,
    #[serde(rename = "0.5")]
    q50: Vec<f64>,
    #[serde(rename = "0.75")]
    q75: Vec<f64>,
    #[serde(rename = "0.95")]
    q95: Vec<f64>,
}

#[derive(Serialize)]
struct Compact<'a> {
    handle: &'a str,
    index: i64,
    forecast_times: Vec<String>,
    median: Vec<f64>,
    quantiles: Quantiles,
    samples: &'a [Vec<f64>],
    history_times: Vec<String>,
    history: &'a [f64],
    actual: Option<&'a [f64]>,
    warnings: &'a [String],
    display_units: &'static str,
    clock: &'static str,
    notes: Vec<String>,
}

/// The compact JSON of `data`, keys in this order:
/// `handle`, `index`, `forecast_times` (ISO `YYYY-MM-DDTHH:MM:SS`, whole seconds),
/// `median` (one per step), `quantiles` (`"0.05"`, `"0.25"`, `"0.5"`, `"0.75"`, `"0.95"`,
/// each one per step, numpy's linear method), `samples` (as given), `history_times` (ISO),
/// `history`, `actual` (`null` for a forward forecast), `warnings` (gluRPC's messages),
/// `display_units` (`"mg/dL"` or `"mmol/L"`: the unit to show the values in, the export's own
/// unless another was asked for; the numbers themselves are always mg/dL), `clock` (`"local"`,
/// `"utc"` or `"unknown"`: the clock of the times, which carry no zone) and `notes` (the
/// warnings that change what the forecast means, in plain words, as on the PNG and SVG
/// charts).
///
/// Does not validate (see [`super::validate`]); non-finite numbers are written as `null`
/// and unwritable times as empty strings.
pub fn compact_json(data: &PlotData) -> String {
    let horizon = data.forecast_times.len();
    let per_step: Vec<Vec<f64>> = (0..horizon).map(|p| step_samples(data, p)).collect();
    let level = |q: f64| -> Vec<f64> { per_step.iter().map(|s| quantile(s, q)).collect() };
    let [q05, q25, q50, q75, q95] = LEVELS.map(level);
    let iso = |ts: &[i64]| -> Vec<String> {
        ts.iter()
            .map(|&t| iso_seconds(t).unwrap_or_default())
            .collect()
    };
    let compact = Compact {
        handle: &data.handle,
        index: data.index,
        forecast_times: iso(&data.forecast_times),
        median: medians(data),
        quantiles: Quantiles {
            q05,
            q25,
            q50,
            q75,
            q95,
        },
        samples: &data.samples,
        history_times: iso(&data.history_times),
        history: &data.history,
        actual: data.actual.as_deref(),
        warnings: &data.warnings,
        display_units: data.units.label(),
        clock: data.clock.name(),
        notes: plain_warnings(&data.warnings),
    };
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string(&compact).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::super::tests::window;
    use super::*;

    #[test]
    fn fields_and_lengths() {
        let v: serde_json::Value =
            serde_json::from_str(&compact_json(&window(true))).expect("valid JSON");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "handle",
            "index",
            "forecast_times",
            "median",
            "quantiles",
            "samples",
            "history_times",
            "history",
            "actual",
            "warnings",
            "display_units",
            "clock",
            "notes",
        ] {
            assert!(keys.contains(&k), "{k}");
        }
        assert_eq!(v["forecast_times"][0], "2024-05-01T08:00:00");
        assert_eq!(v["quantiles"]["0.5"], v["median"]);
        assert_eq!(v["actual"].as_array().map(Vec::len), Some(12));
        let v: serde_json::Value =
            serde_json::from_str(&compact_json(&window(false))).expect("valid JSON");
        assert!(v["actual"].is_null());
    }
}
