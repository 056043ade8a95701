//! The native API's one error type and envelope.
//!
//! Every error a client can cause on `/v1` — a rejected JSON body or query string, a wrong content
//! type, an oversized body, a store error — becomes an [`ApiError`] and is rendered as
//! `{"error":{"code","message","details"}}`, the code and status coming from catalog-domain's table.

use crate::views::{ErrorBody, ErrorEnvelope};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use catalog_domain::ErrorCode;
use catalog_store::StoreError;
use serde_json::Value;

/// An error answered to a native API client.
#[derive(Debug)]
pub struct ApiError {
    /// The stable code; also decides the HTTP status.
    pub code: ErrorCode,
    /// A sentence for the human reading the response.
    pub message: String,
    /// Structured detail (per-item problems, the offending parameter), when there is any.
    pub details: Option<Value>,
    /// Seconds for `Retry-After` on 429; on 503 and 507 the code's own (see
    /// [`ErrorCode::retry_after_secs`]) when this is `None`.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: None, retry_after_secs: None }
    }

    /// The same error with structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The HTTP status of this error's code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let code = error.code();
        // The cause may name tables or hosts: log it, and tell the client only what happened.
        let message = match code {
            ErrorCode::Internal => "internal error",
            ErrorCode::Unavailable => "service unavailable; retry after the Retry-After seconds",
            ErrorCode::InsufficientStorage => "the database has no room left; retry after the Retry-After seconds",
            // The client's errors, and refusals: their own text says what happened.
            ErrorCode::InvalidJson
            | ErrorCode::InvalidQuery
            | ErrorCode::InvalidRequest
            | ErrorCode::InvalidItemId
            | ErrorCode::InvalidItem
            | ErrorCode::InvalidCatalogName
            | ErrorCode::TooManyItems
            | ErrorCode::NoValidItems
            | ErrorCode::ItemRefused
            | ErrorCode::Unauthenticated
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::CatalogNotFound
            | ErrorCode::ItemNotFound
            | ErrorCode::JobNotFound
            | ErrorCode::WebhookNotFound
            | ErrorCode::DeliveryNotFound
            | ErrorCode::ProjectNotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::CatalogAlreadyExists
            | ErrorCode::ProjectAlreadyExists
            | ErrorCode::AlreadyExists
            | ErrorCode::IdempotencyKeyReused
            | ErrorCode::JobNotCancellable
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::RateLimited
            | ErrorCode::TooManyJobsInProgress
            | ErrorCode::QueueFull => {
                let retry_after_secs = queue_retry_after(&error);
                return ApiError { retry_after_secs, ..ApiError::new(code, error.to_string()) };
            }
        };
        if code.is_storage_trouble() {
            tracing::warn!(%error, "storage trouble");
        } else {
            tracing::error!(%error, "store error");
        }
        ApiError::new(code, message)
    }
}

/// The `Retry-After` seconds of a `queue_full` refusal (computed by the store from the drain rate).
pub(crate) fn queue_retry_after(error: &StoreError) -> Option<u64> {
    match error {
        StoreError::QueueFull { retry_after_secs, .. } => Some(*retry_after_secs),
        _ => None,
    }
}

/// The `Retry-After` seconds of a storage-trouble status (503, 507) from the one error table, for a
/// facade's envelope that keeps only the status.
pub(crate) fn storage_retry_after(status: StatusCode) -> Option<u64> {
    ErrorCode::ALL
        .iter()
        .find(|code| code.is_storage_trouble() && code.http_status() == status.as_u16())
        .and_then(|code| code.retry_after_secs())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorEnvelope {
            error: ErrorBody { code: self.code.as_str().to_owned(), message: self.message, details: self.details },
        };
        let mut response = (status, axum::Json(body)).into_response();
        // Storage trouble always says when to come back, whoever built the error.
        if let Some(secs) = self.retry_after_secs.or(self.code.retry_after_secs()) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
