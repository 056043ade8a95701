//! The bounded queue: limits on the inputs waiting to be applied, per project and overall.
//!
//! "Queued inputs" are the inputs of unfinished jobs (queued, scheduled or running; a running job
//! counts those not yet applied). Migrations 0008 and 0010 keep them per catalog in `queue_inputs`,
//! by triggers in the transaction of every job write, so the counts are those of the jobs table
//! whichever process or path wrote it: rows per catalog and side, job inserts adding to their
//! writer's side and every later change subtracting from side 1, so that accepting jobs never
//! waits for a runner's transaction of the same catalog, nor for another process's writer
//! (migration 0010 says why). A catalog's queue is the sum of its rows. The job writer (`enqueue.rs`) checks each
//! group-commit batch against them, adding the batch's jobs in order, and refuses each job that
//! would pass a limit with [`StoreError::QueueFull`]; the others are inserted as usual. It reads
//! them only when the batch may not fit in what it last read plus what it admitted since
//! (`QueueView`). A refused request
//! creates nothing. The rules and their tolerance are in docs/RULES.md, "Queue bounds".

use crate::db::{count, Db, RowExt};
use crate::error::StoreError;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default of [`crate::StoreConfig::max_queued_inputs_per_project`].
pub const DEFAULT_MAX_QUEUED_INPUTS_PER_PROJECT: u64 = 10_000_000;
/// Default of [`crate::StoreConfig::max_queued_inputs`]: five projects at their own limit. At the
/// drain rates measured on two cores (25,000 to 200,000 inputs/s, issue 13) that is 4 to 33
/// minutes of work, and the payloads of 50 million ids or small items are a few GB of database:
/// enough for bursts, small enough that the disk and the wait stay bounded.
pub const DEFAULT_MAX_QUEUED_INPUTS: u64 = 50_000_000;

/// The shortest `Retry-After` a refused request is told.
pub const MIN_RETRY_AFTER_SECS: u64 = 1;
/// The longest `Retry-After` a refused request is told: the drain rate can change much within
/// five minutes (runners added, a backlog of large jobs finishing), so a client should look again.
pub const MAX_RETRY_AFTER_SECS: u64 = 300;
/// The `Retry-After` when this process has measured no drain (its runners applied nothing in the
/// window, or it runs none).
pub const UNKNOWN_RATE_RETRY_AFTER_SECS: u64 = 30;
/// The window the drain rate is measured over.
const DRAIN_WINDOW: Duration = Duration::from_secs(60);
/// Samples closer together than this are not kept (the window holds at most ~60).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Seconds until `excess` inputs drain at `rate` inputs per second: `ceil(excess / rate)`, within
/// [`MIN_RETRY_AFTER_SECS`]..=[`MAX_RETRY_AFTER_SECS`]; [`UNKNOWN_RATE_RETRY_AFTER_SECS`] without
/// a positive rate.
pub fn retry_after_secs(excess: u64, rate: Option<f64>) -> u64 {
    match rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => {
            let secs = (excess as f64 / rate).ceil();
            if secs >= MAX_RETRY_AFTER_SECS as f64 {
                MAX_RETRY_AFTER_SECS
            } else {
                // In range and integral: the cast is exact.
                (secs as u64).max(MIN_RETRY_AFTER_SECS)
            }
        }
        _ => UNKNOWN_RATE_RETRY_AFTER_SECS,
    }
}

/// Which limit a refused job would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueLimit {
    /// The project's own ([`crate::StoreConfig::max_queued_inputs_per_project`]).
    Project,
    /// The whole queue's ([`crate::StoreConfig::max_queued_inputs`]).
    Total,
}

impl std::fmt::Display for QueueLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QueueLimit::Project => "the project's queue",
            QueueLimit::Total => "the queue",
        })
    }
}

