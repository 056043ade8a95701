//! The store's error type and its mapping into the domain's error table.

use catalog_domain::{BatchProblem, ErrorCode, IdVerdict, JobStatus};

/// Everything a store call can fail with. [`StoreError::code`] says how a caller reports it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no supported backend.
    #[error("unsupported database url `{0}` (expected sqlite:... or postgres://...)")]
    InvalidUrl(String),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The migration's number.
        version: i64,
        /// What the database said.
        source: sqlx::Error,
    },
    /// Stored data could not be read back (a bug or a hand-edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// No project of that key (or id).
    #[error("project not found")]
    ProjectNotFound,
    /// A project of that key already exists.
    #[error("a project with key `{0}` already exists")]
    ProjectAlreadyExists(String),
    /// A project key that is not url-safe.
    #[error("invalid project key `{0}`: use 1 to 64 letters, digits, `-` or `_`")]
    InvalidProjectKey(String),
    /// No API key of that id in the project.
    #[error("api key not found")]
    ApiKeyNotFound,
    /// The API key a job-creating call came with was revoked before the job was created.
    #[error("the API key is unknown or revoked")]
    ApiKeyRevoked,
    /// No catalog of that name in the project.
    #[error("catalog `{0}` not found")]
    CatalogNotFound(String),
    /// A catalog of that name already exists in the project.
    #[error("catalog `{0}` already exists")]
    CatalogAlreadyExists(String),
    /// The catalog name breaks the name rule.
    #[error(transparent)]
    InvalidCatalogName(#[from] catalog_domain::CatalogNameError),
    /// No item of that id in the catalog.
    #[error("item `{0}` not found")]
    ItemNotFound(String),
    /// No job of that id in the project.
    #[error("job {0} not found")]
    JobNotFound(i64),
    /// The job cannot be cancelled: it has finished, or it deletes a catalog (which is already
    /// gone from view, so stopping half-way would leave it neither there nor deleted).
    #[error("job {id} is {status} and cannot be cancelled")]
    JobNotCancellable {
        /// The job.
        id: i64,
        /// Its status (terminal, except for a catalog delete).
        status: JobStatus,
    },
    /// The idempotency key was used before for a different request.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    /// The batch was refused as a whole (empty, or over the dialect's item limit).
    #[error(transparent)]
    Batch(#[from] BatchProblem),
    /// The request asked for all-or-nothing and some ids are invalid; `results` has one verdict
    /// per input.
    #[error("{} of {} ids are invalid", invalid_count(.results), .results.len())]
    InvalidItems {
        /// One verdict per input, in request order.
        results: Vec<IdVerdict>,
    },
    /// No input was valid, so no job was created; `results` says why for each.
    #[error("none of the {} items is valid", .results.len())]
    NoValidItems {
        /// One verdict per input, in request order.
        results: Vec<IdVerdict>,
    },
    /// A pagination cursor that this store did not hand out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// Another rule of the request was broken (the message says which).
    #[error("{0}")]
    InvalidRequest(String),
}

fn invalid_count(results: &[IdVerdict]) -> usize {
    results.iter().filter(|r| r.is_err()).count()
}

impl StoreError {
    /// The domain error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::InvalidUrl(_) | StoreError::Migration { .. } | StoreError::Corrupt(_) => ErrorCode::Internal,
            StoreError::Database(e) => match e {
                // Connection trouble is retryable; other database errors are our bug.
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                    ErrorCode::Unavailable
                }
                _ => ErrorCode::Internal,
            },
            StoreError::ProjectNotFound => ErrorCode::ProjectNotFound,
            StoreError::ProjectAlreadyExists(_) => ErrorCode::ProjectAlreadyExists,
            StoreError::InvalidProjectKey(_) | StoreError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            StoreError::ApiKeyNotFound => ErrorCode::NotFound,
            StoreError::ApiKeyRevoked => ErrorCode::Unauthenticated,
            StoreError::CatalogNotFound(_) => ErrorCode::CatalogNotFound,
            StoreError::CatalogAlreadyExists(_) => ErrorCode::CatalogAlreadyExists,
            StoreError::InvalidCatalogName(e) => e.code(),
            StoreError::ItemNotFound(_) => ErrorCode::ItemNotFound,
            StoreError::JobNotFound(_) => ErrorCode::JobNotFound,
            StoreError::JobNotCancellable { .. } => ErrorCode::JobNotCancellable,
            StoreError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            StoreError::Batch(BatchProblem::TooManyItems { .. }) => ErrorCode::TooManyItems,
            StoreError::Batch(BatchProblem::Empty) => ErrorCode::NoValidItems,
            StoreError::InvalidItems { .. } => ErrorCode::InvalidItemId,
            StoreError::NoValidItems { .. } => ErrorCode::NoValidItems,
            StoreError::InvalidCursor => ErrorCode::InvalidQuery,
        }
    }

    /// True when the unique constraint `name` (or any unique constraint, for SQLite which does not
    /// name them) was violated.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

/// What kind of failure a database error is, for the runner: whether to fail one input, or to
/// let the job go and retry it after a backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbErrorClass {
    /// The database refused a value of the statement (a character it cannot store, a key too long
    /// for its index, a constraint): the input that carried it fails, the others can be applied.
    Refused,
    /// The connection, the server or the file is in trouble (lost connection, busy, serialization
    /// failure, disk full, shutting down): the same work may succeed later.
    Transient,
    /// Anything else (a bug, most likely): retried like a transient failure, and counted, so a job
    /// that always hits it ends failed with the error as its reason.
    Other,
}

/// Classifies a database error (PostgreSQL by SQLSTATE class, SQLite by primary result code).
pub(crate) fn classify(error: &sqlx::Error) -> DbErrorClass {
    match error {
        sqlx::Error::Database(e) => match e.code() {
            Some(code) if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() => {
                match code.get(..2).unwrap_or_default() {
                    // data exception, integrity constraint violation, program limit exceeded
                    "22" | "23" | "54" => DbErrorClass::Refused,
                    // connection exception, transaction rollback (serialization, deadlock),
                    // insufficient resources, object not in prerequisite state (lock not
                    // available), operator intervention (shutdown), system error
                    "08" | "40" | "53" | "55" | "57" | "58" => DbErrorClass::Transient,
                    _ => DbErrorClass::Other,
                }
            }
            Some(code) => match code.parse::<i32>().map(|c| c & 0xff) {
                // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE
                Ok(18 | 19 | 20 | 25) => DbErrorClass::Refused,
                // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY, SQLITE_IOERR,
                // SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL
                Ok(5 | 6 | 7 | 8 | 10 | 13 | 14 | 15) => DbErrorClass::Transient,
                _ => DbErrorClass::Other,
            },
            None => DbErrorClass::Other,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => DbErrorClass::Transient,
        _ => DbErrorClass::Other,
    }
}
