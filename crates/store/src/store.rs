//! The [`Store`] handle and its configuration.

use crate::cache::LookupCache;
use crate::db::{ConnectOptions, Db, WriteTurns};
use crate::enqueue::Enqueuer;
use crate::error::StoreError;
use catalog_domain::job::DEFAULT_RETENTION_MS;
use catalog_domain::ErrorCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How the store behaves; [`StoreConfig::default`] suits production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// How long a finished job is kept before [`Store::purge_expired`] removes it (ms).
    pub retention_ms: i64,
    /// Largest connection pool.
    pub max_connections: u32,
    /// How long an SQLite connection waits for the write lock before failing.
    pub busy_timeout: Duration,
    /// SQLite `synchronous=FULL` (every commit survives power loss) rather than `NORMAL`.
    pub sqlite_synchronous_full: bool,
    /// How often [`Store::wait_for_job`] re-reads a job when no notification arrives (another
    /// node may finish it).
    pub wait_poll_interval: Duration,
    /// The longest a call waits for a database connection, opening one included: with
    /// PostgreSQL down or silent, a request fails after this (503) instead of hanging.
    pub acquire_timeout: Duration,
    /// SQLite: the most pages (of 4 KiB) the database file may grow to; a write past it fails as
    /// on a full disk (507). `None`: as large as the disk allows.
    pub sqlite_max_page_count: Option<u32>,
    /// The most inputs one project may have queued (unfinished jobs' inputs not yet applied); a
    /// job that would pass it is refused (`queue_full`). Default
    /// [`crate::queue::DEFAULT_MAX_QUEUED_INPUTS_PER_PROJECT`].
    pub max_queued_inputs_per_project: u64,
    /// The most inputs all projects together may have queued. Default
    /// [`crate::queue::DEFAULT_MAX_QUEUED_INPUTS`]. With both limits at `u64::MAX` the queue is not
    /// read before a batch at all.
    pub max_queued_inputs: u64,
    /// How long the job writer may admit jobs on its last read of the queue's counts plus what it
    /// admitted since, before reading them again. Within one process that is exact (runners only
    /// take away, and a job that would not fit is refused only on a fresh read); what other
    /// processes sharing the database accept meanwhile is seen at the next read, so they may
    /// together pass a limit by what they accept in this time. `Duration::ZERO` reads before
    /// every batch. Default [`crate::queue::DEFAULT_QUEUE_RECOUNT_AFTER`].
    pub queue_recount_after: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention_ms: DEFAULT_RETENTION_MS,
            max_connections: 8,
            busy_timeout: Duration::from_secs(10),
            sqlite_synchronous_full: true,
            wait_poll_interval: Duration::from_millis(500),
            acquire_timeout: Duration::from_secs(5),
            sqlite_max_page_count: None,
            max_queued_inputs_per_project: crate::queue::DEFAULT_MAX_QUEUED_INPUTS_PER_PROJECT,
            max_queued_inputs: crate::queue::DEFAULT_MAX_QUEUED_INPUTS,
            queue_recount_after: crate::queue::DEFAULT_QUEUE_RECOUNT_AFTER,
        }
    }
}

/// A handle on the database: the service layer and the runner's storage. Cheap to clone; all
/// clones share one pool and one set of in-process notifications.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// State shared by every clone of a [`Store`].
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) db: Db,
    /// SQLite only: connections with `synchronous = NORMAL` for commits that may be lost and
    /// redone (the runner's claims and intermediate checkpoints).
    pub(crate) relaxed_sqlite: Option<sqlx::SqlitePool>,
    pub(crate) config: StoreConfig,
    /// Signalled when a job is enqueued or released in this process: wakes idle runners at once.
    pub(crate) job_enqueued: Notify,
    /// Signalled when a job reaches a terminal status in this process: wakes long polls.
    pub(crate) job_finished: Notify,
    /// Set once the process shuts down ([`Store::end_waits`]): long polls answer at once.
    pub(crate) waits_ended: AtomicBool,
    /// Inputs this process's runners have applied (completed or failed) since it started.
    pub(crate) items_processed: Arc<AtomicU64>,
    /// The queue limits and the drain rate a refusal's `Retry-After` comes from (see `queue.rs`).
    pub(crate) queue: Arc<crate::queue::QueueBounds>,
    /// GCRA state on SQLite (see `rate.rs`): quota key → theoretical arrival time.
    pub(crate) local_quotas: Mutex<HashMap<String, f64>>,
    /// The group-commit writer every job creation goes through (see `enqueue.rs`).
    pub(crate) enqueuer: Enqueuer,
    /// Keys and catalogs as job-creating requests last found them (see `cache.rs`).
    pub(crate) cache: LookupCache,
    /// This process's queue for SQLite's write lock (see [`WriteTurns`]).
    pub(crate) write_turns: WriteTurns,
    /// A test's breakpoint handler (see `hooks.rs`); always `None` without the `test-hooks`
    /// feature.
    pub(crate) hooks: Option<Arc<dyn crate::hooks::Hooks>>,
    /// Whether this process's latest writes met storage trouble (see [`Store::readiness`]).
    pub(crate) health: Arc<Health>,
    /// The signal of new job events (see `events.rs`).
    pub(crate) events: crate::events::EventSignal,
}

