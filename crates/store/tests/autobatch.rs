//! Autobatching, on both backends: a catalog's consecutive due jobs of compatible kinds are
//! applied together, in one transaction (on PostgreSQL, a batch of deletes in one statement), and
//! end exactly as if each had run alone — the same data, and for each job its own counts,
//! per-item errors, status, times and events. A batch stops at the first job it cannot join and
//! is a chunk measured in inputs; a job cancelled before the batch locks it leaves it (on
//! PostgreSQL, a batch of deletes that finds one cancelled is applied in a transaction without
//! it); a batch that fails or whose lease is lost writes nothing; two runners batching one catalog
//! end as the requests said. Races are made deterministic with the store's test hooks.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use catalog_domain::{Dialect, JobKind, JobStatus};
use catalog_store::hooks::{Breakpoint, HookFuture, Hooks, Injected};
use catalog_store::{EventFilter, ItemInput, JobId, ProjectId, Runner, RunnerConfig, Store, StoreConfig, StoreError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

conformance!(
    small_deletes_of_a_catalog_are_applied_together_each_with_its_own_counts,
    deletes_applied_together_remove_their_items_from_their_categories,
    writes_applied_together_end_as_if_applied_one_after_another,
    a_batch_stops_at_the_first_job_it_cannot_join,
    a_batch_is_measured_in_inputs,
    a_job_cancelled_before_its_batch_locks_it_leaves_the_batch,
    the_next_batch_is_read_ahead_and_a_job_cancelled_since_leaves_it,
    a_cancel_during_the_batch_waits_and_finds_the_job_finished,
    a_job_accepted_during_a_batch_of_its_catalog_does_not_wait_for_it_on_postgres,
    a_failed_batch_applies_nothing_and_its_retry_applies_everything_once,
    a_batch_whose_leader_lost_its_lease_writes_nothing,
    the_batch_of_deletes_behind_a_batch_is_written_meanwhile_and_commits_after_it,
    a_trailing_batch_is_left_out_when_the_batch_ahead_writes_nothing,
    a_batch_sharing_an_id_with_the_batch_ahead_does_not_trail_it,
    a_job_alone_in_its_batch_is_trailed_by_the_next,
    no_batch_trails_while_another_catalog_may_start,
    two_runners_batching_one_catalog_end_as_the_requests_said,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The test's ends of a stop: told when it is reached, and the answer it waits for.
type StopChannels = (oneshot::Sender<()>, oneshot::Receiver<Injected>);

/// Stops at the first breakpoint `stop_at` matches, tells the test, and answers what the test
/// sends back; every other breakpoint goes on (a heartbeat waits forever: leases are long here).
#[derive(Debug, Clone)]
struct StopOnce {
    stop_at: fn(&Breakpoint) -> bool,
    channels: Arc<Mutex<Option<StopChannels>>>,
}

impl Hooks for StopOnce {
    fn reached(&self, point: Breakpoint) -> HookFuture {
        if matches!(point, Breakpoint::Heartbeat { .. }) {
            return Box::pin(std::future::pending());
        }
        let stopped = if (self.stop_at)(&point) { self.channels.lock().unwrap().take() } else { None };
        Box::pin(async move {
            match stopped {
                Some((reached, answer)) => {
                    let _ = reached.send(());
                    answer.await.unwrap_or(Injected::Continue)
                }
                None => Injected::Continue,
            }
        })
    }
}

/// A store over `db` that stops at the first `stop_at`; the receiver says it was reached, the
/// sender answers it.
async fn stopping_store(
    db: &TestDb,
    stop_at: fn(&Breakpoint) -> bool,
) -> (Store, oneshot::Receiver<()>, oneshot::Sender<Injected>) {
    let (hooks, reached, answer) = stop_once(stop_at);
    let store = Store::connect_with_hooks(&db.url, StoreConfig::default(), Arc::new(hooks)).await.unwrap();
    (store, reached, answer)
}

/// Hooks that stop at the first `stop_at`; the receiver says it was reached, the sender answers it.
fn stop_once(stop_at: fn(&Breakpoint) -> bool) -> (StopOnce, oneshot::Receiver<()>, oneshot::Sender<Injected>) {
    let (reached_tx, reached_rx) = oneshot::channel();
    let (answer_tx, answer_rx) = oneshot::channel();
    (StopOnce { stop_at, channels: Arc::new(Mutex::new(Some((reached_tx, answer_rx)))) }, reached_rx, answer_tx)
}

fn is_batch_formed(point: &Breakpoint) -> bool {
    matches!(point, Breakpoint::BatchFormed { .. })
}

fn is_batch_written(point: &Breakpoint) -> bool {
    matches!(point, Breakpoint::BatchWritten { .. })
}

fn is_chunk_written(point: &Breakpoint) -> bool {
    matches!(point, Breakpoint::ChunkWritten { .. })
}

fn quick_retries(store: &Store, owner: &str, chunk_size: usize) -> Runner {
    let config = RunnerConfig { retry_backoff: Duration::ZERO, ..runner(store, owner, chunk_size).config().clone() };
    Runner::new(store.clone(), config)
}

fn item(id: &str, fields: Value) -> ItemInput {
    ItemInput { id: catalog_domain::RawId::String(id.to_owned()), fields: common::fields(fields) }
}

async fn delete(store: &Store, p: ProjectId, catalog: &str, range: std::ops::Range<usize>) -> JobId {
    store.bulk_delete_items(p, catalog, Dialect::Native, ids(range), &opts()).await.unwrap().job.unwrap().id
}

/// Project `name` with a catalog `c` of `items` items, seeded without the hooks of the store under
/// test.
async fn seeded(db: &TestDb, name: &str, items: usize) -> ProjectId {
    let p = project(&db.store, name).await;
    db.store.create_catalog(p, "c", None).await.unwrap();
    seed(&db.store, p, "c", items).await;
    p
}

/// A catalog `c` of project `name` with `items` items and one 10-id delete job per ten of them,
/// queued through `hs`. The items are seeded without the hooks: the seed's own chunks must not stop.
async fn deletes_to_batch(db: &TestDb, hs: &Store, name: &str, items: usize) -> (ProjectId, Vec<JobId>) {
    let p = seeded(db, name, items).await;
    let mut jobs = Vec::new();
    for start in (0..items).step_by(10) {
        jobs.push(delete(hs, p, "c", start..start + 10).await);
    }
    (p, jobs)
}

/// Like [`deletes_to_batch`], with one 10-item upsert job per ten items (each sets `{"v": 1}`): a
/// batch of writes runs in a transaction on both backends, where the tests that stop inside a
/// batch's transaction stop (a batch of deletes on PostgreSQL is one statement, with no point
/// inside).
async fn upserts_to_batch(db: &TestDb, hs: &Store, name: &str, items: usize) -> (ProjectId, Vec<JobId>) {
    let p = seeded(db, name, items).await;
    let mut jobs = Vec::new();
    for start in (0..items).step_by(10) {
        let upsert = (start..start + 10).map(|i| item(&format!("item-{i:05}"), json!({ "v": 1 }))).collect();
        jobs.push(hs.bulk_upsert_items(p, "c", Dialect::Native, upsert, &opts()).await.unwrap().job.unwrap().id);
    }
    (p, jobs)
}

/// How many items of the catalog `c` of `p` an upsert of [`upserts_to_batch`] has set.
async fn upserted(store: &Store, p: ProjectId) -> usize {
    items_of(store, p, "c").await.values().filter(|fields| **fields == json!({ "v": 1 })).count()
}

/// What a job ended as, for comparing a batched job with the same job run alone.
#[derive(Debug, PartialEq)]
struct Outcome {
    kind: JobKind,
    status: JobStatus,
    total: u64,
    completed: u64,
    failed: u64,
    cursor: u64,
    attempt: u32,
    /// (index, item id, code, pointer) of each per-item error.
    errors: Vec<(u64, Option<String>, String, Option<String>)>,
}

async fn outcome(store: &Store, p: ProjectId, id: JobId) -> Outcome {
    let job = job(store, p, id).await;
    assert!(job.started_at.is_some() && job.finished_at.is_some(), "{job:?}");
    assert!(job.started_at <= job.finished_at && Some(job.created_at) <= job.started_at, "{job:?}");
    let errors = store.list_job_errors(p, id, None, 1000).await.unwrap().rows;
    Outcome {
        kind: job.kind,
        status: job.status,
        total: job.total_count,
        completed: job.completed_count,
        failed: job.failed_count,
        cursor: job.cursor,
        attempt: job.attempt,
        errors: errors.into_iter().map(|e| (e.index, e.item_id, e.code, e.pointer)).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

async fn small_deletes_of_a_catalog_are_applied_together_each_with_its_own_counts(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "deletes").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 100).await;
    let mut jobs = Vec::new();
    for i in 0..4 {
        jobs.push(delete(s, p, "c", i * 10..i * 10 + 10).await);
    }
    jobs.push(delete(s, p, "c", 35..45).await); // half of them already deleted: still done
    let r = runner(s, "r", 1000);
    assert_eq!(r.process_one().await.unwrap(), Some(jobs[0]));
    assert_eq!(r.process_one().await.unwrap(), None, "one claim applied all five");
    for &id in &jobs {
        let done = outcome(s, p, id).await;
        assert_eq!(
            (done.status, done.total, done.completed, done.failed, done.cursor),
            (JobStatus::Completed, 10, 10, 0, 10)
        );
        assert_eq!(done.attempt, 1);
    }
    assert_eq!(item_count(db).await, 55);
    each_reports_its_own_start_and_end(s, p, &jobs).await;
}

/// Each of `jobs`, applied in one batch, reports its own events (docs/EVENTS.md), as if it had run
/// alone in one chunk: created, started (running, nothing done yet), completed with its counts.
async fn each_reports_its_own_start_and_end(store: &Store, p: ProjectId, jobs: &[JobId]) {
    store.latest_event_id().await.unwrap();
    for id in jobs {
        let filter = EventFilter { job: Some(*id), ..EventFilter::default() };
        let events = store.events_after(p, 0, &filter, 100).await.unwrap();
        let seen: Vec<(&str, JobStatus, u64)> =
            events.iter().map(|e| (e.event_type.as_str(), e.job.status, e.job.completed_count)).collect();
        let total = job(store, p, *id).await.total_count;
        assert_eq!(
            seen,
            [
                ("job.created", JobStatus::Queued, 0),
                ("job.started", JobStatus::Running, 0),
                ("job.completed", JobStatus::Completed, total)
            ],
            "job {id}"
        );
    }
}

/// A batch's delete also deletes the items' category memberships (one statement on PostgreSQL,
/// two on SQLite), and no other item's.
async fn deletes_applied_together_remove_their_items_from_their_categories(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "members").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 20).await;
    let members: Vec<String> = [3, 4, 12, 15].iter().map(|i| format!("item-{i:05}")).collect();
    let input = catalog_store::CategoryInput {
        id: catalog_domain::RawId::String("k".into()),
        external_id: None,
        name: Some("k".into()),
        item_ids: Some(members.clone()),
    };
    s.bulk_upsert_categories(p, "c", Dialect::Native, vec![input], &opts()).await.unwrap();
    let r = runner(s, "r", 1000);
    r.run_until_idle().await.unwrap();
    let jobs = [delete(s, p, "c", 0..5).await, delete(s, p, "c", 5..10).await, delete(s, p, "c", 10..13).await];
    assert_eq!(r.process_one().await.unwrap(), Some(jobs[0]));
    assert_eq!(r.process_one().await.unwrap(), None, "one claim applied all three");
    let category = s.list_categories(p, "c", None, 10).await.unwrap().rows;
    assert_eq!(category[0].item_ids, vec![members[3].clone()], "only the item not deleted stays a member");
    assert_eq!(item_count(db).await, 7);
}

