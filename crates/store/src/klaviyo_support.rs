//! Service calls the Klaviyo facade needs beyond the shared ones: job listings that page both
//! ways (JSON:API collections carry `prev` as well as `next`), the inputs and per-item errors of a
//! page of jobs in a fixed number of statements (a job resource's `relationships` and `errors`),
//! and items and categories by id (`include=items`, `include=categories`).
//!
//! Everything here is scoped by the caller's project like the rest of the service layer, and knows
//! nothing of HTTP or of Klaviyo's wording: the facade renders.

use crate::bulk::{CategoryRow, ItemRow};
use crate::db::{count, with_db, RowExt};
use crate::error::StoreError;
use crate::idlist::{in_list, IdList, IntList};
use crate::jobs::{job_from_row, joined_payload, JOB_COLUMNS, PAYLOAD_PARTS};
use crate::model::{Category, Item, Job, JobErrorRecord, JobId, ProjectId};
use crate::store::Store;
use crate::util::{clamp_limit, decode_int_cursor, encode_int_cursor};
use catalog_domain::{JobKind, JobStatus};
use std::collections::HashMap;

/// Cursor tag of a window of jobs older than a job id.
const OLDER_CURSOR: char = 'o';
/// Cursor tag of a window of jobs newer than a job id.
const NEWER_CURSOR: char = 'w';

/// Which jobs a two-way listing selects. Empty lists select everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSelection {
    /// Any of these kinds.
    pub kinds: Vec<JobKind>,
    /// Any of these statuses.
    pub statuses: Vec<JobStatus>,
    /// Only jobs of the catalog of this name.
    pub catalog: Option<String>,
}

/// One page of a two-way job listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobWindow {
    /// The jobs, newest first.
    pub rows: Vec<Job>,
    /// Cursor of the page of older jobs; `None` when there is none.
    pub next_cursor: Option<String>,
    /// Cursor of the page of newer jobs; `None` when there is none.
    pub prev_cursor: Option<String>,
    /// Cursor of the page of the oldest jobs (the last page); `None` when nothing matches.
    pub last_cursor: Option<String>,
}

/// What a job resource shows beside the job row: the ids it was created with and its per-item
/// errors (see [`Store::job_details`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobDetails {
    /// The ids of its inputs, in request order; `None` once its payload was purged, and for
    /// catalog deletes.
    pub inputs: Option<Vec<String>>,
    /// Its first [`MAX_ERRORS_PER_JOB`] per-item errors, by input index.
    pub errors: Vec<JobErrorRecord>,
}

/// Most per-item errors [`Store::job_details`] reads of one job: all of a Klaviyo job's (at most
/// 100 inputs) and the first of a larger job created through another API on the same catalog.
pub const MAX_ERRORS_PER_JOB: i64 = 1_000;

/// A direction decoded from a cursor.
enum Position {
    /// The newest jobs.
    Newest,
    /// Jobs with an id below this one.
    OlderThan(i64),
    /// Jobs with an id above this one.
    NewerThan(i64),
}

/// A value bound into a statement built at run time.
enum Arg {
    Text(String),
    List(IdList),
}

/// Binds an [`Arg`] on either backend's query type.
trait BindArg<'q, Q> {
    fn bind_to(&'q self, query: Q) -> Q;
}

impl<'q> BindArg<'q, sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>> for Arg {
    fn bind_to(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
        match self {
            Arg::Text(text) => query.bind(text.as_str()),
            Arg::List(list) => query.bind(list.clone()),
        }
    }
}

impl<'q> BindArg<'q, sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>> for Arg {
    fn bind_to(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        match self {
            Arg::Text(text) => query.bind(text.as_str()),
            Arg::List(list) => query.bind(list.clone()),
        }
    }
}

