//! The runner's statements in SQLite's own spelling.
//!
//! One process owns an SQLite file and its writers take turns at the single write lock
//! (`WriteTurns`), so the claim needs no guard against a concurrent claim: the statement that
//! picks the next job and the one that leases it run in one immediate transaction. Multi-statement
//! work is sent as one script (`sqlite_script`): one round trip to sqlx's connection thread.

use super::{
    catalog_has_members, checkpoint_sql, in_turn, next_jobs, CATALOGS_WITH_WORK, CLAIM_COLUMNS, TURN_ORDER, WAITING,
};
use crate::idlist::in_list;

/// SQLite's clock in epoch milliseconds (the same clock as the process's: one machine).
pub(super) const NOW: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// When a job became due (`catalog_domain::order::due_at`), as `jobs_waiting` indexes it; `table`
/// is the alias to qualify the columns with, or empty.
pub(super) fn due(table: &str) -> String {
    let column = |name: &str| if table.is_empty() { name.to_owned() } else { format!("{table}.{name}") };
    format!("MAX({}, COALESCE({}, {}))", column("created_at"), column("start_at"), column("created_at"))
}

/// The claim's picked job, kept between the statement that picks it and the one that leases it.
/// A temporary table is the connection's own and never written to the database file.
const CREATE_PICK_TABLE: &str =
    "CREATE TEMP TABLE IF NOT EXISTS claim_pick (slot INTEGER PRIMARY KEY, id INTEGER NOT NULL, status TEXT NOT NULL);";

/// The statements of a claim, inside an open immediate transaction: pick the next job by the order
/// rule and the turns (over the catalogs of [`CATALOGS_WITH_WORK`] first, over every catalog the
/// jobs say has work only when that finds nothing), record the next turn number as its project's
/// and its catalog's last, then lease it (bump the attempt, the fencing token), answering the
/// claimed row and its status before. Parameters are named by the caller's placeholders; `cap` as
/// for [`in_turn`].
fn claim_statements(owner: &str, lease_ms: &str, status: &str, cap: Option<u32>) -> String {
    // Two seeks rather than one row-value range, which SQLite would only bound by `project_id`:
    // past a catalog with a long backlog that is a walk through all of it.
    let next_catalog = format!(
        "SELECT n.project_id, n.catalog_id FROM waiting w JOIN jobs n ON n.id = COALESCE(
             (SELECT id FROM jobs INDEXED BY jobs_waiting
              WHERE {WAITING} AND project_id = w.project_id AND catalog_id > w.catalog_id
              ORDER BY project_id, catalog_id LIMIT 1),
             (SELECT id FROM jobs INDEXED BY jobs_waiting WHERE {WAITING} AND project_id > w.project_id
              ORDER BY project_id, catalog_id LIMIT 1))"
    );
    let hint = |index: &str| format!("INDEXED BY {index}");
    let first = |active: &str| {
        format!(
            "SELECT id FROM ({}) ORDER BY {TURN_ORDER} LIMIT 1",
            in_turn(active, "catalog_turns", cap, (&due(""), NOW), hint)
        )
    };
    format!(
        "DELETE FROM temp.claim_pick;
         {next}
         INSERT INTO temp.claim_pick (slot, id, status)
         SELECT 0, j.id, j.status FROM jobs j
         WHERE j.id = COALESCE(({likely}), ({every}));
         INSERT INTO project_turns (project_id, served)
         SELECT j.project_id, COALESCE((SELECT MAX(served) FROM project_turns), 0) + 1
         FROM temp.claim_pick p JOIN jobs j ON j.id = p.id WHERE true
         ON CONFLICT (project_id) DO UPDATE SET served = excluded.served;
         INSERT INTO catalog_turns (catalog_id, served)
         SELECT j.catalog_id, (SELECT MAX(served) FROM project_turns)
         FROM temp.claim_pick p JOIN jobs j ON j.id = p.id WHERE j.catalog_id IS NOT NULL
         ON CONFLICT (catalog_id) DO UPDATE SET served = excluded.served;
         UPDATE jobs SET status = {status}, attempt = attempt + 1, lease_owner = {owner},
             lease_expires_at = {NOW} + {lease_ms}, started_at = COALESCE(started_at, {NOW}), updated_at = {NOW}
         WHERE id = (SELECT id FROM temp.claim_pick)
         RETURNING {CLAIM_COLUMNS}, (SELECT status FROM temp.claim_pick) AS previous_status;",
        next = next_jobs(&next_catalog, hint),
        likely = first(CATALOGS_WITH_WORK),
        every = first("active"),
    )
}

