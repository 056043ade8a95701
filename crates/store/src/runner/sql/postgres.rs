//! The runner's statements in PostgreSQL's own spelling.
//!
//! Several processes share the database, each statement reading its own snapshot, so the claim
//! guards itself three times: the job row is locked (`FOR UPDATE SKIP LOCKED`, rechecked on its
//! newest version), the catalog's `catalog_claims` row is bumped only if no other claim of the
//! catalog happened since the snapshot (migration 0006 says why), and so is the project's
//! `project_turns` row (migration 0009: the turns and the cap are read from the snapshot too). Leases are computed on the database's
//! clock, so nodes with different clocks agree on when one ends.

use super::batch::{pg_finish_jobs, pg_finish_rows, PG_STILL_WAITING};
use super::{
    catalog_has_members, checkpoint_sql, in_turn, next_jobs, CATALOGS_WITH_WORK, CLAIM_COLUMNS, TURN_ORDER, WAITING,
};
use crate::idlist::opaque_list_pg;

/// The database's clock in epoch milliseconds.
/// Truncated to the millisecond, as the node's clock is (`now_ms`): rounded, a job claimed on the
/// database's clock could show a start a millisecond after the end its checkpoint wrote.
pub(super) const NOW: &str = "floor(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint";

/// When a job became due (`catalog_domain::order::due_at`), as `jobs_waiting` indexes it; `table`
/// is the alias to qualify the columns with, or empty.
pub(super) fn due(table: &str) -> String {
    if table.is_empty() {
        "GREATEST(created_at, start_at)".to_owned()
    } else {
        format!("GREATEST({table}.created_at, {table}.start_at)")
    }
}

/// The candidates over the catalogs of `active` in turn order ([`in_turn`]).
fn candidates(active: &str, cap: Option<u32>) -> String {
    in_turn(active, "catalog_claims", cap, (&due(""), NOW), |_| String::new())
}

/// The claim's second try, over every catalog the jobs say has work ([`next_jobs`]); see
/// [`claim_from`].
pub(super) fn claim(cap: Option<u32>) -> String {
    let next_catalog = format!(
        "SELECT n.project_id, n.catalog_id FROM waiting w CROSS JOIN LATERAL (
             SELECT project_id, catalog_id FROM jobs WHERE {WAITING} AND (project_id, catalog_id) > (w.project_id, w.catalog_id)
             ORDER BY project_id, catalog_id LIMIT 1) AS n"
    );
    let active = next_jobs(&next_catalog, |_| String::new());
    claim_from(&format!("{active}, candidate AS ({})", candidates("active", cap)), "NULL::int8")
}

/// The claim's first try, over the catalogs of [`CATALOGS_WITH_WORK`]; see [`claim_from`].
pub(super) fn claim_likely(cap: Option<u32>) -> String {
    claim_from(
        &format!("WITH candidate AS ({})", candidates(CATALOGS_WITH_WORK, cap)),
        &format!("(SELECT COUNT(*) FROM {CATALOGS_WITH_WORK} AS listed)"),
    )
}

