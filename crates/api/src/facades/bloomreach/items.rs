//! Bloomreach's item endpoints: the bulk ones (bulk delete, bulk update, partial update: one
//! result per input, a bad input fails alone), the single-item ones the Exponea SDK calls, and the
//! item list.

use super::auth::{bulk_guard, native, with_decision, with_rate, Call};
use super::error::{batch_message, id_problem_message, Failure, INVALID_JSON, NOT_A_LIST, PAYLOAD_TOO_LARGE};
use crate::extract::{is_json_content_type, parse_json, read_body_within};
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalog_domain::catalog::{check_property, DeclaredProperty, PropertyProblem, PropertyType, PropertyValue};
use catalog_domain::ids::check_batch_len;
use catalog_domain::rate::RateDecision;
use catalog_domain::{Dialect, ErrorCode, IdVerdict, RawId};
use catalog_store::{BulkOutcome, CatalogField, ItemInput, ItemSearch, JobOptions, PatchInput, Scope, StoreError};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Items per page of the item list when `count` is not given.
pub(super) const DEFAULT_COUNT: u32 = 20;
/// Largest `count + skip` of the item list (Bloomreach: 1,001).
pub(super) const MAX_COUNT_AND_SKIP: u64 = 1_001;

/// The request's JSON (any JSON; callers check its shape). A content type other than JSON is 400
/// (none at all is accepted).
pub(super) async fn json_body(state: &AppState, request: Request) -> Result<Value, Failure> {
    if request.headers().contains_key(header::CONTENT_TYPE) && !is_json_content_type(request.headers()) {
        return Err(Failure::bad_request("Invalid content type. The payload should be sent as application/json"));
    }
    let max = Dialect::Bloomreach.limits().max_body_bytes.min(state.max_body_bytes);
    let bytes = read_body_within(request, state, max).await.map_err(|error| {
        if error.code == ErrorCode::PayloadTooLarge {
            Failure::bad_request(PAYLOAD_TOO_LARGE)
        } else {
            Failure::bad_request(INVALID_JSON)
        }
    })?;
    // A repeated key is refused like any JSON that cannot be read one way.
    parse_json(&bytes).map_err(|_| Failure::bad_request(INVALID_JSON))
}

/// A bulk body: a JSON list within the dialect's item limit.
pub(super) async fn bulk_list(state: &AppState, request: Request) -> Result<Vec<Value>, Failure> {
    let Value::Array(entries) = json_body(state, request).await? else {
        return Err(Failure::bad_request(NOT_A_LIST));
    };
    check_batch_len(Dialect::Bloomreach, entries.len())
        .map_err(|problem| Failure::bad_request(batch_message(&problem)))?;
    Ok(entries)
}

pub(super) fn raw_id(value: Option<&Value>) -> RawId {
    match value {
        None => RawId::Missing,
        Some(Value::String(id)) => RawId::String(id.clone()),
        Some(_) => RawId::NotAString,
    }
}

/// The outcome of one input: accepted (queued), or refused with a message.
pub(super) type ItemResult = Result<(), String>;

pub(super) fn result_json(result: &ItemResult) -> Value {
    match result {
        Ok(()) => json!({"success": true, "queued": true}),
        Err(message) => json!({"success": false, "queued": false, "errors": {"_global": [message]}}),
    }
}

pub(super) fn verdict_result(verdict: &IdVerdict) -> ItemResult {
    verdict.as_ref().map(|_| ()).map_err(id_problem_message)
}

/// The store's verdicts of a bulk call, whether it created a job or found nothing valid.
pub(super) fn verdicts_of(outcome: Result<BulkOutcome, StoreError>) -> Result<Vec<IdVerdict>, Failure> {
    match outcome {
        Ok(outcome) => Ok(outcome.results),
        Err(StoreError::NoValidItems { results } | StoreError::InvalidItems { results }) => Ok(results),
        Err(other) => Err(other.into()),
    }
}

