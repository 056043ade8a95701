//! `category_bulk_update`: each input changes what it names of a stored category and keeps the
//! rest, in request order; a missing category fails its input (catalog_domain::apply::update_category).

use super::category_upsert::change_of;
use super::{Chunk, ChunkData, Rows, Unit, Writes};
use crate::bulk::CategoryRow;
use crate::error::StoreError;
use crate::runner::sql::Statements;
use catalog_domain::apply::{fold_runs, update_category, CategoryFields, CategoryOutcome, InputError};
use std::collections::HashMap;

/// What the inputs of one id have made of it so far.
struct Updated {
    fields: Option<CategoryFields>,
    item_ids: Option<Vec<String>>,
    applied: Vec<u64>,
    failed: Vec<InputError>,
}

/// Reads the chunk's categories and applies every input to them: one unit per existing id,
/// standing for the inputs that applied.
pub(super) async fn plan<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    categories: &[CategoryRow],
) -> Result<Writes, StoreError> {
    let ids: Vec<String> = categories.iter().map(|c| c.id.clone()).collect();
    let mut stored: HashMap<String, CategoryFields> = data
        .read_categories(sql, chunk.catalog_id, ids)
        .await?
        .into_iter()
        .map(|(id, external_id, name)| (id, CategoryFields { external_id, name }))
        .collect();
    let inputs = categories.iter().map(|c| (c.id.as_str(), c));
    let per_id = fold_runs(inputs, |id: &&str, seen: Option<Updated>, input| {
        let mut updated = seen.unwrap_or_else(|| Updated {
            fields: stored.remove(*id),
            item_ids: None,
            applied: Vec::new(),
            failed: Vec::new(),
        });
        // Only a missing category fails, so a failure leaves `fields` as it was: `None`.
        match update_category(updated.fields.take(), change_of(input)) {
            Ok(CategoryOutcome { fields, item_ids }) => {
                updated.fields = Some(fields);
                updated.item_ids = item_ids.or(updated.item_ids);
                updated.applied.push(input.index);
            }
            Err(failure) => updated.failed.push(failure.record(chunk.kind, input.index, id)),
        }
        updated
    });
    let mut failed = Vec::new();
    let mut units = Vec::with_capacity(per_id.len());
    for (id, updated) in per_id {
        failed.extend(updated.failed);
        if let (Some(fields), false) = (updated.fields, updated.applied.is_empty()) {
            let row = CategoryOutcome { fields, item_ids: updated.item_ids };
            units.push(Unit { id: id.to_owned(), inputs: updated.applied, row });
        }
    }
    Ok(Writes { rows: Rows::StoreCategories(units), failed })
}
