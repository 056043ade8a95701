//! Native API authentication, authorization and rate limiting, as one middleware so routes only
//! read the [`Principal`] it leaves in the request's extensions.
//!
//! Order: no or unknown bearer token → 401; key without the route's scope → 403; quota exhausted
//! → 429 with `Retry-After`. Each happens before the handler runs, so a refused request changes
//! nothing.

use crate::error::ApiError;
use crate::limits::Policy;
use crate::state::AppState;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use catalog_domain::rate::RateDecision;
use catalog_domain::ErrorCode;
use catalog_store::{ApiKeyId, Principal, Scope};

/// The scope a native route needs: reads of catalogs and jobs need the `read` scope of their
/// resource, everything else its `write` scope.
pub fn required_scope(method: &Method, route: &str) -> Scope {
    // Events and webhooks are about jobs: they need the jobs scopes.
    let is_jobs = ["/v1/jobs", "/v1/events", "/v1/webhooks"].iter().any(|prefix| route.starts_with(prefix));
    let is_read = method == Method::GET || method == Method::HEAD;
    match (is_jobs, is_read) {
        (true, true) => Scope::JobsRead,
        (true, false) => Scope::JobsWrite,
        (false, true) => Scope::CatalogsRead,
        (false, false) => Scope::CatalogsWrite,
    }
}

/// True for the bulk routes, whose one effect is creating a job. They may authenticate from the
/// store's cache ([`catalog_store::Store::authenticate_cached`]): the job insert re-checks the
/// key, and [`native_guard`] re-checks it before showing any other answer.
pub fn only_creates_jobs(method: &Method, route: &str) -> bool {
    method == Method::POST && route.starts_with("/v1/catalogs/") && route.contains("/bulk-")
}

/// A request that carries more than one `Authorization` header: which one speaks for the caller
/// is ambiguous, so every dialect answers 400 in its own envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepeatedAuthorization;

impl RepeatedAuthorization {
    /// The message every dialect shows for it.
    pub const MESSAGE: &'static str = "send exactly one Authorization header";
}

/// The token of the request's one `Authorization` header when it reads exactly
/// `<scheme> <token68>`: the scheme compared without case (RFC 9110 §11.1), then one space, then a
/// token68 (RFC 9110 §11.2: letters, digits, `-._~+/`, then any `=` padding), nothing else.
///
/// `Ok(None)` (401 in every dialect) when there is no header or it does not read so: another
/// scheme, no token, a second space, a trailing parameter, a character outside token68. RFC 9110
/// allows several spaces before the token; catalogd accepts one, the form every client sends, so
/// a header that was spliced or padded is refused rather than guessed at. `Err` when the header is
/// repeated (400).
pub fn token_with_scheme<'h>(headers: &'h HeaderMap, scheme: &str) -> Result<Option<&'h str>, RepeatedAuthorization> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(RepeatedAuthorization);
    }
    let Ok(value) = value.to_str() else { return Ok(None) };
    let Some((given, token)) = value.split_once(' ') else { return Ok(None) };
    Ok((given.eq_ignore_ascii_case(scheme) && is_token68(token)).then_some(token))
}

/// RFC 9110's `token68`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// Authenticates a bearer token, or answers 401. `cached` allows an answer from memory (see
/// [`only_creates_jobs`]).
pub async fn authenticate_bearer(state: &AppState, headers: &HeaderMap, cached: bool) -> Result<Principal, ApiError> {
    let token = token_with_scheme(headers, "Bearer")
        .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, RepeatedAuthorization::MESSAGE))?
        .ok_or_else(|| {
            ApiError::new(ErrorCode::Unauthenticated, "send an API key as `Authorization: Bearer <token>`")
        })?;
    let principal =
        if cached { state.store.authenticate_cached(token).await? } else { state.store.authenticate(token).await? };
    let principal = principal.ok_or_else(unknown_key)?;
    crate::app::note_project(&principal);
    Ok(principal)
}

fn unknown_key() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, "the API key is unknown or revoked")
}

/// Adds the IETF draft `RateLimit-*` headers of `decision` to `headers`.
pub fn insert_ratelimit_headers(headers: &mut HeaderMap, decision: &RateDecision) {
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(decision.reset_secs));
    if !decision.allowed {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after_secs));
    }
}

/// The middleware guarding every `/v1` route but the public ones.
pub async fn native_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let cached = only_creates_jobs(request.method(), &route);
    let (response, key) = authorize_and_run(&state, request, &route, cached, next).await;
    // A cached key created a job only if the insert found it live; any other answer to it is
    // shown only once the database confirms the key, so a revoked key learns nothing but 401.
    // Storage trouble is shown as it is: it says nothing of the key, and asking the database in
    // trouble again would double the wait for the answer.
    let trouble = crate::error::storage_retry_after(response.status()).is_some();
    match key {
        Some(key) if cached && !response.status().is_success() && !trouble => {
            match state.store.api_key_is_live(key).await {
                Ok(true) => response,
                Ok(false) => unknown_key().into_response(),
                Err(error) => ApiError::from(error).into_response(),
            }
        }
        _ => response,
    }
}

