//! The job runner: claims due jobs under a lease, applies them chunk by chunk, and checkpoints
//! each chunk in the same transaction that changes the data (DESIGN §4).
//!
//! Correctness rests on three things:
//! - **claiming** is one statement that bumps the job's `attempt` and sets the lease, so two
//!   runners never hold the same attempt;
//! - **fencing**: every chunk transaction starts by updating the job row *where attempt is still
//!   ours*; if that touches no row the lease was taken over and the transaction is rolled back,
//!   so a runner that lost its lease writes nothing;
//! - **checkpointing**: the data change, the cursor and the counts commit together, so after a
//!   crash the next claim resumes at the cursor and no chunk is counted twice.

use crate::bulk::{CategoryRow, ItemRow, FLAG_CREATE_MISSING};
use crate::catalogs::parse_fields;
use crate::db::{count, now_ms, sqlite_script, to_i64, with_db, Flavor, RowExt, WriteTurns};
use crate::error::StoreError;
use crate::idlist::{in_list, IdList};
use crate::jobs::{joined_payload, PAYLOAD_PARTS};
use crate::model::JobId;
use crate::store::Store;
use crate::util::{hex, random_bytes};
use catalog_domain::job::DEFAULT_CHUNK_SIZE;
use catalog_domain::{ErrorCode, JobEvent, JobKind, JobState, JobStatus, TransitionError};
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How a runner behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Names this runner in leases; unique per process (the default is random).
    pub owner: String,
    /// How long a claim or a checkpoint keeps the job; another runner may take it over after.
    pub lease_duration: Duration,
    /// Inputs applied per transaction.
    pub chunk_size: usize,
    /// How often an idle runner looks for due jobs without being woken (scheduled jobs, other
    /// nodes' jobs when LISTEN is unavailable).
    pub poll_interval: Duration,
    /// Jobs processed concurrently by [`Runner::run`].
    pub workers: usize,
    /// Claims of one job before it is failed as unrunnable (a job that crashes its runner).
    pub max_attempts: u32,
    /// How often [`Runner::run`] purges expired jobs.
    pub purge_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        let suffix = random_bytes(4).map(|b| hex(&b)).unwrap_or_default();
        RunnerConfig {
            owner: format!("runner-{}-{suffix}", std::process::id()),
            lease_duration: Duration::from_secs(30),
            chunk_size: DEFAULT_CHUNK_SIZE,
            poll_interval: Duration::from_secs(1),
            workers: 1,
            max_attempts: 10,
            purge_interval: Duration::from_secs(60),
        }
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

/// A job's payload, parsed once per claim.
#[derive(Debug)]
enum Payload {
    /// Catalog delete: nothing to read.
    None,
    /// Ids to delete.
    Ids(Vec<String>),
    /// Items to upsert or patch.
    Items(Vec<ItemRow>),
    /// Categories to upsert or update.
    Categories(Vec<CategoryRow>),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::None => 1,
            Payload::Ids(v) => v.len(),
            Payload::Items(v) => v.len(),
            Payload::Categories(v) => v.len(),
        }
    }
}

/// Statements of the runner, built once for the backend.
#[derive(Debug)]
struct Statements {
    claim: String,
    /// PostgreSQL: the claim with a relaxed commit and the payload, as one statement.
    claim_with_payload: String,
    delete_items: String,
    delete_category_items_by_item: String,
    fence: &'static str,
    select_items: String,
    upsert_items: &'static str,
    select_categories: String,
    upsert_categories: &'static str,
    clear_category_items: String,
    insert_category_items: &'static str,
    delete_categories: String,
    /// The guarded checkpoint of a job with a catalog.
    checkpoint: String,
    /// The guarded checkpoint of a catalog delete (its catalog is gone by design).
    checkpoint_no_catalog: String,
    /// An item-delete chunk and its checkpoint in one round trip: one statement on PostgreSQL, a
    /// script on SQLite.
    delete_and_checkpoint: String,
    /// SQLite: a job's last item-delete chunk, its checkpoint, and the claim of the next due job
    /// (`$14` owner, `$15` lease end, `$16` now), in one script (see [`Lease::chain_next_claim`]).
    delete_checkpoint_and_claim: String,
}

/// SQL for the id of the oldest due job (`now` is the parameter holding the time): the oldest of
/// the oldest due job of each status, each found at the start of its `jobs_queue` (status, id) or
/// `jobs_scheduled` (status, start_at) range, so a claim costs the same whatever the backlog or the
/// history.
fn oldest_due_job(lock: &str, now: &str) -> String {
    format!(
        "SELECT id FROM (
             SELECT id FROM (SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1 {lock}) AS queued
             UNION ALL
             SELECT id FROM (SELECT id FROM jobs WHERE status = 'scheduled' AND start_at <= {now}
                             ORDER BY id LIMIT 1 {lock}) AS scheduled
             UNION ALL
             SELECT id FROM (SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < {now}
                             ORDER BY id LIMIT 1 {lock}) AS expired
         ) AS due ORDER BY id LIMIT 1"
    )
}

/// The columns a claim answers.
const CLAIM_COLUMNS: &str = "id, project_id, catalog_id, kind, attempt, flags, cursor, total_count, completed_count, \
                             failed_count, cancel_requested";

/// SQLite's claim statement, with its parameters named: the lease owner, the lease's end, and now.
/// Due: queued; scheduled whose start_at has come (BecameDue then Claimed); running whose lease
/// expired (Released then Claimed). The attempt bump is the fencing token.
fn claim_sqlite(owner: &str, lease_until: &str, now: &str) -> String {
    format!(
        "UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = {owner},
             lease_expires_at = {lease_until}, started_at = COALESCE(started_at, {now}), updated_at = {now}
         WHERE id = ({})
         RETURNING {CLAIM_COLUMNS}",
        oldest_due_job("", now)
    )
}

