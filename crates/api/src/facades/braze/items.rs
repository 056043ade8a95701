//! Braze's item endpoints: the asynchronous bulk ones on `/catalogs/{catalog_name}/items` (DELETE,
//! POST, PATCH, PUT; up to 50 items, 202) and the synchronous single-item ones on
//! `/catalogs/{catalog_name}/items/{item_id}` (GET, POST 201, PUT 200, PATCH 200, DELETE 202), and
//! the item list with its `Link` header.
//!
//! Every write becomes a job of catalog-store, as the native API's do: a single-item write is
//! answered once its job is accepted, and takes effect when the runner applies it (at once on an
//! idle server). What the single-item endpoints check against the stored item (`item-not-found`
//! for PATCH and DELETE, `item-already-exists` for POST) is read when the request is answered.
//!
//! Order of checks: key, quota, permission (`auth`), catalog (404), content type and body (400),
//! ids and fields (400, every problem, naming each item in `parameter_values`). A refused request
//! creates nothing: Braze refuses a request with any bad item, so the store is asked for
//! all-or-nothing too.

use super::auth::{guarded, Call, ASYNC_ITEMS_WRITE, SYNC_ITEMS_READ, SYNC_ITEMS_WRITE};
use super::error::{batch_error, store_failure, Failure, ItemErrors};
use crate::extract::{is_json_content_type, parse_json, read_body_within};
use crate::state::AppState;
use axum::extract::{Query, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalog_domain::braze_fields::{
    check_declared, check_depth, check_field_name, check_object_key, check_string_value, BrazeFieldProblem, Declared,
    FieldType, ValueKind,
};
use catalog_domain::storable::has_nul;
use catalog_domain::{check_id, validate_ids, Dialect, ErrorCode, RawId};
use catalog_store::{CatalogField, ItemInput, JobOptions, PatchInput, Principal, StoreError};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Reads a JSON body: `None` when it does not parse or repeats a key in an object (each endpoint
/// has its own error for that). A content type other than JSON is refused (none at all is
/// accepted, as curl users often omit it); an over-limit body is 413, before it is read when its
/// `Content-Length` says so.
pub(super) async fn json_body(state: &AppState, request: Request) -> Result<Option<Value>, Failure> {
    if request.headers().contains_key(header::CONTENT_TYPE) && !is_json_content_type(request.headers()) {
        return Err(Failure::one(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid-content-type",
            "The request body must be sent as Content-Type: application/json",
        ));
    }
    let max = Dialect::Braze.limits().max_body_bytes.min(state.max_body_bytes);
    let bytes = read_body_within(request, state, max).await.map_err(|error| {
        if error.code == ErrorCode::PayloadTooLarge {
            Failure::one(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request-too-large",
                "The request body is larger than the limit",
            )
        } else {
            Failure::item_array_invalid()
        }
    })?;
    // A repeated key is not JSON Braze could read one way: the endpoint's invalid-body error.
    Ok(parse_json(&bytes).ok())
}

/// The catalog's declared fields (none: it takes any field), or Braze's `catalog-not-found`.
pub(super) async fn declared_fields_of(
    state: &AppState,
    principal: &Principal,
    catalog: &str,
) -> Result<Vec<CatalogField>, Failure> {
    let found = state.store.find_catalog_with_fields(principal.project_id, catalog).await;
    found.map(|(_, fields)| fields).map_err(|e| store_failure(e, catalog))
}

/// The `items` of an item request: each an object.
fn items_of(body: Option<Value>) -> Result<Vec<Map<String, Value>>, Failure> {
    let Some(Value::Object(mut body)) = body else {
        return Err(Failure::item_array_invalid());
    };
    match body.remove("items") {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(item) => Ok(item),
                _ => Err(Failure::item_array_invalid()),
            })
            .collect(),
        _ => Err(Failure::item_array_invalid()),
    }
}

