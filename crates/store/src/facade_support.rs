//! Reads and writes the vendor facades need and the native API does not: a cheap catalog lookup
//! (so a facade can answer its dialect's "not found" before it reads a body or spends a
//! rate-limit token), every catalog with its item count in one statement (Braze's `GET /catalogs`
//! shows `num_items`), an offset page of items (Bloomreach pages with `count` and `skip`), a page
//! of items that knows the page before it (Braze's `Link: rel="prev"`), and the fields a catalog
//! was declared with (migration 0012 on SQLite, 0013 on PostgreSQL: Braze shows them and checks items against them).

use crate::catalogs::{catalog_from_row, parse_fields};
use crate::db::{count, now_ms, to_i64, with_db, Flavor, RowExt};
use crate::error::StoreError;
use crate::model::{BulkOutcome, ItemInput, JobOptions};
use crate::model::{Catalog, CatalogId, Item, ProjectId};
use crate::store::Store;
use crate::util::{decode_text_cursor, encode_text_cursor};
use catalog_domain::apply::{array_add_remove, patch_fields, InputFailure};
use catalog_domain::{validate_catalog_name, Dialect, JobKind};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Payload key of a patch input's own "create it when missing" (Bloomreach's per-item `upsert`).
/// Every key of a directive starts with a NUL, which no input can carry (the store refuses a NUL
/// anywhere in an input's fields), so a directive is never taken for data, nor data for one.
const CREATE_DIRECTIVE: &str = "\u{0}create";
/// Payload key of a field's array operators (Braze's `$add` / `$remove`): its value is
/// `{"add": [...], "remove": [...]}`.
const ARRAY_DIRECTIVE: &str = "\u{0}array";

/// One input of [`Store::bulk_patch_items_with_directives`]: the fields to merge, and what the
/// plain merge cannot say.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchInput {
    /// The id and the top-level fields to set.
    pub item: ItemInput,
    /// Create the item when it is missing (else the input fails).
    pub create_missing: bool,
    /// Array fields to change in place: (field, values to add, values to remove).
    pub array_ops: Vec<(String, Vec<Value>, Vec<Value>)>,
}

/// An item's fields after a patch input, as the runner applies it: catalog-domain's
/// `patch_fields`, with an input's directives (if the facade gave any) taking effect: its own
/// create flag, and its array operators (`array_add_remove`) on the fields they name.
pub(crate) fn merge_patch(
    current: Option<Map<String, Value>>,
    patch: &Map<String, Value>,
    create_missing: bool,
) -> Result<Map<String, Value>, InputFailure> {
    let create_missing = match patch.get(CREATE_DIRECTIVE) {
        Some(Value::Bool(create)) => *create,
        _ => create_missing,
    };
    let plain = patch.iter().filter(|(k, _)| !k.starts_with('\u{0}')).map(|(k, v)| (k.clone(), v.clone()));
    let mut merged = patch_fields(current, plain, create_missing)?;
    if let Some(Value::Object(fields)) = patch.get(ARRAY_DIRECTIVE) {
        for (name, ops) in fields {
            let list = |key: &str| ops.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
            let current = merged.get(name).and_then(Value::as_array).map(Vec::as_slice);
            let next = array_add_remove(current, &list("add"), &list("remove"));
            merged.insert(name.clone(), Value::Array(next));
        }
    }
    Ok(merged)
}

/// One declared field of a catalog: its name and its type word, as the facade that declared it
/// spells it (Braze: `string`, `number`, `boolean`, `time`, ...). The store keeps the word; the
/// rule of what a type accepts is catalog-domain's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogField {
    /// The field's name.
    pub name: String,
    /// Its type word.
    pub field_type: String,
    /// Whether a search looks in it (Bloomreach's `searchable`; `None` where the dialect has no
    /// such notion).
    pub searchable: Option<bool>,
}

fn field_from_row(row: &impl RowExt) -> Result<CatalogField, StoreError> {
    Ok(CatalogField {
        name: row.text("name")?,
        field_type: row.text("type")?,
        searchable: row.opt_int("searchable")?.map(|flag| flag != 0),
    })
}

