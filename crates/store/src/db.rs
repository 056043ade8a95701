//! The two backends behind one enum, the migration runner, and small helpers shared by the
//! service layer.
//!
//! Each backend keeps its native sqlx pool (not `Any`) so SQLite gets `BEGIN IMMEDIATE` and
//! PostgreSQL gets typed arrays and LISTEN/NOTIFY. Code that is the same on both is written once
//! and expanded for each pool by [`with_db!`]; only the statements that differ are spelled twice
//! (see the runner's `Statements`).

use crate::error::StoreError;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row, Transaction};
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, OwnedMutexGuard};

/// One numbered migration: its version and its SQL.
type Migration = (i64, &'static str);

const SQLITE_MIGRATIONS: &[Migration] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_job_payloads.sql")),
    (3, include_str!("../migrations/sqlite/0003_claim_index.sql")),
    (4, include_str!("../migrations/sqlite/0004_partial_job_indexes.sql")),
    (5, include_str!("../migrations/sqlite/0005_job_payload_parts.sql")),
    (6, include_str!("../migrations/sqlite/0006_catalog_order.sql")),
    (7, include_str!("../migrations/sqlite/0007_storage_probe.sql")),
    (8, include_str!("../migrations/sqlite/0008_queue_inputs.sql")),
    (9, include_str!("../migrations/sqlite/0009_project_turns.sql")),
    (10, include_str!("../migrations/sqlite/0010_queue_sides.sql")),
    (11, include_str!("../migrations/sqlite/0011_jobs_in_progress_cap.sql")),
    (12, include_str!("../migrations/sqlite/0012_catalog_fields.sql")),
    (13, include_str!("../migrations/sqlite/0013_events.sql")),
];
const POSTGRES_MIGRATIONS: &[Migration] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_job_payloads.sql")),
    (3, include_str!("../migrations/postgres/0003_claim_index.sql")),
    (4, include_str!("../migrations/postgres/0004_partial_job_indexes.sql")),
    (5, include_str!("../migrations/postgres/0005_job_payload_parts.sql")),
    (6, include_str!("../migrations/postgres/0006_catalog_order.sql")),
    (7, include_str!("../migrations/postgres/0007_storage_probe.sql")),
    (8, include_str!("../migrations/postgres/0008_queue_inputs.sql")),
    (9, include_str!("../migrations/postgres/0009_project_turns.sql")),
    (10, include_str!("../migrations/postgres/0010_queue_sides.sql")),
    (11, include_str!("../migrations/postgres/0011_statement_triggers.sql")),
    (12, include_str!("../migrations/postgres/0012_jobs_in_progress_cap.sql")),
    (13, include_str!("../migrations/postgres/0013_catalog_fields.sql")),
    (14, include_str!("../migrations/postgres/0014_events.sql")),
    (15, include_str!("../migrations/postgres/0015_event_costs.sql")),
    (16, include_str!("../migrations/postgres/0016_payload_compression.sql")),
    (17, include_str!("../migrations/postgres/0017_event_ids_at_insert.sql")),
    (18, include_str!("../migrations/postgres/0018_jobs_without_project_key.sql")),
    (19, include_str!("../migrations/postgres/0019_payloads_compressed.sql")),
];

/// Advisory lock id that serialises migrations when several nodes start at once.
const MIGRATION_LOCK_ID: i64 = 0x0063_6174_616c_6f67; // "catalog" in ASCII

/// The connection pool of the configured backend.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// Embedded SQLite file.
    Sqlite(SqlitePool),
    /// Shared PostgreSQL database.
    Pg(PgPool),
}

/// Expands `$body` once per backend with `$pool` bound to the native pool, so statements that are
/// the same on both backends are written once.
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Pg($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// This process's turns at SQLite's single write lock.
///
/// SQLite lets one connection write at a time, and a connection that finds the lock taken
/// sleeps in its busy handler (1 ms, then 2, 5, 10 ms and longer) and tries again: under load
/// the group-commit writer and the runner's connections slept more than they wrote, and the lock
/// went to whoever happened to poll at the right moment. Write transactions of this process
/// therefore queue here first, and each finds the lock free when its turn comes; the busy
/// handler is left to arbitrate only with other processes (the admin CLI).
///
/// Requests come first: a background turn (the runner's) is queued for only when no foreground
/// writer is waiting, and by one background writer at a time. So a foreground turn waits for at
/// most one runner transaction, and the runner still gets a turn between any two foreground
/// turns (the group-commit writer's last up to a few batches, see `enqueue.rs`). PostgreSQL
/// locks rows, not the database, and takes no turn.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteTurns {
    shared: Arc<TurnQueue>,
    background: bool,
}

