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
    /// The database can be read but not written (a read-only file, directory, role or server):
    /// refused when the store opens, rather than accepting requests it could not apply.
    #[error(
        "the database cannot be written ({reason}); catalogd needs write access: check that the file and its \
         directory exist and are writable (not on a read-only mount, no `mode=ro` in the URL), or the \
         PostgreSQL role's privileges and default_transaction_read_only"
    )]
    NotWritable {
        /// What the database said to the write that was tried.
        reason: String,
    },
    /// The database did not answer within the time a caller allows (a readiness check).
    #[error("the database did not answer within {0:?}")]
    TimedOut(std::time::Duration),
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
    /// No webhook of that id in the project.
    #[error("webhook {0} not found")]
    WebhookNotFound(i64),
    /// No delivery of that id for the webhook.
    #[error("delivery {0} not found")]
    DeliveryNotFound(i64),
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
    /// The project already has `max` jobs in progress and the job asked for that cap
    /// ([`crate::JobOptions::in_progress_cap`]); nothing was created.
    #[error("the project already has {max} jobs in progress")]
    TooManyJobsInProgress {
        /// The cap.
        max: u64,
    },
    /// The job would pass a queue limit; nothing was created (see `queue.rs`).
    #[error("{limit} is full: {excess} inputs over its limit; retry after {retry_after_secs} s")]
    QueueFull {
        /// Which limit.
        limit: crate::queue::QueueLimit,
        /// How many inputs must drain before the job fits.
        excess: u64,
        /// When to try again: `excess` over the measured drain rate, bounded (see
        /// [`crate::queue::retry_after_secs`]).
        retry_after_secs: u64,
    },
}

fn invalid_count(results: &[IdVerdict]) -> usize {
    results.iter().filter(|r| r.is_err()).count()
}

impl StoreError {
    /// The domain error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::InvalidUrl(_) | StoreError::Migration { .. } | StoreError::Corrupt(_) => ErrorCode::Internal,
            // Storage trouble may pass and is answered so; other database errors are our bug (a
            // value the database refuses is caught per input before it reaches a request).
            StoreError::Database(e) => match classify(e) {
                DbErrorClass::Transient | DbErrorClass::Conflict => ErrorCode::Unavailable,
                DbErrorClass::Full => ErrorCode::InsufficientStorage,
                DbErrorClass::Refused | DbErrorClass::Other => ErrorCode::Internal,
            },
            StoreError::NotWritable { .. } | StoreError::TimedOut(_) => ErrorCode::Unavailable,
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
            StoreError::WebhookNotFound(_) => ErrorCode::WebhookNotFound,
            StoreError::DeliveryNotFound(_) => ErrorCode::DeliveryNotFound,
            StoreError::JobNotCancellable { .. } => ErrorCode::JobNotCancellable,
            StoreError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            StoreError::Batch(BatchProblem::TooManyItems { .. }) => ErrorCode::TooManyItems,
            StoreError::Batch(BatchProblem::Empty) => ErrorCode::NoValidItems,
            StoreError::InvalidItems { .. } => ErrorCode::InvalidItemId,
            StoreError::NoValidItems { .. } => ErrorCode::NoValidItems,
            StoreError::InvalidCursor => ErrorCode::InvalidQuery,
            StoreError::QueueFull { .. } => ErrorCode::QueueFull,
            StoreError::TooManyJobsInProgress { .. } => ErrorCode::TooManyJobsInProgress,
        }
    }

    /// True when this error says the storage itself is in trouble (unreachable, read-only, busy
    /// past the busy timeout, full): what makes the store not ready. A transaction that lost a
    /// conflict is answered 503 too, but says nothing of the storage.
    pub(crate) fn troubles_storage(&self) -> bool {
        match self {
            StoreError::Database(e) => matches!(classify(e), DbErrorClass::Transient | DbErrorClass::Full),
            StoreError::NotWritable { .. } | StoreError::TimedOut(_) => true,
            _ => false,
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

    /// True when the error is the database's answer to a statement (a refused value, a violated
    /// constraint, a trigger's refusal, a lost serialization, a session ended by the server): the
    /// statement's transaction did not commit. False when the answer may have been lost with the
    /// connection, or nothing reached the database (no connection to be had).
    pub(crate) fn is_database_answer(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(_)))
    }

    /// True when PostgreSQL ended the session this error came from (SQLSTATE 57P01 to 57P05:
    /// an administrator, a crash of another backend, a restart, a dropped database, an idle
    /// session timeout). The session's open transaction ended with it, uncommitted: the same
    /// work may be written again on another connection.
    pub(crate) fn is_connection_ended_by_server(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some()
                    && e.code().is_some_and(|code| code.starts_with("57P0"))
            }
            _ => false,
        }
    }
}