impl Statements {
    fn new(pg: bool) -> Statements {
        let skip_locked = if pg { "FOR UPDATE SKIP LOCKED" } else { "" };
        let pick = |sqlite: &'static str, postgres: &'static str| if pg { postgres } else { sqlite };
        // SQLite: an item-delete chunk and its checkpoint, the body of a script for
        // `sqlite_script`, one round trip. The deletes are guarded by the checkpoint's own
        // conditions, so a fenced-out chunk changes nothing, and the checkpoint answers a row when
        // it was written.
        let sqlite_fence = "EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND attempt = $2 AND cursor = $11
                                    AND status = 'running' AND cancel_requested = 0
                                    AND EXISTS (SELECT 1 FROM catalogs WHERE id = $12 AND deleted_at IS NULL))";
        let sqlite_delete_chunk = format!(
            "DELETE FROM category_items WHERE catalog_id = $12 AND {ids} AND {sqlite_fence};
             DELETE FROM items WHERE catalog_id = $12 AND {ids} AND {sqlite_fence};
             {} RETURNING id;",
            checkpoint_sql(false, true),
            ids = in_list(false, "item_id", "$13"),
        );
        Statements {
            // SQLite only (PostgreSQL claims with `claim_with_payload`): a script for
            // `sqlite_script`, one round trip.
            claim: format!("BEGIN IMMEDIATE; {}; COMMIT", claim_sqlite("$1", "$2", "$3")),
            claim_with_payload: format!(
                "WITH commit_mode AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS v),
                      claimed AS (
                          UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = $1,
                              lease_expires_at = $2, started_at = COALESCE(started_at, $3), updated_at = $3
                          WHERE id = ({}) AND (SELECT v FROM commit_mode) IS NOT NULL
                          RETURNING {CLAIM_COLUMNS})
                 SELECT c.*, p.payload FROM claimed c LEFT JOIN job_payloads p ON p.job_id = c.id",
                oldest_due_job(skip_locked, "$3")
            ),
            delete_items: format!("DELETE FROM items WHERE catalog_id = $1 AND {}", in_list(pg, "item_id", "$2")),
            delete_category_items_by_item: format!(
                "DELETE FROM category_items WHERE catalog_id = $1 AND {}",
                in_list(pg, "item_id", "$2")
            ),
            select_items: format!(
                "SELECT item_id, fields FROM items WHERE catalog_id = $1 AND {}",
                in_list(pg, "item_id", "$2")
            ),
            // `WHERE true` resolves SQLite's parsing ambiguity of INSERT ... SELECT ... ON CONFLICT.
            upsert_items: pick(
                "INSERT INTO items (catalog_id, item_id, fields, created_at, updated_at)
                 SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), $3, $3 FROM json_each($2) WHERE true
                 ON CONFLICT (catalog_id, item_id) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at",
                "INSERT INTO items (catalog_id, item_id, fields, created_at, updated_at)
                 SELECT $1, e->>0, (e->1)::text, $3, $3 FROM json_array_elements($2::json) e
                 ON CONFLICT (catalog_id, item_id) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at",
            ),
            select_categories: format!(
                "SELECT category_id, external_id, name FROM categories WHERE catalog_id = $1 AND {}",
                in_list(pg, "category_id", "$2")
            ),
            upsert_categories: pick(
                "INSERT INTO categories (catalog_id, category_id, external_id, name, created_at, updated_at)
                 SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), $3, $3
                 FROM json_each($2) WHERE true
                 ON CONFLICT (catalog_id, category_id) DO UPDATE SET external_id = excluded.external_id,
                     name = excluded.name, updated_at = excluded.updated_at",
                "INSERT INTO categories (catalog_id, category_id, external_id, name, created_at, updated_at)
                 SELECT $1, e->>0, e->>1, e->>2, $3, $3 FROM json_array_elements($2::json) e
                 ON CONFLICT (catalog_id, category_id) DO UPDATE SET external_id = excluded.external_id,
                     name = excluded.name, updated_at = excluded.updated_at",
            ),
            clear_category_items: format!(
                "DELETE FROM category_items WHERE catalog_id = $1 AND {}",
                in_list(pg, "category_id", "$2")
            ),
            insert_category_items: pick(
                "INSERT INTO category_items (catalog_id, category_id, item_id)
                 SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($2) WHERE true
                 ON CONFLICT DO NOTHING",
                "INSERT INTO category_items (catalog_id, category_id, item_id)
                 SELECT $1, e->>0, e->>1 FROM json_array_elements($2::json) e ON CONFLICT DO NOTHING",
            ),
            delete_categories: format!(
                "DELETE FROM categories WHERE catalog_id = $1 AND {}",
                in_list(pg, "category_id", "$2")
            ),
            fence: pick(FENCE_SQLITE, FENCE_PG),
            checkpoint: checkpoint_sql(pg, true),
            checkpoint_no_catalog: checkpoint_sql(pg, false),
            // PostgreSQL: an item-delete chunk and its checkpoint as ONE autocommit statement, so a
            // chunk costs one round trip like the raw baseline's statement. `job` locks the job row
            // only if the checkpoint guard holds (attempt, running, no cancel, catalog alive and
            // share-locked); the deletes and the update act only when it does, so a statement
            // whose guard fails changes nothing. $14 is this transaction's synchronous_commit
            // (see `Lease::step`); the CTE is materialized so it runs before the commit.
            delete_and_checkpoint: if pg {
                format!(
                "WITH commit_mode AS MATERIALIZED (SELECT set_config('synchronous_commit', $14, true) AS v),
                      job AS MATERIALIZED (
                          SELECT id FROM jobs
                          WHERE id = $1 AND attempt = $2 AND cursor = $11 AND status = 'running' AND cancel_requested = 0
                            AND EXISTS (SELECT 1 FROM catalogs WHERE id = $12 AND deleted_at IS NULL FOR SHARE)
                            AND (SELECT v FROM commit_mode) IS NOT NULL
                          FOR UPDATE),
                      members AS (DELETE FROM category_items
                                  WHERE catalog_id = $12 AND item_id = ANY($13) AND EXISTS (SELECT 1 FROM job)),
                      gone AS (DELETE FROM items
                               WHERE catalog_id = $12 AND item_id = ANY($13) AND EXISTS (SELECT 1 FROM job))
                 {} AND id IN (SELECT id FROM job)",
                checkpoint_sql(pg, false)
            )
            } else {
                format!("BEGIN IMMEDIATE; {sqlite_delete_chunk} COMMIT")
            },
            delete_checkpoint_and_claim: format!(
                "BEGIN IMMEDIATE; {sqlite_delete_chunk} {}; COMMIT",
                claim_sqlite("$14", "$15", "$16")
            ),
        }
    }
}

