//! Preprocessing: from the unified table to the model's windows, following
//! cgm-format 0.13.0 (sequences, gap interpolation, 5-minute grid, window
//! selection, warnings) and gluRPC 0.6.3 / glucobench 0.4.1 (series, calendar
//! covariates, per-request scaling, 96 + 12 windows). Plain Rust on data in
//! memory: no async, no global state.

pub mod dataset;
pub mod grid;
pub mod sequences;
pub mod warnings;
pub mod window;

use thiserror::Error;

use crate::formats::{Row, UnifiedTable};

pub use dataset::{Dataset, WindowInputs};
pub use warnings::FormattedWarnings;
pub use window::Window;

/// Smallest window the model accepts: 5 min x (96 + 12) points.
pub const MINIMUM_DURATION_MINUTES: i64 = 540;
/// Default full window (gluRPC's `MAXIMUM_WANTED_DURATION`).
pub const MAXIMUM_WANTED_DURATION: i64 = 1080;

/// Version of the pipeline's output (windows, scaling, covariates). Cached
/// forecasts are keyed by it: change it whenever a change here changes what
/// the model is fed.
pub const PIPELINE_VERSION: &str = "glurpc-pipeline-1 (cgm-format 0.13.0, gluRPC 0.6.3)";

/// Why the pipeline could not produce a dataset.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum PipelineError {
    /// No glucose reading with a value.
    #[error("Data quality issue: no valid glucose readings in the data")]
    NoGlucose,
    /// No sequence spans the minimum duration.
    #[error(
        "Data quality issue: No valid sequences found. Tried {tried} sequences, none met minimum duration of {required_minutes} minutes with glucose data (the longest spans {available_minutes:.0} minutes)"
    )]
    TooShort {
        /// Sequences tried.
        tried: usize,
        /// Minutes required.
        required_minutes: i64,
        /// Longest span found, in minutes.
        available_minutes: f64,
    },
    /// A window index outside 0 ..= -(N-1).
    #[error("Index {index} out of range: use 0 (last window) to -{} (first)", windows.saturating_sub(1))]
    BadIndex {
        /// The index asked for.
        index: i64,
        /// Number of windows.
        windows: usize,
    },
    /// Invalid window limits.
    #[error("Invalid window configuration: {0}")]
    Config(String),
    /// The series could not be turned into model windows.
    #[error("Data quality issue: {0}")]
    Dataset(String),
}

/// Window limits in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Minimum span of the chosen sequence.
    pub min_minutes: i64,
    /// Maximum span kept (the newest data).
    pub max_minutes: i64,
}

impl WindowConfig {
    /// The full window of `/process_unified` (540 to 1080 minutes).
    pub const FULL: WindowConfig = WindowConfig {
        min_minutes: MINIMUM_DURATION_MINUTES,
        max_minutes: MAXIMUM_WANTED_DURATION,
    };
    /// The quick window of `/quick_plot` (540 minutes).
    pub const QUICK: WindowConfig = WindowConfig {
        min_minutes: MINIMUM_DURATION_MINUTES,
        max_minutes: MINIMUM_DURATION_MINUTES,
    };

    /// Validated limits, as gluRPC validates its settings: minimum at least 540,
    /// maximum at least the minimum.
    pub fn new(min_minutes: i64, max_minutes: i64) -> Result<Self, PipelineError> {
        if min_minutes < MINIMUM_DURATION_MINUTES {
            return Err(PipelineError::Config(format!(
                "MINIMUM_DURATION_MINUTES must be at least {MINIMUM_DURATION_MINUTES}, got {min_minutes}"
            )));
        }
        if max_minutes < min_minutes {
            return Err(PipelineError::Config(format!(
                "MAXIMUM_WANTED_DURATION ({max_minutes}) must be at least MINIMUM_DURATION_MINUTES ({min_minutes})"
            )));
        }
        Ok(WindowConfig {
            min_minutes,
            max_minutes,
        })
    }
}

/// Sequences, gap interpolation and grid synchronisation of a parsed table.
pub fn process(table: &UnifiedTable) -> Vec<Row> {
    let mut rows = table.rows().to_vec();
    sequences::assign_sequences(&mut rows);
    grid::interpolate_gaps(&mut rows);
    grid::synchronize(&mut rows);
    rows
}

/// A window ready for the model.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The selected window.
    pub window: Window,
    /// Its glucose-only series (time, mg/dL), one point per grid time.
    pub series: Vec<(i64, Option<f64>)>,
    /// The scaled dataset.
    pub dataset: Dataset,
    /// Warnings as gluRPC reports them.
    pub warnings: FormattedWarnings,
}

/// Selects the window of `processed` rows and builds its dataset.
pub fn prepare(processed: &[Row], config: WindowConfig) -> Result<Prepared, PipelineError> {
    let window = window::select(processed, config.min_minutes, config.max_minutes)?;
    let series = window::glucose_series(&window.rows);
    let dataset = Dataset::build(&series)?;
    let warnings = FormattedWarnings::from_flags(window.flags, &window.notes);
    Ok(Prepared {
        window,
        series,
        dataset,
        warnings,
    })
}
