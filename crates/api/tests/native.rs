//! The native API over the real router: every route, and every error a client can cause.

use axum::http::{Method, StatusCode};
use catalog_api::testing::{TestApp, TestRequest};
use catalog_store::{Scope, Store, StoreConfig};
use serde_json::{json, Value};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error envelope>")
}

async fn app_with_catalog() -> TestApp {
    let app = TestApp::new().await;
    let created = app.post("/v1/catalogs", &json!({"name": "shoes", "description": "Shoes"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    app
}

async fn upsert(app: &TestApp, ids: &[&str]) -> Value {
    let items: Vec<Value> = ids.iter().map(|id| json!({"id": id, "fields": {"name": id}})).collect();
    let response = app.post("/v1/catalogs/shoes/items/bulk-upsert", &json!({"items": items})).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    app.run_jobs().await;
    response.json()
}

async fn health_ready_metrics_and_openapi_need_no_key() {
    let app = TestApp::new().await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let response = app.send(TestRequest::new(Method::GET, path)).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
    }
    let metrics = app.send(TestRequest::new(Method::GET, "/metrics")).await;
    assert!(metrics.text.contains("catalogd_jobs{status=\"queued\"} 0"), "{}", metrics.text);
    assert!(metrics.text.contains("catalogd_runner_lag_seconds"), "{}", metrics.text);
    let openapi = app.send(TestRequest::new(Method::GET, "/openapi.json")).await.json();
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(openapi["paths"]["/v1/jobs/{id}"]["get"].is_object());
}

/// The recorded series: requests by route and status, the runner's chunks and batches, and the
/// job writer's transactions. The recorder is the process's, shared with the other tests of this
/// binary, so only presence and lower bounds are checked.
async fn metrics_show_requests_and_the_runners_series() {
    let app = app_with_catalog().await;
    // Two jobs of one catalog due together: the first one's last chunk takes the second along.
    for ids in [&["a", "b"][..], &["c"][..]] {
        let items: Vec<Value> = ids.iter().map(|id| json!({"id": id, "fields": {}})).collect();
        let response = app.post("/v1/catalogs/shoes/items/bulk-upsert", &json!({"items": items})).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    }
    app.run_jobs().await;
    let text = app.send(TestRequest::new(Method::GET, "/metrics")).await.text;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    let route = "/v1/catalogs/{catalog}/items/bulk-upsert";
    assert!(value(&format!("catalogd_http_requests_total{{route=\"{route}\",status=\"202\"}}")) >= 2.0);
    assert!(value(&format!("catalogd_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}}")) >= 2.0);
    assert!(text.contains("# TYPE catalogd_runner_chunk_seconds histogram"), "{text}");
    assert!(value("catalogd_runner_chunk_seconds_count") >= 1.0);
    assert!(value("catalogd_runner_batch_jobs_bucket{le=\"2\"}") >= 1.0, "a batch of two jobs");
    assert!(value("catalogd_runner_batch_inputs_sum") >= 3.0);
    assert!(value("catalogd_runner_leases_lost_total") >= 0.0);
    // The two requests' jobs went through the job writer, one transaction each or together.
    assert!(value("catalogd_job_writer_batch_jobs_sum") >= 2.0);
    assert!(value("catalogd_job_writer_batch_jobs_count") >= 1.0);
    assert!(value("catalogd_job_writer_batch_seconds_bucket{le=\"+Inf\"}") >= 1.0);
    // The gauges read from this test's store.
    assert_eq!(value("catalogd_jobs{status=\"completed\"}"), 2.0);
    assert_eq!(value("catalogd_queue_jobs"), 0.0);
}

async fn catalogs_create_list_get_delete() {
    let app = app_with_catalog().await;
    let duplicate = app.post("/v1/catalogs", &json!({"name": "shoes"})).await;
    assert_eq!((duplicate.status, error_code(&duplicate.json())), (StatusCode::CONFLICT, "catalog_already_exists"));
    let bad_name = app.post("/v1/catalogs", &json!({"name": "no spaces"})).await;
    assert_eq!((bad_name.status, error_code(&bad_name.json())), (StatusCode::BAD_REQUEST, "invalid_catalog_name"));

    let list = app.get("/v1/catalogs").await.json();
    assert_eq!(list["data"][0]["name"], "shoes");
    assert_eq!(list["next_cursor"], Value::Null);

    upsert(&app, &["a", "b"]).await;
    let catalog = app.get("/v1/catalogs/shoes").await.json();
    assert_eq!((catalog["item_count"].as_u64(), catalog["description"].as_str()), (Some(2), Some("Shoes")));

    let deleted = app.send(TestRequest::new(Method::DELETE, "/v1/catalogs/shoes").bearer(&app.token)).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    assert_eq!(deleted.json()["job"]["kind"], "catalog_delete");
    app.run_jobs().await;
    let gone = app.get("/v1/catalogs/shoes").await;
    assert_eq!((gone.status, error_code(&gone.json())), (StatusCode::NOT_FOUND, "catalog_not_found"));
}

async fn items_upsert_patch_get_list_and_delete() {
    let app = app_with_catalog().await;
    let accepted = upsert(&app, &["a", "b", "c"]).await;
    assert_eq!(accepted["results"].as_array().map(Vec::len), Some(3));
    assert_eq!(accepted["job"]["status"], "queued");

    let patch = app
        .post(
            "/v1/catalogs/shoes/items/bulk-patch",
            &json!({"items": [{"id": "a", "fields": {"price": 3}}, {"id": "zz", "fields": {}}]}),
        )
        .await;
    assert_eq!(patch.status, StatusCode::ACCEPTED, "{}", patch.text);
    app.run_jobs().await;
    let item = app.get("/v1/catalogs/shoes/items/a").await.json();
    assert_eq!(item["fields"], json!({"name": "a", "price": 3}));
    let job_id = patch.json()["job"]["id"].as_i64().unwrap_or_default();
    let patch_job = app.get(&format!("/v1/jobs/{job_id}")).await.json();
    assert_eq!((patch_job["completed_count"].as_u64(), patch_job["failed_count"].as_u64()), (Some(1), Some(1)));
    let errors = app.get(&format!("/v1/jobs/{job_id}/errors")).await.json();
    assert_eq!(errors["data"][0]["item_id"], "zz", "{errors}");

    let first = app.get("/v1/catalogs/shoes/items?limit=2").await.json();
    assert_eq!(first["data"].as_array().map(Vec::len), Some(2));
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let second = app.get(&format!("/v1/catalogs/shoes/items?limit=2&cursor={cursor}")).await.json();
    assert_eq!(second["data"][0]["id"], "c");
    assert_eq!(second["next_cursor"], Value::Null);

    let delete =
        app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ["a", "b", "c", "never-existed"]})).await;
    assert_eq!(delete.status, StatusCode::ACCEPTED);
    app.run_jobs().await;
    let id = delete.json()["job"]["id"].as_i64().unwrap_or_default();
    let job = app.get(&format!("/v1/jobs/{id}")).await.json();
    assert_eq!((job["status"].as_str(), job["completed_count"].as_u64()), (Some("completed"), Some(4)), "{job}");
    let missing = app.get("/v1/catalogs/shoes/items/a").await;
    assert_eq!((missing.status, error_code(&missing.json())), (StatusCode::NOT_FOUND, "item_not_found"));
}

