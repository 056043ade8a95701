//! The job events outbox (migration 0013 on SQLite, 0014 on PostgreSQL) and the storage half of webhooks, on both backends:
//! every job change is an event written with it, ids only grow in the order events become
//! readable (PostgreSQL: a transaction that commits late is never skipped), events go with their
//! job, and deliveries are made once per (webhook, event), leased one per webhook, retried and
//! recorded.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use catalog_domain::events::{DeliveryStatus, EventType};
use catalog_domain::{Dialect, ErrorCode, JobStatus};
use catalog_store::{AttemptOutcome, Event, EventFilter, JobId, ProjectId, Store};

mod common;
use common::*;

async fn all_events(store: &Store, p: ProjectId, filter: &EventFilter) -> Vec<Event> {
    store.latest_event_id().await.unwrap();
    store.events_after(p, 0, filter, 500).await.unwrap()
}

fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

async fn every_change_of_a_job_is_an_event_in_order(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "p").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 5).await;
    let job = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..5), &opts()).await.unwrap().job.unwrap();
    unbatched_runner(s, "r", 2).run_until_idle().await.unwrap();

    let events = all_events(s, p, &EventFilter { job: Some(job.id), ..EventFilter::default() }).await;
    assert_eq!(
        types(&events),
        ["job.created", "job.started", "job.progress", "job.progress", "job.completed"],
        "{events:#?}"
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids grow: {events:#?}");
    let counts: Vec<u64> = events.iter().map(|e| e.job.completed_count).collect();
    assert_eq!(counts, [0, 0, 2, 4, 5]);
    let statuses: Vec<JobStatus> = events.iter().map(|e| e.job.status).collect();
    use JobStatus::*;
    assert_eq!(statuses, [Queued, Running, Running, Running, Completed]);
    assert_eq!(events[4].job.finished_at, s.get_job(p, job.id).await.unwrap().finished_at);
    assert_eq!(events[0].job.catalog_name.as_deref(), Some("c"));
    assert_eq!(events[4].created_at, events[4].job.updated_at);

    // The seed's job is the project's first: its events come first, and a resumed read starts
    // after the id it is given.
    let everything = all_events(s, p, &EventFilter::default()).await;
    assert_eq!(everything.len(), 3 + 5, "{:?}", types(&everything));
    let rest = s.events_after(p, everything[2].id, &EventFilter::default(), 500).await.unwrap();
    assert_eq!(rest, everything[3..]);
    let two = s.events_after(p, 0, &EventFilter::default(), 2).await.unwrap();
    assert_eq!(two, everything[..2]);
}

async fn filters_and_projects_scope_the_events(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "p").await;
    let other = project(s, "q").await;
    s.create_catalog(p, "a", None).await.unwrap();
    s.create_catalog(p, "b", None).await.unwrap();
    s.create_catalog(other, "a", None).await.unwrap();
    let in_a = s.bulk_delete_items(p, "a", Dialect::Native, ids(0..2), &opts()).await.unwrap().job.unwrap();
    let in_b = s.bulk_delete_items(p, "b", Dialect::Native, ids(0..2), &opts()).await.unwrap().job.unwrap();
    s.bulk_delete_items(other, "a", Dialect::Native, ids(0..2), &opts()).await.unwrap();
    s.cancel_job(p, in_b.id).await.unwrap();
    runner(s, "r", 100).run_until_idle().await.unwrap();

    let mine = all_events(s, p, &EventFilter::default()).await;
    assert!(mine.iter().all(|e| e.job.project_id == p), "{mine:#?}");
    assert_eq!(mine.len(), 3 + 2, "{:?}", types(&mine));
    let of_b = all_events(s, p, &EventFilter { catalog: Some("b".into()), ..EventFilter::default() }).await;
    assert_eq!(types(&of_b), ["job.created", "job.cancelled"]);
    let ends = EventFilter { types: vec![EventType::Completed, EventType::Cancelled], ..EventFilter::default() };
    let ends = all_events(s, p, &ends).await;
    assert_eq!(ends.iter().map(|e| e.job.id).collect::<Vec<_>>(), [in_b.id, in_a.id]);
    let running = EventFilter { statuses: vec![JobStatus::Running], ..EventFilter::default() };
    assert_eq!(types(&all_events(s, p, &running).await), ["job.started"]);
    let nobody = EventFilter { job: Some(JobId(in_a.id.0 + 1_000)), ..EventFilter::default() };
    assert!(all_events(s, p, &nobody).await.is_empty());
}

