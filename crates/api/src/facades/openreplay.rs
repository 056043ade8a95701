//! OpenReplay's jobs API (contracts/openreplay.md), in its two generations over the same jobs:
//!
//! - the public API, `GET /public/{projectKey}/jobs`, `GET /public/{projectKey}/jobs/{jobId}` and
//!   `DELETE /public/{projectKey}/jobs/{jobId}` (cancel): Bearer auth; a missing or unknown key,
//!   or a `projectKey` other than the key's project, is 401 with an empty body; an error is
//!   `{"error": "<message>"}` with its status;
//! - the older API that integrations written before mid-2026 call, `/api/v1/{projectKey}/jobs`
//!   and `/api/v1/{projectKey}/jobs/{jobId}` (GET, DELETE): the raw key is the whole
//!   `Authorization` value, and an error the handler finds is HTTP 200 `{"errors": ["..."]}`, in
//!   the older server's words (a missing or unknown key is still 401; a refused rate or storage
//!   trouble keep their status, so that clients back off).
//!
//! Success is `{"data": ...}` on both. Jobs render with epoch-millisecond times, integer ids and
//! the domain's OpenReplay status words; a new job's `updatedAt` is its `createdAt`, as OpenReplay
//! writes both at insert. A failed job may be cancelled, as OpenReplay's server allows: nothing is
//! left to stop, so it is only marked cancelled (`JobEvent::Withdrawn`). A key without the `jobs:read` (GET) or `jobs:write`
//! (DELETE) scope is refused; requests count against the native API's per-project quotas,
//! OpenReplay documenting none of its own.

use crate::auth::{insert_ratelimit_headers, token_with_scheme, RepeatedAuthorization};
use crate::limits::Policy;
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use catalog_domain::rate::RateDecision;
use catalog_domain::{ErrorCode, JobKind, JobStatus};
use catalog_store::{Job, JobFilter, JobId, JobPaging, Principal, Scope, StoreError};
use serde_json::{json, Value};
use std::collections::HashMap;

/// OpenReplay's routes, both generations.
pub fn routes() -> Router<AppState> {
    let public = Router::new()
        .route("/public/{project_key}/jobs", get(|s, p, q, h| list_jobs(Surface::Public, s, p, q, h)))
        .route(
            "/public/{project_key}/jobs/{job_id}",
            get(|s, p, h| get_job(Surface::Public, s, p, h)).delete(|s, p, h| cancel_job(Surface::Public, s, p, h)),
        )
        .method_not_allowed_fallback(|| async { Failure::MethodNotAllowed.render(Surface::Public) });
    let older = Router::new()
        .route("/api/v1/{project_key}/jobs", get(|s, p, q, h| list_jobs(Surface::V1, s, p, q, h)))
        .route(
            "/api/v1/{project_key}/jobs/{job_id}",
            get(|s, p, h| get_job(Surface::V1, s, p, h)).delete(|s, p, h| cancel_job(Surface::V1, s, p, h)),
        )
        .method_not_allowed_fallback(|| async { Failure::MethodNotAllowed.render(Surface::V1) });
    public.merge(older)
}

/// Which generation of the API a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// `/public/...`: Bearer keys, `{"error"}` with the status.
    Public,
    /// `/api/v1/...`: the raw key, `{"errors": [...]}` with 200.
    V1,
}

/// Page size when `limit` is missing or out of range.
const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
const MAX_LIMIT: u32 = 200;

// ---------------------------------------------------------------------------------------------
// Errors

/// An answer other than success, rendered by each surface in its own words.
#[derive(Debug)]
enum Failure {
    /// No usable key: 401 with an empty body.
    Unauthorized,
    /// A valid key, but the path's `projectKey` is not its project's.
    ForeignProject,
    /// The key lacks this scope.
    MissingScope(Scope),
    /// `jobId` is not an integer.
    InvalidJobId,
    /// No such job in the project.
    JobNotFound,
    /// The job cannot be cancelled in this (terminal) status.
    NotCancellable(JobStatus),
    /// A request the store refused as invalid, with its message.
    Invalid(String),
    /// A method the route does not serve.
    MethodNotAllowed,
    /// The quota refused the request.
    Limited(RateDecision),
    /// Storage trouble, with its code (503 or 507).
    Trouble(ErrorCode),
    /// A bug: logged, answered without details.
    Internal,
}

