//! The bounded queue, on both backends: a job that would pass the project's or the whole queue's
//! limit of queued inputs is refused with `queue_full` and creates nothing; another project is
//! not held by one project's limit; inputs drained (jobs completed, failed, cancelled, a running
//! job's checkpoints, a deleted catalog's jobs) free room; concurrent requests never pass a limit
//! in one process; the counters always equal a count over the jobs table; `/metrics`' depth and
//! oldest due age. Limits are small, nothing sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use catalog_domain::{Dialect, ErrorCode, JobStatus};
use catalog_store::queue::{QueueLimit, MAX_RETRY_AFTER_SECS, MIN_RETRY_AFTER_SECS};
use catalog_store::{JobOptions, ProjectId, Store, StoreConfig, StoreError};
use std::time::Duration;

conformance!(
    a_project_at_its_limit_is_refused_and_nothing_is_created,
    the_whole_queue_has_its_own_limit,
    finished_cancelled_and_failed_jobs_free_room,
    a_running_job_counts_only_its_inputs_not_yet_applied,
    concurrent_requests_never_pass_the_limit_in_one_process,
    metrics_show_the_queue_depth_and_the_oldest_due_job,
    a_second_process_sees_the_queue_of_the_first,
    the_writer_reads_the_queue_again_when_its_view_may_be_short,
);

/// A second store on `db`'s database with these limits (the harness opens its own with the
/// defaults).
async fn limited(db: &TestDb, per_project: u64, total: u64) -> Store {
    recounting_after(db, per_project, total, StoreConfig::default().queue_recount_after).await
}

/// As [`limited`], with the job writer's view of the queue kept for `recount_after`.
async fn recounting_after(db: &TestDb, per_project: u64, total: u64, recount_after: Duration) -> Store {
    let config = StoreConfig {
        max_connections: 4,
        max_queued_inputs_per_project: per_project,
        max_queued_inputs: total,
        queue_recount_after: recount_after,
        ..StoreConfig::default()
    };
    Store::connect(&db.url, config).await.unwrap()
}

/// Deletes `n` ids of `catalog` (a job of `n` inputs).
async fn delete(s: &Store, p: ProjectId, catalog: &str, n: usize) -> Result<catalog_store::Job, StoreError> {
    s.bulk_delete_items(p, catalog, Dialect::Native, ids(0..n), &opts()).await.map(|o| o.job.unwrap())
}

/// Jobs stored, whatever their status.
async fn job_rows(db: &TestDb) -> i64 {
    db.scalar("SELECT COUNT(*) FROM jobs").await
}

/// The counters must equal the count over the jobs table they stand for.
async fn assert_counters_match(db: &TestDb) {
    let counted = db
        .scalar(
            "SELECT CAST(COALESCE(SUM(CASE WHEN total_count - completed_count - failed_count > 0
                                      THEN total_count - completed_count - failed_count ELSE 0 END), 0) AS BIGINT)
             FROM jobs WHERE status IN ('queued', 'scheduled', 'running')",
        )
        .await;
    let kept = db.scalar("SELECT CAST(COALESCE(SUM(inputs), 0) AS BIGINT) FROM queue_inputs").await;
    assert_eq!(kept, counted, "queue_inputs drifted from the jobs table");
    let jobs = db.scalar("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'scheduled', 'running')").await;
    assert_eq!(db.scalar("SELECT CAST(COALESCE(SUM(jobs), 0) AS BIGINT) FROM queue_inputs").await, jobs);
    // Catalog by catalog too: the catalogs the counts say have work are those with unfinished jobs,
    // and none is below zero.
    let with_work = db
        .scalar(
            "SELECT COUNT(*) FROM (SELECT DISTINCT project_id, COALESCE(catalog_id, 0) AS c FROM jobs
                 WHERE status IN ('queued', 'scheduled', 'running')) AS unfinished",
        )
        .await;
    let counted_with_work = db
        .scalar(
            "SELECT COUNT(*) FROM (SELECT project_id, catalog_id FROM queue_inputs
                 GROUP BY project_id, catalog_id HAVING SUM(jobs) > 0) AS busy",
        )
        .await;
    assert_eq!(counted_with_work, with_work);
    let below_zero = db
        .scalar(
            "SELECT COUNT(*) FROM (SELECT project_id, catalog_id FROM queue_inputs
                 GROUP BY project_id, catalog_id HAVING SUM(jobs) < 0 OR SUM(inputs) < 0) AS negative",
        )
        .await;
    assert_eq!(below_zero, 0);
    // The counts of catalogs left without work go: at once on SQLite, with the purge on PostgreSQL.
    db.store.purge_expired(0).await.unwrap();
    let idle = db
        .scalar(
            "SELECT COUNT(*) FROM (SELECT project_id, catalog_id FROM queue_inputs
                 GROUP BY project_id, catalog_id HAVING SUM(jobs) <= 0) AS idle",
        )
        .await;
    assert_eq!(idle, 0);
}

