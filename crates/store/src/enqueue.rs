//! Group commit for job creation.
//!
//! Every accepted bulk request is one job insert that must be durable before the caller hears
//! 202, and a durable commit costs an fsync: one commit per request caps acceptance near the
//! disk's fsync rate (DESIGN §4: ~5 k/s on PostgreSQL, less on SQLite). So requests hand their
//! insert to one writer task per store, which takes every insert waiting at that moment, writes
//! them all in one transaction and commits once. Alone, a request is committed at once; under
//! load, the requests that arrive while one batch commits form the next batch.
//!
//! A batch that the database refuses as a whole (one bad statement aborts a PostgreSQL
//! transaction) is retried one insert per transaction, so one request's failure never becomes its
//! neighbours'; a batch of one is not tried twice. A batch that failed otherwise (its connection
//! lost, none to be had) is not retried: it may have committed, and its requests hear the error.

use crate::db::{count, discard_connection, to_i64, Db, RowExt, SqliteQuery, Turn, WriteTurns};
use crate::error::StoreError;
use crate::hooks::{injected_error, reach, Breakpoint, InstalledHooks};
use crate::model::{CatalogId, Job, JobId, ProjectId};
use crate::queue::{QueueBounds, QueueView, ReadBegun};
use crate::store::Health;
use crate::supervise::panic_message;
use catalog_domain::{JobKind, JobStatus};
use futures_util::FutureExt;
use sqlx::pool::PoolConnection;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Most inserts committed together.
const MAX_BATCH: usize = 256;
/// A job whose payload has at least this many bytes is committed alone (so a batch holds at most
/// `MAX_BATCH` smaller payloads, 16 MiB), and on SQLite its payload is written in parts of
/// [`PAYLOAD_PART_BYTES`] rather than copied whole (see [`insert_large_sqlite`]).
const LARGE_PAYLOAD: usize = 64 * 1024;
/// The largest part of a large payload stored on SQLite (`job_payload_parts`, migration 0005).
pub(crate) const PAYLOAD_PART_BYTES: usize = 1024 * 1024;
/// Inserts that may wait for the writer before callers wait to hand theirs over.
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;

/// One job to create: every column of its row, and its payload.
#[derive(Debug)]
pub(crate) struct NewJob {
    pub(crate) project_id: i64,
    pub(crate) catalog_id: i64,
    pub(crate) catalog_name: String,
    pub(crate) kind: JobKind,
    pub(crate) status: JobStatus,
    pub(crate) total_count: i64,
    pub(crate) flags: i64,
    pub(crate) payload: String,
    pub(crate) description: Option<String>,
    pub(crate) reference_id: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) request_hash: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) start_at: Option<i64>,
    /// The API key that asked, re-checked at insert (see [`crate::JobOptions::requested_by`]).
    pub(crate) requested_by: Option<i64>,
}

impl NewJob {
    /// The job as its row reads right after the insert, under the id `id`, created at
    /// `created_at` (on PostgreSQL the database's clock says when, see [`PG_INSERT`]).
    fn to_job(&self, id: i64, created_at: i64) -> Job {
        Job {
            id: JobId(id),
            project_id: ProjectId(self.project_id),
            catalog_id: Some(CatalogId(self.catalog_id)),
            catalog_name: Some(self.catalog_name.clone()),
            kind: self.kind,
            status: self.status,
            total_count: count(self.total_count),
            completed_count: 0,
            failed_count: 0,
            cursor: 0,
            cancel_requested: false,
            description: self.description.clone(),
            reference_id: self.reference_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            attempt: 0,
            lease_owner: None,
            lease_expires_at: None,
            created_at,
            updated_at: created_at,
            start_at: self.start_at,
            started_at: None,
            finished_at: None,
            expires_at: None,
            failure_reason: None,
        }
    }
}

/// What became of one job handed to the writer.
#[derive(Debug, Clone)]
pub(crate) enum Inserted {
    /// The job was created.
    Created(Box<Job>),
    /// A job with the same idempotency key exists (a twin request created it first).
    KeyTaken,
    /// The requesting API key was revoked before the insert.
    KeyRevoked,
    /// The catalog was deleted before the insert.
    CatalogGone,
}

/// What the writer task is sent.
// Boxing the insert would cost every request an allocation to shrink a message sent once.
#[allow(clippy::large_enum_variant)]
enum Message {
    Insert(Request),
    /// Give the kept connection back to the pool (the store is closing), then answer.
    Release(oneshot::Sender<()>),
}

struct Request {
    job: NewJob,
    /// The outcome, and the job handed back (a caller may retry it, see [`Inserted::CatalogGone`]).
    reply: oneshot::Sender<Result<(Inserted, NewJob), StoreError>>,
}

/// The handle requests use to reach the writer task.
#[derive(Debug, Clone)]
pub(crate) struct Enqueuer {
    sender: mpsc::Sender<Message>,
}