/// Path `{project_id}` and `{catalog_id}`, or the dialect's 404.
pub(super) fn catalog_path(path: Result<Path<(String, String)>, PathRejection>) -> Result<(String, String), Failure> {
    path.map(|Path(p)| p).map_err(|_| Failure::not_found())
}

/// Renders a bulk endpoint's answer: the per-input list, or the failure, with the quota headers.
pub(super) fn bulk_answer(result: Result<(Vec<ItemResult>, Option<RateDecision>), Failure>) -> Response {
    match result {
        Ok((results, decision)) => {
            let body: Vec<Value> = results.iter().map(result_json).collect();
            with_rate(Json(body).into_response(), decision)
        }
        Err(failure) => failure.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Bulk endpoints

/// `POST|DELETE .../catalogs/{catalog_id}/items/bulk-delete`: deletes the listed ids (a missing item
/// counts as deleted).
pub(super) async fn bulk_delete(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    bulk_answer(
        async {
            let (project_key, catalog) = catalog_path(path)?;
            let headers = request.headers().clone();
            let (principal, decision, _) = bulk_guard(&state, &headers, &project_key, &catalog).await?;
            let entries = bulk_list(&state, request).await.map_err(with_decision(decision))?;
            let ids: Vec<RawId> = entries
                .iter()
                .map(|entry| match entry {
                    Value::Object(item) => raw_id(item.get("item_id")),
                    other => raw_id(Some(other)),
                })
                .collect();
            let outcome = state
                .store
                .bulk_delete_items(principal.project_id, &catalog, Dialect::Bloomreach, ids, &JobOptions::default())
                .await;
            let results = verdicts_of(outcome)?.iter().map(verdict_result).collect();
            Ok((results, decision))
        }
        .await,
    )
}

/// One parsed update input: the item for the store, and whether a missing item is created.
pub(super) struct UpdateInput {
    item: ItemInput,
    upsert: bool,
}

/// Parses an update entry `{"item_id", "properties"?, "upsert"?}`.
pub(super) fn update_input(entry: Value, with_upsert: bool) -> Result<UpdateInput, String> {
    let Value::Object(mut entry) = entry else {
        return Err("Malformed item. Item should be an object with an item_id".to_owned());
    };
    let fields = match entry.remove("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(properties)) => properties,
        Some(_) => return Err("Malformed properties. Properties should be an object".to_owned()),
    };
    let upsert = match entry.remove("upsert") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(upsert)) if with_upsert => upsert,
        Some(_) if with_upsert => return Err("Malformed upsert. Upsert should be a boolean".to_owned()),
        // Bulk update always upserts; a stray `upsert` there changes nothing.
        Some(_) => false,
    };
    Ok(UpdateInput { item: ItemInput { id: raw_id(entry.get("item_id")), fields }, upsert })
}

/// `PUT .../catalogs/{catalog_id}/items` (`PARTIAL` false: bulk update, the items' properties
/// replaced, missing items created) and `POST .../catalogs/{catalog_id}/items/partial-update`
/// (`PARTIAL` true: the given properties merged; a missing item created only when its `upsert`
/// is true).
pub(super) async fn update<const PARTIAL: bool>(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    bulk_answer(update_items(state, path, request, PARTIAL).await)
}

