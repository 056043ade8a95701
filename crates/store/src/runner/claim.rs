//! Claiming: taking the next job under a fresh lease, by the order rule of
//! [`catalog_domain::order`] (at most one job of a catalog at a time, each catalog's jobs in the
//! order they became due) and the turns of [`catalog_domain::turns`] (of the jobs that may start,
//! the least recently served project's, then catalog's; none of a project at its cap of running
//! catalogs), and reading its payload once.

use super::apply::Payload;
use super::checkpoint::corrupt;
use super::lease::Lease;
use super::Runner;
use crate::db::{count, sqlite_script, with_db, RowExt};
use crate::error::StoreError;
use crate::jobs::{joined_payload, PAYLOAD_PARTS};
use crate::model::JobId;
use catalog_domain::{JobKind, JobState, JobStatus};

/// How many times a claim on PostgreSQL is tried again when another node claimed in the same
/// catalog or project between its snapshot and its write (each try sees the other's claim).
const CLAIM_TRIES: usize = 4;

/// A job just claimed, as its row reads after the claim.
#[derive(Debug)]
pub(super) struct Claimed {
    job_id: JobId,
    project_id: i64,
    catalog_id: Option<i64>,
    kind: String,
    attempt: i64,
    releases: i64,
    last_error: Option<String>,
    flags: i64,
    /// The state the claim moved the job to (from its status before, by `JobState::claim`).
    state: JobState,
    cursor: usize,
    payload: Option<String>,
}

impl Claimed {
    /// Reads a claimed row (the claim's columns and `previous_status`); `payload` when the claim
    /// answered it.
    pub(super) fn from_row(row: &impl RowExt, payload: Option<String>) -> Result<Claimed, StoreError> {
        let job_id = JobId(row.int("id")?);
        let previous: JobStatus =
            row.text("previous_status")?.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?;
        let (before, cursor) = state_from_row(row, previous)?;
        let state = before.claim().map_err(|e| corrupt(job_id.0, e))?;
        Ok(Claimed {
            job_id,
            project_id: row.int("project_id")?,
            catalog_id: row.opt_int("catalog_id")?,
            kind: row.text("kind")?,
            attempt: row.int("attempt")?,
            releases: row.int("releases")?,
            last_error: row.opt_text("last_error")?,
            flags: row.int("flags")?,
            state,
            cursor,
            payload,
        })
    }
}

/// A job row's lifecycle state (with `status`, which the row may not say) and cursor, from the
/// columns the claim and the fence answer.
pub(super) fn state_from_row(row: &impl RowExt, status: JobStatus) -> Result<(JobState, usize), StoreError> {
    let state = JobState {
        status,
        total_count: count(row.int("total_count")?),
        completed_count: count(row.int("completed_count")?),
        failed_count: count(row.int("failed_count")?),
        cancel_requested: row.int("cancel_requested")? != 0,
    };
    let cursor = usize::try_from(row.int("cursor")?).unwrap_or(usize::MAX);
    Ok((state, cursor))
}

/// What one claim statement did.
enum Claim {
    Claimed(Claimed),
    /// Nothing may start now.
    Nothing,
    /// PostgreSQL: another node claimed in the picked job's catalog or project meanwhile.
    Raced,
}

