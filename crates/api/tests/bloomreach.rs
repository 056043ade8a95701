//! The Bloomreach facade over the real router: the seed's examples (seeds/002), every error of
//! contracts/bloomreach.md, the other bulk endpoints, catalog management, auth and the per-catalog
//! rate limit.

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use catalog_api::testing::{TestApp, TestRequest, TestResponse};
use catalog_store::Scope;
use serde_json::{json, Value};

const BASE: &str = "/data/v2/projects/acme/catalogs";

/// Bloomreach's 404 message (contracts/bloomreach.md).
const BLOOMREACH_NOT_FOUND: &str = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";
/// Bloomreach's messages of a whole-request 400 (the facade's wording).
const BLOOMREACH_INVALID_JSON: &str = "Invalid JSON. The payload should be a valid JSON document";
const BLOOMREACH_PAYLOAD_TOO_LARGE: &str = "Payload size exceeded. The limit is 10 MB";

/// `Authorization: Basic base64(<key id>:<token>)` for `token`.
async fn basic(app: &TestApp, token: &str) -> String {
    let principal = app.store.authenticate(token).await.ok().flatten().unwrap_or_else(|| panic!("unknown token"));
    let pair = format!("{}:{token}", principal.key_id.0);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> TestResponse {
    let auth = basic(app, &app.token).await;
    call_with(app, &auth, method, path, body).await
}

async fn call_with(
    app: &TestApp,
    authorization: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> TestResponse {
    let mut request = TestRequest::new(method, path).header("authorization", authorization);
    if let Some(body) = body {
        request = request.json(body);
    }
    app.send(request).await
}

/// An app with catalog `products` holding `ids`. The catalog is made through the native API, so
/// its id is its name and it declares no fields (it takes any property).
async fn app_with(ids: &[&str]) -> TestApp {
    let app = TestApp::new().await;
    let created = app.post("/v1/catalogs", &json!({"name": "products"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    if !ids.is_empty() {
        // Seeded through the native API so the bulk endpoints' per-catalog quota stays full.
        let items: Vec<Value> =
            ids.iter().map(|id| json!({"id": id, "fields": {"title": format!("Title {id}")}})).collect();
        let upsert = app.post("/v1/catalogs/products/items/bulk-upsert", &json!({ "items": items })).await;
        assert_eq!(upsert.status, StatusCode::ACCEPTED, "{}", upsert.text);
        app.run_jobs().await;
    }
    app
}

fn global_error(message: &str) -> Value {
    json!({"errors": {"_global": [message]}, "success": false})
}

fn ok() -> Value {
    json!({"success": true, "queued": true})
}

fn failed(message: &str) -> Value {
    json!({"success": false, "queued": false, "errors": {"_global": [message]}})
}

/// The item ids of a page of the item list.
fn ids_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|i| i["item_id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn item_ids(app: &TestApp) -> Vec<String> {
    ids_of(&call(app, Method::GET, &format!("{BASE}/products/items?count=1000"), None).await.json())
}

async fn properties(app: &TestApp, id: &str) -> Value {
    let page = call(app, Method::GET, &format!("{BASE}/products/items?count=1000"), None).await.json();
    page["data"]
        .as_array()
        .and_then(|d| d.iter().find(|i| i["item_id"] == id).map(|i| i["properties"].clone()))
        .unwrap_or(Value::Null)
}

async fn jobs_count(app: &TestApp) -> usize {
    app.get("/v1/jobs").await.json()["data"].as_array().map_or(0, Vec::len)
}

// ---------------------------------------------------------------------------------------------
// Seed 002: the example response, and the documented behaviour around it

async fn seed_example_response_three_items_one_malformed() {
    let app = app_with(&["id1", "id2", "id3"]).await;
    let body = json!([{"item_id": "id1"}, {"item_id": "id2"}, {"item_id": 3}]);
    let response = call(&app, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!((response.header("ratelimit-limit"), response.header("ratelimit-remaining")), (Some("5"), Some("4")));
    assert_eq!(response.json(), json!([ok(), ok(), failed("Malformed item id. Item id should be a string")]));
    app.run_jobs().await;
    assert_eq!(item_ids(&app).await, ["id3"]);
}

async fn delete_method_and_bare_strings_are_accepted() {
    let app = app_with(&["a", "b", "c"]).await;
    let response = call(
        &app,
        Method::DELETE,
        &format!("{BASE}/products/items/bulk-delete"),
        Some(&json!(["a", {"item_id": "b"}])),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json(), json!([ok(), ok()]));
    app.run_jobs().await;
    assert_eq!(item_ids(&app).await, ["c"]);
}

async fn a_missing_item_is_still_success() {
    let app = app_with(&["a"]).await;
    let response =
        call(&app, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&json!([{"item_id": "nope"}])))
            .await;
    assert_eq!((response.status, response.json()), (StatusCode::OK, json!([ok()])));
    app.run_jobs().await;
    let job = &app.get("/v1/jobs").await.json()["data"][0];
    assert_eq!((job["status"].as_str(), job["completed_count"].as_u64()), (Some("completed"), Some(1)));
}

async fn per_item_failures_keep_request_order() {
    let app = app_with(&["a", "b"]).await;
    let body = json!([{"item_id": ""}, "a", {"item_id": "x/y"}, {"id": "b"}, 17, {"item_id": "b"}, {"item_id": null}]);
    let response = call(&app, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        response.json(),
        json!([
            failed("Invalid item id. Item id should not be empty"),
            ok(),
            failed("Invalid item id. Item id should not contain '/'"),
            failed("Missing item id. Item should have an item_id"),
            failed("Malformed item id. Item id should be a string"),
            ok(),
            failed("Malformed item id. Item id should be a string"),
        ])
    );
    app.run_jobs().await;
    assert!(item_ids(&app).await.is_empty());
}

async fn a_request_of_only_bad_items_answers_per_item_and_creates_nothing() {
    let app = app_with(&[]).await;
    let response =
        call(&app, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&json!([{"item_id": 1}, ""])))
            .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json(),
        json!([
            failed("Malformed item id. Item id should be a string"),
            failed("Invalid item id. Item id should not be empty")
        ])
    );
    assert_eq!(jobs_count(&app).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Whole-request errors

async fn invalid_json_is_400() {
    let app = app_with(&[]).await;
    let auth = basic(&app, &app.token).await;
    let response = app
        .send(
            TestRequest::new(Method::POST, &format!("{BASE}/products/items/bulk-delete"))
                .header("authorization", &auth)
                .raw_body("application/json", b"[{\"item_id\": ".to_vec()),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json(), global_error("Invalid JSON. The payload should be a valid JSON document"));
    assert_eq!(response.header("ratelimit-remaining"), Some("4"), "the quota was spent and is shown");
}

async fn a_payload_that_is_not_a_list_is_400() {
    let app = app_with(&[]).await;
    for body in [json!({"item_id": "a"}), json!("a"), json!(null)] {
        let response = call(&app, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&body)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response.json(), global_error("Malformed payload. The payload should be a list of items"));
    }
}

async fn a_payload_over_10_mb_is_400() {
    let app = app_with(&[]).await;
    let auth = basic(&app, &app.token).await;
    let id = "x".repeat(1_000);
    let mut body = String::from("[");
    while body.len() <= 10 * 1024 * 1024 {
        body.push_str(&format!("\"{id}\","));
    }
    body.push_str("\"last\"]");
    let response = app
        .send(
            TestRequest::new(Method::POST, &format!("{BASE}/products/items/bulk-delete"))
                .header("authorization", &auth)
                .raw_body("application/json", body.into_bytes()),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json(), global_error("Payload size exceeded. The limit is 10 MB"));
    assert_eq!(jobs_count(&app).await, 0);
}

async fn more_than_10000_items_is_400() {
    let app = app_with(&[]).await;
    let ten_thousand: Vec<String> = (0..10_000).map(|i| format!("i{i}")).collect();
    let ok = call(&app, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&json!(ten_thousand))).await;
    assert_eq!(ok.status, StatusCode::OK, "10,000 ids are allowed");
    let too_many: Vec<String> = (0..10_001).map(|i| format!("i{i}")).collect();
    let response =
        call(&app, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&json!(too_many))).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json(),
        global_error("Too many items. At most 10000 item ids are allowed per request, got 10001")
    );
    assert_eq!(jobs_count(&app).await, 1);
}

async fn an_unknown_catalog_is_the_documented_404() {
    let app = app_with(&[]).await;
    for (method, path) in [
        (Method::POST, "nope/items/bulk-delete"),
        (Method::DELETE, "nope/items/bulk-delete"),
        (Method::PUT, "nope/items"),
        (Method::POST, "nope/items/partial-update"),
        (Method::GET, "nope/items"),
    ] {
        let response = call(&app, method.clone(), &format!("{BASE}/{path}"), Some(&json!([{"item_id": "a"}]))).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(response.json(), global_error(BLOOMREACH_NOT_FOUND));
    }
    assert!(BLOOMREACH_NOT_FOUND.starts_with("The requested URL was not found on the server."));
}

// ---------------------------------------------------------------------------------------------
// Auth

async fn bad_credentials_are_401() {
    let app = app_with(&["a"]).await;
    let path = format!("{BASE}/products/items/bulk-delete");
    let body = json!(["a"]);
    let encode = |text: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(text));
    let key_id = app.store.authenticate(&app.token).await.ok().flatten().map(|p| p.key_id.0).unwrap_or_default();
    let cases = [
        ("no header", None),
        ("bearer scheme", Some(format!("Bearer {}", app.token))),
        ("not base64", Some("Basic %%%".to_owned())),
        ("no colon", Some(encode(&app.token))),
        ("wrong secret", Some(encode(&format!("{key_id}:wrong")))),
        ("wrong key id", Some(encode(&format!("{}:{}", key_id + 1, app.token)))),
    ];
    for (case, header) in cases {
        let mut request = TestRequest::new(Method::POST, &path).json(&body);
        if let Some(header) = &header {
            request = request.header("authorization", header);
        }
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(response.json()["success"], false, "{case}");
        assert!(response.json()["errors"]["_global"][0].is_string(), "{case}");
    }
    assert_eq!(jobs_count(&app).await, 1, "only the setup's job");
}