async fn writes_applied_together_end_as_if_applied_one_after_another(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "writes").await;
    let send = |catalog: &'static str| {
        let s = s.clone();
        async move {
            let o = opts();
            let native = Dialect::Native;
            let upsert = |items| s.bulk_upsert_items(p, catalog, native, items, &o);
            let mut jobs = vec![
                // A repeated id in one request: the later input wins.
                upsert(vec![item("a", json!({"v": 1})), item("b", json!({"v": 1})), item("a", json!({"v": 2}))]).await,
                // A patch of a missing item fails alone, with its own index.
                s.bulk_patch_items(
                    p,
                    catalog,
                    native,
                    vec![item("a", json!({"w": 1})), item("c", json!({"w": 1}))],
                    false,
                    &o,
                )
                .await,
                upsert(vec![item("c", json!({"v": 3})), item("b", json!({"v": 3}))]).await,
                s.bulk_patch_items(
                    p,
                    catalog,
                    native,
                    vec![item("d", json!({"x": 1})), item("c", json!({"w": 2}))],
                    true,
                    &o,
                )
                .await,
                s.bulk_patch_items(
                    p,
                    catalog,
                    native,
                    vec![item("e", json!({"x": 1})), item("a", json!({"v": 9}))],
                    false,
                    &o,
                )
                .await,
            ];
            jobs.drain(..).map(|job| job.unwrap().job.unwrap().id).collect::<Vec<_>>()
        }
    };
    s.create_catalog(p, "alone", None).await.unwrap();
    s.create_catalog(p, "together", None).await.unwrap();
    let alone = send("alone").await;
    unbatched_runner(s, "one-by-one", 1000).run_until_idle().await.unwrap();
    let together = send("together").await;
    let r = runner(s, "batching", 1000);
    assert_eq!(r.process_one().await.unwrap(), Some(together[0]));
    assert_eq!(r.process_one().await.unwrap(), None, "one claim applied all five");

    let items = items_of(s, p, "together").await;
    assert_eq!(items, items_of(s, p, "alone").await);
    assert_eq!(items.get("a"), Some(&json!({"v": 9, "w": 1})));
    assert_eq!(items.get("c"), Some(&json!({"v": 3, "w": 2})));
    assert_eq!(items.get("e"), None);
    for (a, t) in alone.iter().zip(&together) {
        assert_eq!(outcome(s, p, *t).await, outcome(s, p, *a).await);
    }
    let patch_of_missing = outcome(s, p, together[1]).await;
    assert_eq!((patch_of_missing.completed, patch_of_missing.failed), (1, 1));
    assert_eq!(patch_of_missing.errors, [(1, Some("c".into()), "item_not_found".into(), Some("/items/1".into()))]);
}

