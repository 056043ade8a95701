//! `category_bulk_delete`: deletes categories and their memberships; deleting a category that is
//! not there counts as done (deletes are idempotent).

use super::{distinct_ids, Rows, Writes};
use std::ops::Range;

/// One unit per distinct id of the chunk.
pub(super) fn plan(ids: &[String], inputs: Range<usize>) -> Writes {
    Writes { rows: Rows::DeleteCategories(distinct_ids(ids, inputs)), failed: Vec::new() }
}