impl Enqueuer {
    /// Starts the writer task for `db`; it ends when the last handle is dropped.
    /// Every batch's outcome is reported to `health` (storage trouble, or a write that succeeded).
    /// Jobs that would pass a limit of `queue` are refused (see `queue.rs`).
    pub(crate) fn start(
        db: Db,
        turns: WriteTurns,
        hooks: InstalledHooks,
        health: Arc<Health>,
        queue: Arc<QueueBounds>,
    ) -> Enqueuer {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(supervised_writer(db, turns, hooks, health, queue, receiver));
        Enqueuer { sender }
    }

    /// Inserts `job` and its payload durably, committed together with whatever else is waiting;
    /// hands `job` back with the outcome.
    pub(crate) async fn insert(&self, job: NewJob) -> Result<(Inserted, NewJob), StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Corrupt("the job writer has stopped".into());
        self.sender.send(Message::Insert(Request { job, reply })).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Has the writer give its kept connection back to the pool once the inserts sent before are
    /// done: closing a pool waits for every connection.
    pub(crate) async fn release(&self) {
        let (done, released) = oneshot::channel();
        if self.sender.send(Message::Release(done)).await.is_ok() {
            let _ = released.await;
        }
    }
}

/// Runs the writer until the last handle is dropped, starting it again should it panic: a panic
/// fails the requests of the batch in hand (their callers hear an error, and nothing of a batch
/// that never reached its commit was created), and the requests after it are served as usual.
/// Without this, one panic would leave every later request waiting on a writer that is gone.
async fn supervised_writer(
    db: Db,
    turns: WriteTurns,
    hooks: InstalledHooks,
    health: Arc<Health>,
    queue: Arc<QueueBounds>,
    mut receiver: mpsc::Receiver<Message>,
) {
    loop {
        let run = AssertUnwindSafe(writer(db.clone(), turns.clone(), &hooks, &health, &queue, &mut receiver))
            .catch_unwind()
            .await;
        match run {
            Ok(()) => return,
            Err(panic) => {
                tracing::error!(panic = %panic_message(panic.as_ref()), "the job writer panicked; restarting it")
            }
        }
    }
}

async fn writer(
    db: Db,
    turns: WriteTurns,
    hooks: &InstalledHooks,
    health: &Health,
    queue: &QueueBounds,
    receiver: &mut mpsc::Receiver<Message>,
) {
    let mut writer = Writer {
        db,
        turns,
        hooks: hooks.clone(),
        connection: None,
        pg_connection: None,
        sqlite: SqliteStatements::new(),
        turn: None,
        batches_this_turn: 0,
        side: WriterSide::draw(),
        queue_view: None,
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut release = None;
    // A large job met while gathering a batch: the first of the next one.
    let mut held_over: Option<Request> = None;
    loop {
        let first = match held_over.take() {
            Some(request) => Message::Insert(request),
            None => match receiver.recv().await {
                Some(message) => message,
                None => break,
            },
        };
        // The turn first, then the batch: requests that arrive while another transaction holds
        // the write lock join this batch instead of waiting for the next.
        writer.take_turn().await;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Insert(request) => {
                    let large = request.job.payload.len() >= LARGE_PAYLOAD;
                    if large && !batch.is_empty() {
                        held_over = Some(request);
                        break;
                    }
                    batch.push(request);
                    if large {
                        break;
                    }
                }
                // Served after this batch: the batch holds the connection.
                Message::Release(done) => {
                    release = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = receiver.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if reach(hooks, Breakpoint::EnqueueBatch).await.is_err() {
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(StoreError::Database(injected_error())));
                }
                writer.after_batch(false);
                continue;
            }
            // Jobs over a queue limit leave the batch with their refusal; the rest go in.
            match writer.refuse_over_limits(queue, &mut batch).await {
                Ok(()) => {}
                // The queue could not be read: nothing of the batch goes in unchecked.
                Err(error) => {
                    health.failed(&error);
                    answer_all(&mut batch, error);
                }
            }
            if batch.is_empty() {
                writer.after_batch(!receiver.is_empty());
                continue;
            }
            let inserted = writer.insert_all(&mut batch).await;
            health.observe(&inserted);
            match inserted {
                Ok(results) => {
                    for (request, result) in batch.drain(..).zip(results) {
                        let _ = request.reply.send(Ok((result, request.job)));
                    }
                }
                // No second try for a lone job, whose failure is its own (and whose payload may be
                // spent, see `insert_large_sqlite`), nor for a batch that may have committed (a
                // reply lost with its connection) or was never sent (no connection): writing its
                // jobs again could create them twice, or wait for a connection once per job.
                Err(error) if batch.len() == 1 || !error.is_database_answer() => answer_all(&mut batch, error),
                Err(error) => {
                    tracing::debug!(%error, size = batch.len(), "group commit failed; inserting one by one");
                    for mut request in batch.drain(..) {
                        let result =
                            writer.insert_all(std::slice::from_mut(&mut request)).await.and_then(|mut jobs| {
                                jobs.pop()
                                    .ok_or_else(|| StoreError::Corrupt("an insert of one job answered nothing".into()))
                            });
                        health.observe(&result);
                        let _ = request.reply.send(result.map(|inserted| (inserted, request.job)));
                    }
                }
            }
            writer.after_batch(!receiver.is_empty());
        }
        if let Some(done) = release.take() {
            writer.connection = None;
            writer.pg_connection = None;
            writer.after_batch(false);
            let _ = done.send(());
        }
    }
}

