//! Storage trouble, on both backends: what a full disk, a busy or restarting database, a
//! read-only database and an unreachable server become (the error codes of docs/RULES.md,
//! "Storage trouble"), what the store's readiness says meanwhile, and that the runner spends no
//! attempt of a job on trouble that is the database's. Trouble is made deterministically: a
//! capped SQLite file (`max_page_count`), a lock held by another connection, PostgreSQL triggers
//! raising the very SQLSTATEs the server would, `pg_terminate_backend`, a read-only default, and
//! listeners that refuse or never answer. The shared PostgreSQL server is never stopped.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use catalog_domain::{Dialect, ErrorCode, JobStatus};
use catalog_store::hooks::{Breakpoint, HookFuture, Hooks, Injected};
use catalog_store::{ItemInput, ProjectId, Runner, RunnerConfig, Store, StoreConfig, StoreError};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

conformance!(
    a_full_database_is_insufficient_storage_and_not_ready_until_there_is_room,
    a_busy_or_restarting_database_is_unavailable,
    a_read_only_database_is_refused_at_start,
    trouble_during_a_chunk_costs_the_job_no_attempt,
    a_job_stuck_on_storage_trouble_can_be_cancelled,
    a_batch_whose_connection_failed_is_not_written_again,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn items(n: usize) -> Vec<ItemInput> {
    (0..n)
        .map(|i| ItemInput {
            id: catalog_domain::RawId::String(format!("item-{i:05}")),
            fields: fields(json!({ "n": i, "text": "x".repeat(200) })),
        })
        .collect()
}

async fn upsert(store: &Store, p: ProjectId, n: usize) -> Result<catalog_store::BulkOutcome, StoreError> {
    store.bulk_upsert_items(p, "c", Dialect::Native, items(n), &opts()).await
}

fn code_of<T: std::fmt::Debug>(result: Result<T, StoreError>) -> ErrorCode {
    result.expect_err("storage trouble").code()
}

/// The database name of a PostgreSQL URL.
fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned()
}

