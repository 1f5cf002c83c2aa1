//! The front ends' error type, and its two mappings: to an HTTP status with
//! the reference's `{"detail": ...}` text, and to a gRPC status. Each is
//! written once, here; handlers never choose a status themselves.

use tonic::Code;

use crate::engine::EngineError;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The wait for a result passed the configured inference timeout.
    #[error("Request timeout")]
    Timeout,
    /// Protected endpoint, no key given.
    #[error("API key required")]
    MissingKey,
    /// Protected endpoint, a key that is not in the key file.
    #[error("Invalid API key")]
    InvalidKey,
    /// An argument the API layer rejects (an unknown format, a missing field).
    #[error("{0}")]
    Invalid(String),
    /// A cache action that needs an admin key (`GLURPC_ADMIN_KEYS_FILE`).
    #[error("{0}")]
    AdminRequired(String),
}

/// What an HTTP response for an error carries.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpFailure {
    /// The status code.
    pub status: u16,
    /// The `detail` text.
    pub detail: String,
    /// `Retry-After` seconds, for 503.
    pub retry_after_s: Option<u32>,
}

/// The text every unexpected failure shows (the details are logged).
const INTERNAL: &str = "Internal server error";

impl ApiError {
    /// The message of an error the reference reports inside a successful
    /// response (`error` field) rather than as a status: an upload that
    /// cannot be used.
    pub fn in_body(&self) -> Option<String> {
        match self {
            ApiError::Engine(EngineError::Input(m)) => Some(m.clone()),
            _ => None,
        }
    }

    /// The HTTP status and detail.
    pub fn http(&self) -> HttpFailure {
        let (status, detail, retry_after_s) = match self {
            ApiError::Engine(e) => match e {
                EngineError::Input(m) | EngineError::BadRequest(m) => (400, m.clone(), None),
                EngineError::BadIndex { .. } => (400, e.to_string(), None),
                EngineError::TooLarge { .. } | EngineError::ResponseTooLarge { .. } => {
                    (413, e.to_string(), None)
                }
                EngineError::NotFound => (404, e.to_string(), None),
                EngineError::Overloaded { retry_after_s } | EngineError::Busy { retry_after_s } => {
                    (503, e.to_string(), Some(*retry_after_s))
                }
                EngineError::ShuttingDown => (503, "Service is shutting down".to_string(), Some(5)),
                EngineError::SharedStore(_) => {
                    (503, "Shared store unavailable".to_string(), Some(5))
                }
                EngineError::Plot(_) | EngineError::Inference(_) | EngineError::Internal(_) => {
                    (500, INTERNAL.to_string(), None)
                }
            },
            ApiError::Timeout => (504, self.to_string(), None),
            ApiError::MissingKey => (401, self.to_string(), None),
            ApiError::InvalidKey => (403, self.to_string(), None),
            ApiError::Invalid(m) => (400, m.clone(), None),
            ApiError::AdminRequired(m) => (403, m.clone(), None),
        };
        HttpFailure {
            status,
            detail,
            retry_after_s,
        }
    }

    /// The gRPC status.
    pub fn grpc(&self) -> tonic::Status {
        let (code, msg) = match self {
            ApiError::Engine(e) => match e {
                EngineError::Input(m) | EngineError::BadRequest(m) => {
                    (Code::InvalidArgument, m.clone())
                }
                EngineError::BadIndex { .. } => (Code::InvalidArgument, e.to_string()),
                EngineError::TooLarge { .. }
                | EngineError::ResponseTooLarge { .. }
                | EngineError::Overloaded { .. }
                | EngineError::Busy { .. } => (Code::ResourceExhausted, e.to_string()),
                EngineError::NotFound => (Code::NotFound, e.to_string()),
                EngineError::ShuttingDown => (Code::Unavailable, "Service is shutting down".into()),
                EngineError::SharedStore(_) => {
                    (Code::Unavailable, "Shared store unavailable".into())
                }
                EngineError::Plot(_) | EngineError::Inference(_) | EngineError::Internal(_) => {
                    (Code::Internal, INTERNAL.to_string())
                }
            },
            ApiError::Timeout => (Code::DeadlineExceeded, self.to_string()),
            ApiError::MissingKey => (
                Code::Unauthenticated,
                "API key required in metadata (x-api-key)".to_string(),
            ),
            ApiError::InvalidKey => (Code::PermissionDenied, self.to_string()),
            ApiError::Invalid(m) => (Code::InvalidArgument, m.clone()),
            ApiError::AdminRequired(m) => (Code::PermissionDenied, m.clone()),
        };
        tonic::Status::new(code, msg)
    }

    /// Logs a failure that hides its cause from the client.
    pub fn log(&self) {
        match self {
            ApiError::Engine(
                e @ (EngineError::Plot(_) | EngineError::Inference(_) | EngineError::Internal(_)),
            ) => tracing::error!(error = %e, "request failed"),
            other => tracing::debug!(error = %other, "request refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_reference() {
        let not_found = ApiError::from(EngineError::NotFound);
        assert_eq!(not_found.http().status, 404);
        assert_eq!(not_found.http().detail, "Handle not found or expired");
        assert_eq!(not_found.grpc().code(), Code::NotFound);
        let busy = ApiError::from(EngineError::Overloaded { retry_after_s: 30 });
        assert_eq!(busy.http().retry_after_s, Some(30));
        assert_eq!(busy.grpc().code(), Code::ResourceExhausted);
        let idx = ApiError::from(EngineError::BadIndex { index: -5, last: 1 });
        assert_eq!(
            idx.http().detail,
            "Index -5 out of range. Valid range: -1 to 0"
        );
        assert_eq!(idx.grpc().code(), Code::InvalidArgument);
        let internal = ApiError::from(EngineError::Internal("secret path".into()));
        assert_eq!(internal.http().detail, "Internal server error");
        assert_eq!(internal.grpc().message(), "Internal server error");
        assert_eq!(ApiError::MissingKey.http().status, 401);
        assert_eq!(ApiError::InvalidKey.grpc().code(), Code::PermissionDenied);
        assert_eq!(ApiError::Timeout.http().status, 504);
        let big = ApiError::from(EngineError::TooLarge { limit: 10 });
        assert_eq!(
            (big.http().status, big.grpc().code()),
            (413, Code::ResourceExhausted)
        );
        assert_eq!(
            ApiError::from(EngineError::Input("bad".into()))
                .in_body()
                .as_deref(),
            Some("bad")
        );
        assert_eq!(not_found.in_body(), None);
    }
}
