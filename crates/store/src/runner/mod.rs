//! The job runner: claims jobs under a lease, applies them chunk by chunk, and checkpoints each
//! chunk in the same transaction that changes the data (DESIGN §4).
//!
//! Correctness rests on four things:
//! - **order**: a claim takes, per catalog, only the job [`catalog_domain::order`] lets start — at
//!   most one job of a catalog at a time, each catalog's jobs in the order they became due — so
//!   the catalog ends up as the requests said, on every worker and every process;
//! - **claiming** is one statement that bumps the job's `attempt` and sets the lease, so two
//!   runners never hold the same attempt;
//! - **fencing**: every write of a lease matches only while the job's attempt is still its own,
//!   so a runner that lost its lease writes nothing;
//! - **checkpointing**: the data change, the cursor and the counts commit together, so after a
//!   crash the next claim resumes at the cursor and no chunk is counted twice.
//!
//! Where to look: `claim.rs` (taking a job), `lease.rs` (the lease, its heartbeat, release and
//! retry), `apply/` (a chunk: one file per job kind), `batch.rs` (jobs applied together, and the
//! next batch read ahead), `trailing.rs` (PostgreSQL: the next batch of deletes written alongside),
//! `checkpoint.rs`, `worker.rs` (the loop a worker runs), `sql/` (every statement, per backend). This file: the [`Runner`], its
//! configuration, and [`Runner::run`], which supervises the workers, the purge and the LISTEN loop.

mod apply;
mod batch;
mod checkpoint;
mod claim;
mod lease;
mod sql;
mod trailing;
mod worker;

pub use lease::{Heartbeat, Lease};

use crate::db::{now_ms, to_i64, WriteTurns};
use crate::error::StoreError;
use crate::model::JobId;
use crate::store::Store;
use crate::supervise::supervise;
use crate::util::{hex, random_bytes};
use catalog_domain::autobatch::DEFAULT_BATCH_INPUTS;
use catalog_domain::job::{DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE_POSTGRES};

/// The most jobs a batch applies together unless told otherwise: bounds a batch of one-input jobs.
pub const DEFAULT_MAX_BATCH_JOBS: usize = 1_000;
use catalog_domain::{JobState, JobStatus};
use sql::Statements;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How a runner behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Names this runner in leases; unique per process (the default is random).
    pub owner: String,
    /// How long a claim, a checkpoint or a heartbeat keeps the job; another runner may take it
    /// over after. A heartbeat renews it every third of this while a chunk runs.
    pub lease_duration: Duration,
    /// Inputs of a job applied per transaction (a chunk).
    pub chunk_size: usize,
    /// The most inputs a batch applies in one transaction: a job's last chunk and the due jobs
    /// behind it that join it (`catalog_domain::autobatch`); 0 applies every job on its own.
    pub batch_inputs: usize,
    /// The most jobs one batch applies together; 1 applies every job on its own.
    pub max_batch_jobs: usize,
    /// How often an idle runner looks for due jobs without being woken (scheduled jobs, retries
    /// after a backoff, other nodes' jobs when LISTEN is unavailable).
    pub poll_interval: Duration,
    /// The least time between two claims of an idle worker that found nothing to start. Under a
    /// sustained load of small requests every accepted request wakes the idle workers, and while
    /// the only catalogs with work are held by other workers each wake cost a claim that found
    /// nothing: about 420 a second, 4 s of the database's time in 31 s
    /// (`cargo xtask bench http --backend postgres --section sustained`, pg_stat_statements).
    /// The wakes in between are not lost: the next claim sees what they announced. A job of a
    /// catalog that had no work waits this much longer at most.
    pub idle_claim_gap: Duration,
    /// Jobs processed concurrently by [`Runner::run`].
    pub workers: usize,
    /// Attempts at a job before it fails as unrunnable. An attempt counts when its chunk failed
    /// or its lease was lost; a graceful release at shutdown gives it back.
    pub max_attempts: u32,
    /// The wait before a job whose chunk failed is tried again; it doubles with each counted
    /// attempt, up to [`RunnerConfig::max_retry_backoff`].
    pub retry_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_retry_backoff: Duration,
    /// How often [`Runner::run`] purges expired jobs.
    pub purge_interval: Duration,
    /// The most catalogs one project may run at once (jobs a worker is applying, under a live
    /// lease, counted over every process sharing the database); a project at the cap gets no
    /// claim until one ends (`catalog_domain::turns`). 0: no cap.
    pub max_running_catalogs_per_project: u32,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        let suffix = random_bytes(4).map(|b| hex(&b)).unwrap_or_default();
        RunnerConfig {
            owner: format!("runner-{}-{suffix}", std::process::id()),
            lease_duration: Duration::from_secs(30),
            chunk_size: DEFAULT_CHUNK_SIZE,
            batch_inputs: usize::try_from(DEFAULT_BATCH_INPUTS).unwrap_or(usize::MAX),
            max_batch_jobs: DEFAULT_MAX_BATCH_JOBS,
            poll_interval: Duration::from_secs(1),
            idle_claim_gap: Duration::from_millis(20),
            workers: 1,
            max_attempts: 10,
            retry_backoff: Duration::from_secs(1),
            max_retry_backoff: Duration::from_secs(60),
            purge_interval: Duration::from_secs(60),
            max_running_catalogs_per_project: RunnerConfig::DEFAULT_MAX_RUNNING_CATALOGS_PER_PROJECT,
        }
    }
}