async fn update_items(
    state: AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
    partial: bool,
) -> Result<(Vec<ItemResult>, Option<RateDecision>), Failure> {
    let (project_key, catalog) = catalog_path(path)?;
    let headers = request.headers().clone();
    let (principal, decision, declared) = bulk_guard(&state, &headers, &project_key, &catalog).await?;
    let entries = bulk_list(&state, request).await.map_err(with_decision(decision))?;
    let mut results: Vec<ItemResult> = vec![Ok(()); entries.len()];
    // One job for the whole request: each input carries its own `upsert` (a partial update's
    // per-input create flag, which the store keeps in the job's payload).
    let mut group: Vec<(usize, UpdateInput)> = Vec::with_capacity(entries.len());
    for (position, entry) in entries.into_iter().enumerate() {
        match update_input(entry, partial)
            .and_then(|input| property_problem(&input.item.fields, &declared).map_or(Ok(input), Err))
        {
            Ok(input) => group.push((position, input)),
            Err(message) => {
                if let Some(slot) = results.get_mut(position) {
                    *slot = Err(message);
                }
            }
        }
    }
    if group.is_empty() {
        return Ok((results, decision));
    }
    let (positions, inputs): (Vec<usize>, Vec<UpdateInput>) = group.into_iter().unzip();
    let (store, project, options) = (&state.store, principal.project_id, JobOptions::default());
    let outcome = if partial {
        let inputs = inputs
            .into_iter()
            .map(|input| PatchInput { item: input.item, create_missing: input.upsert, array_ops: Vec::new() })
            .collect();
        store.bulk_patch_items_with_directives(project, &catalog, Dialect::Bloomreach, inputs, &options).await
    } else {
        let items = inputs.into_iter().map(|input| input.item).collect();
        store.bulk_upsert_items(project, &catalog, Dialect::Bloomreach, items, &options).await
    };
    for (position, verdict) in positions.into_iter().zip(verdicts_of(outcome).map_err(with_decision(decision))?) {
        if let Some(slot) = results.get_mut(position) {
            *slot = verdict_result(&verdict);
        }
    }
    Ok((results, decision))
}

/// A non-negative integer query parameter, or the dialect's 400.
pub(super) fn query_number(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, Failure> {
    query
        .get(name)
        .map(|text| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| Failure::bad_request(format!("Invalid {name}. It should be a non-negative integer")))
        })
        .transpose()
}

/// Where the item list's `query` looks, and whether in the item id: in `field` alone when it is
/// given (it must be a searchable field when the catalog declares its fields, else 400); else in
/// the item id and every property, or only the searchable ones when the catalog declares fields.
pub(super) fn searched_fields(
    field: Option<&String>,
    declared: &[CatalogField],
) -> Result<(Option<Vec<String>>, bool), Failure> {
    // A field declared where `searchable` means nothing (Braze) is not kept from the search.
    let searchable = |field: &&CatalogField| field.searchable.unwrap_or(true);
    match field {
        Some(field) if !declared.is_empty() && !declared.iter().filter(searchable).any(|f| &f.name == field) => Err(
            Failure::bad_request(format!("Invalid field. Field '{field}' is not a searchable field of the catalog")),
        ),
        Some(field) => Ok((Some(vec![field.clone()]), false)),
        None if declared.is_empty() => Ok((None, true)),
        None => Ok((Some(declared.iter().filter(searchable).map(|f| f.name.clone()).collect()), true)),
    }
}

