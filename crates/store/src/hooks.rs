//! Test-only stopping points and injected failures, in the style of Meilisearch's index-scheduler
//! breakpoints and `FailureLocation`: the conformance suite stops a runner mid-chunk, fails a
//! chunk, holds a heartbeat or panics a background task at a named place, so crash, race and lease
//! tests are deterministic and never sleep.
//!
//! Production code reports each [`Breakpoint`] it passes (`reach`); without the `test-hooks` feature
//! there is no way to install [`Hooks`], and a report is one check of an `Option`.

use crate::model::JobId;
use crate::store::Store;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A named place in the store's background work where a test may stop it or make it fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Breakpoint {
    /// A worker holds the lease on `job` and is about to apply the chunk that starts at `cursor`;
    /// no transaction is open yet. The lease's heartbeat runs meanwhile.
    ChunkStarting {
        /// The job.
        job: JobId,
        /// The chunk's first input.
        cursor: u64,
    },
    /// `job`'s last chunk is about to be applied together with the `joined` due jobs behind it
    /// in its catalog's order (a batch); no transaction is open yet.
    BatchFormed {
        /// The leading job.
        job: JobId,
        /// How many jobs joined it.
        joined: usize,
    },
    /// While a batch was written, the batch to follow it was read ahead: `job` will lead it, and
    /// `joined` jobs behind it will join (`runner/batch.rs`). Reached in the reading task; a
    /// test that stops here holds what was read until it answers.
    ReadAhead {
        /// The job that will lead the next batch.
        job: JobId,
        /// How many jobs will join it.
        joined: usize,
    },
    /// `job` leads a batch whose `joined` jobs were read ahead (see `ReadAhead`), and is about to
    /// apply it; reached before `BatchFormed`.
    ReadAheadTaken {
        /// The leading job.
        job: JobId,
        /// How many jobs joined it.
        joined: usize,
    },
    /// A chunk's data changes of `job` are written in its open transaction, not yet checkpointed
    /// or committed (the general path; an item-delete chunk is one statement and has no such
    /// point).
    ChunkWritten {
        /// The job.
        job: JobId,
    },
    /// A batch led by `job` has written everything (data, errors, the leader's checkpoint, the
    /// followers' ends) in its open transaction and is about to commit. (A batch of item deletes
    /// on PostgreSQL is one statement: it has no such point, nor `ChunkWritten`.)
    BatchWritten {
        /// The leading job.
        job: JobId,
    },
    /// A trailing batch (`runner/trailing.rs`, PostgreSQL) led by `job`, with `joined` jobs
    /// behind it, has locked its jobs and deleted its items in its open transaction, while the
    /// batch ahead of it is written; it commits only after that one has.
    TrailingBatchWritten {
        /// The trailing batch's first job.
        job: JobId,
        /// How many jobs follow it in the trailing batch.
        joined: usize,
    },
    /// The heartbeat of `job` is due: continuing renews the lease; a test that never answers holds
    /// the heartbeat, as a stalled node would.
    Heartbeat {
        /// The job.
        job: JobId,
    },
    /// The group-commit writer is about to write a batch of job inserts.
    EnqueueBatch,
    /// The group-commit writer is about to write a batch on the connection it kept from the batch
    /// before (on PostgreSQL one the pool does not check again, see `enqueue.rs`,
    /// `Writer::insert_all_pg`); reached after `EnqueueBatch`.
    EnqueueOnKeptConnection {
        /// The jobs of the batch.
        jobs: usize,
    },
    /// The purge is about to delete one batch of expired jobs.
    PurgeBatch,
}

/// What a test makes of a breakpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    /// Go on as if nothing happened.
    Continue,
    /// Fail here with a transient database error (as a lost connection would): storage trouble,
    /// which costs a job no attempt.
    TransientError,
    /// Fail here with an error that is not storage trouble (as a bug would): it costs a job an
    /// attempt.
    Failure,
    /// Panic here (a bug), to test supervision.
    Panic,
}

/// A boxed future, as [`Hooks::reached`] returns.
pub type HookFuture = Pin<Box<dyn Future<Output = Injected> + Send>>;

/// A test's handler of breakpoints, installed with `Store::connect_with_hooks` (feature
/// `test-hooks`). The store's background work waits for the future [`Hooks::reached`] returns.
pub trait Hooks: Send + Sync + std::fmt::Debug {
    /// Called when `point` is reached; the caller waits for the answer.
    fn reached(&self, point: Breakpoint) -> HookFuture;
}

/// The hooks a store was opened with: `None` in production (they can only be installed with the
/// `test-hooks` feature).
pub(crate) type InstalledHooks = Option<Arc<dyn Hooks>>;

/// Reports `point` to `hooks` and waits for their answer, turned into what the caller does: go on,
/// fail with a transient error, or panic. Answers at once when no hooks are installed.
pub(crate) async fn reach(hooks: &InstalledHooks, point: Breakpoint) -> Result<(), sqlx::Error> {
    let Some(hooks) = hooks else {
        return Ok(());
    };
    match hooks.reached(point).await {
        Injected::Continue => Ok(()),
        Injected::TransientError => Err(injected_error()),
        Injected::Failure => {
            Err(sqlx::Error::Decode("injected by a test hook: a failure that is not storage trouble".into()))
        }
        Injected::Panic => panic!("injected panic at {point:?}"),
    }
}

impl Store {
    /// [`reach`] with this store's hooks.
    pub(crate) async fn hook(&self, point: Breakpoint) -> Result<(), sqlx::Error> {
        reach(&self.inner.hooks, point).await
    }
}

/// The error an [`Injected::TransientError`] stands for: a connection that broke.
pub(crate) fn injected_error() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected by a test hook"))
}
