//! Braze's key check and quotas: `Authorization: Bearer <key>`, the endpoint group's quota, the
//! permission, and the `X-RateLimit-*` headers every answer carries.
//!
//! Order: key (401), rate limit (429; every authenticated request counts, so a 403 or 400 still
//! shows the real quota), permission (403). The handler runs after all three.

use super::error::{store_failure, Failure};
use crate::auth::{token_with_scheme, RepeatedAuthorization};
pub(super) use crate::facades::Call;
use crate::limits::Policy;
use crate::state::AppState;
use axum::extract::Request;
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

/// What a route needs: its endpoint group's quota and the key's scope.
#[derive(Debug, Clone, Copy)]
pub(super) struct Guard {
    policy: Policy,
    scope: Scope,
}

/// Catalog management, reading (`braze-sync`).
pub(super) const CATALOGS_READ: Guard = Guard { policy: Policy::BrazeSync, scope: Scope::CatalogsRead };
/// Catalog management, writing (`braze-sync`).
pub(super) const CATALOGS_WRITE: Guard = Guard { policy: Policy::BrazeSync, scope: Scope::CatalogsWrite };
/// Fields and selections (`braze-fields`).
pub(super) const FIELDS_WRITE: Guard = Guard { policy: Policy::BrazeFields, scope: Scope::CatalogsWrite };
/// The asynchronous item endpoints (`braze-async`).
pub(super) const ASYNC_ITEMS_WRITE: Guard = Guard { policy: Policy::BrazeAsync, scope: Scope::CatalogsWrite };
/// The synchronous item endpoints and the item list, reading (`braze-sync-items`).
pub(super) const SYNC_ITEMS_READ: Guard = Guard { policy: Policy::BrazeSyncItems, scope: Scope::CatalogsRead };
/// The synchronous item endpoints, writing (`braze-sync-items`).
pub(super) const SYNC_ITEMS_WRITE: Guard = Guard { policy: Policy::BrazeSyncItems, scope: Scope::CatalogsWrite };

/// Runs `handler` for an authenticated caller with the guard's scope, under its quota, with the
/// route's path parameters and the request, and puts the rate-limit headers on whatever it
/// answers. A path that does not parse is `catalog-not-found`, found after the key, quota and
/// permission like every problem of the request.
pub(super) async fn guarded<P, F, Fut>(call: Call<P>, guard: Guard, handler: F) -> Response
where
    F: FnOnce(AppState, Principal, P, Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response, Failure>>,
{
    let Call { state, path, request } = call;
    let (result, rate) = match authorize(&state, request.headers(), guard.policy, guard.scope).await {
        Ok((principal, rate)) => match path {
            Some(path) => (handler(state, principal, path, request).await, rate),
            None => (Err(Failure::catalog_not_found("")), rate),
        },
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
        return Err((Failure::rate_limited(decision.limit, decision.retry_after_secs), rate));
    }
    if !principal.has_scope(scope) {
        let message = format!("The API key lacks the permission for this endpoint (catalogd scope `{scope}`)");
        return Err((Failure::one(StatusCode::FORBIDDEN, "insufficient-permissions", message), rate));
    }
    Ok((principal, rate))
}
