//! The create bodies of both job types, in both revisions' shapes (contracts/klaviyo.md, "Create
//! bodies"): since 2023-07-15 `attributes.items` (or `categories`) is `{"data":[...]}`; before, it
//! was the array itself. Ids are checked by catalog-domain's compound-id rules; every bad one is
//! reported with the JSON pointer of its `id`. What no backend can store (catalog-domain's
//! `storable`: a NUL in a category's name or in any id, an id over 1,024 bytes) is reported the
//! same way, and a body that repeats a key in an object is not valid JSON here.

use super::error::KlaviyoError;
use super::JobType;
use crate::extract::parse_json;
use catalog_domain::klaviyo::{validate_compound_ids, CompoundId};
use catalog_domain::storable::check_member;
use catalog_domain::{check_id, BatchProblem, Dialect, RawId};
use catalog_store::CategoryInput;
use serde_json::Value;

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

/// A validated create body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateBody {
    /// External ids of the items to delete.
    ItemDelete(Vec<String>),
    /// The categories to update.
    CategoryUpdate(Vec<CategoryUpdate>),
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
fn external_ids(ids: Vec<RawId>, pointer: &str) -> Result<Vec<String>, KlaviyoError> {
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
            Err(problem) => problems.push((format!("{pointer}/{index}/id"), problem.detail())),
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
    match job_type {
        JobType::ItemDelete => {
            let ids = entries
                .iter()
                .enumerate()
                .map(|(index, entry)| resource_id(entry, &format!("{pointer}/{index}"), "catalog-item"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(CreateBody::ItemDelete(external_ids(ids, &pointer)?))
        }
        JobType::CategoryUpdate => {
            let mut ids = Vec::with_capacity(entries.len());
            let mut rest = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                let at = format!("{pointer}/{index}");
                ids.push(resource_id(entry, &at, "catalog-category")?);
                rest.push(category_details(entry, &at)?);
            }
            let external = external_ids(ids, &pointer)?;
            Ok(CreateBody::CategoryUpdate(
                external
                    .into_iter()
                    .zip(rest)
                    .map(|(external_id, (name, item_ids))| CategoryUpdate { external_id, name, item_ids })
                    .collect(),
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
