//! Reads the vendor facades need and the native API does not: a cheap catalog lookup (so a facade
//! can answer its dialect's "not found" before it reads a body or spends a rate-limit token),
//! every catalog with its item count in one statement (Braze's `GET /catalogs` shows
//! `num_items`), and an offset page of items (Bloomreach pages with `count` and `skip`).

use crate::catalogs::parse_fields;
use crate::db::{count, to_i64, with_db, RowExt};
use crate::error::StoreError;
use crate::model::{Catalog, Item, ProjectId};
use crate::store::Store;

/// Most catalogs [`Store::list_catalogs_with_counts`] returns; a project has few catalogs, and
/// the cap keeps one request bounded whatever happens.
pub(crate) const MAX_CATALOGS_LISTED: u32 = 10_000;

/// Largest page [`Store::list_items_offset`] returns.
pub(crate) const MAX_OFFSET_PAGE: u32 = 1_000;

impl Store {
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