async fn a_batch_stops_at_the_first_job_it_cannot_join(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "stops").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 40).await;
    let first = delete(s, p, "c", 0..10).await;
    let second = delete(s, p, "c", 10..20).await;
    let category = catalog_domain::RawId::String("k".into());
    let input =
        catalog_store::CategoryInput { id: category, external_id: None, name: Some("k".into()), item_ids: None };
    let categories = s.bulk_upsert_categories(p, "c", Dialect::Native, vec![input], &opts()).await.unwrap();
    let categories = categories.job.unwrap().id;
    let last = delete(s, p, "c", 20..30).await;
    let r = runner(s, "r", 1000);
    assert_eq!(r.process_one().await.unwrap(), Some(first));
    assert_eq!(job(s, p, second).await.status, JobStatus::Completed);
    assert_eq!(job(s, p, categories).await.status, JobStatus::Queued);
    assert_eq!(job(s, p, last).await.status, JobStatus::Queued, "a job behind the category job waits for it");
    assert_eq!(r.process_one().await.unwrap(), Some(categories));
    assert_eq!(r.process_one().await.unwrap(), Some(last));
    assert_eq!(r.process_one().await.unwrap(), None);
}

async fn a_batch_is_measured_in_inputs(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "inputs").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 100).await;
    let large = delete(s, p, "c", 0..30).await; // chunks of 25 and 5
    let fits = delete(s, p, "c", 30..40).await; // 5 + 10
    let fills = delete(s, p, "c", 40..50).await; // 15 + 10 = 25, the chunk size
                                                 // Would make 28. (It deletes items the batch deletes, so on PostgreSQL it does not trail the
                                                 // batch either: see `a_batch_sharing_an_id_with_the_batch_ahead_does_not_trail_it`.)
    let waits = delete(s, p, "c", 45..48).await;
    let r = runner(s, "r", 25);
    assert_eq!(r.process_one().await.unwrap(), Some(large));
    for id in [large, fits, fills] {
        assert_eq!(job(s, p, id).await.status, JobStatus::Completed);
    }
    assert_eq!(job(s, p, waits).await.status, JobStatus::Queued);
    assert_eq!(r.process_one().await.unwrap(), Some(waits));
    assert_eq!(item_count(db).await, 50);
}