/// The chunk size a runner uses unless told otherwise: [`DEFAULT_CHUNK_SIZE`] on SQLite,
/// [`DEFAULT_CHUNK_SIZE_POSTGRES`] on PostgreSQL (see both for why).
pub fn default_chunk_size(postgres: bool) -> usize {
    if postgres {
        DEFAULT_CHUNK_SIZE_POSTGRES
    } else {
        DEFAULT_CHUNK_SIZE
    }
}

impl RunnerConfig {
    /// The default of [`RunnerConfig::max_running_catalogs_per_project`] (docs/RULES.md,
    /// "Projects served in turn"): it never binds with the default two workers of one process;
    /// where more workers share the database, it keeps some of them for other projects.
    pub const DEFAULT_MAX_RUNNING_CATALOGS_PER_PROJECT: u32 = 4;

    /// The wait before the attempt after attempt number `attempt` (1-based) failed.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.retry_backoff.saturating_mul(1 << doublings).min(self.max_retry_backoff)
    }
}

/// What one [`Lease::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A chunk was applied and checkpointed; more remain.
    Continue,
    /// The job reached this terminal status.
    Finished(JobStatus),
    /// Another runner took the job over; nothing was written.
    LeaseLost,
}

/// Applies jobs. Cheap to clone; clones share configuration and statements.
#[derive(Debug, Clone)]
pub struct Runner {
    store: Store,
    config: Arc<RunnerConfig>,
    sql: Arc<Statements>,
    /// The store's write turns, taken in the background: requests go first.
    turns: WriteTurns,
    /// The status a claim moves a job to (the state machine's, see [`JobState::claim`]).
    claimed_status: JobStatus,
    /// PostgreSQL: when a claim last walked the jobs after the listed catalogs were all busy
    /// (`claim::walk_due`).
    last_walk: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// The next batches of the catalogs whose batches are being written (`batch.rs`).
    read_ahead: batch::ReadAheads,
}

impl Runner {
    /// A runner over `store`.
    pub fn new(store: Store, config: RunnerConfig) -> Runner {
        let cap = Some(config.max_running_catalogs_per_project).filter(|&cap| cap > 0);
        let sql = Arc::new(Statements::new(store.is_postgres(), cap));
        let turns = store.write_turns().background();
        let claimed_status = JobState::new(0, false).claim().map_or(JobStatus::Running, |s| s.status);
        Runner {
            store,
            config: Arc::new(config),
            sql,
            turns,
            claimed_status,
            last_walk: Arc::default(),
            read_ahead: Arc::default(),
        }
    }

    /// This runner's configuration.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Inputs per chunk: the configured size, 0 counting as 1 (docs/RULES.md).
    fn chunk_size(&self) -> usize {
        self.config.chunk_size.max(1)
    }

    /// The lease duration in milliseconds, as the statements take it.
    fn lease_ms(&self) -> i64 {
        to_i64(self.config.lease_duration.as_millis())
    }

