//! A lease on a job: what the runner knows of the job it holds, the heartbeat that keeps the lease
//! while a chunk runs, and the ways of letting the job go — handed back at shutdown (the attempt is
//! given back), retried later after a failed chunk (the attempt counts), or ended when it cannot
//! go on (`interrupted`).
//!
//! Every write here is fenced by the attempt number: a runner whose lease was taken over writes
//! nothing.

use super::apply::Payload;
use super::checkpoint::corrupt;
use super::claim::Claimed;
use super::{Runner, Step};
use crate::db::{now_ms, to_i64, with_db, Flavor, RowExt};
use crate::error::StoreError;
use crate::hooks::{Breakpoint, Injected};
use crate::model::JobId;
use catalog_domain::{JobEvent, JobKind, JobState};
use std::time::Duration;

/// A job this runner claimed: step it to the end, or release it.
#[derive(Debug)]
pub struct Lease {
    pub(super) runner: Runner,
    pub(super) job_id: JobId,
    pub(super) project_id: i64,
    pub(super) catalog_id: Option<i64>,
    pub(super) kind: JobKind,
    /// The fencing token: every write of this lease matches only while the job's `attempt` is this.
    pub(super) attempt: i64,
    /// Attempts of the job given back by graceful releases, as of the claim: `attempt - releases`
    /// attempts count toward `max_attempts`.
    pub(super) releases: i64,
    pub(super) flags: i64,
    pub(super) payload: Payload,
    /// The checkpoint as this lease last wrote it: where the next chunk starts.
    pub(super) cursor: usize,
    /// The job's lifecycle state as this lease last wrote it. While the lease holds, nobody else
    /// changes the counts, so the next checkpoint is computed from this without reading the row.
    pub(super) state: JobState,
    /// Set when the job cannot run (unreadable, or out of attempts): the first step fails it.
    pub(super) broken: Option<String>,
    /// Set by [`Lease::chain_next_claim`]: the job's last chunk also claims the next due job.
    pub(super) chain_next: bool,
    /// The job the last chunk claimed, until [`Lease::next_lease`] takes it (its payload unread).
    pub(super) chained: Option<Claimed>,
}

impl Lease {
    /// The job held.
    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    /// The attempt number this lease holds (the fencing token).
    pub fn attempt(&self) -> u32 {
        u32::try_from(self.attempt).unwrap_or(u32::MAX)
    }

    /// Has this job's last chunk also claim the next due job, in the same transaction, for
    /// [`Lease::next_lease`] to hand over. On SQLite, where write transactions take turns, that is
    /// one turn fewer per job, which is most of a small job's cost; it applies to item deletes
    /// (the other kinds, and PostgreSQL, claim as usual). Whoever sets it must take the next lease
    /// when this one is done, and run or release it.
    pub fn chain_next_claim(&mut self) {
        self.chain_next = true;
    }

    /// The job the last chunk claimed (see [`Lease::chain_next_claim`]), with its payload read,
    /// if a job was due then.
    pub async fn next_lease(&mut self) -> Result<Option<Lease>, StoreError> {
        let Some(claimed) = self.chained.take() else {
            return Ok(None);
        };
        let runner = &self.runner;
        Ok(Some(runner.lease(runner.with_payload(claimed).await?)))
    }