async fn events_are_purged_with_their_job(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "p").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let job = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..2), &opts()).await.unwrap().job.unwrap();
    runner(s, "r", 100).run_until_idle().await.unwrap();
    let hook = s.create_webhook(p, "https://example.com/h", &[EventType::Completed], None, 0).await.unwrap();
    // The webhook was created after the events: they are not its business.
    let latest = s.latest_event_id().await.unwrap();
    assert_eq!(s.fan_out_deliveries(latest, 1).await.unwrap(), 0);
    db.exec(&format!("UPDATE webhooks SET cursor = 0 WHERE id = {}", hook.id)).await;
    assert_eq!(s.fan_out_deliveries(latest, 1).await.unwrap(), 1);

    let expires = s.get_job(p, job.id).await.unwrap().expires_at.unwrap();
    assert_eq!(s.purge_expired(expires).await.unwrap(), 1);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM job_events").await, 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    // Ids are never given twice, even once the newest events are gone.
    s.bulk_delete_items(p, "c", Dialect::Native, ids(0..2), &opts()).await.unwrap();
    let next = all_events(s, p, &EventFilter::default()).await;
    assert!(next[0].id > latest, "{} after {latest}", next[0].id);
}

/// PostgreSQL: transaction A writes an event first and commits last; B's event, written later and
/// committed meanwhile, has the higher id. A reader that read B's and resumed after it would skip
/// A's: so neither is readable while A is open (A holds the horizon below its event), and both are
/// once it commits, in id order. Both transactions are held open by the test itself, no sleeping.
async fn a_late_commit_is_never_skipped(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "p").await;
    // Two catalogs: a job change also updates its catalog's queue counts, whose row lock would
    // make B wait for A.
    s.create_catalog(p, "a", None).await.unwrap();
    s.create_catalog(p, "b", None).await.unwrap();
    let first = s.bulk_delete_items(p, "a", Dialect::Native, ids(0..2), &opts()).await.unwrap().job.unwrap();
    let second = s.bulk_delete_items(p, "b", Dialect::Native, ids(2..4), &opts()).await.unwrap().job.unwrap();
    let seen = all_events(s, p, &EventFilter::default()).await;
    assert_eq!(seen.len(), 2);
    let mut last = seen[1].id;
    let cancel = |id: JobId| {
        format!("UPDATE jobs SET status = 'cancelled', finished_at = 1, updated_at = 1 WHERE id = {}", id.0)
    };

    let mut collected = Vec::new();
    let mut read = async |store: &Store| {
        let new = store.events_after(p, last, &EventFilter::default(), 500).await.unwrap();
        if let Some(e) = new.last() {
            last = e.id;
        }
        collected.extend(new.iter().map(|e| e.job.id));
        new.len()
    };
    match &db.raw {
        Raw::Pg(pool) => {
            let mut a = pool.begin().await.unwrap();
            sqlx::query(&cancel(first.id)).execute(&mut *a).await.unwrap();
            let mut b = pool.begin().await.unwrap();
            sqlx::query(&cancel(second.id)).execute(&mut *b).await.unwrap();
            b.commit().await.unwrap();
            for _ in 0..3 {
                assert_eq!(read(s).await, 0, "B's event is above A's, which is not committed");
            }
            assert!(s.readable_event_horizon().await.unwrap() < db.scalar("SELECT last_value FROM job_event_id").await);
            a.commit().await.unwrap();
            assert_eq!(read(s).await, 2, "A's event, then B's");
        }
        Raw::Sqlite(pool) => {
            // One writer: a second write transaction cannot even begin while the first is open,
            // so events commit in id order; the same story, serialized.
            let mut a = pool.begin().await.unwrap();
            sqlx::query(&cancel(first.id)).execute(&mut *a).await.unwrap();
            assert_eq!(read(s).await, 0);
            a.commit().await.unwrap();
            assert_eq!(read(s).await, 1);
            sqlx::query(&cancel(second.id)).execute(pool).await.unwrap();
            assert_eq!(read(s).await, 1);
        }
    }
    // Every event was read once, whatever the order of the commits.
    collected.sort();
    assert_eq!(collected, [first.id, second.id]);
    let all = all_events(s, p, &EventFilter::default()).await;
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all.len(), 4);
}

