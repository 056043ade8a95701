//! Bloomreach's key check (HTTP Basic `base64(<api key id>:<api secret>)`, the key's project
//! against `{project_id}`, the scope) and quotas: the per-catalog bulk quota, and the native
//! API's for the routes Bloomreach sets none for.

use super::error::Failure;
use crate::auth::{insert_ratelimit_headers, token_with_scheme, RepeatedAuthorization};
pub(super) use crate::facades::Call;
use crate::limits::Policy;
use crate::state::AppState;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use catalog_domain::rate::RateDecision;
use catalog_store::{CatalogField, Principal, Scope};
use serde_json::Value;
use std::future::Future;

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

/// The quota of routes Bloomreach sets none for: the native API's, per project (`native-read` for
/// a route that needs `catalogs:read`, `native-write` for the others).
async fn general_quota(state: &AppState, principal: &Principal, scope: Scope) -> Result<Option<RateDecision>, Failure> {
    let policy = if scope == Scope::CatalogsRead { Policy::NativeRead } else { Policy::NativeWrite };
    let decision = state.take_quota(principal.project_id, &[policy], None).await?;
    refuse_if_limited(decision)
}

/// A route's path parameters, the project key first.
pub(super) trait ProjectPath {
    /// The `{project_id}` of the path.
    fn project_key(&self) -> &str;
}

impl ProjectPath for String {
    fn project_key(&self) -> &str {
        self
    }
}

impl ProjectPath for (String, String) {
    fn project_key(&self) -> &str {
        &self.0
    }
}

impl ProjectPath for (String, String, String) {
    fn project_key(&self) -> &str {
        &self.0
    }
}

/// Runs a route under the native API's quota (`general_quota`): the path (404), the key and scope
/// (`authorize`: 401, 403), the quota (429), then `handler`, whose JSON is answered with 200. Every
/// answer after the quota, a failure of `handler` included, carries the quota's headers.
pub(super) async fn native<P, F, Fut>(call: Call<P>, scope: Scope, handler: F) -> Response
where
    P: ProjectPath,
    F: FnOnce(AppState, Principal, P, Request) -> Fut,
    Fut: Future<Output = Result<Value, Failure>>,
{
    let Call { state, path, request } = call;
    let result = async {
        let path = path.ok_or_else(Failure::not_found)?;
        let principal = authorize(&state, request.headers(), path.project_key(), scope).await?;
        let decision = general_quota(&state, &principal, scope).await?;
        match handler(state, principal, path, request).await {
            Ok(body) => Ok(with_rate(Json(body).into_response(), decision)),
            Err(failure) => Err(failure.with_rate(decision)),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(super) fn refuse_if_limited(decision: Option<RateDecision>) -> Result<Option<RateDecision>, Failure> {
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
pub(super) fn with_decision(decision: Option<RateDecision>) -> impl Fn(Failure) -> Failure {
    move |failure| failure.with_rate(decision)
}

pub(super) fn with_rate(mut response: Response, decision: Option<RateDecision>) -> Response {
    if let Some(decision) = &decision {
        insert_ratelimit_headers(response.headers_mut(), decision);
    }
    response
}

/// Checks everything a bulk endpoint checks before reading its body: auth, the catalog, the quota.
/// Also returns the catalog's declared fields, which the items are checked against.
pub(super) async fn bulk_guard(
    state: &AppState,
    headers: &HeaderMap,
    project_key: &str,
    catalog: &str,
) -> Result<(Principal, Option<RateDecision>, Vec<CatalogField>), Failure> {
    let principal = authorize(state, headers, project_key, Scope::CatalogsWrite).await?;
    let (_, fields) = state.store.find_catalog_with_fields(principal.project_id, catalog).await?;
    let decision = state.take_quota(principal.project_id, &[Policy::BloomreachBulk], Some(catalog)).await?;
    Ok((principal, refuse_if_limited(decision)?, fields))
}
