//! The create bodies of the six job types, in both revisions' shapes (contracts/klaviyo.md,
//! "Create bodies"): since 2023-07-15 `attributes.items` (or `categories`) is `{"data":[...]}`;
//! before, it was the array itself. Ids are checked by catalog-domain's compound-id rules; every
//! bad one is reported with the JSON pointer of its `id` (or, for a create, of its
//! `attributes.external_id`). What no backend can store (catalog-domain's `storable`: a NUL in a
//! category's name or in any id, an id over 1,024 bytes) is reported the same way, and a body
//! that repeats a key in an object is not valid JSON here.

use super::error::KlaviyoError;
use super::wire::{JobType, CATEGORY_TYPE, ITEM_REQUIRED_ATTRIBUTES, ITEM_STORED_ATTRIBUTES, ITEM_TYPE};
use crate::extract::parse_json;
use catalog_domain::klaviyo::{validate_compound_ids, CompoundId, CUSTOM_INTEGRATION, DEFAULT_CATALOG};
use catalog_domain::storable::check_member;
use catalog_domain::{check_id, BatchProblem, Dialect, RawId};
use catalog_store::{CategoryInput, ItemInput};
use serde_json::{Map, Value};

/// One parsed category of a category update job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryUpdate {
    /// Its external id (the part after `$custom:::$default:::`).
    pub external_id: String,
    /// `attributes.name`, when given.
    pub name: Option<String>,
    /// External ids of `relationships.items`, when given (they replace the category's items).
    pub item_ids: Option<Vec<String>>,
}

impl From<CategoryUpdate> for CategoryInput {
    fn from(update: CategoryUpdate) -> Self {
        CategoryInput {
            id: RawId::String(update.external_id),
            external_id: None,
            name: update.name,
            item_ids: update.item_ids,
        }
    }
}

/// One parsed item of an item create or update job: its external id and the Klaviyo attributes
/// it sets, which become the item's fields under the same names.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChange {
    /// Its external id.
    pub external_id: String,
    /// The attributes given (a create: all of them; an update: those to change).
    pub fields: Map<String, Value>,
}

impl From<ItemChange> for ItemInput {
    fn from(change: ItemChange) -> Self {
        ItemInput { id: RawId::String(change.external_id), fields: change.fields }
    }
}

/// A validated create body.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateBody {
    /// The items to create.
    ItemCreate(Vec<ItemChange>),
    /// The items to update.
    ItemUpdate(Vec<ItemChange>),
    /// External ids of the items to delete.
    ItemDelete(Vec<String>),
    /// The categories to create.
    CategoryCreate(Vec<CategoryUpdate>),
    /// The categories to update.
    CategoryUpdate(Vec<CategoryUpdate>),
    /// External ids of the categories to delete.
    CategoryDelete(Vec<String>),
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'v>(value: Option<&'v Value>, pointer: &str) -> Result<&'v serde_json::Map<String, Value>, KlaviyoError> {
    match value {
        Some(Value::Object(map)) => Ok(map),
        Some(other) => {
            Err(KlaviyoError::pointer(pointer, format!("'{pointer}' must be an object, not {}.", kind_of(other))))
        }
        None => Err(KlaviyoError::pointer(pointer, format!("'{pointer}' is required."))),
    }
}

/// The resource objects of a relationship-like member: `{"data": [...]}` (current revisions) or
/// the bare array (revisions up to 2023-02-22). Returns the array and the pointer of its elements.
fn resource_array<'v>(value: Option<&'v Value>, pointer: &str) -> Result<(&'v Vec<Value>, String), KlaviyoError> {
    match value {
        Some(Value::Array(entries)) => Ok((entries, pointer.to_owned())),
        Some(Value::Object(map)) => match map.get("data") {
            Some(Value::Array(entries)) => Ok((entries, format!("{pointer}/data"))),
            Some(other) => Err(KlaviyoError::pointer(
                format!("{pointer}/data"),
                format!("'{pointer}/data' must be an array, not {}.", kind_of(other)),
            )),
            None => Err(KlaviyoError::pointer(format!("{pointer}/data"), format!("'{pointer}/data' is required."))),
        },
        Some(other) => Err(KlaviyoError::pointer(
            pointer,
            format!("'{pointer}' must be an object with 'data', not {}.", kind_of(other)),
        )),
        None => Err(KlaviyoError::pointer(pointer, format!("'{pointer}' is required."))),
    }
}

