//! The whole router: public endpoints, the native API behind its guard, and the fallbacks that
//! keep unknown routes and methods in the error envelope.

use crate::auth::native_guard;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::native;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use catalog_domain::ErrorCode;
use serde_json::json;
use std::time::{Duration, Instant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The router with every route, limit and fallback, ready to serve.
pub fn router(state: AppState) -> Router {
    // The documented routes come with their operations; the document itself is built from the same
    // routers by [`native::openapi`], so what is served and what is documented cannot differ.
    let (service, _) = service_routes().split_for_parts();
    let (native, _) = native::routes().split_for_parts();
    let native = native
        .route_layer(middleware::from_fn_with_state(state.clone(), native_guard))
        .method_not_allowed_fallback(method_not_allowed);
    service
        .method_not_allowed_fallback(method_not_allowed)
        .merge(native)
        .merge(crate::facades::routes())
        .merge(crate::console::routes().method_not_allowed_fallback(method_not_allowed))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The routes that need no key, with their operations.
pub fn service_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

/// 405, naming the route the path matched: a mistyped last segment (`.../items/bulk-delet`) is
/// read as an item id, and the route template says so.
async fn method_not_allowed(method: axum::http::Method, request: Request) -> ApiError {
    match request.extensions().get::<MatchedPath>() {
        Some(route) => ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on {}; check the path against docs/openapi.json", route.as_str()),
        ),
        None => ApiError::new(ErrorCode::MethodNotAllowed, "this method is not allowed on this route"),
    }
}

/// `status: ok` while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "The process is up", body = Object, example = json!({"status": "ok"}))))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service", responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], native::openapi_json()).into_response()
}

/// How long `/readyz` waits for the database: a probe that has not heard back within a second
/// counts the instance as not ready anyway, so it answers before that.
const READY_WITHIN: Duration = Duration::from_millis(800);

/// 200 when the database answers and writes succeed; 503 otherwise (unreachable, silent, or
/// recent writes met storage trouble), with the code in `reason`. See `Store::readiness`.
#[utoipa::path(get, path = "/readyz", tag = "service", responses((status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})), (status = 503, description = "Not ready", body = Object, example = json!({"status": "unavailable", "reason": "unavailable"}))))]
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.readiness(READY_WITHIN).await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            let reason = error.code();
            let mut response =
                (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": reason.as_str()})))
                    .into_response();
            if let Some(secs) = reason.retry_after_secs() {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
    }
}

/// Prometheus text: the recorded series, then the job gauges.
///
/// The recorded series are the HTTP layer's, the runner's and the events'; the job gauges are read
/// from the store at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = state.metrics.render_recorded();
    match state.store.job_metrics().await {
        Ok(jobs) => out.push_str(&Metrics::render_jobs(&jobs)),
        Err(error) => tracing::warn!(%error, "cannot read job metrics"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

tokio::task_local! {
    /// The project of the request being served, once its key is known (see [`note_project`]).
    static REQUEST_PROJECT: std::cell::RefCell<Option<String>>;
}

/// Records the authenticated caller's project for the request's access-log line. Every way of
/// authenticating (the native guard, each facade) calls it; outside a request it does nothing.
pub fn note_project(principal: &catalog_store::Principal) {
    let _ = REQUEST_PROJECT.try_with(|project| *project.borrow_mut() = Some(principal.project_key.clone()));
}

/// Records every answered request by route template and status, and logs one access line at
/// info level: method, matched route (`unmatched` for none, so a typo shows as such), status,
/// latency and the caller's project (`-` before or without authentication). 5xx answers are
/// logged at warn. `RUST_LOG=catalog_api::app=warn` silences the lines of successful requests.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let method = request.method().clone();
    let started = Instant::now();
    let (project, response) = REQUEST_PROJECT
        .scope(std::cell::RefCell::new(None), async move {
            let response = next.run(request).await;
            (REQUEST_PROJECT.with(|project| project.take()), response)
        })
        .await;
    let (status, elapsed) = (response.status().as_u16(), started.elapsed());
    state.metrics.observe_request(&route, status, elapsed);
    let project = project.as_deref().unwrap_or("-");
    // Microsecond precision: more digits are noise in a log line.
    let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
    if status >= 500 {
        tracing::warn!(%method, %route, status, latency_ms, project, "request failed");
    } else {
        tracing::info!(%method, %route, status, latency_ms, project, "request");
    }
    response
}