/// What kind of failure a database error is: for the runner, whether to fail one input or let
/// the job go and retry it; for a request, which code it is answered with (see
/// [`StoreError::code`]). The one table of storage trouble: docs/RULES.md, "Storage trouble".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbErrorClass {
    /// The database refused a value of the statement (a character it cannot store, a key too long
    /// for its index, a constraint): the input that carried it fails, the others can be applied.
    Refused,
    /// The connection, the server or the file is in trouble (lost or refused connection, pool
    /// timeout, busy or locked file, shutting down, read-only): the same work may succeed later.
    /// Answered 503 `unavailable`, and the store is not ready until a write succeeds.
    Transient,
    /// PostgreSQL: this transaction lost to another (serialization failure, deadlock, a lock
    /// not available): the same work may succeed when tried again. Answered 503 `unavailable`,
    /// but says nothing of the storage's health (other transactions go through).
    Conflict,
    /// The database has no room for the write (a full disk): the same work may succeed once an
    /// operator makes room. Answered 507 `insufficient_storage`.
    Full,
    /// Anything else (a bug, most likely): retried like a transient failure, and counted, so a job
    /// that always hits it ends failed with the error as its reason. Answered 500 `internal`.
    Other,
}

/// Classifies a database error by the code the database gives (PostgreSQL's SQLSTATE, SQLite's
/// primary result code), never by its message.
pub(crate) fn classify(error: &sqlx::Error) -> DbErrorClass {
    match error {
        sqlx::Error::Database(e) => match e.code() {
            Some(code) if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() => classify_sqlstate(&code),
            Some(code) => code.parse::<i32>().map_or(DbErrorClass::Other, |c| classify_sqlite(c & 0xff)),
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

/// True when `error` is the refusal of the jobs-in-progress cap's trigger (migration 0011 on SQLite, 0012 on PostgreSQL): a job inserted under the cap on
/// jobs in progress found its project at the cap. By code, as everything here: catalogd's own
/// SQLSTATE `CD500` on PostgreSQL, SQLITE_CONSTRAINT_TRIGGER (extended code 1811, what `RAISE`
/// in a trigger gives, and no other trigger of the schema raises) on SQLite.
pub(crate) fn is_in_progress_cap(error: &StoreError) -> bool {
    let StoreError::Database(sqlx::Error::Database(e)) = error else {
        return false;
    };
    match e.code() {
        Some(code) if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() => code == "CD500",
        Some(code) => code == "1811",
        None => false,
    }
}

/// True when the database refused to be written: SQLite's SQLITE_READONLY (a read-only file,
/// `mode=ro`) and SQLITE_CANTOPEN (a file or directory it cannot open for writing, such as one on
/// a read-only mount), PostgreSQL's read_only_sql_transaction (a standby, or
/// `default_transaction_read_only`) and insufficient_privilege (a role without write grants).
/// Used at start, where it stops the process with a message saying so.
pub(crate) fn refuses_writes(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = error else {
        return false;
    };
    match e.code() {
        Some(code) if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() => {
            code == "25006" || code == "42501"
        }
        Some(code) => code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 8 | 14)),
        None => false,
    }
}

/// PostgreSQL, by SQLSTATE (Appendix A of its manual).
fn classify_sqlstate(code: &str) -> DbErrorClass {
    match code {
        // disk_full
        "53100" => DbErrorClass::Full,
        // read_only_sql_transaction (a server turned standby, or a read-only default), system
        // error, I/O error
        "25006" | "58000" | "58030" => DbErrorClass::Transient,
        // lock not available, object in use
        "55P03" | "55006" => DbErrorClass::Conflict,
        _ => match code.get(..2).unwrap_or_default() {
            // data exception, integrity constraint violation, program limit exceeded
            "22" | "23" | "54" => DbErrorClass::Refused,
            // transaction rollback (serialization failure, deadlock)
            "40" => DbErrorClass::Conflict,
            // connection exception, insufficient resources (out of memory, too many
            // connections), operator intervention (administrator or crash shutdown, cannot
            // connect now, query cancelled)
            "08" | "53" | "57" => DbErrorClass::Transient,
            _ => DbErrorClass::Other,
        },
    }
}

/// SQLite, by primary result code (the low byte of the extended code).
fn classify_sqlite(primary: i32) -> DbErrorClass {
    match primary {
        // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE
        18 | 19 | 20 | 25 => DbErrorClass::Refused,
        // SQLITE_FULL
        13 => DbErrorClass::Full,
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN,
        // SQLITE_PROTOCOL
        5 | 6 | 7 | 8 | 10 | 14 | 15 => DbErrorClass::Transient,
        _ => DbErrorClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_of_storage_trouble() {
        for transient in ["08006", "08001", "57P01", "57P02", "57P03", "53300", "25006"] {
            assert_eq!(classify_sqlstate(transient), DbErrorClass::Transient, "{transient}");
        }
        for conflict in ["40001", "40P01", "55P03"] {
            assert_eq!(classify_sqlstate(conflict), DbErrorClass::Conflict, "{conflict}");
        }
        assert_eq!(classify_sqlstate("53100"), DbErrorClass::Full);
        for refused in ["22021", "23505", "54000"] {
            assert_eq!(classify_sqlstate(refused), DbErrorClass::Refused, "{refused}");
        }
        for other in ["42P01", "XX000", "55000", "42501"] {
            assert_eq!(classify_sqlstate(other), DbErrorClass::Other, "{other}");
        }
    }

    #[test]
    fn sqlite_codes_of_storage_trouble() {
        assert_eq!(classify_sqlite(13), DbErrorClass::Full);
        // SQLITE_BUSY_SNAPSHOT (517) and SQLITE_IOERR_WRITE (778) by their primary codes.
        assert_eq!(classify_sqlite(517 & 0xff), DbErrorClass::Transient);
        assert_eq!(classify_sqlite(778 & 0xff), DbErrorClass::Transient);
        assert_eq!(classify_sqlite(2067 & 0xff), DbErrorClass::Refused);
        assert_eq!(classify_sqlite(11), DbErrorClass::Other);
    }

    /// A database's answer to a statement, as a driver would report it.
    #[derive(Debug)]
    struct Answer;

    impl std::fmt::Display for Answer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("refused")
        }
    }

    impl std::error::Error for Answer {}

    impl sqlx::error::DatabaseError for Answer {
        fn message(&self) -> &str {
            "refused"
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn only_the_database_s_answer_proves_a_statement_did_not_commit() {
        assert!(StoreError::Database(sqlx::Error::Database(Box::new(Answer))).is_database_answer());
        let lost = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        let unanswered = [
            StoreError::Database(lost),
            StoreError::Database(sqlx::Error::Protocol("unexpected message".into())),
            StoreError::Database(sqlx::Error::PoolTimedOut),
            StoreError::Database(sqlx::Error::WorkerCrashed),
            StoreError::Corrupt("2 jobs in, 1 rows out".into()),
        ];
        for error in unanswered {
            assert!(!error.is_database_answer(), "{error:?}");
        }
    }

    #[test]
    fn connection_failures_are_unavailable() {
        let refused = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        for error in [refused, sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed] {
            assert_eq!(StoreError::Database(error).code(), ErrorCode::Unavailable);
        }
        assert_eq!(StoreError::Database(sqlx::Error::RowNotFound).code(), ErrorCode::Internal);
    }
}
