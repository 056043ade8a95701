//! The rules of applying a job's inputs to a catalog, whatever stores it.
//!
//! The runner reads the rows an input touches, asks these functions what the rows become, and
//! writes the answer set-based. What is decided here:
//! - **Upsert** replaces an item's fields whole; **patch** merges top-level fields into the item
//!   (a nested object is replaced whole, not merged) and fails for a missing item unless the job
//!   creates missing items.
//! - A **category update** changes what it names and keeps what it does not (an absent name or
//!   external id keeps the stored one; an absent item list keeps the members); it fails for a
//!   missing category. A **category upsert** replaces the category whole.
//! - A **create** (items or categories) is create-only: an input whose id already exists in the
//!   catalog fails alone ([`InputFailure::ItemExists`], [`InputFailure::CategoryExists`]) and the
//!   stored row is left exactly as it was; any other input is created as an upsert would create it.
//! - **Repeated ids** in one job apply in request order: the last input for an id wins, exactly
//!   as if each had been applied alone. For a create that means the first input of an id that
//!   does not exist creates it, and every later input of the id fails: the row it would create
//!   exists by then (created by the earlier input), as it would if the inputs had been sent one
//!   request after another.
//! - What counts as a **per-item failure** ([`InputFailure`]): it is counted in the job's
//!   `failed_count` with an error record, and the job goes on with its other inputs.

use crate::error::ErrorCode;
use crate::job::JobKind;
use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Why one input of a job was not applied. The job goes on; the input is counted as failed, with
/// an error record ([`InputFailure::record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputFailure {
    /// A patch named an item that does not exist, and the job does not create missing items.
    ItemMissing,
    /// An update named a category that does not exist.
    CategoryMissing,
    /// A create named an item that exists (stored before the job, or created by an earlier input
    /// of it).
    ItemExists,
    /// A create named a category that exists (as for [`InputFailure::ItemExists`]).
    CategoryExists,
    /// The database refused to store the input (a value it cannot hold, a key too long for its
    /// index); the text is what it said.
    Refused(String),
}

/// The stored record of a per-item failure (one row of a job's errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The input's position in the request.
    pub index: u64,
    /// The item (or category) id the input named.
    pub item_id: String,
    /// The error code, from the one table of codes.
    pub code: ErrorCode,
    /// A short summary that does not change between occurrences.
    pub title: &'static str,
    /// What happened to this input.
    pub detail: String,
    /// A JSON pointer to the input in the request body, where the job knows it (see
    /// [`input_pointer`]).
    pub pointer: Option<String>,
}

impl InputFailure {
    /// The error record of input `index` (id `id`) of a job of `kind`.
    ///
    /// ```
    /// use catalog_domain::apply::InputFailure;
    /// use catalog_domain::{ErrorCode, JobKind};
    ///
    /// let record = InputFailure::ItemMissing.record(JobKind::ItemBulkPatch, 3, "sku-9");
    /// assert_eq!(record.code, ErrorCode::ItemNotFound);
    /// assert_eq!(record.pointer.as_deref(), Some("/items/3"));
    /// ```
    pub fn record(&self, kind: JobKind, index: u64, id: &str) -> InputError {
        let (code, title, detail) = match self {
            InputFailure::ItemMissing => (
                ErrorCode::ItemNotFound,
                "Item not found",
                format!("item `{id}` does not exist, so it cannot be patched"),
            ),
            InputFailure::CategoryMissing => (
                ErrorCode::NotFound,
                "Category not found",
                format!("category `{id}` does not exist, so it cannot be updated"),
            ),
            InputFailure::ItemExists => (
                ErrorCode::AlreadyExists,
                "Item already exists",
                format!("item `{id}` already exists, so it cannot be created"),
            ),
            InputFailure::CategoryExists => (
                ErrorCode::AlreadyExists,
                "Category already exists",
                format!("category `{id}` already exists, so it cannot be created"),
            ),
            InputFailure::Refused(reason) => (
                ErrorCode::ItemRefused,
                "Input refused by the database",
                format!("`{id}` could not be stored: {reason}"),
            ),
        };
        InputError { index, item_id: id.to_owned(), code, title, detail, pointer: input_pointer(kind, index) }
    }
}