impl Failure {
    /// The status, the public API's message and the older API's.
    fn words(&self) -> (StatusCode, String, String) {
        match self {
            Failure::Unauthorized => (StatusCode::UNAUTHORIZED, String::new(), String::new()),
            // The public API says no more than for an unknown key; the older server's handler
            // looked the project up and answered so.
            Failure::ForeignProject => (StatusCode::UNAUTHORIZED, String::new(), "invalid projectKey".to_owned()),
            Failure::MissingScope(scope) => {
                let message = format!("the API key lacks the `{scope}` scope");
                (StatusCode::FORBIDDEN, message.clone(), message)
            }
            Failure::InvalidJobId => (StatusCode::BAD_REQUEST, "invalid jobId".to_owned(), "invalid jobId".to_owned()),
            Failure::JobNotFound => (StatusCode::NOT_FOUND, "job not found".to_owned(), "Job not found.".to_owned()),
            Failure::NotCancellable(status) => (
                StatusCode::BAD_REQUEST,
                not_cancellable_message(*status),
                "The request job has already been canceled/completed.".to_owned(),
            ),
            Failure::Invalid(message) => (StatusCode::BAD_REQUEST, message.clone(), message.clone()),
            Failure::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed".to_owned(), "method not allowed".to_owned())
            }
            Failure::Limited(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded".to_owned(), "rate limit exceeded".to_owned())
            }
            Failure::Trouble(code) => {
                let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let message = if *code == ErrorCode::InsufficientStorage {
                    "insufficient storage"
                } else {
                    "service unavailable"
                };
                (status, message.to_owned(), message.to_owned())
            }
            Failure::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned(), "internal error".to_owned())
            }
        }
    }

    /// The answer on `surface`. On the older API an error its handler finds is 200
    /// `{"errors": [...]}`; no key (401), a refused rate (429) and storage trouble (503, 507)
    /// keep their status there too, so that clients authenticate or back off.
    fn render(self, surface: Surface) -> Response {
        let (status, public_message, older_message) = self.words();
        let keeps_status = matches!(self, Failure::Unauthorized | Failure::Limited(_) | Failure::Trouble(_))
            || (surface == Surface::Public && matches!(self, Failure::ForeignProject));
        let mut response = match surface {
            _ if status == StatusCode::UNAUTHORIZED
                && (surface == Surface::Public || matches!(self, Failure::Unauthorized)) =>
            {
                status.into_response()
            }
            Surface::Public => (status, Json(json!({"error": public_message}))).into_response(),
            Surface::V1 if keeps_status => (status, Json(json!({"errors": [older_message]}))).into_response(),
            Surface::V1 => (StatusCode::OK, Json(json!({"errors": [older_message]}))).into_response(),
        };
        if let Failure::Limited(decision) = &self {
            insert_ratelimit_headers(response.headers_mut(), decision);
        }
        if let Some(secs) = crate::error::storage_retry_after(status) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        // Every code of the one table: a new code must be placed here before it compiles, never
        // fall into a 500 by accident.
        match error.code() {
            ErrorCode::JobNotFound
            | ErrorCode::NotFound
            | ErrorCode::ProjectNotFound
            | ErrorCode::WebhookNotFound
            | ErrorCode::DeliveryNotFound => Failure::JobNotFound,
            ErrorCode::JobNotCancellable => match error {
                StoreError::JobNotCancellable { status, .. } => Failure::NotCancellable(status),
                other => Failure::Invalid(other.to_string()),
            },
            ErrorCode::Unauthenticated => Failure::Unauthorized,
            ErrorCode::Forbidden => Failure::MissingScope(Scope::JobsRead),
            ErrorCode::InvalidJson
            | ErrorCode::InvalidQuery
            | ErrorCode::InvalidRequest
            | ErrorCode::InvalidItemId
            | ErrorCode::InvalidItem
            | ErrorCode::InvalidCatalogName
            | ErrorCode::TooManyItems
            | ErrorCode::NoValidItems
            | ErrorCode::ItemRefused
            | ErrorCode::CatalogNotFound
            | ErrorCode::ItemNotFound
            | ErrorCode::CatalogAlreadyExists
            | ErrorCode::AlreadyExists
            | ErrorCode::ProjectAlreadyExists
            | ErrorCode::IdempotencyKeyReused
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::TooManyJobsInProgress
            | ErrorCode::QueueFull
            | ErrorCode::RateLimited => Failure::Invalid(error.to_string()),
            ErrorCode::MethodNotAllowed => Failure::MethodNotAllowed,
            code @ (ErrorCode::Unavailable | ErrorCode::InsufficientStorage) => {
                tracing::warn!(%error, "storage trouble");
                Failure::Trouble(code)
            }
            ErrorCode::Internal => {
                // The cause may name tables or hosts: log it, tell the client only what happened.
                tracing::error!(%error, "store error");
                Failure::Internal
            }
        }
    }
}

