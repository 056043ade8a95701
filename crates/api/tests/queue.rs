//! The bounded queue over the real router, on both backends: a project at its limit of queued
//! inputs gets 429 `queue_full` with `Retry-After` in every dialect that creates jobs (native,
//! Braze, Bloomreach, Klaviyo; OpenReplay only reads and cancels jobs), in that dialect's own
//! throttling words, and nothing is created; another project is not held; the whole queue's limit;
//! drained inputs free room; `/metrics` shows the queue's depth and the oldest due job's age.
//! Limits are a few inputs, so nothing waits or sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use catalog_api::on_both_backends;
use catalog_api::testing::{TestApp, TestRequest, TestResponse};
use catalog_store::queue::{MAX_RETRY_AFTER_SECS, MIN_RETRY_AFTER_SECS};
use catalog_store::{Scope, Store, StoreConfig};
use serde_json::json;

on_both_backends!(
    a_project_at_its_limit_is_refused_in_every_dialect_and_nothing_is_created,
    the_whole_queue_is_bounded_across_projects,
    metrics_show_the_queue_depth_and_the_oldest_due_job,
);

/// An app whose router's store has these limits, with catalogs `default` (Klaviyo's), `restaurants`
/// and `products` in project `acme`.
async fn limited_app(per_project: u64, total: u64) -> TestApp {
    let mut app = TestApp::new().await;
    for name in ["default", "restaurants", "products"] {
        let created = app.post("/v1/catalogs", &json!({"name": name})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    let config = StoreConfig {
        max_connections: 4,
        max_queued_inputs_per_project: per_project,
        max_queued_inputs: total,
        ..StoreConfig::default()
    };
    let store = Store::connect(&app.database_url(), config).await.unwrap();
    app.reconfigure(|state| state.store = store);
    app
}

/// Jobs stored in the app's project, whatever their status.
async fn jobs(app: &TestApp) -> usize {
    let listed = app.get("/v1/jobs?limit=100").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    listed.json()["data"].as_array().map_or(0, Vec::len)
}

fn native_delete(token: &str, catalog: &str, ids: &[&str]) -> TestRequest {
    TestRequest::new(Method::POST, &format!("/v1/catalogs/{catalog}/items/bulk-delete"))
        .bearer(token)
        .json(&json!({ "ids": ids }))
}

fn braze_delete(token: &str) -> TestRequest {
    TestRequest::new(Method::DELETE, "/catalogs/restaurants/items").bearer(token).json(&json!({"items": [{"id": "x"}]}))
}

async fn bloomreach_delete(app: &TestApp, token: &str) -> TestRequest {
    let principal = app.store.authenticate(token).await.unwrap().unwrap();
    let pair = format!("{}:{token}", principal.key_id.0);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
    TestRequest::new(Method::POST, "/data/v2/projects/acme/catalogs/products/items/bulk-delete")
        .header("authorization", &basic)
        .json(&json!([{"item_id": "x"}]))
}

fn klaviyo_delete(token: &str) -> TestRequest {
    let body = json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": {"data": [
        {"type": "catalog-item", "id": "$custom:::$default:::x"}
    ]}}}});
    TestRequest::new(Method::POST, "/api/catalog-item-bulk-delete-jobs")
        .header("authorization", &format!("Klaviyo-API-Key {token}"))
        .header("revision", "2026-07-15")
        .raw_body("application/vnd.api+json", body.to_string().into_bytes())
}

/// 429 with a `Retry-After` within the documented bounds.
fn assert_throttled(response: &TestResponse, dialect: &str) {
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS, "{dialect}: {}", response.text);
    let secs: u64 = response
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{dialect}: no Retry-After: {:?}", response.headers));
    assert!((MIN_RETRY_AFTER_SECS..=MAX_RETRY_AFTER_SECS).contains(&secs), "{dialect}: Retry-After {secs}");
}