/// PostgreSQL: triggers on `jobs` and `storage_probe` that raise the SQLSTATE in
/// `trouble_code` while it is set, as the server itself would (disk full, shutdown, ...).
async fn install_pg_trouble(db: &TestDb) {
    let Raw::Pg(pool) = &db.raw else { unreachable!() };
    sqlx::raw_sql(
        "CREATE TABLE trouble_code (code TEXT);
         INSERT INTO trouble_code VALUES (NULL);
         CREATE FUNCTION make_trouble() RETURNS trigger LANGUAGE plpgsql AS $$
         DECLARE c TEXT;
         BEGIN
             SELECT code INTO c FROM trouble_code;
             IF c IS NOT NULL THEN RAISE EXCEPTION 'simulated storage trouble' USING ERRCODE = c; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER jobs_trouble BEFORE INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION make_trouble();
         CREATE TRIGGER probe_trouble BEFORE INSERT ON storage_probe FOR EACH ROW EXECUTE FUNCTION make_trouble();",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn set_pg_trouble(db: &TestDb, code: Option<&str>) {
    let Raw::Pg(pool) = &db.raw else { unreachable!() };
    sqlx::query("UPDATE trouble_code SET code = $1").bind(code).execute(pool).await.unwrap();
}

/// A store on `db`'s database with `config`.
async fn store_with(db: &TestDb, config: StoreConfig) -> Store {
    Store::connect(&db.url, config).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests on both backends
// ---------------------------------------------------------------------------------------------

async fn a_full_database_is_insufficient_storage_and_not_ready_until_there_is_room(db: &TestDb) {
    let p = project(&db.store, "full").await;
    db.store.create_catalog(p, "c", None).await.unwrap();
    let store = if db.is_pg() {
        install_pg_trouble(db).await;
        set_pg_trouble(db, Some("53100")).await; // disk_full
        db.store.clone()
    } else {
        // Room to fill and to free again, then a cap at the file's size: SQLite allocates no
        // page past it, exactly as on a full disk (SQLITE_FULL).
        db.exec("CREATE TABLE filler (b BLOB)").await;
        db.exec(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64)
             INSERT INTO filler SELECT randomblob(4096) FROM n",
        )
        .await;
        let pages = u32::try_from(db.scalar("PRAGMA page_count").await).unwrap();
        store_with(db, StoreConfig { sqlite_max_page_count: Some(pages), ..StoreConfig::default() }).await
    };
    // Accepted jobs need pages; a capped file has none to give (a few small ones may still fit
    // in pages with room, so write until it is full).
    let mut refused = None;
    for _ in 0..200 {
        if let Err(error) = upsert(&store, p, 50).await {
            refused = Some(error);
            break;
        }
    }
    let refused = refused.expect("a full database refuses a job");
    assert_eq!(refused.code(), ErrorCode::InsufficientStorage, "{refused}");
    // Not ready while writes fail: the readiness probe needs a page too.
    assert_eq!(code_of(store.readiness(Duration::from_secs(5)).await), ErrorCode::InsufficientStorage);
    assert_eq!(code_of(upsert(&store, p, 50).await), ErrorCode::InsufficientStorage);

    // Room is made (data deleted, the disk grown): the next probe succeeds, and so do writes.
    if db.is_pg() {
        set_pg_trouble(db, None).await;
    } else {
        db.exec("DELETE FROM filler").await;
    }
    store.readiness(Duration::from_secs(5)).await.expect("ready once there is room");
    let job = upsert(&store, p, 50).await.unwrap().job.unwrap();
    runner(&store, "r", 100).run_until_idle().await.unwrap();
    assert_eq!(job_of(&store, p, job.id).await.status, JobStatus::Completed);
    if !db.is_pg() {
        store.close().await;
    }
}

async fn a_busy_or_restarting_database_is_unavailable(db: &TestDb) {
    let p = project(&db.store, "busy").await;
    db.store.create_catalog(p, "c", None).await.unwrap();
    match &db.raw {
        Raw::Sqlite(_) => {
            // Another process holds the write lock past the busy timeout: SQLITE_BUSY.
            let store =
                store_with(db, StoreConfig { busy_timeout: Duration::from_millis(20), ..StoreConfig::default() }).await;
            let holder = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let lock = holder.begin_with("BEGIN IMMEDIATE").await.unwrap();
            assert_eq!(code_of(upsert(&store, p, 5).await), ErrorCode::Unavailable);
            lock.rollback().await.unwrap();
            upsert(&store, p, 5).await.expect("served once the lock is free");
            store.close().await;
            holder.close().await;
        }
        Raw::Pg(pool) => {
            install_pg_trouble(db).await;
            // Each SQLSTATE the server answers when it is restarting, overloaded or in conflict.
            for (sqlstate, expected) in [
                ("57P01", ErrorCode::Unavailable), // admin_shutdown
                ("57P03", ErrorCode::Unavailable), // cannot_connect_now
                ("08006", ErrorCode::Unavailable), // connection_failure
                ("40001", ErrorCode::Unavailable), // serialization_failure
                ("40P01", ErrorCode::Unavailable), // deadlock_detected
                ("53300", ErrorCode::Unavailable), // too_many_connections
                ("25006", ErrorCode::Unavailable), // read_only_sql_transaction (a failover)
                ("53100", ErrorCode::InsufficientStorage),
                ("42P01", ErrorCode::Internal), // undefined_table: a bug, not trouble
            ] {
                set_pg_trouble(db, Some(sqlstate)).await;
                assert_eq!(code_of(upsert(&db.store, p, 5).await), expected, "{sqlstate}");
            }
            set_pg_trouble(db, None).await;
            upsert(&db.store, p, 5).await.unwrap();

            // The server ends every connection of the store (as a restart does): the pool
            // notices before handing one out and opens new ones, so nothing fails.
            let ended = sqlx::query(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            let ended: i64 = sqlx::Row::get(&ended, 0);
            assert!(ended > 0, "the store had connections to end");
            upsert(&db.store, p, 5).await.expect("served on new connections");
            db.store.readiness(Duration::from_secs(5)).await.unwrap();
        }
    }
}

async fn a_read_only_database_is_refused_at_start(db: &TestDb) {
    let url = match &db.raw {
        // `mode=ro`: the file is opened read-only whoever runs the process (root included).
        Raw::Sqlite(_) => format!("{}?mode=ro", db.url),
        Raw::Pg(pool) => {
            let name = database_name(&db.url);
            sqlx::raw_sql(&format!("ALTER DATABASE {name} SET default_transaction_read_only = on"))
                .execute(pool)
                .await
                .unwrap();
            db.url.clone()
        }
    };
    let error = Store::connect(&url, StoreConfig::default()).await.expect_err("a read-only database is refused");
    assert!(matches!(error, StoreError::NotWritable { .. }), "{error:?}");
    assert!(error.to_string().contains("cannot be written"), "{error}");
    if let Raw::Pg(pool) = &db.raw {
        let name = database_name(&db.url);
        // The pool may have opened this connection after the ALTER, read-only by default itself:
        // the reset runs in a transaction that says it writes.
        sqlx::raw_sql(&format!("BEGIN READ WRITE; ALTER DATABASE {name} RESET default_transaction_read_only; COMMIT"))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// Breakpoint hooks for one test: the first `fail` chunk starts fail with storage trouble, and
/// `on_written` runs (once) when a chunk has written its data.
struct TroubleHooks {
    fail: Mutex<usize>,
    on_written: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl std::fmt::Debug for TroubleHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TroubleHooks")
    }
}

impl Hooks for TroubleHooks {
    fn reached(&self, point: Breakpoint) -> HookFuture {
        let outcome = match point {
            Breakpoint::ChunkStarting { .. } => {
                let mut fail = self.fail.lock().unwrap();
                if *fail > 0 {
                    *fail -= 1;
                    Injected::TransientError
                } else {
                    Injected::Continue
                }
            }
            // No beat is needed (process_one runs none); answering at once would beat in a loop.
            Breakpoint::Heartbeat { .. } => return Box::pin(std::future::pending()),
            _ => Injected::Continue,
        };
        let written = matches!(point, Breakpoint::ChunkWritten { .. }).then(|| self.on_written.lock().unwrap().take());
        Box::pin(async move {
            if let Some(Some(action)) = written {
                action.await;
            }
            outcome
        })
    }
}

async fn trouble_during_a_chunk_costs_the_job_no_attempt(db: &TestDb) {
    // A job allowed a single attempt meets storage trouble at three chunk starts, and on
    // PostgreSQL has its connection ended by the server while its chunk is written: it still
    // completes, every attempt given back.
    let on_written: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = match &db.raw {
        Raw::Pg(pool) => {
            let pool = pool.clone();
            Some(Box::pin(async move {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle in transaction'",
                )
                .execute(&pool)
                .await
                .unwrap();
            }))
        }
        Raw::Sqlite(_) => None,
    };
    let hooks = Arc::new(TroubleHooks { fail: Mutex::new(3), on_written: Mutex::new(on_written) });
    let config = StoreConfig { max_connections: 4, ..StoreConfig::default() };
    let store = Store::connect_with_hooks(&db.url, config, hooks).await.unwrap();
    let p = project(&store, "chunks").await;
    store.create_catalog(p, "c", None).await.unwrap();
    let id = upsert(&store, p, 300).await.unwrap().job.unwrap().id;
    let runner = Runner::new(
        store.clone(),
        RunnerConfig {
            owner: "r".into(),
            chunk_size: 100,
            max_attempts: 1,
            retry_backoff: Duration::ZERO,
            ..RunnerConfig::default()
        },
    );
    let mut failures = 0;
    loop {
        match runner.process_one().await {
            Ok(Some(_)) => break,
            Ok(None) => panic!("the job is due again at once (no backoff)"),
            Err(error) => {
                assert!(error.code().is_storage_trouble(), "{error}");
                failures += 1;
                assert!(failures < 10, "retried without end");
            }
        }
    }
    let expected_failures = if db.is_pg() { 4 } else { 3 };
    assert_eq!(failures, expected_failures);
    let job = job_of(&store, p, id).await;
    assert_eq!((job.status, job.completed_count, job.failed_count), (JobStatus::Completed, 300, 0));
    let releases = db.scalar(&format!("SELECT releases FROM jobs WHERE id = {}", id.0)).await;
    assert_eq!(releases, i64::from(expected_failures), "each attempt lost to trouble was given back");
    store.close().await;
}

async fn a_job_stuck_on_storage_trouble_can_be_cancelled(db: &TestDb) {
    let hooks = Arc::new(TroubleHooks { fail: Mutex::new(usize::MAX), on_written: Mutex::new(None) });
    let store = Store::connect_with_hooks(&db.url, StoreConfig::default(), hooks).await.unwrap();
    let p = project(&store, "stuck").await;
    store.create_catalog(p, "c", None).await.unwrap();
    let id = upsert(&store, p, 10).await.unwrap().job.unwrap().id;
    let runner = Runner::new(
        store.clone(),
        RunnerConfig { owner: "r".into(), max_attempts: 1, retry_backoff: Duration::ZERO, ..RunnerConfig::default() },
    );
    for _ in 0..3 {
        assert!(runner.process_one().await.unwrap_err().code().is_storage_trouble());
    }
    assert_eq!(
        store.cancel_job(p, id).await.unwrap().status,
        JobStatus::Running,
        "a started job ends at its next step"
    );
    assert_eq!(runner.process_one().await.unwrap(), Some(id));
    let job = job_of(&store, p, id).await;
    assert_eq!((job.status, job.completed_count), (JobStatus::Cancelled, 0));
    store.close().await;
}

async fn job_of(store: &Store, p: ProjectId, id: catalog_store::JobId) -> catalog_store::Job {
    store.get_job(p, id).await.unwrap()
}

/// Fails the first batch of at least two jobs about to be written on the job writer's kept
/// connection as a lost connection would (an I/O error), and records its jobs.
#[derive(Debug, Default)]
struct LoseKeptBatch {
    failed_jobs: std::sync::atomic::AtomicUsize,
}

impl Hooks for LoseKeptBatch {
    fn reached(&self, point: Breakpoint) -> HookFuture {
        use std::sync::atomic::Ordering;
        let outcome = match point {
            Breakpoint::EnqueueOnKeptConnection { jobs }
                if jobs >= 2
                    && self.failed_jobs.compare_exchange(0, jobs, Ordering::SeqCst, Ordering::SeqCst).is_ok() =>
            {
                Injected::TransientError
            }
            _ => Injected::Continue,
        };
        Box::pin(async move { outcome })
    }
}

/// A batch whose connection failed may have committed (its reply lost with the connection): it is
/// not written again, not even one job at a time, and each of its requests hears 503. No job is
/// created twice; the batches before and after it are accepted.
async fn a_batch_whose_connection_failed_is_not_written_again(db: &TestDb) {
    use std::sync::atomic::Ordering;
    let hooks = Arc::new(LoseKeptBatch::default());
    let store = Store::connect_with_hooks(&db.url, StoreConfig::default(), hooks.clone()).await.unwrap();
    let p = project(&store, "lost").await;
    store.create_catalog(p, "c", None).await.unwrap();
    // Rounds of eight requests at once, until a batch of two or more has been written on a kept
    // connection (the bound only keeps a broken writer from looping forever).
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..1000 {
        let round = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { upsert(&store, p, 3).await })
        });
        for request in futures_util::future::join_all(round).await {
            match request.unwrap() {
                Ok(_) => accepted += 1,
                Err(error) => {
                    assert_eq!(error.code(), ErrorCode::Unavailable, "{error:?}");
                    refused += 1;
                }
            }
        }
        if hooks.failed_jobs.load(Ordering::SeqCst) > 0 {
            break;
        }
    }
    assert_eq!(refused, hooks.failed_jobs.load(Ordering::SeqCst), "exactly the failed batch's requests heard 503");
    assert!(refused >= 2);
    assert_eq!(db.scalar("SELECT count(*) FROM jobs").await, accepted, "one job per accepted request, none more");
    upsert(&store, p, 3).await.expect("the writer goes on");
    store.close().await;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL unreachable (no server needed: the listeners are the test's own)
// ---------------------------------------------------------------------------------------------

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let url = format!("postgres://postgres@127.0.0.1:{}/test", closed_port().await);
    let config = StoreConfig { acquire_timeout: Duration::from_millis(300), ..StoreConfig::default() };
    let error = Store::connect(&url, config).await.expect_err("nothing listens");
    assert_eq!(error.code(), ErrorCode::Unavailable, "{error:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_after_the_acquire_timeout() {
    // Accepts connections and never says a word: without a bound, connecting waits forever.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    let silent = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            holder.lock().unwrap().push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let config = StoreConfig { acquire_timeout: Duration::from_millis(300), ..StoreConfig::default() };
    let connecting = Store::connect(&url, config);
    // The outer bound only keeps a broken build from hanging the suite; the assertion is on
    // the error, which says the pool's own timeout ended the wait.
    let error = tokio::time::timeout(Duration::from_secs(60), connecting).await.expect("bounded").expect_err("silent");
    assert!(matches!(error, StoreError::Database(sqlx::Error::PoolTimedOut)), "{error:?}");
    assert_eq!(error.code(), ErrorCode::Unavailable);
    assert!(!held.lock().unwrap().is_empty(), "the store did connect and wait");
    silent.abort();
}

#[test]
fn the_default_acquire_timeout_is_a_few_seconds() {
    assert_eq!(StoreConfig::default().acquire_timeout, Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only: the job writer's kept connection
// ---------------------------------------------------------------------------------------------

/// Ends the job writer's kept connection, through `admin`, the first time a batch of one job is
/// about to be written on it. (A larger batch that the database refused is written again one job
/// at a time, on connections from the pool; a lone job is not, unless the writer writes the batch
/// again itself.)
#[derive(Debug)]
struct EndKeptConnection {
    admin: sqlx::PgPool,
    ended: std::sync::atomic::AtomicBool,
}

impl Hooks for EndKeptConnection {
    fn reached(&self, point: Breakpoint) -> HookFuture {
        use std::sync::atomic::Ordering;
        if point != (Breakpoint::EnqueueOnKeptConnection { jobs: 1 }) || self.ended.swap(true, Ordering::SeqCst) {
            return Box::pin(async { Injected::Continue });
        }
        let admin = self.admin.clone();
        Box::pin(async move {
            // The writer's connection is idle, its last statement the job insert (which sets
            // `catalogd.queue_side`); so may be pooled connections the writer used before, which
            // the pool checks before their next use. Each call waits until its backend has exited.
            let ended: i64 = sqlx::query_scalar(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'
                   AND query LIKE '%catalogd.queue_side%'",
            )
            .fetch_one(&admin)
            .await
            .unwrap();
            assert!(ended >= 1, "the writer's kept connection was found and ended");
            Injected::Continue
        })
    }
}

/// The job writer keeps its connection from one batch to the next while requests keep coming, and
/// the pool does not check it again. When the server ends that connection between two batches,
/// the batch is written again on a connection from the pool: no request fails, and none is
/// created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
async fn a_kept_writer_connection_ended_by_the_server_fails_no_request() {
    use std::sync::atomic::Ordering;
    let Some(db) = pg_db().await else { return };
    let Raw::Pg(admin) = &db.raw else { unreachable!() };
    let hooks = Arc::new(EndKeptConnection { admin: admin.clone(), ended: false.into() });
    let store = Store::connect_with_hooks(&db.url, StoreConfig::default(), hooks.clone()).await.unwrap();
    let p = project(&store, "kept").await;
    store.create_catalog(p, "c", None).await.unwrap();
    // Rounds of two requests at once: when the second arrives while the first's batch is written,
    // it makes the next batch alone, on the kept connection. A few rounds are enough; the bound
    // only keeps a broken writer from looping forever.
    let mut accepted = 0;
    for _ in 0..1000 {
        let round = (0..2).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { upsert(&store, p, 3).await })
        });
        for request in futures_util::future::join_all(round).await {
            request.unwrap().expect("accepted, the ended connection notwithstanding");
            accepted += 1;
        }
        if hooks.ended.load(Ordering::SeqCst) {
            break;
        }
    }
    assert!(hooks.ended.load(Ordering::SeqCst), "a batch was written on a kept connection");
    assert_eq!(db.scalar("SELECT count(*) FROM jobs").await, accepted, "every request made one job");
    store.close().await;
}
