//! The native API, `/v1/...`: parse, call the store, render. Request types deny unknown fields so
//! a typo is a 400, not a silently ignored option.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{
    BulkView, CatalogView, CategoryView, ErrorEnvelope, ItemView, JobCreatedView, JobErrorView, JobView, PageView,
};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use catalog_domain::time::parse_rfc3339;
use catalog_domain::{Dialect, ErrorCode, JobKind, JobStatus, RawId};
use catalog_store::{BulkOutcome, CategoryInput, ItemInput, JobFilter, JobId, JobOptions, JobPaging, ProjectId};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::marker::PhantomData;
use std::time::Duration;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Longest a `GET /v1/jobs/{id}?wait=` may hold the request, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;
/// Rows per page when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest `limit` a listing accepts.
pub const MAX_PAGE_LIMIT: u32 = 1_000;

/// The routes that need an API key (the guard is layered on by the caller).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/catalogs", post(create_catalog).get(list_catalogs))
        .route("/v1/catalogs/{catalog}", get(get_catalog).delete(delete_catalog))
        .route("/v1/catalogs/{catalog}/items", get(list_items))
        .route("/v1/catalogs/{catalog}/items/{id}", get(get_item))
        .route("/v1/catalogs/{catalog}/items/bulk-delete", post(bulk_delete_items))
        .route("/v1/catalogs/{catalog}/items/bulk-upsert", post(bulk_upsert_items))
        .route("/v1/catalogs/{catalog}/items/bulk-patch", post(bulk_patch_items))
        .route("/v1/catalogs/{catalog}/categories", get(list_categories))
        .route("/v1/catalogs/{catalog}/categories/bulk-update", post(bulk_update_categories))
        .route("/v1/catalogs/{catalog}/categories/bulk-upsert", post(bulk_upsert_categories))
        .route("/v1/catalogs/{catalog}/categories/bulk-delete", post(bulk_delete_categories))
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/errors", get(list_job_errors))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
}

fn bulk_response(outcome: &BulkOutcome) -> Response {
    // A replayed idempotent request created nothing new: 200, not 202.
    let status = if outcome.replayed { StatusCode::OK } else { StatusCode::ACCEPTED };
    (status, Json(BulkView::from(outcome))).into_response()
}

// ---------------------------------------------------------------------------------------------
// Parsing

fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    parse_rfc3339(text).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("`{field}`: {e}")))
}

fn raw_id(value: Option<&Value>) -> RawId {
    match value {
        None => RawId::Missing,
        Some(Value::String(id)) => RawId::String(id.clone()),
        Some(_) => RawId::NotAString,
    }
}

/// What every job-creating body may carry besides its inputs.
#[derive(Debug, Default)]
struct JobFields {
    start_at: Option<String>,
    description: Option<String>,
    reference_id: Option<String>,
    atomic: bool,
}

impl JobFields {
    fn options(self, idempotency_header: Option<&HeaderValue>) -> Result<JobOptions, ApiError> {
        let idempotency_key = match idempotency_header {
            None => None,
            Some(value) => {
                let key = value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 255);
                Some(
                    key.ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidRequest,
                            "Idempotency-Key must be 1 to 255 visible ASCII characters",
                        )
                    })?
                    .to_owned(),
                )
            }
        };
        for (field, text) in [("description", &self.description), ("reference_id", &self.reference_id)] {
            if let Some(Err(problem)) = text.as_deref().map(|text| catalog_domain::storable::check_text(field, text)) {
                return Err(ApiError::new(problem.code(), problem.to_string())
                    .with_details(json!({"pointer": format!("/{field}")})));
            }
        }
        Ok(JobOptions {
            start_at: self.start_at.as_deref().map(|t| parse_time("start_at", t)).transpose()?,
            description: self.description,
            reference_id: self.reference_id,
            idempotency_key,
            atomic: self.atomic,
            requested_by: None,
        })
    }
}

/// `POST /v1/catalogs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateCatalogBody {
    /// `[A-Za-z0-9_-]{1,250}`, unique in the project.
    name: String,
    /// Free text.
    description: Option<String>,
}