impl Runner {
    /// Whether a claim that found the listed catalogs all busy should still walk the jobs: when no
    /// walk happened in the last poll interval (then this one counts as it).
    fn walk_due(&self) -> bool {
        let now = std::time::Instant::now();
        let Ok(mut last) = self.last_walk.lock() else { return true };
        match *last {
            Some(at) if now.duration_since(at) < self.config.poll_interval => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

impl Runner {
    /// Claims the next job the order rule lets start, in turn (`catalog_domain::turns`), if any,
    /// under a fresh lease.
    pub async fn claim(&self) -> Result<Option<Lease>, StoreError> {
        for _ in 0..CLAIM_TRIES {
            match self.claim_once().await? {
                Claim::Claimed(claimed) => return Ok(Some(self.lease(claimed))),
                Claim::Nothing => return Ok(None),
                Claim::Raced => tracing::debug!("another runner claimed in the same catalog or project; trying again"),
            }
        }
        Ok(None)
    }

    async fn claim_once(&self) -> Result<Claim, StoreError> {
        let running = self.claimed_status.as_str();
        // A claim lost in a database crash is harmless (the job is simply due again), so its
        // commit need not wait for the WAL flush. The payload is read once per claim.
        match self.store.db() {
            crate::db::Db::Pg(pool) => {
                // The catalogs of `queue_inputs` first; the jobs' own indexes only when that finds
                // nothing.
                for statement in [&self.sql.claim_likely, &self.sql.claim] {
                    let row = sqlx::query(statement)
                        .bind(&self.config.owner)
                        .bind(self.lease_ms())
                        .bind(running)
                        .fetch_one(pool)
                        .await?;
                    if row.opt_int("id")?.is_some() {
                        // Payloads are stored in parts on SQLite only: here the first part is all of it.
                        return Ok(Claim::Claimed(Claimed::from_row(&row, row.opt_text("payload")?)?));
                    }
                    if row.int("candidates")? > 0 {
                        return Ok(Claim::Raced);
                    }
                    // Catalogs with work, none startable (each holds a started job): walking the
                    // jobs would find the same. Idle workers are woken by every accepted batch, and
                    // walked them on each (seen in `pg_stat_activity` under two processes' load);
                    // the walk, which guards against counts that missed a catalog, is kept to one
                    // per poll interval then.
                    if row.opt_int("catalogs_with_work")?.unwrap_or(0) > 0 && !self.walk_due() {
                        return Ok(Claim::Nothing);
                    }
                }
                Ok(Claim::Nothing)
            }
            crate::db::Db::Sqlite(pool) => {
                let relaxed = self.store.relaxed_sqlite().unwrap_or(pool);
                let claim = sqlx::query(&self.sql.claim).bind(&self.config.owner).bind(self.lease_ms()).bind(running);
                match sqlite_script(relaxed, &self.turns, claim).await?.first() {
                    Some(row) => Ok(Claim::Claimed(self.with_payload(Claimed::from_row(row, None)?).await?)),
                    None => Ok(Claim::Nothing),
                }
            }
        }
    }

    /// SQLite: reads the payload of a job just claimed, after the claim's commit and off the
    /// write lock (a payload never changes).
    pub(super) async fn with_payload(&self, mut claimed: Claimed) -> Result<Claimed, StoreError> {
        if claimed.payload.is_none() {
            with_db!(self.store.db(), pool => {
                let parts = sqlx::query(PAYLOAD_PARTS).bind(claimed.job_id.0).fetch_all(pool).await?;
                claimed.payload = joined_payload(&parts)?;
            });
        }
        Ok(claimed)
    }

    /// The lease on a job claimed with its payload. A job that cannot run (unknown kind,
    /// unreadable payload, out of attempts) gets a lease whose first step fails it.
    pub(super) fn lease(&self, claimed: Claimed) -> Lease {
        let mut broken = None;
        let kind = match claimed.kind.parse::<JobKind>() {
            Ok(kind) => kind,
            Err(e) => {
                broken = Some(e.to_string());
                JobKind::CatalogDelete
            }
        };
        let payload = match Payload::parse(kind, claimed.payload.as_deref()) {
            Ok(payload) => payload,
            Err(reason) => {
                broken.get_or_insert(reason);
                Payload::None
            }
        };
        let used = claimed.attempt.saturating_sub(claimed.releases);
        if used > i64::from(self.config.max_attempts) {
            let tried = used - 1;
            broken.get_or_insert_with(|| match &claimed.last_error {
                Some(error) => format!("gave up after {tried} attempts; the last one failed: {error}"),
                None => format!("gave up after {tried} attempts"),
            });
        }
        tracing::debug!(job = claimed.job_id.0, attempt = claimed.attempt, owner = %self.config.owner, "claimed job");
        Lease {
            runner: self.clone(),
            job_id: claimed.job_id,
            project_id: claimed.project_id,
            catalog_id: claimed.catalog_id,
            kind,
            attempt: claimed.attempt,
            releases: claimed.releases,
            flags: claimed.flags,
            payload,
            cursor: claimed.cursor,
            state: claimed.state,
            broken,
            chain_next: false,
            chained: None,
        }
    }

    /// What [`Runner::run`] does first. On SQLite, where one process owns the file, a lease held
    /// by another owner is a killed predecessor's: its jobs are taken back at once (their leases
    /// end now) instead of after the whole lease, and the lost attempt still counts toward
    /// `max_attempts`. On PostgreSQL a lease may belong to a live process and is left to expire.
    /// Returns how many leases ended.
    pub async fn take_back_leases(&self) -> Result<u64, StoreError> {
        let crate::db::Db::Sqlite(pool) = self.store.db() else {
            return Ok(0);
        };
        Ok(sqlx::query(&self.sql.take_back_leases).bind(&self.config.owner).execute(pool).await?.rows_affected())
    }
}