/// Checks a resource object's `type` and returns its raw `id`.
fn resource_id(entry: &Value, pointer: &str, expected_type: &str) -> Result<RawId, KlaviyoError> {
    let map = object(Some(entry), pointer)?;
    match map.get("type") {
        Some(Value::String(t)) if t == expected_type => {}
        Some(other) => {
            return Err(KlaviyoError::pointer(
                format!("{pointer}/type"),
                format!("'{pointer}/type' must be '{expected_type}', not {other}."),
            ))
        }
        None => return Err(KlaviyoError::pointer(format!("{pointer}/type"), format!("'{pointer}/type' is required."))),
    }
    Ok(match map.get("id") {
        Some(Value::String(id)) => RawId::String(id.clone()),
        Some(_) => RawId::NotAString,
        None => RawId::Missing,
    })
}

/// Validates the compound ids of `ids` (in request order); on any bad one, every problem is
/// reported with the pointer of its `id`.
fn external_ids(ids: Vec<RawId>, pointer: &str, member: &str) -> Result<Vec<String>, KlaviyoError> {
    let verdicts = validate_compound_ids(ids).map_err(|problem| match problem {
        BatchProblem::TooManyItems { max, got } => KlaviyoError::pointer(
            pointer,
            format!("At most {max} resources are allowed per job; this request has {got}."),
        ),
        BatchProblem::Empty => KlaviyoError::pointer(pointer, "At least one resource is required."),
    })?;
    let mut good = Vec::with_capacity(verdicts.len());
    let mut problems = Vec::new();
    for (index, verdict) in verdicts.into_iter().enumerate() {
        match verdict {
            Ok(external_id) => good.push(external_id),
            Err(problem) => problems.push((format!("{pointer}/{index}/{member}"), problem.detail())),
        }
    }
    if problems.is_empty() {
        Ok(good)
    } else {
        Err(KlaviyoError::pointers(problems))
    }
}