async fn a_project_at_its_limit_is_refused_in_every_dialect_and_nothing_is_created() {
    let app = limited_app(3, 1_000).await;
    let token = app.token.clone();
    let accepted = app.send(native_delete(&token, "default", &["a", "b", "c"])).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    let before = jobs(&app).await;

    let native = app.send(native_delete(&token, "default", &["d"])).await;
    assert_throttled(&native, "native");
    assert_eq!(native.json()["error"]["code"], "queue_full");

    let braze = app.send(braze_delete(&token)).await;
    assert_throttled(&braze, "braze");
    assert_eq!(braze.json()["errors"][0]["id"], "rate-limit-exceeded");

    let bloomreach = app.send(bloomreach_delete(&app, &token).await).await;
    assert_throttled(&bloomreach, "bloomreach");
    let message = bloomreach.json()["errors"]["_global"][0].as_str().unwrap_or_default().to_owned();
    assert!(message.starts_with("Rate limit exceeded. Retry after "), "{message}");
    assert_eq!(bloomreach.json()["success"], false);

    let klaviyo = app.send(klaviyo_delete(&token)).await;
    assert_throttled(&klaviyo, "klaviyo");
    assert_eq!(klaviyo.json()["errors"][0]["code"], "throttled");
    assert_eq!(klaviyo.json()["errors"][0]["status"], 429);

    assert_eq!(jobs(&app).await, before, "a refused request created a job");

    // Another project has room of its own.
    let other = app.token_for("other", Scope::ALL).await;
    let created =
        app.send(TestRequest::new(Method::POST, "/v1/catalogs").bearer(&other).json(&json!({"name": "c"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let theirs = app.send(native_delete(&other, "c", &["a", "b", "c"])).await;
    assert_eq!(theirs.status, StatusCode::ACCEPTED, "{}", theirs.text);

    // Once the jobs are applied there is room again, in every dialect.
    app.run_jobs().await;
    assert_eq!(app.send(braze_delete(&token)).await.status, StatusCode::ACCEPTED);
    assert_eq!(app.send(bloomreach_delete(&app, &token).await).await.status, StatusCode::OK);
    assert_eq!(app.send(klaviyo_delete(&token)).await.status, StatusCode::ACCEPTED);
    assert_throttled(&app.send(native_delete(&token, "default", &["d"])).await, "native");
}

async fn the_whole_queue_is_bounded_across_projects() {
    let app = limited_app(100, 4).await;
    let token = app.token.clone();
    let other = app.token_for("other", Scope::ALL).await;
    let created =
        app.send(TestRequest::new(Method::POST, "/v1/catalogs").bearer(&other).json(&json!({"name": "c"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mine = app.send(native_delete(&token, "default", &["a", "b", "c"])).await;
    assert_eq!(mine.status, StatusCode::ACCEPTED, "{}", mine.text);
    let theirs = app.send(native_delete(&other, "c", &["a", "b"])).await;
    assert_throttled(&theirs, "native");
    assert_eq!(theirs.json()["error"]["code"], "queue_full");
    assert_eq!(app.send(native_delete(&other, "c", &["a"])).await.status, StatusCode::ACCEPTED);
    // Cancelling a queued job frees its inputs.
    let id = mine.json()["job"]["id"].as_i64().unwrap();
    let cancelled = app.send(TestRequest::new(Method::POST, &format!("/v1/jobs/{id}/cancel")).bearer(&token)).await;
    assert!(cancelled.status.is_success(), "{}", cancelled.text);
    assert_eq!(app.send(native_delete(&other, "c", &["a", "b"])).await.status, StatusCode::ACCEPTED);
}

/// The value of the unlabelled series `name` in Prometheus text.
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

async fn metrics_show_the_queue_depth_and_the_oldest_due_job() {
    let app = limited_app(100, 1_000).await;
    let token = app.token.clone();
    for ids in [&["a", "b", "c"][..], &["d", "e"][..]] {
        assert_eq!(app.send(native_delete(&token, "default", ids)).await.status, StatusCode::ACCEPTED);
    }
    let text = app.send(TestRequest::new(Method::GET, "/metrics")).await.text;
    assert_eq!(series(&text, "catalogd_queue_jobs"), 2.0);
    assert_eq!(series(&text, "catalogd_queue_inputs"), 5.0);
    assert!(series(&text, "catalogd_runner_lag_seconds") >= 0.0);
    app.run_jobs().await;
    let text = app.send(TestRequest::new(Method::GET, "/metrics")).await.text;
    assert_eq!(series(&text, "catalogd_queue_jobs"), 0.0);
    assert_eq!(series(&text, "catalogd_queue_inputs"), 0.0);
    assert_eq!(series(&text, "catalogd_runner_lag_seconds"), 0.0);
}
