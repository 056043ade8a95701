//! Braze's catalog API (contracts/braze.md): the four asynchronous item endpoints on
//! `/catalogs/{catalog_name}/items` (DELETE, POST, PATCH, PUT), and the synchronous `POST /catalogs`,
//! `GET /catalogs`, `GET /catalogs/{catalog_name}/items` and
//! `GET /catalogs/{catalog_name}/items/{item_id}`.
//!
//! Every answer, errors included, carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (UTC epoch seconds); a 429 adds `Retry-After`. Every error uses Braze's
//! envelope, `{"errors":[{"id","message","parameters","parameter_values"}],"message":"Invalid Request"}`,
//! listing every distinct problem found. The id and field rules come from catalog-domain
//! ([`braze_errors`], [`catalog_domain::braze_fields`]); the jobs from catalog-store.
//!
//! Order of checks: key (401), rate limit (429; every authenticated request counts, so a 403 or 400
//! still shows the real quota), permission (403), catalog (404), content type and body (400), ids
//! and fields (400). A refused request creates nothing.
//!
//! POST (create) on an id that already exists replaces that item, like PUT: the request is answered
//! before the job looks at the data, and a replay of the same request must not fail half-way
//! (docs/compat/braze.md).

use crate::auth::{token_with_scheme, RepeatedAuthorization};
use crate::extract::{is_json_content_type, parse_json, read_body_within};
use crate::limits::Policy;
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use catalog_domain::braze_fields::{
    braze_field_errors, check_depth, check_field_name, check_object_key, check_string_value, BrazeFieldProblem,
};
use catalog_domain::rate::RateDecision;
use catalog_domain::storable::{check_text, has_nul};
use catalog_domain::time::format_rfc3339_offset;
use catalog_domain::{braze_errors, validate_ids, BrazeError, Dialect, ErrorCode, RawId};
use catalog_store::{Catalog, ItemInput, JobOptions, Principal, Scope, StoreError};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Braze's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/catalogs", get(list_catalogs).post(create_catalog))
        .route(
            "/catalogs/{catalog_name}/items",
            get(list_items).delete(delete_items).post(create_items).patch(edit_items).put(replace_items),
        )
        .route("/catalogs/{catalog_name}/items/{item_id}", get(get_item))
        .method_not_allowed_fallback(method_not_allowed)
}

/// A method the route does not serve: 405 in Braze's envelope, with the rate-limit headers every
/// Braze answer carries (nothing is spent: the request is not authenticated).
async fn method_not_allowed(State(state): State<AppState>) -> Response {
    let mut response = Failure::one(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "This method is not allowed on this endpoint",
    )
    .into_response();
    if let Some(rate) = RateHeaders::untouched(&state, Policy::BrazeSync) {
        rate.apply(&mut response);
    }
    response
}

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

// ---------------------------------------------------------------------------------------------
// Errors

/// A refused request: a status and Braze's error entries.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    errors: Vec<BrazeError>,
    /// Seconds for `Retry-After` (429, 503 and 507).
    retry_after: Option<u64>,
}

impl Failure {
    fn one(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        Failure::many(status, vec![entry(id, message)])
    }

    fn many(status: StatusCode, errors: Vec<BrazeError>) -> Self {
        Failure { status, errors, retry_after: None }
    }

    fn item_array_invalid() -> Self {
        Failure::one(StatusCode::BAD_REQUEST, "item-array-invalid", "`items` must be an array of objects")
    }

    fn catalog_not_found(name: &str) -> Self {
        let mut error = entry("catalog-not-found", "Could not find catalog");
        error.parameters = vec!["catalog_name".to_owned()];
        error.parameter_values = vec![name.to_owned()];
        Failure::many(StatusCode::NOT_FOUND, vec![error])
    }

