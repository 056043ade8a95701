//! `category_bulk_create`: each input creates its category (name, external id and items) when no
//! category of its id exists; an input whose category exists — stored before, or created by an
//! earlier input of the job — fails alone and the category is left as it is
//! (catalog_domain::apply::create_in_order).

use super::category_upsert::change_of;
use super::{created_units, Chunk, ChunkData, Rows, Writes};
use crate::bulk::CategoryRow;
use crate::error::StoreError;
use crate::runner::sql::Statements;
use catalog_domain::apply::create_category;

/// Reads which of the chunk's ids exist, in one statement, and creates the others: one unit per
/// created category, standing for the input that created it.
pub(super) async fn plan<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    categories: &[CategoryRow],
) -> Result<Writes, StoreError> {
    let ids = categories.iter().map(|c| c.id.clone()).collect();
    let existing = data.existing(&sql.existing_categories, chunk.catalog_id, ids).await?;
    let inputs = categories.iter().map(|c| (c.id.as_str(), c.index, c));
    let (units, failed) =
        created_units(chunk.kind, inputs, existing, |exists, input| create_category(exists, change_of(input)));
    Ok(Writes { rows: Rows::StoreCategories(units), failed })
}
