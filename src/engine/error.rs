//! The engine's error type: what the front ends map, once each, to HTTP and
//! gRPC statuses.

use crate::formats::FormatError;
use crate::pipeline::PipelineError;

use super::scheduler::Refused;

/// Errors of the engine layer. Cloneable: one job's failure reaches every waiter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The upload cannot be used (format, too short, no glucose...): the
    /// layer's own message.
    #[error("{0}")]
    Input(String),
    /// The upload is larger than the configured limit.
    #[error("Upload too large: more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Unknown handle.
    #[error("Handle not found or expired")]
    NotFound,
    /// An index outside the dataset.
    #[error("Index {index} out of range. Valid range: -{last} to 0")]
    BadIndex {
        /// The index asked for.
        index: i64,
        /// N - 1.
        last: usize,
    },
    /// The queue is full: retry later.
    #[error("Service overloaded. Queue is full. Please retry later.")]
    Overloaded {
        /// Suggested wait before retrying, in seconds.
        retry_after_s: u32,
    },
    /// The parse budget is spent: too many uploads are being read at once.
    #[error("Too many uploads are being read at once. Please retry later.")]
    Busy {
        /// Suggested wait before retrying, in seconds.
        retry_after_s: u32,
    },
    /// The unified CSV of a conversion would be larger than the server
    /// answers with.
    #[error(
        "The unified CSV of this upload would be {size} bytes, more than the {limit} this server answers with: upload a shorter period"
    )]
    ResponseTooLarge {
        /// The CSV's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The engine is stopping.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The shared store (Redis) cannot be used.
    #[error("shared store: {0}")]
    SharedStore(String),
    /// A request that cannot be served as asked (a missing parameter, an
    /// unknown action): the message says what to change.
    #[error("{0}")]
    BadRequest(String),
    /// A plot could not be drawn.
    #[error("{0}")]
    Plot(String),
    /// The model failed on a batch.
    #[error("inference failed: {0}")]
    Inference(String),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<FormatError> for EngineError {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::TooLarge { limit } => EngineError::TooLarge { limit },
            other => EngineError::Input(other.to_string()),
        }
    }
}

impl From<PipelineError> for EngineError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::BadIndex { index, windows } => EngineError::BadIndex {
                index,
                last: windows.saturating_sub(1),
            },
            other => EngineError::Input(other.to_string()),
        }
    }
}

impl From<Refused> for EngineError {
    fn from(e: Refused) -> Self {
        match e {
            Refused::Overloaded { .. } => EngineError::Overloaded { retry_after_s: 30 },
            Refused::ShuttingDown => EngineError::ShuttingDown,
        }
    }
}