    fn into_response(self) -> Response {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| json!({"id": e.id, "message": e.message, "parameters": e.parameters, "parameter_values": e.parameter_values}))
            .collect();
        let mut response = (self.status, Json(json!({"errors": errors, "message": "Invalid Request"}))).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn entry(id: &'static str, message: impl Into<String>) -> BrazeError {
    BrazeError { id, message: message.into(), parameters: Vec::new(), parameter_values: Vec::new() }
}

/// A store error in Braze's words. Validation errors the facade did not catch first (it checks the
/// same domain rules before calling) are still rendered faithfully rather than as a 500.
fn store_failure(error: StoreError, catalog: &str) -> Failure {
    match error {
        StoreError::CatalogNotFound(_) => Failure::catalog_not_found(catalog),
        StoreError::CatalogAlreadyExists(_) => Failure::one(
            StatusCode::BAD_REQUEST,
            "catalog-name-already-exists",
            "A catalog with that name already exists",
        ),
        StoreError::InvalidCatalogName(e) => {
            Failure::one(StatusCode::BAD_REQUEST, e.braze_error_id(), e.braze_message())
        }
        StoreError::Batch(problem) => Failure::many(StatusCode::BAD_REQUEST, vec![problem.braze_error()]),
        StoreError::InvalidItems { results } | StoreError::NoValidItems { results } => {
            Failure::many(StatusCode::BAD_REQUEST, braze_errors(&results))
        }
        // A request the store refused for a rule of its own (the facade checks the same rules
        // first, so this is a safety net): the client's error, not the server's.
        StoreError::InvalidRequest(message) => Failure::one(StatusCode::BAD_REQUEST, "invalid-request", message),
        StoreError::ItemNotFound(id) => {
            let mut error = entry("item-not-found", "Could not find item");
            error.parameters = vec!["item_id".to_owned()];
            error.parameter_values = vec![id];
            Failure::many(StatusCode::NOT_FOUND, vec![error])
        }
        // Braze's own throttling answer, as for its rate limit.
        StoreError::QueueFull { retry_after_secs, .. } => {
            let mut failure = Failure::one(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limit-exceeded",
                "Too many items are waiting to be applied; retry after the Retry-After seconds",
            );
            failure.retry_after = Some(retry_after_secs);
            failure
        }
        other => {
            let code = other.code();
            if code.is_storage_trouble() {
                tracing::warn!(error = %other, "storage trouble");
                let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let mut failure = if code == ErrorCode::InsufficientStorage {
                    Failure::one(status, "insufficient-storage", "Insufficient storage")
                } else {
                    Failure::one(status, "service-unavailable", "Service unavailable")
                };
                failure.retry_after = code.retry_after_secs();
                failure
            } else {
                // The cause may name tables or hosts: log it, tell the client only what happened.
                tracing::error!(error = %other, "store error");
                Failure::one(StatusCode::INTERNAL_SERVER_ERROR, "internal-error", "Internal error")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication and rate limit

/// The `X-RateLimit-*` values of one answer.
#[derive(Debug, Clone, Copy)]
struct RateHeaders {
    limit: u32,
    remaining: u32,
    /// UTC epoch seconds when the quota is full again.
    reset: u64,
}

impl RateHeaders {
    fn of(decision: &RateDecision) -> Self {
        RateHeaders { limit: decision.limit, remaining: decision.remaining, reset: now_secs() + decision.reset_secs }
    }

    /// The headers of a request no quota was asked for (no valid key: it belongs to no project),
    /// so nothing was spent: the policy's full quota.
    fn untouched(state: &AppState, policy: Policy) -> Option<Self> {
        state.rate_limits.quota(policy).map(|q| RateHeaders { limit: q.limit, remaining: q.limit, reset: now_secs() })
    }

    fn apply(self, response: &mut Response) {
        let headers = response.headers_mut();
        headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        headers.insert(X_RATELIMIT_RESET, HeaderValue::from(self.reset));
    }
}

fn now_secs() -> u64 {
    u64::try_from(catalog_store::now_ms() / 1_000).unwrap_or(0)
}

/// Runs `handler` for an authenticated caller with `scope`, under `policy`'s quota, and puts the
/// rate-limit headers on whatever it answers.
async fn guarded<F, Fut>(state: AppState, headers: &HeaderMap, policy: Policy, scope: Scope, handler: F) -> Response
where
    F: FnOnce(AppState, Principal) -> Fut,
    Fut: std::future::Future<Output = Result<Response, Failure>>,
{
    let (result, rate) = match authorize(&state, headers, policy, scope).await {
        Ok((principal, rate)) => (handler(state, principal).await, rate),
        Err((failure, rate)) => (Err(failure), rate),
    };
    let mut response = result.unwrap_or_else(Failure::into_response);
    if let Some(rate) = rate {
        rate.apply(&mut response);
    }
    response
}

type Refusal = (Failure, Option<RateHeaders>);

async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    policy: Policy,
    scope: Scope,
) -> Result<(Principal, Option<RateHeaders>), Refusal> {
    let unauthenticated = |message: &str| {
        (Failure::one(StatusCode::UNAUTHORIZED, "invalid-api-key", message), RateHeaders::untouched(state, policy))
    };
    let Ok(token) = token_with_scheme(headers, "Bearer") else {
        let failure = Failure::one(StatusCode::BAD_REQUEST, "invalid-authorization", RepeatedAuthorization::MESSAGE);
        return Err((failure, RateHeaders::untouched(state, policy)));
    };
    let Some(token) = token else {
        return Err(unauthenticated("Send the REST API key as `Authorization: Bearer <key>`"));
    };
    let principal = match state.store.authenticate(token).await {
        Ok(Some(principal)) => {
            crate::app::note_project(&principal);
            principal
        }
        Ok(None) => return Err(unauthenticated("Invalid API key")),
        Err(error) => return Err((store_failure(error, ""), RateHeaders::untouched(state, policy))),
    };
    let decision = state
        .take_quota(principal.project_id, &[policy], None)
        .await
        .map_err(|error| (store_failure(error, ""), RateHeaders::untouched(state, policy)))?;
    let rate = decision.as_ref().map(RateHeaders::of);
    if let Some(decision) = decision.filter(|d| !d.allowed) {
        let mut failure = Failure::one(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limit-exceeded",
            format!("Rate limit of {} requests reached; retry after the Retry-After seconds", decision.limit),
        );
        failure.retry_after = Some(decision.retry_after_secs);
        return Err((failure, rate));
    }
    if !principal.has_scope(scope) {
        let message = format!("The API key lacks the permission for this endpoint (catalogd scope `{scope}`)");
        return Err((Failure::one(StatusCode::FORBIDDEN, "insufficient-permissions", message), rate));
    }
    Ok((principal, rate))
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// Reads a JSON body: `None` when it does not parse or repeats a key in an object (each endpoint
/// has its own error for that). A content type other than JSON is refused (none at all is
/// accepted, as curl users often omit it); an over-limit body is 413, before it is read when its
/// `Content-Length` says so.
async fn json_body(state: &AppState, request: Request) -> Result<Option<Value>, Failure> {
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

fn raw_id(value: Option<&Value>) -> RawId {
    match value {
        None => RawId::Missing,
        Some(Value::String(id)) => RawId::String(id.clone()),
        Some(_) => RawId::NotAString,
    }
}

/// What an item endpoint does with the items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemAction {
    Delete,
    Create,
    Edit,
    Replace,
}

async fn item_endpoint(
    state: AppState,
    path: Result<Path<String>, PathRejection>,
    request: Request,
    action: ItemAction,
) -> Response {
    let headers = request.headers().clone();
    let policy = Policy::BrazeAsync;
    guarded(state, &headers, policy, Scope::CatalogsWrite, move |state, principal| async move {
        let Path(catalog) = path.map_err(|_| Failure::catalog_not_found(""))?;
        state.store.find_live_catalog(principal.project_id, &catalog).await.map_err(|e| store_failure(e, &catalog))?;
        let items = items_of(json_body(&state, request).await?)?;
        let ids: Vec<RawId> = items.iter().map(|item| raw_id(item.get("id"))).collect();
        let verdicts = validate_ids(Dialect::Braze, ids.clone())
            .map_err(|problem| Failure::many(StatusCode::BAD_REQUEST, vec![problem.braze_error()]))?;
        let mut errors = braze_errors(&verdicts);
        let mut fields_of: Vec<Map<String, Value>> = Vec::with_capacity(items.len());
        if action != ItemAction::Delete {
            let mut problems = Vec::new();
            for mut item in items {
                item.remove("id");
                for (name, value) in &item {
                    problems.extend(check_field_name(name).err());
                    value_problems(value, 0, &mut problems);
                }
                fields_of.push(item);
            }
            errors.extend(braze_field_errors(problems));
        }
        if !errors.is_empty() {
            return Err(Failure::many(StatusCode::BAD_REQUEST, errors));
        }
        // Braze refuses a request with any bad item: ask the store for all-or-nothing too.
        let options = JobOptions { atomic: true, ..JobOptions::default() };
        let project = principal.project_id;
        let store = &state.store;
        let outcome = match action {
            ItemAction::Delete => store.bulk_delete_items(project, &catalog, Dialect::Braze, ids, &options).await,
            ItemAction::Create | ItemAction::Replace | ItemAction::Edit => {
                let inputs: Vec<ItemInput> =
                    ids.into_iter().zip(fields_of).map(|(id, fields)| ItemInput { id, fields }).collect();
                if action == ItemAction::Edit {
                    store.bulk_patch_items(project, &catalog, Dialect::Braze, inputs, false, &options).await
                } else {
                    store.bulk_upsert_items(project, &catalog, Dialect::Braze, inputs, &options).await
                }
            }
        };
        outcome.map_err(|e| store_failure(e, &catalog))?;
        Ok((StatusCode::ACCEPTED, Json(json!({"message": "success"}))).into_response())
    })
    .await
}

/// `DELETE /catalogs/{catalog_name}/items`: deletes the items by id (a missing id is not an error).
async fn delete_items(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    item_endpoint(state, path, request, ItemAction::Delete).await
}

/// `POST /catalogs/{catalog_name}/items`: creates the items (an existing id is replaced).
async fn create_items(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    item_endpoint(state, path, request, ItemAction::Create).await
}

/// `PATCH /catalogs/{catalog_name}/items`: changes the given fields of existing items.
async fn edit_items(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    item_endpoint(state, path, request, ItemAction::Edit).await
}

/// `PUT /catalogs/{catalog_name}/items`: replaces the items, creating missing ones.
async fn replace_items(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    item_endpoint(state, path, request, ItemAction::Replace).await
}

/// Items per page of `GET /catalogs/{catalog_name}/items` (Braze's page size).
const ITEMS_PAGE: u32 = 50;

/// `GET /catalogs/{catalog_name}/items?cursor=`: one page of items in id order; a next page is
/// announced in a `Link: <...>; rel="next"` header, as Braze does.
async fn list_items(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    guarded(state, &headers, Policy::BrazeSync, Scope::CatalogsRead, |state, principal| async move {
        let Path(catalog) = path.map_err(|_| Failure::catalog_not_found(""))?;
        let cursor = query.get("cursor").filter(|c| !c.is_empty());
        let page = state
            .store
            .list_items(principal.project_id, &catalog, cursor.map(String::as_str), ITEMS_PAGE)
            .await
            .map_err(|e| match e {
                StoreError::InvalidCursor => {
                    Failure::one(StatusCode::BAD_REQUEST, "invalid-cursor", "The cursor is not valid")
                }
                other => store_failure(other, &catalog),
            })?;
        let items: Vec<Value> = page.rows.into_iter().map(|item| item_json(item.id, item.fields)).collect();
        let mut response = Json(json!({"items": items, "message": "success"})).into_response();
        if let Some(next) = page.next_cursor {
            // Cursors are hex and catalog names url-safe, so the link needs no escaping.
            let link = format!("</catalogs/{catalog}/items?cursor={next}>; rel=\"next\"");
            if let Ok(value) = HeaderValue::from_str(&link) {
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

// ---------------------------------------------------------------------------------------------
// Synchronous endpoints

/// Fields shown for a catalog whose schema catalogd does not keep: just the id.
fn default_fields() -> Value {
    json!([{"name": "id", "type": "string"}])
}

fn catalog_json(catalog: &Catalog, fields: Value) -> Value {
    json!({
        "name": catalog.name,
        "description": catalog.description,
        "fields": fields,
        "num_items": catalog.item_count.unwrap_or(0),
        "updated_at": format_rfc3339_offset(catalog.updated_at),
    })
}

fn catalog_array_invalid() -> Failure {
    Failure::one(
        StatusCode::BAD_REQUEST,
        "catalog-array-invalid",
        "`catalogs` must be an array of exactly one catalog object",
    )
}

/// `POST /catalogs`: creates one catalog. `fields` is echoed back but not kept (see the compat doc).
async fn create_catalog(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    guarded(state, &headers, Policy::BrazeSync, Scope::CatalogsWrite, move |state, principal| async move {
        let Some(Value::Object(mut body)) = json_body(&state, request).await? else {
            return Err(catalog_array_invalid());
        };
        let catalog = match body.remove("catalogs") {
            Some(Value::Array(mut catalogs)) if catalogs.len() == 1 => match catalogs.pop() {
                Some(Value::Object(catalog)) => catalog,
                _ => return Err(catalog_array_invalid()),
            },
            _ => return Err(catalog_array_invalid()),
        };
        let name = match catalog.get("name") {
            Some(Value::String(name)) => name.clone(),
            _ => {
                return Err(Failure::one(
                    StatusCode::BAD_REQUEST,
                    "invalid_catalog_name",
                    "Catalog name can only include letters, numbers, hyphens, and underscores",
                ));
            }
        };
        let description = match catalog.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                check_text("description", text)
                    .map_err(|e| Failure::one(StatusCode::BAD_REQUEST, "invalid-description", e.to_string()))?;
                Some(text.clone())
            }
            Some(_) => {
                return Err(Failure::one(
                    StatusCode::BAD_REQUEST,
                    "invalid-description",
                    "`description` must be a string",
                ));
            }
        };
        let fields = match catalog.get("fields") {
            None | Some(Value::Null) => default_fields(),
            Some(Value::Array(fields))
                if fields.iter().all(|f| {
                    f.get("name").is_some_and(Value::is_string) && f.get("type").is_some_and(Value::is_string)
                }) =>
            {
                Value::Array(fields.clone())
            }
            Some(_) => {
                return Err(Failure::one(
                    StatusCode::BAD_REQUEST,
                    "invalid-fields",
                    "`fields` must be an array of objects with a string `name` and `type`",
                ));
            }
        };
        let created = state
            .store
            .create_catalog(principal.project_id, &name, description.as_deref())
            .await
            .map_err(|e| store_failure(e, &name))?;
        let body = json!({"catalogs": [catalog_json(&created, fields)], "message": "success"});
        Ok((StatusCode::CREATED, Json(body)).into_response())
    })
    .await
}

/// `GET /catalogs`: every catalog of the project, with its item count.
async fn list_catalogs(State(state): State<AppState>, headers: HeaderMap) -> Response {
    guarded(state, &headers, Policy::BrazeSync, Scope::CatalogsRead, |state, principal| async move {
        let catalogs =
            state.store.list_catalogs_with_counts(principal.project_id).await.map_err(|e| store_failure(e, ""))?;
        let catalogs: Vec<Value> = catalogs.iter().map(|c| catalog_json(c, default_fields())).collect();
        Ok(Json(json!({"catalogs": catalogs, "message": "success"})).into_response())
    })
    .await
}

/// `GET /catalogs/{catalog_name}/items/{item_id}`: one item, its fields beside its `id`.
async fn get_item(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    guarded(state, &headers, Policy::BrazeSync, Scope::CatalogsRead, |state, principal| async move {
        let Path((catalog, item_id)) = path.map_err(|_| Failure::catalog_not_found(""))?;
        let item = state
            .store
            .get_item(principal.project_id, &catalog, &item_id)
            .await
            .map_err(|e| store_failure(e, &catalog))?;
        Ok(Json(json!({"items": [item_json(item.id, item.fields)], "message": "success"})).into_response())
    })
    .await
}