/// A claim, one autocommit statement (its commit need not wait for the WAL flush: a claim lost in
/// a crash only leaves the job due again), from `with`, a WITH clause defining `candidate` (the
/// columns of [`in_turn`]): locks the first candidate in turn order ([`TURN_ORDER`]) if it is still
/// claimable (found by its id alone: given a list, the generic plan walked every queued job), bumps
/// its catalog's claim version and its project's turn version, records the turn (one number of the
/// `claim_turns` sequence) as both's last, leases the job, and answers one row — `candidates` (how
/// many there were), and the claimed job with its payload, if any. Candidates without a claim mean
/// another node claimed meanwhile in the catalog or the project (or holds the first candidate's
/// lock): the caller tries again on a fresh snapshot. `catalogs_with_work` is SQL answering how
/// many catalogs the candidates were looked for in (NULL when not counted). `$1` owner, `$2` lease
/// milliseconds, `$3` the claimed status.
fn claim_from(with: &str, catalogs_with_work: &str) -> String {
    format!(
        "{with},
         pick AS MATERIALIZED (
             SELECT j.id, j.project_id, j.catalog_id, j.status FROM jobs j
             WHERE j.id = (SELECT id FROM candidate ORDER BY {TURN_ORDER} LIMIT 1)
               AND j.status IN ('queued', 'scheduled', 'running')
               AND (j.status <> 'running' OR j.lease_expires_at IS NULL OR j.lease_expires_at <= {NOW})
             FOR UPDATE OF j SKIP LOCKED),
         turn_number AS MATERIALIZED (SELECT nextval('claim_turns') AS served FROM pick),
         turn AS (
             INSERT INTO catalog_claims AS c (catalog_id, version, served)
             SELECT p.catalog_id, COALESCE((SELECT version FROM catalog_claims WHERE catalog_id = p.catalog_id), 0) + 1,
                    (SELECT served FROM turn_number)
             FROM pick p
             ON CONFLICT (catalog_id) DO UPDATE SET version = c.version + 1, served = EXCLUDED.served
                 WHERE c.version = EXCLUDED.version - 1
             RETURNING c.catalog_id),
         project_turn AS (
             INSERT INTO project_turns AS t (project_id, version, served)
             SELECT p.project_id, COALESCE((SELECT version FROM project_turns WHERE project_id = p.project_id), 0) + 1,
                    (SELECT served FROM turn_number)
             FROM pick p WHERE EXISTS (SELECT 1 FROM turn)
             ON CONFLICT (project_id) DO UPDATE SET version = t.version + 1, served = EXCLUDED.served
                 WHERE t.version = EXCLUDED.version - 1
             RETURNING t.project_id),
         claimed AS (
             UPDATE jobs SET status = $3, attempt = attempt + 1, lease_owner = $1, lease_expires_at = {NOW} + $2,
                 started_at = COALESCE(started_at, {NOW}), updated_at = {NOW}
             WHERE id = (SELECT id FROM pick) AND EXISTS (SELECT 1 FROM project_turn)
             RETURNING {CLAIM_COLUMNS}),
         commit_mode AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS v)
         SELECT (SELECT COUNT(*) FROM candidate) AS candidates, {catalogs_with_work} AS catalogs_with_work,
                p.status AS previous_status,
                c.*, payload.payload
         FROM (SELECT 1) AS one LEFT JOIN pick p ON true LEFT JOIN claimed c ON c.id = p.id
              LEFT JOIN job_payloads payload ON payload.job_id = c.id
         WHERE (SELECT v FROM commit_mode) IS NOT NULL"
    )
}

/// An item-delete chunk and its checkpoint as ONE autocommit statement, so a chunk costs one round
/// trip like a raw delete. `job` locks the job row only if the checkpoint guard holds (attempt,
/// running, no cancel, catalog alive and share-locked); the deletes and the update act only when it
/// does, so a statement whose guard fails changes nothing. `$14` is this transaction's
/// synchronous_commit (only a job's last chunk waits for the WAL flush); the CTE is materialized so
/// it runs before the commit.
pub(super) fn delete_and_checkpoint() -> String {
    format!(
        "WITH commit_mode AS MATERIALIZED (SELECT set_config('synchronous_commit', $14, true) AS v),
              {job},
              {deletes}
         {checkpoint} AND id IN (SELECT id FROM job)",
        job = locked_job("AND (SELECT v FROM commit_mode) IS NOT NULL"),
        deletes = item_deletes(("$12", "$13"), "EXISTS (SELECT 1 FROM job)"),
        checkpoint = checkpoint_sql(true, false)
    )
}

