//! The client's one error type.

use serde_json::Value;
use std::time::Duration;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error envelope (`{"error":{"code","message","details"}}`), or
    /// with an error status and a body that is not one (then `code` is `http_<status>`).
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's stable snake_case code, e.g. `catalog_not_found`.
        code: String,
        /// The server's message.
        message: String,
        /// Structured details, when the server sent any.
        details: Option<Value>,
        /// The `Retry-After` the server asked for (429 and 503).
        retry_after: Option<Duration>,
    },
    /// The request never got an answer: connection refused or reset, timeout, broken body.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered success with a body this client cannot read.
    #[error("unexpected response body (HTTP {status}): {message}")]
    Decode {
        /// The HTTP status.
        status: u16,
        /// What did not parse.
        message: String,
    },
    /// The caller's input was refused before anything was sent (a bad catalog name, a bad URL...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The job did not finish within the time the caller allowed.
    #[error("job {job_id} did not finish in time (last status: {status})")]
    WaitTimeout {
        /// The job waited for.
        job_id: i64,
        /// Its status when the time ran out.
        status: catalog_domain::JobStatus,
    },
}

impl Error {
    /// The server's error code, for [`Error::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The `Retry-After` the server asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when the request certainly changed nothing and may be repeated as is: a 429 (a
    /// limited request creates nothing) or a connection that could not be opened.
    pub fn is_retryable_unsent(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 429,
            Error::Transport(error) => error.is_connect(),
            _ => false,
        }
    }

    /// True when repeating an idempotent request may succeed: 429, 503, or any failure to get an
    /// answer (the request may or may not have reached the server, which an idempotent request
    /// makes harmless).
    pub fn is_retryable_idempotent(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 429 || *status == 503,
            Error::Transport(error) => {
                error.is_connect() || error.is_timeout() || error.is_request() || error.is_body()
            }
            _ => false,
        }
    }
}

/// The result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
