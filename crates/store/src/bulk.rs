//! Bulk changes: validate through catalog-domain, then create the job and its whole payload in
//! one insert (DESIGN §3–4). Nothing here touches items; the runner applies the payload.

use crate::db::{now_ms, to_i64, with_db, RowExt};
use crate::enqueue::{key_live, Inserted, NewJob};
use crate::error::StoreError;
use crate::jobs::{job_from_row, JOB_COLUMNS};
use crate::model::{ApiKeyId, BulkOutcome, CategoryInput, ItemInput, Job, JobOptions, ProjectId};
use crate::store::Store;
use catalog_domain::storable::{check_item_bytes, check_member, check_text, has_nul, push_pointer_token, Unstorable};
use catalog_domain::{check_id, validate_ids, Dialect, IdProblem, IdVerdict, JobKind, JobState, RawId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `flags` bit: a patch creates the items it does not find.
pub(crate) const FLAG_CREATE_MISSING: i64 = 1;
/// `flags` bit: the insert refuses the job when its project is at the cap on jobs in progress
/// (the cap's trigger, migration 0011 on SQLite and 0012 on PostgreSQL; see [`JobOptions::in_progress_cap`]). The runner ignores it.
pub(crate) const FLAG_IN_PROGRESS_CAP: i64 = 2;

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
    /// Digest of the request's inputs, for idempotency (only when the request has a key).
    input_hash: Option<Sha256>,
    payload: String,
    total: usize,
    flags: i64,
}

/// Feeds a request into SHA-256 in an unambiguous form (every field tagged or length-prefixed), so
/// two requests hash alike exactly when they ask for the same thing. Streaming keeps a 10,000-id
/// request from being copied into a canonical document first.
struct RequestHasher(Sha256);

impl RequestHasher {
    fn new(tag: &str) -> Self {
        let mut h = RequestHasher(Sha256::new());
        h.str(tag);
        h
    }

    fn str(&mut self, s: &str) {
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.update([1]);
                self.str(s);
            }
            None => self.0.update([0]),
        }
    }

    fn raw_id(&mut self, raw: &RawId) {
        match raw {
            RawId::String(s) => {
                self.0.update([0]);
                self.str(s);
            }
            RawId::NotAString => self.0.update([1]),
            RawId::Missing => self.0.update([2]),
        }
    }

    /// A JSON object; serde_json's map is ordered by key, so equal objects write equal bytes.
    fn fields(&mut self, fields: &Map<String, Value>) {
        let text = serde_json::to_string(fields).unwrap_or_default();
        self.str(&text);
    }
}

/// Payloads of at least this many rows are measured before they are written (see [`to_json`]).
const MEASURED_PAYLOAD_ROWS: usize = 1_000;

/// Encodes a payload's rows. A large payload goes into a string allocated at its exact length,
/// measured by a first pass: it can be 10 MB, and grown by doubling its string would touch about
/// twice that, each step copied into the next, while the request's parsed items are still held.
/// A small one (the common request) is written once, growth being cheaper than a second pass.
fn to_json<T: Serialize>(rows: &[T]) -> Result<String, StoreError> {
    let failed = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("cannot encode payload: {e}"));
    if rows.len() < MEASURED_PAYLOAD_ROWS {
        return serde_json::to_string(rows).map_err(|e| failed(&e));
    }
    let mut length = ByteCount(0);
    serde_json::to_writer(&mut length, rows).map_err(|e| failed(&e))?;
    let mut bytes = Vec::with_capacity(length.0);
    serde_json::to_writer(&mut bytes, rows).map_err(|e| failed(&e))?;
    String::from_utf8(bytes).map_err(|e| failed(&e))
}

