//! Bloomreach Engagement's catalog API (contracts/bloomreach.md), under
//! `/data/v2/projects/{project_id}/catalogs`: bulk delete (POST and DELETE, `{"item_id"}` objects or
//! bare strings), bulk update (PUT, full replace), partial update (per-item `upsert`), catalog
//! create and list, and item list (`count`/`skip`).
//!
//! Auth is HTTP Basic, `base64(<api key id>:<api secret>)`: the secret is a catalogd token and the
//! key id must be that token's key id. A key of another project than `{project_id}` is 401, a key
//! without the scope 403. `{catalog_id}` is the catalog's name (what `POST .../catalogs` answers as
//! `id`).
//!
//! The bulk endpoints answer 200 with one result per input in request order; a bad input fails
//! alone. Whole-request problems are 400 in `{"errors":{"_global":[...]},"success":false}`; an
//! unknown catalog is the documented 404. The per-catalog quota (5 per 10 s) is shared by the bulk
//! endpoints, is taken once the catalog is known to exist, and refuses with 429 and `Retry-After`.
//! Id rules and messages come from catalog-domain; jobs from catalog-store.

use crate::auth::{insert_ratelimit_headers, token_with_scheme, RepeatedAuthorization};
use crate::extract::{is_json_content_type, parse_json, read_body_within};
use crate::limits::Policy;
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use base64::Engine as _;
use catalog_domain::ids::{
    check_batch_len, BLOOMREACH_INVALID_JSON, BLOOMREACH_NOT_A_LIST, BLOOMREACH_NOT_FOUND, BLOOMREACH_PAYLOAD_TOO_LARGE,
};
use catalog_domain::rate::RateDecision;
use catalog_domain::{Dialect, ErrorCode, IdVerdict, RawId};
use catalog_store::{BulkOutcome, ItemInput, JobOptions, Principal, Scope, StoreError};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Bloomreach's routes.
pub fn routes() -> Router<AppState> {
    const BASE: &str = "/data/v2/projects/{project_id}/catalogs";
    Router::new()
        .route(BASE, post(create_catalog).get(list_catalogs))
        .route(&format!("{BASE}/{{catalog_id}}/items"), put(bulk_update).get(list_items))
        .route(&format!("{BASE}/{{catalog_id}}/items/partial-update"), post(partial_update))
        .route(&format!("{BASE}/{{catalog_id}}/items/bulk-delete"), post(bulk_delete).delete(bulk_delete))
        .method_not_allowed_fallback(method_not_allowed)
}

/// A method the route does not serve: 405 in the `_global` envelope.
async fn method_not_allowed() -> Failure {
    Failure::new(StatusCode::METHOD_NOT_ALLOWED, "The method is not allowed for the requested URL.")
}

/// Items per page of the item list when `count` is not given.
const DEFAULT_COUNT: u32 = 100;
/// Largest `count` of the item list.
const MAX_COUNT: u32 = 1_000;

// ---------------------------------------------------------------------------------------------
// Errors

