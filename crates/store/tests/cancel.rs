//! A refused cancel leaves nothing locked: the moment `cancel_job` answers, another connection can
//! take the job's row (PostgreSQL: `FOR UPDATE SKIP LOCKED`, as a runner's claim does) or the
//! write lock (SQLite: `BEGIN IMMEDIATE` with no busy wait).
//!
//! A transaction dropped without a rollback is rolled back only when the pool next takes the
//! connection back, in a task of its own. These tests run on a single-threaded runtime and probe
//! from another thread while blocking this one, so that task cannot run before the probe: without
//! the explicit rollback the PostgreSQL probe finds the row locked every time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use catalog_store::{JobId, StoreError};
use sqlx::Connection as _;

mod common;
use common::*;

/// What the probe found.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Free,
    Locked,
}

/// Asks, from a fresh connection on a thread of its own, whether job `id`'s row (PostgreSQL) or
/// the write lock (SQLite) can be taken now. Blocks the calling thread until it knows.
fn probe_blocking(url: &str, id: JobId) -> Probe {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(probe(url, id))
            })
            .join()
            .unwrap()
    })
}

async fn probe(url: &str, id: JobId) -> Probe {
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        let row = sqlx::query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE SKIP LOCKED")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        if row.is_some() {
            Probe::Free
        } else {
            Probe::Locked
        }
    } else {
        let options =
            url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().busy_timeout(std::time::Duration::ZERO);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        match sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await {
            Ok(_) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                Probe::Free
            }
            Err(_) => Probe::Locked,
        }
    }
}

/// A catalog delete cannot be cancelled; once the refusal is answered, its row is free.
async fn refused_cancel_leaves_nothing_locked(db: &TestDb) {
    let p = project(&db.store, "acme").await;
    db.store.create_catalog(p, "shoes", None).await.unwrap();
    let job = db.store.delete_catalog(p, "shoes").await.unwrap();

    let refused = db.store.cancel_job(p, job.id).await;
    assert!(matches!(refused, Err(StoreError::JobNotCancellable { .. })), "{refused:?}");
    // No await between the answer and the probe: the pool's deferred rollback cannot run.
    assert_eq!(probe_blocking(&db.url, job.id), Probe::Free);

    // An unknown job locks nothing either, and the store still cancels what it can.
    let unknown = db.store.cancel_job(p, JobId(job.id.0 + 1_000)).await;
    assert!(matches!(unknown, Err(StoreError::JobNotFound(_))), "{unknown:?}");
    assert_eq!(probe_blocking(&db.url, job.id), Probe::Free);
}

mod sqlite {
    #[tokio::test(flavor = "current_thread")]
    async fn refused_cancel_leaves_nothing_locked() {
        let db = super::sqlite_db().await;
        super::refused_cancel_leaves_nothing_locked(&db).await;
        db.store.close().await;
    }
}

mod postgres {
    #[tokio::test(flavor = "current_thread")]
    #[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
    async fn refused_cancel_leaves_nothing_locked() {
        let Some(db) = super::pg_db().await else { return };
        super::refused_cancel_leaves_nothing_locked(&db).await;
        db.store.close().await;
    }
}