/// What this process remembers of storage trouble: set when a write fails with it (a request's
/// job insert, a runner's chunk or claim, a PostgreSQL quota write, a readiness probe, SQLite's
/// background checkpoint), cleared when a write succeeds.
/// While it is set the store is not ready ([`Store::readiness`]).
#[derive(Debug, Default)]
pub(crate) struct Health {
    troubled: AtomicBool,
}

impl Health {
    /// Records the outcome of a write: success clears the trouble, storage trouble sets it, any
    /// other error (a refused value, a bug) says nothing about the storage.
    pub(crate) fn observe<T>(&self, outcome: &Result<T, StoreError>) {
        match outcome {
            Ok(_) => self.wrote(),
            Err(error) => self.failed(error),
        }
    }

    /// A write succeeded.
    pub(crate) fn wrote(&self) {
        if self.troubled.swap(false, Ordering::SeqCst) {
            tracing::info!("writes succeed again");
        }
    }

    /// A write failed with `error`.
    pub(crate) fn failed(&self, error: &StoreError) {
        if error.troubles_storage() && !self.troubled.swap(true, Ordering::SeqCst) {
            tracing::warn!(%error, "a write met storage trouble; not ready until a write succeeds");
        }
    }

    fn troubled(&self) -> bool {
        self.troubled.load(Ordering::SeqCst)
    }
}

impl Store {
    /// Opens `url` (`sqlite://path/to/file.db`, created if missing, or `postgres://...`) and
    /// applies pending migrations.
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Store, StoreError> {
        Store::open(url, config, None).await
    }

    /// [`Store::connect`], with a test's breakpoint handler installed (see [`crate::hooks`]).
    #[cfg(feature = "test-hooks")]
    pub async fn connect_with_hooks(
        url: &str,
        config: StoreConfig,
        hooks: Arc<dyn crate::hooks::Hooks>,
    ) -> Result<Store, StoreError> {
        Store::open(url, config, Some(hooks)).await
    }

    async fn open(
        url: &str,
        config: StoreConfig,
        hooks: Option<Arc<dyn crate::hooks::Hooks>>,
    ) -> Result<Store, StoreError> {
        let options = ConnectOptions {
            max_connections: config.max_connections.max(1),
            busy_timeout: config.busy_timeout,
            sqlite_synchronous_full: config.sqlite_synchronous_full,
            acquire_timeout: config.acquire_timeout,
            sqlite_max_page_count: config.sqlite_max_page_count,
        };
        // A database that can be read but not written is refused now, with a message saying so,
        // rather than accepting requests no write could apply.
        let (db, relaxed_sqlite) = Db::connect(url, &options).await.map_err(not_writable)?;
        db.migrate().await.map_err(not_writable)?;
        let write_turns = WriteTurns::default();
        let health = Arc::new(Health::default());
        match db.probe_write(&write_turns).await.map_err(not_writable) {
            Ok(()) => {}
            // A full disk or a busy file may pass without a restart: start, not ready.
            Err(error) if error.code().is_storage_trouble() && !matches!(error, StoreError::NotWritable { .. }) => {
                health.failed(&error)
            }
            Err(error) => return Err(error),
        }
        let items_processed = Arc::new(AtomicU64::new(0));
        let queue = Arc::new(crate::queue::QueueBounds::new(
            config.max_queued_inputs_per_project,
            config.max_queued_inputs,
            config.queue_recount_after,
            items_processed.clone(),
        ));
        let store = Store {
            inner: Arc::new(Inner {
                enqueuer: Enqueuer::start(
                    db.clone(),
                    write_turns.clone(),
                    hooks.clone(),
                    health.clone(),
                    queue.clone(),
                ),
                queue,
                health,
                db,
                relaxed_sqlite,
                config,
                job_enqueued: Notify::new(),
                job_finished: Notify::new(),
                waits_ended: AtomicBool::new(false),
                items_processed,
                local_quotas: Mutex::new(HashMap::new()),
                cache: LookupCache::default(),
                write_turns,
                hooks,
                events: crate::events::EventSignal::default(),
            }),
        };
        if let (Db::Sqlite(pool), Some(_)) = (store.db(), store.relaxed_sqlite()) {
            tokio::spawn(checkpoint_wal(Arc::downgrade(&store.inner), pool.clone()));
        }
        Ok(store)
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The turns write transactions take (see [`WriteTurns`]).
    pub(crate) fn write_turns(&self) -> &WriteTurns {
        &self.inner.write_turns
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// True when the backend is PostgreSQL (several nodes may share it).
    pub fn is_postgres(&self) -> bool {
        self.inner.db.is_postgres()
    }

    /// The highest migration applied to the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.inner.db.schema_version().await
    }

    /// The schema version this build's migrations bring its backend to: what
    /// [`Store::schema_version`] answers once they are applied (the backends' lists differ: a
    /// change one of them does not need has no migration there).
    pub fn latest_schema_version(&self) -> i64 {
        self.inner.db.latest_schema_version()
    }

    /// Checks the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        crate::db::with_db!(self.db(), pool => { sqlx::query("SELECT 1").execute(pool).await?; });
        Ok(())
    }