/// A whole-request refusal: a status and the `_global` message, with rate-limit headers when a
/// quota was consulted.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
    rate: Option<RateDecision>,
    /// Seconds for `Retry-After` of a `queue_full` refusal (a rate limit's come with `rate`).
    retry_after: Option<u64>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure { status, message: message.into(), rate: None, retry_after: None }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found() -> Self {
        Failure::new(StatusCode::NOT_FOUND, BLOOMREACH_NOT_FOUND)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({"errors": {"_global": [self.message]}, "success": false});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(decision) = &self.rate {
            insert_ratelimit_headers(response.headers_mut(), decision);
        }
        if let Some(secs) = self.retry_after.or(crate::error::storage_retry_after(self.status)) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::CatalogNotFound(_) => Failure::not_found(),
            StoreError::Batch(problem) => Failure::bad_request(problem.bloomreach_message()),
            StoreError::CatalogAlreadyExists(_)
            | StoreError::InvalidCatalogName(_)
            | StoreError::InvalidCursor
            | StoreError::InvalidRequest(_) => Failure::bad_request(error.to_string()),
            // Worded as Bloomreach's own throttling answer (see `refuse_if_limited`).
            StoreError::QueueFull { retry_after_secs, .. } => Failure {
                retry_after: Some(retry_after_secs),
                ..Failure::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Rate limit exceeded. Retry after {retry_after_secs} seconds"),
                )
            },
            other if other.code().is_storage_trouble() => {
                tracing::warn!(error = %other, "storage trouble");
                let code = other.code();
                let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let message =
                    if code == ErrorCode::InsufficientStorage { "Insufficient storage" } else { "Service unavailable" };
                Failure::new(status, message)
            }
            other => {
                // The cause may name tables or hosts: log it, tell the client only what happened.
                tracing::error!(error = %other, "store error");
                Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// The caller behind `Authorization: Basic base64(<key id>:<secret>)`, checked against the path's
/// project and the scope the route needs.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    project_key: &str,
    scope: Scope,
) -> Result<Principal, Failure> {
    let unauthorized = |message: &str| Failure::new(StatusCode::UNAUTHORIZED, message);
    let encoded = token_with_scheme(headers, "Basic")
        .map_err(|_| Failure::bad_request(RepeatedAuthorization::MESSAGE))?
        .ok_or_else(|| unauthorized("Send `Authorization: Basic base64(<api key id>:<api secret>)`"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| unauthorized("The Basic credentials are not valid base64 of `<api key id>:<api secret>`"))?;
    let (key_id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| unauthorized("The Basic credentials must be `<api key id>:<api secret>`"))?;
    let principal = state.store.authenticate(secret).await?.ok_or_else(|| unauthorized("Invalid API key"))?;
    crate::app::note_project(&principal);
    // The id is not a secret, but a pair that does not match is someone else's credentials.
    if principal.key_id.0.to_string() != key_id {
        return Err(unauthorized("Invalid API key"));
    }
    if principal.project_key != project_key {
        return Err(unauthorized("The API key does not belong to this project"));
    }
    if !principal.has_scope(scope) {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            format!("The API key lacks the permission for this action (scope `{scope}`)"),
        ));
    }
    Ok(principal)
}

/// The quota of routes Bloomreach sets none for: the native API's, per project.
async fn general_quota(
    state: &AppState,
    principal: &Principal,
    method: &Method,
) -> Result<Option<RateDecision>, Failure> {
    let policy = if method == Method::GET { Policy::NativeRead } else { Policy::NativeWrite };
    let decision = state.take_quota(principal.project_id, &[policy], None).await?;
    refuse_if_limited(decision)
}

fn refuse_if_limited(decision: Option<RateDecision>) -> Result<Option<RateDecision>, Failure> {
    match decision {
        Some(decision) if !decision.allowed => Err(Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("Rate limit exceeded. Retry after {} seconds", decision.retry_after_secs),
            rate: Some(decision),
            retry_after: None,
        }),
        other => Ok(other),
    }
}

/// Puts the quota's headers on a failure found after the quota was taken.
fn with_decision(decision: Option<RateDecision>) -> impl Fn(Failure) -> Failure {
    move |failure| Failure { rate: failure.rate.or(decision), ..failure }
}

