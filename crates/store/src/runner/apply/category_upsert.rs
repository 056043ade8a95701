//! `category_bulk_upsert`: each category becomes exactly what its input says, members included;
//! for a repeated id the last input wins (catalog_domain::apply::upsert_category).

use super::{Rows, Unit, Writes};
use crate::bulk::CategoryRow;
use catalog_domain::apply::{fold_runs, upsert_category, CategoryChange};

/// One unit per id: the last input's category, standing for every input of the id.
pub(super) fn plan(categories: &[CategoryRow]) -> Writes {
    let inputs = categories.iter().map(|c| (c.id.as_str(), c));
    let units = fold_runs(inputs, |_, seen, input| {
        let mut indexes = seen.map(|(indexes, _)| indexes).unwrap_or_else(Vec::new);
        indexes.push(input.index);
        (indexes, input)
    });
    let units = units.into_iter().map(|(id, (inputs, last))| Unit {
        id: id.to_owned(),
        inputs,
        row: upsert_category(change_of(last)),
    });
    Writes { rows: Rows::StoreCategories(units.collect()), failed: Vec::new() }
}

/// What a stored category input asks for.
pub(super) fn change_of(input: &CategoryRow) -> CategoryChange {
    CategoryChange {
        external_id: input.external_id.clone(),
        name: input.name.clone(),
        item_ids: input.item_ids.clone(),
    }
}