/// The CTE `job`: the row of job `$1`, locked, only while the checkpoint's guard holds (attempt
/// `$2`, cursor `$11`, running, no cancel, catalog `$12` alive and share-locked) and `also` does.
fn locked_job(also: &str) -> String {
    format!(
        "job AS MATERIALIZED (
             SELECT id FROM jobs
             WHERE id = $1 AND attempt = $2 AND cursor = $11 AND status = 'running' AND cancel_requested = 0
               AND EXISTS (SELECT 1 FROM catalogs WHERE id = $12 AND deleted_at IS NULL FOR SHARE) {also}
             FOR UPDATE)"
    )
}

/// The CTEs `members` and `gone`: delete the items `ids` of the catalog `catalog` (placeholders),
/// and their category memberships, when `condition` holds. The ids are read through
/// [`opaque_list_pg`], as every list of ids is (see `idlist::in_list`).
fn item_deletes((catalog, ids): (&str, &str), condition: &str) -> String {
    format!(
        "members AS (DELETE FROM category_items
                     WHERE catalog_id = {catalog} AND item_id = ANY({ids}) AND {condition} AND {has_members}),
         gone AS (DELETE FROM items WHERE catalog_id = {catalog} AND item_id = ANY({ids}) AND {condition})",
        ids = opaque_list_pg(ids),
        has_members = catalog_has_members(catalog),
    )
}

/// A batch of item deletes (`runner/batch.rs`) as ONE autocommit statement: the leading job's
/// last chunk and every job that joined it, so that 200 small jobs cost one round trip, as a raw
/// delete does. As a transaction the batch took five round trips more and fired the jobs'
/// triggers twice; under a load that keeps both cores busy each round trip waits for one, and the
/// runner fell behind the requests it was given (docs/PERFORMANCE.md, "Sustained load").
///
/// `job` locks the leader's row only if the checkpoint's guard holds ([`locked_job`]); `live` locks the
/// followers still waiting and not cancelled. Only when both hold for every job (`go`) do the
/// deletes, the followers' finish and the leader's checkpoint act, so a statement that finds a
/// follower cancelled since it was read, or the leader's lease lost, changes nothing: the runner
/// then goes the transaction's way, which leaves the cancelled job out, or finds out why. A cancel
/// that comes after the locks waits for the commit and finds its job finished.
///
/// Parameters: the checkpoint's (`$1`–`$11`, the leader's, finishing it), `$12` catalog, `$13`
/// the ids of every job of the batch, `$14` the followers' ends as [`pg_finish_rows`] reads them,
/// `$15` when the followers expire. Answers `go`, `leader` (the leader's guard held),
/// `finished` (followers finished) and `checkpointed`.
pub(super) fn delete_batch() -> String {
    let go = "(SELECT go FROM go)";
    format!(
        "WITH {job},
              f AS MATERIALIZED ({rows}),
              live AS MATERIALIZED (
                  SELECT jobs.id FROM jobs
                  WHERE jobs.id = ANY(ARRAY(SELECT id FROM f)) AND {PG_STILL_WAITING} AND EXISTS (SELECT 1 FROM job)
                  ORDER BY jobs.id FOR UPDATE),
              go AS MATERIALIZED (
                  SELECT EXISTS (SELECT 1 FROM job) AND (SELECT COUNT(*) FROM live) = (SELECT COUNT(*) FROM f) AS go),
              {deletes},
              finished AS ({finish} RETURNING jobs.id),
              checkpointed AS ({checkpoint} AND id IN (SELECT id FROM job) AND {go} RETURNING id)
         SELECT {go} AS go, EXISTS (SELECT 1 FROM job) AS leader,
                (SELECT COUNT(*) FROM finished) AS finished, (SELECT COUNT(*) FROM checkpointed) AS checkpointed",
        job = locked_job(""),
        rows = pg_finish_rows("$14"),
        deletes = item_deletes(("$12", "$13"), go),
        finish =
            pg_finish_jobs("$7", "$15", &format!("{PG_STILL_WAITING} AND jobs.id IN (SELECT id FROM live) AND {go}")),
        checkpoint = checkpoint_sql(true, false)
    )
}

