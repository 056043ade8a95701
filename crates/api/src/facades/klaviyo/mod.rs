//! Klaviyo's catalog bulk-job API (contracts/klaviyo.md): item delete jobs and category update
//! jobs, created, listed and read as JSON:API documents.
//!
//! Every request goes through the same steps, in this order: the `Klaviyo-API-Key` (401), the
//! scope of the method (403), the rate-limit quotas of the method (429; a refused request changes
//! nothing), the `revision` header (400), the query string (400); then, for a create, the content
//! type (415), the body size (413), the body and its compound ids (400), and the cap on jobs in
//! progress (400). The rules come from catalog-domain, the jobs from catalog-store: this module
//! only parses and renders.

mod body;
mod error;
mod params;
mod render;

pub use error::{ErrorEntry, KlaviyoError, Source};
pub use params::Revision;

use crate::auth::{insert_ratelimit_headers, token_with_scheme, RepeatedAuthorization};
use crate::limits::Policy;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use body::CreateBody;
use catalog_domain::rate::RateDecision;
use catalog_domain::{Dialect, JobKind, RawId};
use catalog_store::{Job, JobErrorRecord, JobId, JobOptions, JobSelection, Principal, Scope};
use params::{Endpoint, Params};
use render::{base_url, Context, VND_API_JSON};
use serde_json::{json, Value};

/// Most jobs a project may have in progress (scheduled, queued or running) before Klaviyo's
/// create endpoints refuse more (contracts/klaviyo.md, "Limits").
pub const MAX_JOBS_IN_PROGRESS: u64 = 500;

/// Most jobs on one page of a collection.
pub const PAGE_SIZE: u32 = 100;

/// The two job types of this dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobType {
    /// `catalog-item-bulk-delete-job`.
    ItemDelete,
    /// `catalog-category-bulk-update-job`.
    CategoryUpdate,
}

impl JobType {
    /// The JSON:API `type`.
    pub const fn type_name(self) -> &'static str {
        match self {
            JobType::ItemDelete => "catalog-item-bulk-delete-job",
            JobType::CategoryUpdate => "catalog-category-bulk-update-job",
        }
    }

    /// The collection's path segment under `/api/`.
    pub const fn path(self) -> &'static str {
        match self {
            JobType::ItemDelete => "catalog-item-bulk-delete-jobs",
            JobType::CategoryUpdate => "catalog-category-bulk-update-jobs",
        }
    }

    /// The attribute (and relationship) holding the job's inputs.
    pub const fn member(self) -> &'static str {
        match self {
            JobType::ItemDelete => "items",
            JobType::CategoryUpdate => "categories",
        }
    }

    /// The JSON:API type of the inputs.
    pub const fn related_type(self) -> &'static str {
        match self {
            JobType::ItemDelete => "catalog-item",
            JobType::CategoryUpdate => "catalog-category",
        }
    }

    /// The catalogd job kind behind it.
    pub const fn kind(self) -> JobKind {
        match self {
            JobType::ItemDelete => JobKind::ItemBulkDelete,
            JobType::CategoryUpdate => JobKind::CategoryBulkUpdate,
        }
    }
}

/// The six endpoints, each with and without a trailing slash.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for job_type in [JobType::ItemDelete, JobType::CategoryUpdate] {
        let collection = format!("/api/{}", job_type.path());
        let member = format!("{collection}/{{job_id}}");
        let collection_routes = || -> MethodRouter<AppState> {
            get(move |State(state): State<AppState>, request: Request| list(state, job_type, request))
                .post(move |State(state): State<AppState>, request: Request| create(state, job_type, request))
                .fallback(method_not_allowed)
        };
        let member_routes = || -> MethodRouter<AppState> {
            get(move |State(state): State<AppState>, Path(job_id): Path<String>, request: Request| {
                get_one(state, job_type, job_id, request)
            })
            .fallback(method_not_allowed)
        };
        router = router
            .route(&collection, collection_routes())
            .route(&format!("{collection}/"), collection_routes())
            .route(&member, member_routes())
            .route(&format!("{member}/"), member_routes());
    }
    router
}

async fn method_not_allowed() -> KlaviyoError {
    KlaviyoError::method_not_allowed()
}

/// Who is calling and what the quota said.
struct Guarded {
    principal: Principal,
    revision: Revision,
    rate: Option<RateDecision>,
}

/// Authentication, scope, quotas and revision, in the order the module documents.
async fn guard(state: &AppState, headers: &HeaderMap, write: bool) -> Result<Guarded, KlaviyoError> {
    let token = token_with_scheme(headers, "Klaviyo-API-Key")
        .map_err(|_| KlaviyoError::parameter("Authorization", RepeatedAuthorization::MESSAGE))?
        .ok_or_else(KlaviyoError::not_authenticated)?;
    let principal = state.store.authenticate(token).await?.ok_or_else(KlaviyoError::authentication_failed)?;
    crate::app::note_project(&principal);
    let scope = if write { Scope::CatalogsWrite } else { Scope::CatalogsRead };
    if !principal.has_scope(scope) {
        return Err(KlaviyoError::permission_denied(scope.as_str()));
    }
    let policies: &[Policy] = if write {
        &[Policy::KlaviyoCreateBurst, Policy::KlaviyoCreateSteady]
    } else {
        &[Policy::KlaviyoReadBurst, Policy::KlaviyoReadSteady]
    };
    let rate = state.take_quota(principal.project_id, policies, None).await?;
    if let Some(decision) = rate.filter(|d| !d.allowed) {
        return Err(KlaviyoError::throttled(decision));
    }
    let revision = Revision::from_headers(headers).map_err(|e| e.with_rate(rate))?;
    Ok(Guarded { principal, revision, rate })
}

