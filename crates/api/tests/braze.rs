//! The Braze facade over the real router: the seed's examples (seeds/003), every error row of
//! contracts/braze.md, the other item endpoints, the synchronous endpoints, auth, rate limits.

use axum::http::{Method, StatusCode};
use catalog_api::limits::RateLimitSetting;
use catalog_api::testing::{TestApp, TestRequest, TestResponse};
use catalog_store::Scope;
use serde_json::{json, Value};

async fn call(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> TestResponse {
    call_as(app, &app.token, method, path, body).await
}

async fn call_as(app: &TestApp, token: &str, method: Method, path: &str, body: Option<&Value>) -> TestResponse {
    let mut request = TestRequest::new(method, path).bearer(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    app.send(request).await
}

/// An app with a Braze catalog `restaurants` holding `ids` (each with a `Name` field). The catalog
/// declares no fields, so it takes any (the tests of declared fields make their own).
async fn app_with(ids: &[&str]) -> TestApp {
    app_with_limits(ids, &[]).await
}

async fn app_with_limits(ids: &[&str], limits: &[&str]) -> TestApp {
    let settings: Vec<RateLimitSetting> = limits.iter().map(|s| s.parse().unwrap_or_else(|e| panic!("{e}"))).collect();
    let app = TestApp::with_rate_limits(&settings).await;
    let created = call(
        &app,
        Method::POST,
        "/catalogs",
        Some(&json!({"catalogs": [{"name": "restaurants", "description": "My Restaurants"}]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    if !ids.is_empty() {
        let items: Vec<Value> = ids.iter().map(|id| json!({"id": id, "Name": format!("Restaurant {id}")})).collect();
        let put = call(&app, Method::PUT, "/catalogs/restaurants/items", Some(&json!({ "items": items }))).await;
        assert_eq!(put.status, StatusCode::ACCEPTED, "{}", put.text);
        app.run_jobs().await;
    }
    app
}

/// The Braze error envelope with exactly these entries.
fn envelope(errors: Value) -> Value {
    json!({"errors": errors, "message": "Invalid Request"})
}

fn error(id: &str, message: &str) -> Value {
    json!({"id": id, "message": message, "parameters": [], "parameter_values": []})
}

/// An error entry about the items `ids`, named as Braze names them.
fn item_error(id: &str, message: &str, ids: &[&str]) -> Value {
    json!({"id": id, "message": message, "parameters": ["id"], "parameter_values": ids})
}

fn error_ids(response: &TestResponse) -> Vec<String> {
    response.json()["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn assert_rate_headers(response: &TestResponse) {
    for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        let value =
            response.header(name).unwrap_or_else(|| panic!("{name} missing on {}: {}", response.status, response.text));
        assert!(value.parse::<u64>().is_ok(), "{name}: {value}");
    }
    let reset: u64 = response.header("x-ratelimit-reset").and_then(|v| v.parse().ok()).unwrap_or_default();
    // Epoch seconds, not a delta: later than 2020.
    assert!(reset > 1_577_836_800, "X-RateLimit-Reset is not epoch seconds: {reset}");
}

async fn jobs_count(app: &TestApp) -> usize {
    app.get("/v1/jobs").await.json()["data"].as_array().map_or(0, Vec::len)
}

async fn item(app: &TestApp, id: &str) -> TestResponse {
    call(app, Method::GET, &format!("/catalogs/restaurants/items/{id}"), None).await
}

// ---------------------------------------------------------------------------------------------
// Seed 003: the example request and both example responses

async fn seed_example_request_deletes_and_answers_202_success() {
    let app = app_with(&["restaurant1", "restaurant2", "restaurant3", "restaurant4"]).await;
    let body = json!({"items": [{"id": "restaurant1"}, {"id": "restaurant2"}, {"id": "restaurant3"}]});
    let response = call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    assert_eq!(response.json(), json!({"message": "success"}));
    assert_rate_headers(&response);
    app.run_jobs().await;
    for id in ["restaurant1", "restaurant2", "restaurant3"] {
        assert_eq!(item(&app, id).await.status, StatusCode::NOT_FOUND, "{id} should be deleted");
    }
    assert_eq!(item(&app, "restaurant4").await.status, StatusCode::OK);
}

async fn seed_example_error_response_items_missing_ids() {
    let app = app_with(&[]).await;
    let body = json!({"items": [{"id": "restaurant1"}, {"Name": "no id here"}]});
    let response = call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json(),
        envelope(json!([error("items-missing-ids", "There are 1 item(s) that do not have ids")]))
    );
    assert_rate_headers(&response);
    assert_eq!(jobs_count(&app).await, 0, "a refused request creates nothing");
}

async fn deleting_an_id_that_does_not_exist_is_not_an_error() {
    let app = app_with(&["a"]).await;
    let response = call(
        &app,
        Method::DELETE,
        "/catalogs/restaurants/items",
        Some(&json!({"items": [{"id": "ghost"}, {"id": "a"}]})),
    )
    .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    app.run_jobs().await;
    let jobs = app.get("/v1/jobs").await.json();
    assert_eq!(jobs["data"][0]["status"], "completed");
    assert_eq!(jobs["data"][0]["completed_count"], 2);
}

// ---------------------------------------------------------------------------------------------
// Error rows of the DELETE table

async fn catalog_not_found_is_404_with_parameters() {
    let app = app_with(&[]).await;
    let response = call(&app, Method::DELETE, "/catalogs/nope/items", Some(&json!({"items": [{"id": "a"}]}))).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(
        response.json(),
        envelope(
            json!([{"id": "catalog-not-found", "message": "Could not find catalog", "parameters": ["catalog_name"], "parameter_values": ["nope"]}])
        )
    );
    assert_rate_headers(&response);
}

async fn more_than_50_items_is_request_includes_too_many_items() {
    let app = app_with(&[]).await;
    let fifty: Vec<Value> = (0..50).map(|i| json!({"id": format!("r{i}")})).collect();
    let ok = call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&json!({ "items": fifty }))).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "50 items are allowed: {}", ok.text);
    let items: Vec<Value> = (0..51).map(|i| json!({"id": format!("r{i}")})).collect();
    let response = call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&json!({ "items": items }))).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json(),
        envelope(json!([error("request-includes-too-many-items", "The item limit per request is 50")]))
    );
}

async fn bad_characters_are_invalid_ids() {
    let app = app_with(&[]).await;
    let response = call(
        &app,
        Method::DELETE,
        "/catalogs/restaurants/items",
        Some(&json!({"items": [{"id": "ok"}, {"id": "not ok!"}]})),
    )
    .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json(),
        envelope(json!([item_error(
            "invalid-ids",
            "Item IDs can only include letters, numbers, hyphens, and underscores",
            &["not ok!"]
        )]))
    );
}

async fn ids_over_250_characters_are_ids_too_large() {
    let app = app_with(&[]).await;
    let long = "x".repeat(251);
    let response =
        call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&json!({"items": [{"id": long}]}))).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json(),
        envelope(json!([item_error("ids-too-large", "Item IDs can't be more than 250 characters", &[long.as_str()])]))
    );
    let ok =
        call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&json!({"items": [{"id": "x".repeat(250)}]})))
            .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "250 characters are allowed: {}", ok.text);
}

async fn repeated_ids_are_ids_not_unique() {
    let app = app_with(&[]).await;
    let response =
        call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&json!({"items": [{"id": "a"}, {"id": "a"}]})))
            .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json(),
        envelope(json!([item_error("ids-not-unique", "Item IDs must be unique in the request", &["a"])]))
    );
}

async fn non_string_ids_are_ids_not_strings() {
    let app = app_with(&[]).await;
    let response =
        call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&json!({"items": [{"id": 1}, {"id": null}]})))
            .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json(), envelope(json!([error("ids-not-strings", "Item IDs must be of type string")])));
}