/// Declares a job-creating body: its inputs plus the [`JobFields`]. Written out per body rather
/// than with `#[serde(flatten)]`, which serde cannot combine with `deny_unknown_fields`.
macro_rules! job_body {
    ($(#[$doc:meta])* $name:ident { $inputs:ident: $schema:ty }) => {
        $(#[$doc])*
        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        struct $name {
            /// The inputs; each is judged on its own (see `results` in the answer).
            #[schema(value_type = $schema)]
            $inputs: Vec<Value>,
            /// RFC 3339; a future time makes the job `scheduled` until then.
            start_at: Option<String>,
            /// Free text shown on the job.
            description: Option<String>,
            /// The caller's own reference, shown on the job.
            reference_id: Option<String>,
            /// Refuse the whole request (400, nothing created) when any input is invalid.
            #[serde(default)]
            atomic: bool,
        }

        impl JobBody for $name {
            fn split(self) -> (Vec<Value>, JobFields) {
                let job = JobFields {
                    start_at: self.start_at,
                    description: self.description,
                    reference_id: self.reference_id,
                    atomic: self.atomic,
                };
                (self.$inputs, job)
            }
        }
    };
}

job_body!(
    /// Ids to delete.
    IdsBody { ids: Vec<String> }
);
job_body!(
    /// Items to upsert or patch: `{"id": "...", "fields": {...}}`.
    ItemsBody { items: Vec<ItemInputSchema> }
);
job_body!(
    /// Categories: `{"id", "external_id"?, "name"?, "item_ids"?}`.
    CategoriesBody { categories: Vec<CategoryInputSchema> }
);

/// A job-creating body: its inputs, and the fields every such body may carry.
trait JobBody: DeserializeOwned {
    fn split(self) -> (Vec<Value>, JobFields);
}

/// Everything a bulk route needs from its request: the caller's project, the catalog in the path,
/// the raw inputs, and the job options (body fields plus the `Idempotency-Key` header).
struct Bulk {
    project: ProjectId,
    catalog: String,
    inputs: Vec<Value>,
    options: JobOptions,
}

/// Extracts a [`Bulk`] from a request with a `B` body.
struct BulkRequest<B>(Bulk, PhantomData<B>);

impl<B: JobBody, S: Send + Sync> FromRequest<S> for BulkRequest<B>
where
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let Caller(caller) = Caller::from_request_parts(&mut parts, state).await?;
        let ApiPath(catalog) = ApiPath::<String>::from_request_parts(&mut parts, state).await?;
        let idempotency_header = parts.headers.get("idempotency-key").cloned();
        let ApiJson(body) = ApiJson::<B>::from_request(axum::extract::Request::from_parts(parts, body), state).await?;
        let (inputs, fields) = body.split();
        let mut options = fields.options(idempotency_header.as_ref())?;
        // The key may have been authenticated from the cache: the insert re-checks it.
        options.requested_by = Some(caller.key_id);
        Ok(BulkRequest(Bulk { project: caller.project_id, catalog, inputs, options }, PhantomData))
    }
}

/// The ids of a request, taken out of the parsed body rather than copied.
fn raw_ids(inputs: Vec<Value>) -> Vec<RawId> {
    inputs
        .into_iter()
        .map(|id| match id {
            Value::String(id) => RawId::String(id),
            _ => RawId::NotAString,
        })
        .collect()
}

/// One item of an upsert or patch request (documentation only: inputs are parsed one by one so a
/// bad entry is reported in its result rather than failing the request).
#[derive(ToSchema)]
#[allow(dead_code)]
struct ItemInputSchema {
    /// `[A-Za-z0-9_-]{1,250}`.
    id: String,
    /// The fields (upsert: all of them; patch: those to change).
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

/// One category of a category request (documentation only).
#[derive(ToSchema)]
#[allow(dead_code)]
struct CategoryInputSchema {
    /// `[A-Za-z0-9_-]{1,250}`.
    id: String,
    /// An id in the caller's system.
    external_id: Option<String>,
    /// Display name.
    name: Option<String>,
    /// Replaces the category's item set when present.
    item_ids: Option<Vec<String>>,
}

/// Keyset paging.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// Rows per page, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE_LIMIT) {
        limit @ 1..=MAX_PAGE_LIMIT => Ok(limit),
        other => {
            Err(ApiError::new(ErrorCode::InvalidQuery, format!("limit must be 1 to {MAX_PAGE_LIMIT}, not {other}")))
        }
    }
}

fn object_field<'v>(value: &'v Value, index: usize, field: &str) -> Result<Option<&'v Value>, ApiError> {
    match value {
        Value::Object(map) => Ok(map.get(field)),
        _ => Err(ApiError::new(ErrorCode::InvalidJson, format!("entry {index} must be a JSON object"))
            .with_details(json!({"pointer": format!("/{index}")}))),
    }
}