#[derive(Debug, Default)]
struct TurnQueue {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Held by the one background writer that may queue for `lock`, until its turn ends.
    background_gate: Arc<tokio::sync::Mutex<()>>,
    /// Foreground writers waiting for the lock.
    foreground_waiting: AtomicUsize,
    /// Signalled when the last waiting foreground writer got the lock.
    drained: Notify,
}

/// Counts a foreground writer as waiting until it has the lock or gives up.
struct Waiting<'q>(&'q TurnQueue);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.0.foreground_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl WriteTurns {
    /// The same queue, for background work that yields to foreground writers.
    pub(crate) fn background(&self) -> WriteTurns {
        WriteTurns { shared: self.shared.clone(), background: true }
    }

    /// Waits for this process's turn; the write transaction must end before the turn is dropped.
    pub(crate) async fn take(&self) -> Turn {
        let queue = &self.shared;
        if self.background {
            let gate = queue.background_gate.clone().lock_owned().await;
            loop {
                // Registered before the check, so a drain between the two is not missed.
                let drained = queue.drained.notified();
                if queue.foreground_waiting.load(Ordering::SeqCst) == 0 {
                    break;
                }
                drained.await;
            }
            Turn { _lock: queue.lock.clone().lock_owned().await, _gate: Some(gate) }
        } else {
            queue.foreground_waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = Waiting(queue);
            Turn { _lock: queue.lock.clone().lock_owned().await, _gate: None }
        }
    }
}

/// A turn at the write lock; the next writer's turn begins when it is dropped.
pub(crate) struct Turn {
    _lock: OwnedMutexGuard<()>,
    _gate: Option<OwnedMutexGuard<()>>,
}

/// A write transaction, holding its [`WriteTurns`] turn (SQLite) until it commits or is dropped.
/// Derefs to the connection, like sqlx's `Transaction`.
pub(crate) struct WriteTx<DB: sqlx::Database> {
    tx: Transaction<'static, DB>,
    _turn: Option<Turn>,
}

impl<DB: sqlx::Database> WriteTx<DB> {
    /// Commits, then gives the turn to the next writer.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back, then gives the turn to the next writer.
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl<DB: sqlx::Database> Deref for WriteTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// An SQLite query whose arguments are bound.
pub(crate) type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Runs `script` on SQLite as one write transaction in one round trip to sqlx's connection
/// thread, during a turn of `turns`, and returns the rows its statements answered. `script` is
/// several statements that begin with `BEGIN IMMEDIATE` and end with `COMMIT`.
///
/// Every round trip costs a context switch or two, and sqlx's own begin and commit take one
/// each (acknowledged): for a small transaction, most of its time and of its hold on the write
/// lock. A failed script is rolled back; a connection whose script did not end (failed, or
/// dropped half-way) is closed rather than returned to the pool, since its transaction may be
/// open and closing rolls it back.
pub(crate) async fn sqlite_script(
    pool: &SqlitePool,
    turns: &WriteTurns,
    script: SqliteQuery<'_>,
) -> Result<Vec<SqliteRow>, sqlx::Error> {
    let _turn = turns.take().await;
    let mut connection = UnfinishedScript(Some(pool.acquire().await?));
    let Some(conn) = connection.0.as_mut() else {
        return Err(sqlx::Error::PoolClosed);
    };
    let rows = script.fetch_all(&mut **conn).await;
    // Finished, the connection goes back to the pool; failed, it is discarded.
    if let Some(conn) = connection.0.take() {
        if rows.is_err() {
            discard_connection(conn).await;
        }
    }
    rows
}

/// Ends a connection whose transaction may still be open: rolls it back, then closes the
/// connection rather than returning it to the pool, whose next user would not know.
pub(crate) async fn discard_connection(mut connection: sqlx::pool::PoolConnection<sqlx::Sqlite>) {
    let _ = sqlx::query("ROLLBACK").execute(&mut *connection).await;
    drop(connection.detach());
}

/// Closes a connection whose script did not finish, when dropped.
struct UnfinishedScript(Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>);

impl Drop for UnfinishedScript {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            drop(connection.detach());
        }
    }
}

/// What differs between the backends, as seen from code expanded by [`with_db!`].
pub(crate) trait Flavor {
    /// The sqlx database type.
    type Database: sqlx::Database;

