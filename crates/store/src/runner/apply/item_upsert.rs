//! `item_bulk_upsert`: each item's fields are replaced whole; for a repeated id the last input
//! wins (catalog_domain::apply).

use super::{Rows, Unit, Writes};
use crate::bulk::ItemRow;
use catalog_domain::apply::fold_runs;

/// One unit per id: the last input's fields, standing for every input of the id.
pub(super) fn plan(items: &[ItemRow]) -> Writes {
    let inputs = items.iter().map(|(index, id, fields)| (id.as_str(), (*index, fields)));
    let units = fold_runs(inputs, |_, seen, (index, fields)| {
        let mut indexes = seen.map(|(indexes, _)| indexes).unwrap_or_else(Vec::new);
        indexes.push(index);
        (indexes, fields)
    });
    let units = units.into_iter().map(|(id, (inputs, fields))| Unit { id: id.to_owned(), inputs, row: fields.clone() });
    Writes { rows: Rows::StoreItems(units.collect()), failed: Vec::new() }
}
