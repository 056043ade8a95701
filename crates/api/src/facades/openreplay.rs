//! OpenReplay's public jobs API (contracts/openreplay.md): `GET /public/{projectKey}/jobs`,
//! `GET /public/{projectKey}/jobs/{jobId}` and `DELETE /public/{projectKey}/jobs/{jobId}` (cancel).
//!
//! Bearer auth; a missing or unknown key, or a `projectKey` other than the key's project, is 401
//! with an empty body. Success is `{"data": ...}`, an error `{"error": "<message>"}`. Jobs render
//! with epoch-millisecond times, integer ids and the domain's OpenReplay status words. A key
//! without the `jobs:read` (GET) or `jobs:write` (DELETE) scope is 403; requests count against the
//! native API's per-project quotas, OpenReplay documenting none of its own.

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

/// OpenReplay's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/public/{project_key}/jobs", get(list_jobs))
        .route("/public/{project_key}/jobs/{job_id}", get(get_job).delete(cancel_job))
        .method_not_allowed_fallback(method_not_allowed)
}

/// A method the route does not serve: 405 in the `{"error"}` envelope.
async fn method_not_allowed() -> Failure {
    Failure::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// Page size when `limit` is missing or out of range.
const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
const MAX_LIMIT: u32 = 200;

// ---------------------------------------------------------------------------------------------
// Errors

/// An answer other than success.
#[derive(Debug)]
enum Failure {
    /// 401 with an empty body.
    Unauthorized,
    /// `{"error": message}` with this status.
    Error(StatusCode, String),
    /// 429 `{"error": ...}` with the quota headers.
    Limited(RateDecision),
}

impl Failure {
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Failure::Error(status, message.into())
    }

    fn job_not_found() -> Self {
        Failure::error(StatusCode::NOT_FOUND, "job not found")
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
            Failure::Error(status, message) => {
                let mut response = (status, Json(json!({"error": message}))).into_response();
                if let Some(secs) = crate::error::storage_retry_after(status) {
                    response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
                }
                response
            }
            Failure::Limited(decision) => {
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, Json(json!({"error": "rate limit exceeded"}))).into_response();
                insert_ratelimit_headers(response.headers_mut(), &decision);
                response
            }
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::JobNotFound(_) => Failure::job_not_found(),
            StoreError::JobNotCancellable { status, .. } => {
                Failure::error(StatusCode::BAD_REQUEST, not_cancellable_message(status))
            }
            other => code_failure(other.code(), &other),
        }
    }
}

/// A code in OpenReplay's envelope, by an exhaustive match: a new code is a compile error here,
/// never a silent 500.
fn code_failure(code: ErrorCode, error: &StoreError) -> Failure {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match code {
        ErrorCode::Internal => {
            // The cause may name tables or hosts: log it, tell the client only what happened.
            tracing::error!(%error, "store error");
            Failure::error(status, "internal error")
        }
        ErrorCode::Unavailable => {
            tracing::warn!(%error, "storage trouble");
            Failure::error(status, "service unavailable")
        }
        ErrorCode::InsufficientStorage => {
            tracing::warn!(%error, "storage trouble");
            Failure::error(status, "insufficient storage")
        }
        // The client's errors, and refusals: their own text says what happened.
        ErrorCode::InvalidJson
        | ErrorCode::InvalidQuery
        | ErrorCode::InvalidRequest
        | ErrorCode::InvalidItemId
        | ErrorCode::InvalidItem
        | ErrorCode::InvalidCatalogName
        | ErrorCode::TooManyItems
        | ErrorCode::NoValidItems
        | ErrorCode::ItemRefused
        | ErrorCode::Unauthenticated
        | ErrorCode::Forbidden
        | ErrorCode::NotFound
        | ErrorCode::CatalogNotFound
        | ErrorCode::ItemNotFound
        | ErrorCode::JobNotFound
        | ErrorCode::ProjectNotFound
        | ErrorCode::MethodNotAllowed
        | ErrorCode::CatalogAlreadyExists
        | ErrorCode::ProjectAlreadyExists
        | ErrorCode::IdempotencyKeyReused
        | ErrorCode::JobNotCancellable
        | ErrorCode::PayloadTooLarge
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::RateLimited
        | ErrorCode::TooManyJobsInProgress
        | ErrorCode::QueueFull => Failure::error(status, error.to_string()),
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

/// The caller, allowed on `project_key` with `scope`, after taking one request from its quota.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    path_project_key: &str,
    scope: Scope,
) -> Result<(Principal, Option<RateDecision>), Failure> {
    let token = token_with_scheme(headers, "Bearer")
        .map_err(|_| Failure::error(StatusCode::BAD_REQUEST, RepeatedAuthorization::MESSAGE))?
        .ok_or(Failure::Unauthorized)?;
    let principal = state.store.authenticate(token).await?.ok_or(Failure::Unauthorized)?;
    crate::app::note_project(&principal);
    if principal.project_key != path_project_key {
        return Err(Failure::Unauthorized);
    }
    if !principal.has_scope(scope) {
        return Err(Failure::error(StatusCode::FORBIDDEN, format!("the API key lacks the `{scope}` scope")));
    }
    let policy = if scope == Scope::JobsRead { Policy::NativeRead } else { Policy::NativeWrite };
    let decision = state.take_quota(principal.project_id, &[policy], None).await?;
    if let Some(decision) = decision.filter(|d| !d.allowed) {
        return Err(Failure::Limited(decision));
    }
    Ok((principal, decision))
}

fn answer(result: Result<(Value, Option<RateDecision>), Failure>) -> Response {
    match result {
        Ok((data, decision)) => {
            let mut response = Json(json!({ "data": data })).into_response();
            if let Some(decision) = &decision {
                insert_ratelimit_headers(response.headers_mut(), decision);
            }
            response
        }
        Err(failure) => failure.into_response(),
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
        JobKind::ItemBulkPatch => format!("Update {items} in catalog {catalog}"),
        JobKind::CategoryBulkUpdate => format!("Update {categories} in catalog {catalog}"),
        JobKind::CategoryBulkUpsert => format!("Upsert {categories} in catalog {catalog}"),
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
        // A job never changed since it was created shows null, as in OpenReplay.
        "updatedAt": (job.updated_at != job.created_at).then_some(job.updated_at),
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

/// `GET /public/{projectKey}/jobs?limit=&page=`: every job of the project, newest first.
async fn list_jobs(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let Path(project_key) = path.map_err(|_| Failure::Unauthorized)?;
            let (principal, decision) = authorize(&state, &headers, &project_key, Scope::JobsRead).await?;
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
    text.parse::<i64>().map(JobId).map_err(|_| Failure::error(StatusCode::BAD_REQUEST, "invalid jobId"))
}

/// `GET /public/{projectKey}/jobs/{jobId}`.
async fn get_job(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let (project_key, id) = job_path(path)?;
            let (principal, decision) = authorize(&state, &headers, &project_key, Scope::JobsRead).await?;
            let job = state.store.get_job(principal.project_id, job_id(&id)?).await?;
            Ok((job_json(&job), decision))
        }
        .await,
    )
}

/// `DELETE /public/{projectKey}/jobs/{jobId}`: cancels a scheduled, queued or running job (a running
/// one stops at its next chunk).
async fn cancel_job(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let (project_key, id) = job_path(path)?;
            let (principal, decision) = authorize(&state, &headers, &project_key, Scope::JobsWrite).await?;
            let mut job = state.store.cancel_job(principal.project_id, job_id(&id)?).await?;
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
