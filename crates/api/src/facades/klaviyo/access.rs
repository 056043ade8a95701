//! Who may call, and the answer's frame: the key (as `Klaviyo-API-Key` or an OAuth app's
//! `Bearer`), the scope of the method, the rate-limit quotas and the `revision` header, in that
//! order, for every endpoint of the facade; and the JSON:API document with the quota's headers.

use super::error::KlaviyoError;
use super::params::Revision;
use super::wire::VND_API_JSON;
use crate::auth::{insert_ratelimit_headers, token_with_scheme, RepeatedAuthorization};
use crate::limits::Policy;
use crate::state::AppState;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use catalog_domain::rate::RateDecision;
use catalog_store::{Principal, Scope};
use serde_json::Value;

/// 405 in Klaviyo's envelope, for a method a path does not serve.
pub async fn method_not_allowed() -> KlaviyoError {
    KlaviyoError::method_not_allowed()
}

/// Who is calling and what the quota said.
pub struct Guarded {
    /// The caller.
    pub principal: Principal,
    /// The request's `revision`.
    pub revision: Revision,
    /// The quota's decision, for the headers.
    pub rate: Option<RateDecision>,
}

/// The token of `Authorization: Klaviyo-API-Key <key>` or, as OAuth apps send it,
/// `Authorization: Bearer <token>`: either carries a catalogd key.
fn klaviyo_token(headers: &HeaderMap) -> Result<&str, KlaviyoError> {
    let repeated = |_| KlaviyoError::parameter("Authorization", RepeatedAuthorization::MESSAGE);
    if let Some(token) = token_with_scheme(headers, "Klaviyo-API-Key").map_err(repeated)? {
        return Ok(token);
    }
    token_with_scheme(headers, "Bearer").map_err(repeated)?.ok_or_else(KlaviyoError::not_authenticated)
}

/// Authentication, scope, quotas and revision, in the order the module documents. Both quotas of
/// the method's group are taken; the headers of an answer describe the steady one, as Klaviyo's
/// do (a refusal describes the quota that refused).
async fn guard(state: &AppState, headers: &HeaderMap, write: bool) -> Result<Guarded, KlaviyoError> {
    let token = klaviyo_token(headers)?;
    let principal = state.store.authenticate(token).await?.ok_or_else(KlaviyoError::authentication_failed)?;
    crate::app::note_project(&principal);
    let scope = if write { Scope::CatalogsWrite } else { Scope::CatalogsRead };
    if !principal.has_scope(scope) {
        return Err(KlaviyoError::permission_denied(scope.as_str()));
    }
    let (burst, steady) = if write {
        (Policy::KlaviyoCreateBurst, Policy::KlaviyoCreateSteady)
    } else {
        (Policy::KlaviyoReadBurst, Policy::KlaviyoReadSteady)
    };
    let decisions = state.take_quota_each(principal.project_id, &[burst, steady]).await?;
    if let Some((_, refused)) = decisions.iter().filter(|(_, d)| !d.allowed).max_by_key(|(_, d)| d.retry_after_secs) {
        return Err(KlaviyoError::throttled(*refused));
    }
    // The steady window when it is in force; with it off, the burst window is all there is.
    let rate = decisions.iter().find(|(policy, _)| *policy == steady).or(decisions.first()).map(|(_, d)| *d);
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
pub async fn guarded<F, Fut>(state: AppState, request: Request, write: bool, body: F) -> Response
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