/// A JSON pointer to input `index` of a native request creating a job of `kind`.
///
/// Jobs of items or categories keep each input's position in the request. A delete job keeps only
/// its distinct ids, in id order (that is all it needs to run), so its `index` is the id's position
/// in that order and there is no pointer; the record's id says which input it was.
///
/// ```
/// use catalog_domain::apply::input_pointer;
/// use catalog_domain::JobKind;
/// assert_eq!(input_pointer(JobKind::CategoryBulkUpsert, 4).as_deref(), Some("/categories/4"));
/// assert_eq!(input_pointer(JobKind::ItemBulkDelete, 4), None);
/// ```
pub fn input_pointer(kind: JobKind, index: u64) -> Option<String> {
    let list = match kind {
        JobKind::ItemBulkUpsert | JobKind::ItemBulkCreate | JobKind::ItemBulkPatch => "items",
        JobKind::CategoryBulkUpdate | JobKind::CategoryBulkUpsert | JobKind::CategoryBulkCreate => "categories",
        JobKind::ItemBulkDelete | JobKind::CategoryBulkDelete | JobKind::CatalogDelete => return None,
    };
    Some(format!("/{list}/{index}"))
}

/// Collapses inputs sorted by key (a stable sort keeps request order among equal keys) into one
/// entry per key, the last one: repeated ids, the last wins.
///
/// ```
/// use catalog_domain::apply::last_wins;
/// let rows = last_wins(vec![("a", 1), ("b", 2), ("b", 3), ("c", 4)]);
/// assert_eq!(rows, [("a", 1), ("b", 3), ("c", 4)]);
/// ```
pub fn last_wins<K: PartialEq, V>(sorted: impl IntoIterator<Item = (K, V)>) -> Vec<(K, V)> {
    fold_runs(sorted, |_, _, value| value)
}

/// Folds inputs sorted by key (a stable sort keeps request order among equal keys) into one entry
/// per key: `fold(key, what the earlier inputs of the key made, the next input)`, in request
/// order. This is how repeated ids apply exactly as if each input had been applied alone, one
/// after another.
///
/// ```
/// use catalog_domain::apply::fold_runs;
/// let counted = fold_runs(vec![("a", 1), ("b", 2), ("b", 3)], |_, sum: Option<i32>, n| sum.unwrap_or(0) + n);
/// assert_eq!(counted, [("a", 1), ("b", 5)]);
/// ```
pub fn fold_runs<K: PartialEq, T, A>(
    sorted: impl IntoIterator<Item = (K, T)>,
    mut fold: impl FnMut(&K, Option<A>, T) -> A,
) -> Vec<(K, A)> {
    let mut out: Vec<(K, A)> = Vec::new();
    for (key, input) in sorted {
        match out.pop() {
            Some((last, folded)) if last == key => {
                let next = fold(&last, Some(folded), input);
                out.push((last, next));
            }
            other => {
                out.extend(other);
                let first = fold(&key, None, input);
                out.push((key, first));
            }
        }
    }
    out
}

/// An item's fields after a patch: `patch`'s top-level fields replace or add to `current`'s
/// (a nested value is replaced whole). A missing item (`None`) is created from the patch alone
/// when `create_missing`, and is otherwise [`InputFailure::ItemMissing`].
///
/// Generic over the map type so that this crate needs no JSON library; the store passes
/// `serde_json::Map`.
///
/// ```
/// use catalog_domain::apply::{patch_fields, InputFailure};
/// use std::collections::BTreeMap;
///
/// let current = BTreeMap::from([("title", "Boot"), ("color", "red")]);
/// let patched = patch_fields(Some(current), [("color", "blue")], false);
/// assert_eq!(patched, Ok(BTreeMap::from([("title", "Boot"), ("color", "blue")])));
/// assert_eq!(patch_fields::<BTreeMap<&str, &str>, _, _>(None, [("color", "blue")], false), Err(InputFailure::ItemMissing));
/// ```
pub fn patch_fields<M, K, V>(
    current: Option<M>,
    patch: impl IntoIterator<Item = (K, V)>,
    create_missing: bool,
) -> Result<M, InputFailure>
where
    M: Default + Extend<(K, V)>,
{
    let mut fields = match current {
        Some(fields) => fields,
        None if create_missing => M::default(),
        None => return Err(InputFailure::ItemMissing),
    };
    fields.extend(patch);
    Ok(fields)
}