/// Authenticates, checks the scope and the quota, then runs the route; returns the response and
/// the key that authenticated, if one did.
async fn authorize_and_run(
    state: &AppState,
    mut request: Request,
    route: &str,
    cached: bool,
    next: Next,
) -> (Response, Option<ApiKeyId>) {
    let principal = match authenticate_bearer(state, request.headers(), cached).await {
        Ok(principal) => principal,
        Err(error) => return (error.into_response(), None),
    };
    let key = Some(principal.key_id);
    let scope = required_scope(request.method(), route);
    if !principal.has_scope(scope) {
        let error = ApiError::new(ErrorCode::Forbidden, format!("this API key lacks the `{scope}` scope"));
        return (error.into_response(), key);
    }
    let policy = if request.method() == Method::GET { Policy::NativeRead } else { Policy::NativeWrite };
    let decision = match state.take_quota(principal.project_id, &[policy], None).await {
        Ok(decision) => decision,
        Err(error) => return (ApiError::from(error).into_response(), key),
    };
    if let Some(decision) = decision.filter(|d| !d.allowed) {
        let mut response =
            ApiError::new(ErrorCode::RateLimited, "rate limit reached; retry after the Retry-After seconds")
                .into_response();
        insert_ratelimit_headers(response.headers_mut(), &decision);
        return (response, key);
    }
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    if let Some(decision) = decision {
        insert_ratelimit_headers(response.headers_mut(), &decision);
    }
    (response, key)
}

/// The authenticated caller, as [`native_guard`] left it.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "not authenticated"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_resource_and_method() {
        assert_eq!(required_scope(&Method::GET, "/v1/jobs/{id}"), Scope::JobsRead);
        assert_eq!(required_scope(&Method::GET, "/v1/events"), Scope::JobsRead);
        assert_eq!(required_scope(&Method::POST, "/v1/webhooks"), Scope::JobsWrite);
        assert_eq!(required_scope(&Method::GET, "/v1/webhooks/{id}/deliveries"), Scope::JobsRead);
        assert_eq!(required_scope(&Method::POST, "/v1/jobs/{id}/cancel"), Scope::JobsWrite);
        assert_eq!(required_scope(&Method::GET, "/v1/catalogs/{catalog}/items"), Scope::CatalogsRead);
        assert_eq!(required_scope(&Method::POST, "/v1/catalogs/{catalog}/items/bulk-delete"), Scope::CatalogsWrite);
        assert_eq!(required_scope(&Method::DELETE, "/v1/catalogs/{catalog}"), Scope::CatalogsWrite);
    }

    #[test]
    fn only_bulk_posts_create_jobs_alone() {
        assert!(only_creates_jobs(&Method::POST, "/v1/catalogs/{catalog}/items/bulk-delete"));
        assert!(only_creates_jobs(&Method::POST, "/v1/catalogs/{catalog}/categories/bulk-update"));
        assert!(!only_creates_jobs(&Method::GET, "/v1/catalogs/{catalog}/items/bulk-delete"));
        assert!(!only_creates_jobs(&Method::POST, "/v1/catalogs"));
        assert!(!only_creates_jobs(&Method::DELETE, "/v1/catalogs/{catalog}"));
        assert!(!only_creates_jobs(&Method::POST, "/v1/jobs/{id}/cancel"));
    }

    fn token(values: &[&'static str], scheme: &str) -> Result<Option<String>, RepeatedAuthorization> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        token_with_scheme(&headers, scheme).map(|token| token.map(str::to_owned))
    }

    #[test]
    fn the_scheme_is_case_insensitive_then_one_space_then_a_token68() {
        assert_eq!(token(&["bearer abc"], "Bearer"), Ok(Some("abc".to_owned())));
        assert_eq!(token(&["BEARER cat_0f-._~+/=="], "Bearer"), Ok(Some("cat_0f-._~+/==".to_owned())));
        assert_eq!(token(&["Basic YWI6Y2Q="], "Basic"), Ok(Some("YWI6Y2Q=".to_owned())));
        assert_eq!(token(&["Klaviyo-API-Key pk_1"], "Klaviyo-API-Key"), Ok(Some("pk_1".to_owned())));
    }

    #[test]
    fn anything_else_is_no_token() {
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer  abc",
            "Bearer abc ",
            "Bearer\tabc",
            "Bearer abc def",
            "Bearer a=b",
            "Bearer ==",
            "Bearer abc,realm=x",
            "Bearerabc",
            "Basic abc",
            " Bearer abc",
        ] {
            assert_eq!(token(&[value], "Bearer"), Ok(None), "{value:?}");
        }
        assert_eq!(token(&[], "Bearer"), Ok(None));
    }

    #[test]
    fn two_headers_are_refused_even_when_both_are_valid() {
        assert_eq!(token(&["Bearer abc", "Bearer abc"], "Bearer"), Err(RepeatedAuthorization));
        assert_eq!(token(&["Bearer abc", "Basic xyz"], "Bearer"), Err(RepeatedAuthorization));
    }
}