/// A writer that only counts what it is given.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What in an item's fields no backend can store: a NUL in a name or a string at any depth (the
/// first one found, with its pointer), or fields over the size limit (catalog-domain's
/// `storable`). Nesting is bounded by the JSON parser's depth limit.
fn unstorable_fields(fields: &Map<String, Value>) -> Option<IdProblem> {
    fn nul_in(value: &Value, pointer: &mut String) -> bool {
        match value {
            Value::String(text) => has_nul(text),
            Value::Array(values) => values.iter().enumerate().any(|(index, value)| {
                let len = pointer.len();
                push_pointer_token(pointer, &index.to_string());
                let found = nul_in(value, pointer);
                if !found {
                    pointer.truncate(len);
                }
                found
            }),
            Value::Object(map) => nul_in_map(map, pointer),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    fn nul_in_map(map: &Map<String, Value>, pointer: &mut String) -> bool {
        map.iter().any(|(key, value)| {
            let len = pointer.len();
            push_pointer_token(pointer, key);
            let found = has_nul(key) || nul_in(value, pointer);
            if !found {
                pointer.truncate(len);
            }
            found
        })
    }
    let mut pointer = String::new();
    if nul_in_map(fields, &mut pointer) {
        return Some(Unstorable::NulInFields { pointer }.into());
    }
    let mut size = ByteCount(0);
    // Writing a map of strings into a counter cannot fail; were it to, the size is not refused.
    serde_json::to_writer(&mut size, fields).ok()?;
    check_item_bytes(size.0).err().map(IdProblem::from)
}

/// What in a category no backend can store: a NUL in its name or external id, the two together
/// over an item's size limit, or an item id the dialect refuses.
fn unstorable_category(dialect: Dialect, category: &CategoryInput) -> Result<(), IdProblem> {
    let name = category.name.as_deref().unwrap_or_default();
    let external_id = category.external_id.as_deref().unwrap_or_default();
    check_member("name", name)?;
    check_member("external_id", external_id)?;
    check_item_bytes(name.len() + external_id.len())?;
    let members = category.item_ids.as_deref().unwrap_or_default();
    members.iter().try_for_each(|item| check_id(dialect, item))
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
        self.bulk_items(project, catalog, dialect, JobKind::ItemBulkUpsert, items, false, None, options).await
    }

    /// Creates items that do not exist yet (a create-only job, `item_bulk_create`): an input
    /// whose item exists when the job applies it — stored before, or created by an earlier input
    /// of the job — fails alone (`already_exists`) and leaves the item as it is.
    pub async fn bulk_create_items(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        items: Vec<ItemInput>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        self.bulk_items(project, catalog, dialect, JobKind::ItemBulkCreate, items, false, None, options).await
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
        self.bulk_items(project, catalog, dialect, JobKind::ItemBulkPatch, items, create_missing, None, options).await
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

    /// Creates categories that do not exist yet (`category_bulk_create`), with their external id,
    /// name and item set: an input whose category exists when the job applies it fails alone
    /// (`already_exists`) and leaves the category as it is.
    pub async fn bulk_create_categories(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        categories: Vec<CategoryInput>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        self.bulk_categories(project, catalog, dialect, JobKind::CategoryBulkCreate, categories, options).await
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
        let input_hash = options.idempotency_key.as_ref().map(|_| {
            let mut h = RequestHasher::new("ids");
            ids.iter().for_each(|id| h.raw_id(id));
            h.0
        });
        let verdicts = verdicts(dialect, ids, |_| Ok(()))?;
        let mut valid: Vec<&String> = verdicts.iter().filter_map(|v| v.as_ref().ok()).collect();
        // Stored in id order: the runner's consecutive chunks then walk the clustered key in one
        // pass, touching each page once per job rather than once per chunk.
        valid.sort_unstable();
        let payload = to_json(&valid)?;
        let total = valid.len();
        self.create_job(project, catalog, options, Prepared { kind, verdicts, input_hash, payload, total, flags: 0 })
            .await
    }

    /// `directives`, when given, holds one map per input that is added to its fields after they
    /// were checked (`facade_support`: a patch's per-input directives, under keys no input can
    /// carry).
    #[allow(clippy::too_many_arguments)] // the public calls above keep their lists short
    pub(crate) async fn bulk_items(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        kind: JobKind,
        items: Vec<ItemInput>,
        create_missing: bool,
        directives: Option<Vec<Map<String, Value>>>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        let input_hash = options.idempotency_key.as_ref().map(|_| {
            let mut h = RequestHasher::new(if create_missing { "items+create" } else { "items" });
            for (index, item) in items.iter().enumerate() {
                h.raw_id(&item.id);
                h.fields(&item.fields);
                if let Some(directive) = directives.as_ref().and_then(|d| d.get(index)) {
                    h.fields(directive);
                }
            }
            h.0
        });
        let (ids, fields): (Vec<RawId>, Vec<Map<String, Value>>) = items.into_iter().map(|i| (i.id, i.fields)).unzip();
        let verdicts = verdicts(dialect, ids, |index| match fields.get(index).and_then(unstorable_fields) {
            Some(problem) => Err(problem),
            None => Ok(()),
        })?;
        let mut directives = directives.map(Vec::into_iter);
        let mut rows: Vec<ItemRow> = verdicts
            .iter()
            .zip(fields)
            .enumerate()
            .filter_map(|(index, (verdict, mut fields))| {
                if let Some(directive) = directives.as_mut().and_then(Iterator::next) {
                    fields.extend(directive);
                }
                verdict.as_ref().ok().map(|id| (index as u64, id.clone(), fields))
            })
            .collect();
        // Id order for page locality; each row keeps its request index for error reports. A stable
        // sort keeps Bloomreach's repeated ids in request order (the last one wins).
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        let payload = to_json(&rows)?;
        let total = rows.len();
        // The fields now live in `payload`: free them before the insert is awaited, so a 10 MB
        // request holds one copy while it waits for its commit, not two.
        drop(rows);
        let flags = if create_missing { FLAG_CREATE_MISSING } else { 0 };
        self.create_job(project, catalog, options, Prepared { kind, verdicts, input_hash, payload, total, flags }).await
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
        let input_hash = options.idempotency_key.as_ref().map(|_| {
            let mut h = RequestHasher::new("categories");
            for c in &categories {
                h.raw_id(&c.id);
                h.opt_str(c.external_id.as_deref());
                h.opt_str(c.name.as_deref());
                match &c.item_ids {
                    Some(ids) => {
                        h.0.update((ids.len() as u64 + 1).to_le_bytes());
                        ids.iter().for_each(|id| h.str(id));
                    }
                    None => h.0.update(0u64.to_le_bytes()),
                }
            }
            h.0
        });
        let ids: Vec<RawId> = categories.iter().map(|c| c.id.clone()).collect();
        // A category whose item set holds a bad item id is refused as a whole.
        let item_problem = |index: usize| -> Result<(), IdProblem> {
            categories.get(index).map_or(Ok(()), |category| unstorable_category(dialect, category))
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
        drop(rows);
        self.create_job(project, catalog, options, Prepared { kind, verdicts, input_hash, payload, total, flags: 0 })
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
        let Prepared { kind, verdicts, input_hash, payload, total, mut flags } = prepared;
        if options.in_progress_cap {
            flags |= FLAG_IN_PROGRESS_CAP;
        }
        // The facades check these too; a job whose row the database refuses must never be queued.
        for (field, text) in [("description", &options.description), ("reference_id", &options.reference_id)] {
            if let Some(text) = text {
                check_text(field, text).map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
            }
        }
        // A rejected request creates nothing (and so never claims its idempotency key).
        if options.atomic && verdicts.iter().any(Result::is_err) {
            return Err(StoreError::InvalidItems { results: verdicts });
        }
        if total == 0 {
            return Err(StoreError::NoValidItems { results: verdicts });
        }
        // The hash covers what the job will do: kind, catalog, inputs and options (the key
        // itself aside). Only requests with a key are hashed.
        let request_hash = input_hash.map(|mut h| {
            let mut request = RequestHasher(Sha256::new());
            request.str(kind.as_str());
            request.str(catalog);
            request.opt_str(options.start_at.map(|t| t.to_string()).as_deref());
            request.opt_str(options.description.as_deref());
            request.opt_str(options.reference_id.as_deref());
            request.0.update([u8::from(options.atomic)]);
            // Only when set, so that the hashes of requests stored before the cap existed still
            // match their retries.
            if options.in_progress_cap {
                request.0.update([1]);
            }
            h.update(request.0.finalize());
            crate::util::hex(&h.finalize())
        });
        if let (Some(key), Some(hash)) = (&options.idempotency_key, &request_hash) {
            if let Some(job) = self.replay(project, key, hash, options.requested_by).await? {
                return Ok(BulkOutcome { job: Some(job), replayed: true, results: verdicts });
            }
        }
        let catalog_row = self.find_catalog_cached(project, catalog).await?;
        let now = now_ms();
        let scheduled = options.start_at.is_some_and(|at| at > now);
        let status = JobState::new(total as u64, scheduled).status;
        let mut job = NewJob {
            project_id: project.0,
            catalog_id: catalog_row.id.0,
            catalog_name: catalog_row.name,
            kind,
            status,
            total_count: to_i64(total),
            flags,
            payload,
            description: options.description.clone(),
            reference_id: options.reference_id.clone(),
            idempotency_key: options.idempotency_key.clone(),
            request_hash: request_hash.clone(),
            created_at: now,
            start_at: options.start_at,
            requested_by: options.requested_by.map(|key| key.0),
        };
        // The catalog may come from the cache; the insert re-checks it. When it was deleted
        // meanwhile, one fresh lookup finds a catalog re-created under the same name, if any.
        let mut refreshed = false;
        loop {
            // The job and its payload are created together or not at all (DESIGN §3), committed
            // with whatever other requests are waiting (group commit, see `enqueue.rs`).
            let (inserted, returned) = match self.inner.enqueuer.insert(job).await {
                Ok(answer) => answer,
                Err(error) if crate::error::is_in_progress_cap(&error) => {
                    return Err(StoreError::TooManyJobsInProgress {
                        max: catalog_domain::klaviyo::MAX_JOBS_IN_PROGRESS,
                    })
                }
                Err(error) => return Err(error),
            };
            match inserted {
                Inserted::Created(created) => {
                    if !scheduled {
                        self.wake_runners();
                    }
                    return Ok(BulkOutcome { job: Some(*created), replayed: false, results: verdicts });
                }
                // The same key was inserted concurrently by a twin request: answer as a replay.
                Inserted::KeyTaken => {
                    let (Some(key), Some(hash)) = (&options.idempotency_key, &request_hash) else {
                        return Err(StoreError::Corrupt("a job without idempotency key conflicted".into()));
                    };
                    return match self.replay(project, key, hash, options.requested_by).await? {
                        Some(job) => Ok(BulkOutcome { job: Some(job), replayed: true, results: verdicts }),
                        None => Err(StoreError::Corrupt("idempotency conflict without a job".into())),
                    };
                }
                Inserted::KeyRevoked => {
                    if let Some(key) = options.requested_by {
                        self.forget_api_key(key);
                    }
                    return Err(StoreError::ApiKeyRevoked);
                }
                Inserted::CatalogGone => {
                    self.forget_catalog(project, catalog);
                    if refreshed {
                        return Err(StoreError::CatalogNotFound(catalog.to_owned()));
                    }
                    let fresh = self.find_catalog_cached(project, catalog).await?;
                    job = NewJob { catalog_id: fresh.id.0, catalog_name: fresh.name, ..returned };
                    refreshed = true;
                }
            }
        }
    }

    /// The job created earlier with `key`: `Some` when its request hash matches, an error when it
    /// does not, `None` when the key is new, or when `requested_by` was revoked (the insert that
    /// follows then refuses it).
    async fn replay(
        &self,
        project: ProjectId,
        key: &str,
        request_hash: &str,
        requested_by: Option<ApiKeyId>,
    ) -> Result<Option<Job>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE project_id = $1 AND idempotency_key = $2 AND {}",
            key_live("$3", "")
        );
        with_db!(self.db(), pool => {
            let row = sqlx::query(&sql).bind(project.0).bind(key).bind(requested_by.map(|k| k.0)).fetch_optional(pool).await?;
            match row {
                None => Ok(None),
                Some(row) if row.opt_text("request_hash")?.as_deref() == Some(request_hash) => Ok(Some(job_from_row(&row)?)),
                Some(_) => Err(StoreError::IdempotencyKeyReused),
            }
        })
    }
}
