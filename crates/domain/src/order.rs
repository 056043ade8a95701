//! The order in which jobs of one catalog take effect (DESIGN §3, "Order").
//!
//! A user who deletes items and then re-adds them expects the catalog to end up as the second
//! request said. So jobs of one catalog take effect **one at a time, in the order they became
//! due**: a job accepted for immediate work became due when it was accepted; a scheduled job
//! becomes due at its `start_at`; ties go to the lower id. Jobs of different catalogs do not wait
//! for each other.
//!
//! [`startable`] is the rule as a pure function: given a set of unfinished jobs, it says which may
//! start now. The runner's claim implements the same rule in SQL on each backend (one statement
//! on SQLite under its write lock; on PostgreSQL a statement that also bumps a per-catalog claim
//! counter so that two nodes cannot both start a job of one catalog), and the store's
//! conformance suite checks the SQL against the outcome this rule implies.
//!
//! Two details make the rule hold under crashes and shutdowns:
//! - A job that has **started** (been claimed once) holds its catalog until it ends, whether its
//!   runner is working on it, has released it at shutdown, has lost its lease, or is waiting out a
//!   retry backoff. Resuming it always comes before anything else of its catalog, so no other job
//!   is ever applied between two of its chunks.
//! - A job that is running under a live lease is being worked on: nothing of its catalog may
//!   start, not even the same job again.

use crate::job::JobStatus;
use alloc::vec::Vec;

/// When a job becomes due: when it was accepted, or its `start_at` if that is later.
///
/// ```
/// use catalog_domain::order::due_at;
/// assert_eq!(due_at(1_000, None), 1_000);
/// assert_eq!(due_at(1_000, Some(5_000)), 5_000); // scheduled for later
/// assert_eq!(due_at(1_000, Some(500)), 1_000); // a start time in the past: due when accepted
/// ```
pub const fn due_at(accepted_at: i64, start_at: Option<i64>) -> i64 {
    match start_at {
        Some(start) if start > accepted_at => start,
        _ => accepted_at,
    }
}

/// An unfinished job (scheduled, queued or running), as the order rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingJob {
    /// The job's id (increasing in acceptance order); breaks ties of `due_at`.
    pub id: i64,
    /// The catalog the job changes: jobs of one catalog are ordered, others are independent.
    pub catalog: i64,
    /// Scheduled, queued or running (a finished job is not pending and is ignored).
    pub status: JobStatus,
    /// When it became (or becomes) due, see [`due_at`].
    pub due_at: i64,
    /// It has been claimed before: some of it may be applied, so it holds its catalog until it
    /// ends.
    pub started: bool,
    /// For a running job: when its lease (or its retry backoff) ends. A running job whose lease
    /// has ended may be claimed again.
    pub lease_expires_at: Option<i64>,
}

impl PendingJob {
    /// The position of the job in its catalog's order: earlier due first, then lower id.
    ///
    /// ```
    /// use catalog_domain::order::PendingJob;
    /// use catalog_domain::JobStatus;
    /// let job = PendingJob { id: 7, catalog: 1, status: JobStatus::Queued, due_at: 500, started: false, lease_expires_at: None };
    /// assert_eq!(job.order_key(), (500, 7));
    /// ```
    pub const fn order_key(&self) -> (i64, i64) {
        (self.due_at, self.id)
    }

    /// Scheduled, queued or running.
    fn is_pending(&self) -> bool {
        !self.status.is_terminal()
    }

    /// Due at `now`: queued, running, or scheduled with its start time come.
    fn is_due(&self, now: i64) -> bool {
        match self.status {
            JobStatus::Scheduled => self.due_at <= now,
            JobStatus::Queued | JobStatus::Running => true,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled => false,
        }
    }

    /// Holds its catalog: started and not finished.
    fn holds_catalog(&self) -> bool {
        self.is_pending() && (self.started || self.status == JobStatus::Running)
    }