fn item_inputs(items: Vec<Value>, collection: &str) -> Result<Vec<ItemInput>, ApiError> {
    // Takes the parsed values apart rather than cloning them: a 10 MB body is held once, not twice.
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let Value::Object(mut item) = item else {
                return Err(ApiError::new(ErrorCode::InvalidJson, format!("entry {index} must be a JSON object"))
                    .with_details(json!({"pointer": format!("/{collection}/{index}")})));
            };
            let id = raw_id(item.get("id"));
            let fields = match item.remove("fields") {
                None => Map::new(),
                Some(Value::Object(fields)) => fields,
                Some(_) => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidJson,
                        format!("{collection}[{index}].fields must be an object"),
                    )
                    .with_details(json!({"pointer": format!("/{collection}/{index}/fields")})))
                }
            };
            Ok(ItemInput { id, fields })
        })
        .collect()
}

fn optional_string(value: Option<&Value>, pointer: String) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::new(ErrorCode::InvalidJson, format!("{pointer} must be a string"))
            .with_details(json!({"pointer": pointer}))),
    }
}

fn category_inputs(categories: Vec<Value>) -> Result<Vec<CategoryInput>, ApiError> {
    categories
        .iter()
        .enumerate()
        .map(|(index, category)| {
            let item_ids = match object_field(category, index, "item_ids")? {
                None | Some(Value::Null) => None,
                Some(Value::Array(ids)) => {
                    Some(ids.iter().map(|id| id.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>().ok_or_else(
                        || {
                            ApiError::new(
                                ErrorCode::InvalidJson,
                                format!("categories[{index}].item_ids must hold strings"),
                            )
                        },
                    )?)
                }
                Some(_) => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidJson,
                        format!("categories[{index}].item_ids must be an array"),
                    ))
                }
            };
            Ok(CategoryInput {
                id: raw_id(object_field(category, index, "id")?),
                external_id: optional_string(category.get("external_id"), format!("/categories/{index}/external_id"))?,
                name: optional_string(category.get("name"), format!("/categories/{index}/name"))?,
                item_ids,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Catalogs

#[utoipa::path(post, path = "/v1/catalogs", tag = "catalogs", request_body = CreateCatalogBody, responses((status = 201, body = CatalogView), (status = 400, body = ErrorEnvelope), (status = 409, description = "Name taken", body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn create_catalog(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateCatalogBody>,
) -> Result<Response, ApiError> {
    let catalog = state.store.create_catalog(caller.project_id, &body.name, body.description.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(CatalogView::from(&catalog))).into_response())
}

#[utoipa::path(get, path = "/v1/catalogs", tag = "catalogs", params(PageQuery), responses((status = 200, body = PageView<CatalogView>), GuardErrors), security(("bearer" = [])))]
async fn list_catalogs(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.store.list_catalogs(caller.project_id, query.cursor.as_deref(), limit).await?;
    Ok(Json(PageView::<CatalogView>::of(&page)))
}

#[utoipa::path(get, path = "/v1/catalogs/{catalog}", tag = "catalogs", params(("catalog" = String, Path, description = "Catalog name")), responses((status = 200, body = CatalogView), (status = 404, body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn get_catalog(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(catalog): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(CatalogView::from(&state.store.get_catalog(caller.project_id, &catalog).await?)))
}

#[utoipa::path(delete, path = "/v1/catalogs/{catalog}", tag = "catalogs", params(("catalog" = String, Path, description = "Catalog name")), responses((status = 202, body = JobCreatedView), (status = 404, body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn delete_catalog(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(catalog): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = state.store.delete_catalog(caller.project_id, &catalog).await?;
    Ok((StatusCode::ACCEPTED, Json(JobCreatedView { job: JobView::from(&job) })).into_response())
}

// ---------------------------------------------------------------------------------------------
// Items and categories

#[utoipa::path(get, path = "/v1/catalogs/{catalog}/items", tag = "items", params(("catalog" = String, Path, description = "Catalog name"), PageQuery), responses((status = 200, body = PageView<ItemView>), (status = 404, body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn list_items(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(catalog): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.store.list_items(caller.project_id, &catalog, query.cursor.as_deref(), limit).await?;
    Ok(Json(PageView::<ItemView>::of(&page)))
}

#[utoipa::path(get, path = "/v1/catalogs/{catalog}/items/{id}", tag = "items", params(("catalog" = String, Path, description = "Catalog name"), ("id" = String, Path, description = "Item id")), responses((status = 200, body = ItemView), (status = 404, body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn get_item(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath((catalog, id)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(ItemView::from(&state.store.get_item(caller.project_id, &catalog, &id).await?)))
}

