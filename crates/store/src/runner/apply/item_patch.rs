//! `item_bulk_patch`: each input's top-level fields are merged into the stored item, in request
//! order; a missing item fails its input unless the job creates missing items
//! (catalog_domain::apply::patch_fields).

use super::{Chunk, ChunkData, Rows, Unit, Writes};
use crate::bulk::{ItemRow, FLAG_CREATE_MISSING};
use crate::catalogs::parse_fields;
use crate::error::StoreError;
use crate::runner::sql::Statements;
use catalog_domain::apply::{fold_runs, patch_fields, InputError};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What the inputs of one id have made of it so far.
struct Patched {
    fields: Option<Map<String, Value>>,
    applied: Vec<u64>,
    failed: Vec<InputError>,
}

/// Reads the chunk's items and merges every input into them: one unit per id that exists (or is
/// created), standing for the inputs that applied.
pub(super) async fn plan<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    items: &[ItemRow],
) -> Result<Writes, StoreError> {
    let ids: Vec<String> = items.iter().map(|(_, id, _)| id.clone()).collect();
    let mut stored: HashMap<String, Map<String, Value>> = HashMap::with_capacity(items.len());
    for (id, fields) in data.read_items(sql, chunk.catalog_id, ids).await? {
        stored.insert(id, parse_fields(&fields)?);
    }
    let create_missing = chunk.flags & FLAG_CREATE_MISSING != 0;
    let inputs = items.iter().map(|(index, id, patch)| (id.as_str(), (*index, patch)));
    let per_id = fold_runs(inputs, |id: &&str, seen: Option<Patched>, (index, patch)| {
        let mut patched =
            seen.unwrap_or_else(|| Patched { fields: stored.remove(*id), applied: Vec::new(), failed: Vec::new() });
        let changes = patch.iter().map(|(k, v)| (k.clone(), v.clone()));
        // Only a missing item fails, so a failure leaves `fields` as it was: `None`.
        match patch_fields(patched.fields.take(), changes, create_missing) {
            Ok(fields) => {
                patched.fields = Some(fields);
                patched.applied.push(index);
            }
            Err(failure) => patched.failed.push(failure.record(chunk.kind, index, id)),
        }
        patched
    });
    let mut failed = Vec::new();
    let mut units = Vec::with_capacity(per_id.len());
    for (id, patched) in per_id {
        failed.extend(patched.failed);
        if let (Some(fields), false) = (patched.fields, patched.applied.is_empty()) {
            units.push(Unit { id: id.to_owned(), inputs: patched.applied, row: fields });
        }
    }
    Ok(Writes { rows: Rows::StoreItems(units), failed })
}