/// The first statement of a trailing batch (`runner/trailing.rs`): a batch of item deletes
/// written while the batch before it, in another transaction, is still being written. It locks its
/// jobs (`live`: still waiting and not cancelled, as [`delete_batch`] does) and share-locks the
/// catalog; only when every job and the catalog are as read, and no other catalog has a job that
/// may start now (the claim's candidates, [`candidates`], with the same `cap`: a catalog's next
/// batch trails only when the turn would come back to it anyway), does it (`go`) delete the items
/// `$2` of the catalog `$1` and their memberships. `$3` are the jobs' ends as [`pg_finish_rows`]
/// reads them. Answers `go`.
///
/// It finishes no job: the jobs' update writes their events and the queue's counts (triggers of
/// `jobs`), which must come after the batch before it commits, so that event ids follow the
/// catalog's order and the two transactions never wait for each other's rows (the caller then runs
/// the batch's `finish` in the same transaction, and commits).
pub(super) fn trailing_deletes(cap: Option<u32>) -> String {
    format!(
        "WITH f AS MATERIALIZED ({rows}),
              live AS MATERIALIZED (
                  SELECT jobs.id FROM jobs
                  WHERE jobs.id = ANY(ARRAY(SELECT id FROM f)) AND {PG_STILL_WAITING}
                  ORDER BY jobs.id FOR UPDATE),
              go AS MATERIALIZED (
                  SELECT (SELECT COUNT(*) FROM live) = (SELECT COUNT(*) FROM f)
                         AND NOT EXISTS (SELECT 1 FROM ({others}) AS other WHERE other.catalog_id <> $1)
                         AND EXISTS (SELECT 1 FROM catalogs WHERE id = $1 AND deleted_at IS NULL FOR SHARE) AS go),
              {deletes}
         SELECT (SELECT go FROM go) AS go",
        rows = pg_finish_rows("$3"),
        others = candidates(CATALOGS_WITH_WORK, cap),
        deletes = item_deletes(("$1", "$2"), "(SELECT go FROM go)"),
    )
}

pub(super) const UPSERT_ITEMS: &str = "INSERT INTO items (catalog_id, item_id, fields, created_at, updated_at)
     SELECT $1, e->>0, (e->1)::text, $3, $3 FROM json_array_elements($2::json) e
     ON CONFLICT (catalog_id, item_id) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at";

pub(super) const UPSERT_CATEGORIES: &str =
    "INSERT INTO categories (catalog_id, category_id, external_id, name, created_at, updated_at)
     SELECT $1, e->>0, e->>1, e->>2, $3, $3 FROM json_array_elements($2::json) e
     ON CONFLICT (catalog_id, category_id) DO UPDATE SET external_id = excluded.external_id,
         name = excluded.name, updated_at = excluded.updated_at";

pub(super) const INSERT_MEMBERS: &str = "INSERT INTO category_items (catalog_id, category_id, item_id)
     SELECT $1, e->>0, e->>1 FROM json_array_elements($2::json) e ON CONFLICT DO NOTHING";

/// The catalog's row goes, and so does its claim version: no job of it is left to claim.
pub(super) const DELETE_CATALOG: &[&str] =
    &["DELETE FROM catalog_claims WHERE catalog_id = $1", "DELETE FROM catalogs WHERE id = $1"];

/// The slow path's fence (see the SQLite form); the catalog row is share-locked, as in the
/// checkpoint.
pub(super) fn fence() -> String {
    format!(
        "WITH live AS (SELECT id FROM catalogs WHERE id = $5 AND deleted_at IS NULL FOR SHARE)
         UPDATE jobs SET lease_expires_at = {NOW} + $3, updated_at = $4
         WHERE id = $1 AND attempt = $2 AND status = 'running'
         RETURNING total_count, completed_count, failed_count, cursor, cancel_requested,
             (SELECT COUNT(*) FROM live) AS alive"
    )
}