impl Store {
    /// The project's jobs matching `selection`, newest first, `limit` (1..=1000) at a time.
    ///
    /// `cursor` is `None` for the newest page, or a `next_cursor`/`prev_cursor` of an earlier
    /// answer. Unlike [`Store::list_jobs`] the pages link both ways; both cursors are keyset
    /// positions, so the cost stays flat at any depth.
    pub async fn list_jobs_window(
        &self,
        project: ProjectId,
        selection: &JobSelection,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<JobWindow, StoreError> {
        let position = match cursor {
            None => Position::Newest,
            Some(c) if c.starts_with(OLDER_CURSOR) => Position::OlderThan(decode_int_cursor(OLDER_CURSOR, c)?),
            Some(c) => Position::NewerThan(decode_int_cursor(NEWER_CURSOR, c)?),
        };
        let limit = clamp_limit(limit);
        let pg = self.is_postgres();
        // The selection's clauses, numbered from $2 ($1 is the project); the page's position and
        // the neighbour checks add one more placeholder after them.
        let mut args: Vec<Arg> = Vec::new();
        let mut clauses = vec!["project_id = $1".to_owned()];
        if !selection.kinds.is_empty() {
            args.push(Arg::List(IdList(selection.kinds.iter().map(|k| k.as_str().to_owned()).collect())));
            clauses.push(in_list(pg, "kind", &format!("${}", args.len() + 1)));
        }
        if !selection.statuses.is_empty() {
            args.push(Arg::List(IdList(selection.statuses.iter().map(|s| s.as_str().to_owned()).collect())));
            clauses.push(in_list(pg, "status", &format!("${}", args.len() + 1)));
        }
        if let Some(catalog) = &selection.catalog {
            args.push(Arg::Text(catalog.clone()));
            clauses.push(format!("catalog_name = ${}", args.len() + 1));
        }
        let base = clauses.join(" AND ");
        let edge = format!("${}", args.len() + 2);
        let (page_sql, anchor) = match position {
            Position::Newest => {
                (format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {base} ORDER BY id DESC LIMIT {limit}"), None)
            }
            Position::OlderThan(id) => (
                format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {base} AND id < {edge} ORDER BY id DESC LIMIT {limit}"),
                Some(id),
            ),
            Position::NewerThan(id) => (
                format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {base} AND id > {edge} ORDER BY id ASC LIMIT {limit}"),
                Some(id),
            ),
        };
        let older_sql =
            format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM jobs WHERE {base} AND id < {edge} LIMIT 1) t");
        let newer_sql =
            format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM jobs WHERE {base} AND id > {edge} LIMIT 1) t");
        let (mut rows, has_older, has_newer) = with_db!(self.db(), pool => {
            let mut query = sqlx::query(&page_sql).bind(project.0);
            for arg in &args {
                query = arg.bind_to(query);
            }
            if let Some(anchor) = anchor {
                query = query.bind(anchor);
            }
            let rows = query.fetch_all(pool).await?.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
            let (oldest, newest) = match position {
                Position::NewerThan(_) => (rows.first().map(|j| j.id.0), rows.last().map(|j| j.id.0)),
                _ => (rows.last().map(|j| j.id.0), rows.first().map(|j| j.id.0)),
            };
            let mut exists = [false, false];
            for (slot, (sql, edge)) in [(&older_sql, oldest), (&newer_sql, newest)].into_iter().enumerate() {
                if let Some(edge) = edge {
                    let mut query = sqlx::query(sql).bind(project.0);
                    for arg in &args {
                        query = arg.bind_to(query);
                    }
                    exists[slot] = query.bind(edge).fetch_one(pool).await?.int("n")? > 0;
                }
            }
            (rows, exists[0], exists[1])
        });
        if matches!(position, Position::NewerThan(_)) {
            rows.reverse();
        }
        let next_cursor = match (has_older, rows.last()) {
            (true, Some(oldest)) => Some(encode_int_cursor(OLDER_CURSOR, oldest.id.0)),
            _ => None,
        };
        let prev_cursor = match (has_newer, rows.first()) {
            (true, Some(newest)) => Some(encode_int_cursor(NEWER_CURSOR, newest.id.0)),
            _ => None,
        };
        // Ids start at 1, so "newer than 0" read oldest first is the page of the oldest jobs.
        let last_cursor = (!rows.is_empty() || has_older || has_newer).then(|| encode_int_cursor(NEWER_CURSOR, 0));
        Ok(JobWindow { rows, next_cursor, prev_cursor, last_cursor })
    }