/// Binds the checkpoint's parameters $1..$11 (job, attempt, cursor, counts, status, times, lease,
/// expected cursor), shared by both backends' checkpoint statements.
macro_rules! bind_checkpoint {
    ($query:expr, $lease:expr, $end:expr, $next:expr, $now:expr, $finished_at:expr, $retention:expr, $lease_until:expr, $start:expr) => {
        $query
            .bind($lease.job_id.0)
            .bind($lease.attempt)
            .bind(to_i64($end))
            .bind(to_i64($next.completed_count))
            .bind(to_i64($next.failed_count))
            .bind($next.status.as_str())
            .bind($now)
            .bind($finished_at)
            .bind($finished_at.map(|at: i64| at.saturating_add($retention)))
            .bind($lease_until)
            .bind(to_i64($start))
    };
}

/// Applies jobs. Cheap to clone; clones share configuration and statements.
#[derive(Debug, Clone)]
pub struct Runner {
    store: Store,
    config: Arc<RunnerConfig>,
    sql: Arc<Statements>,
    /// The store's write turns, taken in the background: requests go first.
    turns: WriteTurns,
}

/// A job this runner claimed: step it to the end, or release it.
#[derive(Debug)]
pub struct Lease {
    runner: Runner,
    job_id: JobId,
    catalog_id: Option<i64>,
    kind: JobKind,
    attempt: i64,
    flags: i64,
    payload: Payload,
    /// The checkpoint as this lease last wrote it: where the next chunk starts.
    cursor: usize,
    /// The job's lifecycle state as this lease last wrote it. While the lease holds, nobody else
    /// changes the counts, so the next checkpoint is computed from this without reading the row.
    state: JobState,
    /// Set when the payload could not be read: the first step fails the job.
    broken: Option<String>,
    /// Set by [`Lease::chain_next_claim`]: the job's last chunk also claims the next due job.
    chain_next: bool,
    /// The job the last chunk claimed, until [`Lease::next_lease`] takes it (its payload unread).
    chained: Option<Claimed>,
}

/// A per-item failure found while applying a chunk.
struct ItemFailure {
    index: u64,
    item_id: String,
    code: ErrorCode,
    title: &'static str,
    detail: String,
    pointer: String,
}

/// What applying one chunk did to the data.
#[derive(Default)]
struct ChunkResult {
    completed: u64,
    failed: Vec<ItemFailure>,
}

impl Runner {
    /// A runner over `store`.
    pub fn new(store: Store, config: RunnerConfig) -> Runner {
        let sql = Arc::new(Statements::new(store.is_postgres()));
        let turns = store.write_turns().background();
        Runner { store, config: Arc::new(config), sql, turns }
    }

    /// This runner's configuration.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Claims the oldest due job, if any, under a fresh lease.
    pub async fn claim(&self) -> Result<Option<Lease>, StoreError> {
        let now = now_ms();
        let lease_until = now.saturating_add(to_i64(self.config.lease_duration.as_millis()));
        // A claim lost in a database crash is harmless (the job is simply due again), so its
        // commit need not wait for the WAL flush either. The payload is read once per claim.
        let claimed = match self.store.db() {
            crate::db::Db::Pg(pool) => {
                // One autocommit statement: claim, relaxed commit and payload in one round trip
                // (payloads are stored in parts on SQLite only: here the first part is all of it).
                let row = sqlx::query(&self.sql.claim_with_payload)
                    .bind(&self.config.owner)
                    .bind(lease_until)
                    .bind(now)
                    .fetch_optional(pool)
                    .await?;
                match row {
                    Some(row) => Some(claimed_from_row(&row, row.opt_text("payload")?)?),
                    None => None,
                }
            }
            crate::db::Db::Sqlite(pool) => {
                let relaxed = self.store.relaxed_sqlite().unwrap_or(pool);
                let claim = sqlx::query(&self.sql.claim).bind(&self.config.owner).bind(lease_until).bind(now);
                match sqlite_script(relaxed, &self.turns, claim).await?.first() {
                    Some(row) => Some(self.with_payload(claimed_from_row(row, None)?).await?),
                    None => None,
                }
            }
        };
        Ok(claimed.map(|claimed| self.lease(claimed)))
    }

