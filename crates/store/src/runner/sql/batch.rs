//! The statements of a batch (`runner/batch.rs`): the due jobs waiting behind a leading job in its
//! catalog's order, their payloads, the lock that keeps each one out of the batch if it was
//! cancelled meanwhile, and the write that finishes them all in the batch's transaction.

use super::{postgres, sqlite, WAITING};

/// The statements of a batch, built once for the backend.
#[derive(Debug)]
pub(crate) struct BatchStatements {
    /// The catalog's due jobs not yet started, in the order rule's order (`$1` project, `$2`
    /// catalog, `$3` most rows): `id`, `kind`, `status`, `flags`, `total_count`, `payload_bytes`,
    /// `due`.
    pub waiting: String,
    /// As `waiting`, of the jobs after the one due at `$4` with id `$5` in that order: the jobs
    /// behind a batch being written, read ahead (`runner/batch.rs`).
    pub waiting_after: String,
    /// The stored payloads of jobs `$1`: `job_id`, `part`, `payload`, in job and part order.
    pub payloads: &'static str,
    /// Of jobs `$1`, the ids still waiting and not cancelled; on PostgreSQL their rows are locked
    /// until the batch commits, so a cancel waits for the batch and then finds the job finished.
    pub lock_waiting: String,
    /// Finishes the batch's other jobs: `$1` a JSON array of `[id, status, completed, failed]`
    /// (the cursor moves to the end), `$2` now, `$3` when they expire. Each job is started and
    /// finished at `$2` with one attempt, as if claimed and applied in one chunk.
    pub finish: String,
    /// PostgreSQL: a whole batch of item deletes as one autocommit statement (see
    /// `postgres::delete_batch`); none on SQLite, where a batch holds the one write lock anyway.
    pub delete_batch: Option<String>,
    /// PostgreSQL: the first statement of a trailing batch (see `postgres::trailing_deletes`);
    /// none on SQLite, where one transaction writes at a time.
    pub trailing_deletes: Option<String>,
}

impl BatchStatements {
    /// The statements of PostgreSQL (`pg`) or SQLite; `cap` as the claim's (see
    /// `Statements::new`).
    pub(super) fn new(pg: bool, cap: Option<u32>) -> BatchStatements {
        let (due, now, hint) = if pg {
            (postgres::due(""), postgres::NOW, "")
        } else {
            (sqlite::due(""), sqlite::NOW, "INDEXED BY jobs_waiting")
        };
        let bytes = if pg {
            "(SELECT octet_length(payload)::bigint FROM job_payloads WHERE job_id = jobs.id)"
        } else {
            "(SELECT octet_length(payload) FROM job_payloads WHERE job_id = jobs.id)
             + (SELECT COALESCE(SUM(octet_length(payload)), 0) FROM job_payload_parts WHERE job_id = jobs.id)"
        };
        let waiting = |after: &str| {
            format!(
                "SELECT id, kind, status, flags, total_count, COALESCE({bytes}, 0) AS payload_bytes, {due} AS due
                 FROM jobs {hint}
                 WHERE project_id = $1 AND catalog_id = $2 AND {WAITING} AND started_at IS NULL
                   AND cancel_requested = 0 AND (status = 'queued' OR {due} <= {now}) {after}
                 ORDER BY {due}, id LIMIT $3"
            )
        };
        BatchStatements {
            waiting: waiting(""),
            waiting_after: waiting(&format!("AND ({due}, id) > ($4, $5)")),
            payloads: if pg { PG_PAYLOADS } else { SQLITE_PAYLOADS },
            lock_waiting: if pg { pg_lock_waiting() } else { SQLITE_LOCK_WAITING.to_owned() },
            finish: if pg { pg_finish() } else { SQLITE_FINISH.to_owned() },
            delete_batch: pg.then(postgres::delete_batch),
            trailing_deletes: pg.then(|| postgres::trailing_deletes(cap)),
        }
    }
}

/// Payloads are stored in parts on SQLite only: on PostgreSQL the first part is all of it.
const PG_PAYLOADS: &str = "SELECT job_id, 0 AS part, payload FROM job_payloads WHERE job_id = ANY($1) ORDER BY job_id";