    /// Claims one due job and applies it to the end. Returns its id, or `None` when nothing was
    /// due. A job whose lease is lost midway is left to its new owner; a chunk that fails lets the
    /// job go for a retry after its backoff ([`Lease::retry_later`], or
    /// [`Lease::retry_after_trouble`] when the storage is at fault), and the error is returned.
    pub async fn process_one(&self) -> Result<Option<JobId>, StoreError> {
        let claimed = self.claim().await;
        self.observe_claim(&claimed);
        let Some(mut lease) = claimed? else {
            return Ok(None);
        };
        loop {
            let chunk_started = std::time::Instant::now();
            let stepped = lease.step().await;
            metrics::histogram!("catalogd_runner_chunk_seconds").record(chunk_started.elapsed());
            self.store.health().observe(&stepped);
            match stepped {
                Ok(Step::Continue) => {}
                Ok(_) => return Ok(Some(lease.job_id())),
                Err(error) => {
                    lease.let_go_after(&error).await?;
                    return Err(error);
                }
            }
        }
    }

    /// Tells the store's health what a claim says of the storage: a job claimed was written; a
    /// claim that failed may be storage trouble.
    fn observe_claim(&self, claimed: &Result<Option<Lease>, StoreError>) {
        match claimed {
            Ok(Some(_)) => self.store.health().wrote(),
            Ok(None) => {}
            Err(error) => self.store.health().failed(error),
        }
    }

    /// Processes due jobs until none is left; returns how many were processed.
    pub async fn run_until_idle(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        while self.process_one().await?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// Runs `workers` job loops, a purge loop and (on PostgreSQL) a LISTEN loop until `shutdown`
    /// completes; then each worker finishes the chunk in flight, releases its lease, and this
    /// returns. Each loop is supervised: one that stops on an error or a panic is logged and
    /// started again. On SQLite, the leases of a killed predecessor are taken back first.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        match self.take_back_leases().await {
            Ok(0) => {}
            Ok(jobs) => tracing::info!(jobs, "took back the jobs a previous process was running"),
            Err(error) => tracing::warn!(%error, "could not take back earlier leases; they will expire"),
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let restart_delay = self.config.poll_interval.min(Duration::from_secs(1));
        for worker in 0..self.config.workers.max(1) {
            let runner = self.clone();
            let stop = stop_rx.clone();
            tasks.spawn(async move {
                let name = format!("runner worker {worker}");
                supervise(&name, restart_delay, Some(stop.clone()), || runner.worker_loop(worker, stop.clone())).await;
            });
        }
        {
            let runner = self.clone();
            let stop = stop_rx.clone();
            tasks.spawn(async move {
                supervise("purge", restart_delay, Some(stop.clone()), || runner.purge_loop(stop.clone())).await;
            });
        }
        if let crate::db::Db::Pg(pool) = self.store.db() {
            let runner = self.clone();
            let pool = pool.clone();
            let stop = stop_rx.clone();
            tasks.spawn(async move {
                supervise("LISTEN", restart_delay, Some(stop.clone()), || {
                    runner.listen_loop(pool.clone(), stop.clone())
                })
                .await;
            });
        }
        shutdown.await;
        tracing::info!(owner = %self.config.owner, "runner stopping");
        let _ = stop_tx.send(true);
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "runner task ended abnormally");
            }
        }
        Ok(())
    }

    async fn purge_loop(&self, mut stop: watch::Receiver<bool>) -> Result<(), StoreError> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            match self.store.purge_expired(now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "purged expired jobs"),
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.purge_interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Turns other nodes' NOTIFYs into local wake-ups: a job became due (wakes the workers) or
    /// finished (wakes long polls, and the workers: its catalog's next job may start). Polling
    /// covers any gap while reconnecting.
    async fn listen_loop(&self, pool: sqlx::PgPool, mut stop: watch::Receiver<bool>) -> Result<(), StoreError> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let listener = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen_all(["catalogd_jobs", "catalogd_jobs_done"]).await?;
                loop {
                    let note = listener.recv().await?;
                    if note.channel() != "catalogd_jobs" {
                        self.store.job_finished();
                    }
                    self.store.wake_runners();
                }
            };
            tokio::select! {
                result = listener => {
                    let result: Result<(), sqlx::Error> = result;
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "LISTEN connection lost; polling until it is back");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = stop.changed() => {}
                    }
                }
                _ = stop.changed() => {}
            }
        }
    }
}
