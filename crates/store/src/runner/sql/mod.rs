//! Every statement of the runner, built once per backend ([`Statements::new`]).
//!
//! What is the same on both backends is written here once; `sqlite.rs` and `postgres.rs` hold
//! what differs: the claim (implementing [`catalog_domain::order::next_of_catalog`] and
//! [`catalog_domain::turns::next_in_turn`]), the one-round-trip item-delete chunk, and the
//! bounded deletes of a catalog. Placeholders are numbered (`$1`) on both.
//!
//! Times: leases and claims are computed on the database's clock (`NOW` of each backend), so that
//! on PostgreSQL every node agrees on when a lease ends and a job is never shown started before it
//! was accepted; the times a checkpoint writes (updated, finished) come from the node, bound as
//! parameters.

mod batch;
mod postgres;
mod sqlite;

pub(crate) use batch::BatchStatements;

use crate::idlist::in_list;

/// The columns a claim answers for the job it took.
pub(super) const CLAIM_COLUMNS: &str =
    "id, project_id, catalog_id, kind, status, attempt, releases, last_error, flags, \
     cursor, total_count, completed_count, failed_count, cancel_requested";

/// SQL that is true when the catalog `catalog` (a placeholder) has any category membership.
/// Deleting items also deletes their memberships, but most catalogs have no categories: then this
/// one index probe spares a lookup per id (measured on PostgreSQL: 2 ms of a 10,000-id chunk's
/// 18.5 ms, with the catalog's memberships empty). Memberships change only through jobs of their
/// catalog, which run one at a time, so none appears between this check and the delete.
pub(super) fn catalog_has_members(catalog: &str) -> String {
    format!("EXISTS (SELECT 1 FROM category_items WHERE catalog_id = {catalog})")
}

/// Which unfinished jobs are waiting to start: the `jobs_waiting` index's condition.
pub(super) const WAITING: &str = "status IN ('queued', 'scheduled')";

/// Which jobs hold their catalog (started, not finished): the `jobs_holding` index's condition.
pub(super) const HOLDING: &str = "status IN ('running', 'queued') AND started_at IS NOT NULL";

/// Statements of the runner, built once for the backend.
#[derive(Debug)]
pub(super) struct Statements {
    /// Claims the next job (see `sqlite.rs` and `postgres.rs`): `$1` owner, `$2` lease
    /// milliseconds, `$3` the status of a claimed job. Answers the [`CLAIM_COLUMNS`] and
    /// `previous_status`; on PostgreSQL also `candidates`, `picked` and the payload.
    pub claim: String,
    /// PostgreSQL: the claim's first try, over the catalogs of [`CATALOGS_WITH_WORK`], answering
    /// like `claim`; when it finds no candidate, `claim` walks the jobs ([`next_jobs`]). (SQLite
    /// does both in one statement.)
    pub claim_likely: String,
    /// SQLite: at start, makes every lease held by another owner end now (`$1` this owner).
    pub take_back_leases: String,
    /// An item-delete chunk and its checkpoint in one round trip: one statement on PostgreSQL, a
    /// script on SQLite. Parameters: the checkpoint's, `$12` catalog, `$13` ids; PostgreSQL:
    /// `$14` this transaction's synchronous_commit.
    pub delete_and_checkpoint: String,
    /// SQLite: a job's last item-delete chunk, its checkpoint, and the claim of the next job
    /// (`$14` owner, `$15` lease milliseconds, `$16` claimed status), one script.
    pub delete_checkpoint_and_claim: String,
    /// Deletes the items `$2` of the catalog `$1` and their category memberships, run in order
    /// over the same ids: on PostgreSQL one statement, so the list is sent and read once (two
    /// statements cost a batch of 10,000 ids about 2 ms more); on SQLite, which has no DELETE in
    /// a WITH clause, two.
    pub delete_items_and_members: Vec<String>,
    pub select_items: String,
    /// Which of the ids `$2` are items of the catalog `$1` (a create reads no fields).
    pub existing_items: String,
    /// Which of the ids `$2` are categories of the catalog `$1`.
    pub existing_categories: String,
    pub upsert_items: &'static str,
    pub select_categories: String,
    pub upsert_categories: &'static str,
    pub clear_members_of_categories: String,
    pub insert_members: &'static str,
    pub delete_categories: String,
    /// A catalog delete's bounded deletes, in order (`$1` catalog, `$2` most rows).
    pub delete_catalog_rows: [&'static str; 3],
    /// A catalog delete's last statements (`$1` catalog).
    pub delete_catalog: &'static [&'static str],
    pub insert_error: &'static str,
    /// The guarded checkpoint of a job with a catalog (see [`checkpoint_sql`]).
    pub checkpoint: String,
    /// The guarded checkpoint of a catalog delete (its catalog is gone by design).
    pub checkpoint_no_catalog: String,
    /// Renews the lease and reads the job row, unless another attempt owns it (the slow path).
    pub fence: String,
    /// Renews the lease while a chunk runs (`$1` job, `$2` attempt, `$3` lease milliseconds).
    pub heartbeat: String,
    /// Ends a job that cannot go on (cancelled at a boundary, or failed), fenced by attempt.
    pub end_job: &'static str,
    /// Hands a job back at shutdown; the attempt is given back (`releases`).
    pub release: &'static str,
    /// Lets go of a job after a failed chunk; any runner resumes it after `$3` milliseconds. `$6`
    /// is 1 to give the attempt back (storage trouble), 0 to count it.
    pub retry_later: String,
    /// The statements of a batch of a catalog's consecutive jobs (`runner/batch.rs`).
    pub batch: BatchStatements,
}