/// Answers every request of `batch` with `error` (the first with `error` itself, the others with
/// its echo, see `queue::echo`), and empties it.
fn answer_all(batch: &mut Vec<Request>, error: StoreError) {
    for request in batch.drain(1..) {
        let _ = request.reply.send(Err(crate::queue::echo(&error)));
    }
    if let Some(first) = batch.pop() {
        let _ = first.reply.send(Err(error));
    }
}

/// The columns of a new job row after its id, in the order both backends' inserts give them
/// (`updated_at` repeats `created_at`).
const COLUMNS: &str = "project_id, catalog_id, catalog_name, kind, status, total_count, flags, description, \
                       reference_id, idempotency_key, request_hash, created_at, updated_at, start_at";

/// Batches the writer may commit in one turn at SQLite's write lock while requests keep coming.
///
/// Between two turns of the writer, the runner may take one (see [`WriteTurns`]): handing the
/// lock over after every batch made each batch wait for a runner transaction, about as long as
/// the batch itself, which halved acceptance under load. Keeping it for a few batches while
/// more are waiting puts requests first and still lets jobs run: under full load the runner
/// gets one transaction in every `BATCHES_PER_TURN` + 1, and all of them as soon as the
/// requests pause.
const BATCHES_PER_TURN: usize = 4;

/// Rows per SQLite insert statement. SQLite has no array parameters, so a batch is written in
/// statements of this many `VALUES` rows (unused rows are NULL and skipped): one statement shape
/// for every batch size, and each statement crosses to sqlx's SQLite thread once, not once per job.
const SQLITE_ROWS_PER_STATEMENT: usize = 32;

impl Drop for Writer {
    fn drop(&mut self) {
        // Dropped by a panic, the kept connection may be inside a transaction: close it rather than
        // hand it back to the pool.
        if std::thread::panicking() {
            if let Some(connection) = self.connection.take() {
                drop(connection.detach());
            }
            if let Some(connection) = self.pg_connection.take() {
                drop(connection.detach());
            }
        }
    }
}

/// The writer task's database access.
struct Writer {
    db: Db,
    turns: WriteTurns,
    hooks: InstalledHooks,
    /// SQLite: the writer's own connection, kept between batches until the store closes (see
    /// [`Enqueuer::release`]). Its page cache stays warm and a batch costs no pool round trip; a
    /// connection that failed is closed and replaced.
    connection: Option<PoolConnection<sqlx::Sqlite>>,
    /// PostgreSQL: the connection of the batch before, kept while requests keep coming (see
    /// [`Writer::insert_all_pg`]).
    pg_connection: Option<PoolConnection<sqlx::Postgres>>,
    sqlite: SqliteStatements,
    /// SQLite: the turn at the write lock, kept across batches while requests keep coming
    /// (see [`BATCHES_PER_TURN`]), and the batches written during it.
    turn: Option<Turn>,
    batches_this_turn: usize,
    /// PostgreSQL: the row of the queue's counts this writer adds to.
    side: WriterSide,
    /// The queue as last read plus what was admitted since, which admits a batch that fits in it
    /// without reading again (see [`QueueView`]).
    queue_view: Option<QueueView>,
}

impl Writer {
    /// Answers each job of `batch` that would pass a queue limit with [`StoreError::QueueFull`]
    /// and takes it out of the batch. A batch that fits in the writer's [`QueueView`] is admitted
    /// from it; otherwise the queue is read once for the whole batch, outside its insert's
    /// transaction, and only such a read refuses. Jobs other writers insert after the read (other
    /// processes on PostgreSQL) are not seen: the tolerance docs/RULES.md states.
    async fn refuse_over_limits(&mut self, queue: &QueueBounds, batch: &mut Vec<Request>) -> Result<(), StoreError> {
        if queue.unbounded() {
            return Ok(());
        }
        let jobs: Vec<(i64, u64)> = batch.iter().map(|r| (r.job.project_id, count(r.job.total_count))).collect();
        if let Some(view) = &mut self.queue_view {
            if view.admit_all(queue, &jobs, Instant::now()) {
                return Ok(());
            }
        }
        let mut projects: Vec<i64> = jobs.iter().map(|(project, _)| *project).collect();
        projects.sort_unstable();
        projects.dedup();
        let begun = ReadBegun::now(queue);
        let (per_project, total) = crate::queue::queued(&self.db, self.connection.as_deref_mut(), &projects).await?;
        let mut view = QueueView::read(begun, &projects, per_project, total);
        let (per_project, total) = view.counts();
        let verdicts = queue.admit(jobs.iter().copied(), per_project, total);
        view.count_in(jobs.iter().zip(&verdicts).filter(|(_, verdict)| verdict.is_none()).map(|(job, _)| *job));
        self.queue_view = Some(view);
        if verdicts.iter().all(Option::is_none) {
            return Ok(());
        }
        let rate = queue.drain_rate();
        let mut kept = Vec::with_capacity(batch.len());
        for (request, verdict) in batch.drain(..).zip(verdicts) {
            match verdict {
                None => kept.push(request),
                Some((limit, excess)) => {
                    let retry_after_secs = crate::queue::retry_after_secs(excess, rate);
                    let _ = request.reply.send(Err(StoreError::QueueFull { limit, excess, retry_after_secs }));
                }
            }
        }
        *batch = kept;
        Ok(())
    }

