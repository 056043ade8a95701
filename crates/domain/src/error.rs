//! The one table of error codes every crate maps its errors into.
//!
//! A code is a stable snake_case string a client may match on, and the HTTP status the native API
//! answers it with. Facades render the same codes in their own dialect's envelope.

use core::fmt;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => ($code:literal, $status:literal), )*) => {
        /// A stable error code, with the HTTP status the native API uses for it.
        ///
        /// ```
        /// use catalog_domain::ErrorCode;
        /// // The table, as a client may print it.
        /// for code in ErrorCode::ALL {
        ///     println!("{:>3} {code}", code.http_status());
        /// }
        /// assert!(ErrorCode::ALL.contains(&ErrorCode::QueueFull));
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The snake_case code a client sees.
            ///
            /// ```
            /// use catalog_domain::ErrorCode;
            /// assert_eq!(ErrorCode::CatalogNotFound.as_str(), "catalog_not_found");
            /// assert_eq!(ErrorCode::CatalogNotFound.to_string(), "catalog_not_found");
            /// ```
            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            /// The HTTP status of this code on the native API.
            ///
            /// ```
            /// use catalog_domain::ErrorCode;
            /// assert_eq!(ErrorCode::TooManyItems.http_status(), 400);
            /// assert_eq!(ErrorCode::QueueFull.http_status(), 429);
            /// ```
            pub const fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }
        }
    };
}

error_codes! {
    /// The request body is not valid JSON, or not of the expected shape.
    InvalidJson => ("invalid_json", 400),
    /// A query parameter is missing, malformed or out of range.
    InvalidQuery => ("invalid_query", 400),
    /// The request is well-formed but breaks a validation rule.
    InvalidRequest => ("invalid_request", 400),
    /// An item id breaks the dialect's id rule, and the request asked for all-or-nothing.
    InvalidItemId => ("invalid_item_id", 400),
    /// An input (beyond its id) cannot be stored: a NUL character, or more than an item's size
    /// limit (a per-item error, or the answer of an all-or-nothing request).
    InvalidItem => ("invalid_item", 400),
    /// A catalog name breaks the catalog name rule.
    InvalidCatalogName => ("invalid_catalog_name", 400),
    /// More items in one request than the dialect allows.
    TooManyItems => ("too_many_items", 400),
    /// No item of the request was valid, so no job was created.
    NoValidItems => ("no_valid_items", 400),
    /// A job's input that the database refused to store (a per-item error of a job, never a
    /// request's answer).
    ItemRefused => ("item_refused", 400),
    /// No credentials, or credentials that match no active key.
    Unauthenticated => ("unauthenticated", 401),
    /// The key is valid but lacks the scope this route needs.
    Forbidden => ("forbidden", 403),
    /// The route does not exist.
    NotFound => ("not_found", 404),
    /// No catalog of that name in the caller's project.
    CatalogNotFound => ("catalog_not_found", 404),
    /// No item of that id in the catalog.
    ItemNotFound => ("item_not_found", 404),
    /// No job of that id in the caller's project.
    JobNotFound => ("job_not_found", 404),
    /// No project of that key.
    ProjectNotFound => ("project_not_found", 404),
    /// No webhook of that id in the caller's project.
    WebhookNotFound => ("webhook_not_found", 404),
    /// No delivery of that id for the webhook.
    DeliveryNotFound => ("delivery_not_found", 404),
    /// The HTTP method is not allowed on this route.
    MethodNotAllowed => ("method_not_allowed", 405),
    /// A catalog of that name already exists in the project.
    CatalogAlreadyExists => ("catalog_already_exists", 409),
    /// An input of a create-only job named an item or category that already exists (a per-item
    /// error of a job, never a request's answer).
    AlreadyExists => ("already_exists", 409),
    /// A project of that key already exists.
    ProjectAlreadyExists => ("project_already_exists", 409),
    /// The Idempotency-Key was used before with a different request body.
    IdempotencyKeyReused => ("idempotency_key_reused", 409),
    /// The job is finished (completed, failed or cancelled) and cannot be cancelled.
    JobNotCancellable => ("job_not_cancellable", 409),
    /// The request body is larger than the limit.
    PayloadTooLarge => ("payload_too_large", 413),
    /// The request body's content type is not JSON.
    UnsupportedMediaType => ("unsupported_media_type", 415),
    /// A rate limit was reached; retry after the `Retry-After` seconds.
    RateLimited => ("rate_limited", 429),
    /// The project has too many jobs in progress.
    TooManyJobsInProgress => ("too_many_jobs_in_progress", 429),
    /// The job would pass a queue limit (the project's queued inputs, or the whole queue's);
    /// nothing was created. Retry after the `Retry-After` seconds, computed from how fast the
    /// queue drains.
    QueueFull => ("queue_full", 429),
    /// An unexpected server-side failure. Never caused by client input.
    Internal => ("internal", 500),
    /// The service cannot serve right now (database unreachable, restarting or busy, shutting
    /// down); retry after the `Retry-After` seconds.
    Unavailable => ("unavailable", 503),
    /// The database has no room left for the write (a full disk); retry after the `Retry-After`
    /// seconds, once an operator has made room.
    InsufficientStorage => ("insufficient_storage", 507),
}

/// Seconds a client is told to wait after [`ErrorCode::Unavailable`]: the trouble it stands for
/// (a lost connection, a restarting server, a busy lock) usually passes within seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

/// Seconds a client is told to wait after [`ErrorCode::InsufficientStorage`]: a full disk waits
/// for an operator, so retrying every second would only add load.
pub const INSUFFICIENT_STORAGE_RETRY_AFTER_SECS: u64 = 30;

impl ErrorCode {
    /// The `Retry-After` every surface sends with this code, when the code alone decides it: the
    /// storage-trouble codes. (A rate limit computes its own; other codes send none.)
    ///
    /// ```
    /// use catalog_domain::ErrorCode;
    /// assert_eq!(ErrorCode::Unavailable.retry_after_secs(), Some(1));
    /// assert_eq!(ErrorCode::RateLimited.retry_after_secs(), None);
    /// ```
    pub const fn retry_after_secs(self) -> Option<u64> {
        match self {
            ErrorCode::Unavailable => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            ErrorCode::InsufficientStorage => Some(INSUFFICIENT_STORAGE_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// True for the codes of storage trouble (the database unreachable, busy or full): the
    /// request may succeed later unchanged, and the cause is logged, not shown to the client.
    ///
    /// ```
    /// use catalog_domain::ErrorCode;
    /// assert!(ErrorCode::InsufficientStorage.is_storage_trouble());
    /// assert!(!ErrorCode::Internal.is_storage_trouble());
    /// ```
    pub const fn is_storage_trouble(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::InsufficientStorage)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s} is not snake_case");
        }
    }

    #[test]
    fn statuses_are_client_or_server_errors() {
        for code in ErrorCode::ALL {
            let status = code.http_status();
            assert!((400..600).contains(&status), "{code} has status {status}");
        }
        assert_eq!(ErrorCode::Internal.http_status(), 500);
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
        assert_eq!(ErrorCode::InsufficientStorage.http_status(), 507);
    }

    #[test]
    fn storage_trouble_always_says_when_to_retry() {
        for code in ErrorCode::ALL {
            assert_eq!(code.is_storage_trouble(), code.retry_after_secs().is_some(), "{code}");
        }
        assert!(ErrorCode::Unavailable.is_storage_trouble() && ErrorCode::InsufficientStorage.is_storage_trouble());
    }
}
