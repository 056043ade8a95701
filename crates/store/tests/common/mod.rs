//! The harness shared by the store's test suites: a fresh database per test on each backend (a
//! temporary SQLite file; a PostgreSQL database of its own at `CATALOGD_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`), the `conformance!` macro that declares each test
//! once per backend, and small helpers. The PostgreSQL halves are `#[ignore]`d: a plain `cargo test`
//! lists them as ignored, `--include-ignored` runs them (`cargo xtask ci` adds it when PostgreSQL
//! answers or `CI` is set), and then an unreachable server fails them.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code, unreachable_pub)]

use catalog_domain::Dialect;
use catalog_domain::RawId;
use catalog_store::hooks::Breakpoint;
pub use catalog_store::with_database;
use catalog_store::{ItemInput, JobId, JobOptions, ProjectId, Runner, RunnerConfig, Store, StoreConfig};
use serde_json::{json, Map, Value};
use sqlx::Connection;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

pub static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn unique_suffix() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), nanos)
}

pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// A fresh database with a store on it, and a raw pool for the test's own SQL.
pub struct TestDb {
    pub url: String,
    pub store: Store,
    pub raw: Raw,
    /// Removes the database when the test ends (also when it panics).
    _cleanup: Cleanup,
}

pub enum Cleanup {
    File(std::path::PathBuf),
    PgDatabase { admin_url: String, name: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::PgDatabase { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs outside any runtime we may block: use a thread with its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(async {
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

impl TestDb {
    pub async fn exec(&self, sql: &str) -> u64 {
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
            Raw::Pg(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
        }
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        use sqlx::Row;
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql).fetch_one(p).await.unwrap().get::<i64, _>(0),
            Raw::Pg(p) => sqlx::query(sql).fetch_one(p).await.unwrap().get::<i64, _>(0),
        }
    }

    pub fn is_pg(&self) -> bool {
        matches!(self.raw, Raw::Pg(_))
    }
}

pub async fn sqlite_db() -> TestDb {
    let path = std::env::temp_dir().join(format!("catalogd_t_{}.db", unique_suffix()));
    let url = format!("sqlite://{}", path.display());
    let cleanup = Cleanup::File(path);
    let store = Store::connect(&url, StoreConfig::default()).await.unwrap();
    let raw = Raw::Sqlite(sqlx::SqlitePool::connect(&url).await.unwrap());
    TestDb { url, store, raw, _cleanup: cleanup }
}

pub fn pg_base_url() -> String {
    std::env::var("CATALOGD_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A connection to the PostgreSQL server of the tests, or a failure saying what to do.
pub async fn pg_admin(admin_url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(admin_url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {admin_url} is unreachable ({e}): start it or set CATALOGD_TEST_PG, or run without \
             --include-ignored to leave the PostgreSQL tests out (they are then listed as ignored)"
        )
    })
}

pub async fn pg_db() -> Option<TestDb> {
    let admin_url = pg_base_url();
    let mut admin = pg_admin(&admin_url).await;
    let name = format!("catalogd_t_{}", unique_suffix());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let cleanup = Cleanup::PgDatabase { admin_url: admin_url.clone(), name: name.clone() };
    let url = with_database(&admin_url, &name);
    let config = StoreConfig { max_connections: 4, ..StoreConfig::default() };
    let store = Store::connect(&url, config).await.unwrap();
    let raw = Raw::Pg(sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&url).await.unwrap());
    Some(TestDb { url, store, raw, _cleanup: cleanup })
}

/// A second, empty database on the same backend as `db` (no store, no migrations), with a raw
/// pool on it; removed when the returned guard drops.
pub async fn empty_database(db: &TestDb) -> (String, Raw, Cleanup) {
    if db.is_pg() {
        let admin_url = pg_base_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        let name = format!("catalogd_t_{}", unique_suffix());
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
        let url = with_database(&admin_url, &name);
        let raw = Raw::Pg(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap());
        (url, raw, Cleanup::PgDatabase { admin_url, name })
    } else {
        let path = std::env::temp_dir().join(format!("catalogd_t_{}.db", unique_suffix()));
        let url = format!("sqlite://{}", path.display());
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let raw =
            Raw::Sqlite(sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap());
        (url, raw, Cleanup::File(path))
    }
}

pub async fn raw_script(raw: &Raw, sql: &str) {
    match raw {
        Raw::Sqlite(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
        Raw::Pg(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
    }
}

/// Declares each test once per backend.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::sqlite_db().await;
                    super::$name(&db).await;
                    db.store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
                async fn $name() {
                    let Some(db) = super::pg_db().await else { return };
                    super::$name(&db).await;
                    db.store.close().await;
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

pub fn runner(store: &Store, owner: &str, chunk_size: usize) -> Runner {
    Runner::new(
        store.clone(),
        RunnerConfig {
            owner: owner.to_owned(),
            chunk_size,
            // A batch is as large as a chunk here: the suites size their jobs by the chunk.
            batch_inputs: chunk_size,
            poll_interval: Duration::from_millis(50),
            ..RunnerConfig::default()
        },
    )
}

/// A runner that applies every job on its own (no batches), for tests of claims one job at a time.
pub fn unbatched_runner(store: &Store, owner: &str, chunk_size: usize) -> Runner {
    let config = RunnerConfig { max_batch_jobs: 1, ..runner(store, owner, chunk_size).config().clone() };
    Runner::new(store.clone(), config)
}

pub async fn project(store: &Store, key: &str) -> ProjectId {
    store.create_project(key, key).await.unwrap().id
}

pub fn ids(range: std::ops::Range<usize>) -> Vec<RawId> {
    range.map(|i| RawId::String(format!("item-{i:05}"))).collect()
}

pub fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

pub fn opts() -> JobOptions {
    JobOptions::default()
}

/// Creates `n` items `item-00000..` in `catalog` through an upsert job, run to the end.
pub async fn seed(store: &Store, p: ProjectId, catalog: &str, n: usize) {
    let r = runner(store, "seeder", 1000);
    for start in (0..n).step_by(10_000) {
        let items = (start..n.min(start + 10_000))
            .map(|i| ItemInput { id: RawId::String(format!("item-{i:05}")), fields: fields(json!({ "n": i })) })
            .collect();
        let out = store.bulk_upsert_items(p, catalog, Dialect::Native, items, &opts()).await.unwrap();
        assert!(out.job.is_some());
        r.run_until_idle().await.unwrap();
    }
}

pub async fn item_count(db: &TestDb) -> i64 {
    db.scalar("SELECT COUNT(*) FROM items").await
}

pub async fn job(store: &Store, p: ProjectId, id: JobId) -> catalog_store::Job {
    store.get_job(p, id).await.unwrap()
}

pub async fn backdate_leases(db: &TestDb) {
    db.exec("UPDATE jobs SET lease_expires_at = 0 WHERE status = 'running'").await;
}

// ---------------------------------------------------------------------------------------------
// Runners in the background, and what they left
// ---------------------------------------------------------------------------------------------

/// Runs `runner` in the background until the returned sender is dropped or sent to.
pub fn start(runner: Runner) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        runner
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, handle)
}

pub async fn stop(running: (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)) {
    let _ = running.0.send(());
    running.1.await.unwrap();
}

pub async fn finished(store: &Store, p: ProjectId, id: JobId) -> catalog_store::Job {
    let job = store.wait_for_job(p, id, Duration::from_secs(120)).await.unwrap();
    assert!(job.status.is_terminal(), "job {} did not finish: {job:?}", id.0);
    job
}

/// Every item of `catalog`, id → fields.
pub async fn items_of(store: &Store, p: ProjectId, catalog: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store.list_items(p, catalog, cursor.as_deref(), 1000).await.unwrap();
        for item in page.rows {
            out.insert(item.id, Value::Object(item.fields));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Every breakpoint a store's hooks reached, in order, and a way to wait for some without sleeping.
#[derive(Debug)]
pub struct BreakpointLog(watch::Sender<Vec<Breakpoint>>);

impl Default for BreakpointLog {
    fn default() -> BreakpointLog {
        BreakpointLog(watch::channel(Vec::new()).0)
    }
}

impl BreakpointLog {
    /// Records `point`, waking whoever waits in [`BreakpointLog::reached`].
    pub fn record(&self, point: Breakpoint) {
        self.0.send_modify(|seen| seen.push(point));
    }

    /// The breakpoints reached so far.
    pub fn seen(&self) -> Vec<Breakpoint> {
        self.0.borrow().clone()
    }

    /// How many of the breakpoints reached match `matcher`.
    pub fn count(&self, matcher: impl Fn(&Breakpoint) -> bool) -> usize {
        self.0.borrow().iter().filter(|p| matcher(p)).count()
    }

    /// Waits until `n` breakpoints matching `matcher` have been reached (the bound only turns one
    /// that never comes into a failure).
    pub async fn reached(&self, n: usize, matcher: impl Fn(&Breakpoint) -> bool) {
        let mut receiver = self.0.subscribe();
        let wait = receiver.wait_for(|seen| seen.iter().filter(|p| matcher(p)).count() >= n);
        tokio::time::timeout(Duration::from_secs(60), wait).await.expect("breakpoint reached in time").unwrap();
    }
}