/// `GET .../catalogs/{catalog_id}/items?query=&field=&order=&count=&skip=`: the items whose
/// `field` (when not given: the item id or any searchable property, see `searched_fields`)
/// contains `query`, in id order (`order`
/// `asc`, the default, or `desc`), `count` (20) of them after `skip`, with `count + skip` at most
/// 1,001; the answer says how many matched and how many the catalog holds.
pub(super) async fn list_items(Query(query): Query<HashMap<String, String>>, call: Call<(String, String)>) -> Response {
    native(call, Scope::CatalogsRead, |state, principal, (_, catalog), _| async move {
        let count = query_number(&query, "count")?.unwrap_or(u64::from(DEFAULT_COUNT));
        let skip = query_number(&query, "skip")?.unwrap_or(0);
        if count == 0 || count.saturating_add(skip) > MAX_COUNT_AND_SKIP {
            return Err(Failure::bad_request(format!(
                "Invalid count and skip. count should be at least 1 and count + skip at most {MAX_COUNT_AND_SKIP}"
            )));
        }
        let descending = match query.get("order").map(String::as_str) {
            None | Some("" | "asc") => false,
            Some("desc") => true,
            Some(_) => return Err(Failure::bad_request("Invalid order. It should be asc or desc")),
        };
        let (_, declared) = state.store.find_catalog_with_fields(principal.project_id, &catalog).await?;
        let (fields, in_id) = searched_fields(query.get("field").filter(|f| !f.is_empty()), &declared)?;
        let search = ItemSearch {
            query: query.get("query").cloned(),
            fields,
            in_id,
            descending,
            skip,
            limit: u32::try_from(count).unwrap_or(u32::MAX),
        };
        let page = state.store.search_items(principal.project_id, &catalog, &search).await?;
        let data: Vec<Value> = page
            .rows
            .into_iter()
            .map(|item| json!({"catalog_id": catalog, "item_id": item.id, "properties": item.fields}))
            .collect();
        Ok(json!({
            "data": data,
            "matched": page.matched,
            "limit": count,
            "skip": skip,
            "total": page.total,
            // catalogd counts every match; Bloomreach caps the count of a large search.
            "matched_limited": false,
            "success": true,
        }))
    })
    .await
}

/// The first property of `properties` the catalog's declared fields refuse (catalog-domain's
/// `check_property`: undeclared, or a value its type does not take), in Bloomreach's words.
pub(super) fn property_problem(properties: &Map<String, Value>, declared: &[CatalogField]) -> Option<String> {
    let declared: Vec<DeclaredProperty<'_>> =
        declared.iter().map(|field| (field.name.as_str(), PropertyType::parse(&field.field_type))).collect();
    properties.iter().find_map(|(name, value)| {
        check_property(&declared, name, property_value(value)).err().map(|problem| match problem {
            PropertyProblem::Undeclared => {
                format!("Invalid properties. Property '{name}' is not a field of the catalog")
            }
            PropertyProblem::WrongType(ty) => {
                format!("Invalid properties. Property '{name}' should be {}", type_expectation(ty))
            }
        })
    })
}

/// What a field of type `ty` takes, worded for a message (Bloomreach documents none).
const fn type_expectation(ty: PropertyType) -> &'static str {
    match ty {
        PropertyType::String => "a string (text, a number or a boolean)",
        PropertyType::LongText => "a long text (text, a number or a boolean)",
        PropertyType::Number => "a number",
        PropertyType::Boolean => "a boolean (true, false, 1 or 0)",
        PropertyType::Date => "a date (a UNIX timestamp in seconds)",
        PropertyType::Datetime => "a datetime (a UNIX timestamp in seconds)",
        PropertyType::List => "a list",
        PropertyType::Url => "a URL (http or https)",
        PropertyType::Json => "JSON (an object or a list)",
    }
}

fn property_value(value: &Value) -> PropertyValue<'_> {
    match value {
        Value::Null => PropertyValue::Null,
        Value::Bool(flag) => PropertyValue::Bool(*flag),
        // Every JSON number reads as an `f64` (an out-of-range one as infinite).
        Value::Number(number) => PropertyValue::Number(number.as_f64().unwrap_or(f64::INFINITY)),
        Value::String(text) => PropertyValue::String(text),
        Value::Array(_) => PropertyValue::List,
        Value::Object(_) => PropertyValue::Object,
    }
}

/// A single-item body, `{"properties": {...}}` (and, for partial update, `"upsert"`).
async fn single_body(state: &AppState, request: Request) -> Result<Map<String, Value>, Failure> {
    match json_body(state, request).await? {
        Value::Object(body) => Ok(body),
        _ => Err(Failure::bad_request("Malformed payload. The payload should be an object with properties")),
    }
}

