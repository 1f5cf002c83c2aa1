//! How a command ends: the exit code of an error (sysexits-style, so that
//! scripts can tell a refused input from a missing file or an unreachable
//! network) and its message (each cause once).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success, also when the reader of standard output went away (`glurpc convert F \| head`) |
//! | 1 | anything else (a bug, an inference failure) |
//! | 64 | usage: unknown option, bad value (clap's own message) |
//! | 65 | the input was refused: not a CGM export, too short, implausible, too large; model files that do not fit together |
//! | 66 | an input that does not exist: a file, a model folder, a Hub model missing from the offline cache |
//! | 69 | unavailable: a port already in use, the Hugging Face Hub unreachable, a `--device` that cannot be used (no CUDA in this build, no GPU or driver), `--otlp-endpoint` without the `otlp` feature, Redis (`--redis-url`) unreachable at start |
//! | 74 | I/O: a file that cannot be read or written |

use std::io;

use crate::api::ServeError;
use crate::api::auth::KeyFileError;
use crate::engine::EngineError;
use crate::formats::FormatError;
use crate::model::ModelError;
use crate::pipeline::PipelineError;

/// Usage error (EX_USAGE).
pub const USAGE: u8 = 64;
/// Refused input (EX_DATAERR).
pub const DATA: u8 = 65;
/// An input that does not exist (EX_NOINPUT).
pub const NO_INPUT: u8 = 66;
/// A service or network unavailable (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// I/O error (EX_IOERR).
pub const IO: u8 = 74;
/// Any other failure.
pub const OTHER: u8 = 1;

/// True when `e` is, or was caused by, a closed pipe on output.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The exit code of `e`: the first cause in its chain that says what kind of
/// failure it is.
pub fn code(e: &anyhow::Error) -> u8 {
    for c in e.chain() {
        if c.is::<FormatError>() || c.is::<PipelineError>() {
            return DATA;
        }
        if let Some(e) = c.downcast_ref::<EngineError>() {
            return match e {
                EngineError::SharedStore(_) => UNAVAILABLE,
                EngineError::Input(_)
                | EngineError::TooLarge { .. }
                | EngineError::ResponseTooLarge { .. }
                | EngineError::BadIndex { .. }
                | EngineError::BadRequest(_) => DATA,
                _ => OTHER,
            };
        }
        if let Some(e) = c.downcast_ref::<ModelError>() {
            return match e {
                // No Hub, or no usable GPU (a CPU-only build, no driver).
                ModelError::Hub(_) | ModelError::Device(_) => UNAVAILABLE,
                ModelError::NotFound { .. } => NO_INPUT,
                ModelError::Io(_) => IO,
                _ => DATA,
            };
        }
        if let Some(e) = c.downcast_ref::<ServeError>() {
            return match e {
                ServeError::Bind { .. } | ServeError::Unsupported(_) => UNAVAILABLE,
                _ => OTHER,
            };
        }
        if let Some(e) = c.downcast_ref::<io::Error>() {
            return match e.kind() {
                io::ErrorKind::NotFound => NO_INPUT,
                _ => IO,
            };
        }
        if c.is::<KeyFileError>() {
            return IO;
        }
    }
    OTHER
}

/// The message of `e`: its causes joined by `: `, each said once (a cause
/// whose text the message already holds is left out).
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in e.chain() {
        let text = c.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_said_once() {
        let io = io::Error::new(
            io::ErrorKind::AddrInUse,
            "Address already in use (os error 98)",
        );
        let e = anyhow::Error::from(ServeError::Bind {
            addr: "127.0.0.1:8000".parse().unwrap(),
            source: io,
        });
        assert_eq!(
            message(&e),
            "cannot listen on 127.0.0.1:8000: Address already in use (os error 98)"
        );
        assert_eq!(code(&e), UNAVAILABLE);
        let e = anyhow::Error::from(io::Error::new(io::ErrorKind::BrokenPipe, "Broken pipe"))
            .context("writing the CSV");
        assert!(is_broken_pipe(&e));
        assert_eq!(message(&e), "writing the CSV: Broken pipe");
        assert_eq!(code(&e), IO);
    }
}