async fn bulk_results_are_per_input_in_order_and_atomic_refuses_all() {
    let app = app_with_catalog().await;
    let mixed = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ["ok", 7, "bad id", "ok"]})).await;
    assert_eq!(mixed.status, StatusCode::ACCEPTED, "{}", mixed.text);
    let results = mixed.json()["results"].clone();
    let reasons: Vec<_> =
        (0..4).map(|i| results[i]["error"]["reason"].as_str().unwrap_or("accepted").to_owned()).collect();
    assert_eq!(reasons, ["accepted", "id_not_a_string", "invalid_character", "duplicate_id"]);
    assert_eq!(mixed.json()["job"]["total_count"], 1);

    let jobs_before = app.get("/v1/jobs").await.json()["data"].as_array().map_or(0, Vec::len);
    let atomic = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ["ok", 7], "atomic": true})).await;
    assert_eq!((atomic.status, error_code(&atomic.json())), (StatusCode::BAD_REQUEST, "invalid_item_id"));
    let none_valid = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": [1, 2]})).await;
    assert_eq!((none_valid.status, error_code(&none_valid.json())), (StatusCode::BAD_REQUEST, "no_valid_items"));
    let empty = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": []})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let too_many: Vec<String> = (0..10_001).map(|i| format!("id{i}")).collect();
    let over = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": too_many})).await;
    assert_eq!((over.status, error_code(&over.json())), (StatusCode::BAD_REQUEST, "too_many_items"));
    let jobs_after = app.get("/v1/jobs").await.json()["data"].as_array().map_or(0, Vec::len);
    assert_eq!(jobs_before, jobs_after, "a rejected request creates no job");
}