    /// The ids a job was created with, in request order: item ids for item jobs, category ids
    /// for category jobs. `None` once the job has finished and its payload was dropped, and for
    /// catalog deletes.
    pub async fn job_input_ids(&self, project: ProjectId, id: JobId) -> Result<Option<Vec<String>>, StoreError> {
        let (kind, payload) = with_db!(self.db(), pool => {
            let row = sqlx::query("SELECT kind FROM jobs WHERE id = $1 AND project_id = $2")
                .bind(id.0)
                .bind(project.0)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::JobNotFound(id.0))?;
            let parts = sqlx::query(PAYLOAD_PARTS).bind(id.0).fetch_all(pool).await?;
            (row.text("kind")?, joined_payload(&parts)?)
        });
        let kind = kind.parse::<JobKind>().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        payload.map(|payload| input_ids(id, kind, &payload)).transpose().map(Option::flatten)
    }

    /// The inputs and per-item errors of each job of `ids` that is the project's, in two
    /// statements whatever the number of jobs: a page of a hundred jobs costs what one does.
    pub async fn job_details(
        &self,
        project: ProjectId,
        ids: &[JobId],
    ) -> Result<HashMap<JobId, JobDetails>, StoreError> {
        let mut details: HashMap<JobId, JobDetails> = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(details);
        }
        let pg = self.is_postgres();
        let list = IntList(ids.iter().map(|id| id.0).collect());
        let member = |column: &str| {
            if pg {
                format!("{column} = ANY($2::bigint[])")
            } else {
                format!("{column} IN (SELECT value FROM json_each($2))")
            }
        };
        // Each job's payload in its parts (large SQLite payloads are cut, see `enqueue.rs`).
        let payloads_sql = format!(
            "SELECT j.id, j.kind, p.part, p.payload FROM jobs j
             JOIN (SELECT job_id, 0 AS part, payload FROM job_payloads
                   UNION ALL SELECT job_id, part, payload FROM job_payload_parts) p ON p.job_id = j.id
             WHERE j.project_id = $1 AND {}
             ORDER BY j.id, p.part",
            member("j.id")
        );
        let errors_sql = format!(
            "SELECT job_id, item_index, item_id, code, title, detail, pointer FROM (
                 SELECT e.*, ROW_NUMBER() OVER (PARTITION BY e.job_id ORDER BY e.item_index) AS n
                 FROM job_errors e JOIN jobs j ON j.id = e.job_id
                 WHERE j.project_id = $1 AND {}) numbered
             WHERE n <= $3 ORDER BY job_id, item_index",
            member("e.job_id")
        );
        let (payloads, errors) = with_db!(self.db(), pool => {
            let payload_rows = sqlx::query(&payloads_sql).bind(project.0).bind(list.clone()).fetch_all(pool).await?;
            let mut payloads: Vec<(JobId, String, String)> = Vec::new();
            for row in &payload_rows {
                let id = JobId(row.int("id")?);
                let text = row.text("payload")?;
                match payloads.last_mut() {
                    Some((last, _, joined)) if *last == id => joined.push_str(&text),
                    _ => payloads.push((id, row.text("kind")?, text)),
                }
            }
            let error_rows =
                sqlx::query(&errors_sql).bind(project.0).bind(list.clone()).bind(MAX_ERRORS_PER_JOB).fetch_all(pool).await?;
            let mut errors: Vec<(JobId, JobErrorRecord)> = Vec::with_capacity(error_rows.len());
            for row in &error_rows {
                errors.push((
                    JobId(row.int("job_id")?),
                    JobErrorRecord {
                        index: count(row.int("item_index")?),
                        item_id: row.opt_text("item_id")?,
                        code: row.text("code")?,
                        title: row.text("title")?,
                        detail: row.text("detail")?,
                        pointer: row.opt_text("pointer")?,
                    },
                ));
            }
            (payloads, errors)
        });
        for (id, kind, payload) in payloads {
            let kind = kind.parse::<JobKind>().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            details.entry(id).or_default().inputs = input_ids(id, kind, &payload)?;
        }
        for (id, error) in errors {
            details.entry(id).or_default().errors.push(error);
        }
        Ok(details)
    }

    /// The items of `ids` in the catalog `catalog`, in the order of `ids`; ids that name no item
    /// are left out.
    pub async fn get_items(&self, project: ProjectId, catalog: &str, ids: &[String]) -> Result<Vec<Item>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = self.find_catalog(project, catalog).await?;
        let sql = format!(
            "SELECT item_id, fields, created_at, updated_at FROM items WHERE catalog_id = $1 AND {}",
            in_list(self.is_postgres(), "item_id", "$2")
        );
        let list = IdList(ids.to_vec());
        let mut found: HashMap<String, Item> = with_db!(self.db(), pool => {
            let rows = sqlx::query(&sql).bind(catalog.id.0).bind(list.clone()).fetch_all(pool).await?;
            let mut found = HashMap::with_capacity(rows.len());
            for row in &rows {
                let item = crate::catalogs::item_from_row(row)?;
                found.insert(item.id.clone(), item);
            }
            found
        });
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The categories of `ids` in the catalog `catalog`, in the order of `ids`, with their item
    /// ids; ids that name no category are left out.
    pub async fn get_categories(
        &self,
        project: ProjectId,
        catalog: &str,
        ids: &[String],
    ) -> Result<Vec<Category>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = self.find_catalog(project, catalog).await?;
        let pg = self.is_postgres();
        let categories_sql = format!(
            "SELECT category_id, external_id, name, created_at, updated_at FROM categories
             WHERE catalog_id = $1 AND {}",
            in_list(pg, "category_id", "$2")
        );
        let members_sql = format!(
            "SELECT category_id, item_id FROM category_items WHERE catalog_id = $1 AND {} ORDER BY category_id, item_id",
            in_list(pg, "category_id", "$2")
        );
        let list = IdList(ids.to_vec());
        let (mut found, members) = with_db!(self.db(), pool => {
            let rows = sqlx::query(&categories_sql).bind(catalog.id.0).bind(list.clone()).fetch_all(pool).await?;
            let mut found: HashMap<String, Category> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let category = crate::catalogs::category_from_row(row)?;
                found.insert(category.id.clone(), category);
            }
            let rows = sqlx::query(&members_sql).bind(catalog.id.0).bind(list.clone()).fetch_all(pool).await?;
            let members =
                rows.iter().map(|r| Ok((r.text("category_id")?, r.text("item_id")?))).collect::<Result<Vec<_>, StoreError>>()?;
            (found, members)
        });
        for (category_id, item_id) in members {
            if let Some(category) = found.get_mut(&category_id) {
                category.item_ids.push(item_id);
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }
}