/// What [`Store::search_items`] looks for: items whose id (with `in_id`) or value of one of
/// `fields` (any top-level field when `None`) contains `query` (ASCII case-insensitive; every item
/// when `None`), in id order or its reverse, `skip` of them skipped and at most `limit` returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemSearch {
    /// Text to look for.
    pub query: Option<String>,
    /// The fields to look in (`None`: all of them; empty: none).
    pub fields: Option<Vec<String>>,
    /// Whether the item id is looked in too.
    pub in_id: bool,
    /// Newest id first (descending id order).
    pub descending: bool,
    /// Matches skipped.
    pub skip: u64,
    /// Most matches returned.
    pub limit: u32,
}

/// A page of [`Store::search_items`].
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// The items of the page.
    pub rows: Vec<Item>,
    /// Items that match.
    pub matched: u64,
    /// Items in the catalog.
    pub total: u64,
}

/// A page of items that can also say where the page before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemWindow {
    /// The items, in id order.
    pub rows: Vec<Item>,
    /// The cursor of the page before this one: `Some(None)` when it is the first page (no cursor
    /// needed), `None` when this page is the first.
    pub prev_cursor: Option<Option<String>>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
}

/// Tag of the cursors of [`Store::list_items_window`]: the id its page starts at (inclusive),
/// unlike the native list's cursor (the id after which it starts).
const WINDOW_CURSOR: char = 'w';

/// Most catalogs [`Store::list_catalogs_with_counts`] returns; a project has few catalogs, and
/// the cap keeps one request bounded whatever happens.
pub(crate) const MAX_CATALOGS_LISTED: u32 = 10_000;

/// Largest page [`Store::list_items_offset`] returns.
pub(crate) const MAX_OFFSET_PAGE: u32 = 1_000;

/// The insert of one declared field (the same SQL on both backends).
macro_rules! insert_field_query {
    () => {
        "INSERT INTO catalog_fields (catalog_id, name, type, position, searchable) VALUES ($1, $2, $3, $4, $5)"
    };
}

/// Binds [`insert_field_query`] for `field` of `catalog` at `position`.
fn insert_field<'q, DB: sqlx::Database>(
    catalog: CatalogId,
    field: &'q CatalogField,
    position: i64,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(insert_field_query!())
        .bind(catalog.0)
        .bind(field.name.as_str())
        .bind(field.field_type.as_str())
        .bind(position)
        .bind(field.searchable.map(i64::from))
}

impl Store {
    /// A patch job (`item_bulk_patch`) whose inputs carry what the plain patch cannot: each its
    /// own create flag and its array operators. One job, one transaction, like every bulk call;
    /// the ids and fields are checked as [`Store::bulk_patch_items`] checks them; the operators'
    /// values are the caller's to check (Braze's value rules refuse a NUL in them too).
    pub async fn bulk_patch_items_with_directives(
        &self,
        project: ProjectId,
        catalog: &str,
        dialect: Dialect,
        inputs: Vec<PatchInput>,
        options: &JobOptions,
    ) -> Result<BulkOutcome, StoreError> {
        let mut items = Vec::with_capacity(inputs.len());
        let mut directives = Vec::with_capacity(inputs.len());
        for input in inputs {
            let mut directive = Map::new();
            if input.create_missing {
                directive.insert(CREATE_DIRECTIVE.to_owned(), Value::Bool(true));
            }
            if !input.array_ops.is_empty() {
                let arrays: Map<String, Value> = input
                    .array_ops
                    .into_iter()
                    .map(|(name, add, remove)| (name, serde_json::json!({"add": add, "remove": remove})))
                    .collect();
                directive.insert(ARRAY_DIRECTIVE.to_owned(), Value::Object(arrays));
            }
            items.push(input.item);
            directives.push(directive);
        }
        self.bulk_items(project, catalog, dialect, JobKind::ItemBulkPatch, items, false, Some(directives), options)
            .await
    }