/// Every field problem of one item's value, walking nested objects and arrays.
fn value_problems(value: &Value, depth: usize, out: &mut Vec<BrazeFieldProblem>) {
    match value {
        Value::String(text) => {
            out.extend(check_string_value(text).err());
            out.extend(has_nul(text).then_some(BrazeFieldProblem::NulCharacter));
        }
        Value::Array(values) => {
            if let Err(problem) = check_depth(depth + 1) {
                // Deeper levels would only repeat the same problem.
                out.push(problem);
                return;
            }
            values.iter().for_each(|v| value_problems(v, depth + 1, out));
        }
        Value::Object(map) => {
            if let Err(problem) = check_depth(depth + 1) {
                out.push(problem);
                return;
            }
            for (key, v) in map {
                out.extend(check_object_key(key).err());
                out.extend(has_nul(key).then_some(BrazeFieldProblem::NulCharacter));
                value_problems(v, depth + 1, out);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// What `value` is, as catalog-domain's field rules ask.
pub(super) fn kind_of(value: &Value) -> ValueKind<'_> {
    match value {
        Value::Null => ValueKind::Null,
        Value::Bool(_) => ValueKind::Bool,
        Value::Number(_) => ValueKind::Number,
        Value::String(text) => ValueKind::String(text),
        Value::Array(_) => ValueKind::Array,
        Value::Object(_) => ValueKind::Object,
    }
}

/// The catalog's declared fields as catalog-domain's rule reads them.
fn declarations(declared: &[CatalogField]) -> Vec<Declared<'_>> {
    declared.iter().map(|field| (field.name.as_str(), FieldType::parse(&field.field_type))).collect()
}

/// The problems of one item's fields (without its `id`): Braze's value rules, and, when the
/// catalog declared its fields, that each is declared and takes its value.
fn field_problems(fields: &Map<String, Value>, declared: &[CatalogField]) -> Vec<BrazeFieldProblem> {
    let declared = declarations(declared);
    let mut problems = Vec::new();
    for (name, value) in fields {
        problems.extend(check_field_name(name).err());
        value_problems(value, 0, &mut problems);
        problems.extend(check_declared(&declared, name, Some(kind_of(value))).err());
    }
    problems
}

/// One field's array operators: the field, the values `$add` appends, those `$remove` drops.
type ArrayOp = (String, Vec<Value>, Vec<Value>);

/// Takes out of a PATCH item the fields whose value is Braze's array operators,
/// `{"$add": [...], "$remove": [...]}` (either or both, nothing else): they change the stored
/// array rather than replace it. Any other object keeps its `$` keys, which the value rules refuse.
fn take_array_ops(fields: &mut Map<String, Value>) -> Vec<ArrayOp> {
    let is_ops = |value: &Value| match value {
        Value::Object(map) => {
            !map.is_empty()
                && map.iter().all(|(key, value)| matches!(key.as_str(), "$add" | "$remove") && value.is_array())
        }
        _ => false,
    };
    let names: Vec<String> = fields.iter().filter(|(_, value)| is_ops(value)).map(|(name, _)| name.clone()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let Some(Value::Object(mut ops)) = fields.remove(&name) else { return None };
            let mut list = |key: &str| match ops.remove(key) {
                Some(Value::Array(values)) => values,
                _ => Vec::new(),
            };
            let (add, remove) = (list("$add"), list("$remove"));
            Some((name, add, remove))
        })
        .collect()
}

/// The problems of array operators: the field name rule, the value rules on every value, and,
/// when the catalog declared its fields, that the field is declared as an `array`.
fn array_op_problems(ops: &[ArrayOp], declared: &[CatalogField]) -> Vec<BrazeFieldProblem> {
    let declared = declarations(declared);
    let mut problems = Vec::new();
    for (name, add, remove) in ops {
        problems.extend(check_field_name(name).err());
        add.iter().chain(remove).for_each(|value| value_problems(value, 1, &mut problems));
        problems.extend(check_declared(&declared, name, None).err());
    }
    problems
}

/// What an item endpoint does with the items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ItemAction {
    /// `DELETE`: the items go (bulk: a missing id is not an error; single: 404 when missing).
    Delete,
    /// `POST`: the items are created (bulk: an existing id is replaced, as Braze documents no
    /// error for it and a job cannot answer the request; single: 400 `item-already-exists`).
    Create,
    /// `PATCH`: the given fields of existing items change.
    Edit,
    /// `PUT`: the items are replaced, missing ones created.
    Replace,
}

