//! The `glurpc` binary: parses the command line, sets up logging and runs
//! the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = glurpc::cli::Cli::parse();
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
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
