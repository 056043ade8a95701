//! Group commit for job creation.
//!
//! Every accepted bulk request is one job insert that must be durable before the caller hears
//! 202, and a durable commit costs an fsync: one commit per request caps acceptance near the
//! disk's fsync rate (DESIGN §4: ~5 k/s on PostgreSQL, less on SQLite). So requests hand their
//! insert to one writer task per store, which takes every insert waiting at that moment, writes
//! them all in one transaction and commits once. Alone, a request is committed at once; under
//! load, the requests that arrive while one batch commits form the next batch.
//!
//! A batch that fails as a whole (one bad statement aborts a PostgreSQL transaction) is retried
//! one insert per transaction, so one request's failure never becomes its neighbours'.

use crate::db::{count, Db, Flavor, RowExt, WriteTurns};
use crate::error::StoreError;
use crate::model::{CatalogId, Job, JobId, ProjectId};
use catalog_domain::{JobKind, JobStatus};
use tokio::sync::{mpsc, oneshot};

/// Most inserts committed together.
const MAX_BATCH: usize = 256;
/// Most payload bytes committed together, so one batch never holds more than a few large
/// requests in memory at once.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
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
    /// The job as its row reads right after the insert, under the id `id`.
    fn to_job(&self, id: i64) -> Job {
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
            created_at: self.created_at,
            updated_at: self.created_at,
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

struct Request {
    job: NewJob,
    /// The outcome, and the job handed back (a caller may retry it, see [`Inserted::CatalogGone`]).
    reply: oneshot::Sender<Result<(Inserted, NewJob), StoreError>>,
}

/// The handle requests use to reach the writer task.
#[derive(Debug, Clone)]
pub(crate) struct Enqueuer {
    sender: mpsc::Sender<Request>,
}

impl Enqueuer {
    /// Starts the writer task for `db`; it ends when the last handle is dropped.
    pub(crate) fn start(db: Db, turns: WriteTurns) -> Enqueuer {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(writer(db, turns, receiver));
        Enqueuer { sender }
    }

    /// Inserts `job` and its payload durably, committed together with whatever else is waiting;
    /// hands `job` back with the outcome.
    pub(crate) async fn insert(&self, job: NewJob) -> Result<(Inserted, NewJob), StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Corrupt("the job writer has stopped".into());
        self.sender.send(Request { job, reply }).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn writer(db: Db, turns: WriteTurns, mut receiver: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.recv().await {
        let mut bytes = first.job.payload.len();
        batch.push(first);
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match receiver.try_recv() {
                Ok(next) => {
                    bytes += next.job.payload.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let jobs: Vec<&NewJob> = batch.iter().map(|r| &r.job).collect();
        match insert_all(&db, &turns, &jobs).await {
            Ok(results) => {
                for (request, result) in batch.drain(..).zip(results) {
                    let _ = request.reply.send(Ok((result, request.job)));
                }
            }
            Err(error) => {
                if batch.len() > 1 {
                    tracing::debug!(%error, size = batch.len(), "group commit failed; inserting one by one");
                }
                for request in batch.drain(..) {
                    let result = insert_all(&db, &turns, &[&request.job]).await.and_then(|mut jobs| {
                        jobs.pop().ok_or_else(|| StoreError::Corrupt("an insert of one job answered nothing".into()))
                    });
                    let _ = request.reply.send(result.map(|inserted| (inserted, request.job)));
                }
            }
        }
    }
}

/// The columns of a new job row after its id, in the order both backends' inserts give them
/// (`updated_at` repeats `created_at`).
const COLUMNS: &str = "project_id, catalog_id, catalog_name, kind, status, total_count, flags, description, \
                       reference_id, idempotency_key, request_hash, created_at, updated_at, start_at";

/// Rows per SQLite insert statement. SQLite has no array parameters, so a batch is written in
/// statements of this many `VALUES` rows (unused rows are NULL and skipped): one statement shape
/// for every batch size, and each statement crosses to sqlx's SQLite thread once, not once per job.
const SQLITE_ROWS_PER_STATEMENT: usize = 32;

/// Inserts every job of `jobs` with its payload in one transaction. A job is inserted only when
/// its key (if any) is not revoked and its catalog not deleted at that moment: this is the fence
/// that lets callers look both up in a cache (see `cache.rs`).
async fn insert_all(db: &Db, turns: &WriteTurns, jobs: &[&NewJob]) -> Result<Vec<Inserted>, StoreError> {
    match db {
        Db::Pg(pool) => insert_all_pg(pool, jobs).await,
        Db::Sqlite(pool) => insert_all_sqlite(pool, turns, jobs).await,
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

/// PostgreSQL: the whole batch is one statement over arrays, so it needs no explicit transaction
/// and costs one round trip whatever its size. Ids are drawn from the identity sequence first,
/// so each input row knows its job's id whether or not it was inserted. `FOR SHARE` makes a
/// concurrent revocation or catalog delete wait for this insert, or this insert see it.
async fn insert_all_pg(pool: &sqlx::PgPool, jobs: &[&NewJob]) -> Result<Vec<Inserted>, StoreError> {
    let fenced =
        format!("{} AND {}", key_live("i.requested_by", "FOR SHARE"), catalog_live("i.catalog_id", "FOR SHARE"));
    let sql = format!(
        "WITH input AS MATERIALIZED (
             SELECT r.*, nextval(pg_get_serial_sequence('jobs', 'id')) AS id
             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bigint[],
                         $15::text[])
                  WITH ORDINALITY AS r(project_id, catalog_id, catalog_name, kind, status, total_count, flags,
                                       description, reference_id, idempotency_key, request_hash, created_at, start_at,
                                       requested_by, payload, ord)),
         job AS (
             INSERT INTO jobs (id, {COLUMNS}) OVERRIDING SYSTEM VALUE
             SELECT i.id, i.project_id, i.catalog_id, i.catalog_name, i.kind, i.status, i.total_count, i.flags,
                    i.description, i.reference_id, i.idempotency_key, i.request_hash, i.created_at, i.created_at,
                    i.start_at
             FROM input i WHERE {fenced} ORDER BY i.ord
             ON CONFLICT (project_id, idempotency_key) DO NOTHING RETURNING id),
         body AS (INSERT INTO job_payloads (job_id, payload) SELECT i.id, i.payload FROM input i JOIN job USING (id))
         SELECT i.id, (job.id IS NOT NULL)::int::int8 AS inserted, ({})::int::int8 AS key_live, ({})::int::int8 AS catalog_live
         FROM input i LEFT JOIN job USING (id) ORDER BY i.ord",
        key_live("i.requested_by", ""),
        catalog_live("i.catalog_id", "")
    );
    macro_rules! column {
        ($field:ident) => {
            jobs.iter().map(|job| job.$field.clone()).collect::<Vec<_>>()
        };
    }
    let rows = sqlx::query(&sql)
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
        .fetch_all(pool)
        .await?;
    if rows.len() != jobs.len() {
        return Err(StoreError::Corrupt(format!("{} jobs in, {} rows out", jobs.len(), rows.len())));
    }
    jobs.iter()
        .zip(&rows)
        .map(|(job, row)| {
            let id = row.int("id")?;
            Ok(if row.int("inserted")? != 0 {
                Inserted::Created(Box::new(job.to_job(id)))
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

/// SQLite: one immediate transaction, so no other writer (of this process or another) runs
/// between choosing the ids and inserting them. Ids continue `sqlite_sequence`, as
/// `AUTOINCREMENT` would, so a purged job's id is never handed out again.
async fn insert_all_sqlite(
    pool: &sqlx::SqlitePool,
    turns: &WriteTurns,
    jobs: &[&NewJob],
) -> Result<Vec<Inserted>, StoreError> {
    const JOB_VALUES: usize = 15;
    let row_slots = format!("({})", vec!["?"; JOB_VALUES].join(", "));
    let fenced = format!("{} AND {}", key_live("v.column15", ""), catalog_live("v.column3", ""));
    let jobs_sql = format!(
        "INSERT INTO jobs (id, {COLUMNS})
         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9,
                v.column10, v.column11, v.column12, v.column13, v.column13, v.column14
         FROM (VALUES {}) AS v
         WHERE v.column1 IS NOT NULL AND {fenced}
         ON CONFLICT (project_id, idempotency_key) DO NOTHING",
        vec![row_slots.as_str(); SQLITE_ROWS_PER_STATEMENT].join(", ")
    );
    let payloads_sql = format!(
        "INSERT INTO job_payloads (job_id, payload) SELECT column1, column2 FROM (VALUES {}) WHERE column1 IS NOT NULL",
        vec!["(?, ?)"; SQLITE_ROWS_PER_STATEMENT].join(", ")
    );

    let mut tx = pool.begin_write(turns).await?;
    let first_id: i64 =
        sqlx::query_scalar("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0) + 1")
            .fetch_one(&mut *tx)
            .await?;
    let ids: Vec<i64> = (first_id..).take(jobs.len()).collect();
    let mut inserted_rows = 0;
    for (group, group_ids) in jobs.chunks(SQLITE_ROWS_PER_STATEMENT).zip(ids.chunks(SQLITE_ROWS_PER_STATEMENT)) {
        let mut query = sqlx::query(&jobs_sql);
        for (job, id) in group.iter().zip(group_ids) {
            query = query
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
                .bind(job.requested_by);
        }
        for _ in group.len() * JOB_VALUES..SQLITE_ROWS_PER_STATEMENT * JOB_VALUES {
            query = query.bind(None::<i64>);
        }
        inserted_rows += query.execute(&mut *tx).await?.rows_affected();
    }

    // Almost always every job went in; otherwise find out which did not, and why.
    let mut outcome: Vec<Option<Inserted>> = vec![None; jobs.len()];
    if inserted_rows < jobs.len() as u64 {
        let present: std::collections::HashSet<i64> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE id BETWEEN $1 AND $2")
                .bind(first_id)
                .bind(first_id + jobs.len() as i64 - 1)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        for ((job, id), slot) in jobs.iter().zip(&ids).zip(&mut outcome) {
            if !present.contains(id) {
                let sql =
                    format!("SELECT {} AS key_live, {} AS catalog_live", key_live("$1", ""), catalog_live("$2", ""));
                let row = sqlx::query(&sql).bind(job.requested_by).bind(job.catalog_id).fetch_one(&mut *tx).await?;
                *slot = Some(classify(row.int("key_live")? != 0, row.int("catalog_live")? != 0));
            }
        }
    }

    let created: Vec<(&NewJob, i64)> =
        jobs.iter().zip(&ids).zip(&outcome).filter(|(_, o)| o.is_none()).map(|((job, id), _)| (*job, *id)).collect();
    for group in created.chunks(SQLITE_ROWS_PER_STATEMENT) {
        let mut query = sqlx::query(&payloads_sql);
        for (job, id) in group {
            query = query.bind(*id).bind(job.payload.as_str());
        }
        for _ in group.len()..SQLITE_ROWS_PER_STATEMENT {
            query = query.bind(None::<i64>).bind(None::<&str>);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(jobs
        .iter()
        .zip(ids)
        .zip(outcome)
        .map(|((job, id), outcome)| outcome.unwrap_or_else(|| Inserted::Created(Box::new(job.to_job(id)))))
        .collect())
}
