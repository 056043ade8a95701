//! Klaviyo's JSON:API error envelope (contracts/klaviyo.md, "Error envelope").
//!
//! Every answer of the facade that is not a success goes through [`KlaviyoError`], so a client
//! (and Klaviyo's SDK, which parses 4XX bodies into its own models) always finds
//! `{"errors":[{"id","status","code","title","detail","source","meta"}]}` with `status` as a number.

use super::render::{uuid_like, VND_API_JSON};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use catalog_domain::rate::RateDecision;
use catalog_domain::ErrorCode;
use catalog_store::StoreError;
use serde_json::{json, Map, Value};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where in the request an error is: a JSON pointer into the body, or a query (or header)
/// parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `source.pointer`, e.g. `/data/attributes/items/data/3/id`.
    Pointer(String),
    /// `source.parameter`, e.g. `filter` or `revision`.
    Parameter(String),
    /// Neither applies (authentication, a missing job).
    None,
}

/// One entry of the `errors` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEntry {
    /// Klaviyo's code, e.g. `invalid`.
    pub code: &'static str,
    /// Klaviyo's fixed title of the code, e.g. `Invalid input.`.
    pub title: &'static str,
    /// What exactly is wrong.
    pub detail: String,
    /// Where.
    pub source: Source,
}

/// A Klaviyo error response: a status and one or more entries (a request with several bad ids
/// gets one entry per id).
#[derive(Debug, Clone)]
pub struct KlaviyoError {
    /// The HTTP status, also rendered as the number `status` of every entry.
    pub status: StatusCode,
    /// The entries.
    pub entries: Vec<ErrorEntry>,
    /// The quota decision to report in `RateLimit-*` (and `Retry-After` on 429) headers.
    pub rate: Option<RateDecision>,
    /// `Retry-After` of a `queue_full` refusal (a rate limit's comes from `rate`).
    pub retry_after: Option<u64>,
}

impl KlaviyoError {
    fn one(status: StatusCode, code: &'static str, title: &'static str, detail: String, source: Source) -> Self {
        KlaviyoError {
            status,
            entries: vec![ErrorEntry { code, title, detail, source }],
            rate: None,
            retry_after: None,
        }
    }

    /// 400 `invalid` about a query (or header) parameter.
    pub fn parameter(name: &str, detail: impl Into<String>) -> Self {
        Self::one(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Invalid input.",
            detail.into(),
            Source::Parameter(name.to_owned()),
        )
    }

    /// 400 `invalid` about a place in the request body.
    pub fn pointer(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::one(StatusCode::BAD_REQUEST, "invalid", "Invalid input.", detail.into(), Source::Pointer(pointer.into()))
    }

    /// 400 `invalid` with one entry per `(pointer, detail)`.
    pub fn pointers(problems: Vec<(String, String)>) -> Self {
        let entries = problems
            .into_iter()
            .map(|(pointer, detail)| ErrorEntry {
                code: "invalid",
                title: "Invalid input.",
                detail,
                source: Source::Pointer(pointer),
            })
            .collect();
        KlaviyoError { status: StatusCode::BAD_REQUEST, entries, rate: None, retry_after: None }
    }

    /// 401 `not_authenticated`: no `Authorization: Klaviyo-API-Key` header.
    pub fn not_authenticated() -> Self {
        Self::one(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.".to_owned(),
            Source::None,
        )
    }

    /// 401 `authentication_failed`: the key is unknown or revoked.
    pub fn authentication_failed() -> Self {
        Self::one(
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
            "Incorrect authentication credentials.",
            "The API key is unknown or has been revoked.".to_owned(),
            Source::None,
        )
    }

    /// 403 `permission_denied`: the key lacks `scope`.
    pub fn permission_denied(scope: &str) -> Self {
        Self::one(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "You do not have permission to perform this action.",
            format!("This API key is missing required scopes: {scope}."),
            Source::None,
        )
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::one(StatusCode::NOT_FOUND, "not_found", "Not found.", detail.into(), Source::None)
    }

