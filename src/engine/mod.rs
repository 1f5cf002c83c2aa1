//! The engine: what the front ends call. Owns the uploads, the per-window
//! forecast jobs and their scheduling, the model thread, and turning
//! prepared windows into model inputs and forecasts back into mg/dL.

pub mod core;
pub mod error;
pub mod forecast;
pub mod scheduler;
pub mod stats;

pub use self::core::{
    Engine, EngineConfig, Processed, Target, Upload, WindowForecast, WindowKey, WindowKind,
};
pub use error::EngineError;
pub use stats::HealthSnapshot;
