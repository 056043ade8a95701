//! Klaviyo's JSON:API error envelope (contracts/klaviyo.md, "Error envelope").
//!
//! Every answer of the facade that is not a success goes through [`KlaviyoError`], so a client
//! (and Klaviyo's SDK, which parses 4XX bodies into its own models) always finds
//! `{"errors":[{"id","status","code","title","detail","source","meta"}]}` with `status` as a number.

use super::wire::VND_API_JSON;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use catalog_domain::klaviyo::MAX_JOBS_IN_PROGRESS;
use catalog_domain::rate::RateDecision;
use catalog_domain::ErrorCode;
use catalog_store::StoreError;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The namespace of the facade's error ids (a fixed, otherwise meaningless UUID): an id is the v5
/// UUID of the error's identity in it, so the same error has the same id on every build.
const ERROR_ID_NAMESPACE: Uuid = Uuid::from_u128(0x3c2f_9a7e_51d4_4b8e_9f06_c4a1_7d3e_b52a);

/// The id of an error with this identity: a v5 (name-based) UUID, stable across processes and
/// toolchains, unlike a hash of the standard library's.
pub fn error_id(identity: &str) -> String {
    Uuid::new_v5(&ERROR_ID_NAMESPACE, identity.as_bytes()).hyphenated().to_string()
}

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

    /// 401 `not_authenticated`: no `Authorization: Klaviyo-API-Key` (or `Bearer`) header.
    pub fn not_authenticated() -> Self {
        Self::one(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing or invalid authorization scheme. Please use Klaviyo-API-Key (or Bearer with an OAuth token)."
                .to_owned(),
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
                let identity = format!(
                    "request\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{source}",
                    self.status.as_u16(),
                    entry.code,
                    entry.detail
                );
                json!({
                    "id": error_id(&identity),
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
        let status = |code: ErrorCode| StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let code = error.code();
        // Every code of the one table, each in Klaviyo's words: a new code must be placed here
        // before it compiles, never fall into a 500 by accident.
        match code {
            ErrorCode::InvalidJson
            | ErrorCode::InvalidRequest
            | ErrorCode::InvalidItemId
            | ErrorCode::InvalidItem
            | ErrorCode::InvalidCatalogName
            | ErrorCode::TooManyItems
            | ErrorCode::NoValidItems
            | ErrorCode::ItemRefused => KlaviyoError::pointer("/data", error.to_string()),
            ErrorCode::InvalidQuery => {
                KlaviyoError::parameter("page[cursor]", "The page cursor is invalid or expired.")
            }
            // Klaviyo answers its cap on jobs in progress as invalid input (contracts/klaviyo.md).
            ErrorCode::TooManyJobsInProgress => KlaviyoError::pointer(
                "/data",
                format!("This account already has {MAX_JOBS_IN_PROGRESS} jobs in progress; wait for some to complete."),
            ),
            ErrorCode::Unauthenticated => KlaviyoError::authentication_failed(),
            ErrorCode::Forbidden => Self::one(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "You do not have permission to perform this action.",
                error.to_string(),
                Source::None,
            ),
            ErrorCode::NotFound
            | ErrorCode::CatalogNotFound
            | ErrorCode::ItemNotFound
            | ErrorCode::JobNotFound
            | ErrorCode::WebhookNotFound
            | ErrorCode::DeliveryNotFound
            | ErrorCode::ProjectNotFound => KlaviyoError::not_found(error.to_string()),
            ErrorCode::MethodNotAllowed => KlaviyoError::method_not_allowed(),
            ErrorCode::CatalogAlreadyExists
            | ErrorCode::ProjectAlreadyExists
            | ErrorCode::AlreadyExists
            | ErrorCode::IdempotencyKeyReused
            | ErrorCode::JobNotCancellable => Self::one(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict.",
                error.to_string(),
                Source::Pointer("/data".into()),
            ),
            ErrorCode::PayloadTooLarge => Self::one(
                status(code),
                "payload_too_large",
                "Payload too large.",
                error.to_string(),
                Source::Pointer("/data".into()),
            ),
            ErrorCode::UnsupportedMediaType => KlaviyoError::unsupported_media_type(),
            // Klaviyo's own throttling answer, as for its rate limit (see `throttled`).
            ErrorCode::RateLimited | ErrorCode::QueueFull => {
                let retry_after_secs = match &error {
                    StoreError::QueueFull { retry_after_secs, .. } => *retry_after_secs,
                    _ => code.retry_after_secs().unwrap_or(1),
                };
                let mut throttled = Self::one(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    "Request was throttled.",
                    format!("Request was throttled. Expected available in {retry_after_secs} second(s)."),
                    Source::None,
                );
                throttled.retry_after = Some(retry_after_secs);
                throttled
            }
            ErrorCode::Unavailable => {
                tracing::warn!(%error, "storage trouble");
                Self::one(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "Service unavailable.",
                    "The service is temporarily unavailable; retry shortly.".to_owned(),
                    Source::None,
                )
            }
            ErrorCode::InsufficientStorage => {
                tracing::warn!(%error, "storage trouble");
                Self::one(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "Insufficient storage.",
                    "The service has no room left to store the request; retry later.".to_owned(),
                    Source::None,
                )
            }
            ErrorCode::Internal => {
                // The cause may name tables or hosts: log it, tell the client only what happened.
                tracing::error!(%error, "store error");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_ids_are_v5_uuids_of_the_identity() {
        let id = error_id("job\u{1f}42\u{1f}3");
        assert_eq!(id, error_id("job\u{1f}42\u{1f}3"), "the same error, the same id");
        assert_ne!(id, error_id("job\u{1f}42\u{1f}4"));
        let parsed = Uuid::parse_str(&id).map(|u| u.get_version_num());
        assert_eq!(parsed.ok(), Some(5));
    }

    #[test]
    fn the_cap_on_jobs_in_progress_is_invalid_input_at_data() {
        let error = KlaviyoError::from(StoreError::TooManyJobsInProgress { max: MAX_JOBS_IN_PROGRESS });
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.entries[0].code, "invalid");
        assert_eq!(error.entries[0].source, Source::Pointer("/data".into()));
    }
}
