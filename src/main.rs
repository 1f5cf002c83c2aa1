//! The `glurpc` binary: parses the command line, sets up logging and runs
//! the command.

use clap::Parser;
use glurpc::cli::exit;

fn main() -> std::process::ExitCode {
    let cli = match glurpc::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version print to stdout and succeed; usage errors are 64.
            let _ = e.print();
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
    let json = std::env::var("GLURPC_LOG_JSON")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    match glurpc::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of our output went away (`glurpc convert F | head`): done.
        Err(e) if exit::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", exit::message(&e));
            std::process::ExitCode::from(exit::code(&e))
        }
    }
}
