//! `item_bulk_create`: each input creates its item when no item of its id exists; an input whose
//! item exists — stored before, or created by an earlier input of the job — fails alone and the
//! item is left as it is (catalog_domain::apply::create_in_order).

use super::{created_units, Chunk, ChunkData, Rows, Writes};
use crate::bulk::ItemRow;
use crate::error::StoreError;
use crate::runner::sql::Statements;
use catalog_domain::apply::create_item;

/// Reads which of the chunk's ids exist, in one statement, and creates the others: one unit per
/// created item, standing for the input that created it.
pub(super) async fn plan<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    items: &[ItemRow],
) -> Result<Writes, StoreError> {
    let ids = items.iter().map(|(_, id, _)| id.clone()).collect();
    let existing = data.existing(&sql.existing_items, chunk.catalog_id, ids).await?;
    let inputs = items.iter().map(|(index, id, fields)| (id.as_str(), *index, fields));
    let (units, failed) =
        created_units(chunk.kind, inputs, existing, |exists, fields| create_item(exists, fields).cloned());
    Ok(Writes { rows: Rows::StoreItems(units), failed })
}