impl Statements {
    /// The statements of PostgreSQL (`pg`) or SQLite; `cap`: the most catalogs one project may
    /// run at once (`None`: no cap), which the claim enforces.
    pub(super) fn new(pg: bool, cap: Option<u32>) -> Statements {
        let now = if pg { postgres::NOW } else { sqlite::NOW };
        let list = |column: &str, placeholder: &str| in_list(pg, column, placeholder);
        let pick = |sqlite: &'static str, postgres: &'static str| if pg { postgres } else { sqlite };
        Statements {
            claim: if pg { postgres::claim(cap) } else { sqlite::claim_script(cap) },
            claim_likely: if pg { postgres::claim_likely(cap) } else { String::new() },
            take_back_leases: format!(
                "UPDATE jobs SET lease_expires_at = {now} - 1
                 WHERE status = 'running' AND lease_owner IS NOT NULL AND lease_owner <> $1"
            ),
            delete_and_checkpoint: if pg { postgres::delete_and_checkpoint() } else { sqlite::delete_and_checkpoint() },
            delete_checkpoint_and_claim: sqlite::delete_checkpoint_and_claim(cap),
            delete_items_and_members: {
                let members = format!(
                    "DELETE FROM category_items WHERE catalog_id = $1 AND {} AND {}",
                    list("item_id", "$2"),
                    catalog_has_members("$1")
                );
                let items = format!("DELETE FROM items WHERE catalog_id = $1 AND {}", list("item_id", "$2"));
                if pg {
                    vec![format!("WITH members AS ({members}) {items}")]
                } else {
                    vec![members, items]
                }
            },
            select_items: format!("SELECT item_id, fields FROM items WHERE catalog_id = $1 AND {}", list("item_id", "$2")),
            existing_items: format!("SELECT item_id AS id FROM items WHERE catalog_id = $1 AND {}", list("item_id", "$2")),
            existing_categories: format!(
                "SELECT category_id AS id FROM categories WHERE catalog_id = $1 AND {}",
                list("category_id", "$2")
            ),
            upsert_items: pick(sqlite::UPSERT_ITEMS, postgres::UPSERT_ITEMS),
            select_categories: format!(
                "SELECT category_id, external_id, name FROM categories WHERE catalog_id = $1 AND {}",
                list("category_id", "$2")
            ),
            upsert_categories: pick(sqlite::UPSERT_CATEGORIES, postgres::UPSERT_CATEGORIES),
            clear_members_of_categories: format!(
                "DELETE FROM category_items WHERE catalog_id = $1 AND {}",
                list("category_id", "$2")
            ),
            insert_members: pick(sqlite::INSERT_MEMBERS, postgres::INSERT_MEMBERS),
            delete_categories: format!(
                "DELETE FROM categories WHERE catalog_id = $1 AND {}",
                list("category_id", "$2")
            ),
            delete_catalog_rows: [
                "DELETE FROM category_items WHERE (catalog_id, category_id, item_id) IN
                     (SELECT catalog_id, category_id, item_id FROM category_items WHERE catalog_id = $1 LIMIT $2)",
                "DELETE FROM categories WHERE catalog_id = $1 AND category_id IN
                     (SELECT category_id FROM categories WHERE catalog_id = $1 ORDER BY category_id LIMIT $2)",
                "DELETE FROM items WHERE catalog_id = $1 AND item_id IN
                     (SELECT item_id FROM items WHERE catalog_id = $1 ORDER BY item_id LIMIT $2)",
            ],
            delete_catalog: if pg { postgres::DELETE_CATALOG } else { sqlite::DELETE_CATALOG },
            insert_error: "INSERT INTO job_errors (job_id, item_index, item_id, code, title, detail, pointer)
                           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            checkpoint: checkpoint_sql(pg, true),
            checkpoint_no_catalog: checkpoint_sql(pg, false),
            fence: if pg { postgres::fence() } else { sqlite::fence() },
            heartbeat: format!(
                "UPDATE jobs SET lease_expires_at = {now} + $3 WHERE id = $1 AND attempt = $2 AND status = 'running'"
            ),
            end_job: "UPDATE jobs SET status = $3, completed_count = $4, failed_count = $5, updated_at = $6,
                          finished_at = $6, expires_at = $7, failure_reason = $8, lease_owner = NULL, lease_expires_at = NULL
                      WHERE id = $1 AND attempt = $2 AND status = 'running'",
            release: "UPDATE jobs SET status = $3, lease_owner = NULL, lease_expires_at = NULL, releases = releases + 1,
                          updated_at = $4
                      WHERE id = $1 AND attempt = $2 AND status = 'running'",
            retry_later: format!(
                "UPDATE jobs SET lease_owner = NULL, lease_expires_at = {now} + $3, last_error = $4, updated_at = $5,
                                 releases = releases + $6
                 WHERE id = $1 AND attempt = $2 AND status = 'running'"
            ),
            batch: BatchStatements::new(pg, cap),
        }
    }
}