#[utoipa::path(get, path = "/v1/catalogs/{catalog}/categories", tag = "categories", params(("catalog" = String, Path, description = "Catalog name"), PageQuery), responses((status = 200, body = PageView<CategoryView>), (status = 404, body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn list_categories(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(catalog): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.store.list_categories(caller.project_id, &catalog, query.cursor.as_deref(), limit).await?;
    Ok(Json(PageView::<CategoryView>::of(&page)))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/items/bulk-delete", tag = "items", params(CatalogPath, IdempotencyHeader), request_body = IdsBody, responses(BulkResponses, BulkErrors, GuardErrors), security(("bearer" = [])))]
async fn bulk_delete_items(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<IdsBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state.store.bulk_delete_items(project, &catalog, Dialect::Native, raw_ids(inputs), &options).await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/items/bulk-upsert", tag = "items", params(CatalogPath, IdempotencyHeader), request_body = ItemsBody, responses(BulkResponses, BulkErrors, GuardErrors), security(("bearer" = [])))]
async fn bulk_upsert_items(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<ItemsBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state
        .store
        .bulk_upsert_items(project, &catalog, Dialect::Native, item_inputs(inputs, "items")?, &options)
        .await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/items/bulk-patch", tag = "items", params(CatalogPath, IdempotencyHeader), request_body = ItemsBody, responses(BulkResponses, BulkErrors, GuardErrors), security(("bearer" = [])))]
async fn bulk_patch_items(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<ItemsBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state
        .store
        .bulk_patch_items(project, &catalog, Dialect::Native, item_inputs(inputs, "items")?, false, &options)
        .await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/categories/bulk-update", tag = "categories", params(CatalogPath, IdempotencyHeader), request_body = CategoriesBody, responses(BulkResponses, BulkErrors, GuardErrors), security(("bearer" = [])))]
async fn bulk_update_categories(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<CategoriesBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state
        .store
        .bulk_update_categories(project, &catalog, Dialect::Native, category_inputs(inputs)?, &options)
        .await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/categories/bulk-upsert", tag = "categories", params(CatalogPath, IdempotencyHeader), request_body = CategoriesBody, responses(BulkResponses, BulkErrors, GuardErrors), security(("bearer" = [])))]
async fn bulk_upsert_categories(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<CategoriesBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state
        .store
        .bulk_upsert_categories(project, &catalog, Dialect::Native, category_inputs(inputs)?, &options)
        .await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/categories/bulk-delete", tag = "categories", params(CatalogPath, IdempotencyHeader), request_body = IdsBody, responses(BulkResponses, BulkErrors, GuardErrors), security(("bearer" = [])))]
async fn bulk_delete_categories(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<IdsBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome =
        state.store.bulk_delete_categories(project, &catalog, Dialect::Native, raw_ids(inputs), &options).await?;
    Ok(bulk_response(&outcome))
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// Filters and paging of `GET /v1/jobs`. `status` and `kind` take comma-separated lists; times are
/// RFC 3339.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    /// Comma-separated statuses: scheduled, queued, running, completed, failed, cancelled.
    status: Option<String>,
    /// Comma-separated kinds, e.g. item_bulk_delete.
    kind: Option<String>,
    /// Only jobs of this catalog.
    catalog: Option<String>,
    /// Created at or after this RFC 3339 time.
    created_after: Option<String>,
    /// Created before this RFC 3339 time.
    created_before: Option<String>,
    /// Rows per page, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// Parses a comma-separated list of words (`status=queued,running`).
fn word_list<T: std::str::FromStr<Err = catalog_domain::job::UnknownWord>>(
    text: Option<&str>,
) -> Result<Vec<T>, ApiError> {
    text.map(|text| {
        text.split(',')
            .filter(|w| !w.is_empty())
            .map(|w| w.parse::<T>().map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.to_string())))
            .collect()
    })
    .unwrap_or_else(|| Ok(Vec::new()))
}

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobsQuery), responses((status = 200, body = PageView<JobView>), (status = 400, body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn list_jobs(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<JobsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let query_time = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| parse_rfc3339(t).map_err(|e| ApiError::new(ErrorCode::InvalidQuery, format!("`{field}`: {e}"))))
            .transpose()
    };
    let filter = JobFilter {
        statuses: word_list::<JobStatus>(query.status.as_deref())?,
        kinds: word_list::<JobKind>(query.kind.as_deref())?,
        catalog: query.catalog.clone(),
        created_after: query_time("created_after", &query.created_after)?,
        created_before: query_time("created_before", &query.created_before)?,
    };
    let paging = JobPaging::Cursor { cursor: query.cursor.clone(), limit: page_limit(query.limit)? };
    let page = state.store.list_jobs(caller.project_id, &filter, &paging).await?;
    Ok(Json(PageView::<JobView>::of(&page)))
}

/// Long poll: hold the request until the job is finished or `wait` seconds (at most 60) pass.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    /// Seconds to wait for the job to finish, 0 to 60.
    wait: Option<u64>,
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path, description = "Job id"), WaitQuery), responses((status = 200, body = JobView), (status = 404, body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn get_job(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let job = match query.wait {
        None | Some(0) => state.store.get_job(caller.project_id, JobId(id)).await?,
        Some(secs @ 1..=MAX_WAIT_SECS) => {
            state.store.wait_for_job(caller.project_id, JobId(id), Duration::from_secs(secs)).await?
        }
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("wait must be 0 to {MAX_WAIT_SECS}, not {other}"),
            ))
        }
    };
    Ok(Json(JobView::from(&job)))
}