    /// Creates a catalog with its declared fields and, optionally, a display name apart from its
    /// name, in one transaction: all or nothing. The name and description follow the rules of
    /// [`Store::create_catalog`]; the caller has checked the fields (their names and types are
    /// its dialect's business) and the title.
    pub async fn create_catalog_with_fields(
        &self,
        project: ProjectId,
        name: &str,
        description: Option<&str>,
        title: Option<&str>,
        fields: &[CatalogField],
    ) -> Result<Catalog, StoreError> {
        if let Some(title) = title {
            catalog_domain::storable::check_text("name", title)
                .map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
        }
        validate_catalog_name(name)?;
        if let Some(description) = description {
            catalog_domain::storable::check_text("description", description)
                .map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
        }
        let now = now_ms();
        let result: Result<Option<Catalog>, StoreError> = with_db!(self.db(), pool => {
            async {
                let mut tx = pool.begin_write(self.write_turns()).await?;
                let row = sqlx::query(
                    "INSERT INTO catalogs (project_id, name, description, created_at, updated_at)
                     SELECT id, $2, $3, $4, $4 FROM projects WHERE id = $1
                     RETURNING id, name, description, created_at, updated_at",
                )
                .bind(project.0)
                .bind(name)
                .bind(description)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let catalog = catalog_from_row(&row, Some(0))?;
                for (position, field) in fields.iter().enumerate() {
                    insert_field(catalog.id, field, to_i64(position)).execute(&mut *tx).await?;
                }
                if let Some(title) = title {
                    sqlx::query("INSERT INTO catalog_titles (catalog_id, title) VALUES ($1, $2)")
                        .bind(catalog.id.0)
                        .bind(title)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(catalog))
            }
            .await
        });
        match result {
            Ok(Some(catalog)) => Ok(catalog),
            Ok(None) => Err(StoreError::ProjectNotFound),
            Err(e) if e.is_unique_violation() => Err(StoreError::CatalogAlreadyExists(name.to_owned())),
            Err(e) => Err(e),
        }
    }

    /// Creates a catalog named by a new random id (24 hex digits, as Bloomreach's ids look) with
    /// the display name `title` and its declared fields.
    pub async fn create_titled_catalog(
        &self,
        project: ProjectId,
        title: &str,
        fields: &[CatalogField],
    ) -> Result<Catalog, StoreError> {
        let name = crate::util::hex(&crate::util::random_bytes(12)?);
        self.create_catalog_with_fields(project, &name, None, Some(title), fields).await
    }

    /// The display name of the live catalog `name`, if it has one.
    pub async fn catalog_title(&self, project: ProjectId, name: &str) -> Result<(Catalog, Option<String>), StoreError> {
        let catalog = self.find_catalog(project, name).await?;
        let title = with_db!(self.db(), pool => {
            let row = sqlx::query("SELECT title FROM catalog_titles WHERE catalog_id = $1")
                .bind(catalog.id.0)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(|row| row.text("title")).transpose()?
        });
        Ok((catalog, title))
    }