/// The checkpoint written in the same transaction as a chunk's data change. It is a
/// compare-and-set: it matches the job row only while this lease's attempt still owns the running
/// job (fencing), the stored cursor is still where this chunk started ($11), no cancel is pending,
/// and — with `guard_catalog` — the catalog ($12) is alive. The cursor check matters because
/// intermediate commits are relaxed: if a crash lost one, the stored cursor is behind ours and the
/// chunk must be redone, not skipped. When it matches nothing the caller rolls the chunk back and
/// finds out why (`Lease::interrupted`). On PostgreSQL the catalog row is share-locked until
/// commit, so a concurrent catalog delete waits for the chunk instead of racing it.
///
/// Parameters: $1 id, $2 attempt, $3 new cursor, $4 completed, $5 failed, $6 status, $7 now,
/// $8 finished_at (NULL unless terminal), $9 expires_at, $10 lease milliseconds, $11 cursor at the
/// start of the chunk, $12 catalog.
pub(super) fn checkpoint_sql(pg: bool, guard_catalog: bool) -> String {
    let catalog = match (guard_catalog, pg) {
        (false, _) => "",
        (true, false) => "AND EXISTS (SELECT 1 FROM catalogs WHERE id = $12 AND deleted_at IS NULL)",
        (true, true) => "AND EXISTS (SELECT 1 FROM catalogs WHERE id = $12 AND deleted_at IS NULL FOR SHARE)",
    };
    let now = if pg { postgres::NOW } else { sqlite::NOW };
    format!(
        "UPDATE jobs SET cursor = $3, completed_count = $4, failed_count = $5, status = $6, updated_at = $7,
             finished_at = $8, expires_at = $9,
             lease_expires_at = CASE WHEN $8 IS NULL THEN {now} + $10 ELSE NULL END,
             lease_owner = CASE WHEN $8 IS NULL THEN lease_owner ELSE NULL END
         WHERE id = $1 AND attempt = $2 AND cursor = $11 AND status = 'running' AND cancel_requested = 0 {catalog}"
    )
}

/// The turn order of the claim (`catalog_domain::turns`): least recently served project, then
/// catalog, then oldest due, then lowest id, as columns of [`in_turn`].
pub(super) const TURN_ORDER: &str = "project_served, catalog_served, due, id";

/// Which jobs a worker is applying (under a live lease): what the per-project cap counts. A job
/// waiting out a retry backoff has no owner and does not count.
fn live(now: &str) -> String {
    format!("status = 'running' AND lease_owner IS NOT NULL AND lease_expires_at > {now}")
}