    /// SQLite: reads the payload of a job just claimed, after the claim's commit and off the
    /// write lock (a payload never changes).
    async fn with_payload(&self, mut claimed: Claimed) -> Result<Claimed, StoreError> {
        with_db!(self.store.db(), pool => {
            let parts = sqlx::query(PAYLOAD_PARTS).bind(claimed.0 .0).fetch_all(pool).await?;
            claimed.6 = joined_payload(&parts)?;
        });
        Ok(claimed)
    }

    /// The lease on a job claimed with its payload.
    fn lease(&self, claimed: Claimed) -> Lease {
        let (job_id, catalog_id, kind, attempt, flags, (state, cursor), payload) = claimed;
        let mut broken = None;
        let kind = match kind.parse::<JobKind>() {
            Ok(kind) => kind,
            Err(e) => {
                broken = Some(e.to_string());
                JobKind::CatalogDelete
            }
        };
        let payload = match parse_payload(kind, payload.as_deref()) {
            Ok(payload) => payload,
            Err(reason) => {
                broken.get_or_insert(reason);
                Payload::None
            }
        };
        if attempt > i64::from(self.config.max_attempts) {
            broken.get_or_insert_with(|| format!("gave up after {} attempts", attempt - 1));
        }
        tracing::debug!(job = job_id.0, attempt, owner = %self.config.owner, "claimed job");
        Lease {
            runner: self.clone(),
            job_id,
            catalog_id,
            kind,
            attempt,
            flags,
            payload,
            cursor,
            state,
            broken,
            chain_next: false,
            chained: None,
        }
    }