/// A JSON:API success response with the quota's headers.
fn document(status: StatusCode, body: &Value, rate: Option<RateDecision>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(VND_API_JSON));
    if let Some(decision) = &rate {
        insert_ratelimit_headers(headers, decision);
    }
    response
}

/// Runs `body` after the guard, adding the quota's headers to whatever it answers.
async fn guarded<F, Fut>(state: AppState, request: Request, write: bool, body: F) -> Response
where
    F: FnOnce(AppState, Guarded, Request) -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, Value), KlaviyoError>>,
{
    let guard = match guard(&state, request.headers(), write).await {
        Ok(guard) => guard,
        Err(error) => return error.into_response(),
    };
    let rate = guard.rate;
    match body(state, guard, request).await {
        Ok((status, value)) => document(status, &value, rate),
        Err(error) => error.with_rate(rate).into_response(),
    }
}

/// The job's per-item failures, read only when it has some. One page of 1,000 holds all of a
/// Klaviyo job's (at most 100 inputs); a larger native job on the same catalog shows its first.
async fn job_errors(state: &AppState, guard: &Guarded, job: &Job) -> Result<Vec<JobErrorRecord>, KlaviyoError> {
    if job.failed_count == 0 {
        return Ok(Vec::new());
    }
    let page = state.store.list_job_errors(guard.principal.project_id, job.id, None, 1_000).await?;
    Ok(page.rows)
}

/// A job resource with its relationships and errors.
async fn job_resource(
    state: &AppState,
    guard: &Guarded,
    context: &Context<'_>,
    job: &Job,
) -> Result<(Value, Option<Vec<String>>), KlaviyoError> {
    let inputs = state.store.job_input_ids(guard.principal.project_id, job.id).await?;
    let errors = job_errors(state, guard, job).await?;
    Ok((context.job(job, inputs.as_deref(), &errors), inputs))
}

/// The `included` categories of a category job.
async fn included_categories(
    state: &AppState,
    guard: &Guarded,
    context: &Context<'_>,
    job: &Job,
    inputs: Option<&[String]>,
) -> Result<Vec<Value>, KlaviyoError> {
    let (Some(inputs), Some(catalog)) = (inputs, job.catalog_name.as_deref()) else {
        return Ok(Vec::new());
    };
    match state.store.get_categories(guard.principal.project_id, catalog, inputs).await {
        Ok(categories) => Ok(categories.iter().map(|c| context.category(c)).collect()),
        // The job's catalog was deleted since: its categories are gone, nothing to include.
        Err(catalog_store::StoreError::CatalogNotFound(_)) => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}

/// Reads the job `raw_id` if it is one of this job type on the Klaviyo catalog.
async fn find_job(state: &AppState, guard: &Guarded, job_type: JobType, raw_id: &str) -> Result<Job, KlaviyoError> {
    let not_found = || KlaviyoError::not_found(format!("No {} with id '{raw_id}' was found.", job_type.type_name()));
    let id: i64 = raw_id.parse().map_err(|_| not_found())?;
    let job = match state.store.get_job(guard.principal.project_id, JobId(id)).await {
        Ok(job) => job,
        Err(catalog_store::StoreError::JobNotFound(_)) => return Err(not_found()),
        Err(error) => return Err(error.into()),
    };
    if job.kind != job_type.kind() || job.catalog_name.as_deref() != Some(&*state.klaviyo_catalog) {
        return Err(not_found());
    }
    Ok(job)
}

async fn get_one(state: AppState, job_type: JobType, job_id: String, request: Request) -> Response {
    guarded(state, request, false, move |state, guard, request| async move {
        let params = Params::parse(request.uri(), job_type, Endpoint::Get)?;
        let job = find_job(&state, &guard, job_type, &job_id).await?;
        let base = base_url(request.headers());
        let context = Context { base: &base, revision: &guard.revision, params: &params, job_type };
        let (resource, inputs) = job_resource(&state, &guard, &context, &job).await?;
        let mut document = json!({"data": resource, "links": {"self": context.self_url(request.uri())}});
        if params.include_categories {
            document["included"] =
                Value::Array(included_categories(&state, &guard, &context, &job, inputs.as_deref()).await?);
        }
        Ok((StatusCode::OK, document))
    })
    .await
}

async fn list(state: AppState, job_type: JobType, request: Request) -> Response {
    guarded(state, request, false, move |state, guard, request| async move {
        let params = Params::parse(request.uri(), job_type, Endpoint::List)?;
        let selection = JobSelection {
            kinds: vec![job_type.kind()],
            statuses: params.statuses.clone(),
            catalog: Some(state.klaviyo_catalog.to_string()),
        };
        let window = match state
            .store
            .list_jobs_window(guard.principal.project_id, &selection, params.cursor.as_deref(), PAGE_SIZE)
            .await
        {
            Ok(window) => window,
            Err(catalog_store::StoreError::InvalidCursor) => {
                return Err(KlaviyoError::parameter("page[cursor]", "The page cursor is invalid or expired."))
            }
            Err(error) => return Err(error.into()),
        };
        let base = base_url(request.headers());
        let context = Context { base: &base, revision: &guard.revision, params: &params, job_type };
        let mut data = Vec::with_capacity(window.rows.len());
        let mut included = Vec::new();
        for job in &window.rows {
            let (resource, inputs) = job_resource(&state, &guard, &context, job).await?;
            data.push(resource);
            if params.include_categories {
                for category in included_categories(&state, &guard, &context, job, inputs.as_deref()).await? {
                    // JSON:API: each included resource appears once, however many jobs name it.
                    if !included.iter().any(|seen: &Value| seen["id"] == category["id"]) {
                        included.push(category);
                    }
                }
            }
        }
        let link =
            |cursor: Option<&String>| cursor.map_or(Value::Null, |c| Value::String(context.collection_url(Some(c))));
        let mut document = json!({
            "data": data,
            "links": {
                "self": context.self_url(request.uri()),
                "first": context.collection_url(None),
                "last": link(window.last_cursor.as_ref()),
                "next": link(window.next_cursor.as_ref()),
                "prev": link(window.prev_cursor.as_ref()),
            },
        });
        if params.include_categories {
            document["included"] = Value::Array(included);
        }
        Ok((StatusCode::OK, document))
    })
    .await
}

/// True when the content type is JSON:API's or plain JSON (parameters such as charset allowed).
fn acceptable_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == VND_API_JSON || essence == "application/json"
}

