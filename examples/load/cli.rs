//! Command-line arguments, and the scenario and protocol names they take.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Load generator for a running glurpc server (REST and gRPC).
#[derive(Debug, Parser)]
#[command(name = "load")]
pub(crate) struct Args {
    /// REST base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub(crate) rest: String,
    /// gRPC URL.
    #[arg(long, default_value = "http://127.0.0.1:7003")]
    pub(crate) grpc: String,
    /// The CGM file uploaded (any format the server reads).
    #[arg(long, default_value = "tests/data/real/dexcom_us_14d.csv")]
    pub(crate) file: PathBuf,
    /// Concurrent clients per protocol (each with its own connection).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) connections: u32,
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) duration: u64,
    /// Scenarios to run (default: all); repeat the flag or separate with commas.
    #[arg(long, value_enum, num_args = 1.., value_delimiter = ',')]
    pub(crate) scenario: Vec<Scenario>,
    /// Protocols to drive.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Both)]
    pub(crate) protocol: ProtocolArg,
    /// With both protocols, run them one after the other (each for the
    /// duration) instead of at the same time.
    #[arg(long)]
    pub(crate) sequential: bool,
    /// Longest time for the cached-plot warm-up (processing and plotting
    /// every window once), seconds.
    #[arg(long, default_value_t = 120)]
    pub(crate) warmup_timeout: u64,
    /// API key sent as `X-API-Key` / `x-api-key`.
    #[arg(long, env = "GLURPC_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub(crate) enum Scenario {
    Health,
    CachedPlot,
    QuickPlotWarm,
    QuickPlotCold,
}

impl Scenario {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::CachedPlot => "cached-plot",
            Scenario::QuickPlotWarm => "quick-plot-warm",
            Scenario::QuickPlotCold => "quick-plot-cold",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProtocolArg {
    Rest,
    Grpc,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Rest,
    Grpc,
}

impl Protocol {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Protocol::Rest => "rest",
            Protocol::Grpc => "grpc",
        }
    }
}
