//! Bloomreach's envelope, `{"errors":{"_global":[...]},"success":false}`, and its words for
//! catalogd's codes: an exhaustive `match` on the code, so a new code is a compile error here.

use crate::auth::insert_ratelimit_headers;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalog_domain::rate::RateDecision;
use catalog_domain::ErrorCode;
use catalog_domain::{BatchProblem, IdProblem, Unstorable};
use catalog_store::StoreError;
use serde_json::json;

/// The `_global` message of a body that is not valid JSON.
pub(super) const INVALID_JSON: &str = "Invalid JSON. The payload should be a valid JSON document";
/// The `_global` message of a body that is JSON but not a list.
pub(super) const NOT_A_LIST: &str = "Malformed payload. The payload should be a list of items";
/// The `_global` message of a body over 10 MB.
pub(super) const PAYLOAD_TOO_LARGE: &str = "Payload size exceeded. The limit is 10 MB";
/// The `_global` message of Bloomreach's 404 (an unknown catalog, project or route).
pub(super) const NOT_FOUND: &str = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";

/// The text under `_global` in a per-item failure for an id problem.
pub(super) fn id_problem_message(problem: &IdProblem) -> String {
    match problem {
        IdProblem::Missing => "Missing item id. Item should have an item_id".to_owned(),
        IdProblem::NotAString => "Malformed item id. Item id should be a string".to_owned(),
        IdProblem::Empty => "Invalid item id. Item id should not be empty".to_owned(),
        IdProblem::ContainsSlash => "Invalid item id. Item id should not contain '/'".to_owned(),
        // Bloomreach's rule never yields these; they are worded for completeness.
        IdProblem::TooLong { max, len } => {
            format!("Invalid item id. Item id should be at most {max} characters, got {len}")
        }
        IdProblem::TooManyBytes { max, len } => {
            format!("Invalid item id. Item id should be at most {max} bytes in UTF-8, got {len}")
        }
        IdProblem::InvalidCharacter { ch: '\0' } => {
            "Invalid item id. Item id should not contain the NUL character (U+0000)".to_owned()
        }
        IdProblem::InvalidCharacter { ch } => format!("Invalid item id. Item id should not contain {ch:?}"),
        IdProblem::Unstorable(problem) => unstorable_message(problem),
        IdProblem::Duplicate { first_index } => {
            format!("Duplicate item id. The same item id is at index {first_index}")
        }
    }
}

/// The text under `_global` in a per-item failure for what no backend can store.
fn unstorable_message(problem: &Unstorable) -> String {
    match problem {
        Unstorable::NulInFields { pointer } => {
            format!("Invalid properties. Properties should not contain the NUL character (U+0000), found at {pointer}")
        }
        Unstorable::NulIn { member } => format!("Invalid {member}. It should not contain the NUL character (U+0000)"),
        Unstorable::TooLarge { max, bytes } => {
            format!("Item too large. Properties should be at most {max} bytes as JSON, got {bytes}")
        }
    }
}

/// The text under `_global` of a whole-request 400 for a refused batch.
pub(super) fn batch_message(problem: &BatchProblem) -> String {
    match problem {
        BatchProblem::TooManyItems { max, got } => {
            format!("Too many items. At most {max} item ids are allowed per request, got {got}")
        }
        BatchProblem::Empty => "No items. The payload should list at least one item".to_owned(),
    }
}

/// A whole-request refusal: a status and the `_global` message, with rate-limit headers when a
/// quota was consulted.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) rate: Option<RateDecision>,
    /// Seconds for `Retry-After` of a `queue_full` refusal (a rate limit's come with `rate`).
    pub(super) retry_after: Option<u64>,
}

impl Failure {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure { status, message: message.into(), rate: None, retry_after: None }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn not_found() -> Self {
        Failure::new(StatusCode::NOT_FOUND, NOT_FOUND)
    }

    /// The failure with the quota's headers, when a quota was taken.
    pub(super) fn with_rate(self, decision: Option<RateDecision>) -> Self {
        Failure { rate: self.rate.or(decision), ..self }
    }

    pub(super) fn method_not_allowed() -> Self {
        Failure::new(StatusCode::METHOD_NOT_ALLOWED, "The method is not allowed for the requested URL.")
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({"errors": {"_global": [self.message]}, "success": false});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(decision) = &self.rate {
            insert_ratelimit_headers(response.headers_mut(), decision);
        }
        if let Some(secs) = self.retry_after.or(crate::error::storage_retry_after(self.status)) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::CatalogNotFound(_) => Failure::not_found(),
            StoreError::Batch(problem) => Failure::bad_request(batch_message(&problem)),
            // Worded as Bloomreach's own throttling answer (see `auth::refuse_if_limited`).
            StoreError::QueueFull { retry_after_secs, .. } => Failure {
                retry_after: Some(retry_after_secs),
                ..Failure::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Rate limit exceeded. Retry after {retry_after_secs} seconds"),
                )
            },
            other => code_failure(other.code(), &other),
        }
    }
}

/// A code in Bloomreach's words, for the errors that carry nothing more it would show.
fn code_failure(code: ErrorCode, error: &StoreError) -> Failure {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match code {
        ErrorCode::InvalidJson
        | ErrorCode::InvalidQuery
        | ErrorCode::InvalidRequest
        | ErrorCode::InvalidItemId
        | ErrorCode::InvalidItem
        | ErrorCode::InvalidCatalogName
        | ErrorCode::TooManyItems
        | ErrorCode::NoValidItems
        | ErrorCode::ItemRefused
        | ErrorCode::CatalogAlreadyExists
        | ErrorCode::ProjectAlreadyExists
        | ErrorCode::AlreadyExists
        | ErrorCode::IdempotencyKeyReused
        | ErrorCode::JobNotCancellable => Failure::bad_request(error.to_string()),
        ErrorCode::Unauthenticated => Failure::new(status, "Invalid API key"),
        ErrorCode::Forbidden => Failure::new(status, "The API key lacks the permission for this action"),
        ErrorCode::NotFound
        | ErrorCode::CatalogNotFound
        | ErrorCode::ItemNotFound
        | ErrorCode::JobNotFound
        | ErrorCode::WebhookNotFound
        | ErrorCode::DeliveryNotFound
        | ErrorCode::ProjectNotFound => Failure::not_found(),
        ErrorCode::MethodNotAllowed => Failure::method_not_allowed(),
        ErrorCode::PayloadTooLarge => Failure::bad_request(PAYLOAD_TOO_LARGE),
        ErrorCode::UnsupportedMediaType => {
            Failure::bad_request("Invalid content type. The payload should be sent as application/json")
        }
        ErrorCode::RateLimited | ErrorCode::TooManyJobsInProgress | ErrorCode::QueueFull => {
            Failure::new(status, "Rate limit exceeded. Retry later")
        }
        ErrorCode::Internal => {
            // The cause may name tables or hosts: log it, tell the client only what happened.
            tracing::error!(error = %error, "store error");
            Failure::new(status, "Internal error")
        }
        ErrorCode::Unavailable => {
            tracing::warn!(error = %error, "storage trouble");
            Failure::new(status, "Service unavailable")
        }
        ErrorCode::InsufficientStorage => {
            tracing::warn!(error = %error, "storage trouble");
            Failure::new(status, "Insufficient storage")
        }
    }
}