fn with_rate(mut response: Response, decision: Option<RateDecision>) -> Response {
    if let Some(decision) = &decision {
        insert_ratelimit_headers(response.headers_mut(), decision);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// The request's JSON (any JSON; callers check its shape). A content type other than JSON is 400
/// (none at all is accepted).
async fn json_body(state: &AppState, request: Request) -> Result<Value, Failure> {
    if request.headers().contains_key(header::CONTENT_TYPE) && !is_json_content_type(request.headers()) {
        return Err(Failure::bad_request("Invalid content type. The payload should be sent as application/json"));
    }
    let max = Dialect::Bloomreach.limits().max_body_bytes.min(state.max_body_bytes);
    let bytes = read_body_within(request, state, max).await.map_err(|error| {
        if error.code == ErrorCode::PayloadTooLarge {
            Failure::bad_request(BLOOMREACH_PAYLOAD_TOO_LARGE)
        } else {
            Failure::bad_request(BLOOMREACH_INVALID_JSON)
        }
    })?;
    // A repeated key is refused like any JSON that cannot be read one way.
    parse_json(&bytes).map_err(|_| Failure::bad_request(BLOOMREACH_INVALID_JSON))
}

/// A bulk body: a JSON list within the dialect's item limit.
async fn bulk_list(state: &AppState, request: Request) -> Result<Vec<Value>, Failure> {
    let Value::Array(entries) = json_body(state, request).await? else {
        return Err(Failure::bad_request(BLOOMREACH_NOT_A_LIST));
    };
    check_batch_len(Dialect::Bloomreach, entries.len())
        .map_err(|problem| Failure::bad_request(problem.bloomreach_message()))?;
    Ok(entries)
}

fn raw_id(value: Option<&Value>) -> RawId {
    match value {
        None => RawId::Missing,
        Some(Value::String(id)) => RawId::String(id.clone()),
        Some(_) => RawId::NotAString,
    }
}

/// The outcome of one input: accepted (queued), or refused with a message.
type ItemResult = Result<(), String>;

fn result_json(result: &ItemResult) -> Value {
    match result {
        Ok(()) => json!({"success": true, "queued": true}),
        Err(message) => json!({"success": false, "queued": false, "errors": {"_global": [message]}}),
    }
}

fn verdict_result(verdict: &IdVerdict) -> ItemResult {
    verdict.as_ref().map(|_| ()).map_err(|problem| problem.bloomreach_message())
}

/// The store's verdicts of a bulk call, whether it created a job or found nothing valid.
fn verdicts_of(outcome: Result<BulkOutcome, StoreError>) -> Result<Vec<IdVerdict>, Failure> {
    match outcome {
        Ok(outcome) => Ok(outcome.results),
        Err(StoreError::NoValidItems { results } | StoreError::InvalidItems { results }) => Ok(results),
        Err(other) => Err(other.into()),
    }
}

/// Path `{project_id}` and `{catalog_id}`, or the dialect's 404.
fn catalog_path(path: Result<Path<(String, String)>, PathRejection>) -> Result<(String, String), Failure> {
    path.map(|Path(p)| p).map_err(|_| Failure::not_found())
}

/// Checks everything a bulk endpoint checks before reading its body: auth, the catalog, the quota.
async fn bulk_guard(
    state: &AppState,
    headers: &HeaderMap,
    project_key: &str,
    catalog: &str,
) -> Result<(Principal, Option<RateDecision>), Failure> {
    let principal = authorize(state, headers, project_key, Scope::CatalogsWrite).await?;
    state.store.find_live_catalog(principal.project_id, catalog).await?;
    let decision = state.take_quota(principal.project_id, &[Policy::BloomreachBulk], Some(catalog)).await?;
    Ok((principal, refuse_if_limited(decision)?))
}

/// Renders a bulk endpoint's answer: the per-input list, or the failure, with the quota headers.
fn bulk_answer(result: Result<(Vec<ItemResult>, Option<RateDecision>), Failure>) -> Response {
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
async fn bulk_delete(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    bulk_answer(
        async {
            let (project_key, catalog) = catalog_path(path)?;
            let headers = request.headers().clone();
            let (principal, decision) = bulk_guard(&state, &headers, &project_key, &catalog).await?;
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
struct UpdateInput {
    item: ItemInput,
    upsert: bool,
}

/// Parses an update entry `{"item_id", "properties"?, "upsert"?}`.
fn update_input(entry: Value, with_upsert: bool) -> Result<UpdateInput, String> {
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

/// Sends `inputs` (with their request positions) to the store as one job and writes each verdict
/// back at its position.
async fn update_group(
    state: &AppState,
    principal: &Principal,
    catalog: &str,
    group: Vec<(usize, ItemInput)>,
    partial: Option<bool>,
    results: &mut [ItemResult],
) -> Result<(), Failure> {
    if group.is_empty() {
        return Ok(());
    }
    let (positions, items): (Vec<usize>, Vec<ItemInput>) = group.into_iter().unzip();
    let (store, project, options) = (&state.store, principal.project_id, JobOptions::default());
    let outcome = match partial {
        None => store.bulk_upsert_items(project, catalog, Dialect::Bloomreach, items, &options).await,
        Some(create_missing) => {
            store.bulk_patch_items(project, catalog, Dialect::Bloomreach, items, create_missing, &options).await
        }
    };
    for (position, verdict) in positions.into_iter().zip(verdicts_of(outcome)?) {
        if let Some(slot) = results.get_mut(position) {
            *slot = verdict_result(&verdict);
        }
    }
    Ok(())
}

/// Shared body of bulk update (`partial` false: full replace, upsert) and partial update (the
/// given properties merged; a missing item created only when its `upsert` is true).
async fn update(
    state: AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
    partial: bool,
) -> Result<(Vec<ItemResult>, Option<RateDecision>), Failure> {
    let (project_key, catalog) = catalog_path(path)?;
    let headers = request.headers().clone();
    let (principal, decision) = bulk_guard(&state, &headers, &project_key, &catalog).await?;
    let entries = bulk_list(&state, request).await.map_err(with_decision(decision))?;
    let mut results: Vec<ItemResult> = vec![Ok(()); entries.len()];
    // The store takes one `create_missing` per job, so inputs that upsert and inputs that do not
    // become two jobs (see docs/compat/bloomreach.md).
    let (mut plain, mut upserting) = (Vec::new(), Vec::new());
    for (position, entry) in entries.into_iter().enumerate() {
        match update_input(entry, partial) {
            Ok(input) if input.upsert => upserting.push((position, input.item)),
            Ok(input) => plain.push((position, input.item)),
            Err(message) => {
                if let Some(slot) = results.get_mut(position) {
                    *slot = Err(message);
                }
            }
        }
    }
    if partial {
        update_group(&state, &principal, &catalog, plain, Some(false), &mut results).await?;
        update_group(&state, &principal, &catalog, upserting, Some(true), &mut results).await?;
    } else {
        update_group(&state, &principal, &catalog, plain, None, &mut results).await?;
    }
    Ok((results, decision))
}

/// `PUT .../catalogs/{catalog_id}/items`: replaces the items' properties, creating missing items.
async fn bulk_update(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    bulk_answer(update(state, path, request, false).await)
}

/// `POST .../catalogs/{catalog_id}/items/partial-update`: merges the given properties.
async fn partial_update(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    bulk_answer(update(state, path, request, true).await)
}

// ---------------------------------------------------------------------------------------------
// Catalogs and items

/// `POST /data/v2/projects/{project_id}/catalogs`: creates a catalog; its `id` is its name.
async fn create_catalog(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let result = async {
        let Path(project_key) = path.map_err(|_| Failure::not_found())?;
        let principal = authorize(&state, request.headers(), &project_key, Scope::CatalogsWrite).await?;
        let decision = general_quota(&state, &principal, &Method::POST).await?;
        let Value::Object(body) = json_body(&state, request).await? else {
            return Err(Failure::bad_request("Malformed payload. The payload should be an object with a name"));
        };
        let Some(Value::String(name)) = body.get("name") else {
            return Err(Failure::bad_request("Missing name. The catalog should have a name"));
        };
        if !matches!(body.get("fields"), None | Some(Value::Null) | Some(Value::Array(_))) {
            return Err(Failure::bad_request("Malformed fields. Fields should be a list"));
        }
        let catalog = state.store.create_catalog(principal.project_id, name, None).await?;
        Ok(with_rate(Json(json!({"id": catalog.name, "success": true})).into_response(), decision))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /data/v2/projects/{project_id}/catalogs`: every catalog of the project.
async fn list_catalogs(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let Path(project_key) = path.map_err(|_| Failure::not_found())?;
        let principal = authorize(&state, &headers, &project_key, Scope::CatalogsRead).await?;
        let decision = general_quota(&state, &principal, &Method::GET).await?;
        let mut data = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = state.store.list_catalogs(principal.project_id, cursor.as_deref(), 1_000).await?;
            data.extend(page.rows.iter().map(|c| json!({"id": c.name, "name": c.name})));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(with_rate(Json(json!({"data": data, "success": true})).into_response(), decision))
    }
    .await;
    result.unwrap_or_else(|failure: Failure| failure.into_response())
}

/// A non-negative integer query parameter, or the dialect's 400.
fn query_number(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, Failure> {
    query
        .get(name)
        .map(|text| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| Failure::bad_request(format!("Invalid {name}. It should be a non-negative integer")))
        })
        .transpose()
}

/// `GET .../catalogs/{catalog_id}/items?count=&skip=`: items in id order.
async fn list_items(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (project_key, catalog) = catalog_path(path)?;
        let principal = authorize(&state, &headers, &project_key, Scope::CatalogsRead).await?;
        let decision = general_quota(&state, &principal, &Method::GET).await?;
        let count = match query_number(&query, "count")? {
            None => DEFAULT_COUNT,
            Some(n @ 1..) if n <= u64::from(MAX_COUNT) => u32::try_from(n).unwrap_or(MAX_COUNT),
            Some(_) => return Err(Failure::bad_request(format!("Invalid count. It should be 1 to {MAX_COUNT}"))),
        };
        let skip = query_number(&query, "skip")?.unwrap_or(0);
        let items = state.store.list_items_offset(principal.project_id, &catalog, skip, count).await?;
        let data: Vec<Value> = items
            .into_iter()
            .map(|item| json!({"catalog_id": catalog, "item_id": item.id, "properties": item.fields}))
            .collect();
        Ok(with_rate(Json(json!({"data": data, "success": true})).into_response(), decision))
    }
    .await;
    result.unwrap_or_else(|failure: Failure| failure.into_response())
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