async fn items_without_ids_are_counted() {
    let app = app_with(&[]).await;
    let response =
        call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&json!({"items": [{}, {"x": 1}, {"id": "a"}]})))
            .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json(),
        envelope(json!([error("items-missing-ids", "There are 2 item(s) that do not have ids")]))
    );
}

async fn a_body_that_is_not_json_or_not_an_array_of_objects_is_item_array_invalid() {
    let app = app_with(&[]).await;
    let expected = envelope(json!([error("item-array-invalid", "`items` must be an array of objects")]));
    let not_json = app
        .send(
            TestRequest::new(Method::DELETE, "/catalogs/restaurants/items")
                .bearer(&app.token)
                .raw_body("application/json", b"{not json".to_vec()),
        )
        .await;
    assert_eq!((not_json.status, not_json.json()), (StatusCode::BAD_REQUEST, expected.clone()));
    for body in [json!({"items": "a"}), json!({"items": ["a", "b"]}), json!({"nothing": []}), json!([{"id": "a"}])] {
        let response = call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&body)).await;
        assert_eq!((response.status, response.json()), (StatusCode::BAD_REQUEST, expected.clone()), "{body}");
        assert_rate_headers(&response);
    }
}

async fn every_distinct_error_is_listed_once() {
    let app = app_with(&[]).await;
    let body = json!({"items": [{"id": "a"}, {"id": "a"}, {"id": 7}, {"id": "b c"}, {}, {"id": "x".repeat(300)}]});
    let response = call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let mut ids = error_ids(&response);
    ids.sort();
    assert_eq!(ids, ["ids-not-strings", "ids-not-unique", "ids-too-large", "invalid-ids", "items-missing-ids"]);
    assert_eq!(jobs_count(&app).await, 0);
}

