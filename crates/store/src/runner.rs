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
use crate::db::{count, now_ms, to_i64, with_db, Flavor, RowExt};
use crate::error::StoreError;
use crate::idlist::{in_list, IdList};
use crate::model::JobId;
use crate::store::Store;
use crate::util::{hex, random_bytes};
use catalog_domain::job::DEFAULT_CHUNK_SIZE;
use catalog_domain::{ErrorCode, JobEvent, JobKind, JobState, JobStatus};
use serde_json::{Map, Value};
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
}

impl Statements {
    fn new(pg: bool) -> Statements {
        let skip_locked = if pg { "FOR UPDATE SKIP LOCKED" } else { "" };
        let pick = |sqlite: &'static str, postgres: &'static str| if pg { postgres } else { sqlite };
        Statements {
            // Due: queued; scheduled whose start_at has come (BecameDue then Claimed); running
            // whose lease expired (Released then Claimed). The attempt bump is the fencing token.
            claim: format!(
                "UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2,
                     started_at = COALESCE(started_at, $3), updated_at = $3
                 WHERE id = (SELECT id FROM jobs
                             WHERE status IN ('queued', 'scheduled', 'running')
                               AND (status = 'queued'
                                    OR (status = 'scheduled' AND start_at <= $3)
                                    OR (status = 'running' AND lease_expires_at < $3))
                             ORDER BY id LIMIT 1 {skip_locked})
                 RETURNING id, project_id, catalog_id, kind, attempt, flags, cursor, payload"
            ),
            delete_items: format!("DELETE FROM items WHERE catalog_id = $1 AND {}", in_list(pg, "item_id", "$2")),
            delete_category_items_by_item: format!(
                "DELETE FROM category_items WHERE catalog_id = $1 AND {}",
                in_list(pg, "item_id", "$2")
            ),
            fence: pick(FENCE_SQLITE, FENCE_PG),
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
        }
    }
}

