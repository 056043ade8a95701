//! Bulk changes: validate through catalog-domain, then create the job and its whole payload in
//! one insert (DESIGN §3–4). Nothing here touches items; the runner applies the payload.

use crate::db::{now_ms, to_i64, with_db, RowExt};
use crate::error::StoreError;
use crate::jobs::{job_from_row, JOB_COLUMNS};
use crate::model::{BulkOutcome, CategoryInput, ItemInput, Job, JobOptions, ProjectId};
use crate::store::Store;
use crate::util::sha256_hex;
use catalog_domain::{check_id, validate_ids, Dialect, IdProblem, IdVerdict, JobKind, JobStatus, RawId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// `flags` bit: a patch creates the items it does not find.
pub(crate) const FLAG_CREATE_MISSING: i64 = 1;

/// One item of an upsert/patch payload: request index, id, fields.
pub(crate) type ItemRow = (u64, String, Map<String, Value>);

/// One category of an upsert/update payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CategoryRow {
    /// Index of the input in the request.
    #[serde(rename = "i")]
    pub index: u64,
    /// Category id.
    #[serde(rename = "c")]
    pub id: String,
    /// External id; `None` keeps (update) or clears (upsert).
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Name; `None` keeps (update) or clears (upsert).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Item set; `None` keeps (update) or empties (upsert).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub item_ids: Option<Vec<String>>,
}

/// A validated request, ready to become a job.
struct Prepared {
    kind: JobKind,
    verdicts: Vec<IdVerdict>,
    /// The request in a canonical form, hashed for idempotency.
    canonical: Value,
    payload: String,
    total: usize,
    flags: i64,
}