    /// Inserts every job of `jobs` with its payload in one transaction. A job is inserted only
    /// when its key (if any) is not revoked and its catalog not deleted at that moment: this is
    /// the fence that lets callers look both up in a cache (see `cache.rs`).
    ///
    /// Each call, one transaction, is one sample of the writer's metrics: its jobs and its time
    /// (on SQLite the wait for the write lock included), whatever its outcome. The time's rate
    /// is the share of time the writer was busy: near 1, accepted requests wait for the writer
    /// rather than for the machine (docs/PERFORMANCE.md, "Sustained load").
    async fn insert_all(&mut self, batch: &mut [Request]) -> Result<Vec<Inserted>, StoreError> {
        let started = Instant::now();
        let inserted = self.insert_all_untimed(batch).await;
        metrics::histogram!("catalogd_job_writer_batch_jobs").record(batch.len() as f64);
        metrics::histogram!("catalogd_job_writer_batch_seconds").record(started.elapsed().as_secs_f64());
        inserted
    }

    /// [`Writer::insert_all`] without its metrics.
    async fn insert_all_untimed(&mut self, batch: &mut [Request]) -> Result<Vec<Inserted>, StoreError> {
        self.take_turn().await;
        let pool = match &self.db {
            Db::Pg(pool) => {
                let pool = pool.clone();
                return self.insert_all_pg(&pool, &batch.iter().map(|r| &r.job).collect::<Vec<_>>()).await;
            }
            Db::Sqlite(pool) => pool,
        };
        let mut connection = match self.connection.take() {
            Some(connection) => {
                reach(&self.hooks, Breakpoint::EnqueueOnKeptConnection { jobs: batch.len() }).await?;
                connection
            }
            None => {
                let mut connection = pool.acquire().await?;
                sqlx::query(CREATE_BATCH_TABLE).execute(&mut *connection).await?;
                connection
            }
        };
        self.batches_this_turn += 1;
        let inserted = match batch {
            [lone] if lone.job.payload.len() >= LARGE_PAYLOAD => {
                insert_large_sqlite(&mut connection, &self.sqlite, &mut lone.job).await.map(|one| vec![one])
            }
            _ => {
                insert_all_sqlite(&mut connection, &self.sqlite, &batch.iter().map(|r| &r.job).collect::<Vec<_>>())
                    .await
            }
        };
        if inserted.is_err() {
            // Its transaction may be open: roll it back, and never hand the connection back to the
            // pool, whose other users would not know.
            discard_connection(connection).await;
        } else if pool.options().get_max_connections() > 1 {
            self.connection = Some(connection);
        }
        // (A pool of one connection, an in-memory database, cannot spare it between batches.)
        inserted
    }

    /// PostgreSQL: [`insert_all_pg`] on the connection kept from the batch before, if any, else on
    /// one from the pool, which is then kept for the next batch. [`Writer::after_batch`] gives it
    /// back when no request is waiting.
    ///
    /// Why: the pool checks a connection with a round trip before handing it out (so that one the
    /// server has closed is replaced, not failed), and under load that check was a quarter of
    /// each group commit, which requests wait for (docs/PERFORMANCE.md, "Sustained load"). A
    /// connection in use a moment ago needs no such check; one the server has ended meanwhile (a
    /// restart, `pg_terminate_backend`) fails the batch with a 57P0x SQLSTATE, which proves its
    /// statement never committed (the server ends a connection's transaction with it), so the
    /// batch is written again on a connection from the pool. An idle connection goes back to the
    /// pool, which checks it after the pause: nothing is kept across the idle spells in which a
    /// firewall may drop a connection without a word.
    async fn insert_all_pg(&mut self, pool: &sqlx::PgPool, jobs: &[&NewJob]) -> Result<Vec<Inserted>, StoreError> {
        if let Some(mut kept) = self.pg_connection.take() {
            reach(&self.hooks, Breakpoint::EnqueueOnKeptConnection { jobs: jobs.len() }).await?;
            match insert_all_pg(&mut kept, jobs, self.side).await {
                Ok(inserted) => {
                    self.pg_connection = Some(kept);
                    return Ok(inserted);
                }
                Err(error) if error.is_connection_ended_by_server() => {
                    tracing::debug!(%error, "the job writer's connection was ended by the server; writing again");
                }
                Err(error) => return Err(error),
            }
        }
        let mut connection = pool.acquire().await?;
        let inserted = insert_all_pg(&mut connection, jobs, self.side).await?;
        self.pg_connection = Some(connection);
        Ok(inserted)
    }