    /// 405 on a method the path does not serve.
    pub fn method_not_allowed() -> Self {
        Self::one(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed.",
            "This method is not allowed on this endpoint.".to_owned(),
            Source::None,
        )
    }

    /// 413 for a body over the limit.
    pub fn payload_too_large(max_bytes: usize) -> Self {
        Self::one(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large.",
            format!("The request body is larger than the maximum of {max_bytes} bytes."),
            Source::Pointer("/data".to_owned()),
        )
    }

    /// 415 for a body that is not JSON:API (or plain JSON).
    pub fn unsupported_media_type() -> Self {
        Self::one(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type.",
            "The request body must be sent as application/vnd.api+json (or application/json).".to_owned(),
            Source::None,
        )
    }

    /// 429 `throttled`, with the decision that refused it.
    pub fn throttled(decision: RateDecision) -> Self {
        let mut error = Self::one(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Request was throttled.",
            format!("Request was throttled. Expected available in {} second(s).", decision.retry_after_secs),
            Source::None,
        );
        error.rate = Some(decision);
        error
    }

    /// The same error, reporting `decision` in its headers.
    pub fn with_rate(mut self, decision: Option<RateDecision>) -> Self {
        if self.rate.is_none() {
            self.rate = decision;
        }
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let errors: Vec<Value> = self
            .entries
            .iter()
            .map(|entry| {
                let source = match &entry.source {
                    Source::Pointer(pointer) => json!({ "pointer": pointer }),
                    Source::Parameter(parameter) => json!({ "parameter": parameter }),
                    Source::None => Value::Object(Map::new()),
                };
                json!({
                    "id": request_error_id(),
                    "status": self.status.as_u16(),
                    "code": entry.code,
                    "title": entry.title,
                    "detail": entry.detail,
                    "source": source,
                    "meta": {},
                })
            })
            .collect();
        json!({ "errors": errors })
    }
}

impl From<StoreError> for KlaviyoError {
    fn from(error: StoreError) -> Self {
        let code = error.code();
        // Klaviyo's own throttling answer, as for its rate limit (see `throttled`).
        if let StoreError::QueueFull { retry_after_secs, .. } = error {
            let mut throttled = Self::one(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Request was throttled.",
                format!("Request was throttled. Expected available in {retry_after_secs} second(s)."),
                Source::None,
            );
            throttled.retry_after = Some(retry_after_secs);
            return throttled;
        }
        match code.http_status() {
            404 => KlaviyoError::not_found(error.to_string()),
            400 | 409 | 422 => KlaviyoError::pointer("/data", error.to_string()),
            503 => {
                tracing::warn!(%error, "storage trouble");
                Self::one(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "Service unavailable.",
                    "The service is temporarily unavailable; retry shortly.".to_owned(),
                    Source::None,
                )
            }
            507 => {
                tracing::warn!(%error, "storage trouble");
                Self::one(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "Insufficient storage.",
                    "The service has no room left to store the request; retry later.".to_owned(),
                    Source::None,
                )
            }
            _ => {
                // The cause may name tables or hosts: log it, tell the client only what happened.
                if code == ErrorCode::Internal {
                    tracing::error!(%error, "store error");
                }
                Self::one(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error",
                    "A server error occurred.",
                    "An internal error occurred.".to_owned(),
                    Source::None,
                )
            }
        }
    }
}

impl IntoResponse for KlaviyoError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(VND_API_JSON));
        if let Some(decision) = &self.rate {
            crate::auth::insert_ratelimit_headers(headers, decision);
        }
        if let Some(secs) = self.retry_after.or(crate::error::storage_retry_after(self.status)) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A fresh uuid-like id for one error of a response. Not a secret: it only has to be unique
/// enough to quote in a support request, so the standard library's randomly keyed hasher, a
/// counter and the clock are plenty.
fn request_error_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let state = RandomState::new();
    let mut first = state.build_hasher();
    first.write_u64(count);
    first.write_u128(nanos);
    let mut second = state.build_hasher();
    second.write_u128(nanos);
    second.write_u64(count.wrapping_add(1));
    uuid_like(first.finish(), second.finish())
}