    /// Starts a transaction that writes. On SQLite it waits for its turn, then runs `BEGIN
    /// IMMEDIATE`, which takes the write lock at once instead of failing with SQLITE_BUSY when a
    /// read transaction later tries to upgrade.
    fn begin_write(
        &self,
        turns: &WriteTurns,
    ) -> impl std::future::Future<Output = Result<WriteTx<Self::Database>, sqlx::Error>>;

    /// Like [`Flavor::begin_write`], for a transaction whose loss in a crash is harmless (it can
    /// be redone): its commit does not wait for the WAL to reach the disk. Commit order and
    /// atomicity are kept, so a crash loses at most the latest such transactions, whole. On
    /// PostgreSQL this is `synchronous_commit = off` for the transaction; on SQLite the
    /// transaction runs on `relaxed`, a pool whose connections use `synchronous = NORMAL` (in
    /// WAL mode: no fsync per commit), when the store has one.
    fn begin_relaxed(
        &self,
        relaxed: Option<&SqlitePool>,
        turns: &WriteTurns,
    ) -> impl std::future::Future<Output = Result<WriteTx<Self::Database>, sqlx::Error>>;
}

impl Flavor for SqlitePool {
    type Database = sqlx::Sqlite;

    async fn begin_write(&self, turns: &WriteTurns) -> Result<WriteTx<sqlx::Sqlite>, sqlx::Error> {
        let turn = turns.take().await;
        Ok(WriteTx { tx: self.begin_with("BEGIN IMMEDIATE").await?, _turn: Some(turn) })
    }

    async fn begin_relaxed(
        &self,
        relaxed: Option<&SqlitePool>,
        turns: &WriteTurns,
    ) -> Result<WriteTx<sqlx::Sqlite>, sqlx::Error> {
        relaxed.unwrap_or(self).begin_write(turns).await
    }
}

impl Flavor for PgPool {
    type Database = sqlx::Postgres;

    async fn begin_write(&self, _: &WriteTurns) -> Result<WriteTx<sqlx::Postgres>, sqlx::Error> {
        Ok(WriteTx { tx: self.begin().await?, _turn: None })
    }

    async fn begin_relaxed(
        &self,
        _: Option<&SqlitePool>,
        _: &WriteTurns,
    ) -> Result<WriteTx<sqlx::Postgres>, sqlx::Error> {
        // One simple-protocol round trip carries both statements.
        Ok(WriteTx { tx: self.begin_with("BEGIN; SET LOCAL synchronous_commit = off").await?, _turn: None })
    }
}

/// Typed column access that maps decode failures into [`StoreError`], for both row types.
pub(crate) trait RowExt {
    /// A non-null integer column.
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    /// A non-null text column.
    fn text(&self, col: &str) -> Result<String, StoreError>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    /// A nullable floating-point column.
    fn opt_float(&self, col: &str) -> Result<Option<f64>, StoreError>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn int(&self, col: &str) -> Result<i64, StoreError> {
                Ok(self.try_get::<i64, _>(col)?)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get::<Option<i64>, _>(col)?)
            }
            fn text(&self, col: &str) -> Result<String, StoreError> {
                Ok(self.try_get::<String, _>(col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get::<Option<String>, _>(col)?)
            }
            fn opt_float(&self, col: &str) -> Result<Option<f64>, StoreError> {
                Ok(self.try_get::<Option<f64>, _>(col)?)
            }
        }
    };
}
impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);

/// Options for opening the database.
pub(crate) struct ConnectOptions {
    pub max_connections: u32,
    pub busy_timeout: Duration,
    pub sqlite_synchronous_full: bool,
    /// The longest wait for a connection, opening one included (see
    /// [`crate::StoreConfig::acquire_timeout`]).
    pub acquire_timeout: Duration,
    /// SQLite: the most pages the file may grow to (see
    /// [`crate::StoreConfig::sqlite_max_page_count`]).
    pub sqlite_max_page_count: Option<u32>,
}

/// Runs, inside the transaction `$tx`, each migration whose version is not yet recorded, and
/// records it. A macro rather than a generic function: the body is the same on both backends.
macro_rules! apply_missing {
    ($tx:ident, $migrations:expr) => {{
        let rows = sqlx::query("SELECT version FROM schema_migrations").fetch_all(&mut *$tx).await?;
        let mut applied = Vec::with_capacity(rows.len());
        for row in &rows {
            applied.push(row.int("version")?);
        }
        for &(version, sql) in $migrations {
            if applied.contains(&version) {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *$tx).await.map_err(|source| StoreError::Migration { version, source })?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut *$tx)
                .await?;
            tracing::info!(version, "applied migration");
        }
    }};
}

