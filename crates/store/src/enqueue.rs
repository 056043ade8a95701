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

use crate::db::{Db, Flavor};
use crate::error::StoreError;
use crate::jobs::{job_from_row, JOB_COLUMNS};
use crate::model::Job;
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
    pub(crate) kind: &'static str,
    pub(crate) status: &'static str,
    pub(crate) total_count: i64,
    pub(crate) flags: i64,
    pub(crate) payload: String,
    pub(crate) description: Option<String>,
    pub(crate) reference_id: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) request_hash: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) start_at: Option<i64>,
}

/// `Some(job)` when created, `None` when a job with the same idempotency key already existed.
type Inserted = Result<Option<Job>, StoreError>;

struct Request {
    job: NewJob,
    reply: oneshot::Sender<Inserted>,
}

/// The handle requests use to reach the writer task.
#[derive(Debug, Clone)]
pub(crate) struct Enqueuer {
    sender: mpsc::Sender<Request>,
}

impl Enqueuer {
    /// Starts the writer task for `db`; it ends when the last handle is dropped.
    pub(crate) fn start(db: Db) -> Enqueuer {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(writer(db, receiver));
        Enqueuer { sender }
    }

    /// Inserts `job` and its payload durably, committed together with whatever else is waiting.
    pub(crate) async fn insert(&self, job: NewJob) -> Inserted {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Corrupt("the job writer has stopped".into());
        self.sender.send(Request { job, reply }).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn writer(db: Db, mut receiver: mpsc::Receiver<Request>) {
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
        match insert_all(&db, &jobs).await {
            Ok(results) => {
                for (request, result) in batch.drain(..).zip(results) {
                    let _ = request.reply.send(Ok(result));
                }
            }
            Err(error) => {
                if batch.len() > 1 {
                    tracing::debug!(%error, size = batch.len(), "group commit failed; inserting one by one");
                }
                for request in batch.drain(..) {
                    let result = insert_all(&db, &[&request.job]).await.map(|mut jobs| jobs.pop().flatten());
                    let _ = request.reply.send(result);
                }
            }
        }
    }
}

/// The columns of a new job row, in bind order ($1..$13; `updated_at` repeats `created_at`).
const COLUMNS: &str = "project_id, catalog_id, catalog_name, kind, status, total_count, flags, description, \
                       reference_id, idempotency_key, request_hash, created_at, updated_at, start_at";
const VALUES: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13";

/// Binds a [`NewJob`]'s row columns, $1..$13, to a query.
macro_rules! bind_row {
    ($query:expr, $job:expr) => {
        $query
            .bind($job.project_id)
            .bind($job.catalog_id)
            .bind(&$job.catalog_name)
            .bind($job.kind)
            .bind($job.status)
            .bind($job.total_count)
            .bind($job.flags)
            .bind($job.description.as_deref())
            .bind($job.reference_id.as_deref())
            .bind($job.idempotency_key.as_deref())
            .bind($job.request_hash.as_deref())
            .bind($job.created_at)
            .bind($job.start_at)
    };
}

/// Inserts every job of `jobs` with its payload in one transaction.
async fn insert_all(db: &Db, jobs: &[&NewJob]) -> Result<Vec<Option<Job>>, StoreError> {
    match db {
        Db::Pg(pool) => {
            // One statement per job: the payload row is written by a CTE, and nothing at all
            // when the idempotency key exists. A lone job needs no explicit transaction, which
            // saves two round trips when there is no load to batch.
            let sql = format!(
                "WITH job AS (INSERT INTO jobs ({COLUMNS}) VALUES ({VALUES})
                              ON CONFLICT (project_id, idempotency_key) DO NOTHING RETURNING *),
                      body AS (INSERT INTO job_payloads (job_id, payload) SELECT id, $14 FROM job)
                 SELECT {JOB_COLUMNS} FROM job"
            );
            if let [job] = jobs {
                let row = bind_row!(sqlx::query(&sql), job).bind(&job.payload).fetch_optional(pool).await?;
                return Ok(vec![row.as_ref().map(job_from_row).transpose()?]);
            }
            let mut tx = pool.begin_write().await?;
            let mut created = Vec::with_capacity(jobs.len());
            for job in jobs {
                let row = bind_row!(sqlx::query(&sql), job).bind(&job.payload).fetch_optional(&mut *tx).await?;
                created.push(row.as_ref().map(job_from_row).transpose()?);
            }
            tx.commit().await?;
            Ok(created)
        }
        Db::Sqlite(pool) => {
            let sql = format!(
                "INSERT INTO jobs ({COLUMNS}) VALUES ({VALUES})
                 ON CONFLICT (project_id, idempotency_key) DO NOTHING RETURNING {JOB_COLUMNS}"
            );
            let mut tx = pool.begin_write().await?;
            let mut created = Vec::with_capacity(jobs.len());
            for job in jobs {
                let row = bind_row!(sqlx::query(&sql), job).fetch_optional(&mut *tx).await?;
                let inserted = row.as_ref().map(job_from_row).transpose()?;
                if let Some(inserted) = &inserted {
                    sqlx::query("INSERT INTO job_payloads (job_id, payload) VALUES ($1, $2)")
                        .bind(inserted.id.0)
                        .bind(&job.payload)
                        .execute(&mut *tx)
                        .await?;
                }
                created.push(inserted);
            }
            tx.commit().await?;
            Ok(created)
        }
    }
}