    /// SQLite: waits for the turn at the write lock, unless this writer holds it already.
    async fn take_turn(&mut self) {
        if matches!(self.db, Db::Sqlite(_)) && self.turn.is_none() {
            self.turn = Some(self.turns.take().await);
        }
    }

    /// After a batch: gives the write lock's turn back, unless `more_waiting` and the turn has
    /// not yet lasted [`BATCHES_PER_TURN`] batches; on PostgreSQL gives the connection back to
    /// the pool unless `more_waiting`.
    fn after_batch(&mut self, more_waiting: bool) {
        if !more_waiting {
            self.pg_connection = None;
        }
        if !more_waiting || self.batches_this_turn >= BATCHES_PER_TURN {
            self.turn = None;
            self.batches_this_turn = 0;
        }
    }
}

/// SQL that is true when the key `key` (a column that may be NULL: no key to check) is not
/// revoked; `lock` is `FOR SHARE` or empty.
pub(crate) fn key_live(key: &str, lock: &str) -> String {
    format!("({key} IS NULL OR EXISTS (SELECT 1 FROM api_keys k WHERE k.id = {key} AND k.revoked_at IS NULL {lock}))")
}

/// SQL that is true when the catalog `catalog` is not deleted; `lock` is `FOR SHARE` or empty.
fn catalog_live(catalog: &str, lock: &str) -> String {
    format!("EXISTS (SELECT 1 FROM catalogs c WHERE c.id = {catalog} AND c.deleted_at IS NULL {lock})")
}

/// The PostgreSQL batch insert (see [`insert_all_pg`]), built once.
static PG_INSERT: LazyLock<String> = LazyLock::new(|| {
    let fenced =
        format!("{} AND {}", key_live("i.requested_by", "FOR SHARE"), catalog_live("i.catalog_id", "FOR SHARE"));
    format!(
        "WITH side AS MATERIALIZED (SELECT set_config('catalogd.queue_side', $16, true) AS v),
         input AS MATERIALIZED (
             SELECT r.*, nextval(pg_get_serial_sequence('jobs', 'id')) AS id
             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bigint[],
                         $15::text[])
                  WITH ORDINALITY AS r(project_id, catalog_id, catalog_name, kind, status, total_count, flags,
                                       description, reference_id, idempotency_key, request_hash, created_at, start_at,
                                       requested_by, payload, ord)
             WHERE (SELECT v FROM side) IS NOT NULL),
         job AS (
             INSERT INTO jobs (id, {COLUMNS}) OVERRIDING SYSTEM VALUE
             SELECT i.id, i.project_id, i.catalog_id, i.catalog_name, i.kind, i.status, i.total_count, i.flags,
                    i.description, i.reference_id, i.idempotency_key, i.request_hash, {ACCEPTED_AT_PG}, {ACCEPTED_AT_PG},
                    i.start_at
             FROM input i WHERE {fenced} ORDER BY i.ord
             ON CONFLICT (project_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id, created_at),
         body AS (INSERT INTO job_payloads (job_id, payload) SELECT i.id, i.payload FROM input i JOIN job USING (id))
         SELECT i.id, (job.id IS NOT NULL)::int::int8 AS inserted, job.created_at,
                ({})::int::int8 AS key_live, ({})::int::int8 AS catalog_live
         FROM input i LEFT JOIN job USING (id) ORDER BY i.ord",
        key_live("i.requested_by", ""),
        catalog_live("i.catalog_id", "")
    )
});

/// When a job is accepted on PostgreSQL: the database's clock, at the start of the insert.
///
/// A job's place in its catalog's order is when it was accepted (see `catalog_domain::order`).
/// Several processes accept jobs for one database, each with its own clock; taken from one clock
/// instead, a request sent after another was answered is always accepted later (its statement
/// starts after the other's commit), whichever node each reached.
pub(crate) const ACCEPTED_AT_PG: &str = "floor(EXTRACT(EPOCH FROM statement_timestamp()) * 1000)::bigint";

/// The row of the queue's counts (`queue_inputs.side`, migration 0010) a process's job writer adds
/// to on PostgreSQL: one of 2 to 17, drawn when the writer starts, so that two processes' writers
/// rarely add to the same row, and never wait for each other's commit when they do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriterSide(u8);

impl WriterSide {
    /// Sides a writer draws from.
    const SIDES: u32 = 16;
    /// The first of them (0 holds the counts from before migration 0010, 1 the runner's).
    const FIRST: u32 = 2;

    /// A side for a writer starting now, at random (the first one if the system has no randomness:
    /// then writers share a row, which is slower, not wrong).
    pub(crate) fn draw() -> WriterSide {
        let drawn = crate::util::random_bytes(1).ok().and_then(|bytes| bytes.first().copied()).unwrap_or(0);
        WriterSide((Self::FIRST + u32::from(drawn) % Self::SIDES) as u8)
    }