async fn a_non_json_content_type_is_refused_in_the_envelope() {
    let app = app_with(&[]).await;
    let response = app
        .send(
            TestRequest::new(Method::DELETE, "/catalogs/restaurants/items")
                .bearer(&app.token)
                .raw_body("text/plain", br#"{"items":[{"id":"a"}]}"#.to_vec()),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_ids(&response), ["invalid-content-type"]);
    assert_rate_headers(&response);
}

// ---------------------------------------------------------------------------------------------
// POST / PATCH / PUT and their extra error ids

async fn post_creates_and_replaces_an_existing_id() {
    let app = app_with(&["restaurant1"]).await;
    let body = json!({"items": [{"id": "restaurant1", "Cuisine": "Thai"}, {"id": "restaurant9", "Name": "Nine"}]});
    let response = call(&app, Method::POST, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!((response.status, response.json()), (StatusCode::ACCEPTED, json!({"message": "success"})));
    assert_rate_headers(&response);
    app.run_jobs().await;
    let nine = item(&app, "restaurant9").await;
    assert_eq!(nine.json(), json!({"items": [{"id": "restaurant9", "Name": "Nine"}], "message": "success"}));
    // The existing item is replaced: its `Name` is gone.
    assert_eq!(item(&app, "restaurant1").await.json()["items"][0], json!({"id": "restaurant1", "Cuisine": "Thai"}));
}

async fn patch_changes_given_fields_and_keeps_the_others() {
    let app = app_with(&["restaurant1"]).await;
    let body = json!({"items": [{"id": "restaurant1", "Rating": 5}, {"id": "missing", "Rating": 1}]});
    let response = call(&app, Method::PATCH, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!((response.status, response.json()), (StatusCode::ACCEPTED, json!({"message": "success"})));
    app.run_jobs().await;
    assert_eq!(
        item(&app, "restaurant1").await.json()["items"][0],
        json!({"id": "restaurant1", "Name": "Restaurant restaurant1", "Rating": 5})
    );
    // PATCH does not create.
    assert_eq!(item(&app, "missing").await.status, StatusCode::NOT_FOUND);
}

async fn put_replaces_items_and_creates_missing_ones() {
    let app = app_with(&["restaurant1"]).await;
    let body = json!({"items": [{"id": "restaurant1", "Rating": 2}, {"id": "restaurant2", "Name": "Two"}]});
    let response = call(&app, Method::PUT, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!((response.status, response.json()), (StatusCode::ACCEPTED, json!({"message": "success"})));
    app.run_jobs().await;
    assert_eq!(item(&app, "restaurant1").await.json()["items"][0], json!({"id": "restaurant1", "Rating": 2}));
    assert_eq!(item(&app, "restaurant2").await.json()["items"][0], json!({"id": "restaurant2", "Name": "Two"}));
}

async fn write_endpoints_share_the_id_rules_and_limit() {
    let app = app_with(&[]).await;
    let items: Vec<Value> = (0..51).map(|i| json!({"id": format!("r{i}")})).collect();
    for method in [Method::POST, Method::PATCH, Method::PUT] {
        let too_many =
            call(&app, method.clone(), "/catalogs/restaurants/items", Some(&json!({ "items": items }))).await;
        assert_eq!(
            (too_many.status, error_ids(&too_many)),
            (StatusCode::BAD_REQUEST, vec!["request-includes-too-many-items".to_owned()])
        );
        let bad =
            call(&app, method.clone(), "/catalogs/restaurants/items", Some(&json!({"items": [{"id": "a/b"}, {}]})))
                .await;
        assert_eq!(error_ids(&bad), ["invalid-ids", "items-missing-ids"], "{method}");
        let missing = call(&app, method.clone(), "/catalogs/nope/items", Some(&json!({"items": [{"id": "a"}]}))).await;
        assert_eq!(
            (missing.status, error_ids(&missing)),
            (StatusCode::NOT_FOUND, vec!["catalog-not-found".to_owned()])
        );
        let invalid = call(&app, method.clone(), "/catalogs/restaurants/items", Some(&json!({"items": 3}))).await;
        assert_eq!(error_ids(&invalid), ["item-array-invalid"]);
    }
    assert_eq!(jobs_count(&app).await, 0);
}

async fn field_names_outside_the_rule_are_invalid_fields() {
    let app = app_with(&[]).await;
    let response =
        call(&app, Method::POST, "/catalogs/restaurants/items", Some(&json!({"items": [{"id": "a", "bad name": 1}]})))
            .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_ids(&response), ["invalid-fields"]);
    assert_eq!(response.json()["message"], "Invalid Request");
}

async fn values_over_5000_characters_are_items_too_large() {
    let app = app_with(&[]).await;
    let ok = call(
        &app,
        Method::PUT,
        "/catalogs/restaurants/items",
        Some(&json!({"items": [{"id": "a", "Name": "v".repeat(5_000)}]})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.text);
    let body = json!({"items": [{"id": "a", "Nested": {"Deep": ["v".repeat(5_001)]}}]});
    let response = call(&app, Method::PATCH, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_ids(&response), ["items-too-large"]);
}

async fn keys_with_dot_or_dollar_are_invalid_keys_in_value_object() {
    let app = app_with(&[]).await;
    let body = json!({"items": [{"id": "a", "Info": {"a.b": 1}}, {"id": "b", "Info": {"$set": 1}}]});
    let response = call(&app, Method::PUT, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_ids(&response), ["invalid-keys-in-value-object"]);
}

async fn values_nested_over_50_levels_are_too_deep() {
    let app = app_with(&[]).await;
    let nest = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!({ "k": inner }));
    let ok =
        call(&app, Method::POST, "/catalogs/restaurants/items", Some(&json!({"items": [{"id": "a", "V": nest(50)}]})))
            .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.text);
    let response =
        call(&app, Method::POST, "/catalogs/restaurants/items", Some(&json!({"items": [{"id": "a", "V": nest(51)}]})))
            .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_ids(&response), ["too-deep-nesting-in-value-object"]);
}

async fn id_and_field_errors_are_reported_together() {
    let app = app_with(&[]).await;
    let body = json!({"items": [{"id": "a!", "bad key": "x"}, {"id": "b", "V": {"x.y": "v".repeat(5_001)}}]});
    let response = call(&app, Method::POST, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_ids(&response),
        ["invalid-ids", "invalid-fields", "invalid-keys-in-value-object", "items-too-large"]
    );
}

// ---------------------------------------------------------------------------------------------
// Synchronous endpoints

async fn create_catalog_answers_201_with_the_catalog() {
    let app = TestApp::new().await;
    let body = json!({"catalogs": [{"name": "restaurants", "description": "My Restaurants", "fields": [{"name": "id", "type": "string"}, {"name": "Rating", "type": "number"}]}]});
    let response = call(&app, Method::POST, "/catalogs", Some(&body)).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    assert_rate_headers(&response);
    let json = response.json();
    assert_eq!(json["message"], "success");
    let catalog = &json["catalogs"][0];
    assert_eq!(catalog["name"], "restaurants");
    assert_eq!(catalog["description"], "My Restaurants");
    assert_eq!(catalog["fields"], json!([{"name": "id", "type": "string"}, {"name": "Rating", "type": "number"}]));
    assert_eq!(catalog["num_items"], 0);
    assert!(catalog["updated_at"].as_str().is_some_and(|t| t.ends_with("+00:00")), "{catalog}");
}

async fn create_catalog_errors() {
    let app = app_with(&[]).await;
    let again = call(&app, Method::POST, "/catalogs", Some(&json!({"catalogs": [{"name": "restaurants"}]}))).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json(),
        envelope(json!([error("catalog-name-already-exists", "A catalog with that name already exists")]))
    );
    let bad = call(&app, Method::POST, "/catalogs", Some(&json!({"catalogs": [{"name": "has space"}]}))).await;
    assert_eq!((bad.status, error_ids(&bad)), (StatusCode::BAD_REQUEST, vec!["invalid_catalog_name".to_owned()]));
    let long = call(&app, Method::POST, "/catalogs", Some(&json!({"catalogs": [{"name": "n".repeat(251)}]}))).await;
    assert_eq!((long.status, error_ids(&long)), (StatusCode::BAD_REQUEST, vec!["catalog-name-too-large".to_owned()]));
    let two = call(&app, Method::POST, "/catalogs", Some(&json!({"catalogs": [{"name": "a"}, {"name": "b"}]}))).await;
    assert_eq!((two.status, error_ids(&two)), (StatusCode::BAD_REQUEST, vec!["catalog-array-invalid".to_owned()]));
}

async fn list_catalogs_shows_item_counts() {
    let app = app_with(&["a", "b"]).await;
    let response = call(&app, Method::GET, "/catalogs", None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_rate_headers(&response);
    let json = response.json();
    assert_eq!(json["message"], "success");
    assert_eq!(json["catalogs"][0]["name"], "restaurants");
    assert_eq!(json["catalogs"][0]["num_items"], 2);
    assert_eq!(json["catalogs"][0]["description"], "My Restaurants");
}

async fn get_item_and_item_not_found() {
    let app = app_with(&["restaurant1"]).await;
    let found = item(&app, "restaurant1").await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(
        found.json(),
        json!({"items": [{"id": "restaurant1", "Name": "Restaurant restaurant1"}], "message": "success"})
    );
    assert_rate_headers(&found);
    let missing = item(&app, "ghost").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json(),
        envelope(
            json!([{"id": "item-not-found", "message": "Could not find item", "parameters": ["item_id"], "parameter_values": ["ghost"]}])
        )
    );
    let no_catalog = call(&app, Method::GET, "/catalogs/nope/items/a", None).await;
    assert_eq!(
        (no_catalog.status, error_ids(&no_catalog)),
        (StatusCode::NOT_FOUND, vec!["catalog-not-found".to_owned()])
    );
}

async fn list_items_pages_with_a_link_header() {
    let ids: Vec<String> = (0..55).map(|i| format!("r{i:02}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let app = app_with(&[]).await;
    for chunk in refs.chunks(50) {
        let items: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
        let put = call(&app, Method::PUT, "/catalogs/restaurants/items", Some(&json!({ "items": items }))).await;
        assert_eq!(put.status, StatusCode::ACCEPTED);
    }
    app.run_jobs().await;
    let first = call(&app, Method::GET, "/catalogs/restaurants/items", None).await;
    assert_eq!(first.json()["items"].as_array().map(Vec::len), Some(50));
    let link = first.header("link").unwrap_or_default().to_owned();
    let next = link.trim_start_matches('<').split('>').next().unwrap_or_default().to_owned();
    assert!(link.ends_with("rel=\"next\""), "{link}");
    let second = call(&app, Method::GET, &next, None).await;
    assert_eq!(second.json()["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(links(&second), [("prev".to_owned(), "/catalogs/restaurants/items".to_owned())], "no next page");
}

// ---------------------------------------------------------------------------------------------
// Auth, tenancy and rate limits

async fn missing_or_unknown_key_is_401_with_rate_headers() {
    let app = app_with(&[]).await;
    let body = json!({"items": [{"id": "a"}]});
    let none = app.send(TestRequest::new(Method::DELETE, "/catalogs/restaurants/items").json(&body)).await;
    assert_eq!((none.status, error_ids(&none)), (StatusCode::UNAUTHORIZED, vec!["invalid-api-key".to_owned()]));
    assert_rate_headers(&none);
    let unknown = call_as(&app, "not-a-key", Method::GET, "/catalogs", None).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.json()["message"], "Invalid Request");
    assert_rate_headers(&unknown);
}

async fn a_key_without_the_permission_is_403() {
    let app = app_with(&["a"]).await;
    let reader = app.token_for("acme", &[Scope::CatalogsRead]).await;
    let writer = app.token_for("acme", &[Scope::CatalogsWrite]).await;
    let body = json!({"items": [{"id": "a"}]});
    for method in [Method::DELETE, Method::POST, Method::PATCH, Method::PUT] {
        let response = call_as(&app, &reader, method, "/catalogs/restaurants/items", Some(&body)).await;
        assert_eq!(
            (response.status, error_ids(&response)),
            (StatusCode::FORBIDDEN, vec!["insufficient-permissions".to_owned()])
        );
        assert_rate_headers(&response);
    }
    let create = call_as(&app, &reader, Method::POST, "/catalogs", Some(&json!({"catalogs": [{"name": "x"}]}))).await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call_as(&app, &writer, Method::GET, "/catalogs/restaurants/items/a", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call_as(&app, &writer, Method::GET, "/catalogs", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(call_as(&app, &reader, Method::GET, "/catalogs/restaurants/items/a", None).await.status, StatusCode::OK);
    assert_eq!(jobs_count(&app).await, 1, "only the setup's job");
}

async fn another_projects_catalog_is_not_found() {
    let app = app_with(&["a"]).await;
    let other = app.token_for("other", Scope::ALL).await;
    let response =
        call_as(&app, &other, Method::DELETE, "/catalogs/restaurants/items", Some(&json!({"items": [{"id": "a"}]})))
            .await;
    assert_eq!((response.status, error_ids(&response)), (StatusCode::NOT_FOUND, vec!["catalog-not-found".to_owned()]));
    assert_eq!(
        call_as(&app, &other, Method::GET, "/catalogs/restaurants/items/a", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(call_as(&app, &other, Method::GET, "/catalogs", None).await.json()["catalogs"], json!([]));
}

async fn the_four_async_endpoints_share_one_quota_and_429_has_retry_after() {
    // The setup's catalog creation uses the synchronous quota, so the async one starts full.
    let app = app_with_limits(&[], &["braze-async=3/1m"]).await;
    let body = json!({"items": [{"id": "a"}]});
    let mut remaining = Vec::new();
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let response = call(&app, method, "/catalogs/restaurants/items", Some(&body)).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
        assert_eq!(response.header("x-ratelimit-limit"), Some("3"));
        remaining.push(response.header("x-ratelimit-remaining").unwrap_or_default().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let limited = call(&app, Method::POST, "/catalogs/restaurants/items", Some(&body)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_ids(&limited), ["rate-limit-exceeded"]);
    assert_rate_headers(&limited);
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert!(limited.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1));
    assert_eq!(jobs_count(&app).await, 3, "the limited request created nothing");
    // The synchronous endpoints have their own quota.
    assert_eq!(call(&app, Method::GET, "/catalogs", None).await.status, StatusCode::OK);
}

async fn synchronous_endpoints_have_their_own_quota() {
    let app = app_with_limits(&[], &["braze-sync=2/1m"]).await;
    // The setup's POST /catalogs took one.
    assert_eq!(call(&app, Method::GET, "/catalogs", None).await.status, StatusCode::OK);
    let limited = call(&app, Method::GET, "/catalogs", None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    let body = json!({"items": [{"id": "a"}]});
    assert_eq!(
        call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&body)).await.status,
        StatusCode::ACCEPTED
    );
    // The synchronous item endpoints and the field endpoints are groups of their own.
    assert_eq!(call(&app, Method::GET, "/catalogs/restaurants/items/a", None).await.status, StatusCode::NOT_FOUND);
    let fields = json!({"fields": [{"name": "Name", "type": "string"}]});
    assert_eq!(
        call(&app, Method::POST, "/catalogs/restaurants/fields", Some(&fields)).await.status,
        StatusCode::ACCEPTED
    );
}

async fn the_synchronous_item_endpoints_share_one_quota() {
    let app = app_with_limits(&["a"], &["braze-sync-items=3/1m"]).await;
    let one = json!({"items": [{"Name": "A"}]});
    assert_eq!(call(&app, Method::GET, "/catalogs/restaurants/items/a", None).await.status, StatusCode::OK);
    assert_eq!(call(&app, Method::PUT, "/catalogs/restaurants/items/a", Some(&one)).await.status, StatusCode::OK);
    let list = call(&app, Method::GET, "/catalogs/restaurants/items", None).await;
    assert_eq!((list.status, list.header("x-ratelimit-remaining")), (StatusCode::OK, Some("0")));
    let limited = call(&app, Method::DELETE, "/catalogs/restaurants/items/a", None).await;
    assert_eq!(
        (limited.status, error_ids(&limited)),
        (StatusCode::TOO_MANY_REQUESTS, vec!["rate-limit-exceeded".to_owned()])
    );
    // Catalog management and the asynchronous endpoints are not touched.
    assert_eq!(call(&app, Method::GET, "/catalogs", None).await.status, StatusCode::OK);
    let bulk = json!({"items": [{"id": "a"}]});
    assert_eq!(
        call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&bulk)).await.status,
        StatusCode::ACCEPTED
    );
}

async fn an_unsupported_method_is_405_in_the_envelope_with_rate_headers() {
    let app = app_with(&[]).await;
    let response = call(&app, Method::DELETE, "/catalogs", None).await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_ids(&response), ["method-not-allowed"]);
    assert_rate_headers(&response);
}

// ---------------------------------------------------------------------------------------------
// What no backend can store (catalog-domain's `storable`): Braze refuses the request, naming
// each problem by its error id, and creates nothing

async fn unstorable_items_are_refused_with_their_error_ids() {
    let app = app_with(&["keep"]).await;
    let wide: serde_json::Map<String, Value> = (0..60).map(|i| (format!("f{i}"), json!("v".repeat(5_000)))).collect();
    let mut too_big = wide.clone();
    too_big.insert("id".into(), json!("too-big"));
    let cases = [
        (json!({"id": "nul\u{0}id"}), "invalid-ids"),
        (json!({"id": "x".repeat(251)}), "ids-too-large"),
        (json!({"id": "nul-name", "Na\u{0}me": "x"}), "invalid-fields"),
        (json!({"id": "nul-value", "Name": "x\u{0}"}), "invalid-fields"),
        (json!({"id": "nul-nested", "Tags": [{"a": ["b", "c\u{0}"]}]}), "invalid-fields"),
        (json!({"id": "nul-key", "Tags": {"k\u{0}": 1}}), "invalid-fields"),
        (Value::Object(too_big), "items-too-large"),
    ];
    for (bad, error_id) in cases {
        for method in [Method::POST, Method::PUT, Method::PATCH] {
            let body = json!({"items": [{"id": "fine", "Name": "Fine"}, bad.clone()]});
            let response = call(&app, method.clone(), "/catalogs/restaurants/items", Some(&body)).await;
            assert_eq!(response.status, StatusCode::BAD_REQUEST, "{method} {error_id}: {}", response.text);
            assert_eq!(error_ids(&response), [error_id], "{method}: {}", response.text);
        }
    }
    let delete = json!({"items": [{"id": "keep"}, {"id": "nul\u{0}"}]});
    let response = call(&app, Method::DELETE, "/catalogs/restaurants/items", Some(&delete)).await;
    assert_eq!((response.status, error_ids(&response)), (StatusCode::BAD_REQUEST, vec!["invalid-ids".to_owned()]));
    // Nothing of a refused request was queued; a clean one is applied.
    assert_eq!(jobs_count(&app).await, 1, "only the seeding job");
    let clean = json!({"items": [{"id": "fine", "Name": "Fine", "Tags": [{"a": ["b"]}]}]});
    let response = call(&app, Method::PUT, "/catalogs/restaurants/items", Some(&clean)).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    app.run_jobs().await;
    assert_eq!(item(&app, "fine").await.json()["items"][0]["Tags"], json!([{"a": ["b"]}]));
    assert_eq!(item(&app, "keep").await.status, StatusCode::OK);
}

async fn a_nul_in_a_catalog_description_is_invalid_description() {
    let app = app_with(&[]).await;
    let body = json!({"catalogs": [{"name": "bars", "description": "B\u{0}"}]});
    let response = call(&app, Method::POST, "/catalogs", Some(&body)).await;
    assert_eq!(
        (response.status, error_ids(&response)),
        (StatusCode::BAD_REQUEST, vec!["invalid-description".to_owned()])
    );
    let catalogs = call(&app, Method::GET, "/catalogs", None).await.json();
    assert_eq!(catalogs["catalogs"].as_array().map(Vec::len), Some(1), "{catalogs}");
}

async fn a_repeated_key_anywhere_is_item_array_invalid() {
    let app = app_with(&[]).await;
    for body in [
        r#"{"items": [{"id": "a"}], "items": [{"id": "b"}]}"#,
        r#"{"items": [{"id": "a", "id": "b"}]}"#,
        r#"{"items": [{"id": "a", "Name": "x", "Name": "y"}]}"#,
        r#"{"items": [{"id": "a", "Tags": [{"k": 1, "k": 2}]}]}"#,
    ] {
        let request = TestRequest::new(Method::PUT, "/catalogs/restaurants/items")
            .bearer(&app.token)
            .raw_body("application/json", body.into());
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {}", response.text);
        assert_eq!(error_ids(&response), ["item-array-invalid"], "{body}");
    }
    assert_eq!(jobs_count(&app).await, 0);
}

async fn a_declared_oversize_body_is_413_before_it_is_read() {
    let app = app_with(&[]).await;
    let request = TestRequest::new(Method::PUT, "/catalogs/restaurants/items")
        .bearer(&app.token)
        .unreadable_body("application/json", 10 * 1024 * 1024 + 1);
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", response.text);
    assert_eq!(error_ids(&response), ["request-too-large"]);
}

async fn a_nul_in_a_path_is_not_found_never_a_500() {
    let app = app_with(&["a"]).await;
    let missing_item = item(&app, "a%00").await;
    assert_eq!(
        (missing_item.status, error_ids(&missing_item)),
        (StatusCode::NOT_FOUND, vec!["item-not-found".to_owned()])
    );
    let body = json!({"items": [{"id": "a"}]});
    let missing_catalog = call(&app, Method::DELETE, "/catalogs/a%00b/items", Some(&body)).await;
    assert_eq!(
        (missing_catalog.status, error_ids(&missing_catalog)),
        (StatusCode::NOT_FOUND, vec!["catalog-not-found".to_owned()])
    );
    assert_eq!(call(&app, Method::GET, "/catalogs/a%00b/items", None).await.status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------
// Issue 14: single-item endpoints, trailing slashes, per-item parameters, unknown routes,
// declared fields, catalog and field management, Link rel="prev"

async fn single_item_endpoints_write_one_item_each() {
    let app = app_with(&["restaurant1"]).await;
    let path = "/catalogs/restaurants/items/restaurant2";
    let created = call(&app, Method::POST, path, Some(&json!({"items": [{"Name": "Two", "Rating": 4}]}))).await;
    assert_eq!((created.status, created.json()), (StatusCode::CREATED, json!({"message": "success"})));
    assert_rate_headers(&created);
    app.run_jobs().await;
    assert_eq!(
        item(&app, "restaurant2").await.json()["items"][0],
        json!({"id": "restaurant2", "Name": "Two", "Rating": 4})
    );

    let again = call(&app, Method::POST, path, Some(&json!({"items": [{"Name": "Again"}]}))).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json(),
        envelope(json!([item_error(
            "item-already-exists",
            "The item already exists in the catalog",
            &["restaurant2"]
        )]))
    );

    let edited = call(&app, Method::PATCH, path, Some(&json!({"items": [{"Rating": 5}]}))).await;
    assert_eq!((edited.status, edited.json()), (StatusCode::OK, json!({"message": "success"})));
    app.run_jobs().await;
    assert_eq!(
        item(&app, "restaurant2").await.json()["items"][0],
        json!({"id": "restaurant2", "Name": "Two", "Rating": 5})
    );

    let replaced = call(&app, Method::PUT, path, Some(&json!({"items": [{"City": "Paris"}]}))).await;
    assert_eq!((replaced.status, replaced.json()), (StatusCode::OK, json!({"message": "success"})));
    let created_by_put =
        call(&app, Method::PUT, "/catalogs/restaurants/items/restaurant3", Some(&json!({"items": [{"City": "Rome"}]})))
            .await;
    assert_eq!(created_by_put.status, StatusCode::OK);
    app.run_jobs().await;
    assert_eq!(item(&app, "restaurant2").await.json()["items"][0], json!({"id": "restaurant2", "City": "Paris"}));
    assert_eq!(item(&app, "restaurant3").await.json()["items"][0], json!({"id": "restaurant3", "City": "Rome"}));

    let deleted = call(&app, Method::DELETE, path, None).await;
    assert_eq!((deleted.status, deleted.json()), (StatusCode::ACCEPTED, json!({"message": "success"})));
    app.run_jobs().await;
    assert_eq!(item(&app, "restaurant2").await.status, StatusCode::NOT_FOUND);
    assert_eq!(item(&app, "restaurant1").await.status, StatusCode::OK, "the others are untouched");
}

/// The single-item POST checks that the item is new when it answers, and its job checks again
/// when it applies: an item created in between (here by a PUT accepted earlier and not yet
/// applied) is kept, not replaced by the create.
async fn a_single_item_create_never_replaces_an_item_created_before_its_job_applies() {
    let app = app_with(&["restaurant1"]).await;
    let path = "/catalogs/restaurants/items/restaurant9";
    let put = call(&app, Method::PUT, path, Some(&json!({"items": [{"City": "Rome"}]}))).await;
    assert_eq!(put.status, StatusCode::OK);
    let created = call(&app, Method::POST, path, Some(&json!({"items": [{"Name": "Nine"}]}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "not stored yet when the request is answered");
    app.run_jobs().await;
    assert_eq!(item(&app, "restaurant9").await.json()["items"][0], json!({"id": "restaurant9", "City": "Rome"}));
}

async fn single_item_endpoints_refuse_as_braze_does() {
    let app = app_with(&["a"]).await;
    let jobs_before = jobs_count(&app).await;
    let not_found = json!([{"id": "item-not-found", "message": "Could not find item", "parameters": ["item_id"], "parameter_values": ["ghost"]}]);
    for method in [Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"items": [{"Name": "x"}]}));
        let response = call(&app, method.clone(), "/catalogs/restaurants/items/ghost", body.as_ref()).await;
        assert_eq!(
            (response.status, response.json()),
            (StatusCode::NOT_FOUND, envelope(not_found.clone())),
            "{method}"
        );
    }
    for method in [Method::POST, Method::PUT, Method::PATCH] {
        let with_id =
            call(&app, method.clone(), "/catalogs/restaurants/items/a", Some(&json!({"items": [{"id": "a"}]}))).await;
        assert_eq!((with_id.status, error_ids(&with_id)), (StatusCode::BAD_REQUEST, vec!["id-in-body".to_owned()]));
        let two = call(&app, method.clone(), "/catalogs/restaurants/items/a", Some(&json!({"items": [{}, {}]}))).await;
        assert_eq!(error_ids(&two), ["request-includes-too-many-items"], "{method}");
        let none = call(&app, method.clone(), "/catalogs/restaurants/items/a", Some(&json!({"items": []}))).await;
        assert_eq!(error_ids(&none), ["item-array-invalid"], "{method}");
        let bad_id =
            call(&app, method.clone(), "/catalogs/restaurants/items/b%20c", Some(&json!({"items": [{}]}))).await;
        assert_eq!(
            bad_id.json(),
            envelope(json!([item_error(
                "invalid-ids",
                "Item IDs can only include letters, numbers, hyphens, and underscores",
                &["b c"]
            )])),
            "{method}"
        );
        let no_catalog = call(&app, method.clone(), "/catalogs/nope/items/a", Some(&json!({"items": [{}]}))).await;
        assert_eq!(error_ids(&no_catalog), ["catalog-not-found"]);
    }
    assert_eq!(jobs_count(&app).await, jobs_before, "a refused request creates nothing");
}

async fn bulk_endpoints_answer_with_a_trailing_slash() {
    let app = app_with(&[]).await;
    let put = call(
        &app,
        Method::PUT,
        "/catalogs/restaurants/items/",
        Some(&json!({"items": [{"id": "a", "Name": "A"}, {"id": "b"}]})),
    )
    .await;
    assert_eq!((put.status, put.json()), (StatusCode::ACCEPTED, json!({"message": "success"})));
    app.run_jobs().await;
    assert_eq!(item(&app, "a").await.status, StatusCode::OK);
    let delete =
        call(&app, Method::DELETE, "/catalogs/restaurants/items/", Some(&json!({"items": [{"id": "a"}]}))).await;
    assert_eq!(delete.status, StatusCode::ACCEPTED);
    app.run_jobs().await;
    assert_eq!(item(&app, "a").await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, Method::GET, "/catalogs/", None).await.status, StatusCode::OK);
    assert_eq!(call(&app, Method::GET, "/catalogs/restaurants/items/b/", None).await.status, StatusCode::OK);
}

async fn per_item_errors_name_every_failing_item() {
    let app = app_with(&[]).await;
    let body = json!({"items": [
        {"id": "good", "Name": "fine"},
        {"id": "bad-1", "Info": {"a.b": 1}},
        {"id": "bad-2", "Info": {"$x": 1}},
        {"id": "long", "Name": "v".repeat(5_001)},
    ]});
    let response = call(&app, Method::PUT, "/catalogs/restaurants/items/", Some(&body)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json(),
        envelope(json!([
            item_error(
                "invalid-keys-in-value-object",
                "Keys in item object values can't include `.` or `$`",
                &["bad-1", "bad-2"]
            ),
            item_error("items-too-large", "Item values can't be more than 5000 characters", &["long"]),
        ]))
    );
    assert_eq!(jobs_count(&app).await, 0);
}

async fn unknown_routes_and_methods_under_catalogs_answer_in_the_envelope() {
    let app = app_with(&["a"]).await;
    for path in
        ["/catalogs/restaurants/nothing", "/catalogs/restaurants/items/a/b", "/catalogs/restaurants/selections/x/y/z"]
    {
        let response = call(&app, Method::GET, path, None).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.json(), envelope(json!([error("not-found", "This endpoint does not exist")])), "{path}");
        assert_rate_headers(&response);
    }
    for (method, path) in [
        (Method::PATCH, "/catalogs"),
        (Method::GET, "/catalogs/restaurants"),
        (Method::PUT, "/catalogs/restaurants/fields"),
    ] {
        let response = call(&app, method.clone(), path, None).await;
        assert_eq!(
            (response.status, error_ids(&response)),
            (StatusCode::METHOD_NOT_ALLOWED, vec!["method-not-allowed".to_owned()]),
            "{method} {path}"
        );
    }
}

/// An app with a catalog `menu` declaring typed fields.
async fn app_with_declared_fields() -> TestApp {
    let app = TestApp::new().await;
    let fields = json!([
        {"name": "id", "type": "string"},
        {"name": "Name", "type": "string"},
        {"name": "Rating", "type": "number"},
        {"name": "Loyalty_Program", "type": "boolean"},
        {"name": "Open_Time", "type": "time"},
        {"name": "Top_Dishes", "type": "array"},
    ]);
    let created =
        call(&app, Method::POST, "/catalogs", Some(&json!({"catalogs": [{"name": "menu", "fields": fields}]}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json()["catalogs"][0]["fields"], fields);
    app
}

async fn catalogs_keep_their_declared_fields_and_items_are_checked_against_them() {
    let app = app_with_declared_fields().await;
    let listed = call(&app, Method::GET, "/catalogs", None).await.json();
    assert_eq!(listed["catalogs"][0]["fields"].as_array().map(Vec::len), Some(6));
    assert_eq!(listed["catalogs"][0]["fields"][4], json!({"name": "Open_Time", "type": "time"}));

    let good = json!({"id": "d1", "Name": "Dish", "Rating": 4.5, "Loyalty_Program": true, "Open_Time": "2021-09-03T09:03:19.967+00:00", "Top_Dishes": ["a"]});
    let body = json!({"items": [
        good,
        {"id": "d2", "Colour": "red"},
        {"id": "d3", "Rating": "five"},
        {"id": "d4", "Open_Time": "tomorrow", "Loyalty_Program": "yes"},
        {"id": "d5", "Name": null},
    ]});
    let response = call(&app, Method::POST, "/catalogs/menu/items", Some(&body)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json(),
        envelope(json!([
            item_error("invalid-fields", "Some of the fields given do not exist in the catalog", &["d2"]),
            item_error("unable-to-coerce-value", "Item types can't be converted", &["d3", "d4"]),
        ]))
    );
    let single = call(&app, Method::PUT, "/catalogs/menu/items/d9", Some(&json!({"items": [{"Rating": true}]}))).await;
    assert_eq!(
        single.json(),
        envelope(json!([item_error("unable-to-coerce-value", "Item types can't be converted", &["d9"])]))
    );
    let accepted =
        call(&app, Method::POST, "/catalogs/menu/items", Some(&json!({"items": [good, {"id": "d5", "Name": null}]})))
            .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    app.run_jobs().await;
    assert_eq!(item_of(&app, "menu", "d1").await.json()["items"][0], good);
}

async fn item_of(app: &TestApp, catalog: &str, id: &str) -> TestResponse {
    call(app, Method::GET, &format!("/catalogs/{catalog}/items/{id}"), None).await
}

async fn field_declarations_are_checked_when_a_catalog_is_created() {
    let app = TestApp::new().await;
    let cases = [
        (json!([{"name": "Name", "type": "string"}]), "id-not-first-column"),
        (json!([{"name": "id", "type": "string"}, {"name": "Rating", "type": "decimal"}]), "invalid-field-types"),
        (json!([{"name": "id", "type": "string"}, {"name": "a.b", "type": "string"}]), "invalid-field-names"),
        (
            json!([{"name": "id", "type": "string"}, {"name": "A", "type": "string"}, {"name": "A", "type": "number"}]),
            "field-names-not-unique",
        ),
        (json!([{"name": "id"}]), "invalid-fields"),
    ];
    for (fields, error_id) in cases {
        let response =
            call(&app, Method::POST, "/catalogs", Some(&json!({"catalogs": [{"name": "c", "fields": fields}]}))).await;
        assert_eq!(
            (response.status, error_ids(&response)),
            (StatusCode::BAD_REQUEST, vec![error_id.to_owned()]),
            "{fields}"
        );
    }
    assert_eq!(call(&app, Method::GET, "/catalogs", None).await.json()["catalogs"], json!([]), "nothing was created");
}

async fn fields_are_added_and_removed() {
    let app = app_with_declared_fields().await;
    let colour = json!({"items": [{"id": "d1", "Colour": "red"}]});
    assert_eq!(error_ids(&call(&app, Method::PUT, "/catalogs/menu/items", Some(&colour)).await), ["invalid-fields"]);
    let add = json!({"fields": [{"name": "Colour", "type": "string"}, {"name": "Stock", "type": "number"}]});
    let added = call(&app, Method::POST, "/catalogs/menu/fields", Some(&add)).await;
    assert_eq!((added.status, added.json()), (StatusCode::ACCEPTED, json!({"message": "success"})));
    assert_rate_headers(&added);
    assert_eq!(call(&app, Method::PUT, "/catalogs/menu/items", Some(&colour)).await.status, StatusCode::ACCEPTED);
    let fields = call(&app, Method::GET, "/catalogs", None).await.json()["catalogs"][0]["fields"].clone();
    assert_eq!(fields[6], json!({"name": "Colour", "type": "string"}));
    assert_eq!(fields[7], json!({"name": "Stock", "type": "number"}));

    let again = call(
        &app,
        Method::POST,
        "/catalogs/menu/fields/",
        Some(&json!({"fields": [{"name": "Colour", "type": "string"}]})),
    )
    .await;
    assert_eq!(
        again.json(),
        envelope(
            json!([{"id": "field-names-not-unique", "message": "Some of the fields already exist", "parameters": ["name"], "parameter_values": ["Colour"]}])
        )
    );
    let bad_type =
        call(&app, Method::POST, "/catalogs/menu/fields", Some(&json!({"fields": [{"name": "X", "type": "float"}]})))
            .await;
    assert_eq!(error_ids(&bad_type), ["invalid-field-types"]);
    let missing = call(&app, Method::POST, "/catalogs/nope/fields", Some(&add)).await;
    assert_eq!((missing.status, error_ids(&missing)), (StatusCode::NOT_FOUND, vec!["catalog-not-found".to_owned()]));

    let removed = call(&app, Method::DELETE, "/catalogs/menu/fields/Colour", None).await;
    assert_eq!((removed.status, removed.json()), (StatusCode::ACCEPTED, json!({"message": "success"})));
    assert_eq!(error_ids(&call(&app, Method::PUT, "/catalogs/menu/items", Some(&colour)).await), ["invalid-fields"]);
    let gone = call(&app, Method::DELETE, "/catalogs/menu/fields/Colour/", None).await;
    assert_eq!((gone.status, error_ids(&gone)), (StatusCode::NOT_FOUND, vec!["field-not-found".to_owned()]));
    let id = call(&app, Method::DELETE, "/catalogs/menu/fields/id", None).await;
    assert_eq!(id.status, StatusCode::BAD_REQUEST);

    // A catalog that declared nothing takes any field until it declares some.
    let open = app_with(&[]).await;
    assert_eq!(
        call(&open, Method::PUT, "/catalogs/restaurants/items", Some(&colour)).await.status,
        StatusCode::ACCEPTED
    );
    let declare = json!({"fields": [{"name": "Name", "type": "string"}]});
    assert_eq!(
        call(&open, Method::POST, "/catalogs/restaurants/fields", Some(&declare)).await.status,
        StatusCode::ACCEPTED
    );
    let listed = call(&open, Method::GET, "/catalogs", None).await.json();
    assert_eq!(
        listed["catalogs"][0]["fields"],
        json!([{"name": "id", "type": "string"}, {"name": "Name", "type": "string"}])
    );
    assert_eq!(
        error_ids(&call(&open, Method::PUT, "/catalogs/restaurants/items", Some(&colour)).await),
        ["invalid-fields"]
    );
}

async fn delete_catalog_removes_it_and_frees_its_name() {
    let app = app_with(&["a", "b"]).await;
    let deleted = call(&app, Method::DELETE, "/catalogs/restaurants", None).await;
    assert_eq!((deleted.status, deleted.json()), (StatusCode::OK, json!({"message": "success"})));
    assert_rate_headers(&deleted);
    assert_eq!(error_ids(&item(&app, "a").await), ["catalog-not-found"]);
    assert_eq!(call(&app, Method::GET, "/catalogs", None).await.json()["catalogs"], json!([]));
    let again = call(&app, Method::DELETE, "/catalogs/restaurants/", None).await;
    assert_eq!(
        (again.status, again.json()),
        (
            StatusCode::NOT_FOUND,
            envelope(
                json!([{"id": "catalog-not-found", "message": "Could not find catalog", "parameters": ["catalog_name"], "parameter_values": ["restaurants"]}])
            )
        )
    );
    app.run_jobs().await;
    let created = call(&app, Method::POST, "/catalogs", Some(&json!({"catalogs": [{"name": "restaurants"}]}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["catalogs"][0]["num_items"], 0);
}

/// The target and rel of each entry of a `Link` header.
fn links(response: &TestResponse) -> Vec<(String, String)> {
    response
        .header("link")
        .unwrap_or_default()
        .split(", ")
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let target = entry.trim_start_matches('<').split('>').next().unwrap_or_default().to_owned();
            let rel = entry.split("rel=\"").nth(1).unwrap_or_default().trim_end_matches('"').to_owned();
            (rel, target)
        })
        .collect()
}

fn page_ids(response: &TestResponse) -> Vec<String> {
    response.json()["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn the_item_list_links_to_the_previous_page_too() {
    let ids: Vec<String> = (0..120).map(|i| format!("r{i:03}")).collect();
    let app = app_with(&[]).await;
    for chunk in ids.chunks(50) {
        let items: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
        let put = call(&app, Method::PUT, "/catalogs/restaurants/items", Some(&json!({ "items": items }))).await;
        assert_eq!(put.status, StatusCode::ACCEPTED);
    }
    app.run_jobs().await;
    let first = call(&app, Method::GET, "/catalogs/restaurants/items", None).await;
    let first_links = links(&first);
    assert_eq!(first_links.iter().map(|(rel, _)| rel.as_str()).collect::<Vec<_>>(), ["next"]);
    let second = call(&app, Method::GET, &first_links[0].1, None).await;
    assert_eq!(page_ids(&second), ids[50..100]);
    let second_links = links(&second);
    assert_eq!(second_links.iter().map(|(rel, _)| rel.as_str()).collect::<Vec<_>>(), ["prev", "next"]);
    assert_eq!(second_links[0].1, "/catalogs/restaurants/items", "the page before the second is the first");
    let third = call(&app, Method::GET, &second_links[1].1, None).await;
    assert_eq!(page_ids(&third), ids[100..]);
    let third_links = links(&third);
    assert_eq!(third_links.iter().map(|(rel, _)| rel.as_str()).collect::<Vec<_>>(), ["prev"]);
    let back = call(&app, Method::GET, &third_links[0].1, None).await;
    assert_eq!(page_ids(&back), ids[50..100]);
    let bad = call(&app, Method::GET, "/catalogs/restaurants/items?cursor=zz", None).await;
    assert_eq!((bad.status, error_ids(&bad)), (StatusCode::BAD_REQUEST, vec!["invalid-cursor".to_owned()]));
}

async fn patch_adds_to_and_removes_from_arrays() {
    let app = app_with_declared_fields().await;
    let seed = json!({"items": [{"id": "d1", "Name": "Dish", "Top_Dishes": ["Hamburger", "French Fries", "Hamburger"]}, {"id": "d2", "Name": "Other"}]});
    assert_eq!(call(&app, Method::PUT, "/catalogs/menu/items", Some(&seed)).await.status, StatusCode::ACCEPTED);
    app.run_jobs().await;
    // Braze's documented example: $add and $remove on one field, beside a plain field.
    let body = json!({"items": [
        {"id": "d1", "Rating": 4, "Top_Dishes": {"$add": ["Biscuits", "Coleslaw"], "$remove": ["Hamburger"]}},
        {"id": "d2", "Top_Dishes": {"$add": ["Soup"]}},
    ]});
    let response = call(&app, Method::PATCH, "/catalogs/menu/items", Some(&body)).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    let single = call(
        &app,
        Method::PATCH,
        "/catalogs/menu/items/d2",
        Some(&json!({"items": [{"Top_Dishes": {"$remove": ["Soup"], "$add": ["Salad"]}}]})),
    )
    .await;
    assert_eq!(single.status, StatusCode::OK, "{}", single.text);
    app.run_jobs().await;
    assert_eq!(
        item_of(&app, "menu", "d1").await.json()["items"][0],
        json!({"id": "d1", "Name": "Dish", "Rating": 4, "Top_Dishes": ["French Fries", "Biscuits", "Coleslaw"]})
    );
    assert_eq!(
        item_of(&app, "menu", "d2").await.json()["items"][0],
        json!({"id": "d2", "Name": "Other", "Top_Dishes": ["Salad"]})
    );

    // Only on array fields, only on PATCH, only the two operators.
    let not_array = call(
        &app,
        Method::PATCH,
        "/catalogs/menu/items",
        Some(&json!({"items": [{"id": "d1", "Name": {"$add": ["x"]}}]})),
    )
    .await;
    assert_eq!(
        not_array.json(),
        envelope(json!([item_error("unable-to-coerce-value", "Item types can't be converted", &["d1"])]))
    );
    let on_put = call(
        &app,
        Method::PUT,
        "/catalogs/menu/items",
        Some(&json!({"items": [{"id": "d1", "Top_Dishes": {"$add": ["x"]}}]})),
    )
    .await;
    assert_eq!(
        error_ids(&on_put),
        ["invalid-keys-in-value-object", "unable-to-coerce-value"],
        "an object is no array either"
    );
    let other_key = call(
        &app,
        Method::PATCH,
        "/catalogs/menu/items",
        Some(&json!({"items": [{"id": "d1", "Top_Dishes": {"$add": ["x"], "$set": ["y"]}}]})),
    )
    .await;
    assert_eq!(
        error_ids(&other_key),
        ["invalid-keys-in-value-object", "unable-to-coerce-value"],
        "an object is no array either"
    );
    let bad_value = call(
        &app,
        Method::PATCH,
        "/catalogs/menu/items",
        Some(&json!({"items": [{"id": "d1", "Top_Dishes": {"$add": ["v".repeat(5_001)]}}]})),
    )
    .await;
    assert_eq!(error_ids(&bad_value), ["items-too-large"]);
    // A missing item stays a per-item failure of the job, as for any PATCH.
    let missing = call(
        &app,
        Method::PATCH,
        "/catalogs/menu/items",
        Some(&json!({"items": [{"id": "ghost", "Top_Dishes": {"$add": ["x"]}}]})),
    )
    .await;
    assert_eq!(missing.status, StatusCode::ACCEPTED);
    app.run_jobs().await;
    assert_eq!(item_of(&app, "menu", "ghost").await.status, StatusCode::NOT_FOUND);
}

async fn selections_are_checked_kept_and_deleted() {
    let app = app_with_declared_fields().await;
    let selection = json!({"selection": {
        "name": "top-rated",
        "description": "Best dishes",
        "filters": [
            {"field": "Name", "operator": "equals", "value": "Soup"},
            {"field": "Rating", "operator": "greater than", "value": 7},
            {"field": "Top_Dishes", "operator": "includes value", "value": "Soup"},
        ],
        "results_limit": 5,
        "sort_field": "Rating",
        "sort_order": "desc",
    }});
    let created = call(&app, Method::POST, "/catalogs/menu/selections", Some(&selection)).await;
    assert_eq!((created.status, created.json()), (StatusCode::ACCEPTED, json!({"message": "success"})));
    assert_rate_headers(&created);
    let again = call(&app, Method::POST, "/catalogs/menu/selections/", Some(&selection)).await;
    assert_eq!(
        (again.status, error_ids(&again)),
        (StatusCode::BAD_REQUEST, vec!["selection-name-already-exists".to_owned()])
    );
    let cases = [
        (
            json!({"name": "s", "filters": [{"field": "Rating", "operator": "is", "value": 1}]}),
            "selection-has-invalid-filter",
        ),
        (
            json!({"name": "s", "filters": [{"field": "Nope", "operator": "equals", "value": "x"}]}),
            "selection-has-invalid-filter",
        ),
        (
            json!({"name": "s", "filters": [{"field": "Name", "operator": "equals", "value": "a"}, {"field": "Name", "operator": "equals", "value": "b"}, {"field": "Name", "operator": "equals", "value": "c"}, {"field": "Name", "operator": "equals", "value": "d"}, {"field": "Name", "operator": "equals", "value": "e"}]}),
            "too-many-filters",
        ),
        (json!({"name": "s", "results_limit": 51}), "selection-invalid-results-limit"),
        (json!({"name": "s", "sort_field": "Rating"}), "invalid-sorting"),
        (json!({"name": "s", "sort_field": "Nope", "sort_order": "asc"}), "invalid-sort-field"),
        (json!({"name": "s", "sort_field": "Rating", "sort_order": "up"}), "invalid-sort-order"),
        (json!({"name": "has space"}), "invalid-selection"),
        (json!({"filters": []}), "invalid-selection"),
    ];
    for (selection, error_id) in cases {
        let response =
            call(&app, Method::POST, "/catalogs/menu/selections", Some(&json!({ "selection": selection }))).await;
        assert_eq!(
            (response.status, error_ids(&response)),
            (StatusCode::BAD_REQUEST, vec![error_id.to_owned()]),
            "{selection}"
        );
    }
    let missing_catalog = call(&app, Method::POST, "/catalogs/nope/selections", Some(&selection)).await;
    assert_eq!(error_ids(&missing_catalog), ["catalog-not-found"]);
    let deleted = call(&app, Method::DELETE, "/catalogs/menu/selections/top-rated", None).await;
    assert_eq!((deleted.status, deleted.json()), (StatusCode::ACCEPTED, json!({"message": "success"})));
    let gone = call(&app, Method::DELETE, "/catalogs/menu/selections/top-rated", None).await;
    assert_eq!(
        (gone.status, gone.json()),
        (
            StatusCode::NOT_FOUND,
            envelope(
                json!([{"id": "selection-not-found", "message": "Could not find selection", "parameters": ["selection_name"], "parameter_values": ["top-rated"]}])
            )
        )
    );
    // The name is free again.
    assert_eq!(
        call(&app, Method::POST, "/catalogs/menu/selections", Some(&selection)).await.status,
        StatusCode::ACCEPTED
    );
    // A catalog with items, fields and a selection is deleted whole by its job, and its name then
    // declares nothing.
    let item = json!({"items": [{"id": "d1", "Name": "Dish"}]});
    assert_eq!(call(&app, Method::PUT, "/catalogs/menu/items", Some(&item)).await.status, StatusCode::ACCEPTED);
    assert_eq!(call(&app, Method::DELETE, "/catalogs/menu", None).await.status, StatusCode::OK);
    app.run_jobs().await;
    let jobs = app.get("/v1/jobs?kind=catalog_delete").await.json();
    assert_eq!(jobs["data"][0]["status"], "completed", "{jobs}");
    let again = call(&app, Method::POST, "/catalogs", Some(&json!({"catalogs": [{"name": "menu"}]}))).await;
    assert_eq!(again.json()["catalogs"][0]["fields"], json!([{"name": "id", "type": "string"}]));
    let unknown_field = call(&app, Method::POST, "/catalogs/menu/selections", Some(&selection)).await;
    assert_eq!(error_ids(&unknown_field), ["selection-has-invalid-filter"], "the old fields are gone");
}

catalog_api::on_both_backends!(
    seed_example_request_deletes_and_answers_202_success,
    seed_example_error_response_items_missing_ids,
    deleting_an_id_that_does_not_exist_is_not_an_error,
    catalog_not_found_is_404_with_parameters,
    more_than_50_items_is_request_includes_too_many_items,
    bad_characters_are_invalid_ids,
    ids_over_250_characters_are_ids_too_large,
    repeated_ids_are_ids_not_unique,
    non_string_ids_are_ids_not_strings,
    items_without_ids_are_counted,
    a_body_that_is_not_json_or_not_an_array_of_objects_is_item_array_invalid,
    every_distinct_error_is_listed_once,
    a_non_json_content_type_is_refused_in_the_envelope,
    post_creates_and_replaces_an_existing_id,
    patch_changes_given_fields_and_keeps_the_others,
    put_replaces_items_and_creates_missing_ones,
    write_endpoints_share_the_id_rules_and_limit,
    field_names_outside_the_rule_are_invalid_fields,
    values_over_5000_characters_are_items_too_large,
    keys_with_dot_or_dollar_are_invalid_keys_in_value_object,
    values_nested_over_50_levels_are_too_deep,
    id_and_field_errors_are_reported_together,
    create_catalog_answers_201_with_the_catalog,
    create_catalog_errors,
    list_catalogs_shows_item_counts,
    get_item_and_item_not_found,
    list_items_pages_with_a_link_header,
    missing_or_unknown_key_is_401_with_rate_headers,
    a_key_without_the_permission_is_403,
    another_projects_catalog_is_not_found,
    the_four_async_endpoints_share_one_quota_and_429_has_retry_after,
    synchronous_endpoints_have_their_own_quota,
    an_unsupported_method_is_405_in_the_envelope_with_rate_headers,
    unstorable_items_are_refused_with_their_error_ids,
    a_nul_in_a_catalog_description_is_invalid_description,
    a_repeated_key_anywhere_is_item_array_invalid,
    a_declared_oversize_body_is_413_before_it_is_read,
    a_nul_in_a_path_is_not_found_never_a_500,
    the_synchronous_item_endpoints_share_one_quota,
    single_item_endpoints_write_one_item_each,
    a_single_item_create_never_replaces_an_item_created_before_its_job_applies,
    single_item_endpoints_refuse_as_braze_does,
    bulk_endpoints_answer_with_a_trailing_slash,
    per_item_errors_name_every_failing_item,
    unknown_routes_and_methods_under_catalogs_answer_in_the_envelope,
    catalogs_keep_their_declared_fields_and_items_are_checked_against_them,
    field_declarations_are_checked_when_a_catalog_is_created,
    fields_are_added_and_removed,
    delete_catalog_removes_it_and_frees_its_name,
    the_item_list_links_to_the_previous_page_too,
    patch_adds_to_and_removes_from_arrays,
    selections_are_checked_kept_and_deleted,
);