/// Parses and validates a create body of `job_type`.
pub fn parse(body: &[u8], job_type: JobType) -> Result<CreateBody, KlaviyoError> {
    let document: Value = parse_json(body)
        .map_err(|e| KlaviyoError::pointer("/", format!("The request body is not valid JSON: {e}.")))?;
    let data = object(document.get("data"), "/data")?;
    match data.get("type") {
        Some(Value::String(t)) if t == job_type.type_name() => {}
        Some(other) => {
            return Err(KlaviyoError::pointer(
                "/data/type",
                format!("'/data/type' must be '{}', not {other}.", job_type.type_name()),
            ))
        }
        None => return Err(KlaviyoError::pointer("/data/type", "'/data/type' is required.")),
    }
    let attributes = object(data.get("attributes"), "/data/attributes")?;
    let member = job_type.member();
    let (entries, pointer) = resource_array(attributes.get(member), &format!("/data/attributes/{member}"))?;
    let ids_of = |expected_type: &str| -> Result<Vec<String>, KlaviyoError> {
        let ids = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| resource_id(entry, &format!("{pointer}/{index}"), expected_type))
            .collect::<Result<Vec<_>, _>>()?;
        external_ids(ids, &pointer, "id")
    };
    match job_type {
        JobType::ItemDelete => Ok(CreateBody::ItemDelete(ids_of(ITEM_TYPE)?)),
        JobType::CategoryDelete => Ok(CreateBody::CategoryDelete(ids_of(CATEGORY_TYPE)?)),
        JobType::ItemCreate => {
            let mut ids = Vec::with_capacity(entries.len());
            let mut fields = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                let at = format!("{pointer}/{index}");
                resource_type(entry, &at, ITEM_TYPE)?;
                let (external_id, attributes) = created_attributes(entry, &at, ITEM_REQUIRED_ATTRIBUTES)?;
                ids.push(external_id);
                fields.push(item_fields(attributes, &at, true)?);
                no_item_categories(entry, &at)?;
            }
            let external = external_ids(ids, &pointer, "attributes/external_id")?;
            let changes =
                external.into_iter().zip(fields).map(|(external_id, fields)| ItemChange { external_id, fields });
            Ok(CreateBody::ItemCreate(changes.collect()))
        }
        JobType::ItemUpdate => {
            let mut ids = Vec::with_capacity(entries.len());
            let mut fields = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                let at = format!("{pointer}/{index}");
                ids.push(resource_id(entry, &at, ITEM_TYPE)?);
                let attributes = object(entry.get("attributes"), &format!("{at}/attributes"))?;
                fields.push(item_fields(attributes, &at, false)?);
                no_item_categories(entry, &at)?;
            }
            let external = external_ids(ids, &pointer, "id")?;
            let changes =
                external.into_iter().zip(fields).map(|(external_id, fields)| ItemChange { external_id, fields });
            Ok(CreateBody::ItemUpdate(changes.collect()))
        }
        JobType::CategoryCreate => {
            let mut ids = Vec::with_capacity(entries.len());
            let mut rest = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                let at = format!("{pointer}/{index}");
                resource_type(entry, &at, CATEGORY_TYPE)?;
                let (external_id, _) = created_attributes(entry, &at, &["external_id", "name"])?;
                ids.push(external_id);
                rest.push(category_details(entry, &at)?);
            }
            let external = external_ids(ids, &pointer, "attributes/external_id")?;
            Ok(CreateBody::CategoryCreate(categories(external, rest)))
        }
        JobType::CategoryUpdate => {
            let mut ids = Vec::with_capacity(entries.len());
            let mut rest = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                let at = format!("{pointer}/{index}");
                ids.push(resource_id(entry, &at, CATEGORY_TYPE)?);
                rest.push(category_details(entry, &at)?);
            }
            let external = external_ids(ids, &pointer, "id")?;
            Ok(CreateBody::CategoryUpdate(categories(external, rest)))
        }
    }
}

/// The parsed categories, from their external ids and the details of each.
#[allow(clippy::type_complexity)] // the pair `category_details` answers
fn categories(external: Vec<String>, rest: Vec<(Option<String>, Option<Vec<String>>)>) -> Vec<CategoryUpdate> {
    external
        .into_iter()
        .zip(rest)
        .map(|(external_id, (name, item_ids))| CategoryUpdate { external_id, name, item_ids })
        .collect()
}

/// Checks a resource object's `type`.
fn resource_type(entry: &Value, pointer: &str, expected_type: &str) -> Result<(), KlaviyoError> {
    let map = object(Some(entry), pointer)?;
    match map.get("type") {
        Some(Value::String(t)) if t == expected_type => Ok(()),
        Some(other) => Err(KlaviyoError::pointer(
            format!("{pointer}/type"),
            format!("'{pointer}/type' must be '{expected_type}', not {other}."),
        )),
        None => Err(KlaviyoError::pointer(format!("{pointer}/type"), format!("'{pointer}/type' is required."))),
    }
}

