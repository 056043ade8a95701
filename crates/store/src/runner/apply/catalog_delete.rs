//! `catalog_delete`: removes a deleted catalog's memberships, categories and items in bounded
//! chunks, like every other kind (a whole catalog in one statement would hold the write lock, and
//! lose all of it to a crash, for as long as the catalog is large), then the catalog's row.
//!
//! The cursor counts the rows deleted so far. A chunk deletes at most a chunk's worth of rows,
//! members first, then categories, then items; one that finds fewer is the last, and also deletes
//! the catalog. The job counts one input, the catalog, completed by its last chunk.

use super::{Applied, Chunk, ChunkData};
use crate::db::to_i64;
use crate::error::StoreError;
use crate::runner::sql::Statements;

/// Deletes the next rows of the catalog.
pub(super) async fn apply<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
) -> Result<Applied, StoreError> {
    let budget = to_i64(chunk.size.max(1));
    let mut deleted = 0i64;
    for statement in sql.delete_catalog_rows {
        if deleted >= budget {
            break;
        }
        deleted += to_i64(data.run_for_catalog(statement, chunk.catalog_id, Some(budget - deleted)).await?);
    }
    let last = deleted < budget;
    if last {
        for statement in sql.delete_catalog {
            data.run_for_catalog(statement, chunk.catalog_id, None).await?;
        }
    }
    let cursor = chunk.inputs.start.saturating_add(usize::try_from(deleted).unwrap_or(usize::MAX));
    Ok(Applied { completed: u64::from(last), failed: Vec::new(), cursor, last })
}
