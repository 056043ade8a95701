//! The OpenReplay facade over the real router: the seed's examples (seeds/004), every error of
//! contracts/openreplay.md, paging fallbacks, scheduled and running cancels, tenancy, rate limits.

use axum::http::{Method, StatusCode};
use catalog_api::limits::RateLimitSetting;
use catalog_api::testing::{TestApp, TestRequest, TestResponse};
use catalog_domain::time::format_rfc3339;
use catalog_store::{Runner, RunnerConfig, Scope, Step};
use serde_json::{json, Value};

const JOBS: &str = "/public/acme/jobs";

async fn call(app: &TestApp, method: Method, path: &str) -> TestResponse {
    app.send(TestRequest::new(method, path).bearer(&app.token)).await
}

async fn app() -> TestApp {
    app_with_limits(&[]).await
}

async fn app_with_limits(limits: &[&str]) -> TestApp {
    let settings: Vec<RateLimitSetting> = limits.iter().map(|s| s.parse().unwrap_or_else(|e| panic!("{e}"))).collect();
    let app = TestApp::with_rate_limits(&settings).await;
    let created = app.post("/v1/catalogs", &json!({"name": "shoes"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    app
}

/// Creates a native bulk-delete job and returns its id.
async fn delete_job(app: &TestApp, extra: Value) -> i64 {
    let mut body = json!({"ids": ["a", "b"]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let response = app.post("/v1/catalogs/shoes/items/bulk-delete", &body).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    response.json()["job"]["id"].as_i64().unwrap_or_else(|| panic!("no job id: {}", response.text))
}

/// A start time a day from now, RFC 3339.
fn tomorrow() -> String {
    format_rfc3339(catalog_store::now_ms() + 86_400_000)
}

const JOB_KEYS: [&str; 10] = [
    "action",
    "createdAt",
    "description",
    "errors",
    "jobId",
    "projectId",
    "referenceId",
    "startAt",
    "status",
    "updatedAt",
];

/// Asserts the seed's job shape: exactly its fields, with its types.
fn assert_job_shape(job: &Value) {
    let mut keys: Vec<&str> = job.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, JOB_KEYS, "{job}");
    for integer in ["jobId", "projectId", "createdAt", "startAt"] {
        assert!(job[integer].is_i64(), "{integer} must be an integer: {job}");
    }
    for text in ["description", "status", "action", "referenceId"] {
        assert!(job[text].is_string(), "{text} must be a string: {job}");
    }
    assert!(job["updatedAt"].is_i64(), "{job}");
    assert!(job["errors"].is_null() || job["errors"].is_string(), "{job}");
    // Epoch milliseconds: after 2020 in ms, not seconds.
    assert!(job["createdAt"].as_i64().is_some_and(|t| t > 1_577_836_800_000), "{job}");
}

// ---------------------------------------------------------------------------------------------
// Seed 004: list, get and cancel examples

async fn seed_list_example_scheduled_and_cancelled_jobs() {
    let app = app().await;
    let start = tomorrow();
    let first = delete_job(
        &app,
        json!({"start_at": start, "description": "Delete user sessions of userId = shekar@example.com", "reference_id": "shekar@example.com"}),
    )
    .await;
    let second = delete_job(
        &app,
        json!({"start_at": start, "description": "Delete user sessions of userId = mehdi@example.com", "reference_id": "mehdi@example.com"}),
    )
    .await;
    let cancelled = call(&app, Method::DELETE, &format!("{JOBS}/{second}")).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);

    let response = call(&app, Method::GET, &format!("{JOBS}?limit=50&page=1")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let body = response.json();
    let data = body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 2, "{body}");
    data.iter().for_each(assert_job_shape);
    // Newest first.
    assert_eq!((data[0]["jobId"].as_i64(), data[1]["jobId"].as_i64()), (Some(second), Some(first)));
    let (mehdi, shekar) = (&data[0], &data[1]);
    assert_eq!(shekar["status"], "scheduled");
    assert_eq!(shekar["description"], "Delete user sessions of userId = shekar@example.com");
    assert_eq!(shekar["referenceId"], "shekar@example.com");
    assert_eq!(shekar["action"], "item_bulk_delete");
    assert_eq!(shekar["projectId"], app.project.id.0);
    assert_eq!(shekar["updatedAt"], shekar["createdAt"], "a new job's updatedAt is its createdAt");
    assert_eq!(shekar["errors"], Value::Null);
    assert_eq!(shekar["startAt"].as_i64(), catalog_domain::time::parse_rfc3339(&start).ok());
    assert_eq!(mehdi["status"], "cancelled");
    assert_eq!(mehdi["referenceId"], "mehdi@example.com");
    assert!(
        mehdi["updatedAt"].as_i64().is_some_and(|u| u >= mehdi["createdAt"].as_i64().unwrap_or(i64::MAX)),
        "{mehdi}"
    );
    assert_eq!(mehdi["startAt"], shekar["startAt"]);
    assert_eq!(mehdi["errors"], Value::Null);
}

async fn seed_get_example() {
    let app = app().await;
    let id = delete_job(&app, json!({"start_at": tomorrow(), "reference_id": "shekar@example.com"})).await;
    let response = call(&app, Method::GET, &format!("{JOBS}/{id}")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let body = response.json();
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only `data`: {body}");
    assert_job_shape(&body["data"]);
    assert_eq!(body["data"]["jobId"], id);
    assert_eq!(body["data"]["status"], "scheduled");
    assert_eq!(body["data"]["updatedAt"], body["data"]["createdAt"]);
}

async fn seed_cancel_example() {
    let app = app().await;
    let id = delete_job(&app, json!({"start_at": tomorrow(), "reference_id": "mehdi@example.com"})).await;
    let response = call(&app, Method::DELETE, &format!("{JOBS}/{id}")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let job = &response.json()["data"];
    assert_job_shape(job);
    assert_eq!((job["jobId"].as_i64(), job["status"].as_str()), (Some(id), Some("cancelled")));
    assert!(job["updatedAt"].is_i64(), "{job}");
}

// ---------------------------------------------------------------------------------------------
// Rendering defaults

async fn defaults_reference_the_catalog_and_describe_the_job() {
    let app = app().await;
    let id = delete_job(&app, json!({})).await;
    let job = call(&app, Method::GET, &format!("{JOBS}/{id}")).await.json()["data"].clone();
    assert_eq!(job["referenceId"], "shoes");
    assert_eq!(job["description"], "Delete 2 items from catalog shoes");
    assert_eq!(job["status"], "scheduled", "queued renders as scheduled");
    assert_eq!(job["startAt"], job["createdAt"], "a job without start_at starts when created");
    app.run_jobs().await;
    let done = call(&app, Method::GET, &format!("{JOBS}/{id}")).await.json()["data"].clone();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["errors"], Value::Null);
    assert!(done["updatedAt"].is_i64());
}

async fn errors_summarise_item_failures_and_job_failures() {
    let app = app().await;
    let patch =
        app.post("/v1/catalogs/shoes/items/bulk-patch", &json!({"items": [{"id": "ghost", "fields": {}}]})).await;
    assert_eq!(patch.status, StatusCode::ACCEPTED, "{}", patch.text);
    let patch_id = patch.json()["job"]["id"].as_i64().unwrap_or_default();
    app.run_jobs().await;
    let patched = call(&app, Method::GET, &format!("{JOBS}/{patch_id}")).await.json()["data"].clone();
    assert_eq!((patched["status"].as_str(), patched["action"].as_str()), (Some("completed"), Some("item_bulk_patch")));
    assert_eq!(patched["errors"], "1 of 1 item failed");

    let doomed = delete_job(&app, json!({})).await;
    let deleted = app.send(TestRequest::new(Method::DELETE, "/v1/catalogs/shoes").bearer(&app.token)).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    app.run_jobs().await;
    let failed = call(&app, Method::GET, &format!("{JOBS}/{doomed}")).await.json()["data"].clone();
    assert_eq!(failed["status"], "failed");
    assert!(failed["errors"].as_str().is_some_and(|e| !e.is_empty()), "{failed}");
    let list = call(&app, Method::GET, JOBS).await.json();
    assert_eq!(list["data"][0]["action"], "catalog_delete");
}

// ---------------------------------------------------------------------------------------------
// Paging

async fn limit_and_page_fall_back_instead_of_failing() {
    let app = app().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(delete_job(&app, json!({})).await);
    }
    let page_ids = |response: &TestResponse| -> Vec<i64> {
        response.json()["data"]
            .as_array()
            .map(|d| d.iter().filter_map(|j| j["jobId"].as_i64()).collect())
            .unwrap_or_default()
    };
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(page_ids(&call(&app, Method::GET, JOBS).await), newest_first);
    assert_eq!(page_ids(&call(&app, Method::GET, &format!("{JOBS}?limit=2&page=1")).await), newest_first[..2]);
    assert_eq!(page_ids(&call(&app, Method::GET, &format!("{JOBS}?limit=2&page=2")).await), newest_first[2..]);
    for fallback in
        ["limit=0", "limit=201", "limit=abc", "limit=-1", "page=0", "page=-3", "page=x", "limit=&page=", "limit=2.5"]
    {
        let response = call(&app, Method::GET, &format!("{JOBS}?{fallback}")).await;
        assert_eq!(response.status, StatusCode::OK, "{fallback}");
        assert_eq!(page_ids(&response), newest_first, "{fallback} falls back to limit 50, page 1");
    }
    let max = call(&app, Method::GET, &format!("{JOBS}?limit=200")).await;
    assert_eq!(page_ids(&max), newest_first);
    let past = call(&app, Method::GET, &format!("{JOBS}?limit=2&page=9")).await;
    assert_eq!((past.status, past.json()), (StatusCode::OK, json!({"data": []})));
}

async fn more_than_fifty_jobs_page_by_fifty() {
    let app = app().await;
    for _ in 0..51 {
        delete_job(&app, json!({})).await;
    }
    let count = |v: Value| v["data"].as_array().map_or(0, Vec::len);
    assert_eq!(count(call(&app, Method::GET, JOBS).await.json()), 50);
    assert_eq!(count(call(&app, Method::GET, &format!("{JOBS}?page=2")).await.json()), 1);
}

// ---------------------------------------------------------------------------------------------
// Errors

async fn a_job_id_that_is_not_an_integer_is_400() {
    let app = app().await;
    for method in [Method::GET, Method::DELETE] {
        for bad in ["abc", "1.5", "12x"] {
            let response = call(&app, method.clone(), &format!("{JOBS}/{bad}")).await;
            assert_eq!(
                (response.status, response.json()),
                (StatusCode::BAD_REQUEST, json!({"error": "invalid jobId"})),
                "{method} {bad}"
            );
        }
    }
}

async fn a_missing_job_is_404() {
    let app = app().await;
    for method in [Method::GET, Method::DELETE] {
        let response = call(&app, method, &format!("{JOBS}/999")).await;
        assert_eq!((response.status, response.json()), (StatusCode::NOT_FOUND, json!({"error": "job not found"})));
    }
}

async fn cancelling_a_finished_job_is_400() {
    let app = app().await;
    let completed = delete_job(&app, json!({})).await;
    app.run_jobs().await;
    let response = call(&app, Method::DELETE, &format!("{JOBS}/{completed}")).await;
    assert_eq!(
        (response.status, response.json()),
        (StatusCode::BAD_REQUEST, json!({"error": "the requested job has already been completed"}))
    );

    let cancelled = delete_job(&app, json!({"start_at": tomorrow()})).await;
    assert_eq!(call(&app, Method::DELETE, &format!("{JOBS}/{cancelled}")).await.status, StatusCode::OK);
    let again = call(&app, Method::DELETE, &format!("{JOBS}/{cancelled}")).await;
    assert_eq!(
        (again.status, again.json()),
        (StatusCode::BAD_REQUEST, json!({"error": "the requested job has already been cancelled"}))
    );

    let failed = delete_job(&app, json!({})).await;
    let deleted = app.send(TestRequest::new(Method::DELETE, "/v1/catalogs/shoes").bearer(&app.token)).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    app.run_jobs().await;
    // OpenReplay's server lets a failed job be cancelled: it is marked cancelled, its counts and
    // finish time kept. Other dialects still refuse it, and a second cancel finds it cancelled.
    let native_job =
        async || app.send(TestRequest::new(Method::GET, &format!("/v1/jobs/{failed}")).bearer(&app.token)).await.json();
    let before = call(&app, Method::GET, &format!("{JOBS}/{failed}")).await.json()["data"].clone();
    let native_before = native_job().await;
    assert_eq!((before["status"].clone(), native_before["status"].clone()), (json!("failed"), json!("failed")));
    let response = call(&app, Method::DELETE, &format!("{JOBS}/{failed}")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let data = response.json()["data"].clone();
    assert_eq!((data["jobId"].as_i64(), data["status"].clone()), (Some(failed), json!("cancelled")));
    assert_eq!(data["errors"], before["errors"]);
    let native_after = native_job().await;
    assert_eq!(native_after["status"], json!("cancelled"));
    for field in ["finished_at", "expires_at", "completed_count", "failed_count"] {
        assert_eq!(native_after[field], native_before[field], "{field}");
    }
    let again = call(&app, Method::DELETE, &format!("{JOBS}/{failed}")).await;
    assert_eq!(
        (again.status, again.json()),
        (StatusCode::BAD_REQUEST, json!({"error": "the requested job has already been cancelled"}))
    );
}

async fn bad_keys_and_foreign_project_keys_are_401_with_an_empty_body() {
    let app = app().await;
    let id = delete_job(&app, json!({})).await;
    let other = app.token_for("other", Scope::ALL).await;
    let cases = [
        ("no key", TestRequest::new(Method::GET, JOBS)),
        ("unknown key", TestRequest::new(Method::GET, JOBS).bearer("nope")),
        ("basic scheme", TestRequest::new(Method::GET, JOBS).header("authorization", &format!("Basic {}", app.token))),
        ("other project's key on this project", TestRequest::new(Method::GET, JOBS).bearer(&other)),
        ("get with other project's key", TestRequest::new(Method::GET, &format!("{JOBS}/{id}")).bearer(&other)),
        ("cancel with other project's key", TestRequest::new(Method::DELETE, &format!("{JOBS}/{id}")).bearer(&other)),
        ("unknown project key", TestRequest::new(Method::GET, "/public/nope/jobs").bearer(&app.token)),
        ("bad id, no key", TestRequest::new(Method::GET, &format!("{JOBS}/abc"))),
    ];
    for (case, request) in cases {
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(response.text, "", "{case}: the body must be empty");
    }
    let job = call(&app, Method::GET, &format!("{JOBS}/{id}")).await.json()["data"].clone();
    assert_eq!(job["status"], "scheduled", "the refused cancel changed nothing");
}

async fn another_projects_job_is_not_found_under_your_own_key() {
    let app = app().await;
    let theirs = delete_job(&app, json!({})).await;
    let other = app.token_for("other", Scope::ALL).await;
    for method in [Method::GET, Method::DELETE] {
        let response = app.send(TestRequest::new(method, &format!("/public/other/jobs/{theirs}")).bearer(&other)).await;
        assert_eq!((response.status, response.json()), (StatusCode::NOT_FOUND, json!({"error": "job not found"})));
    }
    let list = app.send(TestRequest::new(Method::GET, "/public/other/jobs").bearer(&other)).await;
    assert_eq!(list.json(), json!({"data": []}));
}

async fn a_key_without_the_jobs_scope_is_403() {
    let app = app().await;
    let id = delete_job(&app, json!({})).await;
    let reader = app.token_for("acme", &[Scope::JobsRead]).await;
    let catalogs_only = app.token_for("acme", &[Scope::CatalogsRead, Scope::CatalogsWrite]).await;
    let cancel = app.send(TestRequest::new(Method::DELETE, &format!("{JOBS}/{id}")).bearer(&reader)).await;
    assert_eq!(cancel.status, StatusCode::FORBIDDEN);
    assert!(cancel.json()["error"].is_string());
    let list = app.send(TestRequest::new(Method::GET, JOBS).bearer(&catalogs_only)).await;
    assert_eq!(list.status, StatusCode::FORBIDDEN);
    assert_eq!(app.send(TestRequest::new(Method::GET, JOBS).bearer(&reader)).await.status, StatusCode::OK);
}

async fn rate_limited_requests_get_429_with_retry_after() {
    let app = app_with_limits(&["native-read=2/1m"]).await;
    assert_eq!(call(&app, Method::GET, JOBS).await.status, StatusCode::OK);
    assert_eq!(call(&app, Method::GET, JOBS).await.status, StatusCode::OK);
    let limited = call(&app, Method::GET, JOBS).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json(), json!({"error": "rate limit exceeded"}));
    assert!(limited.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1));
}

// ---------------------------------------------------------------------------------------------
// Scheduled and running jobs

async fn a_scheduled_job_cancelled_through_openreplay_never_runs() {
    let app = app().await;
    let upsert = app
        .post(
            "/v1/catalogs/shoes/items/bulk-upsert",
            &json!({"items": [{"id": "a", "fields": {}}, {"id": "b", "fields": {}}]}),
        )
        .await;
    assert_eq!(upsert.status, StatusCode::ACCEPTED);
    app.run_jobs().await;
    let id = delete_job(&app, json!({"start_at": tomorrow()})).await;
    assert_eq!(call(&app, Method::GET, &format!("{JOBS}/{id}")).await.json()["data"]["status"], "scheduled");
    let cancelled = call(&app, Method::DELETE, &format!("{JOBS}/{id}")).await;
    assert_eq!(cancelled.json()["data"]["status"], "cancelled");
    app.run_jobs().await;
    let job = call(&app, Method::GET, &format!("{JOBS}/{id}")).await.json()["data"].clone();
    assert_eq!(job["status"], "cancelled");
    let items = app.get("/v1/catalogs/shoes/items").await.json();
    assert_eq!(items["data"].as_array().map(Vec::len), Some(2), "the cancelled deletion deleted nothing");
    let native = app.get(&format!("/v1/jobs/{id}")).await.json();
    assert_eq!(native["status"], "cancelled");
}

async fn a_running_job_cancelled_through_openreplay_stops_at_the_next_chunk() {
    let app = app().await;
    let id = {
        let response = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ["a", "b", "c", "d"]})).await;
        response.json()["job"]["id"].as_i64().unwrap_or_default()
    };
    let runner = Runner::new(app.store.clone(), RunnerConfig { chunk_size: 1, ..RunnerConfig::default() });
    let mut lease = runner.claim().await.ok().flatten().unwrap_or_else(|| panic!("no job to claim"));
    assert_eq!(lease.step().await.ok(), Some(Step::Continue));
    assert_eq!(call(&app, Method::GET, &format!("{JOBS}/{id}")).await.json()["data"]["status"], "running");
    let cancelled = call(&app, Method::DELETE, &format!("{JOBS}/{id}")).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.json()["data"]["status"], "cancelled");
    let mut last = Step::Continue;
    for _ in 0..10 {
        last = lease.step().await.unwrap_or_else(|e| panic!("step: {e}"));
        if last != Step::Continue {
            break;
        }
    }
    assert_eq!(last, Step::Finished(catalog_domain::JobStatus::Cancelled));
    let native = app.get(&format!("/v1/jobs/{id}")).await.json();
    assert_eq!(native["status"], "cancelled");
    assert!(native["completed_count"].as_u64().is_some_and(|n| n < 4), "{native}");
}