/// The `attributes` of a resource to create: each of `required` must be there, the external id a
/// string (answered as the raw id the batch check judges), and `integration_type` and
/// `catalog_type`, when given, Klaviyo's only ones.
fn created_attributes<'v>(
    entry: &'v Value,
    pointer: &str,
    required: &[&str],
) -> Result<(RawId, &'v Map<String, Value>), KlaviyoError> {
    let attributes = object(entry.get("attributes"), &format!("{pointer}/attributes"))?;
    for name in required {
        if attributes.get(*name).is_none_or(Value::is_null) {
            let at = format!("{pointer}/attributes/{name}");
            return Err(KlaviyoError::pointer(at, format!("'{name}' is required.")));
        }
    }
    for (name, only) in [("integration_type", CUSTOM_INTEGRATION), ("catalog_type", DEFAULT_CATALOG)] {
        match attributes.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(value)) if value == only => {}
            Some(other) => {
                return Err(KlaviyoError::pointer(
                    format!("{pointer}/attributes/{name}"),
                    format!("'{name}' must be \"{only}\", the only one supported, not {other}."),
                ))
            }
        }
    }
    // The batch check reads compound ids: a plain external id is judged as the one it makes.
    let id = match attributes.get("external_id") {
        Some(Value::String(id)) => RawId::String(CompoundId::custom_default(id.as_str()).render()),
        _ => RawId::NotAString,
    };
    Ok((id, attributes))
}

/// The item fields of an item create or update: Klaviyo's item attributes, each of its type
/// (`null` allowed where Klaviyo's schema allows it); `external_id`, `integration_type` and
/// `catalog_type` are not fields. Anything else is refused.
fn item_fields(
    attributes: &Map<String, Value>,
    pointer: &str,
    create: bool,
) -> Result<Map<String, Value>, KlaviyoError> {
    let mut fields = Map::new();
    for (name, value) in attributes {
        let at = format!("{pointer}/attributes/{name}");
        if create && matches!(name.as_str(), "external_id" | "integration_type" | "catalog_type") {
            continue;
        }
        if !ITEM_STORED_ATTRIBUTES.contains(&name.as_str()) {
            return Err(KlaviyoError::pointer(at, format!("'{name}' is not an attribute of a catalog item.")));
        }
        // A create must give these four as strings; everything else may be null.
        let nullable = !(create && ITEM_REQUIRED_ATTRIBUTES.contains(&name.as_str()));
        let fits = match (name.as_str(), value) {
            (_, Value::Null) => nullable,
            ("price", Value::Number(_)) | ("published", Value::Bool(_)) | ("custom_metadata", Value::Object(_)) => true,
            ("images", Value::Array(urls)) => urls.iter().all(Value::is_string),
            ("title" | "description" | "url" | "image_full_url" | "image_thumbnail_url", Value::String(_)) => true,
            _ => false,
        };
        if !fits {
            let expected = match name.as_str() {
                "price" => "a number",
                "published" => "a boolean",
                "custom_metadata" => "an object",
                "images" => "an array of strings",
                _ => "a string",
            };
            return Err(KlaviyoError::pointer(at, format!("'{name}' must be {expected}, not {}.", kind_of(value))));
        }
        fields.insert(name.clone(), value.clone());
    }
    Ok(fields)
}

/// catalogd keeps an item's categories on the categories (their item sets), so an item job
/// cannot set them: `relationships.categories` is refused unless empty, pointing at the category
/// jobs that can (docs/compat/klaviyo.md).
fn no_item_categories(entry: &Value, pointer: &str) -> Result<(), KlaviyoError> {
    match entry.pointer("/relationships/categories") {
        None | Some(Value::Null) => Ok(()),
        Some(categories) => {
            let at = format!("{pointer}/relationships/categories");
            let (members, _) = resource_array(Some(categories), &at)?;
            if members.is_empty() {
                return Ok(());
            }
            Err(KlaviyoError::pointer(
                at,
                "An item's categories cannot be set by an item job here: send the items as the category's \
                 `relationships.items` in a category create or update job.",
            ))
        }
    }
}

