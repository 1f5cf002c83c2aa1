//! glurpc: a glucose-forecasting service. This crate holds the library (CGM
//! ingestion, and later the pipeline, model, engine and front ends) behind the
//! `glurpc` binary.
#![warn(missing_docs)]

pub mod cache;
pub mod cli;
pub mod engine;
pub mod formats;
pub mod model;
pub mod pipeline;
pub mod plot;

pub mod proto {
    //! Generated gRPC types for package `glurpc` (wire-compatible with gluRPC 0.6.3).
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("glurpc");
}