crate::facades::action_types!(Action: ItemAction { Delete, Create, Edit, Replace });

fn raw_id(value: Option<&Value>) -> RawId {
    match value {
        None => RawId::Missing,
        Some(Value::String(id)) => RawId::String(id.clone()),
        Some(_) => RawId::NotAString,
    }
}

/// The checked inputs of an item endpoint: ids, and for writes each item's fields and array
/// operators, in request order.
struct ItemWrites {
    ids: Vec<RawId>,
    fields: Vec<Map<String, Value>>,
    array_ops: Vec<Vec<ArrayOp>>,
}

/// Creates the job of `action` over `writes` (ids checked, fields checked). `create_only`: a
/// create fails for an item that exists when the job applies it, rather than replacing it (the
/// single-item POST, whose answer said the item was new).
async fn enqueue(
    state: &AppState,
    principal: &Principal,
    catalog: &str,
    action: ItemAction,
    writes: ItemWrites,
    create_only: bool,
) -> Result<(), Failure> {
    let ItemWrites { ids, fields, array_ops } = writes;
    let owned_ids = ids.clone();
    let names = &names_of(&owned_ids);
    let options = JobOptions { atomic: true, ..JobOptions::default() };
    let project = principal.project_id;
    let store = &state.store;
    let outcome = match action {
        ItemAction::Delete => store.bulk_delete_items(project, catalog, Dialect::Braze, ids, &options).await,
        ItemAction::Create | ItemAction::Replace | ItemAction::Edit => {
            let inputs: Vec<ItemInput> =
                ids.into_iter().zip(fields).map(|(id, fields)| ItemInput { id, fields }).collect();
            if action == ItemAction::Edit {
                let inputs = inputs
                    .into_iter()
                    .zip(array_ops.into_iter().chain(std::iter::repeat_with(Vec::new)))
                    .map(|(item, array_ops)| PatchInput { item, create_missing: false, array_ops })
                    .collect();
                store.bulk_patch_items_with_directives(project, catalog, Dialect::Braze, inputs, &options).await
            } else if action == ItemAction::Create && create_only {
                store.bulk_create_items(project, catalog, Dialect::Braze, inputs, &options).await
            } else {
                store.bulk_upsert_items(project, catalog, Dialect::Braze, inputs, &options).await
            }
        }
    };
    outcome.map(|_| ()).map_err(|error| match error {
        // What only the store checks (what no backend can store): named item by item too.
        StoreError::InvalidItems { results } | StoreError::NoValidItems { results } => {
            let mut errors = ItemErrors::default();
            errors.verdicts(&results, names);
            Failure::bad_request(errors.into_errors())
        }
        other => store_failure(other, catalog),
    })
}

/// The id of each item where it has one, to name the item in an error.
fn names_of(ids: &[RawId]) -> Vec<Option<&str>> {
    ids.iter()
        .map(|id| match id {
            RawId::String(id) => Some(id.as_str()),
            RawId::Missing | RawId::NotAString => None,
        })
        .collect()
}

