//! Plots of one forecast window: the numbers (median, quantiles, KDE fans) and the four
//! output formats.
//!
//! This module owns everything between a de-normalised window ([`PlotData`], in mg/dL)
//! and the bytes a client receives:
//! * [`plotly_json`]: the Plotly figure gluRPC 0.6.3 returns (`logic.calculate_plot_data`
//!   with a datetime x axis), written with the same structure, key order and number text
//!   as plotly 5.24.1's `fig.to_json()`, template included;
//! * [`compact_json`]: a small JSON summary (median, quantiles, samples, history);
//! * [`png`] and [`svg`]: our own chart, drawn with plotters at 1000x600 with an embedded
//!   font (no system fonts needed): dates and the clock on the time axis, the export's unit
//!   ([`Units`]), the target range, a line at the last reading, three hours of history,
//!   50% and 90% bands, a legend beside the data and the warnings that change what the
//!   forecast means;
//! * the statistics behind them ([`median`], [`quantile`], [`kde_fan`]), computed the way
//!   numpy and scipy compute them.
//!
//! It does not fetch or cache anything: the engine builds the [`PlotData`] and calls
//! [`render`].

mod axis;
mod chart;
mod compact;
mod draw;
mod glyphs;
mod notes;
mod plotly;
mod pyfmt;
mod stats;
mod units;

use std::fmt;
use std::str::FromStr;

pub use chart::HISTORY_POINTS;
pub use compact::compact_json;
pub use draw::{png, svg};
pub use plotly::plotly_json;
pub use pyfmt::py_float_repr;
pub use stats::{KDE_GRID, MIN_STD, kde_fan, median, quantile};
pub use units::{Clock, MGDL_PER_MMOL, Origin, Units, units_of_values};

/// Width of the rendered chart in pixels (and of the Plotly layout).
pub const WIDTH: u32 = 1000;
/// Height of the rendered chart in pixels (and of the Plotly layout).
pub const HEIGHT: u32 = 600;
/// Minutes between readings in the reference (`STEP_SIZE_MINUTES`); a fan is at most
/// `0.9 *` this wide.
pub const TIME_STEP_MINUTES: f64 = 5.0;

/// Earliest time accepted, ms since the epoch: 0001-01-01T00:10:00, so that a fan reaching
/// 4.5 minutes to the left of a time still has a date Python can write.
pub const MIN_TIME_MS: i64 = -62_135_596_800_000 + 600_000;
/// Latest time accepted, ms since the epoch: 9999-12-31T23:59:59.999 (Python's maximum).
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Everything one plot needs, already in mg/dL (the caller de-normalises). `units` and
/// `clock` only change the PNG and SVG charts; the Plotly figure and the compact JSON are
/// always in mg/dL.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotData {
    /// The upload's handle (carried into the compact JSON).
    pub handle: String,
    /// User index of the window (0 = last window); informational.
    pub index: i64,
    /// The input times (normally 96), ms since the Unix epoch, naive UTC.
    pub history_times: Vec<i64>,
    /// The input values (mg/dL), one per history time.
    pub history: Vec<f64>,
    /// The forecast times (normally 12), ms since the Unix epoch.
    pub forecast_times: Vec<i64>,
    /// S samples, each with one value per forecast time (mg/dL).
    pub samples: Vec<Vec<f64>>,
    /// The measured values at the forecast times; `None` for a forward forecast.
    pub actual: Option<Vec<f64>>,
    /// Processing warnings: passed along in the compact JSON, in plain words on the PNG and
    /// SVG charts.
    pub warnings: Vec<String>,
    /// The unit the PNG and SVG charts are drawn in.
    pub units: Units,
    /// The clock of the times, named on the charts' time axis.
    pub clock: Clock,
}

/// Why a plot could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A series is empty or its length does not match the one it must match.
    #[error("{what}: expected {expected} values, got {got}")]
    Length {
        /// Which series.
        what: String,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// There are no forecast samples.
    #[error("no forecast samples")]
    NoSamples,
    /// There are no history values or no forecast times.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A value is NaN or infinite.
    #[error("{what}[{index}] is not finite")]
    NonFinite {
        /// Which series.
        what: String,
        /// Position in that series.
        index: usize,
    },
    /// A time is outside the years 1 to 9999.
    #[error("{what}[{index}] = {ms} ms is outside the supported date range")]
    TimeOutOfRange {
        /// Which series.
        what: &'static str,
        /// Position in that series.
        index: usize,
        /// The time, ms since the epoch.
        ms: i64,
    },
    /// An output format name that is not `plotly`, `png`, `svg` or `json`.
    #[error("unknown plot format {0:?} (expected plotly, png, svg or json)")]
    UnknownFormat(String),
    /// A glucose unit name that is not mg/dL or mmol/L.
    #[error("unknown glucose unit {0:?} (expected mg/dL or mmol/L)")]
    UnknownUnits(String),
    /// The embedded font could not be loaded.
    #[error("font: {0}")]
    Font(String),
    /// Drawing the chart failed.
    #[error("rendering failed: {0}")]
    Render(String),
    /// Encoding the PNG failed.
    #[error("PNG encoding failed: {0}")]
    Encode(String),
}