    /// A runner may take it now: it is queued or due, or it is running and its lease has ended.
    fn may_be_claimed(&self, now: i64) -> bool {
        match self.status {
            JobStatus::Running => self.lease_expires_at.is_none_or(|end| end <= now),
            _ => self.is_due(now),
        }
    }
}

/// The one job of `catalog_jobs` (all of one catalog) that may start at `now`, if any.
///
/// - A job that holds the catalog (see the module docs) is the only candidate: it may start again
///   when it is queued (released) or its lease has ended, and otherwise nothing may start.
/// - Else the earliest due job by [`PendingJob::order_key`] may start. A scheduled job whose time
///   has not come does not hold back later jobs that are due.
///
/// ```
/// use catalog_domain::order::{next_of_catalog, PendingJob};
/// use catalog_domain::JobStatus;
/// let job = |id, status, due_at| PendingJob { id, catalog: 1, status, due_at, started: false, lease_expires_at: None };
/// let jobs = [job(1, JobStatus::Scheduled, 50), job(2, JobStatus::Queued, 60)];
/// // Once its start time has come, a scheduled job takes its place in the order...
/// assert_eq!(next_of_catalog(&jobs, 70).map(|j| j.id), Some(1));
/// // ...and before that it holds back nothing.
/// assert_eq!(next_of_catalog(&jobs, 40).map(|j| j.id), Some(2));
/// ```
pub fn next_of_catalog<'a>(catalog_jobs: impl IntoIterator<Item = &'a PendingJob>, now: i64) -> Option<&'a PendingJob> {
    let mut holder: Option<&PendingJob> = None;
    let mut head: Option<&PendingJob> = None;
    for job in catalog_jobs.into_iter().filter(|job| job.is_pending()) {
        if job.holds_catalog() {
            // Only one job ever holds a catalog; should data say otherwise, the earliest wins.
            if holder.is_none_or(|h| job.order_key() < h.order_key()) {
                holder = Some(job);
            }
        } else if job.is_due(now) && head.is_none_or(|h| job.order_key() < h.order_key()) {
            head = Some(job);
        }
    }
    match holder {
        Some(holder) => holder.may_be_claimed(now).then_some(holder),
        None => head,
    }
}