#[utoipa::path(get, path = "/v1/jobs/{id}/errors", tag = "jobs", params(("id" = i64, Path, description = "Job id"), PageQuery), responses((status = 200, body = PageView<JobErrorView>), (status = 404, body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn list_job_errors(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.store.list_job_errors(caller.project_id, JobId(id), query.cursor.as_deref(), limit).await?;
    Ok(Json(PageView::<JobErrorView>::of(&page)))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = i64, Path, description = "Job id")), responses((status = 200, body = JobView), (status = 404, body = ErrorEnvelope), (status = 409, description = "The job has finished", body = ErrorEnvelope), GuardErrors), security(("bearer" = [])))]
async fn cancel_job(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(JobView::from(&state.store.cancel_job(caller.project_id, JobId(id)).await?)))
}

/// The catalog in a bulk route's path (documentation only: [`BulkRequest`] extracts it).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct CatalogPath {
    /// Catalog name.
    catalog: String,
}

/// The header every job-creating route reads (documentation only).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyHeader {
    /// A retry with the same key and body returns the first job.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// The successful answers of every bulk route (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum BulkResponses {
    /// Accepted: the job, and one result per input.
    #[response(status = 202)]
    Accepted(BulkView),
    /// An idempotent replay: the first request's job.
    #[response(status = 200)]
    Replayed(BulkView),
}

/// The errors of the guard every `/v1` route sits behind (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum GuardErrors {
    /// No valid API key.
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// The key lacks the route's scope.
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// Rate limited; see `Retry-After`.
    #[response(status = 429)]
    RateLimited(ErrorEnvelope),
}

/// The errors of the bulk routes besides the guard's (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum BulkErrors {
    /// Invalid body, or no valid input.
    #[response(status = 400)]
    Invalid(ErrorEnvelope),
    /// No such catalog.
    #[response(status = 404)]
    CatalogNotFound(ErrorEnvelope),
    /// Idempotency-Key reused with another body.
    #[response(status = 409)]
    IdempotencyKeyReused(ErrorEnvelope),
    /// Body too large.
    #[response(status = 413)]
    PayloadTooLarge(ErrorEnvelope),
    /// Not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorEnvelope),
}

/// The native API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "catalogd native API", description = "Catalogs whose bulk changes run as durable asynchronous jobs."),
    paths(
        create_catalog, list_catalogs, get_catalog, delete_catalog, list_items, get_item, list_categories,
        bulk_delete_items, bulk_upsert_items, bulk_patch_items, bulk_update_categories, bulk_upsert_categories,
        bulk_delete_categories, list_jobs, get_job, list_job_errors, cancel_job
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "catalogs", description = "Catalogs of a project"),
        (name = "items", description = "Items, and their bulk jobs"),
        (name = "categories", description = "Categories, and their bulk jobs"),
        (name = "jobs", description = "List, inspect, wait for and cancel jobs"),
    )
)]
pub struct NativeApiDoc;

/// Declares the `bearer` security scheme the paths refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The OpenAPI document as pretty JSON, exactly as committed in `docs/openapi.json`.
pub fn openapi_json() -> String {
    let mut doc = NativeApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut text = doc.to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}
