//! Klaviyo's cap on jobs in progress (`JobOptions::in_progress_cap`, migration 0011 on SQLite, 0012 on PostgreSQL), on SQLite
//! and on PostgreSQL: counted by the job insert, in its own transaction, so requests that all
//! found the project below the cap cannot all get in. The race is made deterministic with the
//! store's test hooks: one store's group-commit writer is held at `Breakpoint::EnqueueBatch`
//! while another store on the same database (another process, on PostgreSQL) creates the job
//! that reaches the cap.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use catalog_domain::klaviyo::MAX_JOBS_IN_PROGRESS;
use catalog_domain::{Dialect, ErrorCode};
use catalog_store::hooks::{Breakpoint, HookFuture, Hooks, Injected};
use catalog_store::{JobOptions, ProjectId, Store, StoreConfig, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// Holds the first batch of the writer at `EnqueueBatch` until released; every later batch goes
/// on at once.
#[derive(Debug)]
struct HoldFirstBatch {
    held: AtomicBool,
    reached: watch::Sender<bool>,
    release: Semaphore,
}

impl HoldFirstBatch {
    fn new() -> Arc<HoldFirstBatch> {
        let (reached, _) = watch::channel(false);
        Arc::new(HoldFirstBatch { held: AtomicBool::new(false), reached, release: Semaphore::new(0) })
    }

    async fn wait_until_held(&self) {
        let mut receiver = self.reached.subscribe();
        let held = receiver.wait_for(|held| *held);
        tokio::time::timeout(Duration::from_secs(60), held).await.expect("the writer reached its batch").unwrap();
    }
}

#[derive(Debug, Clone)]
struct Holder(Arc<HoldFirstBatch>);

impl Hooks for Holder {
    fn reached(&self, point: Breakpoint) -> HookFuture {
        let state = self.0.clone();
        Box::pin(async move {
            if matches!(point, Breakpoint::EnqueueBatch) && !state.held.swap(true, Ordering::SeqCst) {
                state.reached.send_replace(true);
                state.release.acquire().await.expect("semaphore open").forget();
            }
            Injected::Continue
        })
    }
}

fn capped() -> JobOptions {
    JobOptions { in_progress_cap: true, ..JobOptions::default() }
}

/// A project with a catalog `c` and `n` jobs in progress (queued, inserted directly: no runner
/// runs here, so they stay in progress).
async fn project_in_progress(db: &TestDb, key: &str, n: u64) -> ProjectId {
    let p = project(&db.store, key).await;
    let catalog = db.store.create_catalog(p, "c", None).await.unwrap();
    let series = if db.is_pg() {
        format!("SELECT g FROM generate_series(1, {n}) AS g")
    } else {
        format!("WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) SELECT g FROM s")
    };
    db.exec(&format!(
        "INSERT INTO jobs (project_id, catalog_id, catalog_name, kind, status, total_count, created_at, updated_at)
         SELECT {}, {}, 'c', 'item_bulk_delete', 'queued', 1, 0, 0 FROM ({series}) AS series",
        p.0, catalog.id.0
    ))
    .await;
    assert_eq!(db.store.count_jobs_in_progress(p).await.unwrap(), n);
    p
}

async fn create(store: &Store, p: ProjectId, options: &JobOptions) -> Result<(), StoreError> {
    store.bulk_delete_items(p, "c", Dialect::Klaviyo, ids(0..1), options).await.map(|_| ())
}

fn is_cap(result: &Result<(), StoreError>) -> bool {
    matches!(result, Err(StoreError::TooManyJobsInProgress { max }) if *max == MAX_JOBS_IN_PROGRESS)
}

async fn the_cap_is_counted_at_the_insert(db: &TestDb) {
    let p = project_in_progress(db, "cap", MAX_JOBS_IN_PROGRESS - 1).await;
    create(&db.store, p, &capped()).await.expect("the job that reaches the cap goes in");
    let refused = create(&db.store, p, &capped()).await;
    assert!(is_cap(&refused), "{refused:?}");
    assert_eq!(refused.unwrap_err().code(), ErrorCode::TooManyJobsInProgress);
    // Only capped jobs are refused: the native API has no such cap.
    create(&db.store, p, &JobOptions::default()).await.expect("an uncapped job goes in");
    assert_eq!(db.store.count_jobs_in_progress(p).await.unwrap(), MAX_JOBS_IN_PROGRESS + 1);
    // Finished jobs do not count: with two done, the project is below the cap again.
    db.exec(&format!(
        "UPDATE jobs SET status = 'completed' WHERE id IN (SELECT id FROM jobs WHERE project_id = {} ORDER BY id LIMIT 2)",
        p.0
    ))
    .await;
    create(&db.store, p, &capped()).await.expect("below the cap again");
    // Another project's jobs never count.
    let other = project(&db.store, "cap-other").await;
    db.store.create_catalog(other, "c", None).await.unwrap();
    create(&db.store, other, &capped()).await.expect("another project is far from the cap");
}

async fn concurrent_creates_at_the_cap_let_one_in(db: &TestDb) {
    let p = project_in_progress(db, "cap-race", MAX_JOBS_IN_PROGRESS - 1).await;
    let hold = HoldFirstBatch::new();
    let config = StoreConfig { max_connections: 4, ..StoreConfig::default() };
    let held_store = Store::connect_with_hooks(&db.url, config, Arc::new(Holder(hold.clone()))).await.unwrap();
    // The first request is past every check before its insert, held at its writer's batch: it
    // saw the project at 499, as a count taken before the insert would.
    let first = {
        let store = held_store.clone();
        tokio::spawn(async move { create(&store, p, &capped()).await })
    };
    hold.wait_until_held().await;
    // Meanwhile another process's request reaches the cap.
    create(&db.store, p, &capped()).await.expect("the second request gets the last place");
    hold.release.add_permits(1);
    let first = first.await.unwrap();
    assert!(is_cap(&first), "the held request must be refused by its own insert: {first:?}");
    assert_eq!(db.store.count_jobs_in_progress(p).await.unwrap(), MAX_JOBS_IN_PROGRESS);
    held_store.close().await;
}

async fn one_statement_counts_its_own_earlier_rows(db: &TestDb) {
    let p = project_in_progress(db, "cap-batch", MAX_JOBS_IN_PROGRESS - 1).await;
    // Two capped rows in one statement, as a group-commit batch writes them: the first reaches
    // the cap, so the second must see it and the statement fails as a whole.
    let insert = format!(
        "INSERT INTO jobs (project_id, kind, status, total_count, flags, created_at, updated_at)
         VALUES ({0}, 'item_bulk_delete', 'queued', 1, 2, 0, 0), ({0}, 'item_bulk_delete', 'queued', 1, 2, 0, 0)",
        p.0
    );
    let failed = match &db.raw {
        Raw::Sqlite(pool) => sqlx::query(&insert).execute(pool).await.is_err(),
        Raw::Pg(pool) => sqlx::query(&insert).execute(pool).await.is_err(),
    };
    assert!(failed, "the second capped row of the statement is refused");
    assert_eq!(db.store.count_jobs_in_progress(p).await.unwrap(), MAX_JOBS_IN_PROGRESS - 1);
}

conformance!(
    the_cap_is_counted_at_the_insert,
    concurrent_creates_at_the_cap_let_one_in,
    one_statement_counts_its_own_earlier_rows
);