/// `attributes.name` and `relationships.items` of one category.
#[allow(clippy::type_complexity)] // a private pair, named at its one use
fn category_details(entry: &Value, pointer: &str) -> Result<(Option<String>, Option<Vec<String>>), KlaviyoError> {
    let name = match entry.pointer("/attributes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(attributes)) => match attributes.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => {
                check_member("name", name).map_err(|problem| {
                    KlaviyoError::pointer(format!("{pointer}/attributes/name"), problem.klaviyo_detail())
                })?;
                Some(name.clone())
            }
            Some(other) => {
                return Err(KlaviyoError::pointer(
                    format!("{pointer}/attributes/name"),
                    format!("'name' must be a string, not {}.", kind_of(other)),
                ))
            }
        },
        Some(other) => {
            return Err(KlaviyoError::pointer(
                format!("{pointer}/attributes"),
                format!("'attributes' must be an object, not {}.", kind_of(other)),
            ))
        }
    };
    let items = match entry.pointer("/relationships/items") {
        None | Some(Value::Null) => None,
        Some(items) => {
            let (members, members_pointer) = resource_array(Some(items), &format!("{pointer}/relationships/items"))?;
            let mut ids = Vec::with_capacity(members.len());
            let mut problems = Vec::new();
            for (index, member) in members.iter().enumerate() {
                let at = format!("{members_pointer}/{index}");
                // Item ids of a category are not capped at 100 like a job's inputs, so each is
                // parsed on its own rather than as a batch.
                match resource_id(member, &at, "catalog-item")? {
                    RawId::String(id) => match CompoundId::parse(&id) {
                        Ok(compound) => match check_id(Dialect::Klaviyo, &compound.external_id) {
                            Ok(()) => ids.push(compound.external_id),
                            Err(problem) => problems.push((format!("{at}/id"), problem.klaviyo_detail())),
                        },
                        Err(error) => problems.push((format!("{at}/id"), error.detail())),
                    },
                    RawId::NotAString => {
                        problems.push((format!("{at}/id"), "The resource object's `id` must be a string.".to_owned()))
                    }
                    RawId::Missing => {
                        problems.push((format!("{at}/id"), "The resource object has no `id`.".to_owned()))
                    }
                }
            }
            if !problems.is_empty() {
                return Err(KlaviyoError::pointers(problems));
            }
            Some(ids)
        }
    };
    Ok((name, items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(body: Value, job_type: JobType) -> Result<CreateBody, KlaviyoError> {
        parse(body.to_string().as_bytes(), job_type)
    }

    #[test]
    fn both_item_revisions_parse() {
        let item = json!({"type": "catalog-item", "id": "$custom:::$default:::A"});
        let current =
            json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": {"data": [item]}}}});
        let old = json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": [item]}}});
        for body in [current, old] {
            assert_eq!(parse_json(body, JobType::ItemDelete).ok(), Some(CreateBody::ItemDelete(vec!["A".to_owned()])));
        }
    }

    #[test]
    fn bad_ids_are_all_reported_with_pointers() {
        let body = json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": {"data": [
            {"type": "catalog-item", "id": "A"},
            {"type": "catalog-item", "id": "$custom:::$default:::B"},
            {"type": "catalog-item", "id": 3},
        ]}}}});
        let error = parse_json(body, JobType::ItemDelete).err().map(|e| e.entries);
        let pointers: Vec<_> = error
            .unwrap_or_default()
            .into_iter()
            .map(|e| match e.source {
                super::super::error::Source::Pointer(p) => p,
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(pointers, ["/data/attributes/items/data/0/id", "/data/attributes/items/data/2/id"]);
    }

    #[test]
    fn categories_parse_with_names_and_items() {
        let body = json!({"data": {"type": "catalog-category-bulk-update-job", "attributes": {"categories": {"data": [
            {"type": "catalog-category", "id": "$custom:::$default:::APPAREL", "attributes": {"name": "Apparel"},
             "relationships": {"items": {"data": [{"type": "catalog-item", "id": "$custom:::$default:::I1"}]}}},
            {"type": "catalog-category", "id": "$custom:::$default:::SHOES", "attributes": {}},
        ]}}}});
        let parsed = parse_json(body, JobType::CategoryUpdate).ok();
        assert_eq!(
            parsed,
            Some(CreateBody::CategoryUpdate(vec![
                CategoryUpdate {
                    external_id: "APPAREL".into(),
                    name: Some("Apparel".into()),
                    item_ids: Some(vec!["I1".into()])
                },
                CategoryUpdate { external_id: "SHOES".into(), name: None, item_ids: None },
            ]))
        );
    }
}