/// WAL pages after which a committing connection checkpoints by itself (SQLite's default is 1,000,
/// about 4 MB: a 10,000-id request every few dozen would pay for a checkpoint).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_000;

impl Db {
    /// Opens the pool for `url` (`sqlite://path`, `sqlite::memory:`, `postgres://...`).
    /// On an SQLite file, also opens a second, small pool for relaxed commits (see
    /// [`Flavor::begin_relaxed`]).
    pub(crate) async fn connect(url: &str, options: &ConnectOptions) -> Result<(Db, Option<SqlitePool>), StoreError> {
        if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL makes every commit durable across power loss: an accepted job survives.
                .synchronous(if options.sqlite_synchronous_full {
                    SqliteSynchronous::Full
                } else {
                    SqliteSynchronous::Normal
                })
                .busy_timeout(options.busy_timeout)
                .foreign_keys(true)
                // Checkpoints run in the background (see `Store::connect`); this is only the
                // safety net should they fall behind, so a commit rarely pays for one.
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
            let connect = match options.sqlite_max_page_count {
                Some(pages) => connect.pragma("max_page_count", pages.to_string()),
                None => connect,
            };
            // An in-memory database exists per connection: keep exactly one, forever.
            if memory {
                let pool = SqlitePoolOptions::new()
                    .acquire_timeout(options.acquire_timeout)
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
                return Ok((Db::Sqlite(pool.connect_with(connect).await?), None));
            }
            // An embedded database cannot drop a connection the way a network can: a ping before
            // every acquire would only cost a round trip to the connection's thread. But SQLite
            // ends a transaction by itself when a statement in it fails with SQLITE_FULL, IOERR,
            // NOMEM or (sometimes) BUSY; sqlx's rollback of it then fails, and sqlx goes on
            // believing the connection is in a transaction, so its every later `BEGIN IMMEDIATE`
            // would fail. Such a connection is closed rather than handed out (a look at a counter,
            // no round trip): after a full disk, writes succeed again as soon as there is room.
            let pool = SqlitePoolOptions::new()
                .acquire_timeout(options.acquire_timeout)
                .max_connections(options.max_connections)
                .test_before_acquire(false)
                .before_acquire(|connection, _| Box::pin(async move { Ok(!connection.is_in_transaction()) }))
                .connect_with(connect.clone())
                .await?;
            // The runner's claims and intermediate checkpoints: redone after a crash if lost.
            let relaxed = SqlitePoolOptions::new()
                .acquire_timeout(options.acquire_timeout)
                .max_connections(2)
                .test_before_acquire(false)
                .before_acquire(|connection, _| Box::pin(async move { Ok(!connection.is_in_transaction()) }))
                .connect_with(connect.synchronous(SqliteSynchronous::Normal))
                .await?;
            Ok((Db::Sqlite(pool), Some(relaxed)))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // The acquire timeout also bounds opening a connection (sqlx retries the connect within
            // it): with the server down or silent, a request fails after it instead of hanging.
            // Pooled connections are pinged before use (sqlx's default), so one the server closed
            // (a restart, `pg_terminate_backend`) is replaced instead of failing a request. (The job
            // writer keeps its connection between batches under load, unchecked: `enqueue.rs`.)
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect(url)
                .await?;
            Ok((Db::Pg(pool), None))
        } else {
            Err(StoreError::InvalidUrl(url.to_owned()))
        }
    }

    /// Applies every migration this binary knows and the database has not seen yet.
    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(pool) => {
                // Nothing else runs before the migrations: a turn of their own is enough.
                let mut tx = pool.begin_write(&WriteTurns::default()).await?;
                sqlx::raw_sql(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                )
                .execute(&mut *tx)
                .await?;
                apply_missing!(tx, SQLITE_MIGRATIONS);
                tx.commit().await?;
            }
            Db::Pg(pool) => {
                let mut tx = pool.begin().await?;
                // Nodes starting together queue here; the lock ends with the transaction.
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK_ID).execute(&mut *tx).await?;
                sqlx::raw_sql(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                )
                .execute(&mut *tx)
                .await?;
                apply_missing!(tx, POSTGRES_MIGRATIONS);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Writes and removes a row of one page's worth of bytes in one committed write transaction
    /// (table `storage_probe`), to learn whether the database can be written now; on SQLite also
    /// copies the WAL back into the database file.
    pub(crate) async fn probe_write(&self, turns: &WriteTurns) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin_write(turns).await?;
                sqlx::query("INSERT INTO storage_probe (filler) VALUES (randomblob(4096))").execute(&mut *tx).await?;
                sqlx::query("DELETE FROM storage_probe").execute(&mut *tx).await?;
                tx.commit().await?;
                // On a full disk the commit may still fit in room the WAL has, while the database
                // file cannot grow to take it back: a checkpoint fails then (SQLITE_FULL).
                sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(pool).await?;
            }
            Db::Pg(pool) => {
                let mut tx = pool.begin_write(turns).await?;
                // Random bytes, which TOAST cannot compress away: the WAL gets a page's worth.
                sqlx::query(
                    "INSERT INTO storage_probe (filler)
                     SELECT string_agg(md5(random()::text), '')::bytea FROM generate_series(1, 256)",
                )
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM storage_probe").execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The highest applied migration version (0 for none).
    pub(crate) async fn schema_version(&self) -> Result<i64, StoreError> {
        with_db!(self, pool => {
            let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
                .fetch_one(pool)
                .await?;
            row.int("v")
        })
    }

    /// The version the last of this backend's migrations brings the schema to.
    pub(crate) fn latest_schema_version(&self) -> i64 {
        let migrations = match self {
            Db::Sqlite(_) => SQLITE_MIGRATIONS,
            Db::Pg(_) => POSTGRES_MIGRATIONS,
        };
        migrations.last().map_or(0, |(version, _)| *version)
    }

    /// True on PostgreSQL.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_))
    }
}