/// `/catalogs/{catalog_name}/items`, the asynchronous bulk endpoints (up to 50 items, 202): the
/// action of `A` ([`ItemAction`]) on every item, or nothing when any item is refused.
pub(super) async fn bulk<A: Action>(call: Call<String>) -> Response {
    let action = A::ACTION;
    guarded(call, ASYNC_ITEMS_WRITE, |state, principal, catalog, request| async move {
        let declared = declared_fields_of(&state, &principal, &catalog).await?;
        let mut items = items_of(json_body(&state, request).await?)?;
        let ids: Vec<RawId> = items.iter().map(|item| raw_id(item.get("id"))).collect();
        let verdicts =
            validate_ids(Dialect::Braze, ids.clone()).map_err(|p| Failure::bad_request(vec![batch_error(&p)]))?;
        let names = names_of(&ids);
        let mut errors = ItemErrors::default();
        errors.verdicts(&verdicts, &names);
        let mut fields_of: Vec<Map<String, Value>> = Vec::with_capacity(items.len());
        let mut ops_of: Vec<Vec<ArrayOp>> = Vec::with_capacity(items.len());
        if action != ItemAction::Delete {
            for (item, name) in items.iter_mut().zip(&names) {
                item.remove("id");
                // Only PATCH has the array operators; elsewhere their `$` keys are invalid keys.
                let ops = if action == ItemAction::Edit { take_array_ops(item) } else { Vec::new() };
                for problem in field_problems(item, &declared).into_iter().chain(array_op_problems(&ops, &declared)) {
                    errors.field(problem, *name);
                }
                ops_of.push(ops);
            }
            fields_of = items;
        }
        if !errors.is_empty() {
            return Err(Failure::bad_request(errors.into_errors()));
        }
        let writes = ItemWrites { ids, fields: fields_of, array_ops: ops_of };
        enqueue(&state, &principal, &catalog, action, writes, false).await?;
        Ok((StatusCode::ACCEPTED, Json(json!({"message": "success"}))).into_response())
    })
    .await
}

/// The one item object of a single-item write: `{"items":[{<fields>}]}`, without `id`.
fn single_item(body: Option<Value>) -> Result<Map<String, Value>, Failure> {
    let mut items = items_of(body)?;
    if items.len() > 1 {
        return Err(Failure::one(
            StatusCode::BAD_REQUEST,
            "request-includes-too-many-items",
            "You can only send one catalog item per request",
        ));
    }
    let item = items.pop().ok_or_else(Failure::item_array_invalid)?;
    if item.contains_key("id") {
        return Err(Failure::one(StatusCode::BAD_REQUEST, "id-in-body", "Remove the item ID from the request body"));
    }
    Ok(item)
}

/// `/catalogs/{catalog_name}/items/{item_id}`, the synchronous single-item writes: the action of
/// `A` ([`ItemAction`]) on the item; `POST` answers 201, `PUT` and `PATCH` 200, `DELETE` 202.
pub(super) async fn single<A: Action>(call: Call<(String, String)>) -> Response {
    let action = A::ACTION;
    guarded(call, SYNC_ITEMS_WRITE, |state, principal, (catalog, item_id), request| async move {
        let declared = declared_fields_of(&state, &principal, &catalog).await?;
        let mut fields =
            if action == ItemAction::Delete { Map::new() } else { single_item(json_body(&state, request).await?)? };
        let ops = if action == ItemAction::Edit { take_array_ops(&mut fields) } else { Vec::new() };
        let mut errors = ItemErrors::default();
        if let Err(problem) = check_id(Dialect::Braze, &item_id) {
            errors.problem(&problem, Some(&item_id));
        }
        for problem in field_problems(&fields, &declared).into_iter().chain(array_op_problems(&ops, &declared)) {
            errors.field(problem, Some(&item_id));
        }
        if !errors.is_empty() {
            return Err(Failure::bad_request(errors.into_errors()));
        }
        let exists = match state.store.get_item(principal.project_id, &catalog, &item_id).await {
            Ok(_) => true,
            Err(StoreError::ItemNotFound(_)) => false,
            Err(other) => return Err(store_failure(other, &catalog)),
        };
        let status = match action {
            ItemAction::Create if exists => {
                let mut errors = ItemErrors::default();
                errors.push(
                    "item-already-exists",
                    || "The item already exists in the catalog".to_owned(),
                    Some(&item_id),
                );
                return Err(Failure::bad_request(errors.into_errors()));
            }
            ItemAction::Edit | ItemAction::Delete if !exists => return Err(Failure::item_not_found(&item_id)),
            ItemAction::Create => StatusCode::CREATED,
            ItemAction::Replace | ItemAction::Edit => StatusCode::OK,
            ItemAction::Delete => StatusCode::ACCEPTED,
        };
        // The existence check above answers the request; the job checks again when it applies
        // the item, so a create racing another writer of the id fails instead of replacing it.
        let writes = ItemWrites { ids: vec![RawId::String(item_id)], fields: vec![fields], array_ops: vec![ops] };
        enqueue(&state, &principal, &catalog, action, writes, true).await?;
        Ok((status, Json(json!({"message": "success"}))).into_response())
    })
    .await
}