/// An output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlotFormat {
    /// The reference's Plotly figure JSON.
    Plotly,
    /// A 1000x600 PNG image.
    Png,
    /// A 1000x600 SVG image.
    Svg,
    /// The compact JSON summary.
    Json,
}

impl PlotFormat {
    /// The HTTP `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            PlotFormat::Plotly | PlotFormat::Json => "application/json",
            PlotFormat::Png => "image/png",
            PlotFormat::Svg => "image/svg+xml",
        }
    }

    /// The lower-case name ([`FromStr`] accepts it back).
    pub fn as_str(self) -> &'static str {
        match self {
            PlotFormat::Plotly => "plotly",
            PlotFormat::Png => "png",
            PlotFormat::Svg => "svg",
            PlotFormat::Json => "json",
        }
    }
}

impl fmt::Display for PlotFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PlotFormat {
    type Err = PlotError;

    /// `plotly`, `png`, `svg` or `json`, in any letter case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "plotly" => Ok(PlotFormat::Plotly),
            "png" => Ok(PlotFormat::Png),
            "svg" => Ok(PlotFormat::Svg),
            "json" => Ok(PlotFormat::Json),
            _ => Err(PlotError::UnknownFormat(s.to_string())),
        }
    }
}

/// Checks that `data` can be plotted: history and forecast times non-empty, history
/// values one per history time, at least one sample, every sample and `actual` one value
/// per forecast time, all values finite, all times within the years 1 to 9999.
pub fn validate(data: &PlotData) -> Result<(), PlotError> {
    if data.history.is_empty() {
        return Err(PlotError::Empty("history"));
    }
    if data.forecast_times.is_empty() {
        return Err(PlotError::Empty("forecast_times"));
    }
    let length = |what: String, expected: usize, got: usize| {
        if expected == got {
            Ok(())
        } else {
            Err(PlotError::Length {
                what,
                expected,
                got,
            })
        }
    };
    length(
        "history".into(),
        data.history_times.len(),
        data.history.len(),
    )?;
    if data.samples.is_empty() {
        return Err(PlotError::NoSamples);
    }
    let horizon = data.forecast_times.len();
    for (s, sample) in data.samples.iter().enumerate() {
        length(format!("samples[{s}]"), horizon, sample.len())?;
    }
    if let Some(actual) = &data.actual {
        length("actual".into(), horizon, actual.len())?;
    }
    let finite = |what: String, xs: &[f64]| match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(PlotError::NonFinite { what, index }),
        None => Ok(()),
    };
    finite("history".into(), &data.history)?;
    for (s, sample) in data.samples.iter().enumerate() {
        finite(format!("samples[{s}]"), sample)?;
    }
    if let Some(actual) = &data.actual {
        finite("actual".into(), actual)?;
    }
    for (what, times) in [
        ("history_times", &data.history_times),
        ("forecast_times", &data.forecast_times),
    ] {
        if let Some(index) = times
            .iter()
            .position(|t| !(MIN_TIME_MS..=MAX_TIME_MS).contains(t))
        {
            return Err(PlotError::TimeOutOfRange {
                what,
                index,
                ms: times[index],
            });
        }
    }
    Ok(())
}

/// Validates `data` and renders it in `format` (Plotly and compact JSON as UTF-8 bytes).
pub fn render(data: &PlotData, format: PlotFormat) -> Result<Vec<u8>, PlotError> {
    validate(data)?;
    Ok(match format {
        PlotFormat::Plotly => plotly_json(data).into_bytes(),
        PlotFormat::Json => compact_json(data).into_bytes(),
        PlotFormat::Png => png(data)?,
        PlotFormat::Svg => svg(data)?.into_bytes(),
    })
}

/// The samples of horizon step `p` (one value per sample that has that step).
pub(crate) fn step_samples(data: &PlotData, p: usize) -> Vec<f64> {
    data.samples
        .iter()
        .filter_map(|s| s.get(p).copied())
        .collect()
}

/// The per-step medians over the samples.
pub(crate) fn medians(data: &PlotData) -> Vec<f64> {
    (0..data.forecast_times.len())
        .map(|p| median(&step_samples(data, p)))
        .collect()
}