    /// As the insert binds it (`catalogd.queue_side`, read by the insert trigger).
    fn as_setting(self) -> String {
        self.0.to_string()
    }
}

/// PostgreSQL: the whole batch is one statement over arrays, so it needs no explicit transaction
/// and costs one round trip whatever its size. Ids are drawn from the identity sequence first,
/// so each input row knows its job's id whether or not it was inserted. `FOR SHARE` makes a
/// concurrent revocation or catalog delete wait for this insert, or this insert see it. The
/// queue's counts go to the writer's own `side`.
async fn insert_all_pg(
    connection: &mut sqlx::PgConnection,
    jobs: &[&NewJob],
    side: WriterSide,
) -> Result<Vec<Inserted>, StoreError> {
    macro_rules! column {
        ($field:ident) => {
            jobs.iter().map(|job| job.$field.clone()).collect::<Vec<_>>()
        };
    }
    let rows = sqlx::query(&PG_INSERT)
        .bind(column!(project_id))
        .bind(column!(catalog_id))
        .bind(column!(catalog_name))
        .bind(jobs.iter().map(|job| job.kind.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|job| job.status.as_str()).collect::<Vec<_>>())
        .bind(column!(total_count))
        .bind(column!(flags))
        .bind(column!(description))
        .bind(column!(reference_id))
        .bind(column!(idempotency_key))
        .bind(column!(request_hash))
        .bind(column!(created_at))
        .bind(column!(start_at))
        .bind(column!(requested_by))
        .bind(jobs.iter().map(|job| job.payload.as_str()).collect::<Vec<_>>())
        .bind(side.as_setting())
        .fetch_all(connection)
        .await?;
    if rows.len() != jobs.len() {
        return Err(StoreError::Corrupt(format!("{} jobs in, {} rows out", jobs.len(), rows.len())));
    }
    jobs.iter()
        .zip(&rows)
        .map(|(job, row)| {
            let id = row.int("id")?;
            Ok(if row.int("inserted")? != 0 {
                Inserted::Created(Box::new(job.to_job(id, row.int("created_at")?)))
            } else {
                classify(row.int("key_live")? != 0, row.int("catalog_live")? != 0)
            })
        })
        .collect()
}

/// Why a job was not inserted, from the state of its key and catalog.
fn classify(key_live: bool, catalog_live: bool) -> Inserted {
    if !key_live {
        Inserted::KeyRevoked
    } else if !catalog_live {
        Inserted::CatalogGone
    } else {
        Inserted::KeyTaken
    }
}

/// The statements of an SQLite batch, built once.
struct SqliteStatements {
    /// A batch of `n` groups of [`SQLITE_ROWS_PER_STATEMENT`] jobs, from `BEGIN` to `COMMIT`, at
    /// index `n - 1` (see [`insert_all_sqlite`]).
    batches: Vec<String>,
    /// A large job: opens the transaction, answers its id, whether its key and catalog live and
    /// whether its idempotency key is free.
    begin_large: String,
    /// A large job: one part of its payload after the first.
    large_part: &'static str,
    /// A large job: inserts the row and the payload's first part, and commits.
    large_row: String,
}

/// Values bound per job of a group: 15 for the row, 2 for the payload, 3 for the check.
const SQLITE_JOB_VALUES: usize = 15;

/// Creates the one-row table an SQLite batch keeps its first job id in, for the statements
/// after the one that chose it; run on each connection the writer takes from the pool. A
/// temporary table is the connection's own and never written to the database file.
const CREATE_BATCH_TABLE: &str =
    "CREATE TEMP TABLE IF NOT EXISTS enqueue_batch (slot INTEGER PRIMARY KEY, first_id INTEGER NOT NULL)";