    /// Every live catalog of the project by name, each with its display name if it has one.
    pub async fn list_catalog_titles(&self, project: ProjectId) -> Result<Vec<(Catalog, Option<String>)>, StoreError> {
        with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT c.id, c.name, c.description, c.created_at, c.updated_at, t.title
                 FROM catalogs c LEFT JOIN catalog_titles t ON t.catalog_id = c.id
                 WHERE c.project_id = $1 AND c.deleted_at IS NULL ORDER BY c.name LIMIT $2",
            )
            .bind(project.0)
            .bind(i64::from(MAX_CATALOGS_LISTED))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| Ok((catalog_from_row(row, None)?, row.opt_text("title")?)))
                .collect::<Result<Vec<_>, StoreError>>()
        })
    }

    /// Gives the live catalog `name` the display name `title` and, when `fields` is given, these
    /// declared fields instead of its own, in one transaction.
    pub async fn retitle_catalog(
        &self,
        project: ProjectId,
        name: &str,
        title: &str,
        fields: Option<&[CatalogField]>,
    ) -> Result<(), StoreError> {
        catalog_domain::storable::check_text("name", title).map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
        let catalog = self.find_catalog(project, name).await?;
        with_db!(self.db(), pool => {
            let mut tx = pool.begin_write(self.write_turns()).await?;
            sqlx::query(
                "INSERT INTO catalog_titles (catalog_id, title) VALUES ($1, $2)
                 ON CONFLICT (catalog_id) DO UPDATE SET title = excluded.title",
            )
            .bind(catalog.id.0)
            .bind(title)
            .execute(&mut *tx)
            .await?;
            if let Some(fields) = fields {
                sqlx::query("DELETE FROM catalog_fields WHERE catalog_id = $1").bind(catalog.id.0).execute(&mut *tx).await?;
                for (position, field) in fields.iter().enumerate() {
                    insert_field(catalog.id, field, to_i64(position)).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Empties the live catalog `name`: in one transaction the catalog is deleted as
    /// [`Store::delete_catalog`] deletes it (its earlier jobs fail, a `catalog_delete` job removes
    /// its data) and a catalog of the same name, description, display name and declared fields
    /// takes its place. So every item is gone, those of writes still queued included, exactly
    /// when the request is answered, and the catalog's name (Bloomreach's id) stays.
    pub async fn empty_catalog(&self, project: ProjectId, name: &str) -> Result<Catalog, StoreError> {
        let old = self.find_catalog(project, name).await?;
        let now = now_ms();
        let accepted_at = if self.is_postgres() { crate::enqueue::ACCEPTED_AT_PG } else { "$6" };
        let insert_job = format!(
            "INSERT INTO jobs (project_id, catalog_id, catalog_name, kind, status, total_count, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 1, {accepted_at}, {accepted_at})"
        );
        let catalog = with_db!(self.db(), pool => {
            let mut tx = pool.begin_write(self.write_turns()).await?;
            let hidden = sqlx::query(
                "UPDATE catalogs SET deleted_at = $3, updated_at = $3
                 WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind(project.0)
            .bind(old.id.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if hidden.rows_affected() == 0 {
                return Err(StoreError::CatalogNotFound(name.to_owned()));
            }
            let mut insert = sqlx::query(&insert_job)
                .bind(project.0)
                .bind(old.id.0)
                .bind(name)
                .bind(catalog_domain::JobKind::CatalogDelete.as_str())
                .bind(catalog_domain::JobState::new(1, false).status.as_str());
            if !self.is_postgres() {
                insert = insert.bind(now);
            }
            insert.execute(&mut *tx).await?;
            let row = sqlx::query(
                "INSERT INTO catalogs (project_id, name, description, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id, name, description, created_at, updated_at",
            )
            .bind(project.0)
            .bind(name)
            .bind(old.description.as_deref())
            .bind(old.created_at)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let catalog = catalog_from_row(&row, Some(0))?;
            sqlx::query(
                "INSERT INTO catalog_fields (catalog_id, name, type, position, searchable)
                 SELECT $2, name, type, position, searchable FROM catalog_fields WHERE catalog_id = $1",
            )
            .bind(old.id.0)
            .bind(catalog.id.0)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO catalog_titles (catalog_id, title) SELECT $2, title FROM catalog_titles WHERE catalog_id = $1")
                .bind(old.id.0)
                .bind(catalog.id.0)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            catalog
        });
        self.catalog_deleted(project, name);
        Ok(catalog)
    }

    /// One page of the catalog's items that match `search` (see [`ItemSearch`]), with the number
    /// of matches and of items. Matching reads every item's fields: the cost grows with the
    /// catalog, as Bloomreach's own search over a catalog does not promise otherwise.
    pub async fn search_items(
        &self,
        project: ProjectId,
        catalog: &str,
        search: &ItemSearch,
    ) -> Result<SearchPage, StoreError> {
        let catalog = self.find_catalog(project, catalog).await?;
        let query = search.query.as_deref().filter(|q| !q.is_empty());
        if query.is_some_and(catalog_domain::storable::has_nul)
            || search.fields.iter().flatten().any(|field| catalog_domain::storable::has_nul(field))
        {
            return Err(StoreError::InvalidRequest("a search cannot contain a NUL character".to_owned()));
        }
        // The fields as a JSON list (`NULL`: any), one bind whatever their number.
        let fields = search.fields.as_ref().map(|fields| Value::from(fields.clone()).to_string());
        // One predicate: `$2` the text (NULL: everything), `$3` the fields, `$6` 1 when the id counts.
        let matches = if self.is_postgres() {
            "($2::text IS NULL OR ($6::bigint = 1 AND strpos(lower(i.item_id), lower($2::text)) > 0) OR EXISTS (
                 SELECT 1 FROM jsonb_each_text(i.fields::jsonb) f
                 WHERE ($3::text IS NULL OR f.key IN (SELECT jsonb_array_elements_text($3::jsonb)))
                   AND strpos(lower(f.value), lower($2::text)) > 0))"
        } else {
            "($2 IS NULL OR ($6 = 1 AND instr(lower(i.item_id), lower($2)) > 0) OR EXISTS (
                 SELECT 1 FROM json_each(i.fields) f
                 WHERE ($3 IS NULL OR f.key IN (SELECT value FROM json_each($3)))
                   AND instr(lower(CAST(f.value AS TEXT)), lower($2)) > 0))"
        };
        let order = if search.descending { "DESC" } else { "ASC" };
        // One statement, so the page and both counts come from one snapshot (a job may commit
        // between two statements). The join on a single row keeps the counts when the page is
        // empty (then its one row has no item).
        let sql = format!(
            "WITH matching AS (SELECT i.item_id, i.fields, i.created_at, i.updated_at FROM items i
                               WHERE i.catalog_id = $1 AND {matches})
             SELECT m.item_id, m.fields, m.created_at, m.updated_at,
                    (SELECT COUNT(*) FROM matching) AS matched,
                    (SELECT COUNT(*) FROM items WHERE catalog_id = $1) AS total
             FROM (SELECT 1 AS one) one
             LEFT JOIN (SELECT * FROM matching ORDER BY item_id {order} LIMIT $4 OFFSET $5) m ON 1 = 1
             ORDER BY m.item_id {order}"
        );
        let limit = search.limit.clamp(1, MAX_OFFSET_PAGE);
        with_db!(self.db(), pool => {
            let found = sqlx::query(&sql)
                .bind(catalog.id.0)
                .bind(query)
                .bind(fields.as_deref())
                .bind(i64::from(limit))
                .bind(to_i64(search.skip))
                .bind(i64::from(search.in_id))
                .fetch_all(pool)
                .await?;
            let (mut matched, mut total) = (0, 0);
            let mut rows = Vec::with_capacity(found.len());
            for row in &found {
                matched = row.int("matched")?;
                total = row.int("total")?;
                if let Some(id) = row.opt_text("item_id")? {
                    rows.push(Item {
                        id,
                        fields: parse_fields(&row.text("fields")?)?,
                        created_at: row.int("created_at")?,
                        updated_at: row.int("updated_at")?,
                    });
                }
            }
            Ok(SearchPage { rows, matched: count(matched), total: count(total) })
        })
    }

    /// The live catalog `name` and its declared fields in declaration order (empty: it declared
    /// none, and takes any field).
    pub async fn find_catalog_with_fields(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<(Catalog, Vec<CatalogField>), StoreError> {
        let catalog = self.find_catalog(project, name).await?;
        let fields = with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT name, type, searchable FROM catalog_fields WHERE catalog_id = $1 ORDER BY position, name",
            )
            .bind(catalog.id.0)
            .fetch_all(pool)
            .await?;
            rows.iter().map(field_from_row).collect::<Result<Vec<_>, StoreError>>()?
        });
        Ok((catalog, fields))
    }

    /// Every live catalog of the project with its item count (as
    /// [`Store::list_catalogs_with_counts`]) and its declared fields.
    pub async fn list_catalogs_with_fields(
        &self,
        project: ProjectId,
    ) -> Result<Vec<(Catalog, Vec<CatalogField>)>, StoreError> {
        let catalogs = self.list_catalogs_with_counts(project).await?;
        let mut fields: HashMap<CatalogId, Vec<CatalogField>> = with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT f.catalog_id, f.name, f.type, f.searchable FROM catalog_fields f
                 JOIN catalogs c ON c.id = f.catalog_id
                 WHERE c.project_id = $1 AND c.deleted_at IS NULL ORDER BY f.catalog_id, f.position, f.name",
            )
            .bind(project.0)
            .fetch_all(pool)
            .await?;
            let mut fields: HashMap<CatalogId, Vec<CatalogField>> = HashMap::new();
            for row in &rows {
                let field = field_from_row(row)?;
                fields.entry(CatalogId(row.int("catalog_id")?)).or_default().push(field);
            }
            fields
        });
        Ok(catalogs
            .into_iter()
            .map(|catalog| {
                let declared = fields.remove(&catalog.id).unwrap_or_default();
                (catalog, declared)
            })
            .collect())
    }

    /// Adds declared fields to the live catalog `name`, after those it has. Returns the names
    /// among `fields` it already had, and then adds nothing (all or nothing).
    pub async fn add_catalog_fields(
        &self,
        project: ProjectId,
        name: &str,
        fields: &[CatalogField],
    ) -> Result<Vec<String>, StoreError> {
        let catalog = self.find_catalog(project, name).await?;
        with_db!(self.db(), pool => {
            let mut tx = pool.begin_write(self.write_turns()).await?;
            let rows = sqlx::query("SELECT name, position FROM catalog_fields WHERE catalog_id = $1")
                .bind(catalog.id.0)
                .fetch_all(&mut *tx)
                .await?;
            let mut next = 0_i64;
            let mut existing = Vec::new();
            for row in &rows {
                next = next.max(row.int("position")? + 1);
                let have = row.text("name")?;
                if fields.iter().any(|f| f.name == have) {
                    existing.push(have);
                }
            }
            if !existing.is_empty() {
                return Ok(existing);
            }
            for field in fields {
                insert_field(catalog.id, field, next).execute(&mut *tx).await?;
                next += 1;
            }
            tx.commit().await?;
            Ok(Vec::new())
        })
    }

    /// Keeps the selection `selection` (its definition as JSON, checked by the caller) of the live
    /// catalog `name`; `false` when the catalog has a selection of that name already.
    pub async fn add_selection(
        &self,
        project: ProjectId,
        name: &str,
        selection: &str,
        definition: &Value,
    ) -> Result<bool, StoreError> {
        let catalog = self.find_catalog(project, name).await?;
        let definition = definition.to_string();
        let added = with_db!(self.db(), pool => {
            sqlx::query(
                "INSERT INTO catalog_selections (catalog_id, name, definition) VALUES ($1, $2, $3)
                 ON CONFLICT (catalog_id, name) DO NOTHING",
            )
            .bind(catalog.id.0)
            .bind(selection)
            .bind(&definition)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(added > 0)
    }

    /// Removes the selection `selection` of the live catalog `name`; `false` when it has none.
    pub async fn remove_selection(&self, project: ProjectId, name: &str, selection: &str) -> Result<bool, StoreError> {
        let catalog = self.find_catalog(project, name).await?;
        if catalog_domain::storable::has_nul(selection) {
            return Ok(false);
        }
        let removed = with_db!(self.db(), pool => {
            sqlx::query("DELETE FROM catalog_selections WHERE catalog_id = $1 AND name = $2")
                .bind(catalog.id.0)
                .bind(selection)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(removed > 0)
    }

    /// Removes the declared field `field` from the live catalog `name`; `false` when it had no
    /// such field. The items keep their values: the field is no longer declared, not erased.
    pub async fn remove_catalog_field(&self, project: ProjectId, name: &str, field: &str) -> Result<bool, StoreError> {
        let catalog = self.find_catalog(project, name).await?;
        if catalog_domain::storable::has_nul(field) {
            return Ok(false);
        }
        with_db!(self.db(), pool => {
            let done = sqlx::query("DELETE FROM catalog_fields WHERE catalog_id = $1 AND name = $2")
                .bind(catalog.id.0)
                .bind(field)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// One page of the catalog's items in id order, starting at `cursor` (a cursor this function
    /// returned) or at the first item, with the cursors of the pages before and after it. Keyset
    /// both ways, so paging costs the same at any depth.
    pub async fn list_items_window(
        &self,
        project: ProjectId,
        catalog: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ItemWindow, StoreError> {
        let catalog = self.find_catalog(project, catalog).await?;
        let start = cursor.map(|c| decode_text_cursor(WINDOW_CURSOR, c)).transpose()?;
        let limit = limit.clamp(1, MAX_OFFSET_PAGE);
        let (mut rows, before) = with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT item_id, fields, created_at, updated_at FROM items
                 WHERE catalog_id = $1 AND item_id >= $2 ORDER BY item_id LIMIT $3",
            )
            .bind(catalog.id.0)
            .bind(start.as_deref().unwrap_or_default())
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?;
            let rows = rows
                .iter()
                .map(|row| {
                    Ok(Item {
                        id: row.text("item_id")?,
                        fields: parse_fields(&row.text("fields")?)?,
                        created_at: row.int("created_at")?,
                        updated_at: row.int("updated_at")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let before = match &start {
                None => Vec::new(),
                Some(start) => {
                    let rows = sqlx::query(
                        "SELECT item_id FROM items WHERE catalog_id = $1 AND item_id < $2
                         ORDER BY item_id DESC LIMIT $3",
                    )
                    .bind(catalog.id.0)
                    .bind(start)
                    .bind(i64::from(limit) + 1)
                    .fetch_all(pool)
                    .await?;
                    rows.iter().map(|row| row.text("item_id")).collect::<Result<Vec<_>, StoreError>>()?
                }
            };
            (rows, before)
        });
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize + 1);
            rows.pop().map(|next| encode_text_cursor(WINDOW_CURSOR, &next.id))
        } else {
            None
        };
        // `before` holds up to limit + 1 ids, nearest first: with more than `limit` the previous
        // page starts at the limit-th; otherwise it is the first page.
        let prev_cursor = match before.len() {
            0 => None,
            n if n > limit as usize => {
                Some(before.get(limit as usize - 1).map(|id| encode_text_cursor(WINDOW_CURSOR, id)))
            }
            _ => Some(None),
        };
        Ok(ItemWindow { rows, prev_cursor, next_cursor })
    }

    /// The live catalog `name` of the project, without its item count (no `COUNT(*)`), or
    /// [`StoreError::CatalogNotFound`].
    pub async fn find_live_catalog(&self, project: ProjectId, name: &str) -> Result<Catalog, StoreError> {
        self.find_catalog(project, name).await
    }

    /// Every live catalog of the project by name, each with its item count, in one statement
    /// (at most 10,000).
    pub async fn list_catalogs_with_counts(&self, project: ProjectId) -> Result<Vec<Catalog>, StoreError> {
        with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT c.id, c.name, c.description, c.created_at, c.updated_at,
                        (SELECT COUNT(*) FROM items i WHERE i.catalog_id = c.id) AS n
                 FROM catalogs c WHERE c.project_id = $1 AND c.deleted_at IS NULL ORDER BY c.name LIMIT $2",
            )
            .bind(project.0)
            .bind(i64::from(MAX_CATALOGS_LISTED))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    crate::catalogs::catalog_from_row(row, Some(count(row.int("n")?)))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
    }

    /// The catalog's items in id order, skipping `skip` and returning at most `limit` (clamped to
    /// 1..=1000). Offset paging costs more the deeper it goes; it exists because
    /// Bloomreach's API pages that way.
    pub async fn list_items_offset(
        &self,
        project: ProjectId,
        catalog: &str,
        skip: u64,
        limit: u32,
    ) -> Result<Vec<Item>, StoreError> {
        let catalog = self.find_catalog(project, catalog).await?;
        let limit = limit.clamp(1, MAX_OFFSET_PAGE);
        with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT item_id, fields, created_at, updated_at FROM items
                 WHERE catalog_id = $1 ORDER BY item_id LIMIT $2 OFFSET $3",
            )
            .bind(catalog.id.0)
            .bind(i64::from(limit))
            .bind(to_i64(skip))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(Item {
                        id: row.text("item_id")?,
                        fields: parse_fields(&row.text("fields")?)?,
                        created_at: row.int("created_at")?,
                        updated_at: row.int("updated_at")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn without_directives_a_patch_is_the_plain_merge() {
        let current = map(json!({"a": 1, "list": [1, 2]}));
        let patch = map(json!({"b": 2, "list": [3]}));
        assert_eq!(merge_patch(Some(current.clone()), &patch, false), Ok(map(json!({"a": 1, "b": 2, "list": [3]}))));
        assert_eq!(merge_patch(None, &patch, false), Err(InputFailure::ItemMissing));
        assert_eq!(merge_patch(None, &patch, true), Ok(patch.clone()));
    }

    #[test]
    fn directives_create_per_input_and_change_arrays_in_place() {
        let mut patch = map(json!({"b": 2}));
        patch.insert(CREATE_DIRECTIVE.to_owned(), json!(true));
        patch.insert(ARRAY_DIRECTIVE.to_owned(), json!({"list": {"add": [9], "remove": [1]}}));
        assert_eq!(merge_patch(None, &patch, false), Ok(map(json!({"b": 2, "list": [9]}))));
        let current = map(json!({"list": [1, 2, 1], "keep": "x"}));
        assert_eq!(merge_patch(Some(current), &patch, false), Ok(map(json!({"b": 2, "list": [2, 9], "keep": "x"}))));
        let mut no_create = map(json!({}));
        no_create.insert(CREATE_DIRECTIVE.to_owned(), json!(false));
        assert_eq!(merge_patch(None, &no_create, true), Err(InputFailure::ItemMissing), "the input's own flag wins");
    }
}
