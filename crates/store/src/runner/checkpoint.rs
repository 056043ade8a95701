//! Checkpoints: a chunk's cursor, counts and status, written in the same transaction as its data
//! change and guarded by the lease's attempt (`sql::checkpoint_sql`), and what the lease learns
//! from one.

use super::lease::Lease;
use super::Step;
use crate::db::to_i64;
use crate::error::StoreError;
use catalog_domain::{JobEvent, JobState, JobStatus, TransitionError};

/// The values of a checkpoint statement (`$1`..`$12`, see `sql::checkpoint_sql`).
#[derive(Debug, Clone)]
pub(crate) struct CheckpointRow {
    pub job: i64,
    pub attempt: i64,
    /// The cursor after the chunk.
    pub cursor: i64,
    pub completed: i64,
    pub failed: i64,
    pub status: &'static str,
    pub now: i64,
    /// Set when the chunk ends the job.
    pub finished_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub lease_ms: i64,
    /// The cursor the chunk started at, as this lease last wrote it.
    pub start_cursor: i64,
    /// The catalog, for the statements that check it is alive (`$12`).
    pub catalog: Option<i64>,
}

/// Binds a [`CheckpointRow`]'s `$1`..`$11` to `$query` (the caller binds `$12` and after).
macro_rules! bind_checkpoint {
    ($query:expr, $row:expr) => {{
        let row: &$crate::runner::checkpoint::CheckpointRow = $row;
        $query
            .bind(row.job)
            .bind(row.attempt)
            .bind(row.cursor)
            .bind(row.completed)
            .bind(row.failed)
            .bind(row.status)
            .bind(row.now)
            .bind(row.finished_at)
            .bind(row.expires_at)
            .bind(row.lease_ms)
            .bind(row.start_cursor)
    }};
}
pub(crate) use bind_checkpoint;

/// A state machine violation found in a job's own data: a bug or a hand-edited row.
pub(super) fn corrupt(job: i64, e: TransitionError) -> StoreError {
    StoreError::Corrupt(format!("job {job}: {e}"))
}

impl Lease {
    /// The job's state after a chunk that applied `completed` inputs and failed `failed`, ending
    /// the job when it was the `last`.
    pub(super) fn after_chunk(&self, completed: u64, failed: u64, last: bool) -> Result<JobState, StoreError> {
        self.state
            .apply(JobEvent::Checkpoint { completed, failed })
            .and_then(|s| if s.status == JobStatus::Running && last { s.apply(JobEvent::Finished) } else { Ok(s) })
            .map_err(|e| corrupt(self.job_id.0, e))
    }

    /// The checkpoint that moves this lease's job to `next` with its cursor at `cursor`.
    pub(super) fn checkpoint_row(&self, next: &JobState, cursor: usize, now: i64) -> CheckpointRow {
        let finished_at = next.status.is_terminal().then_some(now);
        let retention = self.runner.store.config().retention_ms;
        CheckpointRow {
            job: self.job_id.0,
            attempt: self.attempt,
            cursor: to_i64(cursor),
            completed: to_i64(next.completed_count),
            failed: to_i64(next.failed_count),
            status: next.status.as_str(),
            now,
            finished_at,
            expires_at: finished_at.map(|at| at.saturating_add(retention)),
            lease_ms: self.runner.lease_ms(),
            start_cursor: to_i64(self.cursor),
            catalog: self.catalog_id.filter(|_| self.kind != catalog_domain::JobKind::CatalogDelete),
        }
    }

    /// After a chunk: records the committed state and cursor, or takes the slow path when the
    /// checkpoint wrote nothing.
    pub(super) async fn checkpointed(&mut self, committed: Option<(JobState, usize)>) -> Result<Step, StoreError> {
        let Some((next, cursor)) = committed else {
            return self.interrupted().await;
        };
        let chunk_items = next.processed().saturating_sub(self.state.processed());
        self.runner.store.inner.items_processed.fetch_add(chunk_items, std::sync::atomic::Ordering::Relaxed);
        self.state = next;
        self.cursor = cursor;
        if next.status.is_terminal() {
            tracing::debug!(job = self.job_id.0, status = %next.status, "job finished");
            self.runner.store.job_finished();
            Ok(Step::Finished(next.status))
        } else {
            Ok(Step::Continue)
        }
    }
}