/// Items per page of `GET /catalogs/{catalog_name}/items` (Braze's page size).
const ITEMS_PAGE: u32 = 50;

/// `GET /catalogs/{catalog_name}/items?cursor=`: one page of items in id order, the pages around
/// it announced in a `Link` header (`rel="prev"`, `rel="next"`), as Braze does.
pub(super) async fn list_items(Query(query): Query<HashMap<String, String>>, call: Call<String>) -> Response {
    guarded(call, SYNC_ITEMS_READ, |state, principal, catalog, _| async move {
        let cursor = query.get("cursor").filter(|c| !c.is_empty());
        let window = state
            .store
            .list_items_window(principal.project_id, &catalog, cursor.map(String::as_str), ITEMS_PAGE)
            .await
            .map_err(|e| match e {
                StoreError::InvalidCursor => {
                    Failure::one(StatusCode::BAD_REQUEST, "invalid-cursor", "The cursor is not valid")
                }
                other => store_failure(other, &catalog),
            })?;
        let items: Vec<Value> = window.rows.into_iter().map(|item| item_json(item.id, item.fields)).collect();
        let mut response = Json(json!({"items": items, "message": "success"})).into_response();
        // Cursors are hex and catalog names url-safe, so the links need no escaping.
        let link_to = |cursor: Option<&str>, rel: &str| match cursor {
            Some(cursor) => format!("</catalogs/{catalog}/items?cursor={cursor}>; rel=\"{rel}\""),
            None => format!("</catalogs/{catalog}/items>; rel=\"{rel}\""),
        };
        let mut links = Vec::new();
        if let Some(prev) = &window.prev_cursor {
            links.push(link_to(prev.as_deref(), "prev"));
        }
        if let Some(next) = &window.next_cursor {
            links.push(link_to(Some(next), "next"));
        }
        if !links.is_empty() {
            if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
                response.headers_mut().insert(header::LINK, value);
            }
        }
        Ok(response)
    })
    .await
}

/// An item as Braze shows it: its fields beside its `id`.
fn item_json(id: String, fields: Map<String, Value>) -> Value {
    let mut out = Map::with_capacity(fields.len() + 1);
    out.insert("id".to_owned(), Value::String(id));
    // Stored fields never hold `id` (the facade strips it), but a native upsert may have set one:
    // the item's real id wins.
    out.extend(fields.into_iter().filter(|(k, _)| k != "id"));
    Value::Object(out)
}

/// `GET /catalogs/{catalog_name}/items/{item_id}`: one item, its fields beside its `id`.
pub(super) async fn get_item(call: Call<(String, String)>) -> Response {
    guarded(call, SYNC_ITEMS_READ, |state, principal, (catalog, item_id), _| async move {
        let item = state
            .store
            .get_item(principal.project_id, &catalog, &item_id)
            .await
            .map_err(|e| store_failure(e, &catalog))?;
        Ok(Json(json!({"items": [item_json(item.id, item.fields)], "message": "success"})).into_response())
    })
    .await
}