/// The jobs that may start at `now`: at most one per catalog, each its catalog's
/// [`next_of_catalog`], oldest due first (by [`PendingJob::order_key`]). A runner claims the
/// first of them it can lease.
///
/// ```
/// use catalog_domain::order::{startable, PendingJob};
/// use catalog_domain::JobStatus;
///
/// let queued = |id, catalog, due_at| PendingJob {
///     id, catalog, status: JobStatus::Queued, due_at, started: false, lease_expires_at: None,
/// };
/// let running = PendingJob { status: JobStatus::Running, started: true, lease_expires_at: Some(60_000), ..queued(1, 7, 10) };
/// let jobs = [running, queued(2, 7, 20), queued(3, 8, 30), queued(4, 8, 40)];
/// // Catalog 7 is busy with job 1; catalog 8 may start its earliest job.
/// assert_eq!(startable(&jobs, 50_000).iter().map(|j| j.id).collect::<Vec<_>>(), [3]);
/// // Once job 1's lease has ended (its runner died), it is resumed before job 2.
/// assert_eq!(startable(&jobs, 70_000).iter().map(|j| j.id).collect::<Vec<_>>(), [1, 3]);
/// ```
pub fn startable(jobs: &[PendingJob], now: i64) -> Vec<&PendingJob> {
    let mut catalogs: Vec<i64> = jobs.iter().map(|job| job.catalog).collect();
    catalogs.sort_unstable();
    catalogs.dedup();
    let mut next: Vec<&PendingJob> = catalogs
        .into_iter()
        .filter_map(|catalog| next_of_catalog(jobs.iter().filter(|job| job.catalog == catalog), now))
        .collect();
    next.sort_by_key(|job| job.order_key());
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, catalog: i64, status: JobStatus, due_at: i64) -> PendingJob {
        PendingJob { id, catalog, status, due_at, started: status == JobStatus::Running, lease_expires_at: None }
    }

    fn ids(jobs: &[PendingJob], now: i64) -> Vec<i64> {
        startable(jobs, now).iter().map(|j| j.id).collect()
    }

    #[test]
    fn queued_jobs_of_a_catalog_start_in_acceptance_order() {
        let jobs =
            [job(2, 1, JobStatus::Queued, 10), job(1, 1, JobStatus::Queued, 10), job(3, 1, JobStatus::Queued, 11)];
        assert_eq!(ids(&jobs, 100), [1]);
    }

    #[test]
    fn a_scheduled_job_takes_its_place_at_its_start_time() {
        // Job 1 was scheduled for t=50; job 2 was accepted at t=60 for immediate work.
        let jobs = [job(1, 1, JobStatus::Scheduled, 50), job(2, 1, JobStatus::Queued, 60)];
        assert_eq!(ids(&jobs, 70), [1], "due at 50, before the job accepted at 60");
        // Scheduled for t=80: job 2 goes first, and job 1 does not hold it back.
        let jobs = [job(1, 1, JobStatus::Scheduled, 80), job(2, 1, JobStatus::Queued, 60)];
        assert_eq!(ids(&jobs, 70), [2]);
    }

    #[test]
    fn a_running_job_under_a_live_lease_blocks_its_catalog_only() {
        let mut running = job(1, 1, JobStatus::Running, 10);
        running.lease_expires_at = Some(1_000);
        let jobs = [running, job(2, 1, JobStatus::Queued, 20), job(3, 2, JobStatus::Queued, 30)];
        assert_eq!(ids(&jobs, 500), [3]);
        assert_eq!(ids(&jobs, 1_001), [1, 3], "an expired lease: the same job is resumed first");
    }

    #[test]
    fn a_running_job_waiting_out_a_backoff_still_holds_its_catalog() {
        let mut backing_off = job(5, 1, JobStatus::Running, 50);
        backing_off.lease_expires_at = Some(900);
        let jobs = [backing_off, job(2, 1, JobStatus::Queued, 20)];
        assert_eq!(ids(&jobs, 100), Vec::<i64>::new(), "job 2 never overtakes a started job");
    }

    #[test]
    fn a_released_job_is_resumed_before_anything_else_of_its_catalog() {
        // Job 4 started, was released at shutdown (queued again); job 3, due earlier, appeared
        // later (a slow insert). Job 4 finishes first: nothing is applied between its chunks.
        let released = PendingJob { started: true, ..job(4, 1, JobStatus::Queued, 40) };
        let jobs = [job(3, 1, JobStatus::Queued, 30), released];
        assert_eq!(ids(&jobs, 100), [4]);
    }

    #[test]
    fn finished_jobs_are_ignored() {
        let jobs = [
            job(1, 1, JobStatus::Completed, 10),
            job(2, 1, JobStatus::Cancelled, 11),
            job(3, 1, JobStatus::Queued, 12),
        ];
        assert_eq!(ids(&jobs, 100), [3]);
    }

    #[test]
    fn catalogs_are_offered_oldest_due_first() {
        let jobs = [job(9, 3, JobStatus::Queued, 5), job(1, 1, JobStatus::Queued, 10), job(2, 2, JobStatus::Queued, 7)];
        assert_eq!(ids(&jobs, 100), [9, 2, 1]);
    }

    #[test]
    fn due_at_is_the_later_of_acceptance_and_start() {
        assert_eq!(due_at(10, None), 10);
        assert_eq!(due_at(10, Some(20)), 20);
        assert_eq!(due_at(10, Some(10)), 10);
        assert_eq!(due_at(10, Some(3)), 10);
    }
}
