//! Reading, listing, cancelling, waiting on and purging jobs.

use crate::db::{count, now_ms, to_i64, with_db, Db, Flavor, RowExt};
use crate::error::StoreError;
use crate::hooks::Breakpoint;
use crate::model::{CatalogId, Job, JobErrorRecord, JobFilter, JobId, JobPaging, Page, ProjectId};
use crate::store::Store;
use crate::util::{clamp_limit, decode_int_cursor, encode_int_cursor};
use catalog_domain::{JobEvent, JobKind, JobState, JobStatus, TransitionError};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The columns [`job_from_row`] reads. The payload is left out: listings never need it.
pub(crate) const JOB_COLUMNS: &str = "id, project_id, catalog_id, catalog_name, kind, status, total_count, \
     completed_count, failed_count, cursor, cancel_requested, description, reference_id, idempotency_key, attempt, \
     lease_owner, lease_expires_at, created_at, updated_at, start_at, started_at, finished_at, expires_at, \
     failure_reason";

/// Cursor tags: a cursor of one listing is refused by another.
/// A job's payload as rows to join in order (`$1` is the job id): its first part, then the
/// others of a large payload (`job_payload_parts`, see `enqueue.rs`). No row: no payload.
pub(crate) const PAYLOAD_PARTS: &str = "SELECT 0 AS part, payload FROM job_payloads WHERE job_id = $1
     UNION ALL SELECT part, payload FROM job_payload_parts WHERE job_id = $1 ORDER BY part";

/// Joins the rows of [`PAYLOAD_PARTS`] into the payload.
pub(crate) fn joined_payload(rows: &[impl RowExt]) -> Result<Option<String>, StoreError> {
    match rows {
        [] => Ok(None),
        [whole] => whole.text("payload").map(Some),
        parts => {
            // Every part but the last is at most a part's size: room enough, never regrown.
            let mut payload = String::with_capacity(parts.len() * crate::enqueue::PAYLOAD_PART_BYTES);
            for part in parts {
                payload.push_str(&part.text("payload")?);
            }
            Ok(Some(payload))
        }
    }
}

/// Jobs deleted per purge transaction.
const PURGE_BATCH: i64 = 1_000;

/// SQLite: a purge batch's errors and payload parts, inside the batch's write transaction (the
/// jobs themselves go last, by the same selection: nothing else writes meanwhile). `$1` now, `$2`
/// the batch size.
const PURGE_BATCH_SQLITE: [&str; 3] = [
    "DELETE FROM job_errors WHERE job_id IN (SELECT id FROM jobs WHERE expires_at <= $1 ORDER BY id LIMIT $2)",
    "DELETE FROM job_payloads WHERE job_id IN (SELECT id FROM jobs WHERE expires_at <= $1 ORDER BY id LIMIT $2)",
    "DELETE FROM job_payload_parts WHERE job_id IN (SELECT id FROM jobs WHERE expires_at <= $1 ORDER BY id LIMIT $2)",
];

/// PostgreSQL: a purge batch as one statement. The batch's jobs are chosen (and locked) once, so
/// every table loses the rows of the same jobs even while another node purges too.
const PURGE_BATCH_PG: &str = "WITH batch AS MATERIALIZED (
         SELECT id FROM jobs WHERE expires_at <= $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED),
     errors AS (DELETE FROM job_errors WHERE job_id IN (SELECT id FROM batch)),
     payloads AS (DELETE FROM job_payloads WHERE job_id IN (SELECT id FROM batch)),
     parts AS (DELETE FROM job_payload_parts WHERE job_id IN (SELECT id FROM batch)),
     gone AS (DELETE FROM jobs WHERE id IN (SELECT id FROM batch) RETURNING 1)
     SELECT COUNT(*) AS n FROM gone";

const JOBS_CURSOR: char = 'j';
const ERRORS_CURSOR: char = 'e';