fn assert_queue_full(error: StoreError, limit: QueueLimit, excess: u64) {
    assert_eq!(error.code(), ErrorCode::QueueFull);
    assert_eq!(ErrorCode::QueueFull.http_status(), 429);
    match error {
        StoreError::QueueFull { limit: l, excess: e, retry_after_secs } => {
            assert_eq!((l, e), (limit, excess));
            assert!((MIN_RETRY_AFTER_SECS..=MAX_RETRY_AFTER_SECS).contains(&retry_after_secs));
        }
        other => panic!("not queue_full: {other:?}"),
    }
}

async fn a_project_at_its_limit_is_refused_and_nothing_is_created(db: &TestDb) {
    let s = limited(db, 100, 1_000).await;
    let (p, q) = (project(&s, "full").await, project(&s, "other").await);
    s.create_catalog(p, "c", None).await.unwrap();
    s.create_catalog(q, "c", None).await.unwrap();
    delete(&s, p, "c", 60).await.unwrap();
    delete(&s, p, "c", 40).await.unwrap();
    let before = job_rows(db).await;
    // At 100 of 100: one more input is one too many, however small the request.
    assert_queue_full(delete(&s, p, "c", 1).await.unwrap_err(), QueueLimit::Project, 1);
    // A scheduled job counts too: it holds its inputs until it runs.
    let later = JobOptions { start_at: Some(i64::MAX / 2), ..opts() };
    let refused = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..5), &later).await.unwrap_err();
    assert_queue_full(refused, QueueLimit::Project, 5);
    assert_eq!(job_rows(db).await, before, "a refused request created a job");
    // Another project has its own room.
    delete(&s, q, "c", 100).await.unwrap();
    assert_queue_full(delete(&s, q, "c", 1).await.unwrap_err(), QueueLimit::Project, 1);
    // A catalog delete is never refused: it frees room.
    s.delete_catalog(p, "c").await.unwrap();
    assert_counters_match(db).await;
    s.close().await;
}

async fn the_whole_queue_has_its_own_limit(db: &TestDb) {
    let s = limited(db, 100, 150).await;
    let (p, q) = (project(&s, "a").await, project(&s, "b").await);
    s.create_catalog(p, "c", None).await.unwrap();
    s.create_catalog(q, "c", None).await.unwrap();
    delete(&s, p, "c", 100).await.unwrap();
    delete(&s, q, "c", 50).await.unwrap();
    let before = job_rows(db).await;
    assert_queue_full(delete(&s, q, "c", 10).await.unwrap_err(), QueueLimit::Total, 10);
    assert_eq!(job_rows(db).await, before);
    runner(&s, "r", 1_000).run_until_idle().await.unwrap();
    delete(&s, q, "c", 10).await.unwrap();
    assert_counters_match(db).await;
    s.close().await;
}

