//! The engine: what the front ends call. Owns turning prepared windows into
//! model inputs and forecasts back into mg/dL (more to come: the handle,
//! scheduling, the cache and plots).

pub mod forecast;
pub mod scheduler;