    /// Whether this store should be sent requests, answered within `within`: `Ok` when the
    /// database answers and writes succeed. While a recent write met storage trouble (and none has
    /// succeeded since), a probe write is tried and decides (see `Db::probe_write`); otherwise a
    /// ping does. The error says why not (its code is `unavailable` or `insufficient_storage`).
    pub async fn readiness(&self, within: Duration) -> Result<(), StoreError> {
        let check = async {
            if self.inner.health.troubled() {
                let probed = self.db().probe_write(self.write_turns()).await;
                self.inner.health.observe(&probed);
                probed
            } else {
                self.ping().await
            }
        };
        tokio::time::timeout(within, check).await.unwrap_or(Err(StoreError::TimedOut(within)))
    }

    /// The store's memory of storage trouble.
    pub(crate) fn health(&self) -> &Health {
        &self.inner.health
    }

    /// Closes the pool; later calls fail.
    pub async fn close(&self) {
        // The group-commit writer keeps a connection between batches; closing waits for it.
        self.inner.enqueuer.release().await;
        if let Some(relaxed) = &self.inner.relaxed_sqlite {
            relaxed.close().await;
        }
        crate::db::with_db!(self.db(), pool => pool.close().await)
    }

    /// The relaxed-commit pool, on SQLite files.
    pub(crate) fn relaxed_sqlite(&self) -> Option<&sqlx::SqlitePool> {
        self.inner.relaxed_sqlite.as_ref()
    }

    /// Wakes this process's idle runners: a job is due.
    pub(crate) fn wake_runners(&self) {
        self.inner.job_enqueued.notify_waiters();
    }

    /// Wakes this process's long polls: a job finished.
    pub(crate) fn job_finished(&self) {
        self.inner.job_finished.notify_waiters();
    }

    /// Answers every long poll of this process ([`Store::wait_for_job`]) at once with the job as it
    /// stands, now and from now on: the process is shutting down, and a poll held for its full
    /// wait would hold the exit for up to a minute.
    pub fn end_waits(&self) {
        self.inner.waits_ended.store(true, Ordering::SeqCst);
        self.inner.job_finished.notify_waiters();
    }
}

/// How often the background task copies the SQLite WAL back into the database file.
const WAL_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Checkpoints the WAL of an SQLite file in the background, so the commits that accept requests
/// do not pay for it (a checkpoint writes and fsyncs the database file). PASSIVE never waits for
/// readers or writers. Ends when the store is dropped.
async fn checkpoint_wal(store: std::sync::Weak<Inner>, pool: sqlx::SqlitePool) {
    let mut tick = tokio::time::interval(WAL_CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if store.upgrade().is_none() || pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::debug!(%error, "background WAL checkpoint failed");
            // On a full disk commits may still fit in the WAL's room while the database file
            // cannot grow: the checkpoint is what says so, even when nothing else writes.
            let error = StoreError::from(error);
            if let (Some(inner), ErrorCode::InsufficientStorage) = (store.upgrade(), error.code()) {
                inner.health.failed(&error);
            }
        }
    }
}

/// `error` as [`StoreError::NotWritable`] when the database refused a write for being read-only.
fn not_writable(error: StoreError) -> StoreError {
    let refused = match &error {
        StoreError::Database(e) | StoreError::Migration { source: e, .. } => crate::error::refuses_writes(e),
        _ => false,
    };
    if refused {
        StoreError::NotWritable { reason: error.to_string() }
    } else {
        error
    }
}
