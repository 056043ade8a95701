//! `category_bulk_update`: each input changes what it names of a stored category and keeps the
//! rest, in request order; a missing category fails its input (catalog_domain::apply::update_category).

use super::category_upsert::change_of;
use super::{apply_in_order, Chunk, ChunkData, Rows, Writes};
use crate::bulk::CategoryRow;
use crate::error::StoreError;
use crate::runner::sql::Statements;
use catalog_domain::apply::{update_category, CategoryFields, CategoryOutcome};

/// Reads the chunk's categories and applies every input to them: one unit per existing id,
/// standing for the inputs that applied.
pub(super) async fn plan<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    categories: &[CategoryRow],
) -> Result<Writes, StoreError> {
    let ids: Vec<String> = categories.iter().map(|c| c.id.clone()).collect();
    let stored = data
        .read_categories(sql, chunk.catalog_id, ids)
        .await?
        .into_iter()
        .map(|(id, external_id, name)| {
            (id, CategoryOutcome { fields: CategoryFields { external_id, name }, item_ids: None })
        })
        .collect();
    let inputs = categories.iter().map(|c| (c.id.as_str(), c.index, c));
    let (units, failed) = apply_in_order(chunk.kind, inputs, stored, |current: Option<CategoryOutcome>, input| {
        // An earlier input's new members stay unless this one names others.
        let members = current.as_ref().and_then(|c| c.item_ids.clone());
        let outcome = update_category(current.map(|c| c.fields), change_of(input))?;
        Ok(CategoryOutcome { fields: outcome.fields, item_ids: outcome.item_ids.or(members) })
    });
    Ok(Writes { rows: Rows::StoreCategories(units), failed })
}