const SQLITE_PAYLOADS: &str = "SELECT job_id, 0 AS part, payload FROM job_payloads
     WHERE job_id IN (SELECT value FROM json_each($1))
     UNION ALL SELECT job_id, part, payload FROM job_payload_parts WHERE job_id IN (SELECT value FROM json_each($1))
     ORDER BY job_id, part";

/// PostgreSQL: which rows of `jobs` are still waiting to start and not cancelled. `status || ''`
/// keeps the planner on the primary key, as `+status` does SQLite's: on a plain `status`,
/// PostgreSQL read every waiting job through `jobs_waiting` and matched each against every row of
/// the list (measured: the finish ran for most of a batch's time with 1,160 jobs waiting); now one
/// primary-key lookup per job.
pub(super) const PG_STILL_WAITING: &str =
    "jobs.status || '' IN ('queued', 'scheduled') AND jobs.started_at IS NULL AND jobs.cancel_requested = 0";

fn pg_lock_waiting() -> String {
    format!("SELECT id FROM jobs WHERE id = ANY($1) AND {PG_STILL_WAITING} ORDER BY id FOR UPDATE")
}

/// The batch holds SQLite's write lock: what it reads stays true until it commits. (`+status`
/// keeps SQLite's planner on the primary key: through `jobs_queue` it would walk every queued job.)
const SQLITE_LOCK_WAITING: &str = "SELECT id FROM jobs
     WHERE id IN (SELECT value FROM json_each($1)) AND +status IN ('queued', 'scheduled') AND started_at IS NULL
       AND cancel_requested = 0";

/// PostgreSQL's finish: the followers' rows are read out of the JSON once (`f`, materialized).
fn pg_finish() -> String {
    format!("WITH f AS MATERIALIZED ({}) {}", pg_finish_rows("$1"), pg_finish_jobs("$2", "$3", PG_STILL_WAITING))
}

/// PostgreSQL: the rows of the JSON array `json` of [`BatchStatements::finish`], as `id`,
/// `status`, `completed`, `failed`.
pub(super) fn pg_finish_rows(json: &str) -> String {
    format!(
        "SELECT (e->>0)::bigint AS id, e->>1 AS status, (e->>2)::bigint AS completed, (e->>3)::bigint AS failed
         FROM json_array_elements({json}::json) e"
    )
}

/// PostgreSQL: finishes the jobs of `f` (rows of [`pg_finish_rows`]) for which `condition` holds,
/// at `now`, to expire at `expires`. `jobs.id = ANY(...)` lets the planner reach the jobs by their
/// key whatever it believes of `jobs`: with the statistics of a young table (it guessed one job
/// left after the filters) it scanned every job and, for each, ran through the JSON again
/// (measured: 125–235 ms per batch of 200 with 4,000 jobs stored).
pub(super) fn pg_finish_jobs(now: &str, expires: &str, condition: &str) -> String {
    format!(
        "UPDATE jobs SET status = f.status, attempt = jobs.attempt + 1, cursor = jobs.total_count,
             completed_count = f.completed, failed_count = f.failed, started_at = {now}, updated_at = {now},
             finished_at = {now}, expires_at = {expires}, lease_owner = NULL, lease_expires_at = NULL
         FROM f
         WHERE jobs.id = f.id AND jobs.id = ANY(ARRAY(SELECT id FROM f)) AND {condition}"
    )
}

/// `+jobs.status`: as in [`SQLITE_LOCK_WAITING`], one primary-key lookup per job rather than a walk
/// through every queued job (measured: 67 ms against 0.6 ms for 20 jobs with 3,000 queued).
const SQLITE_FINISH: &str = "UPDATE jobs SET status = f.status, attempt = jobs.attempt + 1, cursor = jobs.total_count,
         completed_count = f.completed, failed_count = f.failed, started_at = $2, updated_at = $2,
         finished_at = $2, expires_at = $3, lease_owner = NULL, lease_expires_at = NULL
     FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS status,
                  json_extract(value, '$[2]') AS completed, json_extract(value, '$[3]') AS failed
           FROM json_each($1)) AS f
     WHERE jobs.id = f.id AND +jobs.status IN ('queued', 'scheduled') AND jobs.started_at IS NULL
       AND jobs.cancel_requested = 0";
