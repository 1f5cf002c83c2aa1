//! The engine: what the front ends call. Owns the uploads, the per-window
//! forecast jobs and their scheduling, the model thread, the forecast and
//! plot caches in memory and on disk, and turning prepared windows into model
//! inputs and forecasts back into mg/dL and plots.

pub mod admission;
pub mod cluster;
pub mod config;
pub mod core;
pub mod error;
pub mod forecast;
pub mod info;
pub mod manage;
pub mod persist;
pub mod plots;
pub mod scheduler;
mod state;
pub mod stats;
pub mod store;
pub mod stream;
pub mod upload;
pub mod worker;

pub use self::core::{Engine, EngineConfig, ProcessOptions, Processed};
pub use error::EngineError;
pub use forecast::{JobKey, Target, WindowForecast, WindowKey};
pub use manage::{CacheReport, CacheStats};
pub use plots::PlotBytes;
pub use stats::HealthSnapshot;
pub use stream::StreamedWindow;
pub use upload::{Upload, WindowKind};