async fn finished_cancelled_and_failed_jobs_free_room(db: &TestDb) {
    let s = limited(db, 100, 1_000).await;
    let p = project(&s, "drain").await;
    s.create_catalog(p, "c", None).await.unwrap();
    s.create_catalog(p, "d", None).await.unwrap();
    // Completed.
    delete(&s, p, "c", 100).await.unwrap();
    assert!(delete(&s, p, "c", 1).await.is_err());
    runner(&s, "r", 1_000).run_until_idle().await.unwrap();
    assert_counters_match(db).await;
    // Cancelled while queued, and while scheduled.
    let queued = delete(&s, p, "c", 60).await.unwrap();
    let later = JobOptions { start_at: Some(i64::MAX / 2), ..opts() };
    let scheduled = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..40), &later).await.unwrap().job.unwrap();
    assert!(delete(&s, p, "c", 1).await.is_err());
    s.cancel_job(p, queued.id).await.unwrap();
    assert_counters_match(db).await;
    delete(&s, p, "c", 60).await.unwrap();
    s.cancel_job(p, scheduled.id).await.unwrap();
    assert_counters_match(db).await;
    // Failed: the jobs of a deleted catalog fail when the runner reaches them.
    let doomed = delete(&s, p, "d", 40).await.unwrap();
    assert!(delete(&s, p, "c", 1).await.is_err());
    s.delete_catalog(p, "d").await.unwrap();
    runner(&s, "r", 1_000).run_until_idle().await.unwrap();
    assert_eq!(job(&s, p, doomed.id).await.status, JobStatus::Failed);
    assert_counters_match(db).await;
    delete(&s, p, "c", 100).await.unwrap();
    // Purged jobs were finished, and change nothing.
    s.purge_expired(i64::MAX / 2).await.unwrap();
    assert_counters_match(db).await;
    s.close().await;
}

async fn a_running_job_counts_only_its_inputs_not_yet_applied(db: &TestDb) {
    let s = limited(db, 100, 1_000).await;
    let p = project(&s, "run").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let running = delete(&s, p, "c", 100).await.unwrap();
    // What a runner's claim and checkpoints write: the job's counts move, the queue shrinks.
    db.exec(&format!(
        "UPDATE jobs SET status = 'running', completed_count = 30, failed_count = 10 WHERE id = {}",
        running.id.0
    ))
    .await;
    assert_counters_match(db).await;
    delete(&s, p, "c", 40).await.unwrap();
    assert_queue_full(delete(&s, p, "c", 1).await.unwrap_err(), QueueLimit::Project, 1);
    // A lease renewal changes no count and is not a change of the queue.
    db.exec(&format!("UPDATE jobs SET lease_expires_at = 1 WHERE id = {}", running.id.0)).await;
    assert_counters_match(db).await;
    // Deleting an unfinished job (its project removed, say) takes its inputs with it.
    db.exec(&format!("DELETE FROM jobs WHERE id = {}", running.id.0)).await;
    assert_counters_match(db).await;
    delete(&s, p, "c", 60).await.unwrap();
    s.close().await;
}

async fn concurrent_requests_never_pass_the_limit_in_one_process(db: &TestDb) {
    let s = limited(db, 100, 1_000).await;
    let p = project(&s, "race").await;
    s.create_catalog(p, "c", None).await.unwrap();
    // 64 requests of 10 at once: the writer commits them in batches and checks each batch's
    // jobs one after another, so exactly ten fit.
    let requests = (0..64).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { delete(&s, p, "c", 10).await })
    });
    let mut accepted = 0;
    for request in requests.collect::<Vec<_>>() {
        match request.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(error) => assert_eq!(error.code(), ErrorCode::QueueFull),
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(job_rows(db).await, 10);
    assert_counters_match(db).await;
    s.close().await;
}

