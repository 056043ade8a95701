//! Klaviyo's catalog API (contracts/klaviyo.md): the six bulk-job types of items and categories
//! (create, update, delete), created, listed and read as JSON:API documents, and the items and
//! categories themselves, read (`/api/catalog-items`, `/api/catalog-categories`), so that every
//! link the facade renders resolves. The variant job types answer that they are not available.
//!
//! Every request goes through the same steps, in this order: the key, as `Klaviyo-API-Key` or as
//! an OAuth app's `Bearer` token (401), the scope of the method (403), the rate-limit quotas of
//! the method (429; a refused request changes nothing), the `revision` header (400), the query
//! string (400); then, for a create, the content type (415), the body size (413), the body and
//! its compound ids (400), and the cap on jobs in progress (400), which the store enforces inside
//! the job insert's own transaction. The rules come from catalog-domain, the jobs from
//! catalog-store: this module only parses and renders.

mod access;
mod body;
mod catalog;
mod error;
mod params;
mod render;
mod wire;

pub use catalog_domain::klaviyo::MAX_JOBS_IN_PROGRESS;
pub use error::{ErrorEntry, KlaviyoError, Source};
pub use params::Revision;
pub use wire::{JobType, PAGE_SIZE};

use crate::state::AppState;
use access::{guarded, method_not_allowed, Guarded};
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{any, get, MethodRouter};
use axum::Router;
use body::CreateBody;
use catalog_domain::{Dialect, RawId};
use catalog_store::{BulkOutcome, Job, JobDetails, JobId, JobOptions, JobSelection, StoreError};
use params::{Endpoint, Params};
use render::{base_url, Context};
use serde_json::{json, Value};
use wire::{VARIANT_JOB_PATHS, VND_API_JSON};

