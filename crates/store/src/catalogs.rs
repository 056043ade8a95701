//! Catalogs, and reading their items and categories.

use crate::db::{count, now_ms, with_db, Flavor, RowExt};
use crate::error::StoreError;
use crate::jobs::{job_from_row, JOB_COLUMNS};
use crate::model::{Catalog, CatalogId, Category, Item, Job, Page, ProjectId};
use crate::store::Store;
use crate::util::{clamp_limit, decode_text_cursor, encode_text_cursor};
use catalog_domain::{validate_catalog_name, JobKind, JobState};
use serde_json::{Map, Value};

const ITEMS_CURSOR: char = 'i';
const CATEGORIES_CURSOR: char = 'c';
const CATALOGS_CURSOR: char = 'n';

/// A category row without its item set (the caller fills `item_ids`).
pub(crate) fn category_from_row(row: &impl RowExt) -> Result<Category, StoreError> {
    Ok(Category {
        id: row.text("category_id")?,
        external_id: row.opt_text("external_id")?,
        name: row.opt_text("name")?,
        item_ids: Vec::new(),
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(crate) fn catalog_from_row(row: &impl RowExt, item_count: Option<u64>) -> Result<Catalog, StoreError> {
    Ok(Catalog {
        id: CatalogId(row.int("id")?),
        name: row.text("name")?,
        description: row.opt_text("description")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        item_count,
    })
}

/// Parses stored item fields; they were written by this crate as a JSON object.
pub(crate) fn parse_fields(text: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(StoreError::Corrupt("item fields are not a JSON object".into())),
        Err(e) => Err(StoreError::Corrupt(format!("item fields: {e}"))),
    }
}

pub(crate) fn item_from_row(row: &impl RowExt) -> Result<Item, StoreError> {
    Ok(Item {
        id: row.text("item_id")?,
        fields: parse_fields(&row.text("fields")?)?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

impl Store {
    /// Creates a catalog; its name must follow the catalog name rule and be new in the project.
    pub async fn create_catalog(
        &self,
        project: ProjectId,
        name: &str,
        description: Option<&str>,
    ) -> Result<Catalog, StoreError> {
        validate_catalog_name(name)?;
        if let Some(description) = description {
            // PostgreSQL cannot store a NUL in text: refuse it here, not as a database error.
            catalog_domain::storable::check_text("description", description)
                .map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
        }
        let now = now_ms();
        let result = with_db!(self.db(), pool => {
            sqlx::query(
                "INSERT INTO catalogs (project_id, name, description, created_at, updated_at)
                 SELECT id, $2, $3, $4, $4 FROM projects WHERE id = $1
                 RETURNING id, name, description, created_at, updated_at",
            )
            .bind(project.0)
            .bind(name)
            .bind(description)
            .bind(now)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::from)
            .and_then(|row| row.as_ref().map(|r| catalog_from_row(r, Some(0))).transpose())
        });
        match result {
            Ok(Some(catalog)) => Ok(catalog),
            Ok(None) => Err(StoreError::ProjectNotFound),
            Err(e) if e.is_unique_violation() => Err(StoreError::CatalogAlreadyExists(name.to_owned())),
            Err(e) => Err(e),
        }
    }

    /// The project's catalogs by name, one keyset page.
    pub async fn list_catalogs(
        &self,
        project: ProjectId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Catalog>, StoreError> {
        let after = cursor.map(|c| decode_text_cursor(CATALOGS_CURSOR, c)).transpose()?.unwrap_or_default();
        let limit = clamp_limit(limit);
        let mut rows = with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT id, name, description, created_at, updated_at FROM catalogs
                 WHERE project_id = $1 AND deleted_at IS NULL AND name > $2 ORDER BY name LIMIT $3",
            )
            .bind(project.0)
            .bind(&after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?;
            rows.iter().map(|r| catalog_from_row(r, None)).collect::<Result<Vec<_>, _>>()?
        });
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(encode_text_cursor(CATALOGS_CURSOR, &last.name)),
            _ => None,
        };
        Ok(Page { rows, next_cursor })
    }

    /// The live catalog `name` of the project, without its item count.
    pub(crate) async fn find_catalog(&self, project: ProjectId, name: &str) -> Result<Catalog, StoreError> {
        // A name the rule refuses names no catalog; one with a NUL PostgreSQL cannot even compare.
        if validate_catalog_name(name).is_err() {
            return Err(StoreError::CatalogNotFound(name.to_owned()));
        }
        with_db!(self.db(), pool => {
            let row = sqlx::query(
                "SELECT id, name, description, created_at, updated_at FROM catalogs
                 WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL",
            )
            .bind(project.0)
            .bind(name)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(|r| catalog_from_row(r, None)).transpose()?.ok_or_else(|| StoreError::CatalogNotFound(name.to_owned()))
        })
    }

    /// The catalog `name` of the project, with its item count.
    pub async fn get_catalog(&self, project: ProjectId, name: &str) -> Result<Catalog, StoreError> {
        let mut catalog = self.find_catalog(project, name).await?;
        let n = with_db!(self.db(), pool => {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM items WHERE catalog_id = $1")
                .bind(catalog.id.0)
                .fetch_one(pool)
                .await?;
            row.int("n")?
        });
        catalog.item_count = Some(count(n));
        Ok(catalog)
    }

    /// After the commit that deleted the catalog `name` (a delete, or an emptying): the cache
    /// forgets it, the runners wake for its `catalog_delete` job, and the job writer learns that a
    /// job was created without it (its view of the queue misses that job's input).
    pub(crate) fn catalog_deleted(&self, project: ProjectId, name: &str) {
        self.inner.queue.created_elsewhere();
        self.forget_catalog(project, name);
        self.wake_runners();
    }

    /// Deletes the catalog `name`: it disappears at once (its name is free again, pending jobs on
    /// it will fail) and a `catalog_delete` job removes its items and categories.
    pub async fn delete_catalog(&self, project: ProjectId, name: &str) -> Result<Job, StoreError> {
        if validate_catalog_name(name).is_err() {
            return Err(StoreError::CatalogNotFound(name.to_owned()));
        }
        let now = now_ms();
        // Accepted now, on the clock every job of the catalog is ordered by (see `enqueue.rs`).
        let accepted_at = if self.is_postgres() { crate::enqueue::ACCEPTED_AT_PG } else { "$6" };
        let insert = format!(
            "INSERT INTO jobs (project_id, catalog_id, catalog_name, kind, status, total_count, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 1, {accepted_at}, {accepted_at}) RETURNING {JOB_COLUMNS}"
        );
        let job = with_db!(self.db(), pool => {
            let mut tx = pool.begin_write(self.write_turns()).await?;
            let row = sqlx::query(
                "UPDATE catalogs SET deleted_at = $3, updated_at = $3
                 WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL RETURNING id",
            )
            .bind(project.0)
            .bind(name)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let catalog_id = row.ok_or_else(|| StoreError::CatalogNotFound(name.to_owned()))?.int("id")?;
            let mut insert = sqlx::query(&insert)
                .bind(project.0)
                .bind(catalog_id)
                .bind(name)
                .bind(JobKind::CatalogDelete.as_str())
                .bind(JobState::new(1, false).status.as_str());
            if !self.is_postgres() {
                insert = insert.bind(now);
            }
            let row = insert.fetch_one(&mut *tx).await?;
            let job = job_from_row(&row)?;
            tx.commit().await?;
            job
        });
        self.catalog_deleted(project, name);
        Ok(job)
    }

    /// The item `item_id` of the catalog `catalog`.
    pub async fn get_item(&self, project: ProjectId, catalog: &str, item_id: &str) -> Result<Item, StoreError> {
        let catalog = self.find_catalog(project, catalog).await?;
        // No dialect stores an id with a NUL, and PostgreSQL cannot even compare one.
        if catalog_domain::storable::has_nul(item_id) {
            return Err(StoreError::ItemNotFound(item_id.to_owned()));
        }
        with_db!(self.db(), pool => {
            let row = sqlx::query(
                "SELECT item_id, fields, created_at, updated_at FROM items WHERE catalog_id = $1 AND item_id = $2",
            )
            .bind(catalog.id.0)
            .bind(item_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(item_from_row).transpose()?.ok_or_else(|| StoreError::ItemNotFound(item_id.to_owned()))
        })
    }

    /// The catalog's items in id order, one keyset page.
    pub async fn list_items(
        &self,
        project: ProjectId,
        catalog: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Item>, StoreError> {
        let catalog = self.find_catalog(project, catalog).await?;
        let after = cursor.map(|c| decode_text_cursor(ITEMS_CURSOR, c)).transpose()?.unwrap_or_default();
        let limit = clamp_limit(limit);
        let mut rows = with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT item_id, fields, created_at, updated_at FROM items
                 WHERE catalog_id = $1 AND item_id > $2 ORDER BY item_id LIMIT $3",
            )
            .bind(catalog.id.0)
            .bind(&after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?;
            rows.iter().map(item_from_row).collect::<Result<Vec<_>, _>>()?
        });
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(encode_text_cursor(ITEMS_CURSOR, &last.id)),
            _ => None,
        };
        Ok(Page { rows, next_cursor })
    }

    /// The catalog's categories in id order with their item ids, one keyset page.
    pub async fn list_categories(
        &self,
        project: ProjectId,
        catalog: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Category>, StoreError> {
        let catalog = self.find_catalog(project, catalog).await?;
        let after = cursor.map(|c| decode_text_cursor(CATEGORIES_CURSOR, c)).transpose()?.unwrap_or_default();
        let limit = clamp_limit(limit);
        let mut categories = with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT category_id, external_id, name, created_at, updated_at FROM categories
                 WHERE catalog_id = $1 AND category_id > $2 ORDER BY category_id LIMIT $3",
            )
            .bind(catalog.id.0)
            .bind(&after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(category_from_row(row)?);
            }
            out
        });
        let more = categories.len() > limit as usize;
        categories.truncate(limit as usize);
        if let (Some(first), Some(last)) = (categories.first(), categories.last()) {
            let (first, last) = (first.id.clone(), last.id.clone());
            // One range query fills the item sets of the whole page.
            let members: Vec<(String, String)> = with_db!(self.db(), pool => {
                let rows = sqlx::query(
                    "SELECT category_id, item_id FROM category_items
                     WHERE catalog_id = $1 AND category_id >= $2 AND category_id <= $3 ORDER BY category_id, item_id",
                )
                .bind(catalog.id.0)
                .bind(&first)
                .bind(&last)
                .fetch_all(pool)
                .await?;
                rows.iter().map(|r| Ok((r.text("category_id")?, r.text("item_id")?))).collect::<Result<Vec<_>, StoreError>>()?
            });
            for (category_id, item_id) in members {
                if let Ok(i) = categories.binary_search_by(|c| c.id.as_str().cmp(&category_id)) {
                    if let Some(category) = categories.get_mut(i) {
                        category.item_ids.push(item_id);
                    }
                }
            }
        }
        let next_cursor = match (more, categories.last()) {
            (true, Some(last)) => Some(encode_text_cursor(CATEGORIES_CURSOR, &last.id)),
            _ => None,
        };
        Ok(Page { rows: categories, next_cursor })
    }
}
