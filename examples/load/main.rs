//! Load generator for a running glurpc server: drives REST and gRPC at the
//! same time with concurrent clients for a bounded time, and reports per
//! scenario and protocol the requests, errors, throughput and latency
//! percentiles (p50, p90, p99, max).
//!
//! Start the server first (`cargo run -- serve --model tests/data/model/small`),
//! then `tools/load --duration 10` (or `cargo run --example load -- --help`).
//!
//! Scenarios (run in this order, whatever the order on the command line):
//! - `health`: `GET /health` and `CheckHealth`.
//! - `cached-plot`: the file is processed once and every window plotted once
//!   (the warm-up, not measured); then each client cycles through the
//!   windows with `/draw_a_plot` / `DrawPlot`, all answered from the cache.
//! - `quick-plot-warm`: `/quick_plot` / `QuickPlot` of the same file again and
//!   again (cached after the first request).
//! - `quick-plot-cold`: every request a new upload: the file is converted to
//!   the unified CSV once, and each request changes the glucose values of
//!   its last four readings to a combination no other request of the run
//!   uses, so that every request has a new handle and runs the model. It
//!   also makes the server queue the whole dataset's windows in the
//!   background, which is why it runs last.
//!
//! Bounds: every request times out after 30 s; a scenario's clients stop
//! starting requests after `--duration` seconds and are cut off 30 s later at
//! most; the whole run (warm-up included) ends by the sum of the scenario
//! durations plus `--warmup-timeout` (with `cached-plot`) plus 30 s. Ctrl-C
//! stops the run and prints what was measured so far (twice: exit at once).
//!
//! Latency percentiles are over the successful requests; errors are non-2xx
//! answers, gRPC statuses other than OK, an `error` in an answer's body,
//! timeouts and transport failures.

mod cli;
mod cold;
mod conn;
mod phase;
mod report;
mod setup;
mod work;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use clap::Parser;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};
use tonic::metadata::AsciiMetadataValue;

