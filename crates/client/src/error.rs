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
    #[error("{}", transport_message(.0))]
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

/// What a user can act on: the server's address and what happened, with the root cause.
fn transport_message(error: &reqwest::Error) -> String {
    let url = error.url().map_or_else(
        || "the server".to_owned(),
        |url| {
            let mut base = url.clone();
            base.set_path("");
            base.set_query(None);
            base.to_string().trim_end_matches('/').to_owned()
        },
    );
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let cause = if cause.is_empty() { error.to_string() } else { cause };
    if error.is_connect() {
        format!("cannot connect to {url}: {cause} (is catalogd running there? set CATALOGD_URL or --url)")
    } else if error.is_timeout() {
        format!("no answer from {url} in time: {cause}")
    } else {
        format!("the connection to {url} failed: {cause}")
    }
}

impl Error {
    /// True when the connection to the server could not be opened (nothing was sent).
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Transport(error) if error.is_connect())
    }

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