/// The contract's words for a job that cannot be cancelled in its (terminal) status.
fn not_cancellable_message(status: JobStatus) -> String {
    match status {
        JobStatus::Failed => "the requested job has already failed".to_owned(),
        other => format!("the requested job has already been {}", other.openreplay_word()),
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// The key of a request: `Bearer <key>` on the public API, the whole `Authorization` value on
/// the older one.
fn key_of(surface: Surface, headers: &HeaderMap) -> Result<&str, Failure> {
    match surface {
        Surface::Public => token_with_scheme(headers, "Bearer")
            .map_err(|_| Failure::Invalid(RepeatedAuthorization::MESSAGE.to_owned()))?
            .ok_or(Failure::Unauthorized),
        Surface::V1 => {
            let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
            let value = values.next().ok_or(Failure::Unauthorized)?;
            if values.next().is_some() {
                return Err(Failure::Invalid(RepeatedAuthorization::MESSAGE.to_owned()));
            }
            let key = value.to_str().map_err(|_| Failure::Unauthorized)?.trim();
            if key.is_empty() {
                return Err(Failure::Unauthorized);
            }
            Ok(key)
        }
    }
}

/// The caller, allowed on `project_key` with `scope`, after taking one request from its quota.
async fn authorize(
    surface: Surface,
    state: &AppState,
    headers: &HeaderMap,
    path_project_key: &str,
    scope: Scope,
) -> Result<(Principal, Option<RateDecision>), Failure> {
    let token = key_of(surface, headers)?;
    let principal = state.store.authenticate(token).await?.ok_or(Failure::Unauthorized)?;
    crate::app::note_project(&principal);
    if principal.project_key != path_project_key {
        return Err(Failure::ForeignProject);
    }
    if !principal.has_scope(scope) {
        return Err(Failure::MissingScope(scope));
    }
    let policy = if scope == Scope::JobsRead { Policy::NativeRead } else { Policy::NativeWrite };
    let decision = state.take_quota(principal.project_id, &[policy], None).await?;
    if let Some(decision) = decision.filter(|d| !d.allowed) {
        return Err(Failure::Limited(decision));
    }
    Ok((principal, decision))
}

fn answer(surface: Surface, result: Result<(Value, Option<RateDecision>), Failure>) -> Response {
    match result {
        Ok((data, decision)) => {
            let mut response = Json(json!({ "data": data })).into_response();
            if let Some(decision) = &decision {
                insert_ratelimit_headers(response.headers_mut(), decision);
            }
            response
        }
        Err(failure) => failure.render(surface),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// A sentence for a job created without a description, e.g. "Delete 2 items from catalog shoes".
fn default_description(job: &Job) -> String {
    let catalog = job.catalog_name.as_deref().unwrap_or("(deleted)");
    let count = |one: &str, many: &str| {
        let n = job.total_count;
        format!("{n} {}", if n == 1 { one } else { many })
    };
    let (items, categories) = (count("item", "items"), count("category", "categories"));
    match job.kind {
        JobKind::ItemBulkDelete => format!("Delete {items} from catalog {catalog}"),
        JobKind::ItemBulkUpsert => format!("Upsert {items} in catalog {catalog}"),
        JobKind::ItemBulkCreate => format!("Create {items} in catalog {catalog}"),
        JobKind::ItemBulkPatch => format!("Update {items} in catalog {catalog}"),
        JobKind::CategoryBulkUpdate => format!("Update {categories} in catalog {catalog}"),
        JobKind::CategoryBulkUpsert => format!("Upsert {categories} in catalog {catalog}"),
        JobKind::CategoryBulkCreate => format!("Create {categories} in catalog {catalog}"),
        JobKind::CategoryBulkDelete => format!("Delete {categories} from catalog {catalog}"),
        JobKind::CatalogDelete => format!("Delete catalog {catalog}"),
    }
}

/// `errors`: null, or a summary of what went wrong.
fn error_summary(job: &Job) -> Option<String> {
    let noun = if job.total_count == 1 { "item" } else { "items" };
    let failed_items =
        (job.failed_count > 0).then(|| format!("{} of {} {noun} failed", job.failed_count, job.total_count));
    match (job.failure_reason.as_deref(), failed_items) {
        (Some(reason), Some(items)) => Some(format!("{reason}; {items}")),
        (Some(reason), None) => Some(reason.to_owned()),
        (None, items) => items,
    }
}

/// A job as OpenReplay shows it.
fn job_json(job: &Job) -> Value {
    json!({
        "jobId": job.id.0,
        "description": job.description.clone().unwrap_or_else(|| default_description(job)),
        "status": job.status.openreplay_word(),
        "projectId": job.project_id.0,
        "action": job.kind.as_str(),
        "referenceId": job.reference_id.clone().or_else(|| job.catalog_name.clone()),
        "createdAt": job.created_at,
        // OpenReplay writes both times at insert: a new job's `updatedAt` is its `createdAt`.
        "updatedAt": job.updated_at,
        // A job without a start time starts when it is created.
        "startAt": job.start_at.unwrap_or(job.created_at),
        "errors": error_summary(job),
    })
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// `limit` 1..=200 and `page` >= 1, each falling back to its default when it does not parse or is
/// out of range (never a 400).
fn page_params(query: &HashMap<String, String>) -> (u32, u32) {
    let number = |name: &str| query.get(name).and_then(|v| v.trim().parse::<u32>().ok());
    let limit = number("limit").filter(|l| (1..=MAX_LIMIT).contains(l)).unwrap_or(DEFAULT_LIMIT);
    let page = number("page").filter(|p| *p >= 1).unwrap_or(1);
    (limit, page)
}

/// `GET /public/{projectKey}/jobs?limit=&page=` (and its older twin): every job of the project,
/// newest first.
async fn list_jobs(
    surface: Surface,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        surface,
        async {
            let Path(project_key) = path.map_err(|_| Failure::Unauthorized)?;
            let (principal, decision) = authorize(surface, &state, &headers, &project_key, Scope::JobsRead).await?;
            // A query string that does not even parse gets the defaults, like bad values do.
            let query = query.map(|Query(q)| q).unwrap_or_default();
            let (limit, page) = page_params(&query);
            let jobs = state
                .store
                .list_jobs(principal.project_id, &JobFilter::default(), &JobPaging::Page { page, limit })
                .await?;
            Ok((Value::Array(jobs.rows.iter().map(job_json).collect()), decision))
        }
        .await,
    )
}

/// The path's project key and job id; a job id that is not an integer is 400 — after the key is
/// checked, so an unauthenticated caller learns nothing.
fn job_path(path: Result<Path<(String, String)>, PathRejection>) -> Result<(String, String), Failure> {
    path.map(|Path(p)| p).map_err(|_| Failure::Unauthorized)
}

fn job_id(text: &str) -> Result<JobId, Failure> {
    text.parse::<i64>().map(JobId).map_err(|_| Failure::InvalidJobId)
}

/// `GET /public/{projectKey}/jobs/{jobId}` (and its older twin).
async fn get_job(
    surface: Surface,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        surface,
        async {
            let (project_key, id) = job_path(path)?;
            let (principal, decision) = authorize(surface, &state, &headers, &project_key, Scope::JobsRead).await?;
            let job = state.store.get_job(principal.project_id, job_id(&id)?).await?;
            Ok((job_json(&job), decision))
        }
        .await,
    )
}

/// `DELETE /public/{projectKey}/jobs/{jobId}` (and its older twin): cancels a scheduled, queued or
/// running job (a running one stops at its next chunk). A failed job may be cancelled too, as
/// OpenReplay's server allows: it has stopped already, and is marked cancelled.
async fn cancel_job(
    surface: Surface,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        surface,
        async {
            let (project_key, id) = job_path(path)?;
            let (principal, decision) = authorize(surface, &state, &headers, &project_key, Scope::JobsWrite).await?;
            let id = job_id(&id)?;
            let mut job = state.store.cancel_or_withdraw_job(principal.project_id, id).await?;
            // A running job is only marked: it ends `cancelled` at its next chunk boundary, which is
            // what the caller asked for and what OpenReplay answers at once.
            if job.cancel_requested && !job.status.is_terminal() {
                job.status = JobStatus::Cancelled;
            }
            Ok((job_json(&job), decision))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn page_params_fall_back_and_never_fail() {
        assert_eq!(page_params(&query(&[])), (50, 1));
        assert_eq!(page_params(&query(&[("limit", "200"), ("page", "3")])), (200, 3));
        assert_eq!(page_params(&query(&[("limit", "201"), ("page", "0")])), (50, 1));
        assert_eq!(page_params(&query(&[("limit", "0"), ("page", "-2")])), (50, 1));
        assert_eq!(page_params(&query(&[("limit", "ten"), ("page", "x")])), (50, 1));
    }

    #[test]
    fn cancel_conflicts_use_the_contract_words() {
        assert_eq!(not_cancellable_message(JobStatus::Completed), "the requested job has already been completed");
        assert_eq!(not_cancellable_message(JobStatus::Cancelled), "the requested job has already been cancelled");
        assert_eq!(not_cancellable_message(JobStatus::Failed), "the requested job has already failed");
    }
}