async fn a_key_of_another_project_is_401() {
    let app = app_with(&["a"]).await;
    let other = app.token_for("other", Scope::ALL).await;
    let auth = basic(&app, &other).await;
    let response =
        call_with(&app, &auth, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&json!(["a"]))).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.json(), global_error("The API key does not belong to this project"));
    // Its own project has no such catalog.
    let own = call_with(
        &app,
        &auth,
        Method::POST,
        "/data/v2/projects/other/catalogs/products/items/bulk-delete",
        Some(&json!(["a"])),
    )
    .await;
    assert_eq!(own.status, StatusCode::NOT_FOUND);
}

async fn a_key_without_the_permission_is_403() {
    let app = app_with(&["a"]).await;
    let reader = basic(&app, &app.token_for("acme", &[Scope::CatalogsRead]).await).await;
    let writer = basic(&app, &app.token_for("acme", &[Scope::CatalogsWrite]).await).await;
    for (method, path) in [
        (Method::POST, "products/items/bulk-delete"),
        (Method::DELETE, "products/items/bulk-delete"),
        (Method::PUT, "products/items"),
        (Method::POST, "products/items/partial-update"),
    ] {
        let response =
            call_with(&app, &reader, method, &format!("{BASE}/{path}"), Some(&json!([{"item_id": "a"}]))).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(response.json()["success"], false);
    }
    assert_eq!(
        call_with(&app, &reader, Method::POST, BASE, Some(&json!({"name": "x"}))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call_with(&app, &writer, Method::GET, BASE, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call_with(&app, &writer, Method::GET, &format!("{BASE}/products/items"), None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call_with(&app, &reader, Method::GET, &format!("{BASE}/products/items"), None).await.status,
        StatusCode::OK
    );
    assert_eq!(jobs_count(&app).await, 1);
}

// ---------------------------------------------------------------------------------------------
// Bulk update and partial update

async fn bulk_update_replaces_properties_and_creates_missing_items() {
    let app = app_with(&["a"]).await;
    let body = json!([
        {"item_id": "a", "properties": {"price": 3}},
        {"item_id": "new"},
        {"item_id": "x/y", "properties": {}},
        {"item_id": "b", "properties": "nope"},
    ]);
    let response = call(&app, Method::PUT, &format!("{BASE}/products/items"), Some(&body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        response.json(),
        json!([
            ok(),
            ok(),
            failed("Invalid item id. Item id should not contain '/'"),
            failed("Malformed properties. Properties should be an object")
        ])
    );
    app.run_jobs().await;
    // Omitted properties become blank.
    assert_eq!(properties(&app, "a").await, json!({"price": 3}));
    assert_eq!(properties(&app, "new").await, json!({}));
    assert_eq!(item_ids(&app).await, ["a", "new"]);
}

async fn partial_update_merges_and_upserts_per_item() {
    let app = app_with(&["a"]).await;
    let body = json!([
        {"item_id": "a", "properties": {"price": 3}, "upsert": false},
        {"item_id": "missing", "properties": {"price": 1}},
        {"item_id": "created", "properties": {"price": 2}, "upsert": true},
        {"item_id": "c", "upsert": "yes"},
    ]);
    let response = call(&app, Method::POST, &format!("{BASE}/products/items/partial-update"), Some(&body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json(), json!([ok(), ok(), ok(), failed("Malformed upsert. Upsert should be a boolean")]));
    app.run_jobs().await;
    assert_eq!(properties(&app, "a").await, json!({"title": "Title a", "price": 3}));
    assert_eq!(properties(&app, "created").await, json!({"price": 2}));
    assert_eq!(item_ids(&app).await, ["a", "created"], "a missing item without upsert is not created");
    // One job for the whole request, whatever each input's `upsert`; the failure of `missing`
    // is recorded on it.
    let jobs = app.get("/v1/jobs?kind=item_bulk_patch").await.json();
    let jobs = jobs["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!((jobs[0]["completed_count"].as_u64(), jobs[0]["failed_count"].as_u64()), (Some(2), Some(1)));
}

async fn a_partial_update_applies_its_inputs_in_request_order() {
    let app = app_with(&[]).await;
    // The same id first without upsert (it fails: missing), then with (created), then merged.
    let body = json!([
        {"item_id": "x", "properties": {"a": 1}},
        {"item_id": "x", "properties": {"b": 2}, "upsert": true},
        {"item_id": "x", "properties": {"c": 3}},
    ]);
    let response = call(&app, Method::POST, &format!("{BASE}/products/items/partial-update"), Some(&body)).await;
    assert_eq!(response.json(), json!([ok(), ok(), ok()]));
    app.run_jobs().await;
    assert_eq!(properties(&app, "x").await, json!({"b": 2, "c": 3}));
    let jobs = app.get("/v1/jobs?kind=item_bulk_patch").await.json();
    assert_eq!(jobs["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(jobs["data"][0]["failed_count"], 1);
}

async fn update_endpoints_share_the_whole_request_errors() {
    let app = app_with(&[]).await;
    for (method, path) in [(Method::PUT, "products/items"), (Method::POST, "products/items/partial-update")] {
        let not_list = call(&app, method.clone(), &format!("{BASE}/{path}"), Some(&json!({"item_id": "a"}))).await;
        assert_eq!(
            (not_list.status, not_list.json()),
            (StatusCode::BAD_REQUEST, global_error("Malformed payload. The payload should be a list of items"))
        );
        let too_many: Vec<Value> = (0..10_001).map(|i| json!({"item_id": format!("i{i}")})).collect();
        let response = call(&app, method, &format!("{BASE}/{path}"), Some(&json!(too_many))).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(jobs_count(&app).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Rate limit: 5 per 10 s per catalog, shared by the bulk endpoints

async fn two_updates_and_three_partial_updates_exhaust_the_catalog_quota() {
    let app = app_with(&[]).await;
    let other = call(&app, Method::POST, BASE, Some(&json!({"name": "other"}))).await;
    assert_eq!(other.status, StatusCode::OK);
    let other = other.json()["id"].as_str().unwrap_or_default().to_owned();
    let body = json!([{"item_id": "a", "properties": {}}]);
    for _ in 0..2 {
        assert_eq!(
            call(&app, Method::PUT, &format!("{BASE}/products/items"), Some(&body)).await.status,
            StatusCode::OK
        );
    }
    for _ in 0..3 {
        let response = call(&app, Method::POST, &format!("{BASE}/products/items/partial-update"), Some(&body)).await;
        assert_eq!(response.status, StatusCode::OK);
    }
    let limited = call(&app, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&json!(["a"]))).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json()["success"], false);
    assert!(limited.json()["errors"]["_global"][0].as_str().is_some_and(|m| m.starts_with("Rate limit exceeded")));
    let retry_after: u64 = limited.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or_default();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(jobs_count(&app).await, 5, "the limited request created nothing");
    // Another catalog has its own quota.
    let elsewhere = call(&app, Method::POST, &format!("{BASE}/{other}/items/bulk-delete"), Some(&json!(["a"]))).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Catalog management

async fn create_and_list_catalogs() {
    let app = TestApp::new().await;
    let created = call(
        &app,
        Method::POST,
        BASE,
        Some(&json!({"name": "products", "fields": [{"name": "title", "type": "string", "searchable": false}]})),
    )
    .await;
    assert_eq!((created.status, created.json()["success"].clone()), (StatusCode::OK, json!(true)));
    // A catalog has an id of its own, apart from its name, which may be any text and repeat.
    let id = created.json()["id"].as_str().unwrap_or_default().to_owned();
    assert!(id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    let spaced = call(&app, Method::POST, BASE, Some(&json!({"name": "My Products"}))).await;
    assert_eq!(spaced.status, StatusCode::OK, "{}", spaced.text);
    let spaced_id = spaced.json()["id"].as_str().unwrap_or_default().to_owned();
    assert_ne!(spaced_id, id);
    let unnamed = call(&app, Method::POST, BASE, Some(&json!({"fields": []}))).await;
    assert_eq!(unnamed.status, StatusCode::BAD_REQUEST);
    let twice =
        call(&app, Method::POST, BASE, Some(&json!({"name": "x", "fields": [{"name": "a"}, {"name": "a"}]}))).await;
    assert_eq!((twice.status, twice.json()["success"].clone()), (StatusCode::BAD_REQUEST, json!(false)));
    let list = call(&app, Method::GET, BASE, None).await;
    let mut expected = vec![json!({"id": id, "name": "products"}), json!({"id": spaced_id, "name": "My Products"})];
    expected.sort_by_key(|c| c["id"].as_str().unwrap_or_default().to_owned());
    assert_eq!((list.status, list.json()), (StatusCode::OK, json!({"data": expected, "success": true})));
    let one = call(&app, Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(
        one.json(),
        json!({"data": {"id": id, "name": "products", "fields": [{"name": "title", "type": "string", "searchable": false}]}, "success": true})
    );
}

async fn list_items_with_count_and_skip() {
    let app = app_with(&["a", "b", "c", "d"]).await;
    let page = call(&app, Method::GET, &format!("{BASE}/products/items?count=2&skip=1"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.json(),
        json!({"data": [
            {"catalog_id": "products", "item_id": "b", "properties": {"title": "Title b"}},
            {"catalog_id": "products", "item_id": "c", "properties": {"title": "Title c"}},
        ], "matched": 4, "limit": 2, "skip": 1, "total": 4, "matched_limited": false, "success": true})
    );
    let past = call(&app, Method::GET, &format!("{BASE}/products/items?skip=10"), None).await;
    assert_eq!(
        past.json(),
        json!({"data": [], "matched": 4, "limit": 20, "skip": 10, "total": 4, "matched_limited": false, "success": true})
    );
    let edge = call(&app, Method::GET, &format!("{BASE}/products/items?count=1000&skip=1"), None).await;
    assert_eq!(edge.status, StatusCode::OK, "count + skip = 1001 is allowed");
    for bad in ["count=0", "count=x", "skip=-1", "count=1001&skip=1", "count=2&skip=1000", "order=sideways"] {
        let response = call(&app, Method::GET, &format!("{BASE}/products/items?{bad}"), None).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(response.json()["success"], false);
    }
}

async fn an_unsupported_method_is_405_in_the_envelope() {
    let app = app_with(&[]).await;
    let response = call(&app, Method::GET, &format!("{BASE}/products/items/bulk-delete"), None).await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.json(), global_error("The method is not allowed for the requested URL."));
}

// ---------------------------------------------------------------------------------------------
// What no backend can store (catalog-domain's `storable`): refused per item, the rest applied

/// A body with keys written out by hand (a JSON value cannot repeat a key).
async fn send_raw(app: &TestApp, method: Method, path: &str, body: &str) -> TestResponse {
    let auth = basic(app, &app.token).await;
    app.send(TestRequest::new(method, path).header("authorization", &auth).raw_body("application/json", body.into()))
        .await
}

async fn unstorable_inputs_fail_alone_and_the_rest_is_applied() {
    let app = app_with(&["keep-1", "keep-2"]).await;
    let long_id = "x".repeat(3_000);
    let big = "v".repeat(catalog_domain::MAX_ITEM_BYTES);
    let body = json!([
        {"item_id": "fine", "properties": {"title": "Fine", "tags": ["a", {"b": "c"}]}},
        {"item_id": "nul\u{0}id", "properties": {"title": "x"}},
        {"item_id": long_id, "properties": {"title": "x"}},
        {"item_id": "nul-name", "properties": {"ti\u{0}tle": "x"}},
        {"item_id": "nul-nested", "properties": {"tags": ["a", {"b": "c\u{0}"}]}},
        {"item_id": "too-big", "properties": {"title": big}},
        {"item_id": "fine-2", "properties": {"title": "Fine 2"}},
    ]);
    let response = call(&app, Method::PUT, &format!("{BASE}/products/items"), Some(&body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let results = response.json();
    assert_eq!(results[0], ok());
    assert_eq!(results[1], failed("Invalid item id. Item id should not contain the NUL character (U+0000)"));
    assert_eq!(results[2], failed("Invalid item id. Item id should be at most 1024 bytes in UTF-8, got 3000"));
    assert_eq!(
        results[3],
        failed("Invalid properties. Properties should not contain the NUL character (U+0000), found at /ti\\u0000tle")
    );
    assert_eq!(
        results[4],
        failed("Invalid properties. Properties should not contain the NUL character (U+0000), found at /tags/1/b")
    );
    let too_big = results[5]["errors"]["_global"][0].as_str().unwrap_or_default();
    assert!(too_big.starts_with("Item too large. Properties should be at most 262144 bytes"), "{too_big}");
    assert_eq!(results[6], ok());

    // Partial update and bulk delete refuse the same inputs the same way.
    let partial = json!([
        {"item_id": "keep-1", "properties": {"note": "n\u{0}"}},
        {"item_id": "keep-2", "properties": {"note": "patched"}},
    ]);
    let response = call(&app, Method::POST, &format!("{BASE}/products/items/partial-update"), Some(&partial)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json()[0]["success"], false, "{}", response.text);
    assert_eq!(response.json()[1], ok());
    let delete = json!(["nul\u{0}", "x".repeat(1_025), "fine-2"]);
    let response = call(&app, Method::POST, &format!("{BASE}/products/items/bulk-delete"), Some(&delete)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let results = response.json();
    assert_eq!((results[0]["success"].as_bool(), results[1]["success"].as_bool()), (Some(false), Some(false)));
    assert_eq!(results[2], ok());

    app.run_jobs().await;
    assert_eq!(item_ids(&app).await, ["fine", "keep-1", "keep-2"]);
    let jobs = app.get("/v1/jobs").await.json();
    for job in jobs["data"].as_array().into_iter().flatten() {
        assert_eq!((job["status"].as_str(), job["failed_count"].as_u64()), (Some("completed"), Some(0)), "{job}");
    }
}

async fn a_repeated_key_anywhere_is_invalid_json() {
    let app = app_with(&[]).await;
    let path = format!("{BASE}/products/items");
    for body in [
        r#"[{"item_id": "a", "item_id": "b"}]"#,
        r#"[{"item_id": "a", "properties": {"t": 1, "t": 2}}]"#,
        r#"[{"item_id": "a", "properties": {"t": {"u": 1, "u": 2}}}]"#,
    ] {
        let response = send_raw(&app, Method::PUT, &path, body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {}", response.text);
        assert_eq!(response.json(), global_error(BLOOMREACH_INVALID_JSON), "{body}");
    }
    assert_eq!(app.get("/v1/jobs").await.json()["data"], json!([]));
}

async fn a_declared_oversize_body_is_refused_before_it_is_read() {
    let app = app_with(&[]).await;
    let auth = basic(&app, &app.token).await;
    let request = TestRequest::new(Method::PUT, &format!("{BASE}/products/items"))
        .header("authorization", &auth)
        .unreadable_body("application/json", 10 * 1024 * 1024 + 1);
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{}", response.text);
    assert_eq!(response.json(), global_error(BLOOMREACH_PAYLOAD_TOO_LARGE));
}

async fn a_nul_in_a_path_is_not_found_never_a_500() {
    let app = app_with(&["a"]).await;
    for (method, path) in
        [(Method::GET, format!("{BASE}/a%00b/items")), (Method::POST, format!("{BASE}/a%00b/items/bulk-delete"))]
    {
        let response = call(&app, method.clone(), &path, Some(&json!(["a"]))).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{method} {path}: {}", response.text);
        assert_eq!(response.json(), global_error(BLOOMREACH_NOT_FOUND));
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 14: the endpoints the Exponea SDK calls, catalog ids apart from names, declared fields,
// the item search, unknown routes

fn success() -> Value {
    json!({"success": true})
}

async fn properties_of(app: &TestApp, catalog: &str) -> Vec<(String, Value)> {
    let page = call(app, Method::GET, &format!("{BASE}/{catalog}/items?count=1000"), None).await.json();
    page["data"]
        .as_array()
        .map(|d| {
            d.iter().map(|i| (i["item_id"].as_str().unwrap_or_default().to_owned(), i["properties"].clone())).collect()
        })
        .unwrap_or_default()
}

async fn single_item_endpoints_replace_update_and_delete() {
    let app = app_with(&["a"]).await;
    let put = call(
        &app,
        Method::PUT,
        &format!("{BASE}/products/items/b"),
        Some(&json!({"properties": {"title": "B", "size": 1}})),
    )
    .await;
    assert_eq!((put.status, put.json()), (StatusCode::OK, success()));
    let patch = call(
        &app,
        Method::POST,
        &format!("{BASE}/products/items/a/partial-update"),
        Some(&json!({"properties": {"size": 2}})),
    )
    .await;
    assert_eq!((patch.status, patch.json()), (StatusCode::OK, success()));
    let upsert = call(
        &app,
        Method::POST,
        &format!("{BASE}/products/items/c/partial-update/"),
        Some(&json!({"properties": {"size": 3}, "upsert": true})),
    )
    .await;
    assert_eq!(upsert.status, StatusCode::OK);
    app.run_jobs().await;
    assert_eq!(
        properties_of(&app, "products").await,
        [
            ("a".to_owned(), json!({"title": "Title a", "size": 2})),
            ("b".to_owned(), json!({"title": "B", "size": 1})),
            ("c".to_owned(), json!({"size": 3})),
        ]
    );
    let deleted = call(&app, Method::DELETE, &format!("{BASE}/products/items/b"), None).await;
    assert_eq!((deleted.status, deleted.json()), (StatusCode::OK, success()));
    app.run_jobs().await;
    assert_eq!(item_ids(&app).await, ["a", "c"]);
    let malformed = call(&app, Method::PUT, &format!("{BASE}/products/items/a"), Some(&json!({"properties": 3}))).await;
    assert_eq!(malformed.json(), global_error("Malformed properties. Properties should be an object"));
    let missing = call(&app, Method::PUT, &format!("{BASE}/nope/items/a"), Some(&json!({"properties": {}}))).await;
    assert_eq!((missing.status, missing.json()), (StatusCode::NOT_FOUND, global_error(BLOOMREACH_NOT_FOUND)));
}

async fn delete_all_items_empties_the_catalog() {
    let ids: Vec<String> = (0..25).map(|i| format!("i{i:02}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let app = app_with(&refs).await;
    let response = call(&app, Method::DELETE, &format!("{BASE}/products/items"), None).await;
    assert_eq!((response.status, response.json()), (StatusCode::OK, success()));
    app.run_jobs().await;
    assert!(item_ids(&app).await.is_empty());
    assert_eq!(
        call(&app, Method::GET, &format!("{BASE}/products"), None).await.status,
        StatusCode::OK,
        "the catalog stays"
    );
}

async fn catalogs_are_read_renamed_and_deleted_by_id() {
    let app = TestApp::new().await;
    let fields = json!([{"name": "title", "type": "string", "searchable": true}, {"name": "price", "type": "number", "searchable": false}]);
    let created = call(&app, Method::POST, BASE, Some(&json!({"name": "Winter Shoes", "fields": fields}))).await;
    let id = created.json()["id"].as_str().unwrap_or_default().to_owned();
    let got = call(&app, Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(got.json(), json!({"data": {"id": id, "name": "Winter Shoes", "fields": fields}, "success": true}));
    let renamed = call(
        &app,
        Method::PUT,
        &format!("{BASE}/{id}"),
        Some(&json!({"name": "Summer Shoes", "fields": [{"name": "title"}]})),
    )
    .await;
    assert_eq!((renamed.status, renamed.json()), (StatusCode::OK, success()));
    let got = call(&app, Method::GET, &format!("{BASE}/{id}/"), None).await;
    assert_eq!(
        got.json(),
        json!({"data": {"id": id, "name": "Summer Shoes", "fields": [{"name": "title", "type": "string", "searchable": false}]}, "success": true})
    );
    let unnamed = call(&app, Method::PUT, &format!("{BASE}/{id}"), Some(&json!({"fields": []}))).await;
    assert_eq!(unnamed.status, StatusCode::BAD_REQUEST);
    let deleted = call(&app, Method::DELETE, &format!("{BASE}/{id}"), None).await;
    assert_eq!((deleted.status, deleted.json()), (StatusCode::OK, success()));
    for method in [Method::GET, Method::DELETE] {
        let gone = call(&app, method, &format!("{BASE}/{id}"), None).await;
        assert_eq!((gone.status, gone.json()), (StatusCode::NOT_FOUND, global_error(BLOOMREACH_NOT_FOUND)));
    }
    assert_eq!(call(&app, Method::GET, BASE, None).await.json()["data"], json!([]));
}

async fn items_are_checked_against_the_declared_fields() {
    let app = TestApp::new().await;
    let created = call(
        &app,
        Method::POST,
        BASE,
        Some(&json!({"name": "Shoes", "fields": [{"name": "title"}, {"name": "price", "type": "number"}]})),
    )
    .await;
    let id = created.json()["id"].as_str().unwrap_or_default().to_owned();
    let body = json!([
        {"item_id": "a", "properties": {"title": "A", "price": 1}},
        {"item_id": "b", "properties": {"colour": "red"}},
    ]);
    let response = call(&app, Method::PUT, &format!("{BASE}/{id}/items"), Some(&body)).await;
    assert_eq!(
        response.json(),
        json!([ok(), failed("Invalid properties. Property 'colour' is not a field of the catalog")])
    );
    let single =
        call(&app, Method::PUT, &format!("{BASE}/{id}/items/c"), Some(&json!({"properties": {"colour": "red"}}))).await;
    assert_eq!(
        (single.status, single.json()),
        (StatusCode::BAD_REQUEST, global_error("Invalid properties. Property 'colour' is not a field of the catalog"))
    );
    app.run_jobs().await;
    assert_eq!(properties_of(&app, &id).await, [("a".to_owned(), json!({"title": "A", "price": 1}))]);
}

async fn the_item_list_searches_and_orders() {
    let app = app_with(&[]).await;
    let items = json!([
        {"item_id": "p1", "properties": {"title": "Red Shoe", "colour": "red"}},
        {"item_id": "p2", "properties": {"title": "Blue shoe", "colour": "blue"}},
        {"item_id": "p3", "properties": {"title": "Red hat", "colour": "RED"}},
        {"item_id": "shoe-box", "properties": {"title": "Box"}},
    ]);
    assert_eq!(call(&app, Method::PUT, &format!("{BASE}/products/items"), Some(&items)).await.status, StatusCode::OK);
    app.run_jobs().await;
    let shoes = call(&app, Method::GET, &format!("{BASE}/products/items?query=shoe"), None).await.json();
    assert_eq!(ids_of(&shoes), ["p1", "p2", "shoe-box"], "the id or any property");
    assert_eq!((shoes["matched"].clone(), shoes["total"].clone()), (json!(3), json!(4)));
    let red_colour =
        call(&app, Method::GET, &format!("{BASE}/products/items?query=red&field=colour&order=desc"), None).await.json();
    assert_eq!(ids_of(&red_colour), ["p3", "p1"]);
    let paged = call(&app, Method::GET, &format!("{BASE}/products/items?query=red&count=1&skip=1"), None).await.json();
    assert_eq!(
        (ids_of(&paged), paged["matched"].clone(), paged["limit"].clone(), paged["skip"].clone()),
        (vec!["p3".to_owned()], json!(2), json!(1), json!(1))
    );
    let none = call(&app, Method::GET, &format!("{BASE}/products/items?query=zebra"), None).await.json();
    assert_eq!((ids_of(&none).len(), none["matched"].clone(), none["total"].clone()), (0, json!(0), json!(4)));
}

/// A catalog made through Bloomreach's create with `fields`; its id.
async fn catalog_with_fields(app: &TestApp, fields: Value) -> String {
    let created = call(app, Method::POST, BASE, Some(&json!({"name": "Typed", "fields": fields}))).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    created.json()["id"].as_str().unwrap_or_default().to_owned()
}

/// Each Bloomreach field type: (field, type, a value it takes, one it refuses, the message's end).
const TYPE_CASES: &[(&str, &str, &str, &str, &str)] = &[
    ("s", "string", r#""text""#, "[1]", "a string (text, a number or a boolean)"),
    ("lt", "long text", "5", r#"{"a":1}"#, "a long text (text, a number or a boolean)"),
    ("n", "number", r#""12.5""#, r#""twelve""#, "a number"),
    ("b", "boolean", "1", r#""yes""#, "a boolean (true, false, 1 or 0)"),
    ("d", "date", "1700000000", r#""2024-01-01""#, "a date (a UNIX timestamp in seconds)"),
    ("dt", "datetime", "1700000000.5", r#""2024-01-01T00:00:00Z""#, "a datetime (a UNIX timestamp in seconds)"),
    ("l", "list", r#"["a"]"#, r#""a""#, "a list"),
    ("u", "url", r#""https://example.com/p""#, r#""example.com""#, "a URL (http or https)"),
    ("j", "json", r#"{"k":[1]}"#, r#""{}""#, "JSON (an object or a list)"),
];

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

async fn each_field_type_takes_its_values_and_refuses_others_alone() {
    let app = TestApp::new().await;
    let fields: Vec<Value> = TYPE_CASES.iter().map(|(name, ty, ..)| json!({"name": name, "type": ty})).collect();
    let id = catalog_with_fields(&app, Value::from(fields)).await;
    let mut body = Vec::new();
    let mut expected = Vec::new();
    let mut stored = Vec::new();
    for (name, _, taken, refused, wants) in TYPE_CASES {
        body.push(json!({"item_id": format!("ok-{name}"), "properties": {*name: parsed(taken)}}));
        body.push(json!({"item_id": format!("bad-{name}"), "properties": {*name: parsed(refused)}}));
        body.push(json!({"item_id": format!("null-{name}"), "properties": {*name: null}}));
        expected.extend([ok(), failed(&format!("Invalid properties. Property '{name}' should be {wants}")), ok()]);
        stored.push((format!("ok-{name}"), json!({*name: parsed(taken)})));
        stored.push((format!("null-{name}"), json!({*name: null})));
    }
    let response = call(&app, Method::PUT, &format!("{BASE}/{id}/items"), Some(&Value::from(body))).await;
    assert_eq!((response.status, response.json()), (StatusCode::OK, Value::from(expected)));
    app.run_jobs().await;
    stored.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(properties_of(&app, &id).await, stored, "only the refused values are missing");
}

async fn a_value_of_the_wrong_type_changes_nothing_on_every_write() {
    let app = TestApp::new().await;
    let id = catalog_with_fields(&app, json!([{"name": "title"}, {"name": "price", "type": "number"}])).await;
    let put =
        call(&app, Method::PUT, &format!("{BASE}/{id}/items/p1"), Some(&json!({"properties": {"price": 10}}))).await;
    assert_eq!((put.status, put.json()), (StatusCode::OK, success()));
    app.run_jobs().await;
    let jobs = jobs_count(&app).await;
    let message = "Invalid properties. Property 'price' should be a number";
    let bad = json!({"properties": {"title": "Shoe", "price": "ten"}});
    for (method, path) in [
        (Method::PUT, format!("{BASE}/{id}/items/p1")),
        (Method::POST, format!("{BASE}/{id}/items/p1/partial-update")),
        (Method::PUT, format!("{BASE}/{id}/items/p2")),
    ] {
        let response = call(&app, method, &path, Some(&bad)).await;
        assert_eq!((response.status, response.json()), (StatusCode::BAD_REQUEST, global_error(message)), "{path}");
    }
    let partial = json!([{"item_id": "p1", "properties": {"price": [10]}, "upsert": true}]);
    let response = call(&app, Method::POST, &format!("{BASE}/{id}/items/partial-update"), Some(&partial)).await;
    assert_eq!(response.json(), json!([failed(message)]));
    app.run_jobs().await;
    assert_eq!(jobs_count(&app).await, jobs, "no job for a refused write");
    assert_eq!(properties_of(&app, &id).await, [("p1".to_owned(), json!({"price": 10}))]);
}

async fn an_unknown_field_type_is_refused_and_creates_nothing() {
    let app = TestApp::new().await;
    let fields = json!([{"name": "price", "type": "decimal"}]);
    let created = call(&app, Method::POST, BASE, Some(&json!({"name": "Typed", "fields": fields}))).await;
    let message = "Invalid field type. The type of field 'price' should be one of: string, long text, number, \
                   boolean, date, datetime, list, url, json, not 'decimal'";
    assert_eq!((created.status, created.json()), (StatusCode::BAD_REQUEST, global_error(message)));
    assert_eq!(call(&app, Method::GET, BASE, None).await.json()["data"], json!([]));
    let id = catalog_with_fields(&app, json!([{"name": "price", "type": "number"}])).await;
    let renamed =
        call(&app, Method::PUT, &format!("{BASE}/{id}"), Some(&json!({"name": "Other", "fields": fields}))).await;
    assert_eq!((renamed.status, renamed.json()), (StatusCode::BAD_REQUEST, global_error(message)));
    let got = call(&app, Method::GET, &format!("{BASE}/{id}"), None).await.json();
    assert_eq!(
        (got["data"]["name"].clone(), got["data"]["fields"].clone()),
        (json!("Typed"), json!([{"name": "price", "type": "number", "searchable": false}]))
    );
}

async fn the_search_looks_only_in_searchable_fields() {
    let app = TestApp::new().await;
    let id = catalog_with_fields(
        &app,
        json!([{"name": "title", "searchable": true}, {"name": "colour", "searchable": false}]),
    )
    .await;
    let items = json!([
        {"item_id": "p1", "properties": {"title": "Red Shoe", "colour": "blue"}},
        {"item_id": "p2", "properties": {"title": "Blue Hat", "colour": "red"}},
        {"item_id": "red-box", "properties": {"title": "Box", "colour": "green"}},
    ]);
    assert_eq!(call(&app, Method::PUT, &format!("{BASE}/{id}/items"), Some(&items)).await.status, StatusCode::OK);
    app.run_jobs().await;
    let red = call(&app, Method::GET, &format!("{BASE}/{id}/items?query=red"), None).await.json();
    assert_eq!(ids_of(&red), ["p1", "red-box"], "the id and the searchable title, not the colour");
    let in_title = call(&app, Method::GET, &format!("{BASE}/{id}/items?query=red&field=title"), None).await.json();
    assert_eq!((ids_of(&in_title), in_title["matched"].clone()), (vec!["p1".to_owned()], json!(1)), "the field alone");
    for field in ["colour", "nope"] {
        let refused = call(&app, Method::GET, &format!("{BASE}/{id}/items?query=red&field={field}"), None).await;
        assert_eq!(
            (refused.status, refused.json()),
            (
                StatusCode::BAD_REQUEST,
                global_error(&format!("Invalid field. Field '{field}' is not a searchable field of the catalog"))
            )
        );
        assert!(refused.headers.contains_key("ratelimit-limit"), "a refused search counts against the quota");
    }
}

async fn fields_declared_by_braze_are_searchable_and_keep_braze_types_out() {
    let app = TestApp::new().await;
    let fields = json!([{"name": "id", "type": "string"}, {"name": "title", "type": "string"}, {"name": "opens", "type": "time"}]);
    let braze = TestRequest::new(Method::POST, "/catalogs")
        .header("authorization", &format!("Bearer {}", app.token))
        .json(&json!({"catalogs": [{"name": "shoes", "fields": fields}]}));
    assert_eq!(app.send(braze).await.status, StatusCode::CREATED);
    let items = json!([{"item_id": "p1", "properties": {"title": "Red Shoe", "opens": 5}}]);
    let response = call(&app, Method::PUT, &format!("{BASE}/shoes/items"), Some(&items)).await;
    assert_eq!(response.json(), json!([ok()]), "Braze's `time` is no Bloomreach type: any value");
    app.run_jobs().await;
    let found = call(&app, Method::GET, &format!("{BASE}/shoes/items?query=red&field=title"), None).await;
    assert_eq!((found.status, ids_of(&found.json())), (StatusCode::OK, vec!["p1".to_owned()]));
}

async fn unknown_routes_under_data_answer_in_the_envelope() {
    let app = app_with(&["a"]).await;
    for path in ["/data/v2/projects/acme/catalogs/products/nothing", "/data/v2/projects/acme/other", "/data/v3"] {
        let response = call(&app, Method::GET, path, None).await;
        assert_eq!(
            (response.status, response.json()),
            (StatusCode::NOT_FOUND, global_error(BLOOMREACH_NOT_FOUND)),
            "{path}"
        );
    }
    let response = call(&app, Method::PATCH, &format!("{BASE}/products/items/a"), None).await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.json(), global_error("The method is not allowed for the requested URL."));
}

catalog_api::on_both_backends!(
    seed_example_response_three_items_one_malformed,
    delete_method_and_bare_strings_are_accepted,
    a_missing_item_is_still_success,
    per_item_failures_keep_request_order,
    a_request_of_only_bad_items_answers_per_item_and_creates_nothing,
    invalid_json_is_400,
    a_payload_that_is_not_a_list_is_400,
    a_payload_over_10_mb_is_400,
    more_than_10000_items_is_400,
    an_unknown_catalog_is_the_documented_404,
    bad_credentials_are_401,
    a_key_of_another_project_is_401,
    a_key_without_the_permission_is_403,
    bulk_update_replaces_properties_and_creates_missing_items,
    partial_update_merges_and_upserts_per_item,
    update_endpoints_share_the_whole_request_errors,
    two_updates_and_three_partial_updates_exhaust_the_catalog_quota,
    create_and_list_catalogs,
    list_items_with_count_and_skip,
    an_unsupported_method_is_405_in_the_envelope,
    unstorable_inputs_fail_alone_and_the_rest_is_applied,
    a_repeated_key_anywhere_is_invalid_json,
    a_declared_oversize_body_is_refused_before_it_is_read,
    a_nul_in_a_path_is_not_found_never_a_500,
    single_item_endpoints_replace_update_and_delete,
    delete_all_items_empties_the_catalog,
    catalogs_are_read_renamed_and_deleted_by_id,
    items_are_checked_against_the_declared_fields,
    the_item_list_searches_and_orders,
    unknown_routes_under_data_answer_in_the_envelope,
    a_partial_update_applies_its_inputs_in_request_order,
    each_field_type_takes_its_values_and_refuses_others_alone,
    a_value_of_the_wrong_type_changes_nothing_on_every_write,
    an_unknown_field_type_is_refused_and_creates_nothing,
    the_search_looks_only_in_searchable_fields,
    fields_declared_by_braze_are_searchable_and_keep_braze_types_out,
);