/// An array field after Braze's `$add` / `$remove` operators (a PATCH's only way to change part
/// of an array): every element equal to one in `remove` is dropped, then `add` is appended in
/// order, so a value both removed and added ends up present once per addition. A field that held
/// no array (missing, or another kind of value) starts empty.
///
/// ```
/// use catalog_domain::apply::array_add_remove;
/// let dishes = ["Hamburger", "French Fries", "Hamburger"];
/// assert_eq!(array_add_remove(Some(&dishes[..]), &["Biscuits"], &["Hamburger"]), ["French Fries", "Biscuits"]);
/// assert_eq!(array_add_remove::<&str>(None, &["Biscuits"], &[]), ["Biscuits"]);
/// ```
pub fn array_add_remove<V: PartialEq + Clone>(current: Option<&[V]>, add: &[V], remove: &[V]) -> Vec<V> {
    let mut out: Vec<V> = current.unwrap_or_default().iter().filter(|v| !remove.contains(v)).cloned().collect();
    out.extend(add.iter().cloned());
    out
}

/// A category's stored fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CategoryFields {
    /// Its external id, if any.
    pub external_id: Option<String>,
    /// Its name, if any.
    pub name: Option<String>,
}

/// What one category input asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CategoryChange {
    /// The external id to set; `None`: keep it (update) or clear it (upsert).
    pub external_id: Option<String>,
    /// The name to set; `None`: keep it (update) or clear it (upsert).
    pub name: Option<String>,
    /// The ids of the category's items after the change; `None`: keep them (update) or clear
    /// them (upsert).
    pub item_ids: Option<Vec<String>>,
}

/// What a category becomes: its fields, and its item set when the change replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryOutcome {
    /// The fields to store.
    pub fields: CategoryFields,
    /// The category's items from now on; `None` leaves the stored set alone.
    pub item_ids: Option<Vec<String>>,
}

/// A category update: changes what `change` names and keeps the rest of `current`; a missing
/// category is [`InputFailure::CategoryMissing`] (an update never creates).
///
/// ```
/// use catalog_domain::apply::{update_category, CategoryChange, CategoryFields};
///
/// let current = CategoryFields { external_id: Some("x-1".into()), name: Some("Shoes".into()) };
/// let change = CategoryChange { name: Some("Boots".into()), ..CategoryChange::default() };
/// let outcome = update_category(Some(current), change).unwrap();
/// assert_eq!(outcome.fields, CategoryFields { external_id: Some("x-1".into()), name: Some("Boots".into()) });
/// assert_eq!(outcome.item_ids, None); // the members stay as they are
/// ```
pub fn update_category(
    current: Option<CategoryFields>,
    change: CategoryChange,
) -> Result<CategoryOutcome, InputFailure> {
    let current = current.ok_or(InputFailure::CategoryMissing)?;
    Ok(CategoryOutcome {
        fields: CategoryFields {
            external_id: change.external_id.or(current.external_id),
            name: change.name.or(current.name),
        },
        item_ids: change.item_ids,
    })
}

/// A category upsert: the category becomes exactly what `change` says, whether or not it existed
/// (an absent item list means no items).
///
/// ```
/// use catalog_domain::apply::{upsert_category, CategoryChange};
/// let outcome = upsert_category(CategoryChange { name: Some("Boots".into()), ..CategoryChange::default() });
/// assert_eq!(outcome.fields.external_id, None); // what the upsert does not name is cleared
/// assert_eq!(outcome.item_ids, Some(Vec::new()));
/// ```
pub fn upsert_category(change: CategoryChange) -> CategoryOutcome {
    CategoryOutcome {
        fields: CategoryFields { external_id: change.external_id, name: change.name },
        item_ids: Some(change.item_ids.unwrap_or_default()),
    }
}

/// An item create: `fields` become the item when no item of its id exists; when one does
/// (`exists`), the input fails with [`InputFailure::ItemExists`] and the item is left alone.
///
/// A create never reads what is stored: `exists` is all it needs, which is why the runner looks
/// up ids only, not fields.
///
/// ```
/// use catalog_domain::apply::{create_item, InputFailure};
/// assert_eq!(create_item(false, "fields"), Ok("fields"));
/// assert_eq!(create_item(true, "fields"), Err(InputFailure::ItemExists));
/// ```
pub fn create_item<M>(exists: bool, fields: M) -> Result<M, InputFailure> {
    if exists {
        Err(InputFailure::ItemExists)
    } else {
        Ok(fields)
    }
}