fn raw_id_json(raw: &RawId) -> Value {
    match raw {
        RawId::String(s) => Value::String(s.clone()),
        RawId::NotAString => json!({ "not_a_string": true }),
        RawId::Missing => Value::Null,
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode payload: {e}")))
}

/// Validates ids; `extra` may refuse a valid id for a reason of its own input (e.g. a bad item id
/// inside a category).
fn verdicts(
    dialect: Dialect,
    ids: Vec<RawId>,
    extra: impl Fn(usize) -> Result<(), IdProblem>,
) -> Result<Vec<IdVerdict>, StoreError> {
    let mut verdicts = validate_ids(dialect, ids)?;
    for (index, verdict) in verdicts.iter_mut().enumerate() {
        if verdict.is_ok() {
            if let Err(problem) = extra(index) {
                *verdict = Err(problem);
            }
        }
    }
    Ok(verdicts)
}

impl Store {
    /// Deletes items by id. A missing item counts as deleted.
    pub async fn bulk_delete_items(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        ids: Vec<RawId>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        self.bulk_ids(project, catalog, dialect, JobKind::ItemBulkDelete, ids, options).await
    }

    /// Deletes categories by id (their item sets with them). A missing one counts as deleted.
    pub async fn bulk_delete_categories(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        ids: Vec<RawId>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        self.bulk_ids(project, catalog, dialect, JobKind::CategoryBulkDelete, ids, options).await
    }

    /// Creates items or replaces all their fields.
    pub async fn bulk_upsert_items(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        items: Vec<ItemInput>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        self.bulk_items(project, catalog, dialect, JobKind::ItemBulkUpsert, items, false, options).await
    }

    /// Merges the given top-level fields into existing items. A missing item is a per-item failure,
    /// unless `create_missing`, which creates it with these fields.
    pub async fn bulk_patch_items(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        items: Vec<ItemInput>,
        create_missing: bool,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        self.bulk_items(project, catalog, dialect, JobKind::ItemBulkPatch, items, create_missing, options).await
    }

    /// Creates categories or replaces them (external id, name and item set).
    pub async fn bulk_upsert_categories(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        categories: Vec<CategoryInput>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        self.bulk_categories(project, catalog, dialect, JobKind::CategoryBulkUpsert, categories, options).await
    }

    /// Changes existing categories: the fields given replace the current ones; a missing category
    /// is a per-item failure.
    pub async fn bulk_update_categories(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        categories: Vec<CategoryInput>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        self.bulk_categories(project, catalog, dialect, JobKind::CategoryBulkUpdate, categories, options).await
    }

    async fn bulk_ids(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        kind: JobKind,
        ids: Vec<RawId>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        let canonical = Value::Array(ids.iter().map(raw_id_json).collect());
        let verdicts = verdicts(dialect, ids, |_| Ok(()))?;
        let mut valid: Vec<&String> = verdicts.iter().filter_map(|v| v.as_ref().ok()).collect();
        // Stored in id order: the runner's consecutive chunks then walk the clustered key in one
        // pass, touching each page once per job rather than once per chunk.
        valid.sort_unstable();
        let payload = to_json(&valid)?;
        let total = valid.len();
        self.create_job(project, catalog, options, Prepared { kind, verdicts, canonical, payload, total, flags: 0 })
            .await
    }

    #[allow(clippy::too_many_arguments)] // the public calls above keep their lists short
    async fn bulk_items(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        kind: JobKind,
        items: Vec<ItemInput>,
        create_missing: bool,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        let canonical = json!({
            "items": items.iter().map(|i| json!([raw_id_json(&i.id), i.fields])).collect::<Vec<_>>(),
            "create_missing": create_missing,
        });
        let (ids, fields): (Vec<RawId>, Vec<Map<String, Value>>) = items.into_iter().map(|i| (i.id, i.fields)).unzip();
        let verdicts = verdicts(dialect, ids, |_| Ok(()))?;
        let mut rows: Vec<ItemRow> = verdicts
            .iter()
            .zip(fields)
            .enumerate()
            .filter_map(|(index, (verdict, fields))| verdict.as_ref().ok().map(|id| (index as u64, id.clone(), fields)))
            .collect();
        // Id order for page locality; each row keeps its request index for error reports. A stable
        // sort keeps Bloomreach's repeated ids in request order (the last one wins).
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        let payload = to_json(&rows)?;
        let total = rows.len();
        let flags = if create_missing { FLAG_CREATE_MISSING } else { 0 };
        self.create_job(project, catalog, options, Prepared { kind, verdicts, canonical, payload, total, flags }).await
    }

    async fn bulk_categories(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        kind: JobKind,
        categories: Vec<CategoryInput>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        let canonical = Value::Array(
            categories.iter().map(|c| json!([raw_id_json(&c.id), c.external_id, c.name, c.item_ids])).collect(),
        );
        let ids: Vec<RawId> = categories.iter().map(|c| c.id.clone()).collect();
        // A category whose item set holds a bad item id is refused as a whole.
        let item_problem = |index: usize| -> Result<(), IdProblem> {
            let members = categories.get(index).and_then(|c| c.item_ids.as_deref()).unwrap_or_default();
            members.iter().try_for_each(|item| check_id(dialect, item))
        };
        let verdicts = verdicts(dialect, ids, item_problem)?;
        let mut rows: Vec<CategoryRow> = verdicts
            .iter()
            .zip(categories)
            .enumerate()
            .filter_map(|(index, (verdict, c))| {
                verdict.as_ref().ok().map(|id| {
                    let item_ids = c.item_ids.map(|mut ids| {
                        ids.sort();
                        ids.dedup();
                        ids
                    });
                    CategoryRow {
                        index: index as u64,
                        id: id.clone(),
                        external_id: c.external_id,
                        name: c.name,
                        item_ids,
                    }
                })
            })
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let payload = to_json(&rows)?;
        let total = rows.len();
        self.create_job(project, catalog, options, Prepared { kind, verdicts, canonical, payload, total, flags: 0 })
            .await
    }

    /// Creates the job of a validated request, or finds the one an identical earlier request with
    /// the same idempotency key created.
    async fn create_job(
        &self,
        project: ProjectId,
        catalog: &str,
        options: &JobOptions,
        prepared: Prepared,
    ) -> Result<BulkOutcome, StoreError> {
        let Prepared { kind, verdicts, canonical, payload, total, flags } = prepared;
        // A rejected request creates nothing (and so never claims its idempotency key).
        if options.atomic && verdicts.iter().any(Result::is_err) {
            return Err(StoreError::InvalidItems { results: verdicts });
        }
        if total == 0 {
            return Err(StoreError::NoValidItems { results: verdicts });
        }
        let request_hash = sha256_hex(
            json!({
                "kind": kind.as_str(),
                "catalog": catalog,
                "input": canonical,
                "start_at": options.start_at,
                "description": options.description,
                "reference_id": options.reference_id,
                "atomic": options.atomic,
            })
            .to_string()
            .as_bytes(),
        );
        if let Some(key) = &options.idempotency_key {
            if let Some(job) = self.replay(project, key, &request_hash).await? {
                return Ok(BulkOutcome { job: Some(job), replayed: true, results: verdicts });
            }
        }
        let catalog_row = self.find_catalog(project, catalog).await?;
        let now = now_ms();
        let scheduled = options.start_at.is_some_and(|at| at > now);
        let status = if scheduled { JobStatus::Scheduled } else { JobStatus::Queued };
        let insert = format!(
            "INSERT INTO jobs (project_id, catalog_id, catalog_name, kind, status, total_count, flags, payload,
                 description, reference_id, idempotency_key, request_hash, created_at, updated_at, start_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)
             ON CONFLICT (project_id, idempotency_key) DO NOTHING
             RETURNING {JOB_COLUMNS}"
        );
        let inserted = with_db!(self.db(), pool => {
            let row = sqlx::query(&insert)
                .bind(project.0)
                .bind(catalog_row.id.0)
                .bind(&catalog_row.name)
                .bind(kind.as_str())
                .bind(status.as_str())
                .bind(to_i64(total))
                .bind(flags)
                .bind(&payload)
                .bind(options.description.as_deref())
                .bind(options.reference_id.as_deref())
                .bind(options.idempotency_key.as_deref())
                .bind(&request_hash)
                .bind(now)
                .bind(options.start_at)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(job_from_row).transpose()?
        });
        match inserted {
            Some(job) => {
                if !scheduled {
                    self.wake_runners();
                }
                Ok(BulkOutcome { job: Some(job), replayed: false, results: verdicts })
            }
            // The same key was inserted concurrently by a twin request: answer as a replay.
            None => match &options.idempotency_key {
                Some(key) => match self.replay(project, key, &request_hash).await? {
                    Some(job) => Ok(BulkOutcome { job: Some(job), replayed: true, results: verdicts }),
                    None => Err(StoreError::Corrupt("idempotency conflict without a job".into())),
                },
                None => Err(StoreError::Corrupt("job insert returned nothing".into())),
            },
        }
    }

    /// The job created earlier with `key`: `Some` when its request hash matches, an error when it
    /// does not, `None` when the key is new.
    async fn replay(&self, project: ProjectId, key: &str, request_hash: &str) -> Result<Option<Job>, StoreError> {
        let sql =
            format!("SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE project_id = $1 AND idempotency_key = $2");
        with_db!(self.db(), pool => {
            let row = sqlx::query(&sql).bind(project.0).bind(key).fetch_optional(pool).await?;
            match row {
                None => Ok(None),
                Some(row) if row.opt_text("request_hash")?.as_deref() == Some(request_hash) => Ok(Some(job_from_row(&row)?)),
                Some(_) => Err(StoreError::IdempotencyKeyReused),
            }
        })
    }
}