async fn a_job_cancelled_before_its_batch_locks_it_leaves_the_batch(db: &TestDb) {
    let (hs, reached, answer) = stopping_store(db, is_batch_formed).await;
    let (p, jobs) = deletes_to_batch(db, &hs, "cancel-before", 30).await;
    let r = runner(&hs, "r", 1000);
    let running = tokio::spawn(async move { r.process_one().await });
    reached.await.unwrap();
    assert_eq!(hs.cancel_job(p, jobs[1]).await.unwrap().status, JobStatus::Cancelled);
    answer.send(Injected::Continue).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), Some(jobs[0]));
    assert_eq!(job(&hs, p, jobs[0]).await.status, JobStatus::Completed);
    let cancelled = job(&hs, p, jobs[1]).await;
    assert_eq!((cancelled.status, cancelled.completed_count, cancelled.attempt), (JobStatus::Cancelled, 0, 0));
    assert_eq!(job(&hs, p, jobs[2]).await.status, JobStatus::Completed);
    let left: Vec<String> = items_of(&hs, p, "c").await.into_keys().collect();
    let expected: Vec<String> = (10..20).map(|i| format!("item-{i:05}")).collect();
    assert_eq!(left, expected, "the cancelled job's items are untouched");
    hs.close().await;
}

/// Records every breakpoint, and stops where its [`StopOnce`] does.
#[derive(Debug, Clone)]
struct RecordAndStop {
    seen: Arc<BreakpointLog>,
    stop: StopOnce,
}

impl Hooks for RecordAndStop {
    fn reached(&self, point: Breakpoint) -> HookFuture {
        self.seen.record(point);
        self.stop.reached(point)
    }
}