/// The fill colour of step `p` of `horizon`: `'rgba(53, 138, 217, ' + repr((p+1)/h) + ')'`.
pub(crate) fn fan_color(p: usize, horizon: usize) -> (String, f64) {
    let alpha = (p + 1) as f64 / horizon as f64;
    (
        format!("rgba(53, 138, 217, {})", py_float_repr(alpha)),
        alpha,
    )
}

/// The points of the "True Values" line: the last `horizon` history points, then the
/// measured values when there are any. `(times in ms, values)`.
pub(crate) fn true_values(data: &PlotData) -> (Vec<i64>, Vec<f64>) {
    let horizon = data.forecast_times.len();
    let n = data.history.len().min(data.history_times.len());
    let from = n.saturating_sub(horizon);
    let mut times = data.history_times[from..n].to_vec();
    let mut values = data.history[from..n].to_vec();
    if let Some(actual) = &data.actual {
        let k = actual.len().min(data.forecast_times.len());
        times.extend(&data.forecast_times[..k]);
        values.extend(&actual[..k]);
    }
    (times, values)
}

/// The points of the "Median Forecast" line: the last history point, then the medians.
pub(crate) fn median_line(data: &PlotData) -> (Vec<i64>, Vec<f64>) {
    let mut times = Vec::with_capacity(data.forecast_times.len() + 1);
    let mut values = Vec::with_capacity(data.forecast_times.len() + 1);
    if let (Some(t), Some(v)) = (data.history_times.last(), data.history.last()) {
        times.push(*t);
        values.push(*v);
    }
    times.extend(&data.forecast_times);
    values.extend(medians(data));
    (times, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn window(actual: bool) -> PlotData {
        let t0 = 1_714_521_600_000; // 2024-05-01T00:00:00
        let step = 300_000;
        PlotData {
            handle: "h".repeat(16),
            index: 0,
            history_times: (0..96).map(|i| t0 + i * step).collect(),
            history: (0..96).map(|i| 120.0 + f64::from(i).sin() * 20.0).collect(),
            forecast_times: (96..108).map(|i| t0 + i * step).collect(),
            samples: (0..10)
                .map(|s| {
                    (0..12)
                        .map(|p| 110.0 + f64::from(s * 3 - 13) * (1.0 + f64::from(p)) * 0.7)
                        .collect()
                })
                .collect(),
            actual: actual.then(|| (0..12).map(|p| 112.0 + f64::from(p)).collect()),
            warnings: vec![],
            units: Units::MgDl,
            clock: Clock::Unknown,
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in [
            PlotFormat::Plotly,
            PlotFormat::Png,
            PlotFormat::Svg,
            PlotFormat::Json,
        ] {
            assert_eq!(f.to_string().parse::<PlotFormat>().ok(), Some(f));
        }
        assert_eq!("PNG".parse::<PlotFormat>().ok(), Some(PlotFormat::Png));
        assert!(matches!(
            "gif".parse::<PlotFormat>(),
            Err(PlotError::UnknownFormat(_))
        ));
        assert_eq!(PlotFormat::Svg.content_type(), "image/svg+xml");
        assert_eq!(PlotFormat::Plotly.content_type(), "application/json");
    }

    #[test]
    fn fan_colors_like_python() {
        assert_eq!(
            fan_color(0, 12).0,
            "rgba(53, 138, 217, 0.08333333333333333)"
        );
        assert_eq!(fan_color(11, 12).0, "rgba(53, 138, 217, 1.0)");
        assert_eq!(fan_color(2, 12).0, "rgba(53, 138, 217, 0.25)");
    }

    #[test]
    fn line_points() {
        let d = window(true);
        let (t, v) = true_values(&d);
        assert_eq!((t.len(), v.len()), (24, 24));
        assert_eq!(t[12], d.forecast_times[0]);
        let (t, v) = true_values(&window(false));
        assert_eq!((t.len(), v.len()), (12, 12));
        assert_eq!(t[11], d.history_times[95]);
        let (t, v) = median_line(&d);
        assert_eq!((t.len(), v.len()), (13, 13));
        assert_eq!(v[0], d.history[95]);
    }

    #[test]
    fn validation() {
        assert!(validate(&window(true)).is_ok());
        let mut d = window(true);
        d.history.pop();
        assert!(matches!(validate(&d), Err(PlotError::Length { .. })));
        let mut d = window(true);
        d.samples.clear();
        assert!(matches!(validate(&d), Err(PlotError::NoSamples)));
        let mut d = window(true);
        d.samples[3][4] = f64::NAN;
        assert!(matches!(validate(&d), Err(PlotError::NonFinite { .. })));
        let mut d = window(true);
        d.forecast_times[0] = i64::MAX;
        assert!(matches!(
            validate(&d),
            Err(PlotError::TimeOutOfRange { .. })
        ));
    }
}
