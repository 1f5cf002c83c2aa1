//! The command line: `glurpc convert` and `glurpc inspect` (ingestion),
//! `glurpc model` (weights), `glurpc predict` (one forecast without a
//! server), `glurpc serve` (the service), `glurpc train`, `glurpc
//! evaluate` and `glurpc calibrate` (the model's training, accuracy and
//! per-step band calibration). Every option is also an environment variable.

mod calibrate;
pub mod exit;
mod model_cmd;
mod parity;
mod predict;
mod serve;
mod train;

pub use calibrate::CalibrateArgs;
pub use model_cmd::ModelCommand;
pub use predict::{ModelArgs, PredictArgs};
pub use serve::ServeArgs;
pub use train::{EvaluateArgs, TrainArgs};

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::formats::{self, ParseOptions, Parsed, table::format_millis};
use crate::pipeline::{self, WindowConfig};

/// glurpc: glucose forecasting from CGM exports.
#[derive(Debug, Parser)]
#[command(name = "glurpc", version, about)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert a CGM export to the unified CSV (cgm-format 0.13.0 schema).
    Convert(ConvertArgs),
    /// Describe a CGM export: detected format, rows per event type, time span, handle.
    Inspect(InspectArgs),
    /// Model weights: convert a .pth, describe a model.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Forecast one window of a CGM export and write its plot (no server).
    Predict(Box<PredictArgs>),
    /// Run the service: REST (port 8000) and gRPC (port 7003) over one engine.
    Serve(Box<ServeArgs>),
    /// Train a Gluformer on CGM files, with early stopping on other people's data.
    Train(Box<TrainArgs>),
    /// Score a model on held-out CGM files: RMSE, MAE and band coverage against baselines.
    Evaluate(Box<EvaluateArgs>),
    /// Fit per-step band factors on held-out people so the 90% band holds 90% at every step.
    Calibrate(Box<CalibrateArgs>),
}

/// Options shared by commands that read uploads.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Input file(s); `-` reads standard input. Several files only for Nightscout
    /// JSON (entries.json plus treatments.json). gzip is detected automatically.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Largest accepted upload in bytes (after decompression).
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = formats::decode::DEFAULT_MAX_BYTES)]
    pub max_upload_bytes: usize,
}

/// `glurpc convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Input selection.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output file (default: standard output).
    #[arg(short, long, env = "GLURPC_CONVERT_OUTPUT")]
    pub output: Option<PathBuf>,
}

/// `glurpc inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Input selection.
    #[command(flatten)]
    pub input: InputArgs,
    /// Print one JSON object instead of text.
    #[arg(long, env = "GLURPC_INSPECT_JSON")]
    pub json: bool,
}

impl InputArgs {
    /// Reads the input files (or standard input).
    pub fn read(&self) -> Result<Vec<Vec<u8>>> {
        let mut blobs = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let mut bytes = Vec::new();
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("reading standard input")?;
            } else {
                bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            }
            blobs.push(bytes);
        }
        Ok(blobs)
    }

    fn parse(&self) -> Result<Parsed> {
        let blobs = self.read()?;
        let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let opts = ParseOptions {
            max_bytes: self.max_upload_bytes,
        };
        Ok(formats::parse_uploads(&refs, &opts)?)
    }
}

/// What `inspect --json` prints.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Detected format id.
    pub format: &'static str,
    /// Content handle.
    pub handle: String,
    /// Rows in the unified table.
    pub rows: usize,
    /// Rows per event type.
    pub event_counts: std::collections::BTreeMap<String, usize>,
    /// First timestamp (ISO, seconds).
    pub first: Option<String>,
    /// Last timestamp (ISO, seconds).
    pub last: Option<String>,
    /// Number of sequences (runs without gaps over 15 minutes).
    pub sequences: usize,
    /// The model windows: `full` (540-1080 min) and `quick` (540 min).
    pub windows: Windows,
}

/// The two windows of `inspect`.
#[derive(Debug, Serialize)]
pub struct Windows {
    /// The `/process_unified` window.
    pub full: WindowInfo,
    /// The `/quick_plot` window.
    pub quick: WindowInfo,
}