async fn the_next_batch_is_read_ahead_and_a_job_cancelled_since_leaves_it(db: &TestDb) {
    let (stop, reached, answer) = stop_once(|p| matches!(p, Breakpoint::ReadAhead { .. }));
    let seen = Arc::new(BreakpointLog::default());
    let hooks = RecordAndStop { seen: seen.clone(), stop };
    let hs = Store::connect_with_hooks(&db.url, StoreConfig::default(), Arc::new(hooks)).await.unwrap();
    // Nine jobs of ten deletes; batches of three jobs: 0-2, 3-5, 6-8.
    let (p, jobs) = deletes_to_batch(db, &hs, "read-ahead", 90).await;
    let config = RunnerConfig { max_batch_jobs: 3, ..runner(&hs, "r", 1000).config().clone() };
    let r = Runner::new(hs.clone(), config);
    let first = tokio::spawn({
        let r = r.clone();
        async move { r.process_one().await }
    });
    // While the first batch is written, the second is read: job 3 leading, 4 and 5 joining. (The
    // bound only turns a read that never comes into a failure.)
    tokio::time::timeout(Duration::from_secs(60), reached).await.expect("the next batch is read ahead").unwrap();
    assert!(seen.seen().contains(&Breakpoint::ReadAhead { job: jobs[3], joined: 2 }));
    assert_eq!(hs.cancel_job(p, jobs[4]).await.unwrap().status, JobStatus::Cancelled);
    answer.send(Injected::Continue).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), Some(jobs[0]));
    assert_eq!(r.process_one().await.unwrap(), Some(jobs[3]));
    // The third batch's read was started by the second and runs on its own: it must be done before
    // the third is claimed, or it finds `jobs[6]` started and reads from `jobs[7]` on.
    seen.reached(1, |point| matches!(point, Breakpoint::ReadAhead { job, .. } if *job == jobs[6])).await;
    assert_eq!(r.process_one().await.unwrap(), Some(jobs[6]));
    assert_eq!(r.process_one().await.unwrap(), None);
    let seen = seen.seen();
    for leader in [jobs[3], jobs[6]] {
        assert!(seen.contains(&Breakpoint::ReadAheadTaken { job: leader, joined: 2 }), "{leader}: {seen:?}");
    }
    let cancelled = job(&hs, p, jobs[4]).await;
    assert_eq!((cancelled.status, cancelled.completed_count, cancelled.attempt), (JobStatus::Cancelled, 0, 0));
    for (i, &id) in jobs.iter().enumerate().filter(|(i, _)| *i != 4) {
        let done = job(&hs, p, id).await;
        assert_eq!((done.status, done.completed_count), (JobStatus::Completed, 10), "job {i}");
    }
    let left: Vec<String> = items_of(&hs, p, "c").await.into_keys().collect();
    let expected: Vec<String> = (40..50).map(|i| format!("item-{i:05}")).collect();
    assert_eq!(left, expected, "the cancelled job's items are untouched");
    hs.close().await;
}

async fn a_cancel_during_the_batch_waits_and_finds_the_job_finished(db: &TestDb) {
    let (hs, reached, answer) = stopping_store(db, is_chunk_written).await;
    let (p, jobs) = upserts_to_batch(db, &hs, "cancel-during", 20).await;
    let r = runner(&hs, "r", 1000);
    let running = tokio::spawn(async move { r.process_one().await });
    reached.await.unwrap();
    // The batch's transaction is open and holds the job: the cancel waits for its commit, however
    // late it is answered.
    let cancel = tokio::spawn({
        let hs = hs.clone();
        let second = jobs[1];
        async move { hs.cancel_job(p, second).await }
    });
    answer.send(Injected::Continue).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), Some(jobs[0]));
    match cancel.await.unwrap() {
        Err(StoreError::JobNotCancellable { status, .. }) => assert_eq!(status, JobStatus::Completed),
        other => panic!("the cancel should find the job finished: {other:?}"),
    }
    assert_eq!(job(&hs, p, jobs[1]).await.completed_count, 10);
    assert_eq!(upserted(&hs, p).await, 20);
    hs.close().await;
}

async fn a_job_accepted_during_a_batch_of_its_catalog_does_not_wait_for_it_on_postgres(db: &TestDb) {
    let (hs, reached, answer) = stopping_store(db, is_batch_written).await;
    let (p, jobs) = upserts_to_batch(db, &hs, "accept-during", 20).await;
    let r = runner(&hs, "r", 1000);
    let running = tokio::spawn(async move { r.process_one().await });
    reached.await.unwrap();
    // The batch has ended its jobs, which changed the catalog's queue counts, and has not
    // committed. A request for the same catalog adds to those counts too.
    let accept = tokio::spawn({
        let hs = hs.clone();
        async move { delete(&hs, p, "c", 0..5).await }
    });
    let accepted = if db.is_pg() {
        // Job inserts and the runner write different rows of the counts (migration 0010): the
        // request is answered while the batch's transaction is still open. (A guard, not a
        // measurement: before that migration it waited for the commit, which never comes here.)
        let accepted = tokio::time::timeout(Duration::from_secs(60), accept).await;
        let accepted = accepted.expect("the insert waited for the runner's transaction").unwrap();
        answer.send(Injected::Continue).unwrap();
        accepted
    } else {
        // SQLite has one writer at a time: the request goes in after the batch.
        answer.send(Injected::Continue).unwrap();
        accept.await.unwrap()
    };
    assert_eq!(running.await.unwrap().unwrap(), Some(jobs[0]));
    for id in &jobs {
        assert_eq!(job(&hs, p, *id).await.status, JobStatus::Completed);
    }
    assert_eq!(job(&hs, p, accepted).await.status, JobStatus::Queued);
    let queue = hs.job_metrics().await.unwrap();
    assert_eq!((queue.queued_jobs, queue.queued_inputs), (1, 5));
    hs.close().await;
}