/// Milliseconds since the Unix epoch, the unit of every time in the store.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Converts a stored count (never negative) to `u64`.
pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Converts a count to the stored `i64`.
pub(crate) fn to_i64(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// A PostgreSQL URL with its database name replaced by `name` (the query string kept): for tools
/// and tests that create a scratch database next to the one a URL names.
///
/// ```
/// use catalog_store::with_database;
/// let url = with_database("postgres://u@h:5432/test?sslmode=disable", "scratch");
/// assert_eq!(url, "postgres://u@h:5432/scratch?sslmode=disable");
/// ```
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base.get(scheme_end..).and_then(|rest| rest.find('/')).map_or(base.len(), |i| i + scheme_end);
    format!("{}/{name}{query}", base.get(..path_start).unwrap_or(base))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    /// Lets every spawned task of the current-thread runtime run up to its next wait.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Spawns a writer that records `name` when its turn comes, then holds the turn until told.
    fn writer(
        turns: WriteTurns,
        name: &'static str,
        order: Arc<Mutex<Vec<&'static str>>>,
    ) -> (tokio::task::JoinHandle<()>, tokio::sync::oneshot::Sender<()>) {
        let (done, finish) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _turn = turns.take().await;
            order.lock().unwrap().push(name);
            let _ = finish.await;
        });
        (task, done)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_waits_for_at_most_one_background_turn() {
        let turns = WriteTurns::default();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (first, release_first) = writer(turns.clone(), "request 1", order.clone());
        settle().await;
        let (runner_a, release_a) = writer(turns.background(), "runner a", order.clone());
        let (runner_b, release_b) = writer(turns.background(), "runner b", order.clone());
        settle().await;
        let (second, release_second) = writer(turns.clone(), "request 2", order.clone());
        settle().await;
        for release in [release_first, release_a, release_second, release_b] {
            let _ = release.send(());
            settle().await;
        }
        for task in [first, runner_a, second, runner_b] {
            task.await.unwrap();
        }
        // Runner a queued while request 1 wrote; runner b had to let request 2 go first.
        assert_eq!(*order.lock().unwrap(), ["request 1", "runner a", "request 2", "runner b"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_that_gives_up_does_not_block_the_background() {
        let turns = WriteTurns::default();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (first, release_first) = writer(turns.clone(), "request 1", order.clone());
        settle().await;
        // A request queues, then is dropped (its client went away) before its turn.
        let abandoned = tokio::spawn({
            let turns = turns.clone();
            async move {
                let _turn = turns.take().await;
            }
        });
        settle().await;
        abandoned.abort();
        settle().await;
        let (runner, release_runner) = writer(turns.background(), "runner", order.clone());
        let _ = release_first.send(());
        settle().await;
        let _ = release_runner.send(());
        first.await.unwrap();
        runner.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["request 1", "runner"]);
    }
}