impl SqliteStatements {
    fn new() -> SqliteStatements {
        let rows = |width: usize| {
            let row = format!("({})", vec!["?"; width].join(", "));
            vec![row; SQLITE_ROWS_PER_STATEMENT].join(", ")
        };
        // `v.column1` is a job's position in the batch, its id `b.first_id` plus that.
        let fenced = format!("{} AND {}", key_live("v.column15", ""), catalog_live("v.column3", ""));
        let group = format!(
            "INSERT INTO jobs (id, {COLUMNS})
             SELECT b.first_id + v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7,
                    v.column8, v.column9, v.column10, v.column11, v.column12, v.column13, v.column13, v.column14
             FROM (VALUES {}) AS v, temp.enqueue_batch b
             WHERE v.column1 IS NOT NULL AND {fenced}
             ON CONFLICT (project_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;
             INSERT INTO job_payloads (job_id, payload)
             SELECT b.first_id + p.column1, p.column2 FROM (VALUES {}) AS p, temp.enqueue_batch b
             WHERE p.column1 IS NOT NULL AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = b.first_id + p.column1);
             SELECT b.first_id + m.column1 AS id, {} AS key_live, {} AS catalog_live
             FROM (VALUES {}) AS m, temp.enqueue_batch b
             WHERE m.column1 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = b.first_id + m.column1);",
            rows(SQLITE_JOB_VALUES),
            rows(2),
            key_live("m.column2", ""),
            catalog_live("m.column3", ""),
            rows(3),
        );
        let batches = (1..=MAX_BATCH.div_ceil(SQLITE_ROWS_PER_STATEMENT))
            .map(|groups| {
                format!(
                    "BEGIN IMMEDIATE;
                     INSERT OR REPLACE INTO temp.enqueue_batch (slot, first_id)
                     VALUES (0, COALESCE((SELECT seq FROM main.sqlite_sequence WHERE name = 'jobs'), 0) + 1);
                     SELECT first_id AS id, 1 AS key_live, 1 AS catalog_live FROM temp.enqueue_batch;
                     {}
                     COMMIT",
                    group.repeat(groups)
                )
            })
            .collect();
        let begin_large = format!(
            "BEGIN IMMEDIATE;
             SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0) + 1 AS id,
                    {} AS key_live, {} AS catalog_live,
                    NOT EXISTS (SELECT 1 FROM jobs WHERE project_id = $3 AND idempotency_key = $4) AS key_free",
            key_live("$1", ""),
            catalog_live("$2", "")
        );
        // No ON CONFLICT: the key was found free under the same write lock, so a conflict here
        // would be a bug, and fails the insert rather than passing silently.
        let large_row = format!(
            "INSERT INTO jobs (id, {COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14);
             INSERT INTO job_payloads (job_id, payload) VALUES ($1, $15);
             COMMIT"
        );
        SqliteStatements {
            batches,
            begin_large,
            large_part: "INSERT INTO job_payload_parts (job_id, part, payload) VALUES ($1, $2, $3)",
            large_row,
        }
    }
}

/// SQLite: the whole batch is one script, one round trip to sqlx's SQLite thread (each costs a
/// context switch or two, which on a busy machine is much of a small batch's time). It opens an
/// immediate transaction, so no other writer (of this process or another) runs between choosing
/// the ids and inserting them; ids continue `sqlite_sequence`, as `AUTOINCREMENT` would, so a
/// purged job's id is never handed out again. The first id is kept in the connection's
/// `enqueue_batch` table for the statements after, and answered first; then come the jobs that
/// were refused. The caller holds the turn at the write lock, has created `enqueue_batch` on
/// this connection, and must drop the connection when this fails, since the transaction may
/// still be open on it.
async fn insert_all_sqlite(
    connection: &mut sqlx::SqliteConnection,
    sql: &SqliteStatements,
    jobs: &[&NewJob],
) -> Result<Vec<Inserted>, StoreError> {
    let groups = jobs.len().div_ceil(SQLITE_ROWS_PER_STATEMENT);
    let script = groups
        .checked_sub(1)
        .and_then(|index| sql.batches.get(index))
        .ok_or_else(|| StoreError::Corrupt(format!("no SQLite statement for a batch of {}", jobs.len())))?;
    let mut query = sqlx::query(script);
    for (number, group) in jobs.chunks(SQLITE_ROWS_PER_STATEMENT).enumerate() {
        let positions = (number * SQLITE_ROWS_PER_STATEMENT..).map(to_i64);
        for (job, position) in group.iter().zip(positions.clone()) {
            query = bind_row(query, position, job).bind(job.requested_by);
        }
        query = pad(query, group.len() * SQLITE_JOB_VALUES, SQLITE_ROWS_PER_STATEMENT * SQLITE_JOB_VALUES);
        for (job, position) in group.iter().zip(positions.clone()) {
            query = query.bind(position).bind(job.payload.as_str());
        }
        query = pad(query, group.len() * 2, SQLITE_ROWS_PER_STATEMENT * 2);
        for (job, position) in group.iter().zip(positions) {
            query = query.bind(position).bind(job.requested_by).bind(job.catalog_id);
        }
        query = pad(query, group.len() * 3, SQLITE_ROWS_PER_STATEMENT * 3);
    }
    let rows = query.fetch_all(&mut *connection).await?;
    let Some((first, refused)) = rows.split_first() else {
        return Err(StoreError::Corrupt("a batch insert answered no first id".into()));
    };
    let first_id = first.int("id")?;
    let mut not_inserted = std::collections::HashMap::new();
    for row in refused {
        not_inserted.insert(row.int("id")?, classify(row.int("key_live")? != 0, row.int("catalog_live")? != 0));
    }
    Ok(jobs
        .iter()
        .zip(first_id..)
        .map(|(job, id)| {
            not_inserted.remove(&id).unwrap_or_else(|| Inserted::Created(Box::new(job.to_job(id, job.created_at))))
        })
        .collect())
}