    /// The heartbeat of this lease, to run while a chunk does.
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat { runner: self.runner.clone(), job_id: self.job_id, attempt: self.attempt }
    }

    /// Gives the job back to the queue (shutdown): any runner resumes it from its checkpoint at
    /// once, before any other job of its catalog, and the attempt does not count toward
    /// `max_attempts`. A lease that was taken over changes nothing.
    pub async fn release(self) -> Result<(), StoreError> {
        let runner = &self.runner;
        let status = self.state.apply(JobEvent::Released).map_err(|e| corrupt(self.job_id.0, e))?.status;
        let released = with_db!(runner.store.db(), pool => {
            sqlx::query(runner.sql.release)
                .bind(self.job_id.0)
                .bind(self.attempt)
                .bind(status.as_str())
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
        });
        if released > 0 {
            runner.store.wake_runners();
        }
        Ok(())
    }

    /// [`Lease::release`], logging a failure: the lease then simply expires.
    pub(super) async fn release_or_warn(self) {
        let job = self.job_id.0;
        if let Err(e) = self.release().await {
            tracing::warn!(job, error = %e, "release failed; the lease will expire");
        }
    }

    /// Lets go of the job after a chunk failed with `error`: it stays running and holds its
    /// catalog, and any runner resumes it from its checkpoint once the backoff of this attempt
    /// has passed. The attempt counts toward `max_attempts`, after which the job fails with
    /// `error` in its reason.
    pub async fn retry_later(&self, error: &str) -> Result<(), StoreError> {
        self.let_go(error, false).await
    }

    /// Like [`Lease::retry_later`], after a chunk failed with storage trouble (the database
    /// unreachable, busy, read-only or full, see [`StoreError::code`]): the database is at fault,
    /// not the job, so the attempt is given back and does not count toward `max_attempts`. The
    /// backoff still doubles with every attempt, counted or not, up to the longest.
    pub async fn retry_after_trouble(&self, error: &str) -> Result<(), StoreError> {
        self.let_go(error, true).await
    }

    /// Lets go of the job after its chunk failed with `error`: [`Lease::retry_after_trouble`] for
    /// storage trouble, [`Lease::retry_later`] for anything else.
    pub(super) async fn let_go_after(&self, error: &StoreError) -> Result<(), StoreError> {
        self.let_go(&error.to_string(), error.code().is_storage_trouble()).await
    }

    /// Lets go of the job after a failed chunk, giving the attempt back when `give_back`.
    async fn let_go(&self, error: &str, give_back: bool) -> Result<(), StoreError> {
        let runner = &self.runner;
        let used = if give_back { self.attempt } else { self.attempt.saturating_sub(self.releases) };
        let backoff = runner.config.retry_delay(u32::try_from(used).unwrap_or(u32::MAX));
        with_db!(runner.store.db(), pool => {
            sqlx::query(&runner.sql.retry_later)
                .bind(self.job_id.0)
                .bind(self.attempt)
                .bind(to_i64(backoff.as_millis()))
                .bind(error)
                .bind(now_ms())
                .bind(i64::from(give_back))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The slow path, when a checkpoint matched nothing (or the job cannot run at all): reads the
    /// job under the fence and ends it if it was cancelled or cannot run; reports a lost lease.
    pub(super) async fn interrupted(&mut self) -> Result<Step, StoreError> {
        let runner = self.runner.clone();
        let now = now_ms();
        let retention = runner.store.config().retention_ms;
        let step = with_db!(runner.store.db(), pool => {
            let mut tx = pool.begin_write(&runner.turns).await?;
            let fenced = sqlx::query(&runner.sql.fence)
                .bind(self.job_id.0)
                .bind(self.attempt)
                .bind(runner.lease_ms())
                .bind(now)
                .bind(self.catalog_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(fenced) = fenced else {
                tx.rollback().await?;
                tracing::info!(job = self.job_id.0, attempt = self.attempt, "lease lost; writing nothing");
                metrics::counter!("catalogd_runner_leases_lost_total").increment(1);
                return Ok(Step::LeaseLost);
            };
            let (state, cursor) = super::claim::state_from_row(&fenced, self.state.status)?;
            let catalog_gone = self.kind != JobKind::CatalogDelete && fenced.int("alive")? == 0;
            let (event, reason) = if let Some(reason) = self.broken.clone() {
                (JobEvent::Failed, Some(reason))
            } else if state.cancel_requested {
                // The boundary: a cancel seen here stops the job before another chunk is applied.
                (JobEvent::Checkpoint { completed: 0, failed: 0 }, None)
            } else if catalog_gone {
                (JobEvent::Failed, Some("the catalog was deleted".to_owned()))
            } else {
                // Nothing stops the job (the lease was renewed): the caller's next step retries.
                tx.commit().await?;
                self.state = state;
                self.cursor = cursor;
                return Ok(Step::Continue);
            };
            if let Some(reason) = &reason {
                tracing::warn!(job = self.job_id.0, reason = %reason, "job cannot run");
            }
            let next = state.apply(event).map_err(|e| corrupt(self.job_id.0, e))?;
            if next.status.is_terminal() {
                sqlx::query(runner.sql.end_job)
                    .bind(self.job_id.0)
                    .bind(self.attempt)
                    .bind(next.status.as_str())
                    .bind(to_i64(next.completed_count))
                    .bind(to_i64(next.failed_count))
                    .bind(now)
                    .bind(now.saturating_add(retention))
                    .bind(reason.as_deref())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            self.state = next;
            self.cursor = cursor;
            if next.status.is_terminal() { Step::Finished(next.status) } else { Step::Continue }
        });
        if let Step::Finished(_) = step {
            runner.store.job_finished();
        }
        Ok(step)
    }
}

/// Renews a lease while a chunk runs, so that a chunk slower than the lease is not taken over
/// (underway's heartbeat; the lease ends on the database's clock).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    runner: Runner,
    job_id: JobId,
    attempt: i64,
}

impl Heartbeat {
    /// Renews the lease once; `false` when another attempt owns the job (the lease was lost).
    pub async fn beat(&self) -> Result<bool, StoreError> {
        let runner = &self.runner;
        let renewed = with_db!(runner.store.db(), pool => {
            sqlx::query(&runner.sql.heartbeat)
                .bind(self.job_id.0)
                .bind(self.attempt)
                .bind(runner.lease_ms())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(renewed > 0)
    }

    /// Beats every `period` until the lease is lost, then returns. A beat that fails is logged and
    /// tried again a period later: the lease lasts three periods. Under a test's hooks, a beat
    /// comes when the test answers [`Breakpoint::Heartbeat`], not with time.
    pub(super) async fn run(&self, period: Duration) {
        let store = &self.runner.store;
        loop {
            match &store.inner.hooks {
                Some(hooks) => {
                    if hooks.reached(Breakpoint::Heartbeat { job: self.job_id }).await != Injected::Continue {
                        continue;
                    }
                }
                None => tokio::time::sleep(period).await,
            }
            match self.beat().await {
                Ok(true) => tracing::trace!(job = self.job_id.0, "lease renewed"),
                Ok(false) => {
                    tracing::warn!(job = self.job_id.0, attempt = self.attempt, "lease lost while a chunk ran");
                    metrics::counter!("catalogd_runner_leases_lost_total").increment(1);
                    return;
                }
                Err(error) => tracing::warn!(job = self.job_id.0, %error, "heartbeat failed; trying again"),
            }
        }
    }
}
