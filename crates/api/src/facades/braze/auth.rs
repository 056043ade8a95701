//! Braze's key check and quotas: `Authorization: Bearer <key>`, the endpoint group's quota, the
//! permission, and the `X-RateLimit-*` headers every answer carries.
//!
//! Order: key (401), rate limit (429; every authenticated request counts, so a 403 or 400 still
//! shows the real quota), permission (403). The handler runs after all three.

use super::error::{store_failure, Failure};
use crate::auth::{token_with_scheme, RepeatedAuthorization};
use crate::limits::Policy;
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use catalog_domain::rate::RateDecision;
use catalog_store::{Principal, Scope};

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The `X-RateLimit-*` values of one answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct RateHeaders {
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
    pub(super) fn untouched(state: &AppState, policy: Policy) -> Option<Self> {
        state.rate_limits.quota(policy).map(|q| RateHeaders { limit: q.limit, remaining: q.limit, reset: now_secs() })
    }

    pub(super) fn apply(self, response: &mut Response) {
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
pub(super) async fn guarded<F, Fut>(
    state: AppState,
    headers: &HeaderMap,
    policy: Policy,
    scope: Scope,
    handler: F,
) -> Response
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

/// [`guarded`] for a route with path parameters, which `handler` gets parsed: a path that does
/// not parse is `catalog-not-found`, found after the key, quota and permission like every problem
/// of the request.
pub(super) async fn guarded_at<P, F, Fut>(
    state: AppState,
    path: Result<Path<P>, PathRejection>,
    headers: &HeaderMap,
    policy: Policy,
    scope: Scope,
    handler: F,
) -> Response
where
    F: FnOnce(AppState, Principal, P) -> Fut,
    Fut: std::future::Future<Output = Result<Response, Failure>>,
{
    guarded(state, headers, policy, scope, move |state, principal| async move {
        let Path(path) = path.map_err(|_| Failure::catalog_not_found(""))?;
        handler(state, principal, path).await
    })
    .await
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
        return Err((Failure::rate_limited(decision.limit, decision.retry_after_secs), rate));
    }
    if !principal.has_scope(scope) {
        let message = format!("The API key lacks the permission for this endpoint (catalogd scope `{scope}`)");
        return Err((Failure::one(StatusCode::FORBIDDEN, "insufficient-permissions", message), rate));
    }
    Ok((principal, rate))
}