async fn a_failed_batch_applies_nothing_and_its_retry_applies_everything_once(db: &TestDb) {
    let (hs, reached, answer) = stopping_store(db, is_chunk_written).await;
    let (p, jobs) = upserts_to_batch(db, &hs, "fails", 30).await;
    let r = quick_retries(&hs, "r", 1000);
    let running = tokio::spawn({
        let r = r.clone();
        async move { r.process_one().await }
    });
    reached.await.unwrap();
    answer.send(Injected::Failure).unwrap();
    assert!(running.await.unwrap().is_err(), "the batch failed");
    assert_eq!(upserted(&hs, p).await, 0, "nothing was applied");
    for id in &jobs[1..] {
        let waiting = job(&hs, p, *id).await;
        assert_eq!((waiting.status, waiting.attempt, waiting.completed_count), (JobStatus::Queued, 0, 0));
    }
    assert_eq!(r.process_one().await.unwrap(), Some(jobs[0]));
    assert_eq!(r.process_one().await.unwrap(), None);
    for id in &jobs {
        let done = job(&hs, p, *id).await;
        assert_eq!((done.status, done.completed_count, done.failed_count), (JobStatus::Completed, 10, 0));
    }
    assert_eq!(job(&hs, p, jobs[0]).await.attempt, 2);
    assert_eq!(upserted(&hs, p).await, 30);
    hs.close().await;
}

async fn a_batch_whose_leader_lost_its_lease_writes_nothing(db: &TestDb) {
    let (hs, reached, answer) = stopping_store(db, is_batch_formed).await;
    let (p, jobs) = deletes_to_batch(db, &hs, "lost", 20).await;
    let r = runner(&hs, "r", 1000);
    let running = tokio::spawn(async move { r.process_one().await });
    reached.await.unwrap();
    // Another runner took the leader over meanwhile (its attempt moved on).
    db.exec(&format!("UPDATE jobs SET attempt = attempt + 1 WHERE id = {}", jobs[0].0)).await;
    answer.send(Injected::Continue).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), Some(jobs[0]));
    assert_eq!(item_count(db).await, 20, "nothing was applied");
    let follower = job(&hs, p, jobs[1]).await;
    assert_eq!((follower.status, follower.attempt), (JobStatus::Queued, 0));
    assert_eq!(job(&hs, p, jobs[0]).await.status, JobStatus::Running, "left to its new owner");
    hs.close().await;
}

/// Jobs of ten deletes (of the ranges `deletes`, of 90 items) in batches of three jobs, on a store
/// whose hooks record every breakpoint and stop at the first `stop_at`.
async fn batches_of_three(
    db: &TestDb,
    name: &str,
    stop_at: fn(&Breakpoint) -> bool,
    deletes: &[std::ops::Range<usize>],
) -> (Store, Runner, ProjectId, Vec<JobId>, Arc<BreakpointLog>, oneshot::Receiver<()>, oneshot::Sender<Injected>) {
    let (stop, reached, answer) = stop_once(stop_at);
    let seen = Arc::new(BreakpointLog::default());
    let hooks = RecordAndStop { seen: seen.clone(), stop };
    let hs = Store::connect_with_hooks(&db.url, StoreConfig::default(), Arc::new(hooks)).await.unwrap();
    let p = seeded(db, name, 90).await;
    let mut jobs = Vec::new();
    for range in deletes {
        jobs.push(delete(&hs, p, "c", range.clone()).await);
    }
    let config = RunnerConfig { max_batch_jobs: 3, ..runner(&hs, "r", 1000).config().clone() };
    (hs.clone(), Runner::new(hs, config), p, jobs, seen, reached, answer)
}

/// The ranges of nine jobs deleting ninety items, ten each.
fn nine_tens() -> Vec<std::ops::Range<usize>> {
    (0..90).step_by(10).map(|start| start..start + 10).collect()
}

fn is_trailing(point: &Breakpoint) -> bool {
    matches!(point, Breakpoint::TrailingBatchWritten { .. })
}

