//! glurpc: a glucose-forecasting service. This crate holds the library (CGM
//! ingestion, pipeline, model, engine, plots and the REST and gRPC front
//! ends) behind the
//! `glurpc` binary.
#![warn(missing_docs)]

pub mod api;
pub mod bridge;
pub mod cache;
pub mod cli;
pub mod engine;
pub mod formats;
pub mod model;
pub mod pipeline;
pub mod plot;
#[cfg(feature = "otlp")]
pub mod telemetry;
pub mod train;

pub mod proto {
    //! Generated gRPC types for package `glurpc` (wire-compatible with gluRPC 0.6.3).
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("glurpc");

    /// The encoded file descriptor set of `proto/glurpc.proto` (for reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("glurpc_descriptor");
}