/// Applies jobs. Cheap to clone; clones share configuration and statements.
#[derive(Debug, Clone)]
pub struct Runner {
    store: Store,
    config: Arc<RunnerConfig>,
    sql: Arc<Statements>,
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
    /// The checkpoint as this lease last saw it (to know which chunk is the last).
    cursor: usize,
    /// Set when the payload could not be read: the first step fails the job.
    broken: Option<String>,
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
        Runner { store, config: Arc::new(config), sql }
    }

    /// This runner's configuration.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Claims the oldest due job, if any, under a fresh lease.
    pub async fn claim(&self) -> Result<Option<Lease>, StoreError> {
        let now = now_ms();
        let lease_until = now.saturating_add(to_i64(self.config.lease_duration.as_millis()));
        let claimed = with_db!(self.store.db(), pool => {
            // A claim lost in a database crash is harmless (the job is simply due again), so its
            // commit need not wait for the WAL flush either.
            let mut tx = pool.begin_relaxed().await?;
            let row = sqlx::query(&self.sql.claim)
                .bind(&self.config.owner)
                .bind(lease_until)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            match row {
                None => None,
                Some(row) => Some((
                    JobId(row.int("id")?),
                    row.opt_int("catalog_id")?,
                    row.text("kind")?,
                    row.int("attempt")?,
                    row.int("flags")?,
                    usize::try_from(row.int("cursor")?).unwrap_or(usize::MAX),
                    row.opt_text("payload")?,
                )),
            }
        });
        let Some((job_id, catalog_id, kind, attempt, flags, cursor, payload)) = claimed else {
            return Ok(None);
        };
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
        Ok(Some(Lease { runner: self.clone(), job_id, catalog_id, kind, attempt, flags, payload, cursor, broken }))
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
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            // Interest is registered before looking, so an enqueue in between still wakes us.
            let woken = self.store.inner.job_enqueued.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let claimed = match self.claim().await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(worker, error = %e, "claim failed; retrying after the poll interval");
                    None
                }
            };
            if let Some(mut lease) = claimed {
                loop {
                    if *stop.borrow() {
                        let job = lease.job_id.0;
                        if let Err(e) = lease.release().await {
                            tracing::warn!(job, error = %e, "release failed; the lease will expire");
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

/// The job row's lifecycle state as read under the fence.
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

/// The fenced first statement of every chunk: renews the lease, and matches no row unless this
/// lease's attempt still owns the running job. It also says whether the job's catalog is still
/// alive and whether it has any category members (so an item delete can skip cleaning them): one
/// round trip instead of three.
const FENCE_SQLITE: &str = "UPDATE jobs SET lease_expires_at = $3, updated_at = $4
     WHERE id = $1 AND attempt = $2 AND status = 'running'
     RETURNING total_count, completed_count, failed_count, cursor, cancel_requested,
         (SELECT COUNT(*) FROM catalogs WHERE id = $5 AND deleted_at IS NULL) AS alive,
         (SELECT COUNT(*) FROM (SELECT 1 FROM category_items WHERE catalog_id = $5 LIMIT 1)) AS has_members";

/// PostgreSQL form of [`FENCE_SQLITE`]. The catalog row is share-locked until the chunk commits,
/// so a concurrent delete of the catalog waits for the chunk instead of racing it.
const FENCE_PG: &str = "WITH live AS (SELECT id FROM catalogs WHERE id = $5 AND deleted_at IS NULL FOR SHARE)
     UPDATE jobs SET lease_expires_at = $3, updated_at = $4
     WHERE id = $1 AND attempt = $2 AND status = 'running'
     RETURNING total_count, completed_count, failed_count, cursor, cancel_requested,
         (SELECT COUNT(*) FROM live) AS alive,
         (SELECT COUNT(*) FROM (SELECT 1 FROM category_items WHERE catalog_id = $5 LIMIT 1) m) AS has_members";

/// Writes the checkpoint (and the end, when `state` is terminal), still fenced by attempt.
const CHECKPOINT: &str = "UPDATE jobs SET cursor = $3, completed_count = $4, failed_count = $5, status = $6,
         updated_at = $7, finished_at = $8, expires_at = $9, failure_reason = COALESCE($10, failure_reason),
         lease_owner = CASE WHEN $8 IS NULL THEN lease_owner ELSE NULL END,
         lease_expires_at = CASE WHEN $8 IS NULL THEN lease_expires_at ELSE NULL END,
         payload = CASE WHEN $8 IS NULL THEN payload ELSE NULL END
     WHERE id = $1 AND attempt = $2";

impl Lease {
    /// The job held.
    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    /// The attempt number this lease holds (the fencing token).
    pub fn attempt(&self) -> u32 {
        u32::try_from(self.attempt).unwrap_or(u32::MAX)
    }

    /// Applies the next chunk in one transaction with its checkpoint, fenced by the attempt; ends
    /// the job when it is the last chunk, or when a cancel was requested, or when the job cannot
    /// run (its catalog is gone).
    pub async fn step(&mut self) -> Result<Step, StoreError> {
        let store = self.runner.store.clone();
        let sql = self.runner.sql.clone();
        let now = now_ms();
        let lease_until = now.saturating_add(to_i64(self.runner.config.lease_duration.as_millis()));
        let chunk_size = self.runner.config.chunk_size.max(1);
        let retention = store.config().retention_ms;
        // Only the last chunk's commit must be durable at once: an earlier checkpoint lost in a
        // database crash is lost together with its data change, and the job simply redoes that
        // chunk when it is claimed again (every chunk is idempotent). So earlier chunks skip the
        // wait for the WAL flush; this is where most of a chunk's time would otherwise go.
        let last_chunk = self.cursor.saturating_add(chunk_size) >= self.payload.len();
        let outcome = with_db!(store.db(), pool => {
            let mut tx = if last_chunk { pool.begin_write().await? } else { pool.begin_relaxed().await? };
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
            let mut failure: Option<String> = self.broken.clone();
            if failure.is_none() && self.kind != JobKind::CatalogDelete && fenced.int("alive")? == 0 {
                failure = Some("the catalog was deleted".into());
            }
            let has_members = fenced.int("has_members")? > 0;
            let end = cursor.saturating_add(chunk_size).min(self.payload.len());
            let (next, new_cursor) = if let Some(reason) = &failure {
                tracing::warn!(job = self.job_id.0, reason = %reason, "job cannot run");
                (state.apply(JobEvent::Failed), cursor)
            } else if state.cancel_requested {
                // The boundary: a cancel seen here stops the job before another chunk is applied.
                (state.apply(JobEvent::Checkpoint { completed: 0, failed: 0 }), cursor)
            } else {
                let catalog_id = self.catalog_id.unwrap_or_default();
                let result = match &self.payload {
                    Payload::None => {
                        let catalog_id = self.catalog_id.unwrap_or_default();
                        for statement in [
                            "DELETE FROM category_items WHERE catalog_id = $1",
                            "DELETE FROM categories WHERE catalog_id = $1",
                            "DELETE FROM items WHERE catalog_id = $1",
                            "DELETE FROM catalogs WHERE id = $1",
                        ] {
                            sqlx::query(statement).bind(catalog_id).execute(&mut *tx).await?;
                        }
                        ChunkResult { completed: 1, failed: Vec::new() }
                    }
                    Payload::Ids(ids) => {
                        let mut chunk: Vec<String> = ids.get(cursor..end).unwrap_or_default().to_vec();
                        // Sorted ids walk the clustered key in order: fewer pages touched.
                        chunk.sort_unstable();
                        let n = chunk.len() as u64;
                        let list = IdList(chunk);
                        if self.kind == JobKind::ItemBulkDelete {
                            sqlx::query(&sql.delete_items).bind(catalog_id).bind(list.clone()).execute(&mut *tx).await?;
                            if has_members {
                                sqlx::query(&sql.delete_category_items_by_item).bind(catalog_id).bind(list).execute(&mut *tx).await?;
                            }
                        } else {
                            sqlx::query(&sql.clear_category_items).bind(catalog_id).bind(list.clone()).execute(&mut *tx).await?;
                            sqlx::query(&sql.delete_categories).bind(catalog_id).bind(list).execute(&mut *tx).await?;
                        }
                        // Deleting what is not there counts as done (deletes are idempotent).
                        ChunkResult { completed: n, failed: Vec::new() }
                    }
                    Payload::Items(items) => {
                        // The payload is stored in id order (stable, so repeated ids keep request
                        // order and the last one wins).
                        let chunk: &[ItemRow] = items.get(cursor..end).unwrap_or_default();
                        let mut result = ChunkResult::default();
                        // Final fields per id, in id order; repeated ids collapse into one row
                        // because PostgreSQL refuses to upsert one key twice in a statement.
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
                        result
                    }
                    Payload::Categories(categories) => {
                        // Stored in id order; a repeated id keeps only its last occurrence (the
                        // earlier ones count as done: they were superseded).
                        let all: &[CategoryRow] = categories.get(cursor..end).unwrap_or_default();
                        let mut result = ChunkResult::default();
                        let mut chunk: Vec<&CategoryRow> = Vec::with_capacity(all.len());
                        for c in all {
                            if let Some(last) = chunk.last_mut() {
                                if last.id == c.id {
                                    *last = c;
                                    result.completed += 1;
                                    continue;
                                }
                            }
                            chunk.push(c);
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
                        result
                    }
                };
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
                let next = state.apply(JobEvent::Checkpoint { completed: result.completed, failed }).and_then(|s| {
                    if s.status == JobStatus::Running && end >= self.payload.len() {
                        s.apply(JobEvent::Finished)
                    } else {
                        Ok(s)
                    }
                });
                (next, end)
            };
            let next = next.map_err(|e| StoreError::Corrupt(format!("job {}: {e}", self.job_id.0)))?;
            let terminal = next.status.is_terminal();
            let finished_at = terminal.then_some(now);
            sqlx::query(CHECKPOINT)
                .bind(self.job_id.0)
                .bind(self.attempt)
                .bind(to_i64(new_cursor))
                .bind(to_i64(next.completed_count))
                .bind(to_i64(next.failed_count))
                .bind(next.status.as_str())
                .bind(now)
                .bind(finished_at)
                .bind(finished_at.map(|at| at.saturating_add(retention)))
                .bind(failure.as_deref())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.cursor = new_cursor;
            if terminal { Step::Finished(next.status) } else { Step::Continue }
        });
        if let Step::Finished(status) = outcome {
            tracing::debug!(job = self.job_id.0, %status, "job finished");
            store.job_finished();
        }
        Ok(outcome)
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