/// One window's summary, or why it cannot be formed.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum WindowInfo {
    /// The window was formed.
    Ok {
        /// First time in the window (ISO, seconds).
        first: String,
        /// Last time in the window.
        last: String,
        /// Grid points of the glucose series (L).
        rows: usize,
        /// Model windows (N = L - 107).
        samples: usize,
        /// `ProcessingWarning` bits.
        warning_flags: i64,
        /// Warning messages, in gluRPC's order.
        warnings: Vec<String>,
    },
    /// The window could not be formed.
    Err {
        /// The reason.
        error: String,
    },
}

fn iso(t: i64) -> String {
    format_millis(t)[..19].to_string()
}

fn window_info(processed: &[formats::Row], config: WindowConfig) -> WindowInfo {
    match pipeline::prepare(processed, config) {
        Ok(p) => {
            let times = p.window.rows.iter().filter_map(|r| r.datetime);
            let (lo, hi) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
            WindowInfo::Ok {
                first: iso(lo),
                last: iso(hi),
                rows: p.dataset.points(),
                samples: p.dataset.len(),
                warning_flags: p.window.flags,
                warnings: p.warnings.messages,
            }
        }
        Err(e) => WindowInfo::Err {
            error: e.to_string(),
        },
    }
}

impl Inspection {
    /// Summarises a parsed upload.
    pub fn of(p: &Parsed) -> Self {
        let range = p.table.time_range();
        let processed = pipeline::process(&p.table);
        let mut seqs: Vec<i64> = processed
            .iter()
            .filter_map(|r| r.sequence_id)
            .filter(|s| *s > 0)
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        Inspection {
            format: p.format.id(),
            handle: p.handle.clone(),
            rows: p.table.len(),
            event_counts: p.table.event_counts(),
            first: range.map(|r| iso(r.0)),
            last: range.map(|r| iso(r.1)),
            sequences: seqs.len(),
            windows: Windows {
                full: window_info(&processed, WindowConfig::FULL),
                quick: window_info(&processed, WindowConfig::QUICK),
            },
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Model(cmd) => model_cmd::run(cmd)?,
        Command::Predict(args) => predict::run(*args)?,
        Command::Serve(args) => serve::run(*args)?,
        Command::Train(args) => train::run_train(*args)?,
        Command::Evaluate(args) => train::run_evaluate(*args)?,
        Command::Calibrate(args) => calibrate::run(*args)?,
        Command::Convert(args) => {
            let parsed = args.input.parse()?;
            match &args.output {
                Some(path) => std::fs::write(path, parsed.csv.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().lock().write_all(parsed.csv.as_bytes())?,
            }
        }
        Command::Inspect(args) => {
            let parsed = args.input.parse()?;
            let info = Inspection::of(&parsed);
            let mut out = std::io::stdout().lock();
            if args.json {
                serde_json::to_writer_pretty(&mut out, &info)?;
                writeln!(out)?;
            } else {
                writeln!(out, "format:  {}", info.format)?;
                writeln!(out, "handle:  {}", info.handle)?;
                writeln!(out, "rows:    {}", info.rows)?;
                if let (Some(a), Some(b)) = (&info.first, &info.last) {
                    writeln!(out, "span:    {a} to {b}")?;
                }
                writeln!(out, "events:")?;
                for (k, v) in &info.event_counts {
                    writeln!(out, "  {k:<9} {v}")?;
                }
                writeln!(out, "sequences: {}", info.sequences)?;
                for (name, w) in [("full", &info.windows.full), ("quick", &info.windows.quick)] {
                    match w {
                        WindowInfo::Ok {
                            first,
                            last,
                            rows,
                            samples,
                            warning_flags,
                            warnings,
                        } => {
                            writeln!(
                                out,
                                "window {name}: {first} to {last}, {rows} points, {samples} samples, warning flags {warning_flags}"
                            )?;
                            for m in warnings {
                                writeln!(out, "  {m}")?;
                            }
                        }
                        WindowInfo::Err { error } => writeln!(out, "window {name}: {error}")?,
                    }
                }
            }
        }
    }
    Ok(())
}
