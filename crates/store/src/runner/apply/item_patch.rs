//! `item_bulk_patch`: each input's top-level fields are merged into the stored item, in request
//! order; a missing item fails its input unless the job creates missing items
//! (catalog_domain::apply::patch_fields, with a facade's per-input directives: `facade_support::merge_patch`).

use super::{apply_in_order, Chunk, ChunkData, Rows, Writes};
use crate::bulk::{ItemRow, FLAG_CREATE_MISSING};
use crate::catalogs::parse_fields;
use crate::error::StoreError;
use crate::runner::sql::Statements;
use std::collections::HashMap;

/// Reads the chunk's items and merges every input into them: one unit per id that exists (or is
/// created), standing for the inputs that applied.
pub(super) async fn plan<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    items: &[ItemRow],
) -> Result<Writes, StoreError> {
    let ids: Vec<String> = items.iter().map(|(_, id, _)| id.clone()).collect();
    let mut stored = HashMap::with_capacity(items.len());
    for (id, fields) in data.read_items(sql, chunk.catalog_id, ids).await? {
        stored.insert(id, parse_fields(&fields)?);
    }
    let create_missing = chunk.flags & FLAG_CREATE_MISSING != 0;
    let inputs = items.iter().map(|(index, id, patch)| (id.as_str(), *index, patch));
    let (units, failed) = apply_in_order(chunk.kind, inputs, stored, |current, patch| {
        crate::facade_support::merge_patch(current, patch, create_missing)
    });
    Ok(Writes { rows: Rows::StoreItems(units), failed })
}