async fn idempotency_key_replays_the_first_job_and_refuses_another_body() {
    let app = app_with_catalog().await;
    let request = |ids: Value| {
        TestRequest::new(Method::POST, "/v1/catalogs/shoes/items/bulk-delete")
            .bearer(&app.token)
            .header("idempotency-key", "chunk-1")
            .json(&json!({"ids": ids}))
    };
    let first = app.send(request(json!(["a", "b"]))).await;
    let again = app.send(request(json!(["a", "b"]))).await;
    assert_eq!((first.status, again.status), (StatusCode::ACCEPTED, StatusCode::OK));
    assert_eq!(first.json()["job"]["id"], again.json()["job"]["id"]);
    let other = app.send(request(json!(["c"]))).await;
    assert_eq!((other.status, error_code(&other.json())), (StatusCode::CONFLICT, "idempotency_key_reused"));
    assert_eq!(app.get("/v1/jobs").await.json()["data"].as_array().map(Vec::len), Some(1));
}

async fn categories_upsert_update_list_delete() {
    let app = app_with_catalog().await;
    upsert(&app, &["a", "b"]).await;
    let created = app
        .post(
            "/v1/catalogs/shoes/categories/bulk-upsert",
            &json!({"categories": [{"id": "boots", "name": "Boots", "item_ids": ["a"]}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    app.run_jobs().await;
    let updated = app
        .post(
            "/v1/catalogs/shoes/categories/bulk-update",
            &json!({"categories": [{"id": "boots", "item_ids": ["a", "b"]}]}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::ACCEPTED, "{}", updated.text);
    app.run_jobs().await;
    let list = app.get("/v1/catalogs/shoes/categories").await.json();
    assert_eq!(list["data"][0]["name"], "Boots");
    assert_eq!(list["data"][0]["item_ids"], json!(["a", "b"]));
    let deleted = app.post("/v1/catalogs/shoes/categories/bulk-delete", &json!({"ids": ["boots"]})).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    app.run_jobs().await;
    assert_eq!(app.get("/v1/catalogs/shoes/categories").await.json()["data"], json!([]));
}

async fn jobs_list_filters_and_pages() {
    let app = app_with_catalog().await;
    for i in 0..5 {
        let response = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": [format!("x{i}")]})).await;
        assert_eq!(response.status, StatusCode::ACCEPTED);
    }
    let upsert_response =
        app.post("/v1/catalogs/shoes/items/bulk-upsert", &json!({"items": [{"id": "u", "fields": {}}]})).await;
    assert_eq!(upsert_response.status, StatusCode::ACCEPTED);

    let deletes = app.get("/v1/jobs?kind=item_bulk_delete").await.json();
    assert_eq!(deletes["data"].as_array().map(Vec::len), Some(5));
    let queued = app.get("/v1/jobs?status=queued,running&catalog=shoes").await.json();
    assert_eq!(queued["data"].as_array().map(Vec::len), Some(6));
    assert_eq!(app.get("/v1/jobs?catalog=other").await.json()["data"], json!([]));
    let future = app.get("/v1/jobs?created_after=2999-01-01T00:00:00Z").await.json();
    assert_eq!(future["data"], json!([]));
    let past = app.get("/v1/jobs?created_before=2000-01-01T00:00:00Z").await.json();
    assert_eq!(past["data"], json!([]));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/jobs?limit=4&cursor={cursor}"),
            None => "/v1/jobs?limit=4".to_owned(),
        };
        let page = app.get(&path).await.json();
        seen.extend(page["data"].as_array().into_iter().flatten().filter_map(|job| job["id"].as_i64()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec![6, 5, 4, 3, 2, 1], "newest first, each job once");
}

async fn bad_query_values_are_400_in_the_envelope() {
    let app = TestApp::new().await;
    for path in [
        "/v1/jobs?status=done",
        "/v1/jobs?kind=nope",
        "/v1/jobs?limit=0",
        "/v1/jobs?limit=1001",
        "/v1/jobs?limit=abc",
        "/v1/jobs?created_after=yesterday",
        "/v1/jobs?cursor=zzz",
        "/v1/jobs?unknown=1",
        "/v1/jobs/1?wait=61",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path}: {}", response.text);
        assert_eq!(error_code(&response.json()), "invalid_query", "{path}");
    }
}

async fn bad_bodies_are_rejected_in_the_envelope() {
    let app = app_with_catalog().await;
    let path = "/v1/catalogs/shoes/items/bulk-delete";
    let cases = [
        (
            TestRequest::new(Method::POST, path).bearer(&app.token).raw_body("application/json", b"{".to_vec()),
            400,
            "invalid_json",
        ),
        (
            TestRequest::new(Method::POST, path).bearer(&app.token).json(&json!({"ids": ["a"], "extra": 1})),
            400,
            "invalid_json",
        ),
        (TestRequest::new(Method::POST, path).bearer(&app.token).json(&json!({"ids": "a"})), 400, "invalid_json"),
        (
            TestRequest::new(Method::POST, path).bearer(&app.token).raw_body("text/plain", b"a".to_vec()),
            415,
            "unsupported_media_type",
        ),
        (TestRequest::new(Method::POST, path).bearer(&app.token), 415, "unsupported_media_type"),
        (
            TestRequest::new(Method::POST, path).bearer(&app.token).json(&json!({"ids": ["a"], "start_at": "soon"})),
            400,
            "invalid_request",
        ),
        (
            TestRequest::new(Method::POST, "/v1/catalogs/shoes/items/bulk-upsert")
                .bearer(&app.token)
                .json(&json!({"items": [{"id": "a", "fields": 3}]})),
            400,
            "invalid_json",
        ),
        (
            TestRequest::new(Method::POST, "/v1/catalogs/none/items/bulk-delete")
                .bearer(&app.token)
                .json(&json!({"ids": ["a"]})),
            404,
            "catalog_not_found",
        ),
    ];
    for (request, status, code) in cases {
        let response = app.send(request).await;
        assert_eq!((response.status.as_u16(), error_code(&response.json())), (status, code), "{}", response.text);
    }
    assert_eq!(app.get("/v1/jobs").await.json()["data"], json!([]), "no rejected request created a job");
}

async fn a_body_over_the_limit_is_413_while_it_is_read() {
    let app = app_with_catalog().await;
    let mut body = b"{\"ids\":[\"".to_vec();
    body.resize(10 * 1024 * 1024 + 10, b'a');
    body.extend_from_slice(b"\"]}");
    let response = app
        .send(
            TestRequest::new(Method::POST, "/v1/catalogs/shoes/items/bulk-delete")
                .bearer(&app.token)
                .raw_body("application/json", body),
        )
        .await;
    assert_eq!((response.status, error_code(&response.json())), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
}

async fn unknown_routes_and_methods_use_the_envelope() {
    let app = TestApp::new().await;
    let missing = app.get("/v1/nothing-here").await;
    assert_eq!((missing.status, error_code(&missing.json())), (StatusCode::NOT_FOUND, "not_found"));
    let wrong_method = app.send(TestRequest::new(Method::PUT, "/v1/jobs").bearer(&app.token)).await;
    assert_eq!(
        (wrong_method.status, error_code(&wrong_method.json())),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let not_a_number = app.get("/v1/jobs/abc").await;
    assert_eq!(not_a_number.status, StatusCode::NOT_FOUND, "{}", not_a_number.text);
    assert_eq!(error_code(&not_a_number.json()), "not_found");
}

async fn keys_are_checked_for_presence_validity_and_scope() {
    let app = app_with_catalog().await;
    let none = app.send(TestRequest::new(Method::GET, "/v1/jobs")).await;
    assert_eq!((none.status, error_code(&none.json())), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    let wrong = app.send(TestRequest::new(Method::GET, "/v1/jobs").bearer("cat_not_a_key")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let reader = app.token_for("acme", &[Scope::CatalogsRead, Scope::JobsRead]).await;
    let read = app.send(TestRequest::new(Method::GET, "/v1/catalogs").bearer(&reader)).await;
    assert_eq!(read.status, StatusCode::OK);
    let write = app
        .send(
            TestRequest::new(Method::POST, "/v1/catalogs/shoes/items/bulk-delete")
                .bearer(&reader)
                .json(&json!({"ids": ["a"]})),
        )
        .await;
    assert_eq!((write.status, error_code(&write.json())), (StatusCode::FORBIDDEN, "forbidden"));
    let cancel = app.send(TestRequest::new(Method::POST, "/v1/jobs/1/cancel").bearer(&reader)).await;
    assert_eq!(cancel.status, StatusCode::FORBIDDEN);
    let jobs_only = app.token_for("acme", &[Scope::JobsRead]).await;
    let catalogs = app.send(TestRequest::new(Method::GET, "/v1/catalogs").bearer(&jobs_only)).await;
    assert_eq!(catalogs.status, StatusCode::FORBIDDEN);

    let revoked = app.store.create_api_key(app.project.id, None, Scope::ALL).await.expect("key");
    app.store.revoke_api_key_by_id(revoked.key.id).await.expect("revoke");
    let after = app.send(TestRequest::new(Method::GET, "/v1/jobs").bearer(&revoked.token)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

async fn a_key_revoked_by_another_process_creates_no_job_and_learns_nothing() {
    let app = app_with_catalog().await;
    // The admin CLI works on the database from a process of its own: this server's key cache
    // cannot know what it revokes.
    let admin = Store::connect(&app.database_url(), StoreConfig::default()).await.expect("admin store");
    let delete = |token: &str, catalog: &str, body: Value| {
        TestRequest::new(Method::POST, &format!("/v1/catalogs/{catalog}/items/bulk-delete")).bearer(token).json(&body)
    };
    // Each case: a key known to the cache (it created a job), then revoked elsewhere. The
    // refused job, and the answers that would come before the insert (404, 400), are all 401.
    let cases = [
        ("shoes", json!({"ids": ["b"]})),
        ("no-such-catalog", json!({"ids": ["b"]})),
        ("shoes", json!({"ids": ["bad id!"]})),
        ("shoes", json!({"nope": 1})),
    ];
    for (catalog, body) in cases {
        let key = app.store.create_api_key(app.project.id, None, Scope::ALL).await.expect("key");
        let accepted = app.send(delete(&key.token, "shoes", json!({"ids": ["a"]}))).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
        admin.revoke_api_key_by_id(key.key.id).await.expect("revoke");
        let refused = app.send(delete(&key.token, catalog, body.clone())).await;
        assert_eq!(
            (refused.status, error_code(&refused.json())),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{catalog} {body}"
        );
    }
    let jobs = app.get("/v1/jobs").await.json();
    assert_eq!(jobs["data"].as_array().map(Vec::len), Some(4), "only the accepted jobs exist");
}

async fn another_projects_catalog_and_job_are_not_found() {
    let app = app_with_catalog().await;
    let job =
        app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ["a"]})).await.json()["job"]["id"].clone();
    let other = app.token_for("globex", Scope::ALL).await;
    for path in [
        "/v1/catalogs/shoes".to_owned(),
        format!("/v1/jobs/{job}"),
        format!("/v1/jobs/{job}/errors"),
        "/v1/catalogs/shoes/items".to_owned(),
    ] {
        let response = app.send(TestRequest::new(Method::GET, &path).bearer(&other)).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}: {}", response.text);
    }
    let cancel = app.send(TestRequest::new(Method::POST, &format!("/v1/jobs/{job}/cancel")).bearer(&other)).await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    let listed = app.send(TestRequest::new(Method::GET, "/v1/jobs").bearer(&other)).await.json();
    assert_eq!(listed["data"], json!([]));
    assert_eq!(app.get(&format!("/v1/jobs/{job}")).await.json()["status"], "queued", "the owner's job is untouched");
}

async fn scheduled_job_can_be_cancelled_and_finished_job_cannot() {
    let app = app_with_catalog().await;
    let scheduled = app
        .post(
            "/v1/catalogs/shoes/items/bulk-delete",
            &json!({"ids": ["a"], "start_at": "2999-01-01T00:00:00Z", "description": "later", "reference_id": "r-1"}),
        )
        .await
        .json();
    assert_eq!(scheduled["job"]["status"], "scheduled");
    assert_eq!(scheduled["job"]["start_at"], "2999-01-01T00:00:00.000Z");
    assert_eq!(
        (scheduled["job"]["description"].as_str(), scheduled["job"]["reference_id"].as_str()),
        (Some("later"), Some("r-1"))
    );
    let id = scheduled["job"]["id"].as_i64().unwrap_or_default();
    let cancelled = app.post(&format!("/v1/jobs/{id}/cancel"), &json!({})).await;
    assert_eq!(cancelled.json()["status"], "cancelled", "{}", cancelled.text);
    let again = app.post(&format!("/v1/jobs/{id}/cancel"), &json!({})).await;
    assert_eq!((again.status, error_code(&again.json())), (StatusCode::CONFLICT, "job_not_cancellable"));
    let missing = app.post("/v1/jobs/999999/cancel", &json!({})).await;
    assert_eq!((missing.status, error_code(&missing.json())), (StatusCode::NOT_FOUND, "job_not_found"));
}

async fn long_poll_returns_when_the_job_finishes() {
    let app = app_with_catalog().await;
    let id = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ["a"]})).await.json()["job"]["id"]
        .as_i64()
        .unwrap_or_default();
    let store = app.store.clone();
    let runner = tokio::spawn(async move {
        tokio::task::yield_now().await;
        catalog_store::Runner::new(store, catalog_store::RunnerConfig::default()).run_until_idle().await
    });
    let job = app.get(&format!("/v1/jobs/{id}?wait=30")).await.json();
    assert_eq!(job["status"], "completed", "{job}");
    assert!(runner.await.is_ok());
}

async fn rate_limited_requests_get_429_with_retry_after_and_create_nothing() {
    let app = TestApp::with_rate_limits(&["native-write=2/1m".parse().expect("setting")]).await;
    assert_eq!(app.post("/v1/catalogs", &json!({"name": "shoes"})).await.status, StatusCode::CREATED);
    let accepted = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ["a"]})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert_eq!(accepted.header("ratelimit-limit"), Some("2"));
    assert_eq!(accepted.header("ratelimit-remaining"), Some("0"));
    let limited = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ["b"]})).await;
    assert_eq!((limited.status, error_code(&limited.json())), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    let retry_after: u64 = limited.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(retry_after >= 1, "integer Retry-After, got {:?}", limited.header("retry-after"));
    assert_eq!(
        app.get("/v1/jobs").await.json()["data"].as_array().map(Vec::len),
        Some(1),
        "the limited request created nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// What no backend can store (catalog-domain's `storable`): refused per item, the rest applied

/// The `error.reason` of each input's result, `None` for an accepted one.
fn reasons(answer: &Value) -> Vec<Option<String>> {
    answer["results"]
        .as_array()
        .map(|results| results.iter().map(|r| r["error"]["reason"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn unstorable_items_are_refused_per_item_and_the_rest_is_applied() {
    let app = app_with_catalog().await;
    let big = "v".repeat(catalog_domain::MAX_ITEM_BYTES);
    let items = json!({"items": [
        {"id": "fine", "fields": {"name": "Fine", "sizes": [41, {"eu": "42"}]}},
        {"id": "nul\u{0}id", "fields": {}},
        {"id": "x".repeat(251), "fields": {}},
        {"id": "nul-name", "fields": {"na\u{0}me": 1}},
        {"id": "nul-nested", "fields": {"sizes": [41, {"eu": "4\u{0}2"}]}},
        {"id": "too-big", "fields": {"name": big}},
        {"id": "fine-2", "fields": {"name": "Fine 2"}},
    ]});
    for route in ["bulk-upsert", "bulk-patch"] {
        let response = app.post(&format!("/v1/catalogs/shoes/items/{route}"), &items).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{route}: {}", response.text);
        let answer = response.json();
        let expected = [
            None,
            Some("invalid_character"),
            Some("id_too_long"),
            Some("nul_character"),
            Some("nul_character"),
            Some("item_too_large"),
            None,
        ];
        let expected: Vec<Option<String>> = expected.iter().map(|r| r.map(str::to_owned)).collect();
        assert_eq!(reasons(&answer), expected, "{route}: {}", response.text);
        assert_eq!(answer["results"][3]["error"]["code"], "invalid_item");
        let message = answer["results"][4]["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("`/sizes/1/eu`"), "{message}");
        assert_eq!(answer["job"]["total_count"], 2);
        app.run_jobs().await;
    }
    let jobs = app.get("/v1/jobs?kind=item_bulk_upsert,item_bulk_patch").await.json();
    for job in jobs["data"].as_array().into_iter().flatten() {
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!((job["completed_count"].as_u64(), job["failed_count"].as_u64()), (Some(2), Some(0)), "{job}");
    }
    let fine = app.get("/v1/catalogs/shoes/items/fine").await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.text);
    assert_eq!(fine.json()["fields"]["sizes"], json!([41, {"eu": "42"}]));
    assert_eq!(app.get("/v1/catalogs/shoes/items/fine-2").await.status, StatusCode::OK);
    assert_eq!(app.get("/v1/catalogs/shoes/items/nul-nested").await.status, StatusCode::NOT_FOUND);
}

async fn unstorable_categories_are_refused_per_category_and_the_rest_is_applied() {
    let app = app_with_catalog().await;
    upsert(&app, &["a", "b"]).await;
    let body = json!({"categories": [
        {"id": "fine", "name": "Fine", "external_id": "F-1", "item_ids": ["a", "b"]},
        {"id": "nul-name", "name": "Sh\u{0}oes"},
        {"id": "fine-2", "name": "Fine 2"},
        {"id": "nul-external", "external_id": "E\u{0}"},
        {"id": "nul-member", "item_ids": ["a", "b\u{0}"]},
        {"id": "c\u{0}", "name": "x"},
        {"id": "x".repeat(251)},
        {"id": "huge", "name": "n".repeat(catalog_domain::MAX_ITEM_BYTES + 1)},
    ]});
    let response = app.post("/v1/catalogs/shoes/categories/bulk-upsert", &body).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    let expected: Vec<Option<String>> = [
        None,
        Some("nul_character"),
        None,
        Some("nul_character"),
        Some("invalid_character"),
        Some("invalid_character"),
        Some("id_too_long"),
        Some("item_too_large"),
    ]
    .iter()
    .map(|r| r.map(str::to_owned))
    .collect();
    assert_eq!(reasons(&response.json()), expected, "{}", response.text);
    let update = json!({"categories": [{"id": "fine", "name": "N\u{0}"}, {"id": "fine-2", "name": "Renamed"}]});
    let response = app.post("/v1/catalogs/shoes/categories/bulk-update", &update).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    assert_eq!(reasons(&response.json()), [Some("nul_character".to_owned()), None]);
    app.run_jobs().await;
    let categories = app.get("/v1/catalogs/shoes/categories").await.json();
    assert_eq!(categories["data"].as_array().map(Vec::len), Some(2), "{categories}");
    assert_eq!(categories["data"][0]["name"], "Fine");
    assert_eq!(categories["data"][0]["item_ids"], json!(["a", "b"]));
    assert_eq!(categories["data"][1]["name"], "Renamed");
    let jobs = app.get("/v1/jobs?kind=category_bulk_upsert,category_bulk_update").await.json();
    for job in jobs["data"].as_array().into_iter().flatten() {
        assert_eq!((job["status"].as_str(), job["failed_count"].as_u64()), (Some("completed"), Some(0)), "{job}");
    }
}

async fn a_nul_in_a_description_or_reference_is_a_400_never_a_500() {
    let app = app_with_catalog().await;
    let catalog = app.post("/v1/catalogs", &json!({"name": "boots", "description": "B\u{0}"})).await;
    assert_eq!((catalog.status, error_code(&catalog.json())), (StatusCode::BAD_REQUEST, "invalid_request"));
    assert_eq!(app.get("/v1/catalogs/boots").await.status, StatusCode::NOT_FOUND);
    for field in ["description", "reference_id"] {
        let body = json!({"ids": ["a"], field: "x\u{0}y"});
        let response = app.post("/v1/catalogs/shoes/items/bulk-delete", &body).await;
        assert_eq!((response.status, error_code(&response.json())), (StatusCode::BAD_REQUEST, "invalid_request"));
        assert_eq!(response.json()["error"]["details"]["pointer"], format!("/{field}"));
    }
    let ids = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ["a\u{0}", "b"]})).await;
    assert_eq!(ids.status, StatusCode::ACCEPTED, "{}", ids.text);
    assert_eq!(reasons(&ids.json()), [Some("invalid_character".to_owned()), None]);
    app.run_jobs().await;
    let jobs = app.get("/v1/jobs?status=completed").await.json();
    assert_eq!(jobs["data"].as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(
        (jobs["data"][0]["completed_count"].as_u64(), jobs["data"][0]["failed_count"].as_u64()),
        (Some(1), Some(0))
    );
}

async fn a_repeated_key_anywhere_in_a_body_is_invalid_json() {
    let app = app_with_catalog().await;
    let cases = [
        ("/v1/catalogs", r#"{"name": "a", "name": "b"}"#),
        ("/v1/catalogs/shoes/items/bulk-delete", r#"{"ids": ["a"], "ids": ["b"]}"#),
        ("/v1/catalogs/shoes/items/bulk-upsert", r#"{"items": [{"id": "a", "id": "b", "fields": {}}]}"#),
        ("/v1/catalogs/shoes/items/bulk-upsert", r#"{"items": [{"id": "a", "fields": {"n": 1, "n": 2}}]}"#),
        ("/v1/catalogs/shoes/items/bulk-patch", r#"{"items": [{"id": "a", "fields": {"n": [{"m": 1, "m": 1}]}}]}"#),
        ("/v1/catalogs/shoes/categories/bulk-upsert", r#"{"categories": [{"id": "c", "name": "x", "name": "y"}]}"#),
    ];
    for (path, body) in cases {
        let request = TestRequest::new(Method::POST, path).bearer(&app.token).raw_body("application/json", body.into());
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path} {body}: {}", response.text);
        assert_eq!(error_code(&response.json()), "invalid_json", "{body}");
        assert!(response.text.contains("duplicate key"), "{}", response.text);
    }
    assert_eq!(app.get("/v1/jobs").await.json()["data"], json!([]));
}

async fn a_declared_oversize_body_is_413_before_it_is_read() {
    let app = app_with_catalog().await;
    for path in ["/v1/catalogs", "/v1/catalogs/shoes/items/bulk-upsert"] {
        let request = TestRequest::new(Method::POST, path)
            .bearer(&app.token)
            .unreadable_body("application/json", 10 * 1024 * 1024 + 1);
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {}", response.text);
        assert_eq!(error_code(&response.json()), "payload_too_large");
    }
}

async fn a_nul_in_a_path_or_query_matches_nothing_and_is_never_a_500() {
    let app = app_with_catalog().await;
    upsert(&app, &["a"]).await;
    for (method, path, status, code) in [
        (Method::GET, "/v1/catalogs/a%00b", StatusCode::NOT_FOUND, "catalog_not_found"),
        (Method::DELETE, "/v1/catalogs/a%00b", StatusCode::NOT_FOUND, "catalog_not_found"),
        (Method::GET, "/v1/catalogs/a%00b/items", StatusCode::NOT_FOUND, "catalog_not_found"),
        (Method::GET, "/v1/catalogs/shoes/items/a%00", StatusCode::NOT_FOUND, "item_not_found"),
        (Method::GET, "/v1/jobs?catalog=a%00b", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        let response = app.send(TestRequest::new(method.clone(), path).bearer(&app.token)).await;
        assert_eq!((response.status, error_code(&response.json())), (status, code), "{method} {path}");
    }
    let bulk = app.post("/v1/catalogs/a%00b/items/bulk-delete", &json!({"ids": ["a"]})).await;
    assert_eq!((bulk.status, error_code(&bulk.json())), (StatusCode::NOT_FOUND, "catalog_not_found"));
}

/// A flat item (its fields beside its id, no `fields`) is refused with a pointer, on upsert and
/// patch, and nothing is created; an empty `fields` is an item with no fields.
async fn an_item_without_fields_is_refused_with_a_pointer() {
    let app = app_with_catalog().await;
    for route in ["bulk-upsert", "bulk-patch"] {
        let body = json!({"items": [{"id": "a", "fields": {}}, {"id": "x", "title": "flat"}]});
        let response = app.post(&format!("/v1/catalogs/shoes/items/{route}"), &body).await;
        let answer = response.json();
        assert_eq!((response.status, error_code(&answer)), (StatusCode::BAD_REQUEST, "invalid_json"), "{route}");
        assert_eq!(answer["error"]["details"]["pointer"], "/items/1/fields", "{route}");
    }
    assert_eq!(app.get("/v1/jobs").await.json()["data"], json!([]));
}

catalog_api::on_both_backends!(
    an_item_without_fields_is_refused_with_a_pointer,
    health_ready_metrics_and_openapi_need_no_key,
    metrics_show_requests_and_the_runners_series,
    catalogs_create_list_get_delete,
    items_upsert_patch_get_list_and_delete,
    bulk_results_are_per_input_in_order_and_atomic_refuses_all,
    idempotency_key_replays_the_first_job_and_refuses_another_body,
    categories_upsert_update_list_delete,
    jobs_list_filters_and_pages,
    bad_query_values_are_400_in_the_envelope,
    bad_bodies_are_rejected_in_the_envelope,
    a_body_over_the_limit_is_413_while_it_is_read,
    unknown_routes_and_methods_use_the_envelope,
    keys_are_checked_for_presence_validity_and_scope,
    a_key_revoked_by_another_process_creates_no_job_and_learns_nothing,
    another_projects_catalog_and_job_are_not_found,
    scheduled_job_can_be_cancelled_and_finished_job_cannot,
    long_poll_returns_when_the_job_finishes,
    rate_limited_requests_get_429_with_retry_after_and_create_nothing,
    unstorable_items_are_refused_per_item_and_the_rest_is_applied,
    unstorable_categories_are_refused_per_category_and_the_rest_is_applied,
    a_nul_in_a_description_or_reference_is_a_400_never_a_500,
    a_repeated_key_anywhere_in_a_body_is_invalid_json,
    a_declared_oversize_body_is_413_before_it_is_read,
    a_nul_in_a_path_or_query_matches_nothing_and_is_never_a_500,
);
