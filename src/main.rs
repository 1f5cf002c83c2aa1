//! The `glurpc` binary: parses the command line, sets up logging and runs
//! the command. Logs go to standard error: plain text (coloured only on a
//! terminal, and never with `NO_COLOR` set), or with `GLURPC_LOG_JSON` one
//! JSON object per line, the event's fields at the top level, a final
//! error included.

use std::io::IsTerminal;

use clap::Parser;
use glurpc::cli::exit;
#[cfg(feature = "otlp")]
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// True when `GLURPC_LOG_JSON` is `true`, `1` or `yes` (any case).
fn json_logs() -> bool {
    std::env::var("GLURPC_LOG_JSON")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Colour only for a person at a terminal who did not ask for none
/// (<https://no-color.org>: `NO_COLOR` set and not empty).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The trace export `glurpc serve --otlp-endpoint` asks for, if it does.
#[cfg(feature = "otlp")]
fn otlp(cli: &glurpc::cli::Cli) -> anyhow::Result<Option<glurpc::telemetry::Telemetry>> {
    match &cli.command {
        glurpc::cli::Command::Serve(args) => args
            .otlp_endpoint
            .as_deref()
            .filter(|e| !e.trim().is_empty())
            .map(|e| glurpc::telemetry::Telemetry::start(e, &args.otlp_service_name))
            .transpose(),
        _ => Ok(None),
    }
}

fn main() -> std::process::ExitCode {
    let cli = match glurpc::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version print to stdout and succeed; usage errors are 64.
            if json_logs() && e.use_stderr() {
                let message = e.render().to_string();
                let line = serde_json::json!({"level": "ERROR", "message": message.trim_end()});
                eprintln!("{line}");
            } else {
                let _ = e.print();
            }
            return match e.use_stderr() {
                true => std::process::ExitCode::from(exit::USAGE),
                false => std::process::ExitCode::SUCCESS,
            };
        }
    };
    // The service reports its own progress; the one-shot commands only warn.
    let default = match cli.command {
        glurpc::cli::Command::Serve(_) => "glurpc=info,warn",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GLURPC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let json = json_logs();
    // Kept to the end of `main`: dropping it sends the last batch of spans.
    #[cfg(feature = "otlp")]
    let telemetry = match otlp(&cli) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", exit::message(&e));
            return std::process::ExitCode::from(exit::USAGE);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let logs = logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish();
        #[cfg(feature = "otlp")]
        let logs = logs.with(telemetry.as_ref().map(|t| t.layer()));
        logs.init();
    } else {
        let logs = logs.with_ansi(colour()).finish();
        #[cfg(feature = "otlp")]
        let logs = logs.with(telemetry.as_ref().map(|t| t.layer()));
        logs.init();
    }
    match glurpc::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of our output went away (`glurpc convert F | head`): done.
        Err(e) if exit::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) if json => {
            let line = serde_json::json!({"level": "ERROR", "message": exit::message(&e)});
            eprintln!("{line}");
            std::process::ExitCode::from(exit::code(&e))
        }
        Err(e) => {
            eprintln!("error: {}", exit::message(&e));
            std::process::ExitCode::from(exit::code(&e))
        }
    }
}