/// A category create: the category becomes what `change` says, exactly as
/// [`upsert_category`] makes a new one, when no category of its id exists; when one does
/// (`exists`), the input fails with [`InputFailure::CategoryExists`] and the category (its name,
/// external id and items) is left alone.
///
/// ```
/// use catalog_domain::apply::{create_category, CategoryChange, InputFailure};
/// let change = CategoryChange { name: Some("Boots".into()), ..CategoryChange::default() };
/// assert_eq!(create_category(false, change.clone()).map(|c| c.item_ids), Ok(Some(Vec::new())));
/// assert_eq!(create_category(true, change), Err(InputFailure::CategoryExists));
/// ```
pub fn create_category(exists: bool, change: CategoryChange) -> Result<CategoryOutcome, InputFailure> {
    if exists {
        Err(InputFailure::CategoryExists)
    } else {
        Ok(upsert_category(change))
    }
}

/// Create-only inputs of one job, sorted by id (a stable sort keeps request order among equal
/// ids), applied with `create` (one of [`create_item`], [`create_category`]): for each id, given
/// whether it `existed` before the job, the first input of an id that does not exist creates it,
/// and every other input fails, since by then the id exists. Answers one
/// `(id, (creating input, what it creates))` per created id, and the failed inputs with their
/// failures, in input order.
///
/// ```
/// use catalog_domain::apply::{create_in_order, create_item, InputFailure};
/// let inputs = vec![("a", 0, "a0"), ("b", 1, "b1"), ("b", 2, "b2"), ("c", 3, "c3")];
/// let (created, failed) = create_in_order(inputs, |id| *id == "c", create_item);
/// assert_eq!(created, [("a", (0, "a0")), ("b", (1, "b1"))]);
/// assert_eq!(failed, [(2, "b", InputFailure::ItemExists), (3, "c", InputFailure::ItemExists)]);
/// ```
#[allow(clippy::type_complexity)] // the pairs are named in the doc above
pub fn create_in_order<K: PartialEq + Clone, I, T>(
    sorted: impl IntoIterator<Item = (K, u64, I)>,
    mut existed: impl FnMut(&K) -> bool,
    mut create: impl FnMut(bool, I) -> Result<T, InputFailure>,
) -> (Vec<(K, (u64, T))>, Vec<(u64, K, InputFailure)>) {
    let mut failed = Vec::new();
    let per_id =
        fold_runs(sorted.into_iter().map(|(id, index, input)| (id, (index, input))), |id, seen, (index, input)| {
            // `seen` is what the earlier inputs of the id left: `Some(Some(_))` once one created it.
            let created: Option<(u64, T)> = seen.flatten();
            let exists = created.is_some() || existed(id);
            match create(exists, input) {
                Ok(row) => Some((index, row)),
                Err(failure) => {
                    failed.push((index, id.clone(), failure));
                    created
                }
            }
        });
    failed.sort_by_key(|(index, _, _)| *index);
    let created = per_id.into_iter().filter_map(|(id, created)| created.map(|c| (id, c))).collect();
    (created, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn patch_merges_top_level_fields_and_replaces_nested_values_whole() {
        let current = BTreeMap::from([("a", "1"), ("nested", "{x:1,y:2}")]);
        let patched = patch_fields(Some(current), [("nested", "{x:3}"), ("b", "2")], false);
        assert_eq!(patched, Ok(BTreeMap::from([("a", "1"), ("b", "2"), ("nested", "{x:3}")])));
    }

    #[test]
    fn patch_of_a_missing_item_fails_unless_missing_items_are_created() {
        let missing: Option<BTreeMap<&str, &str>> = None;
        assert_eq!(patch_fields(missing.clone(), [("a", "1")], false), Err(InputFailure::ItemMissing));
        assert_eq!(patch_fields(missing, [("a", "1")], true), Ok(BTreeMap::from([("a", "1")])));
    }

    #[test]
    fn repeated_patches_apply_in_request_order() {
        let first = patch_fields(Some(BTreeMap::from([("a", "0")])), [("a", "1"), ("b", "1")], false);
        let second = patch_fields(first.ok(), [("a", "2")], false);
        assert_eq!(second, Ok(BTreeMap::from([("a", "2"), ("b", "1")])));
    }

    #[test]
    fn the_last_input_for_an_id_wins() {
        assert_eq!(last_wins(vec![("a", 1), ("a", 2), ("a", 3)]), [("a", 3)]);
        assert_eq!(last_wins(Vec::<(&str, i32)>::new()), []);
    }

    #[test]
    fn a_category_update_keeps_what_it_does_not_name() {
        let current = CategoryFields { external_id: Some("e".into()), name: Some("n".into()) };
        let outcome = update_category(Some(current.clone()), CategoryChange::default());
        assert_eq!(outcome, Ok(CategoryOutcome { fields: current, item_ids: None }));
    }

    #[test]
    fn a_category_update_replaces_the_members_it_names() {
        let change = CategoryChange { item_ids: Some(vec!["i".into()]), ..CategoryChange::default() };
        let outcome = update_category(Some(CategoryFields::default()), change);
        assert_eq!(outcome.map(|o| o.item_ids), Ok(Some(vec!["i".to_owned()])));
    }

    #[test]
    fn array_operators_remove_then_add() {
        assert_eq!(array_add_remove(Some(&[1, 2, 1, 3][..]), &[4, 1], &[1]), [2, 3, 4, 1]);
        assert_eq!(array_add_remove::<u8>(Some(&[][..]), &[], &[7]), Vec::<u8>::new());
        assert_eq!(array_add_remove(None, &[5], &[5]), [5]);
    }

    #[test]
    fn a_category_update_never_creates() {
        assert_eq!(update_category(None, CategoryChange::default()), Err(InputFailure::CategoryMissing));
    }

    #[test]
    fn a_category_upsert_replaces_everything() {
        let outcome = upsert_category(CategoryChange { name: Some("n".into()), ..CategoryChange::default() });
        assert_eq!(outcome.fields, CategoryFields { external_id: None, name: Some("n".into()) });
        assert_eq!(outcome.item_ids, Some(vec![]));
    }

    #[test]
    fn a_create_of_an_existing_id_fails_and_a_new_one_is_created_as_an_upsert_would() {
        assert_eq!(create_item(true, 1), Err(InputFailure::ItemExists));
        assert_eq!(create_item(false, 1), Ok(1));
        let change = CategoryChange { name: Some("n".into()), ..CategoryChange::default() };
        assert_eq!(create_category(true, change.clone()), Err(InputFailure::CategoryExists));
        assert_eq!(create_category(false, change.clone()), Ok(upsert_category(change)));
    }

    #[test]
    fn repeated_creates_of_an_id_create_once_and_fail_after() {
        // "n" is new: its first input creates it, the two after it fail. "s" was stored before the
        // job: all of its inputs fail.
        let inputs = vec![("n", 1, 'a'), ("n", 4, 'b'), ("n", 5, 'c'), ("s", 0, 'd'), ("s", 2, 'e')];
        let (created, failed) = create_in_order(inputs, |id| *id == "s", create_item);
        assert_eq!(created, [("n", (1, 'a'))]);
        let failed: Vec<(u64, &str)> = failed.into_iter().map(|(index, id, _)| (index, id)).collect();
        assert_eq!(failed, [(0, "s"), (2, "s"), (4, "n"), (5, "n")]);
    }

    #[test]
    fn records_point_into_the_request_by_kind() {
        let refused = InputFailure::Refused("too long".into());
        assert_eq!(refused.record(JobKind::ItemBulkDelete, 7, "x").pointer, None);
        assert_eq!(refused.record(JobKind::CategoryBulkUpsert, 2, "c").pointer.as_deref(), Some("/categories/2"));
        assert_eq!(refused.record(JobKind::ItemBulkUpsert, 0, "x").code, ErrorCode::ItemRefused);
        assert_eq!(InputFailure::CategoryMissing.record(JobKind::CategoryBulkUpdate, 1, "c").code, ErrorCode::NotFound);
        let exists = InputFailure::ItemExists.record(JobKind::ItemBulkCreate, 3, "x");
        assert_eq!((exists.code, exists.pointer.as_deref()), (ErrorCode::AlreadyExists, Some("/items/3")));
        let exists = InputFailure::CategoryExists.record(JobKind::CategoryBulkCreate, 1, "c");
        assert_eq!((exists.code, exists.pointer.as_deref()), (ErrorCode::AlreadyExists, Some("/categories/1")));
    }
}