/// What a single-item endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SingleAction {
    /// `PUT .../items/{item_id}` `{"properties"}`: creates or replaces the item.
    Replace,
    /// `POST .../items/{item_id}/partial-update` `{"properties", "upsert"?}`: merges the
    /// properties into the item (a missing item is created only with `upsert`).
    Update,
    /// `DELETE .../items/{item_id}`: deletes the item (a missing one counts as deleted, as in
    /// bulk delete).
    Delete,
}

crate::facades::action_types!(Single: SingleAction { Replace, Update, Delete });

/// `.../catalogs/{catalog_id}/items/{item_id}`: the action of `A` ([`SingleAction`]) on the item,
/// as one job; `{"success":true}` once the job is accepted.
pub(super) async fn single_item<A: Single>(call: Call<(String, String, String)>) -> Response {
    let action = A::ACTION;
    native(call, Scope::CatalogsWrite, |state, principal, (_, catalog, item_id), request| async move {
        let (_, declared) = state.store.find_catalog_with_fields(principal.project_id, &catalog).await?;
        let entry = match action {
            SingleAction::Delete => None,
            SingleAction::Replace | SingleAction::Update => {
                let mut body = single_body(&state, request).await?;
                body.insert("item_id".to_owned(), Value::String(item_id.clone()));
                let input =
                    update_input(Value::Object(body), action == SingleAction::Update).map_err(Failure::bad_request)?;
                if let Some(message) = property_problem(&input.item.fields, &declared) {
                    return Err(Failure::bad_request(message));
                }
                Some(input)
            }
        };
        let (store, project, options) = (&state.store, principal.project_id, JobOptions::default());
        let outcome = match entry {
            None => {
                store
                    .bulk_delete_items(project, &catalog, Dialect::Bloomreach, vec![RawId::String(item_id)], &options)
                    .await
            }
            Some(input) if action == SingleAction::Update => {
                store
                    .bulk_patch_items(project, &catalog, Dialect::Bloomreach, vec![input.item], input.upsert, &options)
                    .await
            }
            Some(input) => {
                store.bulk_upsert_items(project, &catalog, Dialect::Bloomreach, vec![input.item], &options).await
            }
        };
        if let Some(Err(problem)) = verdicts_of(outcome)?.first() {
            return Err(Failure::bad_request(id_problem_message(problem)));
        }
        Ok(json!({"success": true}))
    })
    .await
}

/// `DELETE .../catalogs/{catalog_id}/items`: deletes every item, those of writes still queued
/// included (the store empties the catalog in one transaction; its id, name and fields stay).
pub(super) async fn delete_all_items(call: Call<(String, String)>) -> Response {
    native(call, Scope::CatalogsWrite, |state, principal, (_, catalog), _| async move {
        state.store.empty_catalog(principal.project_id, &catalog).await?;
        Ok(json!({"success": true}))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_inputs_parse_properties_and_upsert() {
        let input = update_input(json!({"item_id": "a", "properties": {"x": 1}, "upsert": true}), true).expect("valid");
        assert!(input.upsert);
        assert_eq!(input.item.id, RawId::String("a".into()));
        assert_eq!(input.item.fields.get("x"), Some(&json!(1)));
        let plain = update_input(json!({"item_id": "a"}), true).expect("valid");
        assert!(!plain.upsert && plain.item.fields.is_empty());
        assert!(update_input(json!({"item_id": "a", "properties": 3}), false).is_err());
        assert!(update_input(json!({"item_id": "a", "upsert": "yes"}), true).is_err());
        assert!(update_input(json!("a"), true).is_err());
        assert_eq!(update_input(json!({"item_id": 5}), false).map(|i| i.item.id).ok(), Some(RawId::NotAString));
    }

    #[test]
    fn results_render_like_the_seed() {
        assert_eq!(result_json(&Ok(())), json!({"success": true, "queued": true}));
        assert_eq!(
            result_json(&Err("Malformed item id. Item id should be a string".into())),
            json!({"success": false, "queued": false, "errors": {"_global": ["Malformed item id. Item id should be a string"]}})
        );
    }
}