/// On PostgreSQL the batch of deletes behind a batch of deletes is written while that one's
/// statement runs, on another connection, and commits only after it (`runner/trailing.rs`): while
/// it is open its jobs are still queued, its items still there, and no runner may start a job of
/// the catalog. In the end every job reports its own start and end, and the jobs' events follow
/// the catalog's order. On SQLite the same requests end the same way, one batch per claim.
async fn the_batch_of_deletes_behind_a_batch_is_written_meanwhile_and_commits_after_it(db: &TestDb) {
    let (hs, r, p, jobs, seen, reached, answer) = batches_of_three(db, "trailing", is_trailing, &nine_tens()).await;
    let running = tokio::spawn({
        let r = r.clone();
        async move { r.process_one().await }
    });
    if db.is_pg() {
        tokio::time::timeout(Duration::from_secs(60), reached).await.expect("a trailing batch").unwrap();
        assert!(
            seen.seen().contains(&Breakpoint::TrailingBatchWritten { job: jobs[3], joined: 2 }),
            "{:?}",
            seen.seen()
        );
        for &id in &jobs[3..6] {
            assert_eq!(job(&hs, p, id).await.status, JobStatus::Queued, "not committed yet");
        }
        let items = items_of(&hs, p, "c").await;
        assert!((30..60).all(|i| items.contains_key(&format!("item-{i:05}"))), "its deletes are not committed yet");
        let other = Runner::new(hs.clone(), runner(&hs, "other", 1000).config().clone());
        assert_eq!(other.process_one().await.unwrap(), None, "the catalog is held meanwhile");
        answer.send(Injected::Continue).unwrap();
    } else {
        drop(answer);
    }
    assert_eq!(running.await.unwrap().unwrap(), Some(jobs[0]));
    let applied = if db.is_pg() { 6 } else { 3 };
    assert_eq!(item_count(db).await, 90 - 10 * applied as i64);
    for (i, &id) in jobs.iter().enumerate() {
        let expected = if i < applied { JobStatus::Completed } else { JobStatus::Queued };
        assert_eq!(job(&hs, p, id).await.status, expected, "job {i}");
    }
    r.run_until_idle().await.unwrap();
    assert_eq!(item_count(db).await, 0);
    each_reports_its_own_start_and_end(&hs, p, &jobs).await;
    // The catalog's order, in the jobs' times and in the events' ids.
    let mut last_end = 0;
    for &id in &jobs {
        let done = job(&hs, p, id).await;
        assert!(done.started_at.unwrap() >= last_end, "job {id} started before the one ahead of it ended");
        last_end = done.finished_at.unwrap();
    }
    let ends: Vec<JobId> = hs
        .events_after(p, 0, &EventFilter::default(), 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type.as_str() == "job.completed" && jobs.contains(&e.job.id))
        .map(|e| e.job.id)
        .collect();
    assert_eq!(ends, jobs, "completed events in the catalog's order");
    hs.close().await;
}

/// A trailing batch commits only after the batch ahead of it: when that one writes nothing (its
/// leader's lease was taken over), neither does the trailing batch.
async fn a_trailing_batch_is_left_out_when_the_batch_ahead_writes_nothing(db: &TestDb) {
    let (hs, r, p, jobs, seen, reached, answer) =
        batches_of_three(db, "trailing-left", is_batch_formed, &nine_tens()).await;
    let running = tokio::spawn(async move { r.process_one().await });
    reached.await.unwrap();
    db.exec(&format!("UPDATE jobs SET attempt = attempt + 1 WHERE id = {}", jobs[0].0)).await;
    answer.send(Injected::Continue).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), Some(jobs[0]));
    let trailed = seen.count(is_trailing);
    assert_eq!(trailed, usize::from(db.is_pg()), "on PostgreSQL the trailing batch was written, then rolled back");
    assert_eq!(item_count(db).await, 90, "nothing was applied");
    for &id in &jobs[1..] {
        let waiting = job(&hs, p, id).await;
        assert_eq!((waiting.status, waiting.attempt), (JobStatus::Queued, 0));
    }
    hs.close().await;
}

/// A batch that deletes an id the batch ahead of it also deletes waits for that one to commit, as
/// any batch does: its transaction would otherwise wait for the rows of a statement it must commit
/// after.
async fn a_batch_sharing_an_id_with_the_batch_ahead_does_not_trail_it(db: &TestDb) {
    // The second batch's first job deletes five items the first batch deletes.
    let deletes = [0..10, 10..20, 20..30, 25..35, 40..50, 50..60];
    let (hs, r, p, jobs, seen, _reached, _answer) = batches_of_three(db, "trailing-shared", |_| false, &deletes).await;
    assert_eq!(r.process_one().await.unwrap(), Some(jobs[0]));
    assert_eq!(seen.count(is_trailing), 0, "{:?}", seen.seen());
    assert_eq!(item_count(db).await, 60, "one batch applied");
    assert_eq!(job(&hs, p, jobs[3]).await.status, JobStatus::Queued);
    r.run_until_idle().await.unwrap();
    let left: Vec<String> = items_of(&hs, p, "c").await.into_keys().collect();
    let expected: Vec<String> = (35..40).chain(60..90).map(|i| format!("item-{i:05}")).collect();
    assert_eq!(left, expected);
    each_reports_its_own_start_and_end(&hs, p, &jobs).await;
    hs.close().await;
}