/// The limits, and what the `Retry-After` of a refusal is computed from; shared by the store and
/// its job writer.
#[derive(Debug)]
pub(crate) struct QueueBounds {
    pub(crate) per_project: u64,
    pub(crate) total: u64,
    /// How long the job writer admits batches from its [`QueueView`] before reading the queue
    /// again ([`crate::StoreConfig::queue_recount_after`]).
    recount_after: Duration,
    /// Jobs this process created without the job writer (a catalog's delete or emptying), counted
    /// so that the writer's [`QueueView`] knows it missed them.
    created_elsewhere: AtomicU64,
    /// Inputs this process's runners have applied since it started (see `Inner::items_processed`).
    pub(crate) processed: Arc<AtomicU64>,
    /// (when, `processed` then), oldest first, over the last [`DRAIN_WINDOW`].
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl QueueBounds {
    pub(crate) fn new(per_project: u64, total: u64, recount_after: Duration, processed: Arc<AtomicU64>) -> QueueBounds {
        QueueBounds {
            per_project,
            total,
            recount_after,
            created_elsewhere: AtomicU64::new(0),
            processed,
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Records that this process created a job without the job writer, after its commit: the
    /// writer's next batch reads the queue again.
    pub(crate) fn created_elsewhere(&self) {
        self.created_elsewhere.fetch_add(1, Ordering::Release);
    }

    fn created_elsewhere_so_far(&self) -> u64 {
        self.created_elsewhere.load(Ordering::Acquire)
    }

    /// True when neither limit can be reached (both `u64::MAX`): the writer then reads nothing.
    pub(crate) fn unbounded(&self) -> bool {
        self.per_project == u64::MAX && self.total == u64::MAX
    }

    /// Records a sample of the processed count now, and answers the inputs applied per second over
    /// the window: `None` until the samples span a second.
    pub(crate) fn drain_rate(&self) -> Option<f64> {
        let now = Instant::now();
        let processed = self.processed.load(Ordering::Relaxed);
        // A poisoned lock only means a panic elsewhere while sampling; the samples stay usable.
        let mut samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if samples.back().is_none_or(|(at, _)| now.duration_since(*at) >= SAMPLE_EVERY) {
            samples.push_back((now, processed));
        }
        while samples.front().is_some_and(|(at, _)| now.duration_since(*at) > DRAIN_WINDOW) {
            samples.pop_front();
        }
        let (since, then) = *samples.front()?;
        let span = now.duration_since(since).as_secs_f64();
        (span >= SAMPLE_EVERY.as_secs_f64()).then(|| processed.saturating_sub(then) as f64 / span)
    }

    /// For each of `jobs` (project, inputs), in order: `None` when it fits, or the limit it would
    /// pass and by how many inputs. `queued` is what is queued now, per project, and `total`
    /// overall; each job that fits is added before the next is checked.
    pub(crate) fn admit(
        &self,
        jobs: impl Iterator<Item = (i64, u64)>,
        mut queued: HashMap<i64, u64>,
        mut total: u64,
    ) -> Vec<Option<(QueueLimit, u64)>> {
        jobs.map(|(project, inputs)| {
            let mine = queued.entry(project).or_default();
            let project_excess = (*mine + inputs).saturating_sub(self.per_project);
            let total_excess = (total + inputs).saturating_sub(self.total);
            if project_excess == 0 && total_excess == 0 {
                *mine += inputs;
                total += inputs;
                None
            } else if project_excess >= total_excess {
                Some((QueueLimit::Project, project_excess))
            } else {
                Some((QueueLimit::Total, total_excess))
            }
        })
        .collect()
    }
}

/// Default of [`crate::StoreConfig::queue_recount_after`], in milliseconds (`catalogd serve
/// --queue-recount-ms`).
pub const DEFAULT_QUEUE_RECOUNT_MS: u64 = 100;
/// Default of [`crate::StoreConfig::queue_recount_after`].
pub const DEFAULT_QUEUE_RECOUNT_AFTER: Duration = Duration::from_millis(DEFAULT_QUEUE_RECOUNT_MS);

/// What the job writer last read of the queue, plus every input it admitted since: while only
/// this process adds jobs, at least what is queued now (runners only take away). A batch that fits
/// in it fits in the queue, so the writer admits it without reading the counts again; a batch that
/// does not, or a view older than its `max_age` or missing a project of the batch, sends the
/// writer back to the database. So a refusal is always decided on a fresh read, and the read
/// costs a round trip per `max_age` rather than per batch (on SQLite a fifth of what accepting
/// small jobs cost; docs/RULES.md, "Queue bounds").
#[derive(Debug)]
pub(crate) struct QueueView {
    begun: ReadBegun,
    /// Every project the read asked for (those with nothing queued at 0).
    per_project: HashMap<i64, u64>,
    total: u64,
}

/// The moment a read of the queue began, noted before it is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBegun {
    /// What other processes insert after this is not in the view.
    at: Instant,
    /// [`QueueBounds::created_elsewhere`]'s count then.
    created_elsewhere: u64,
}

impl ReadBegun {
    /// Now, for a read about to be sent.
    pub(crate) fn now(bounds: &QueueBounds) -> ReadBegun {
        ReadBegun { at: Instant::now(), created_elsewhere: bounds.created_elsewhere_so_far() }
    }
}

impl QueueView {
    /// The view of a read `begun` that asked for `projects` and found `per_project` (projects
    /// with nothing queued may be absent) and `total`.
    pub(crate) fn read(
        begun: ReadBegun,
        projects: &[i64],
        mut per_project: HashMap<i64, u64>,
        total: u64,
    ) -> QueueView {
        for project in projects {
            per_project.entry(*project).or_default();
        }
        QueueView { begun, per_project, total }
    }

    /// The queued inputs as read, for [`QueueBounds::admit`].
    pub(crate) fn counts(&self) -> (HashMap<i64, u64>, u64) {
        (self.per_project.clone(), self.total)
    }

    /// True when every job of `jobs` (project, inputs) fits within `bounds` on top of this view,
    /// which is then younger than the bounds' `recount_after` at `now`, holds each job's project,
    /// and has missed no job this process created elsewhere; the jobs are then counted in. False
    /// (and nothing counted) when the writer must read the queue.
    pub(crate) fn admit_all(&mut self, bounds: &QueueBounds, jobs: &[(i64, u64)], now: Instant) -> bool {
        let young = now.checked_duration_since(self.begun.at).is_some_and(|age| age < bounds.recount_after);
        if !young
            || self.begun.created_elsewhere != bounds.created_elsewhere_so_far()
            || jobs.iter().any(|(project, _)| !self.per_project.contains_key(project))
        {
            return false;
        }
        let (per_project, total) = self.counts();
        if bounds.admit(jobs.iter().copied(), per_project, total).iter().any(Option::is_some) {
            return false;
        }
        self.count_in(jobs.iter().copied());
        true
    }

    /// Counts `jobs` (project, inputs) in, as admitted.
    pub(crate) fn count_in(&mut self, jobs: impl Iterator<Item = (i64, u64)>) {
        for (project, inputs) in jobs {
            *self.per_project.entry(project).or_default() += inputs;
            self.total += inputs;
        }
    }
}

/// The SQL reading what `projects` have queued, and (project id -1) the whole queue.
const QUEUED_SQLITE: &str = "SELECT project_id, SUM(inputs) AS inputs FROM queue_inputs
     WHERE project_id IN (SELECT value FROM json_each($1)) GROUP BY project_id
     UNION ALL SELECT -1, COALESCE(SUM(inputs), 0) FROM queue_inputs";
const QUEUED_PG: &str = "SELECT project_id, SUM(inputs)::int8 AS inputs FROM queue_inputs
     WHERE project_id = ANY($1) GROUP BY project_id
     UNION ALL SELECT -1, COALESCE(SUM(inputs), 0)::int8 FROM queue_inputs";

/// The inputs queued now for each of `projects`, and overall. On SQLite `connection` is used when
/// given (the writer's own, warm), the pool otherwise.
pub(crate) async fn queued(
    db: &Db,
    connection: Option<&mut sqlx::SqliteConnection>,
    projects: &[i64],
) -> Result<(HashMap<i64, u64>, u64), StoreError> {
    let rows = match (db, connection) {
        (Db::Pg(pool), _) => sqlx::query(QUEUED_PG).bind(projects).fetch_all(pool).await?,
        (Db::Sqlite(pool), connection) => {
            let list = serde_json::to_string(projects).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let query = sqlx::query(QUEUED_SQLITE).bind(list);
            let rows = match connection {
                Some(connection) => query.fetch_all(connection).await?,
                None => query.fetch_all(pool).await?,
            };
            return read(&rows);
        }
    };
    read(&rows)
}

fn read<R: RowExt>(rows: &[R]) -> Result<(HashMap<i64, u64>, u64), StoreError> {
    let mut per_project = HashMap::new();
    let mut total = 0;
    for row in rows {
        let inputs = count(row.int("inputs")?);
        match row.int("project_id")? {
            -1 => total = inputs,
            project => {
                per_project.insert(project, inputs);
            }
        }
    }
    Ok((per_project, total))
}

/// PostgreSQL: deletes the counts of the catalogs left without work, answering how many rows went.
///
/// There a job's end no longer deletes them (it would wait for the job writers, see migration
/// 0010); the purge calls this. The rows of the catalogs whose counts sum to nothing are locked
/// first, in key order as the triggers upsert them, and a catalog's locked rows are deleted only if
/// their own counts, as locked, sum to nothing: a locked row cannot change until this commits, so
/// what is deleted adds up to zero and every catalog's sum stays what it was, whatever rows other
/// transactions add meanwhile (a writer waiting on a locked row inserts a fresh one after).
pub(crate) async fn prune_idle_counts(pool: &sqlx::PgPool) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let locked = sqlx::query(
        "SELECT project_id, catalog_id, side::int8 AS side, jobs, inputs FROM queue_inputs
         WHERE (project_id, catalog_id) IN (SELECT project_id, catalog_id FROM queue_inputs
                                            GROUP BY project_id, catalog_id HAVING SUM(jobs) = 0 AND SUM(inputs) = 0)
         ORDER BY project_id, catalog_id, side FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut sums: HashMap<(i64, i64), (i64, i64, Vec<i64>)> = HashMap::new();
    for row in &locked {
        let entry = sums.entry((row.int("project_id")?, row.int("catalog_id")?)).or_default();
        entry.0 += row.int("jobs")?;
        entry.1 += row.int("inputs")?;
        entry.2.push(row.int("side")?);
    }
    let (mut projects, mut catalogs, mut sides) = (Vec::new(), Vec::new(), Vec::new());
    for ((project, catalog), (jobs, inputs, its_sides)) in sums {
        if jobs == 0 && inputs == 0 {
            for side in its_sides {
                projects.push(project);
                catalogs.push(catalog);
                sides.push(side);
            }
        }
    }
    if projects.is_empty() {
        return Ok(0);
    }
    let deleted = sqlx::query(
        "DELETE FROM queue_inputs WHERE (project_id, catalog_id, side) IN
             (SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[]))",
    )
    .bind(&projects)
    .bind(&catalogs)
    .bind(&sides)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// An error like `error` for the other requests of a batch whose queue read failed (a database
/// error cannot be cloned): storage trouble stays storage trouble (503), anything else is internal.
pub(crate) fn echo(error: &StoreError) -> StoreError {
    if error.code().is_storage_trouble() {
        StoreError::Database(sqlx::Error::Io(std::io::Error::other(error.to_string())))
    } else {
        StoreError::Corrupt(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(per_project: u64, total: u64) -> QueueBounds {
        recounting_after(per_project, total, DEFAULT_QUEUE_RECOUNT_AFTER)
    }

    fn recounting_after(per_project: u64, total: u64, recount_after: Duration) -> QueueBounds {
        QueueBounds::new(per_project, total, recount_after, Arc::new(AtomicU64::new(0)))
    }

    #[test]
    fn retry_after_is_the_excess_over_the_rate_within_bounds() {
        assert_eq!(retry_after_secs(1_000, Some(100.0)), 10);
        assert_eq!(retry_after_secs(1_001, Some(100.0)), 11);
        assert_eq!(retry_after_secs(1, Some(1e9)), MIN_RETRY_AFTER_SECS);
        assert_eq!(retry_after_secs(0, Some(5.0)), MIN_RETRY_AFTER_SECS);
        assert_eq!(retry_after_secs(u64::MAX, Some(0.001)), MAX_RETRY_AFTER_SECS);
        assert_eq!(retry_after_secs(10, None), UNKNOWN_RATE_RETRY_AFTER_SECS);
        assert_eq!(retry_after_secs(10, Some(0.0)), UNKNOWN_RATE_RETRY_AFTER_SECS);
        assert_eq!(retry_after_secs(10, Some(f64::NAN)), UNKNOWN_RATE_RETRY_AFTER_SECS);
    }

    #[test]
    fn jobs_of_a_batch_count_against_the_limits_in_order() {
        let b = bounds(100, 150);
        let queued = HashMap::from([(1, 90), (2, 0)]);
        let verdicts = b.admit([(1, 10), (1, 1), (2, 40), (2, 30), (3, 10), (2, 5)].into_iter(), queued, 90);
        assert_eq!(
            verdicts,
            vec![
                None,                           // project 1 reaches 100, exactly its limit
                Some((QueueLimit::Project, 1)), // one past it
                None,                           // the total reaches 140
                Some((QueueLimit::Total, 20)),  // the total would be 170
                None,                           // the total reaches 150, exactly its limit
                Some((QueueLimit::Total, 5)),   // 155
            ]
        );
    }

    #[test]
    fn a_job_larger_than_the_limit_is_always_refused_and_the_larger_excess_is_named() {
        let b = bounds(10, 1_000);
        assert_eq!(b.admit([(1, 11)].into_iter(), HashMap::new(), 0), vec![Some((QueueLimit::Project, 1))]);
        let b = bounds(10, 12);
        assert_eq!(b.admit([(1, 11)].into_iter(), HashMap::new(), 5), vec![Some((QueueLimit::Total, 4))]);
    }

    #[test]
    fn a_view_admits_what_fits_and_sends_the_rest_back_to_the_database() {
        let b = bounds(100, 150);
        let begun = ReadBegun::now(&b);
        let soon = begun.at + Duration::from_millis(10);
        let mut view = QueueView::read(begun, &[1, 2], HashMap::from([(1, 60)]), 60);
        // Fits: counted in, so the next batch sees it.
        assert!(view.admit_all(&b, &[(1, 30), (2, 50)], soon));
        assert_eq!(view.counts(), (HashMap::from([(1, 90), (2, 50)]), 140));
        // One job of the batch would pass a limit in the view: the queue must be read (it may
        // have drained), and nothing of the batch is counted.
        assert!(!view.admit_all(&b, &[(2, 5), (1, 11)], soon));
        assert!(!view.admit_all(&b, &[(2, 11)], soon));
        assert_eq!(view.counts(), (HashMap::from([(1, 90), (2, 50)]), 140));
        // Exactly at both limits still fits.
        assert!(view.admit_all(&b, &[(1, 10)], soon));
        // A project the read did not ask for: unknown, not empty.
        let mut view = QueueView::read(begun, &[1], HashMap::new(), 0);
        assert!(!view.admit_all(&b, &[(3, 1)], soon));
        // Too old: other processes may have added since.
        assert!(!view.admit_all(&b, &[(1, 1)], begun.at + DEFAULT_QUEUE_RECOUNT_AFTER));
        assert!(!view.admit_all(&recounting_after(100, 150, Duration::ZERO), &[(1, 1)], soon));
        assert!(view.admit_all(&b, &[(1, 1)], soon));
        // A job this process created without the writer (a catalog delete) is not in the view.
        b.created_elsewhere();
        assert!(!view.admit_all(&b, &[(1, 1)], soon));
        let mut view = QueueView::read(ReadBegun::now(&b), &[1], HashMap::new(), 0);
        assert!(view.admit_all(&b, &[(1, 1)], Instant::now()));
    }

    #[test]
    fn no_rate_until_the_samples_span_a_second() {
        let b = bounds(1, 1);
        assert_eq!(b.drain_rate(), None);
    }
}