/// The claim as a script for `sqlite_script`: `$1` owner, `$2` lease milliseconds, `$3` the
/// claimed status.
pub(super) fn claim_script(cap: Option<u32>) -> String {
    format!("{CREATE_PICK_TABLE} BEGIN IMMEDIATE; {} COMMIT", claim_statements("$1", "$2", "$3", cap))
}

/// An item-delete chunk and its checkpoint, the body of a script. The deletes are guarded by the
/// checkpoint's own conditions, so a fenced-out chunk changes nothing, and the checkpoint answers
/// a row (its id) when it was written.
fn delete_chunk() -> String {
    let fence = "EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND attempt = $2 AND cursor = $11
                         AND status = 'running' AND cancel_requested = 0
                         AND EXISTS (SELECT 1 FROM catalogs WHERE id = $12 AND deleted_at IS NULL))";
    format!(
        "DELETE FROM category_items WHERE catalog_id = $12 AND {ids} AND {fence} AND {has_members};
         DELETE FROM items WHERE catalog_id = $12 AND {ids} AND {fence};
         {} RETURNING id;",
        checkpoint_sql(false, true),
        ids = in_list(false, "item_id", "$13"),
        has_members = catalog_has_members("$12"),
    )
}

/// An item-delete chunk and its checkpoint, one script.
pub(super) fn delete_and_checkpoint() -> String {
    format!("BEGIN IMMEDIATE; {} COMMIT", delete_chunk())
}

/// A job's last item-delete chunk, its checkpoint, and the claim of the next job, one script: a
/// small job then costs one turn at the write lock, not two.
pub(super) fn delete_checkpoint_and_claim(cap: Option<u32>) -> String {
    format!(
        "{CREATE_PICK_TABLE} BEGIN IMMEDIATE; {} {} COMMIT",
        delete_chunk(),
        claim_statements("$14", "$15", "$16", cap)
    )
}

/// `WHERE true` resolves SQLite's parsing ambiguity of INSERT ... SELECT ... ON CONFLICT.
pub(super) const UPSERT_ITEMS: &str = "INSERT INTO items (catalog_id, item_id, fields, created_at, updated_at)
     SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), $3, $3 FROM json_each($2) WHERE true
     ON CONFLICT (catalog_id, item_id) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at";

pub(super) const UPSERT_CATEGORIES: &str =
    "INSERT INTO categories (catalog_id, category_id, external_id, name, created_at, updated_at)
     SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), $3, $3
     FROM json_each($2) WHERE true
     ON CONFLICT (catalog_id, category_id) DO UPDATE SET external_id = excluded.external_id,
         name = excluded.name, updated_at = excluded.updated_at";

pub(super) const INSERT_MEMBERS: &str = "INSERT INTO category_items (catalog_id, category_id, item_id)
     SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($2) WHERE true
     ON CONFLICT DO NOTHING";

pub(super) const DELETE_CATALOG: &[&str] = &["DELETE FROM catalogs WHERE id = $1"];

/// The slow path's fence: renews the lease and reads the job row, matching nothing unless this
/// lease's attempt still owns the running job; also says whether the catalog ($5) is alive.
/// `$3` lease milliseconds, `$4` now.
pub(super) fn fence() -> String {
    format!(
        "UPDATE jobs SET lease_expires_at = {NOW} + $3, updated_at = $4
         WHERE id = $1 AND attempt = $2 AND status = 'running'
         RETURNING total_count, completed_count, failed_count, cursor, cancel_requested,
             (SELECT COUNT(*) FROM catalogs WHERE id = $5 AND deleted_at IS NULL) AS alive"
    )
}