async fn metrics_show_the_queue_depth_and_the_oldest_due_job(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "m").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let empty = s.job_metrics().await.unwrap();
    assert_eq!((empty.queued_jobs, empty.queued_inputs, empty.oldest_due_ms), (0, 0, 0));
    let first = delete(s, p, "c", 7).await.unwrap();
    delete(s, p, "c", 5).await.unwrap();
    let later = JobOptions { start_at: Some(i64::MAX / 2), ..opts() };
    s.bulk_delete_items(p, "c", Dialect::Native, ids(0..3), &later).await.unwrap();
    // The oldest due job was accepted a minute ago.
    db.exec(&format!("UPDATE jobs SET created_at = created_at - 60000 WHERE id = {}", first.id.0)).await;
    let m = s.job_metrics().await.unwrap();
    assert_eq!((m.queued_jobs, m.queued_inputs), (3, 15));
    assert!(m.oldest_due_ms >= 60_000, "oldest due age {}", m.oldest_due_ms);
    runner(s, "r", 1_000).run_until_idle().await.unwrap();
    let m = s.job_metrics().await.unwrap();
    assert_eq!((m.queued_jobs, m.queued_inputs, m.oldest_due_ms), (1, 3, 0));
}

async fn a_second_process_sees_the_queue_of_the_first(db: &TestDb) {
    // The counters live in the database, not in a process: a store opened later (another process
    // on PostgreSQL, a restart) counts the jobs the first accepted.
    let s = &db.store;
    let p = project(s, "old").await;
    s.create_catalog(p, "c", None).await.unwrap();
    delete(s, p, "c", 90).await.unwrap();
    let limited = limited(db, 100, 1_000).await;
    assert_queue_full(delete(&limited, p, "c", 11).await.unwrap_err(), QueueLimit::Project, 1);
    delete(&limited, p, "c", 10).await.unwrap();
    assert_counters_match(db).await;
    limited.close().await;
}

async fn the_writer_reads_the_queue_again_when_its_view_may_be_short(db: &TestDb) {
    // The job writer admits a batch that fits in what it last read plus what it admitted since,
    // without reading the queue (docs/RULES.md, "Queue bounds"). `db.store` stands for another
    // process on the same database.
    let other = &db.store;
    let hour = Duration::from_secs(3_600);
    // Recounting before every batch: the other process's jobs are seen at once.
    let exact = recounting_after(db, 100, 1_000, Duration::ZERO).await;
    let p = project(&exact, "exact").await;
    exact.create_catalog(p, "c", None).await.unwrap();
    delete(&exact, p, "c", 10).await.unwrap();
    delete(other, p, "c", 85).await.unwrap();
    assert_queue_full(delete(&exact, p, "c", 6).await.unwrap_err(), QueueLimit::Project, 1);
    exact.close().await;
    // A view kept for an hour: what the other process accepts meanwhile is not seen until a batch
    // does not fit in the view; then the queue is read, and only that read refuses.
    let kept = recounting_after(db, 100, 1_000, hour).await;
    let q = project(&kept, "kept").await;
    kept.create_catalog(q, "c", None).await.unwrap();
    delete(&kept, q, "c", 10).await.unwrap();
    delete(other, q, "c", 85).await.unwrap();
    delete(&kept, q, "c", 10).await.unwrap(); // 20 in the view; 105 queued: the tolerance
    assert_queue_full(delete(&kept, q, "c", 81).await.unwrap_err(), QueueLimit::Project, 86);
    // A job this process creates without the writer (a catalog delete, one input) is not in the
    // view either: the next batch reads the queue.
    let r = project(&kept, "deleting").await;
    kept.create_catalog(r, "c", None).await.unwrap();
    kept.create_catalog(r, "gone", None).await.unwrap();
    delete(&kept, r, "c", 99).await.unwrap();
    kept.delete_catalog(r, "gone").await.unwrap();
    assert_queue_full(delete(&kept, r, "c", 1).await.unwrap_err(), QueueLimit::Project, 1);
    // A queue drained since the view was read admits again: a refusal always comes from a read.
    runner(&kept, "r", 1_000).run_until_idle().await.unwrap();
    delete(&kept, r, "c", 100).await.unwrap();
    assert_counters_match(db).await;
    kept.close().await;
}