/// The job of each catalog in `active` that the order rule lets start
/// (`catalog_domain::order::next_of_catalog`), as SQL answering `id`, `project_id`, `catalog_id`,
/// the turns its project and catalog were last served at (`project_served`, `catalog_served`, 0 if
/// never), and `due`: the candidates of `catalog_domain::turns::next_in_turn`, to be ordered by
/// [`TURN_ORDER`]. `active` is a table or subquery of `(project_id, catalog_id)`; `catalog_turns`
/// the table of catalog turns (`catalog_id`, `served`); with a `cap`, a project already running
/// that many catalogs has no candidate. `due` is the backend's form of
/// `catalog_domain::order::due_at`, `now` its clock.
pub(super) fn in_turn(
    active: &str,
    catalog_turns: &str,
    cap: Option<u32>,
    (due, now): (&str, &str),
    hint: impl Fn(&str) -> String,
) -> String {
    let (waiting, holding) = (hint("jobs_waiting"), hint("jobs_holding"));
    // Scalar subqueries rather than joins: each is a probe per catalog with work, where a join
    // let PostgreSQL's generic plan hash all of `jobs` (and every catalog ever claimed).
    let capped = match cap {
        Some(cap) => format!(
            "WHERE (SELECT COUNT(*) FROM jobs {holding} WHERE project_id = a.project_id AND {HOLDING} AND {}) < {cap}",
            live(now)
        ),
        None => String::new(),
    };
    // Materialized: SQLite would otherwise flatten it and evaluate each catalog's probes once per
    // use of `id`.
    format!(
        "WITH next_of AS MATERIALIZED (
             SELECT CASE
                 WHEN EXISTS (SELECT 1 FROM jobs AS h {holding}
                              WHERE h.project_id = a.project_id AND h.catalog_id = a.catalog_id AND {HOLDING})
                 THEN (SELECT id FROM (SELECT id, status, lease_expires_at FROM jobs {holding}
                                       WHERE project_id = a.project_id AND catalog_id = a.catalog_id AND {HOLDING}
                                       ORDER BY {due}, id LIMIT 1) AS holder
                       WHERE status = 'queued' OR lease_expires_at IS NULL OR lease_expires_at <= {now})
                 ELSE (SELECT id FROM jobs {waiting}
                       WHERE project_id = a.project_id AND catalog_id = a.catalog_id AND {WAITING}
                         AND (status = 'queued' OR {due} <= {now})
                       ORDER BY {due}, id LIMIT 1)
             END AS id, a.project_id, a.catalog_id
             FROM {active} AS a {capped})
         SELECT id, project_id, catalog_id,
                COALESCE((SELECT served FROM project_turns WHERE project_id = n.project_id), 0) AS project_served,
                COALESCE((SELECT served FROM {catalog_turns} WHERE catalog_id = n.catalog_id), 0) AS catalog_served,
                (SELECT {due} FROM jobs WHERE id = n.id) AS due
         FROM next_of AS n
         WHERE id IS NOT NULL"
    )
}

/// The catalogs with unfinished work, as the claim's first try enumerates them: `queue_inputs`
/// (migrations 0008 and 0010) holds the counts of every catalog with a scheduled, queued or
/// running job, kept by triggers in the transaction of every job change, and of few others (a
/// catalog left without work keeps its rows until the next purge on PostgreSQL): a scan of a few
/// rows where walking `jobs_waiting` costs a probe or two per catalog. Should it ever miss a
/// catalog, the claim's second try ([`next_jobs`]) walks the jobs themselves.
pub(super) const CATALOGS_WITH_WORK: &str =
    "(SELECT project_id, catalog_id FROM queue_inputs GROUP BY project_id, catalog_id HAVING SUM(jobs) > 0)";

/// The catalogs with work as SQL defining the CTE `active(project_id, catalog_id)`, from the jobs
/// themselves: the claim's second try, when its first ([`CATALOGS_WITH_WORK`]) found nothing.
///
/// The catalogs with work are found by a loose index scan of `jobs_waiting` (a probe or two per
/// catalog, whatever its backlog: the next catalog of the same project, else the first of the next
/// project) plus the few that hold a started job (`jobs_holding`). `next_catalog` is the recursive
/// step (a correlated join on SQLite, a lateral one on PostgreSQL); `hint(index)` what makes the
/// backend read `jobs` through that index (SQLite's planner, without statistics, would rather walk
/// every queued job of `jobs_queue`; PostgreSQL's needs no hint).
pub(super) fn next_jobs(next_catalog: &str, hint: impl Fn(&str) -> String) -> String {
    let (waiting, holding) = (hint("jobs_waiting"), hint("jobs_holding"));
    format!(
        "WITH RECURSIVE waiting(project_id, catalog_id) AS (
             SELECT * FROM (SELECT project_id, catalog_id FROM jobs {waiting} WHERE {WAITING}
                            ORDER BY project_id, catalog_id LIMIT 1) AS first_catalog
             UNION ALL
             {next_catalog}
         ),
         active(project_id, catalog_id) AS (
             SELECT project_id, catalog_id FROM waiting
             UNION
             SELECT project_id, catalog_id FROM jobs {holding} WHERE {HOLDING}
         )"
    )
}