    /// Claims one due job and applies it to the end. Returns its id, or `None` when nothing was
    /// due. A job whose lease is lost midway is left to its new owner.
    pub async fn process_one(&self) -> Result<Option<JobId>, StoreError> {
        let Some(mut lease) = self.claim().await? else {
            return Ok(None);
        };
        while lease.step().await? == Step::Continue {}
        Ok(Some(lease.job_id))
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
    /// returns.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..self.config.workers.max(1) {
            let runner = self.clone();
            let stop = stop_rx.clone();
            tasks.spawn(async move { runner.worker_loop(worker, stop).await });
        }
        {
            let runner = self.clone();
            let stop = stop_rx.clone();
            tasks.spawn(async move { runner.purge_loop(stop).await });
        }
        if let crate::db::Db::Pg(pool) = self.store.db() {
            let runner = self.clone();
            let pool = pool.clone();
            let stop = stop_rx.clone();
            tasks.spawn(async move { runner.listen_loop(pool, stop).await });
        }
        shutdown.await;
        tracing::info!(owner = %self.config.owner, "runner stopping");
        let _ = stop_tx.send(true);
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Err(e)) => result = Err(e),
                Err(e) => tracing::error!(error = %e, "runner task panicked"),
                Ok(Ok(())) => {}
            }
        }
        result
    }

    async fn worker_loop(&self, worker: usize, mut stop: watch::Receiver<bool>) -> Result<(), StoreError> {
        // The job the last one's final chunk claimed (see `Lease::chain_next_claim`).
        let mut chained: Option<Lease> = None;
        loop {
            if *stop.borrow() {
                if let Some(lease) = chained.take() {
                    lease.release_or_warn().await;
                }
                return Ok(());
            }
            // Interest is registered before looking, so an enqueue in between still wakes us.
            let woken = self.store.inner.job_enqueued.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let claimed = match chained.take() {
                Some(lease) => Ok(Some(lease)),
                None => self.claim().await,
            };
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(worker, error = %e, "claim failed; retrying after the poll interval");
                    None
                }
            };
            if let Some(mut lease) = claimed {
                lease.chain_next_claim();
                loop {
                    if *stop.borrow() {
                        let next = lease.next_lease().await;
                        lease.release_or_warn().await;
                        if let Ok(Some(next)) = next {
                            next.release_or_warn().await;
                        }
                        return Ok(());
                    }
                    match lease.step().await {
                        Ok(Step::Continue) => {}
                        Ok(_) => break,
                        Err(e) => {
                            // The transaction rolled back; the job resumes from its checkpoint when
                            // its lease expires (here or on another node).
                            tracing::warn!(job = lease.job_id.0, error = %e, "chunk failed");
                            break;
                        }
                    }
                }
                chained = match lease.next_lease().await {
                    Ok(next) => next,
                    Err(e) => {
                        // Claimed but unreadable for now: the job is due again when the lease expires.
                        tracing::warn!(worker, error = %e, "reading a chained claim failed");
                        None
                    }
                };
                continue;
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
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

    /// Turns other nodes' NOTIFYs into local wake-ups. Polling covers any gap while reconnecting.
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
                    if note.channel() == "catalogd_jobs" {
                        self.store.wake_runners();
                    } else {
                        self.store.job_finished();
                    }
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

fn parse_payload(kind: JobKind, payload: Option<&str>) -> Result<Payload, String> {
    let text = match (kind, payload) {
        (JobKind::CatalogDelete, _) => return Ok(Payload::None),
        (_, Some(text)) => text,
        (_, None) => return Err("the job has no payload".into()),
    };
    let bad = |e: serde_json::Error| format!("unreadable payload: {e}");
    Ok(match kind {
        JobKind::ItemBulkDelete | JobKind::CategoryBulkDelete => Payload::Ids(serde_json::from_str(text).map_err(bad)?),
        JobKind::ItemBulkUpsert | JobKind::ItemBulkPatch => Payload::Items(serde_json::from_str(text).map_err(bad)?),
        JobKind::CategoryBulkUpsert | JobKind::CategoryBulkUpdate => {
            Payload::Categories(serde_json::from_str(text).map_err(bad)?)
        }
        JobKind::CatalogDelete => Payload::None,
    })
}

/// What a claim returns: id, catalog, kind, attempt, flags, state and cursor, payload text.
type Claimed = (JobId, Option<i64>, String, i64, i64, (JobState, usize), Option<String>);

fn claimed_from_row(row: &impl RowExt, payload: Option<String>) -> Result<Claimed, StoreError> {
    Ok((
        JobId(row.int("id")?),
        row.opt_int("catalog_id")?,
        row.text("kind")?,
        row.int("attempt")?,
        row.int("flags")?,
        state_from_row(row)?,
        payload,
    ))
}

/// The job row's lifecycle state and cursor (selected by the claim and the fence).
fn state_from_row(row: &impl RowExt) -> Result<(JobState, usize), StoreError> {
    let state = JobState {
        status: JobStatus::Running,
        total_count: count(row.int("total_count")?),
        completed_count: count(row.int("completed_count")?),
        failed_count: count(row.int("failed_count")?),
        cancel_requested: row.int("cancel_requested")? != 0,
    };
    let cursor = usize::try_from(row.int("cursor")?).unwrap_or(usize::MAX);
    Ok((state, cursor))
}

/// The checkpoint written in the same transaction as a chunk's data change. It is a
/// compare-and-set: it matches the job row only while this lease's attempt still owns the running
/// job (fencing), the stored cursor is still where this chunk started ($11), no cancel is pending,
/// and — with `guard_catalog` — the catalog ($12) is alive. The cursor check matters because
/// intermediate commits are relaxed: if a crash lost one, the stored cursor is behind ours and the
/// chunk must be redone, not skipped. When it matches nothing the caller rolls the chunk back and
/// finds out why (see [`Lease::interrupted`]). On PostgreSQL the catalog row is share-locked until
/// commit, so a concurrent catalog delete waits for the chunk instead of racing it.
/// Parameters: $1 id, $2 attempt, $3 new cursor, $4 completed, $5 failed, $6 status, $7 now,
/// $8 finished_at (NULL unless terminal), $9 expires_at, $10 lease until, $11 cursor at the start
/// of the chunk, $12 catalog.
fn checkpoint_sql(pg: bool, guard_catalog: bool) -> String {
    let catalog = match (guard_catalog, pg) {
        (false, _) => "",
        (true, false) => "AND EXISTS (SELECT 1 FROM catalogs WHERE id = $12 AND deleted_at IS NULL)",
        (true, true) => "AND EXISTS (SELECT 1 FROM catalogs WHERE id = $12 AND deleted_at IS NULL FOR SHARE)",
    };
    format!(
        "UPDATE jobs SET cursor = $3, completed_count = $4, failed_count = $5, status = $6, updated_at = $7,
             finished_at = $8, expires_at = $9,
             lease_expires_at = CASE WHEN $8 IS NULL THEN $10 ELSE NULL END,
             lease_owner = CASE WHEN $8 IS NULL THEN lease_owner ELSE NULL END
         WHERE id = $1 AND attempt = $2 AND cursor = $11 AND status = 'running' AND cancel_requested = 0 {catalog}"
    )
}

/// The fence of the slow path: renews the lease and reads the job row, matching nothing unless
/// this lease's attempt still owns the running job; also says whether the catalog is alive.
const FENCE_SQLITE: &str = "UPDATE jobs SET lease_expires_at = $3, updated_at = $4
     WHERE id = $1 AND attempt = $2 AND status = 'running'
     RETURNING total_count, completed_count, failed_count, cursor, cancel_requested,
         (SELECT COUNT(*) FROM catalogs WHERE id = $5 AND deleted_at IS NULL) AS alive";

/// PostgreSQL form of [`FENCE_SQLITE`] (the catalog row is share-locked, as in the checkpoint).
const FENCE_PG: &str = "WITH live AS (SELECT id FROM catalogs WHERE id = $5 AND deleted_at IS NULL FOR SHARE)
     UPDATE jobs SET lease_expires_at = $3, updated_at = $4
     WHERE id = $1 AND attempt = $2 AND status = 'running'
     RETURNING total_count, completed_count, failed_count, cursor, cancel_requested,
         (SELECT COUNT(*) FROM live) AS alive";

/// Ends a job that cannot go on (cancelled at a boundary, or failed), fenced by attempt.
const END_JOB: &str = "UPDATE jobs SET status = $3, completed_count = $4, failed_count = $5, updated_at = $6,
         finished_at = $6, expires_at = $7, failure_reason = $8, lease_owner = NULL, lease_expires_at = NULL
     WHERE id = $1 AND attempt = $2 AND status = 'running'";

fn corrupt(job: JobId, e: TransitionError) -> StoreError {
    StoreError::Corrupt(format!("job {}: {e}", job.0))
}

impl Lease {
    /// The job held.
    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    /// The attempt number this lease holds (the fencing token).
    pub fn attempt(&self) -> u32 {
        u32::try_from(self.attempt).unwrap_or(u32::MAX)
    }

    /// Has this job's last chunk also claim the next due job, in the same transaction, for
    /// [`Lease::next_lease`] to hand over. On SQLite, where write transactions take turns, that is
    /// one turn fewer per job, which is most of a small job's cost; it applies to item deletes
    /// (the other kinds, and PostgreSQL, claim as usual). Whoever sets it must take the next lease
    /// when this one is done, and run or release it.
    pub fn chain_next_claim(&mut self) {
        self.chain_next = true;
    }

    /// The job the last chunk claimed (see [`Lease::chain_next_claim`]), with its payload read,
    /// if a job was due then.
    pub async fn next_lease(&mut self) -> Result<Option<Lease>, StoreError> {
        let Some(claimed) = self.chained.take() else {
            return Ok(None);
        };
        let runner = &self.runner;
        Ok(Some(runner.lease(runner.with_payload(claimed).await?)))
    }

    /// Applies the next chunk and its checkpoint in one transaction, fenced by the attempt; the
    /// last chunk also ends the job. When the checkpoint cannot be written — the lease was taken
    /// over, a cancel is pending, or the catalog is gone — the chunk is rolled back and the job
    /// ends accordingly (or, for a lost lease, is left alone).
    pub async fn step(&mut self) -> Result<Step, StoreError> {
        if self.broken.is_some() {
            return self.interrupted().await;
        }
        let store = self.runner.store.clone();
        let sql = self.runner.sql.clone();
        let now = now_ms();
        let lease_until = now.saturating_add(to_i64(self.runner.config.lease_duration.as_millis()));
        let retention = store.config().retention_ms;
        let start = self.cursor.min(self.payload.len());
        let end = start.saturating_add(self.runner.config.chunk_size.max(1)).min(self.payload.len());
        let last_chunk = end >= self.payload.len();
        let catalog_id = self.catalog_id.unwrap_or_default();
        if let (Payload::Ids(ids), JobKind::ItemBulkDelete) = (&self.payload, self.kind) {
            // The hot path: one round trip per chunk on either backend (see Statements).
            let chunk = ids.get(start..end).unwrap_or_default().to_vec();
            let next = self
                .state
                .apply(JobEvent::Checkpoint { completed: chunk.len() as u64, failed: 0 })
                .and_then(|s| {
                    if s.status == JobStatus::Running && last_chunk {
                        s.apply(JobEvent::Finished)
                    } else {
                        Ok(s)
                    }
                })
                .map_err(|e| corrupt(self.job_id, e))?;
            let finished_at = next.status.is_terminal().then_some(now);
            // The checkpoint's parameters, then the chunk's.
            macro_rules! delete_and_checkpoint {
                ($statement:expr) => {
                    bind_checkpoint!(
                        sqlx::query($statement),
                        self,
                        end,
                        next,
                        now,
                        finished_at,
                        retention,
                        lease_until,
                        start
                    )
                    .bind(catalog_id)
                    .bind(IdList(chunk))
                };
            }
            let written = match store.db() {
                crate::db::Db::Pg(pool) => {
                    let query =
                        delete_and_checkpoint!(&sql.delete_and_checkpoint).bind(if last_chunk { "on" } else { "off" });
                    query.execute(pool).await?.rows_affected() > 0
                }
                crate::db::Db::Sqlite(pool) if last_chunk && self.chain_next && self.chained.is_none() => {
                    // Only the last chunk's commit must be durable at once (see below); this one
                    // also claims the next job, one turn at the write lock instead of two.
                    let query = delete_and_checkpoint!(&sql.delete_checkpoint_and_claim)
                        .bind(&self.runner.config.owner)
                        .bind(lease_until)
                        .bind(now);
                    let rows = sqlite_script(pool, &self.runner.turns, query).await?;
                    // The checkpoint answers its id when it was written; the claim, a claimed row.
                    let (checkpoint, claimed): (Vec<_>, Vec<_>) = rows.iter().partition(|row| row.len() == 1);
                    self.chained = claimed.first().map(|row| claimed_from_row(*row, None)).transpose()?;
                    !checkpoint.is_empty()
                }
                crate::db::Db::Sqlite(pool) => {
                    let pool = if last_chunk { pool } else { store.relaxed_sqlite().unwrap_or(pool) };
                    let query = delete_and_checkpoint!(&sql.delete_and_checkpoint);
                    !sqlite_script(pool, &self.runner.turns, query).await?.is_empty()
                }
            };
            return self.checkpointed(written.then_some(next), end).await;
        }
        let committed = with_db!(store.db(), pool => {
            // Only the last chunk's commit must be durable at once: an earlier checkpoint lost in
            // a crash is lost together with its data change, and the job redoes that chunk when
            // it is claimed again (every chunk is idempotent). So earlier chunks skip the wait for
            // the WAL flush (an fsync per commit would otherwise be much of a chunk's time).
            let turns = &self.runner.turns;
            let mut tx = if last_chunk {
                pool.begin_write(turns).await?
            } else {
                pool.begin_relaxed(store.relaxed_sqlite(), turns).await?
            };
            let mut result = ChunkResult::default();
            match &self.payload {
                Payload::None => {
                    for statement in [
                        "DELETE FROM category_items WHERE catalog_id = $1",
                        "DELETE FROM categories WHERE catalog_id = $1",
                        "DELETE FROM items WHERE catalog_id = $1",
                        "DELETE FROM catalogs WHERE id = $1",
                    ] {
                        sqlx::query(statement).bind(catalog_id).execute(&mut *tx).await?;
                    }
                    result.completed = 1;
                }
                Payload::Ids(ids) => {
                    // Stored in id order: consecutive chunks walk the clustered key in one pass.
                    let chunk = ids.get(start..end).unwrap_or_default().to_vec();
                    result.completed = chunk.len() as u64;
                    let list = IdList(chunk);
                    if self.kind == JobKind::ItemBulkDelete {
                        // Deleting what is not there counts as done (deletes are idempotent).
                        sqlx::query(&sql.delete_category_items_by_item).bind(catalog_id).bind(list.clone()).execute(&mut *tx).await?;
                        sqlx::query(&sql.delete_items).bind(catalog_id).bind(list).execute(&mut *tx).await?;
                    } else {
                        sqlx::query(&sql.clear_category_items).bind(catalog_id).bind(list.clone()).execute(&mut *tx).await?;
                        sqlx::query(&sql.delete_categories).bind(catalog_id).bind(list).execute(&mut *tx).await?;
                    }
                }
                Payload::Items(items) => {
                    // Stored in id order (stable: repeated ids keep request order, the last wins).
                    let chunk: &[ItemRow] = items.get(start..end).unwrap_or_default();
                    // Final fields per id, in id order; repeated ids collapse into one row because
                    // PostgreSQL refuses to upsert one key twice in a statement.
                    let mut rows: Vec<(&str, Map<String, Value>)> = Vec::with_capacity(chunk.len());
                    if self.kind == JobKind::ItemBulkPatch {
                        let ids = IdList(chunk.iter().map(|r| r.1.clone()).collect());
                        let existing_rows = sqlx::query(&sql.select_items).bind(catalog_id).bind(ids).fetch_all(&mut *tx).await?;
                        let mut existing: HashMap<String, Map<String, Value>> = HashMap::with_capacity(existing_rows.len());
                        for row in &existing_rows {
                            existing.insert(row.text("item_id")?, parse_fields(&row.text("fields")?)?);
                        }
                        let create = self.flags & FLAG_CREATE_MISSING != 0;
                        for (index, id, patch) in chunk.iter().map(|r| (r.0, r.1.as_str(), &r.2)) {
                            let base = match rows.last_mut() {
                                Some((last, fields)) if *last == id => Some(std::mem::take(fields)),
                                _ => existing.remove(id),
                            };
                            let merged = match base {
                                Some(mut fields) => {
                                    // Patch merges top-level fields; nested values are replaced whole.
                                    for (k, v) in patch {
                                        fields.insert(k.clone(), v.clone());
                                    }
                                    fields
                                }
                                None if create => patch.clone(),
                                None => {
                                    result.failed.push(ItemFailure {
                                        index,
                                        item_id: id.to_owned(),
                                        code: ErrorCode::ItemNotFound,
                                        title: "Item not found",
                                        detail: format!("item `{id}` does not exist, so it cannot be patched"),
                                        pointer: format!("/items/{index}"),
                                    });
                                    continue;
                                }
                            };
                            result.completed += 1;
                            match rows.last_mut() {
                                Some((last, fields)) if *last == id => *fields = merged,
                                _ => rows.push((id, merged)),
                            }
                        }
                    } else {
                        for (id, fields) in chunk.iter().map(|r| (r.1.as_str(), &r.2)) {
                            result.completed += 1;
                            match rows.last_mut() {
                                Some((last, current)) if *last == id => *current = fields.clone(),
                                _ => rows.push((id, fields.clone())),
                            }
                        }
                    }
                    if !rows.is_empty() {
                        let json = serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        sqlx::query(sql.upsert_items).bind(catalog_id).bind(json).bind(now).execute(&mut *tx).await?;
                    }
                }
                Payload::Categories(categories) => {
                    // Stored in id order; a repeated id keeps only its last occurrence (the earlier
                    // ones count as done: they were superseded).
                    let all: &[CategoryRow] = categories.get(start..end).unwrap_or_default();
                    let mut chunk: Vec<&CategoryRow> = Vec::with_capacity(all.len());
                    for c in all {
                        match chunk.last_mut() {
                            Some(last) if last.id == c.id => {
                                *last = c;
                                result.completed += 1;
                            }
                            _ => chunk.push(c),
                        }
                    }
                    let mut rows: Vec<(String, Option<String>, Option<String>)> = Vec::with_capacity(chunk.len());
                    let mut replaced_sets: Vec<String> = Vec::new();
                    let mut members: Vec<(String, String)> = Vec::new();
                    if self.kind == JobKind::CategoryBulkUpdate {
                        let ids = IdList(chunk.iter().map(|c| c.id.clone()).collect());
                        let existing_rows = sqlx::query(&sql.select_categories).bind(catalog_id).bind(ids).fetch_all(&mut *tx).await?;
                        let mut existing: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
                        for row in &existing_rows {
                            existing.insert(row.text("category_id")?, (row.opt_text("external_id")?, row.opt_text("name")?));
                        }
                        for c in &chunk {
                            match existing.remove(&c.id) {
                                Some((external_id, name)) => {
                                    rows.push((c.id.clone(), c.external_id.clone().or(external_id), c.name.clone().or(name)));
                                    if let Some(items) = &c.item_ids {
                                        replaced_sets.push(c.id.clone());
                                        members.extend(items.iter().map(|i| (c.id.clone(), i.clone())));
                                    }
                                }
                                None => result.failed.push(ItemFailure {
                                    index: c.index,
                                    item_id: c.id.clone(),
                                    code: ErrorCode::NotFound,
                                    title: "Category not found",
                                    detail: format!("category `{}` does not exist, so it cannot be updated", c.id),
                                    pointer: format!("/categories/{}", c.index),
                                }),
                            }
                        }
                    } else {
                        for c in &chunk {
                            rows.push((c.id.clone(), c.external_id.clone(), c.name.clone()));
                            replaced_sets.push(c.id.clone());
                            members.extend(c.item_ids.iter().flatten().map(|i| (c.id.clone(), i.clone())));
                        }
                    }
                    result.completed += rows.len() as u64;
                    if !rows.is_empty() {
                        let json = serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        sqlx::query(sql.upsert_categories).bind(catalog_id).bind(json).bind(now).execute(&mut *tx).await?;
                    }
                    if !replaced_sets.is_empty() {
                        sqlx::query(&sql.clear_category_items).bind(catalog_id).bind(IdList(replaced_sets)).execute(&mut *tx).await?;
                    }
                    if !members.is_empty() {
                        let json = serde_json::to_string(&members).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        sqlx::query(sql.insert_category_items).bind(catalog_id).bind(json).execute(&mut *tx).await?;
                    }
                }
            }
            for f in &result.failed {
                sqlx::query(
                    "INSERT INTO job_errors (job_id, item_index, item_id, code, title, detail, pointer)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(self.job_id.0)
                .bind(to_i64(f.index))
                .bind(&f.item_id)
                .bind(f.code.as_str())
                .bind(f.title)
                .bind(&f.detail)
                .bind(&f.pointer)
                .execute(&mut *tx)
                .await?;
            }
            let failed = result.failed.len() as u64;
            let next = self
                .state
                .apply(JobEvent::Checkpoint { completed: result.completed, failed })
                .and_then(|s| if s.status == JobStatus::Running && last_chunk { s.apply(JobEvent::Finished) } else { Ok(s) })
                .map_err(|e| corrupt(self.job_id, e))?;
            let finished_at = next.status.is_terminal().then_some(now);
            let statement = if self.kind == JobKind::CatalogDelete {
                &sql.checkpoint_no_catalog
            } else {
                &sql.checkpoint
            };
            let mut query =
                bind_checkpoint!(sqlx::query(statement), self, end, next, now, finished_at, retention, lease_until, start);
            if self.kind != JobKind::CatalogDelete {
                query = query.bind(catalog_id);
            }
            if query.execute(&mut *tx).await?.rows_affected() == 0 {
                tx.rollback().await?;
                None
            } else {
                tx.commit().await?;
                Some(next)
            }
        });
        self.checkpointed(committed, end).await
    }

    /// After a chunk: records the committed state, or takes the slow path when nothing was written.
    async fn checkpointed(&mut self, committed: Option<JobState>, end: usize) -> Result<Step, StoreError> {
        let Some(next) = committed else {
            return self.interrupted().await;
        };
        let applied = |s: &JobState| s.completed_count + s.failed_count;
        let chunk_items = applied(&next).saturating_sub(applied(&self.state));
        self.runner.store.inner.items_processed.fetch_add(chunk_items, std::sync::atomic::Ordering::Relaxed);
        self.state = next;
        self.cursor = end;
        if next.status.is_terminal() {
            tracing::debug!(job = self.job_id.0, status = %next.status, "job finished");
            self.runner.store.job_finished();
            Ok(Step::Finished(next.status))
        } else {
            Ok(Step::Continue)
        }
    }

    /// The slow path, when a checkpoint matched nothing (or the job cannot run at all): reads the
    /// job under the fence and ends it if it was cancelled or cannot run; reports a lost lease.
    async fn interrupted(&mut self) -> Result<Step, StoreError> {
        let store = self.runner.store.clone();
        let sql = self.runner.sql.clone();
        let now = now_ms();
        let lease_until = now.saturating_add(to_i64(self.runner.config.lease_duration.as_millis()));
        let retention = store.config().retention_ms;
        let step = with_db!(store.db(), pool => {
            let mut tx = pool.begin_write(&self.runner.turns).await?;
            let fenced = sqlx::query(sql.fence)
                .bind(self.job_id.0)
                .bind(self.attempt)
                .bind(lease_until)
                .bind(now)
                .bind(self.catalog_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(fenced) = fenced else {
                tx.rollback().await?;
                tracing::info!(job = self.job_id.0, attempt = self.attempt, "lease lost; writing nothing");
                return Ok(Step::LeaseLost);
            };
            let (state, cursor) = state_from_row(&fenced)?;
            let catalog_gone = self.kind != JobKind::CatalogDelete && fenced.int("alive")? == 0;
            let (event, reason) = if let Some(reason) = self.broken.clone() {
                (JobEvent::Failed, Some(reason))
            } else if state.cancel_requested {
                // The boundary: a cancel seen here stops the job before another chunk is applied.
                (JobEvent::Checkpoint { completed: 0, failed: 0 }, None)
            } else if catalog_gone {
                (JobEvent::Failed, Some("the catalog was deleted".to_owned()))
            } else {
                // Nothing stops the job (the lease was renewed): the caller's next step retries.
                tx.commit().await?;
                self.state = state;
                self.cursor = cursor;
                return Ok(Step::Continue);
            };
            if let Some(reason) = &reason {
                tracing::warn!(job = self.job_id.0, reason = %reason, "job cannot run");
            }
            let next = state.apply(event).map_err(|e| corrupt(self.job_id, e))?;
            if next.status.is_terminal() {
                sqlx::query(END_JOB)
                    .bind(self.job_id.0)
                    .bind(self.attempt)
                    .bind(next.status.as_str())
                    .bind(to_i64(next.completed_count))
                    .bind(to_i64(next.failed_count))
                    .bind(now)
                    .bind(now.saturating_add(retention))
                    .bind(reason.as_deref())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            self.state = next;
            self.cursor = cursor;
            if next.status.is_terminal() { Step::Finished(next.status) } else { Step::Continue }
        });
        if let Step::Finished(_) = step {
            store.job_finished();
        }
        Ok(step)
    }

    /// [`Lease::release`], logging a failure: the lease then simply expires.
    async fn release_or_warn(self) {
        let job = self.job_id.0;
        if let Err(e) = self.release().await {
            tracing::warn!(job, error = %e, "release failed; the lease will expire");
        }
    }

    /// Gives the job back to the queue (shutdown): another runner resumes it from its checkpoint.
    pub async fn release(self) -> Result<(), StoreError> {
        let store = &self.runner.store;
        let released = with_db!(store.db(), pool => {
            sqlx::query(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, updated_at = $3
                 WHERE id = $1 AND attempt = $2 AND status = 'running'",
            )
            .bind(self.job_id.0)
            .bind(self.attempt)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if released > 0 {
            store.wake_runners();
        }
        Ok(())
    }
}