use crate::cli::{Args, Protocol, ProtocolArg, Scenario};
use crate::cold::{COLD_BASE, COLD_ROWS, ColdTemplate};
use crate::conn::{Conn, Conns, REQUEST_TIMEOUT, Target, grpc_client, rest_client};
use crate::phase::{GRACE, Stop, run_phase};
use crate::report::{ScenarioNote, report_json, report_table};
use crate::setup::{convert, setup, warm_up};
use crate::work::{Work, quick_plot_body};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> Result<()> {
    let mut scenarios = if args.scenario.is_empty() {
        vec![
            Scenario::Health,
            Scenario::CachedPlot,
            Scenario::QuickPlotWarm,
            Scenario::QuickPlotCold,
        ]
    } else {
        args.scenario.clone()
    };
    scenarios.sort();
    scenarios.dedup();
    let protocols: Vec<Protocol> = match args.protocol {
        ProtocolArg::Rest => vec![Protocol::Rest],
        ProtocolArg::Grpc => vec![Protocol::Grpc],
        ProtocolArg::Both => vec![Protocol::Rest, Protocol::Grpc],
    };
    let phases: Vec<Vec<Protocol>> = if args.sequential {
        protocols.iter().map(|p| vec![*p]).collect()
    } else {
        vec![protocols.clone()]
    };
    // A relative path not found here is tried from the repository root.
    if args.file.is_relative() && !args.file.exists() {
        let at_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&args.file);
        if at_root.exists() {
            args.file = at_root;
        }
    }
    let raw =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let raw_b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let grpc_key = match &args.api_key {
        Some(k) => Some(
            AsciiMetadataValue::try_from(k.as_str())
                .context("the API key is not valid metadata")?,
        ),
        None => None,
    };
    let target = Arc::new(Target {
        rest: args.rest.trim_end_matches('/').to_string(),
        rest_key: args.api_key.clone(),
        grpc_key,
    });

    // Connections, and a first request on each protocol to fail early.
    let n = args.connections;
    let mut conns = Conns {
        rest: Vec::new(),
        grpc: Vec::new(),
    };
    if protocols.contains(&Protocol::Rest) {
        for _ in 0..n {
            conns.rest.push(Conn::Rest(rest_client(n)?));
        }
        let mut c = conns.rest[0].clone();
        timeout(REQUEST_TIMEOUT, Work::Health.call(&target, &mut c, 0, 0))
            .await
            .map_err(|_| anyhow!("timed out"))
            .and_then(|r| r.map_err(|e| anyhow!(e)))
            .with_context(|| {
                format!("GET {}/health failed (is the server running?)", target.rest)
            })?;
    }
    if protocols.contains(&Protocol::Grpc) {
        let made = futures_util::future::join_all((0..n).map(|_| grpc_client(&args.grpc))).await;
        for c in made {
            conns.grpc.push(Conn::Grpc(c?));
        }
    }

    // The run's bound, and Ctrl-C.
    let duration = Duration::from_secs(args.duration);
    let warmup_limit = Duration::from_secs(args.warmup_timeout);
    let mut budget = duration * (scenarios.len() * phases.len()) as u32 + GRACE;
    if scenarios.contains(&Scenario::CachedPlot) {
        budget += warmup_limit;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Stop {
        interrupted: stop_rx,
        deadline: Instant::now() + budget,
    };
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "interrupted: stopping, partial results follow (Ctrl-C again to quit at once)"
            );
            stop_tx.send_replace(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let mut outcomes = Vec::new();
    let mut notes = Vec::new();
    let mut warmup = None;
    let first = protocols[0];
    for &scenario in &scenarios {
        if stop.interrupted() {
            break;
        }
        if Instant::now() >= stop.deadline {
            notes.push(ScenarioNote {
                scenario,
                note: "skipped: the run's time bound was reached".into(),
            });
            continue;
        }
        if !args.json {
            eprintln!("running {} ...", scenario.name());
        }
        let work = match scenario {
            Scenario::Health => Work::Health,
            Scenario::QuickPlotWarm => Work::QuickWarm {
                rest_body: quick_plot_body(&raw_b64),
                b64: raw_b64.clone(),
            },
            Scenario::CachedPlot => {
                match warm_up(&target, &conns, first, &raw_b64, warmup_limit, &stop).await {
                    Ok((handle, total, w)) => {
                        if !w.complete {
                            notes.push(ScenarioNote {
                            scenario,
                            note: format!(
                                "warm-up incomplete: {} of {} windows plotted; the rest may be computed during the run",
                                w.plotted, w.windows
                            ),
                        });
                        }
                        warmup = Some(w);
                        Work::Plot { handle, total }
                    }
                    Err(e) => {
                        notes.push(ScenarioNote {
                            scenario,
                            note: format!("skipped: {e:#}"),
                        });
                        continue;
                    }
                }
            }
            Scenario::QuickPlotCold => {
                let mut c = conns.of(first)[0].clone();
                let made = setup(
                    &stop,
                    "converting the file to the unified CSV",
                    convert(&target, &mut c, &raw),
                )
                .await
                .and_then(|csv| ColdTemplate::new(&csv));
                match made {
                    Ok(template) => {
                        // A random start, so that a second run against the same
                        // server (whose cache may persist) uploads new files too.
                        let space = COLD_BASE.pow(COLD_ROWS);
                        let seed = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map(|d| d.as_nanos() as u64)
                            .unwrap_or(0);
                        Work::QuickCold {
                            template,
                            next: AtomicU64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) % space),
                        }
                    }
                    Err(e) => {
                        notes.push(ScenarioNote {
                            scenario,
                            note: format!("skipped: {e:#}"),
                        });
                        continue;
                    }
                }
            }
        };
        let work = Arc::new(work);
        for phase in &phases {
            if stop.interrupted() || Instant::now() >= stop.deadline {
                break;
            }
            let with_work: Vec<(Protocol, Arc<Work>)> =
                phase.iter().map(|p| (*p, work.clone())).collect();
            outcomes
                .extend(run_phase(scenario, &with_work, &conns, &target, duration, &stop).await);
        }
    }

    let interrupted = stop.interrupted();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(
                &args,
                &outcomes,
                &notes,
                warmup.as_ref(),
                interrupted
            ))?
        );
    } else {
        print!(
            "{}",
            report_table(&args, &outcomes, &notes, warmup.as_ref(), interrupted)
        );
    }
    Ok(())
}