/// Reads a job row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(row: &impl RowExt) -> Result<Job, StoreError> {
    let kind = row.text("kind")?;
    let status = row.text("status")?;
    Ok(Job {
        id: JobId(row.int("id")?),
        project_id: ProjectId(row.int("project_id")?),
        catalog_id: row.opt_int("catalog_id")?.map(CatalogId),
        catalog_name: row.opt_text("catalog_name")?,
        kind: kind.parse::<JobKind>().map_err(|e| StoreError::Corrupt(e.to_string()))?,
        status: status.parse::<JobStatus>().map_err(|e| StoreError::Corrupt(e.to_string()))?,
        total_count: count(row.int("total_count")?),
        completed_count: count(row.int("completed_count")?),
        failed_count: count(row.int("failed_count")?),
        cursor: count(row.int("cursor")?),
        cancel_requested: row.int("cancel_requested")? != 0,
        description: row.opt_text("description")?,
        reference_id: row.opt_text("reference_id")?,
        idempotency_key: row.opt_text("idempotency_key")?,
        attempt: u32::try_from(row.int("attempt")?).unwrap_or(u32::MAX),
        lease_owner: row.opt_text("lease_owner")?,
        lease_expires_at: row.opt_int("lease_expires_at")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        start_at: row.opt_int("start_at")?,
        started_at: row.opt_int("started_at")?,
        finished_at: row.opt_int("finished_at")?,
        expires_at: row.opt_int("expires_at")?,
        failure_reason: row.opt_text("failure_reason")?,
    })
}

/// The lifecycle part of a job, for [`JobState::apply`].
pub(crate) fn state_of(job: &Job) -> JobState {
    JobState {
        status: job.status,
        total_count: job.total_count,
        completed_count: job.completed_count,
        failed_count: job.failed_count,
        cancel_requested: job.cancel_requested,
    }
}

/// A value bound into a dynamically built statement.
enum Arg {
    Int(i64),
    Text(String),
}

/// Builds `WHERE` clauses with numbered placeholders, the same text on both backends.
struct Where {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    fn new() -> Self {
        Where { clauses: Vec::new(), args: Vec::new() }
    }

    /// Adds one placeholder for `arg` and returns it (`$n`).
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }
}