/// A job whose last chunk fills a batch by itself is applied alone; on PostgreSQL the next job (here
/// as large, so alone too) trails it all the same.
async fn a_job_alone_in_its_batch_is_trailed_by_the_next(db: &TestDb) {
    let (hs, _, p, jobs, seen, _reached, _answer) =
        batches_of_three(db, "trailing-alone", |_| false, &[0..10, 10..20, 20..30]).await;
    let r = runner(&hs, "r", 10);
    assert_eq!(r.process_one().await.unwrap(), Some(jobs[0]));
    let trailed: Vec<Breakpoint> = seen.seen().into_iter().filter(is_trailing).collect();
    if db.is_pg() {
        assert_eq!(trailed, [Breakpoint::TrailingBatchWritten { job: jobs[1], joined: 0 }]);
        assert_eq!(job(&hs, p, jobs[1]).await.status, JobStatus::Completed);
    } else {
        assert_eq!(trailed, []);
        assert_eq!(job(&hs, p, jobs[1]).await.status, JobStatus::Queued);
    }
    assert_eq!(job(&hs, p, jobs[2]).await.status, JobStatus::Queued);
    r.run_until_idle().await.unwrap();
    assert_eq!(item_count(db).await, 60);
    each_reports_its_own_start_and_end(&hs, p, &jobs).await;
    hs.close().await;
}

/// Projects are served in turn: while another project's catalog has a job that may start, a
/// catalog's next batch does not trail its batch (the worker claims again, and the turn goes to
/// the other project).
async fn no_batch_trails_while_another_catalog_may_start(db: &TestDb) {
    let other = seeded(db, "turn-other", 10).await;
    let (hs, r, p, jobs, seen, reached, answer) =
        batches_of_three(db, "turn-first", is_batch_formed, &nine_tens()).await;
    let running = tokio::spawn({
        let r = r.clone();
        async move { r.process_one().await }
    });
    reached.await.unwrap();
    let waiting = delete(&db.store, other, "c", 0..10).await;
    answer.send(Injected::Continue).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), Some(jobs[0]));
    assert_eq!(seen.count(is_trailing), 0, "{:?}", seen.seen());
    assert_eq!(job(&hs, p, jobs[3]).await.status, JobStatus::Queued);
    assert_eq!(r.process_one().await.unwrap(), Some(waiting), "the other project's turn");
    // Alone again, the catalog's batches trail one another on PostgreSQL.
    assert_eq!(r.process_one().await.unwrap(), Some(jobs[3]));
    assert_eq!(seen.count(is_trailing), usize::from(db.is_pg()));
    r.run_until_idle().await.unwrap();
    assert_eq!(item_count(db).await, 0);
    hs.close().await;
}

/// One request of the two-runner test.
enum Request {
    Upsert(std::ops::Range<usize>, usize),
    Patch(std::ops::Range<usize>, usize),
    Delete(std::ops::Range<usize>),
}

async fn two_runners_batching_one_catalog_end_as_the_requests_said(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "two").await;
    s.create_catalog(p, "c", None).await.unwrap();
    // Two stores: on PostgreSQL, two processes would be no different. Batches of 7 inputs at most.
    let other = Store::connect(&db.url, StoreConfig::default()).await.unwrap();
    let two_workers = |store: &Store, owner| RunnerConfig { workers: 2, ..runner(store, owner, 7).config().clone() };
    let first = start(Runner::new(s.clone(), two_workers(s, "one")));
    let second = start(Runner::new(other.clone(), two_workers(&other, "two")));
    let name = |i: usize| format!("item-{i:05}");
    let mut model: BTreeMap<String, Value> = BTreeMap::new();
    let mut jobs = Vec::new();
    for step in 0..120usize {
        let at = (step * 7) % 20;
        let request = match step % 5 {
            0 | 1 => Request::Upsert(at..at + 4, step),
            2 => Request::Patch(at..at + 3, step),
            _ => Request::Delete(at..at + 2),
        };
        let id = match &request {
            Request::Upsert(range, v) => {
                let items = range.clone().map(|i| item(&name(i), json!({ "v": v }))).collect();
                for i in range.clone() {
                    model.insert(name(i), json!({ "v": v }));
                }
                s.bulk_upsert_items(p, "c", Dialect::Native, items, &opts()).await
            }
            Request::Patch(range, v) => {
                let items = range.clone().map(|i| item(&name(i), json!({ "p": v }))).collect();
                for i in range.clone() {
                    if let Some(Value::Object(fields)) = model.get_mut(&name(i)) {
                        fields.insert("p".into(), json!(v));
                    }
                }
                s.bulk_patch_items(p, "c", Dialect::Native, items, false, &opts()).await
            }
            Request::Delete(range) => {
                for i in range.clone() {
                    model.remove(&name(i));
                }
                s.bulk_delete_items(p, "c", Dialect::Native, ids(range.clone()), &opts()).await
            }
        };
        jobs.push(id.unwrap().job.unwrap().id);
    }
    for id in &jobs {
        let done = finished(s, p, *id).await;
        assert_eq!(done.completed_count + done.failed_count, done.total_count, "{done:?}");
        // On SQLite a runner that starts takes back the leases of any other owner (one process
        // owns the file), so a job the first runner claimed before the second started may run
        // again from its checkpoint; on PostgreSQL no lease is taken from a live runner.
        if db.is_pg() {
            assert_eq!(done.attempt, 1, "{done:?}");
        }
    }
    stop(first).await;
    stop(second).await;
    other.close().await;
    assert_eq!(items_of(s, p, "c").await, model);
}