/// Reads the body within Klaviyo's 5 MB (or the server's smaller limit).
async fn read_body(state: &AppState, request: Request) -> Result<Bytes, KlaviyoError> {
    let max = Dialect::Klaviyo.limits().max_body_bytes.min(state.max_body_bytes);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // Refuse a declared oversize body before reading a byte of it.
    if declared.is_some_and(|len| len > max) {
        return Err(KlaviyoError::payload_too_large(max));
    }
    let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            KlaviyoError::payload_too_large(max)
        } else {
            KlaviyoError::pointer("/", format!("The request body cannot be read: {rejection}"))
        }
    })?;
    if bytes.len() > max {
        return Err(KlaviyoError::payload_too_large(max));
    }
    Ok(bytes)
}

async fn create(state: AppState, job_type: JobType, request: Request) -> Response {
    guarded(state, request, true, move |state, guard, request| async move {
        let params = Params::parse(request.uri(), job_type, Endpoint::Create)?;
        if !acceptable_content_type(request.headers()) {
            return Err(KlaviyoError::unsupported_media_type());
        }
        let base = base_url(request.headers());
        let bytes = read_body(&state, request).await?;
        let parsed = body::parse(&bytes, job_type)?;
        let project = guard.principal.project_id;
        if state.store.count_jobs_in_progress(project).await? >= MAX_JOBS_IN_PROGRESS {
            return Err(KlaviyoError::pointer(
                "/data",
                format!("This account already has {MAX_JOBS_IN_PROGRESS} jobs in progress; wait for some to complete."),
            ));
        }
        // The ids were checked above with Klaviyo's rules; `atomic` makes the store refuse the
        // whole request rather than drop an input, should its own check ever disagree.
        let options = JobOptions { atomic: true, ..JobOptions::default() };
        let catalog = &*state.klaviyo_catalog;
        let outcome = match parsed {
            CreateBody::ItemDelete(ids) => {
                let ids = ids.into_iter().map(RawId::String).collect();
                state.store.bulk_delete_items(project, catalog, Dialect::Klaviyo, ids, &options).await
            }
            CreateBody::CategoryUpdate(categories) => {
                let inputs = categories.into_iter().map(Into::into).collect();
                state.store.bulk_update_categories(project, catalog, Dialect::Klaviyo, inputs, &options).await
            }
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(catalog_store::StoreError::CatalogNotFound(name)) => {
                return Err(KlaviyoError::pointer(
                    "/data",
                    format!(
                        "The catalog '{name}' that '$default' maps to does not exist in this project; create it first."
                    ),
                ))
            }
            Err(error) => return Err(error.into()),
        };
        let job = outcome.job.ok_or_else(|| KlaviyoError::pointer("/data", "No valid resource to process."))?;
        let context = Context { base: &base, revision: &guard.revision, params: &params, job_type };
        let (resource, _) = job_resource(&state, &guard, &context, &job).await?;
        Ok((StatusCode::ACCEPTED, json!({"data": resource, "links": {"self": context.job_url(&job)}})))
    })
    .await
}