impl Store {
    /// The job `id` of `project`.
    pub async fn get_job(&self, project: ProjectId, id: JobId) -> Result<Job, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND project_id = $2");
        with_db!(self.db(), pool => {
            let row = sqlx::query(&sql).bind(id.0).bind(project.0).fetch_optional(pool).await?;
            row.as_ref().map(job_from_row).transpose()?.ok_or(StoreError::JobNotFound(id.0))
        })
    }

    /// The project's jobs that match `filter`, newest first, one page.
    pub async fn list_jobs(
        &self,
        project: ProjectId,
        filter: &JobFilter,
        paging: &JobPaging,
    ) -> Result<Page<Job>, StoreError> {
        let mut w = Where::new();
        let p = w.arg(Arg::Int(project.0));
        w.push(format!("project_id = {p}"));
        if !filter.statuses.is_empty() {
            let list: Vec<String> = filter.statuses.iter().map(|s| w.arg(Arg::Text(s.as_str().to_owned()))).collect();
            w.push(format!("status IN ({})", list.join(", ")));
        }
        if !filter.kinds.is_empty() {
            let list: Vec<String> = filter.kinds.iter().map(|k| w.arg(Arg::Text(k.as_str().to_owned()))).collect();
            w.push(format!("kind IN ({})", list.join(", ")));
        }
        if let Some(catalog) = &filter.catalog {
            let c = w.arg(Arg::Text(catalog.clone()));
            w.push(format!("catalog_name = {c}"));
        }
        if let Some(after) = filter.created_after {
            let a = w.arg(Arg::Int(after));
            w.push(format!("created_at >= {a}"));
        }
        if let Some(before) = filter.created_before {
            let b = w.arg(Arg::Int(before));
            w.push(format!("created_at < {b}"));
        }
        let (limit, tail) = match paging {
            JobPaging::Cursor { cursor, limit } => {
                if let Some(cursor) = cursor {
                    let last = decode_int_cursor(JOBS_CURSOR, cursor)?;
                    let c = w.arg(Arg::Int(last));
                    w.push(format!("id < {c}"));
                }
                let limit = clamp_limit(*limit);
                // One row more than asked says whether a next page exists.
                (limit, format!("ORDER BY id DESC LIMIT {}", limit + 1))
            }
            JobPaging::Page { page, limit } => {
                let limit = clamp_limit(*limit);
                let offset = u64::from(page.saturating_sub(1)) * u64::from(limit);
                (limit, format!("ORDER BY id DESC LIMIT {} OFFSET {offset}", limit + 1))
            }
        };
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {} {tail}", w.sql());
        let mut jobs = with_db!(self.db(), pool => {
            let mut q = sqlx::query(&sql);
            for arg in &w.args {
                q = match arg {
                    Arg::Int(v) => q.bind(*v),
                    Arg::Text(v) => q.bind(v.as_str()),
                };
            }
            let rows = q.fetch_all(pool).await?;
            rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?
        });
        let more = jobs.len() > limit as usize;
        jobs.truncate(limit as usize);
        let next_cursor = match (more, paging, jobs.last()) {
            (true, JobPaging::Cursor { .. }, Some(last)) => Some(encode_int_cursor(JOBS_CURSOR, last.id.0)),
            _ => None,
        };
        Ok(Page { rows: jobs, next_cursor })
    }

    /// The per-item failures of a job, in input order, one page.
    pub async fn list_job_errors(
        &self,
        project: ProjectId,
        id: JobId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<JobErrorRecord>, StoreError> {
        // Scoping: the job must be the project's, or its errors are nobody's business.
        self.get_job(project, id).await?;
        let after = cursor.map(|c| decode_int_cursor(ERRORS_CURSOR, c)).transpose()?.unwrap_or(-1);
        let limit = clamp_limit(limit);
        let mut errors = with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT item_index, item_id, code, title, detail, pointer FROM job_errors
                 WHERE job_id = $1 AND item_index > $2 ORDER BY item_index LIMIT $3",
            )
            .bind(id.0)
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(JobErrorRecord {
                    index: count(row.int("item_index")?),
                    item_id: row.opt_text("item_id")?,
                    code: row.text("code")?,
                    title: row.text("title")?,
                    detail: row.text("detail")?,
                    pointer: row.opt_text("pointer")?,
                });
            }
            out
        });
        let more = errors.len() > limit as usize;
        errors.truncate(limit as usize);
        let next_cursor = match (more, errors.last()) {
            (true, Some(last)) => Some(encode_int_cursor(ERRORS_CURSOR, to_i64(last.index))),
            _ => None,
        };
        Ok(Page { rows: errors, next_cursor })
    }

    /// Cancels a job (DESIGN §3): a scheduled or queued job is cancelled at once; a running one is
    /// marked and ends at its next chunk boundary; a finished one is
    /// [`StoreError::JobNotCancellable`], and so is a catalog delete at any time. Returns the job
    /// as it is now.
    pub async fn cancel_job(&self, project: ProjectId, id: JobId) -> Result<Job, StoreError> {
        self.cancel(project, id, false).await
    }

    /// [`Store::cancel_job`], save that a failed job is withdrawn (marked cancelled, its counts and
    /// finish time kept; [`JobEvent::Withdrawn`]) instead of refused, as OpenReplay's server does.
    pub async fn cancel_or_withdraw_job(&self, project: ProjectId, id: JobId) -> Result<Job, StoreError> {
        self.cancel(project, id, true).await
    }

    /// Cancels job `id`; a failed one is withdrawn when `withdraw_failed`, else refused.
    async fn cancel(&self, project: ProjectId, id: JobId, withdraw_failed: bool) -> Result<Job, StoreError> {
        let now = now_ms();
        let retention = self.config().retention_ms;
        // The first statement is a no-op write: it locks the row on PostgreSQL (a runner's
        // checkpoint waits for us, or we for it) and takes SQLite's write lock, so the state read
        // here is still the state when we write.
        let lock = format!(
            "UPDATE jobs SET updated_at = updated_at WHERE id = $1 AND project_id = $2 RETURNING {JOB_COLUMNS}"
        );
        let select = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let job = with_db!(self.db(), pool => {
            let mut tx = pool.begin_write(self.write_turns()).await?;
            let decided: Result<Job, StoreError> = async {
                let row = sqlx::query(&lock).bind(id.0).bind(project.0).fetch_optional(&mut *tx).await?;
                let next = match row.as_ref().map(job_from_row).transpose()? {
                    None => return Err(StoreError::JobNotFound(id.0)),
                    // The catalog disappeared when the delete was asked for; a cancelled delete
                    // would leave it hidden with its items forever.
                    Some(job) if job.kind == JobKind::CatalogDelete => {
                        return Err(StoreError::JobNotCancellable { id: id.0, status: job.status })
                    }
                    Some(job) => {
                        let event = if withdraw_failed && job.status == JobStatus::Failed {
                            JobEvent::Withdrawn
                        } else {
                            JobEvent::CancelRequested
                        };
                        match state_of(&job).apply(event) {
                            Ok(next) => (job.status, next),
                            Err(TransitionError::AlreadyFinished(status)) => {
                                return Err(StoreError::JobNotCancellable { id: id.0, status })
                            }
                            Err(e) => return Err(StoreError::Corrupt(e.to_string())),
                        }
                    }
                };
                let (was, next) = next;
                // A withdrawn job finished when it failed: that time, and its expiry, stay.
                let finished = next.status.is_terminal() && !was.is_terminal();
                sqlx::query(
                    "UPDATE jobs SET status = $2, cancel_requested = $3, updated_at = $4,
                         finished_at = CASE WHEN $5 = 1 THEN $4 ELSE finished_at END,
                         expires_at = CASE WHEN $5 = 1 THEN $6 ELSE expires_at END
                     WHERE id = $1",
                )
                .bind(id.0)
                .bind(next.status.as_str())
                .bind(i64::from(next.cancel_requested))
                .bind(now)
                .bind(i64::from(finished))
                .bind(now.saturating_add(retention))
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(&select).bind(id.0).fetch_one(&mut *tx).await?;
                job_from_row(&row)
            }
            .await;
            match decided {
                Ok(job) => {
                    tx.commit().await?;
                    job
                }
                Err(refused) => {
                    // At once, on every way out, not when the pool next uses the connection: until
                    // then the row stays locked, and a runner's claim (SKIP LOCKED) passes over it.
                    // The refusal is the answer; a failed rollback ends the connection anyway.
                    let _ = tx.rollback().await;
                    return Err(refused);
                }
            }
        });
        if job.status.is_terminal() {
            self.job_finished();
        }
        Ok(job)
    }

    /// Waits until the job is terminal, `timeout` passes or the process shuts down
    /// ([`Store::end_waits`]), then returns it as it is. Woken at once by a finish in this process;
    /// re-reads every `wait_poll_interval` for other nodes.
    pub async fn wait_for_job(&self, project: ProjectId, id: JobId, timeout: Duration) -> Result<Job, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before reading, so a finish between the read and the wait is not
            // missed.
            let notified = self.inner.job_finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let job = self.get_job(project, id).await?;
            let now = tokio::time::Instant::now();
            if job.status.is_terminal() || now >= deadline || self.inner.waits_ended.load(Ordering::SeqCst) {
                return Ok(job);
            }
            // The shutdown test waits for this line before it sends its signal.
            tracing::debug!(job = id.0, "long poll waiting for the job to finish");
            let nap = (deadline - now).min(self.config().wait_poll_interval);
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    /// Jobs of the project not yet finished (scheduled, queued or running); Klaviyo caps these.
    pub async fn count_jobs_in_progress(&self, project: ProjectId) -> Result<u64, StoreError> {
        with_db!(self.db(), pool => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM jobs WHERE project_id = $1 AND status IN ('scheduled', 'queued', 'running')",
            )
            .bind(project.0)
            .fetch_one(pool)
            .await?;
            Ok(count(row.int("n")?))
        })
    }

    /// Deletes every job whose `expires_at` is at or before `now_ms`, with its errors and payload;
    /// also drops rate-limit state that has fully replenished and, on PostgreSQL, the queue counts
    /// of catalogs left without work (see `queue::prune_idle_counts`). Returns the number of jobs
    /// deleted.
    ///
    /// Jobs go in batches of 1,000 jobs (`PURGE_BATCH`), each its own transaction taken as background work
    /// (on SQLite a runner's turn at the write lock, after any waiting request), so a purge of a
    /// million expired jobs never holds the database for long or ahead of requests.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let turns = self.write_turns().background();
        let mut purged = 0;
        loop {
            self.hook(Breakpoint::PurgeBatch).await?;
            let deleted = match self.db() {
                Db::Pg(pool) => {
                    let row = sqlx::query(PURGE_BATCH_PG).bind(now_ms).bind(PURGE_BATCH).fetch_one(pool).await?;
                    count(row.int("n")?)
                }
                Db::Sqlite(pool) => {
                    let mut tx = pool.begin_write(&turns).await?;
                    for statement in PURGE_BATCH_SQLITE {
                        sqlx::query(statement).bind(now_ms).bind(PURGE_BATCH).execute(&mut *tx).await?;
                    }
                    let deleted = sqlx::query(
                        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE expires_at <= $1 ORDER BY id LIMIT $2)",
                    )
                    .bind(now_ms)
                    .bind(PURGE_BATCH)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    tx.commit().await?;
                    deleted
                }
            };
            purged += deleted;
            if deleted < count(PURGE_BATCH) {
                break;
            }
        }
        with_db!(self.db(), pool => {
            // A TAT in the past is the same as no state at all.
            sqlx::query("DELETE FROM rate_limits WHERE tat < $1").bind(now_ms as f64).execute(pool).await?;
        });
        if let Db::Pg(pool) = self.db() {
            crate::queue::prune_idle_counts(pool).await?;
        }
        Ok(purged)
    }
}