/// PostgreSQL: a transaction that wrote an event and rolled back leaves a gap in the ids; once it
/// has ended the horizon passes the gap, and events written after it are read as usual. On SQLite
/// the same story holds trivially.
async fn a_rolled_back_event_does_not_hold_readers(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "p").await;
    s.create_catalog(p, "a", None).await.unwrap();
    let first = s.bulk_delete_items(p, "a", Dialect::Native, ids(0..2), &opts()).await.unwrap().job.unwrap();
    assert_eq!(all_events(s, p, &EventFilter::default()).await.len(), 1);
    let cancel =
        format!("UPDATE jobs SET status = 'cancelled', finished_at = 1, updated_at = 1 WHERE id = {}", first.id.0);
    match &db.raw {
        Raw::Pg(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&cancel).execute(&mut *tx).await.unwrap();
            let gap = db.scalar("SELECT last_value FROM job_event_id").await;
            assert!(s.readable_event_horizon().await.unwrap() < gap, "held below the open transaction's event");
            tx.rollback().await.unwrap();
            assert!(s.readable_event_horizon().await.unwrap() >= gap, "the horizon passed the gap");
        }
        Raw::Sqlite(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&cancel).execute(&mut *tx).await.unwrap();
            tx.rollback().await.unwrap();
        }
    }
    s.cancel_job(p, first.id).await.unwrap();
    assert_eq!(types(&all_events(s, p, &EventFilter::default()).await), ["job.created", "job.cancelled"]);
}

/// `latest_event_id` answers only once every event at or below its answer is readable: on
/// PostgreSQL it waits for a transaction still writing one. The test sees it wait in the lock
/// table (no sleeping), then commits the writer.
async fn the_latest_event_id_waits_for_writers_below_it(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "p").await;
    s.create_catalog(p, "a", None).await.unwrap();
    let job = s.bulk_delete_items(p, "a", Dialect::Native, ids(0..2), &opts()).await.unwrap().job.unwrap();
    let before = s.latest_event_id().await.unwrap();
    let Raw::Pg(pool) = &db.raw else {
        // One writer: every event given an id has committed.
        assert_eq!(before, db.scalar("SELECT MAX(id) FROM job_events").await);
        return;
    };
    let mut open = pool.begin().await.unwrap();
    sqlx::query(&format!(
        "UPDATE jobs SET status = 'cancelled', finished_at = 1, updated_at = 1 WHERE id = {}",
        job.id.0
    ))
    .execute(&mut *open)
    .await
    .unwrap();
    let store = s.clone();
    let latest = tokio::spawn(async move { store.latest_event_id().await.unwrap() });
    let waiting = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let mut polls = 0;
    while db.scalar(waiting).await == 0 {
        polls += 1;
        assert!(polls < 100_000, "latest_event_id never waited for the open writer");
        tokio::task::yield_now().await;
    }
    assert!(!latest.is_finished());
    open.commit().await.unwrap();
    let latest = latest.await.unwrap();
    assert!(latest > before);
    let read = s.events_after(p, before, &EventFilter::default(), 500).await.unwrap();
    assert_eq!(types(&read), ["job.cancelled"]);
    assert_eq!(read[0].id, latest);
}

async fn webhooks_are_kept_per_project(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "p").await;
    let other = project(s, "q").await;
    let hook = s
        .create_webhook(p, "https://example.com/h", &[EventType::Failed, EventType::Completed], Some("d"), 5)
        .await
        .unwrap();
    assert!(hook.secret.starts_with("whsec_") && hook.secret.len() > 40);
    assert_eq!(hook.events, [EventType::Completed, EventType::Failed]);
    assert_eq!(s.list_webhooks(p).await.unwrap(), std::slice::from_ref(&hook));
    assert!(s.list_webhooks(other).await.unwrap().is_empty());
    assert_eq!(s.get_webhook(other, hook.id).await.unwrap_err().code(), ErrorCode::WebhookNotFound);
    let rotated = s.rotate_webhook_secret(p, hook.id).await.unwrap();
    assert_ne!(rotated.secret, hook.secret);
    assert_eq!(s.get_webhook(p, hook.id).await.unwrap().secret, rotated.secret);
    assert_eq!(s.delete_webhook(other, hook.id).await.unwrap_err().code(), ErrorCode::WebhookNotFound);
    s.delete_webhook(p, hook.id).await.unwrap();
    assert_eq!(s.get_webhook(p, hook.id).await.unwrap_err().code(), ErrorCode::WebhookNotFound);
}