/// SQLite, a job whose payload has at least [`LARGE_PAYLOAD`] bytes (always committed alone).
/// sqlx copies a bound argument unless it is given ownership, and SQLite copies it twice more
/// (the bound value, then the row's record): for a 10 MB request, 20 MB held at once on top of the
/// payload. So the payload is cut into parts of at most [`PAYLOAD_PART_BYTES`], each moved into its
/// own statement: the first goes to `job_payloads` with the row, the others to
/// `job_payload_parts`, split off the end one at a time so only one part exists twice. The fence
/// and the idempotency key are checked first, under the write lock, so that once the job is known
/// to go in nothing is copied in vain. A round trip per part, which a large job can afford. The
/// job handed back has no payload unless it was refused. Same caller duties as
/// [`insert_all_sqlite`].
async fn insert_large_sqlite(
    connection: &mut sqlx::SqliteConnection,
    sql: &SqliteStatements,
    job: &mut NewJob,
) -> Result<Inserted, StoreError> {
    let begun = sqlx::query(&sql.begin_large)
        .bind(job.requested_by)
        .bind(job.catalog_id)
        .bind(job.project_id)
        .bind(job.idempotency_key.as_deref())
        .fetch_one(&mut *connection)
        .await?;
    let (key_live, catalog_live) = (begun.int("key_live")? != 0, begun.int("catalog_live")? != 0);
    if !key_live || !catalog_live || begun.int("key_free")? == 0 {
        sqlx::query("ROLLBACK").execute(&mut *connection).await?;
        return Ok(classify(key_live, catalog_live));
    }
    let id = begun.int("id")?;
    let created = job.to_job(id, job.created_at);
    let mut payload = std::mem::take(&mut job.payload);
    let starts = part_starts(&payload, PAYLOAD_PART_BYTES);
    for (part, start) in starts.iter().enumerate().skip(1).rev() {
        let tail = payload.split_off(*start);
        sqlx::query(sql.large_part).bind(id).bind(to_i64(part)).bind(tail).execute(&mut *connection).await?;
    }
    payload.shrink_to_fit();
    bind_row(sqlx::query(&sql.large_row), id, job).bind(payload).execute(&mut *connection).await?;
    Ok(Inserted::Created(Box::new(created)))
}

/// Where each part of `text` starts when it is cut into parts of at most `part_bytes` bytes
/// (at least one part; a cut never splits a character, and a part is never empty).
fn part_starts(text: &str, part_bytes: usize) -> Vec<usize> {
    let mut starts = vec![0];
    let mut start = 0;
    while text.len() - start > part_bytes {
        let mut end = start + part_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // A character longer than a part (only with absurdly small parts) is kept whole.
        if end == start {
            end = start + part_bytes;
            while !text.is_char_boundary(end) {
                end += 1;
            }
            if end == text.len() {
                break;
            }
        }
        starts.push(end);
        start = end;
    }
    starts
}

/// Binds a job's row, id first, in the order of [`COLUMNS`] (`updated_at` aside: the SQL repeats
/// `created_at`).
fn bind_row<'q>(query: SqliteQuery<'q>, id: i64, job: &'q NewJob) -> SqliteQuery<'q> {
    query
        .bind(id)
        .bind(job.project_id)
        .bind(job.catalog_id)
        .bind(&job.catalog_name)
        .bind(job.kind.as_str())
        .bind(job.status.as_str())
        .bind(job.total_count)
        .bind(job.flags)
        .bind(job.description.as_deref())
        .bind(job.reference_id.as_deref())
        .bind(job.idempotency_key.as_deref())
        .bind(job.request_hash.as_deref())
        .bind(job.created_at)
        .bind(job.start_at)
}

/// Binds NULL to the unused slots `from..to` of a fixed-size statement.
fn pad<'q>(mut query: SqliteQuery<'q>, from: usize, to: usize) -> SqliteQuery<'q> {
    for _ in from..to {
        query = query.bind(None::<i64>);
    }
    query
}

#[cfg(test)]
mod tests {
    use super::part_starts;

    /// Cuts `text` at `starts`, checking that every part is within `part_bytes` and not empty.
    fn cut(text: &str, part_bytes: usize) -> Vec<&str> {
        let starts = part_starts(text, part_bytes);
        let ends = starts.iter().skip(1).copied().chain([text.len()]);
        starts.iter().zip(ends).map(|(&start, end)| &text[start..end]).collect()
    }

    #[test]
    fn a_payload_within_one_part_is_not_cut() {
        assert_eq!(part_starts("", 4), vec![0]);
        assert_eq!(part_starts("abcd", 4), vec![0]);
    }

    #[test]
    fn parts_cover_the_payload_in_order_without_splitting_a_character() {
        let text = "aü€bü€c𝄞d".repeat(50);
        for part_bytes in 4..40 {
            let parts = cut(&text, part_bytes);
            assert_eq!(parts.concat(), text, "part size {part_bytes}");
            assert!(parts.iter().all(|p| !p.is_empty() && p.len() <= part_bytes), "part size {part_bytes}");
            // Each cut is as late as it can be: the next character would not have fit.
            for pair in parts.windows(2) {
                let next = pair[1].chars().next().map_or(0, char::len_utf8);
                assert!(pair[0].len() + next > part_bytes, "part size {part_bytes}");
            }
        }
    }

    #[test]
    fn a_character_longer_than_a_part_is_kept_whole() {
        assert_eq!(cut("𝄞𝄞", 2), vec!["𝄞", "𝄞"]);
    }
}