/// The input ids of a job's payload, in request order; `None` for kinds whose payload names no
/// items or categories (catalog deletes).
fn input_ids(id: JobId, kind: JobKind, payload: &str) -> Result<Option<Vec<String>>, StoreError> {
    let bad = |e: serde_json::Error| StoreError::Corrupt(format!("job {} payload: {e}", id.0));
    match kind {
        JobKind::ItemBulkDelete | JobKind::CategoryBulkDelete => {
            serde_json::from_str::<Vec<String>>(payload).map(Some).map_err(bad)
        }
        JobKind::ItemBulkUpsert | JobKind::ItemBulkCreate | JobKind::ItemBulkPatch => {
            let mut rows: Vec<ItemRow> = serde_json::from_str(payload).map_err(bad)?;
            // Stored in id order for page locality; each row keeps its request index.
            rows.sort_by_key(|row| row.0);
            Ok(Some(rows.into_iter().map(|row| row.1).collect()))
        }
        JobKind::CategoryBulkUpdate | JobKind::CategoryBulkUpsert | JobKind::CategoryBulkCreate => {
            let mut rows: Vec<CategoryRow> = serde_json::from_str(payload).map_err(bad)?;
            // The payload may be stored sorted for page locality; the request order is kept
            // in each row's index.
            rows.sort_by_key(|row| row.index);
            Ok(Some(rows.into_iter().map(|row| row.id).collect()))
        }
        JobKind::CatalogDelete => Ok(None),
    }
}