async fn deliveries_are_made_once_leased_retried_and_recorded(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "p").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let ends = s.create_webhook(p, "https://example.com/ends", &[EventType::Completed], None, 0).await.unwrap();
    let all = s.create_webhook(p, "https://example.com/all", EventType::ALL, None, 0).await.unwrap();
    let job = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..2), &opts()).await.unwrap().job.unwrap();
    runner(s, "r", 100).run_until_idle().await.unwrap();
    let latest = s.latest_event_id().await.unwrap();
    // created, started, completed for `all`; completed for `ends`.
    assert!(!s.deliveries_due(100).await.unwrap());
    assert_eq!(s.fan_out_deliveries(latest, 100).await.unwrap(), 4);
    assert!(s.deliveries_due(100).await.unwrap());
    assert!(!s.deliveries_due(99).await.unwrap(), "not due before they were made");
    assert_eq!(s.fan_out_deliveries(latest, 100).await.unwrap(), 0, "made once");

    // One per webhook in flight: the oldest of each.
    let mut claimed = s.claim_due_deliveries(100, 30_000, 10).await.unwrap();
    claimed.sort_by_key(|d| d.webhook_id);
    assert_eq!(claimed.iter().map(|d| d.webhook_id).collect::<Vec<_>>(), [ends.id, all.id]);
    assert_eq!(claimed[0].event.event_type, EventType::Completed);
    assert_eq!(claimed[1].event.event_type, EventType::Created);
    assert_eq!(claimed[1].event.job.id, job.id);
    assert!(s.claim_due_deliveries(101, 30_000, 10).await.unwrap().is_empty(), "both webhooks are busy");

    let failed =
        AttemptOutcome::Failed { response_code: Some(500), error: "HTTP 500".into(), next_attempt_at: Some(1_000) };
    s.record_delivery(claimed[0].id, &failed, 200).await.unwrap();
    s.record_delivery(claimed[1].id, &AttemptOutcome::Succeeded { response_code: 204 }, 200).await.unwrap();
    let next = s.claim_due_deliveries(300, 30_000, 10).await.unwrap();
    assert_eq!(
        next.iter().map(|d| (d.webhook_id, d.event.event_type)).collect::<Vec<_>>(),
        [(all.id, EventType::Started)]
    );
    // A lease that runs out makes the delivery due again (its sender died).
    let mut again = s.claim_due_deliveries(300 + 30_000, 30_000, 10).await.unwrap();
    again.sort_by_key(|d| d.webhook_id);
    assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), [claimed[0].id, next[0].id]);
    assert_eq!(again[0].attempts, 1);

    let gave_up =
        AttemptOutcome::Failed { response_code: None, error: "connection refused".into(), next_attempt_at: None };
    s.record_delivery(claimed[0].id, &gave_up, 40_000).await.unwrap();
    let page = s.list_deliveries(p, ends.id, None, 10).await.unwrap();
    let d = &page.rows[0];
    assert_eq!((d.status, d.attempts, d.response_code, d.next_attempt_at), (DeliveryStatus::Failed, 2, None, None));
    assert_eq!(d.last_error.as_deref(), Some("connection refused"));
    assert_eq!(d.last_attempt_at, Some(40_000));

    s.redeliver(p, ends.id, d.id, 50_000).await.unwrap();
    let d = &s.list_deliveries(p, ends.id, None, 10).await.unwrap().rows[0];
    assert_eq!((d.status, d.next_attempt_at), (DeliveryStatus::Pending, Some(50_000)));
    assert_eq!(s.redeliver(p, all.id, d.id, 50_000).await.unwrap_err().code(), ErrorCode::DeliveryNotFound);

    // Newest first, paged.
    let first = s.list_deliveries(p, all.id, None, 2).await.unwrap();
    let rest = s.list_deliveries(p, all.id, first.next_cursor.as_deref(), 2).await.unwrap();
    let order: Vec<EventType> = first.rows.iter().chain(&rest.rows).map(|d| d.event_type).collect();
    assert_eq!(order, [EventType::Completed, EventType::Started, EventType::Created]);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(s.pending_deliveries(p).await.unwrap(), 3);

    // SQLite's sender takes back a killed predecessor's leases at start.
    s.claim_due_deliveries(60_000, 30_000, 10).await.unwrap();
    let taken_back = s.take_back_delivery_leases().await.unwrap();
    assert_eq!(taken_back, if db.is_pg() { 0 } else { 2 });
}

conformance!(
    every_change_of_a_job_is_an_event_in_order,
    filters_and_projects_scope_the_events,
    events_are_purged_with_their_job,
    a_late_commit_is_never_skipped,
    a_rolled_back_event_does_not_hold_readers,
    the_latest_event_id_waits_for_writers_below_it,
    webhooks_are_kept_per_project,
    deliveries_are_made_once_leased_retried_and_recorded,
);
