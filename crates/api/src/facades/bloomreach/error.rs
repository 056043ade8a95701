//! Bloomreach's envelope, `{"errors":{"_global":[...]},"success":false}`, and its words for
//! catalogd's codes: an exhaustive `match` on the code, so a new code is a compile error here.

use crate::auth::insert_ratelimit_headers;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalog_domain::ids::BLOOMREACH_NOT_FOUND;
use catalog_domain::rate::RateDecision;
use catalog_domain::ErrorCode;
use catalog_store::StoreError;
use serde_json::json;

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
        Failure::new(StatusCode::NOT_FOUND, BLOOMREACH_NOT_FOUND)
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
            StoreError::Batch(problem) => Failure::bad_request(problem.bloomreach_message()),
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
        | ErrorCode::IdempotencyKeyReused
        | ErrorCode::JobNotCancellable => Failure::bad_request(error.to_string()),
        ErrorCode::Unauthenticated => Failure::new(status, "Invalid API key"),
        ErrorCode::Forbidden => Failure::new(status, "The API key lacks the permission for this action"),
        ErrorCode::NotFound
        | ErrorCode::CatalogNotFound
        | ErrorCode::ItemNotFound
        | ErrorCode::JobNotFound
        | ErrorCode::ProjectNotFound => Failure::not_found(),
        ErrorCode::MethodNotAllowed => Failure::method_not_allowed(),
        ErrorCode::PayloadTooLarge => Failure::bad_request(catalog_domain::ids::BLOOMREACH_PAYLOAD_TOO_LARGE),
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