/// The routes of the served job types, the catalog reads and the variant job types, each with
/// and without a trailing slash.
pub fn routes() -> Router<AppState> {
    let mut router = catalog::routes();
    for job_type in JobType::ALL {
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
    for path in VARIANT_JOB_PATHS {
        let collection = format!("/api/{path}");
        let member = format!("{collection}/{{job_id}}");
        for route in [collection.clone(), format!("{collection}/"), member.clone(), format!("{member}/")] {
            router = router.route(&route, any(variants_not_available));
        }
    }
    router
}

/// The variant job types: catalogd's model has no item with a parent item, so it cannot hold a
/// variant faithfully. After the usual key, scope and quota checks, 404 `not_found` says so.
async fn variants_not_available(State(state): State<AppState>, request: Request) -> Response {
    let write = request.method() != Method::GET;
    guarded(state, request, write, |_, _, _| async {
        Err::<(StatusCode, Value), _>(KlaviyoError::not_found(
            "Catalog variants are not available on this server: its catalogs hold items without parents, so \
             variant jobs cannot be created or read here.",
        ))
    })
    .await
}

/// The included resources of a job type's relationship for `ids` (external ids) in the Klaviyo
/// catalog: items or categories, in one read.
async fn included(
    state: &AppState,
    guard: &Guarded,
    context: &Context<'_>,
    ids: &[String],
) -> Result<Vec<Value>, KlaviyoError> {
    let (project, catalog) = (guard.principal.project_id, &*state.klaviyo_catalog);
    let found = if context.job_type.on_items() {
        state.store.get_items(project, catalog, ids).await.map(|items| items.iter().map(|i| context.item(i)).collect())
    } else {
        state
            .store
            .get_categories(project, catalog, ids)
            .await
            .map(|categories| categories.iter().map(|c| context.category(c)).collect())
    };
    match found {
        Ok(resources) => Ok(resources),
        // The catalog was deleted since: its items and categories are gone, nothing to include.
        Err(StoreError::CatalogNotFound(_)) => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}

/// The job resources of `jobs` with their inputs and errors, read for all of them at once (a
/// fixed number of statements per page, see `Store::job_details`); with `include`, also the
/// included resources, each once however many jobs name it (JSON:API).
async fn job_resources(
    state: &AppState,
    guard: &Guarded,
    context: &Context<'_>,
    jobs: &[Job],
) -> Result<(Vec<Value>, Option<Vec<Value>>), KlaviyoError> {
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    let mut details = state.store.job_details(guard.principal.project_id, &ids).await?;
    let mut related: Vec<String> = Vec::new();
    let mut resources = Vec::with_capacity(jobs.len());
    for job in jobs {
        let JobDetails { inputs, errors } = details.remove(&job.id).unwrap_or_default();
        if context.params.include {
            for id in inputs.iter().flatten() {
                if !related.contains(id) {
                    related.push(id.clone());
                }
            }
        }
        resources.push(context.job(job, inputs.as_deref(), &errors));
    }
    let included = if context.params.include { Some(included(state, guard, context, &related).await?) } else { None };
    Ok((resources, included))
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
    if !job_type.kinds().contains(&job.kind) || job.catalog_name.as_deref() != Some(&*state.klaviyo_catalog) {
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
        let (mut resources, included) = job_resources(&state, &guard, &context, std::slice::from_ref(&job)).await?;
        let resource = resources.pop().unwrap_or(Value::Null);
        let mut document = json!({"data": resource, "links": {"self": context.self_url(request.uri())}});
        if let Some(included) = included {
            document["included"] = Value::Array(included);
        }
        Ok((StatusCode::OK, document))
    })
    .await
}

async fn list(state: AppState, job_type: JobType, request: Request) -> Response {
    guarded(state, request, false, move |state, guard, request| async move {
        let params = Params::parse(request.uri(), job_type, Endpoint::List)?;
        let selection = JobSelection {
            kinds: job_type.kinds().to_vec(),
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
        let (data, included) = job_resources(&state, &guard, &context, &window.rows).await?;
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
        if let Some(included) = included {
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

/// Creates the job of a parsed body on the Klaviyo catalog.
async fn submit(
    state: &AppState,
    guard: &Guarded,
    parsed: CreateBody,
    options: &JobOptions,
) -> Result<BulkOutcome, StoreError> {
    let (store, project, catalog) = (&state.store, guard.principal.project_id, &*state.klaviyo_catalog);
    let dialect = Dialect::Klaviyo;
    let ids = |ids: Vec<String>| ids.into_iter().map(RawId::String).collect::<Vec<_>>();
    match parsed {
        CreateBody::ItemCreate(items) => {
            let items = items.into_iter().map(Into::into).collect();
            store.bulk_create_items(project, catalog, dialect, items, options).await
        }
        CreateBody::ItemUpdate(items) => {
            let items = items.into_iter().map(Into::into).collect();
            store.bulk_patch_items(project, catalog, dialect, items, false, options).await
        }
        CreateBody::ItemDelete(external) => {
            store.bulk_delete_items(project, catalog, dialect, ids(external), options).await
        }
        CreateBody::CategoryCreate(categories) => {
            let inputs = categories.into_iter().map(Into::into).collect();
            store.bulk_create_categories(project, catalog, dialect, inputs, options).await
        }
        CreateBody::CategoryUpdate(categories) => {
            let inputs = categories.into_iter().map(Into::into).collect();
            store.bulk_update_categories(project, catalog, dialect, inputs, options).await
        }
        CreateBody::CategoryDelete(external) => {
            store.bulk_delete_categories(project, catalog, dialect, ids(external), options).await
        }
    }
}

/// Creates the Klaviyo catalog of the project: Klaviyo's `$default` catalog always exists, so a
/// pure Klaviyo integration never has to (docs/compat/klaviyo.md). A concurrent first use may
/// have created it first, which is as good.
async fn create_klaviyo_catalog(state: &AppState, guard: &Guarded) -> Result<(), StoreError> {
    match state.store.create_catalog(guard.principal.project_id, &state.klaviyo_catalog, None).await {
        Ok(_) | Err(StoreError::CatalogAlreadyExists(_)) => Ok(()),
        Err(error) => Err(error),
    }
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
        // The ids were checked above with Klaviyo's rules; `atomic` makes the store refuse the
        // whole request rather than drop an input, should its own check ever disagree. The cap on
        // jobs in progress is counted by the insert itself, in its transaction.
        let options = JobOptions { atomic: true, in_progress_cap: true, ..JobOptions::default() };
        let outcome = match submit(&state, &guard, parsed.clone(), &options).await {
            // The first use of the mapped catalog creates it, then the job goes in.
            Err(StoreError::CatalogNotFound(_)) => {
                create_klaviyo_catalog(&state, &guard).await?;
                submit(&state, &guard, parsed, &options).await?
            }
            outcome => outcome?,
        };
        let job = outcome.job.ok_or_else(|| KlaviyoError::pointer("/data", "No valid resource to process."))?;
        let context = Context { base: &base, revision: &guard.revision, params: &params, job_type };
        let (mut resources, _) = job_resources(&state, &guard, &context, std::slice::from_ref(&job)).await?;
        let resource = resources.pop().unwrap_or(Value::Null);
        Ok((StatusCode::ACCEPTED, json!({"data": resource, "links": {"self": context.job_url(&job)}})))
    })
    .await
}
