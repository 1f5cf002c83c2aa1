//! From a window forecast to a plot: the de-normalised [`PlotData`] of a
//! window (history, forecast samples and, for a back-test, the measured
//! values, in mg/dL, with the upload's unit and clock) and the rendered bytes
//! the engine memoises per window, [`PlotSpec`] and upload version.

use crate::cache::Weigh;
use crate::plot::{PlotData, PlotFormat, Units};

use super::error::EngineError;
use super::forecast::{Target, WindowForecast, WindowKey};
use super::stats::Stats;
use super::upload::Upload;
use crate::bridge::to_mgdl;

/// The index reported for a forward forecast (the window after index 0).
pub const FORWARD_INDEX: i64 = 1;

/// What to render: a format and, for the PNG and SVG charts, the glucose unit
/// (`None`: the upload's own unit). A [`PlotFormat`] converts into the spec
/// of that format in the upload's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlotSpec {
    /// The format.
    pub format: PlotFormat,
    /// The unit of a PNG or SVG chart; always `None` for the JSON formats,
    /// which are in mg/dL whatever is asked (so they share one cache entry).
    pub units: Option<Units>,
}

impl PlotSpec {
    /// `format` drawn in `units` (dropped for the JSON formats).
    pub fn new(format: PlotFormat, units: Option<Units>) -> PlotSpec {
        let units = match format {
            PlotFormat::Png | PlotFormat::Svg => units,
            PlotFormat::Plotly | PlotFormat::Json => None,
        };
        PlotSpec { format, units }
    }
}

impl From<PlotFormat> for PlotSpec {
    fn from(format: PlotFormat) -> Self {
        PlotSpec::new(format, None)
    }
}

/// Where a rendered plot is memoised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlotKey {
    /// The window.
    pub window: WindowKey,
    /// The format and unit.
    pub format: PlotSpec,
    /// The upload version it was rendered from.
    pub version: u64,
}

/// Rendered plot bytes, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotBytes {
    /// The format.
    pub format: PlotFormat,
    /// The body (shared: a clone is a reference count, not a copy).
    pub bytes: bytes::Bytes,
}

impl Weigh for PlotBytes {
    fn weight(&self) -> usize {
        self.bytes.len() + 64
    }
}

/// The plot data of `target` in `upload` with its forecast, for charts in
/// `units` (`None`: the upload's unit).
pub fn plot_data(
    upload: &Upload,
    target: Target,
    f: &WindowForecast,
    units: Option<Units>,
) -> Result<PlotData, EngineError> {
    let ds = &upload.prepared.dataset;
    let (w, index) = match target {
        Target::Index(i) => (ds.window(i)?, i),
        Target::Forward => (ds.forward()?, FORWARD_INDEX),
    };
    let scaler = &ds.target_scaler;
    let values = to_mgdl(scaler, &f.values);
    let samples = (0..f.samples)
        .map(|s| (0..f.steps).map(|t| values[t * f.samples + s]).collect())
        .collect();
    Ok(PlotData {
        handle: upload.handle.clone(),
        index,
        history_times: w.input_times.clone(),
        history: to_mgdl(scaler, &w.past_target),
        forecast_times: w.output_times.clone(),
        samples,
        actual: w.future_target.as_deref().map(|t| to_mgdl(scaler, t)),
        warnings: upload.prepared.warnings.messages.clone(),
        units: units.unwrap_or(upload.origin.units),
        clock: upload.origin.clock,
    })
}

/// [`render`], counted in `stats` (renders running, done and failed; on the
/// rendering thread, so a request dropped meanwhile still ends its count).
pub(crate) fn render_counted(
    stats: &Stats,
    upload: &Upload,
    target: Target,
    f: &WindowForecast,
    spec: PlotSpec,
) -> Result<PlotBytes, EngineError> {
    stats.render_started();
    let r = render(upload, target, f, spec);
    stats.render_done(r.is_ok());
    r
}

/// Renders a window's plot.
pub fn render(
    upload: &Upload,
    target: Target,
    f: &WindowForecast,
    spec: PlotSpec,
) -> Result<PlotBytes, EngineError> {
    let format = spec.format;
    let data = plot_data(upload, target, f, spec.units)?;
    let bytes = crate::plot::render(&data, format)
        .map_err(|e| EngineError::Plot(format!("could not draw the {format} plot: {e}")))?;
    Ok(PlotBytes {
        format,
        bytes: bytes.into(),
    })
}
