//! Operator-facing reads and writes that are not scoped by a caller's project: the job gauges
//! `/metrics` exports, and key revocation by id for `catalogd admin key revoke`.

use crate::db::{count, now_ms, with_db, RowExt};
use crate::error::StoreError;
use crate::model::ApiKeyId;
use crate::store::Store;
use catalog_domain::JobStatus;

/// Job gauges across every project, read at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobMetrics {
    /// Jobs stored, by canonical status (every status present, zero when none).
    pub by_status: Vec<(JobStatus, u64)>,
    /// Inputs this process's runners have applied (completed or failed) since it started: a
    /// counter in Prometheus' sense, per process and never decreasing (a sum over stored jobs
    /// would drop when finished jobs are purged, and cost a pass over every job row per scrape).
    pub items_processed: u64,
    /// How long the oldest due job has waited for a runner, in ms (0 when none waits).
    pub oldest_due_ms: i64,
    /// Unfinished jobs (queued, scheduled or running) over every project: the queue's depth in
    /// jobs, as the queue limits count it (see `queue.rs`).
    pub queued_jobs: u64,
    /// Their inputs not yet applied: the queue's depth in inputs, which the limits bound.
    pub queued_inputs: u64,
    /// Inputs this process's runners applied per second over the last minute, the rate a
    /// `queue_full` refusal's `Retry-After` is computed from (`None` until measured).
    pub drain_rate: Option<f64>,
}

impl Store {
    /// Job counts by status, items processed, and runner lag, over every project.
    pub async fn job_metrics(&self) -> Result<JobMetrics, StoreError> {
        let now = now_ms();
        with_db!(self.db(), pool => {
            let rows = sqlx::query(
                // Answered from the `jobs_queue` (status, id) index alone.
                "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status",
            )
            .fetch_all(pool)
            .await?;
            let mut metrics = JobMetrics {
                by_status: JobStatus::ALL.iter().map(|s| (*s, 0)).collect(),
                items_processed: self.inner.items_processed.load(std::sync::atomic::Ordering::Relaxed),
                ..JobMetrics::default()
            };
            for row in &rows {
                let status: JobStatus = row.text("status")?.parse().map_err(|e: catalog_domain::job::UnknownWord| StoreError::Corrupt(e.to_string()))?;
                if let Some(slot) = metrics.by_status.iter_mut().find(|(s, _)| *s == status) {
                    slot.1 = count(row.int("n")?);
                }
            }
            // A due job is queued (or scheduled with start_at passed); its wait starts at the later
            // of its creation and its start_at.
            let row = sqlx::query(
                "SELECT MIN(CASE WHEN start_at IS NOT NULL AND start_at > created_at THEN start_at ELSE created_at END) AS since
                 FROM jobs WHERE status = 'queued' OR (status = 'scheduled' AND start_at <= $1)",
            )
            .bind(now)
            .fetch_one(pool)
            .await?;
            metrics.oldest_due_ms = row.opt_int("since")?.map_or(0, |since| (now - since).max(0));
            // `queue_inputs` holds one row per catalog with unfinished work (migration 0008).
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(jobs), 0) AS BIGINT) AS jobs, CAST(COALESCE(SUM(inputs), 0) AS BIGINT) AS inputs
                 FROM queue_inputs",
            )
            .fetch_one(pool)
            .await?;
            metrics.queued_jobs = count(row.int("jobs")?);
            metrics.queued_inputs = count(row.int("inputs")?);
            metrics.drain_rate = self.inner.queue.drain_rate();
            Ok(metrics)
        })
    }

    /// Revokes a key by id alone (the operator's command; callers use
    /// [`Store::revoke_api_key`], which is scoped by project).
    pub async fn revoke_api_key_by_id(&self, key: ApiKeyId) -> Result<(), StoreError> {
        self.revoke(key, None).await
    }
}
