//! From a window forecast to a plot: the de-normalised [`PlotData`] of a
//! window (history, forecast samples and, for a back-test, the measured
//! values, in mg/dL) and the rendered bytes the engine memoises per window,
//! format and upload version.

use crate::cache::Weigh;
use crate::plot::{PlotData, PlotFormat};

use super::error::EngineError;
use super::forecast::{Target, WindowForecast, WindowKey, to_mgdl};
use super::upload::Upload;

/// The index reported for a forward forecast (the window after index 0).
pub const FORWARD_INDEX: i64 = 1;

/// Where a rendered plot is memoised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlotKey {
    /// The window.
    pub window: WindowKey,
    /// The format.
    pub format: PlotFormat,
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

/// The plot data of `target` in `upload` with its forecast.
pub fn plot_data(
    upload: &Upload,
    target: Target,
    f: &WindowForecast,
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
    })
}

/// Renders a window's plot.
pub fn render(
    upload: &Upload,
    target: Target,
    f: &WindowForecast,
    format: PlotFormat,
) -> Result<PlotBytes, EngineError> {
    let data = plot_data(upload, target, f)?;
    let bytes = crate::plot::render(&data, format)
        .map_err(|e| EngineError::Plot(format!("could not draw the {format} plot: {e}")))?;
    Ok(PlotBytes {
        format,
        bytes: bytes.into(),
    })
}