async fn an_unsupported_method_is_405_in_the_envelope() {
    let app = app().await;
    let response = call(&app, Method::POST, JOBS).await;
    assert_eq!(
        (response.status, response.json()),
        (StatusCode::METHOD_NOT_ALLOWED, json!({"error": "method not allowed"}))
    );
}

// ---------------------------------------------------------------------------------------------
// The older API: /api/v1/{projectKey}/jobs, the raw key as the whole Authorization value, errors
// as HTTP 200 {"errors": [...]}

const V1_JOBS: &str = "/api/v1/acme/jobs";

async fn call_v1(app: &TestApp, method: Method, path: &str) -> TestResponse {
    app.send(TestRequest::new(method, path).header("authorization", &app.token)).await
}

async fn the_older_api_lists_gets_and_cancels_with_the_raw_key() {
    let app = app().await;
    let first = delete_job(&app, json!({"start_at": tomorrow()})).await;
    let second = delete_job(&app, json!({"start_at": tomorrow()})).await;
    let listed = call_v1(&app, Method::GET, &format!("{V1_JOBS}?limit=1&page=2")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let data = listed.json()["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.iter().map(|j| j["jobId"].as_i64()).collect::<Vec<_>>(), [Some(first)]);
    data.iter().for_each(assert_job_shape);
    let got = call_v1(&app, Method::GET, &format!("{V1_JOBS}/{second}")).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_job_shape(&got.json()["data"]);
    assert_eq!(got.json()["data"]["updatedAt"], got.json()["data"]["createdAt"]);
    let cancelled = call_v1(&app, Method::DELETE, &format!("{V1_JOBS}/{second}")).await;
    assert_eq!((cancelled.status, cancelled.json()["data"]["status"].clone()), (StatusCode::OK, json!("cancelled")));
    // The same jobs as the public API's.
    let public = call(&app, Method::GET, &format!("{JOBS}/{second}")).await;
    assert_eq!(public.json()["data"]["status"], "cancelled");
}

async fn the_older_api_answers_errors_with_200_and_an_errors_list() {
    let app = app().await;
    let done = delete_job(&app, json!({})).await;
    app.run_jobs().await;
    let other = app.token_for("other", Scope::ALL).await;
    let read_only = app.token_for("acme", &[Scope::JobsRead]).await;
    let cases = [
        (call_v1(&app, Method::GET, &format!("{V1_JOBS}/999999")).await, "Job not found."),
        (call_v1(&app, Method::GET, &format!("{V1_JOBS}/abc")).await, "invalid jobId"),
        (
            call_v1(&app, Method::DELETE, &format!("{V1_JOBS}/{done}")).await,
            "The request job has already been canceled/completed.",
        ),
        (app.send(TestRequest::new(Method::GET, V1_JOBS).header("authorization", &other)).await, "invalid projectKey"),
        (
            app.send(
                TestRequest::new(Method::DELETE, &format!("{V1_JOBS}/{done}")).header("authorization", &read_only),
            )
            .await,
            "the API key lacks the `jobs:write` scope",
        ),
    ];
    for (response, message) in cases {
        assert_eq!((response.status, response.json()), (StatusCode::OK, json!({"errors": [message]})), "{message}");
    }
    // Without a key it is not the handler that answers: 401, as on the public API.
    for request in [
        TestRequest::new(Method::GET, V1_JOBS),
        TestRequest::new(Method::GET, V1_JOBS).header("authorization", "nope"),
        // The public API's scheme is not the older API's: the whole value is the key.
        TestRequest::new(Method::GET, V1_JOBS).bearer(&app.token),
    ] {
        let response = app.send(request).await;
        assert_eq!((response.status, response.text.as_str()), (StatusCode::UNAUTHORIZED, ""));
    }
    // A failed job may be cancelled, as the older server allows.
    let failed = delete_job(&app, json!({})).await;
    let deleted = app.send(TestRequest::new(Method::DELETE, "/v1/catalogs/shoes").bearer(&app.token)).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    app.run_jobs().await;
    let response = call_v1(&app, Method::DELETE, &format!("{V1_JOBS}/{failed}")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json()["data"]["jobId"].as_i64(), Some(failed), "{}", response.text);
    assert_eq!(response.json()["data"]["status"], json!("cancelled"), "{}", response.text);
}

catalog_api::on_both_backends!(
    seed_list_example_scheduled_and_cancelled_jobs,
    seed_get_example,
    seed_cancel_example,
    defaults_reference_the_catalog_and_describe_the_job,
    errors_summarise_item_failures_and_job_failures,
    limit_and_page_fall_back_instead_of_failing,
    more_than_fifty_jobs_page_by_fifty,
    a_job_id_that_is_not_an_integer_is_400,
    a_missing_job_is_404,
    cancelling_a_finished_job_is_400,
    bad_keys_and_foreign_project_keys_are_401_with_an_empty_body,
    another_projects_job_is_not_found_under_your_own_key,
    a_key_without_the_jobs_scope_is_403,
    rate_limited_requests_get_429_with_retry_after,
    a_scheduled_job_cancelled_through_openreplay_never_runs,
    a_running_job_cancelled_through_openreplay_stops_at_the_next_chunk,
    an_unsupported_method_is_405_in_the_envelope,
    the_older_api_lists_gets_and_cancels_with_the_raw_key,
    the_older_api_answers_errors_with_200_and_an_errors_list,
);
