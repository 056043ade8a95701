//! The Klaviyo facade over the real router: the seeds' examples (seeds/000 and 001), every error
//! row of contracts/klaviyo.md, paging across more than 100 jobs with the SDK's cursor quirks, and
//! every response checked against Klaviyo's OpenAPI slices (tests/klaviyo_fixtures/openapi, copies
//! of contracts/klaviyo-openapi).

use axum::http::{Method, StatusCode};
use catalog_api::testing::{TestApp, TestRequest, TestResponse};
use catalog_domain::{Dialect, RawId};
use catalog_store::{CategoryInput, JobId, JobOptions, Runner, RunnerConfig, Scope, Step};
use serde_json::{json, Value};

const REVISION: &str = "2026-07-15";
const HOST: &str = "catalogd.test";
const ITEM_JOBS: &str = "/api/catalog-item-bulk-delete-jobs";
const CATEGORY_JOBS: &str = "/api/catalog-category-bulk-update-jobs";

// ---------------------------------------------------------------------------------------------
// OpenAPI validation: the subset of JSON Schema the slices use ($ref, type, nullable, required,
// properties, items, enum, format date-time/uri).

const SLICES: &[(&str, &str)] = &[
    ("bulk_delete_catalog_items", include_str!("klaviyo_fixtures/openapi/bulk_delete_catalog_items.json")),
    ("bulk_update_catalog_categories", include_str!("klaviyo_fixtures/openapi/bulk_update_catalog_categories.json")),
    (
        "get_bulk_delete_catalog_items_job",
        include_str!("klaviyo_fixtures/openapi/get_bulk_delete_catalog_items_job.json"),
    ),
    (
        "get_bulk_delete_catalog_items_jobs",
        include_str!("klaviyo_fixtures/openapi/get_bulk_delete_catalog_items_jobs.json"),
    ),
    ("get_bulk_update_categories_job", include_str!("klaviyo_fixtures/openapi/get_bulk_update_categories_job.json")),
    ("get_bulk_update_categories_jobs", include_str!("klaviyo_fixtures/openapi/get_bulk_update_categories_jobs.json")),
];

fn slice(operation: &str) -> Value {
    let text = SLICES.iter().find(|(name, _)| *name == operation).map(|(_, text)| *text).expect("known slice");
    let mut doc: Value = serde_json::from_str(text).expect("slice is JSON");
    // Klaviyo's slices declare CollectionLinks.next/prev as plain strings, while its live API (and
    // contracts/klaviyo.md, and the SDK's model: Optional[str]) answer `null` on the last/first
    // page. The facade follows the contract; the schema is widened for exactly these two.
    if let Some(links) = doc.pointer_mut("/components/schemas/CollectionLinks/properties") {
        for name in ["next", "prev"] {
            links[name]["nullable"] = Value::Bool(true);
        }
    }
    doc
}

fn resolve<'d>(doc: &'d Value, schema: &'d Value) -> &'d Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local $ref");
            resolve(doc, doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}")))
        }
        None => schema,
    }
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) && schema.get("type").is_some() {
            problems.push(format!("{at}: null where the schema does not allow it"));
        }
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            problems.push(format!("{at}: {value} not in {allowed:?}"));
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(object) = value.as_object() else {
                problems.push(format!("{at}: expected an object, got {value}"));
                return;
            };
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    problems.push(format!("{at}: missing required `{name}`"));
                }
            }
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    if let Some(member) = object.get(name) {
                        check(doc, property, member, &format!("{at}/{name}"), problems);
                    }
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(elements) => {
                if let Some(items) = schema.get("items") {
                    for (index, element) in elements.iter().enumerate() {
                        check(doc, items, element, &format!("{at}/{index}"), problems);
                    }
                }
            }
            None => problems.push(format!("{at}: expected an array, got {value}")),
        },
        Some("string") => match value.as_str() {
            Some(text) => match schema.get("format").and_then(Value::as_str) {
                Some("date-time") if catalog_domain::time::parse_rfc3339(text).is_err() => {
                    problems.push(format!("{at}: `{text}` is not a date-time"))
                }
                Some("uri") if !(text.starts_with("http://") || text.starts_with("https://")) || text.contains(' ') => {
                    problems.push(format!("{at}: `{text}` is not an absolute URI"))
                }
                _ => {}
            },
            None => problems.push(format!("{at}: expected a string, got {value}")),
        },
        Some("integer") if !(value.is_i64() || value.is_u64()) => {
            problems.push(format!("{at}: expected an integer, got {value}"))
        }
        Some("boolean") if !value.is_boolean() => problems.push(format!("{at}: expected a boolean, got {value}")),
        _ => {}
    }
}

/// Asserts that `response` validates against the schema `operation` documents for its status.
fn assert_valid(operation: &str, response: &TestResponse) {
    let doc = slice(operation);
    let (_, operations) = doc["paths"].as_object().and_then(|p| p.iter().next()).expect("one path");
    let (_, operation_doc) = operations.as_object().and_then(|o| o.iter().next()).expect("one operation");
    let status = response.status.as_u16().to_string();
    let family = format!("{}XX", &status[..1]);
    let declared = operation_doc["responses"].get(&status).or_else(|| operation_doc["responses"].get(&family));
    let declared = resolve(&doc, declared.unwrap_or_else(|| panic!("{operation}: status {status} is not documented")));
    let schema = &declared["content"]["application/vnd.api+json"]["schema"];
    let mut problems = Vec::new();
    check(&doc, schema, &response.json(), "", &mut problems);
    assert!(problems.is_empty(), "{operation} {status}: {problems:#?}\n{}", response.text);
    assert_eq!(response.header("content-type"), Some("application/vnd.api+json"), "{operation}");
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn klaviyo(token: &str, method: Method, path: &str) -> TestRequest {
    klaviyo_at(token, method, path, REVISION)
}

fn klaviyo_at(token: &str, method: Method, path: &str, revision: &str) -> TestRequest {
    TestRequest::new(method, path)
        .header("authorization", &format!("Klaviyo-API-Key {token}"))
        .header("revision", revision)
        .header("host", HOST)
}

fn compound(id: &str) -> String {
    format!("$custom:::$default:::{id}")
}

fn delete_body(ids: &[&str]) -> Value {
    let data: Vec<Value> = ids.iter().map(|id| json!({"type": "catalog-item", "id": compound(id)})).collect();
    json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": {"data": data}}}})
}

fn category_body(categories: &[(&str, Option<&str>, &[&str])]) -> Value {
    let data: Vec<Value> = categories
        .iter()
        .map(|(id, name, items)| {
            let items: Vec<Value> = items.iter().map(|i| json!({"type": "catalog-item", "id": compound(i)})).collect();
            let mut category = json!({"type": "catalog-category", "id": compound(id), "attributes": {}});
            if let Some(name) = name {
                category["attributes"]["name"] = json!(name);
            }
            if !items.is_empty() {
                category["relationships"] = json!({"items": {"data": items}});
            }
            category
        })
        .collect();
    json!({"data": {"type": "catalog-category-bulk-update-job", "attributes": {"categories": {"data": data}}}})
}

fn vnd(request: TestRequest, body: &Value) -> TestRequest {
    request.raw_body("application/vnd.api+json", body.to_string().into_bytes())
}

/// An app whose project has the `default` catalog, items A..E and categories APPAREL and SHOES.
async fn app() -> TestApp {
    with_app(TestApp::new().await).await
}

async fn with_app(app: TestApp) -> TestApp {
    let created = app.post("/v1/catalogs", &json!({"name": "default"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let items: Vec<Value> =
        ["A", "B", "C", "D", "E"].iter().map(|id| json!({"id": id, "fields": {"title": id}})).collect();
    let upsert = app.post("/v1/catalogs/default/items/bulk-upsert", &json!({"items": items})).await;
    assert_eq!(upsert.status, StatusCode::ACCEPTED, "{}", upsert.text);
    let categories = json!({"categories": [
        {"id": "APPAREL", "name": "Apparel", "item_ids": ["A"]},
        {"id": "SHOES", "name": "Shoes", "item_ids": []},
    ]});
    let upsert = app.post("/v1/catalogs/default/categories/bulk-upsert", &categories).await;
    assert_eq!(upsert.status, StatusCode::ACCEPTED, "{}", upsert.text);
    app.run_jobs().await;
    app
}

async fn post(app: &TestApp, path: &str, body: &Value) -> TestResponse {
    app.send(vnd(klaviyo(&app.token, Method::POST, path), body)).await
}

async fn get(app: &TestApp, path: &str) -> TestResponse {
    app.send(klaviyo(&app.token, Method::GET, path)).await
}

fn error_entry(response: &TestResponse) -> Value {
    response.json()["errors"][0].clone()
}

/// Asserts a JSON:API error: status, code, and the whole entry's shape.
fn assert_error(response: &TestResponse, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status, status, "{}", response.text);
    assert_eq!(response.header("content-type"), Some("application/vnd.api+json"));
    let entry = error_entry(response);
    assert_eq!(entry["code"], code, "{}", response.text);
    assert_eq!(entry["status"], json!(status.as_u16()), "status must be a JSON number");
    for field in ["id", "title", "detail"] {
        assert!(entry[field].as_str().is_some_and(|s| !s.is_empty()), "{field}: {}", response.text);
    }
    assert_eq!(entry["id"].as_str().map(str::len), Some(36), "uuid-like id: {}", response.text);
    assert!(entry["source"].is_object(), "{}", response.text);
    assert_eq!(entry["meta"], json!({}));
    entry
}

/// Creates `n` item delete jobs through the store, as the facade would (fast: no HTTP, no quota).
async fn store_delete_jobs(app: &TestApp, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let outcome = app
            .store
            .bulk_delete_items(
                app.project.id,
                "default",
                Dialect::Klaviyo,
                vec![RawId::String(format!("gone-{i}"))],
                &JobOptions::default(),
            )
            .await
            .expect("job created");
        ids.push(outcome.job.expect("a job").id.0);
    }
    ids
}

fn job_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|j| j["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The path and query of an absolute link.
fn path_of(link: &Value) -> String {
    let url = link.as_str().expect("a link");
    let rest = url.strip_prefix(&format!("http://{HOST}")).unwrap_or_else(|| panic!("link on another host: {url}"));
    rest.to_owned()
}

// ---------------------------------------------------------------------------------------------
// Seeds: same shape, field names, types and status as the seed's example response.

fn is_faker_placeholder(value: &Value) -> bool {
    value.as_object().is_some_and(|o| {
        o.len() == 1 && o.get("value").and_then(Value::as_str).is_some_and(|s| s.contains("Too many levels of nesting"))
    })
}

/// Attributes and links the OpenAPI slices mark nullable: the seed generator filled them with
/// strings, the facade answers null while they do not apply (a job not yet complete).
const NULLABLE: &[&str] = &["completed_at", "expires_at", "completed_count", "failed_count", "next", "prev", "name"];

fn assert_same_shape(seed: &Value, ours: &Value, at: &str) {
    if is_faker_placeholder(seed) {
        return;
    }
    match (seed, ours) {
        (Value::Object(seed), Value::Object(ours)) => {
            for (name, member) in seed {
                let ours = ours.get(name).unwrap_or_else(|| panic!("{at}/{name}: missing"));
                assert_same_shape(member, ours, &format!("{at}/{name}"));
            }
        }
        (Value::Array(seed), Value::Array(ours)) => {
            // An empty array has the seed's type; each element we do have must have the seed
            // elements' shape (the tests make sure the interesting arrays are not empty).
            for seed_element in seed {
                for ours_element in ours {
                    assert_same_shape(seed_element, ours_element, &format!("{at}/[]"));
                }
            }
        }
        (Value::String(_), Value::Null) => {
            let name = at.rsplit('/').next().unwrap_or_default();
            assert!(NULLABLE.contains(&name), "{at}: null where the seed has a string");
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        (seed, ours) => panic!("{at}: seed has {seed}, ours has {ours}"),
    }
}

async fn seed_000_get_delete_items_jobs_has_the_seed_shape() {
    let seed: Value =
        serde_json::from_str(include_str!("klaviyo_fixtures/seed_000_get_delete_items_jobs.json")).expect("seed JSON");
    let app = app().await;
    store_delete_jobs(&app, 201).await;
    // The seed's request: GET {{baseUrl}}/api/catalog-item-bulk-delete-jobs/ at revision 2022-10-17.
    let first = app.send(klaviyo_at(&app.token, Method::GET, &format!("{ITEM_JOBS}/"), "2022-10-17")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let next = path_of(&first.json()["links"]["next"]);
    // The middle page has every link of the seed: self, first, last, prev and next.
    let middle = app.send(klaviyo_at(&app.token, Method::GET, &next, "2022-10-17")).await;
    assert_eq!(middle.status, StatusCode::OK, "{}", middle.text);
    assert_same_shape(&seed, &middle.json(), "");
    assert_eq!(middle.json()["data"][0]["attributes"]["job_id"], middle.json()["data"][0]["id"]);
    assert_valid("get_bulk_delete_catalog_items_jobs", &middle);
}

async fn seed_001_get_update_categories_jobs_has_the_seed_shape() {
    let seed: Value = serde_json::from_str(include_str!("klaviyo_fixtures/seed_001_get_update_categories_jobs.json"))
        .expect("seed JSON");
    let app = app().await;
    // Two pages of category jobs, the newest one half applied: its first category does not exist,
    // so it has an error entry while its relationships are still known.
    for _ in 0..100 {
        let shoes =
            CategoryInput { id: RawId::from("SHOES"), external_id: None, name: Some("Shoes".into()), item_ids: None };
        let options = JobOptions::default();
        let created =
            app.store.bulk_update_categories(app.project.id, "default", Dialect::Klaviyo, vec![shoes], &options).await;
        assert!(created.is_ok_and(|outcome| outcome.job.is_some()));
    }
    let runner = Runner::new(app.store.clone(), RunnerConfig { chunk_size: 1, ..RunnerConfig::default() });
    runner.run_until_idle().await.expect("runner");
    let created =
        post(&app, CATEGORY_JOBS, &category_body(&[("ABSENT", None, &[]), ("APPAREL", Some("Clothes"), &["B"])])).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let mut lease = runner.claim().await.expect("claim").expect("a due job");
    assert_eq!(lease.step().await.expect("one chunk"), Step::Continue);
    let path = format!("{CATEGORY_JOBS}/?include=categories");
    let first = app.send(klaviyo_at(&app.token, Method::GET, &path, "2023-01-24")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let next = path_of(&first.json()["links"]["next"]);
    // Page two, then back through `prev` to a page that links both ways.
    let second = app.send(klaviyo_at(&app.token, Method::GET, &next, "2023-01-24")).await;
    let back = path_of(&second.json()["links"]["prev"]);
    let back = app.send(klaviyo_at(&app.token, Method::GET, &back, "2023-01-24")).await;
    assert_eq!(job_ids(&back.json()), job_ids(&first.json()), "prev leads back to the first page");
    let body = first.json();
    let newest = &body["data"][0];
    assert_eq!(newest["attributes"]["status"], "processing", "{body}");
    assert_eq!(
        newest["attributes"]["errors"][0]["source"]["pointer"], "/data/attributes/categories/data/0",
        "{newest}"
    );
    assert_eq!(body["included"][0]["id"], compound("APPAREL"));
    // `prev` is null on the first page: compare the seed's links against page two, which has both.
    let mut shaped = body.clone();
    shaped["links"] = second.json()["links"].clone();
    shaped["data"] = json!([newest]);
    assert_same_shape(&seed, &shaped, "");
    assert_valid("get_bulk_update_categories_jobs", &first);
    assert_valid("get_bulk_update_categories_jobs", &second);
}

// ---------------------------------------------------------------------------------------------
// The six endpoints

async fn create_item_delete_job_then_get_it_until_complete() {
    let app = app().await;
    for path in [ITEM_JOBS.to_owned(), format!("{ITEM_JOBS}/")] {
        let created = post(&app, &path, &delete_body(&["A", "NOT-THERE"])).await;
        assert_eq!(created.status, StatusCode::ACCEPTED, "{path}: {}", created.text);
        assert_valid("bulk_delete_catalog_items", &created);
        let job = created.json()["data"].clone();
        assert_eq!(job["type"], "catalog-item-bulk-delete-job");
        assert_eq!(job["attributes"]["status"], "queued");
        assert_eq!(job["attributes"]["total_count"], 2);
        assert!(job["attributes"].get("job_id").is_none(), "current revisions have no job_id");
        assert!(job["attributes"]["created_at"].as_str().is_some_and(|t| t.ends_with("+00:00")));
        assert_eq!(
            job["relationships"]["items"]["data"][1],
            json!({"type": "catalog-item", "id": compound("NOT-THERE")})
        );
        let id = job["id"].as_str().expect("string id").to_owned();
        assert_eq!(job["links"]["self"], format!("http://{HOST}{ITEM_JOBS}/{id}"));
        app.run_jobs().await;
        for get_path in [format!("{ITEM_JOBS}/{id}"), format!("{ITEM_JOBS}/{id}/")] {
            let got = get(&app, &get_path).await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.text);
            assert_valid("get_bulk_delete_catalog_items_job", &got);
            let attributes = &got.json()["data"]["attributes"];
            assert_eq!(attributes["status"], "complete");
            assert_eq!(
                (attributes["completed_count"].as_u64(), attributes["failed_count"].as_u64()),
                (Some(2), Some(0))
            );
            assert!(attributes["completed_at"].as_str().is_some_and(|t| t.ends_with("+00:00")));
            assert!(attributes["expires_at"].is_string());
        }
    }
    let item = app.get("/v1/catalogs/default/items/A").await;
    assert_eq!(item.status, StatusCode::NOT_FOUND, "the item was deleted");
}

async fn create_category_update_job_and_read_it_with_included_categories() {
    let app = app().await;
    let created =
        post(&app, &format!("{CATEGORY_JOBS}/"), &category_body(&[("APPAREL", Some("Clothes"), &["B", "C"])])).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    assert_valid("bulk_update_catalog_categories", &created);
    let id = created.json()["data"]["id"].as_str().expect("id").to_owned();
    let path = format!("{CATEGORY_JOBS}/{id}?include=categories&fields[catalog-category]=name,external_id");
    let got = get(&app, &path).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_valid("get_bulk_update_categories_job", &got);
    let body = got.json();
    assert_eq!(
        body["data"]["relationships"]["categories"]["data"][0],
        json!({"type": "catalog-category", "id": compound("APPAREL")})
    );
    assert_eq!(body["included"][0]["type"], "catalog-category");
    assert_eq!(body["included"][0]["attributes"], json!({"external_id": "APPAREL", "name": "Apparel"}));
    app.run_jobs().await;
    let categories = app.get("/v1/catalogs/default/categories").await.json();
    let apparel = categories["data"].as_array().and_then(|c| c.iter().find(|c| c["id"] == "APPAREL")).cloned();
    assert_eq!(
        apparel.map(|c| (c["name"].clone(), c["item_ids"].clone())),
        Some((json!("Clothes"), json!(["B", "C"])))
    );
    let done = get(&app, &format!("{CATEGORY_JOBS}/{id}")).await;
    assert_eq!(done.json()["data"]["attributes"]["status"], "complete");
    assert_valid("get_bulk_update_categories_job", &done);
}

async fn a_missing_category_is_a_job_error_with_every_field() {
    let app = app().await;
    let created = post(&app, CATEGORY_JOBS, &category_body(&[("APPAREL", None, &[]), ("NOPE", Some("x"), &[])])).await;
    let id = created.json()["data"]["id"].as_str().expect("id").to_owned();
    app.run_jobs().await;
    let got = get(&app, &format!("{CATEGORY_JOBS}/{id}")).await;
    assert_valid("get_bulk_update_categories_job", &got);
    let attributes = &got.json()["data"]["attributes"];
    assert_eq!((attributes["completed_count"].as_u64(), attributes["failed_count"].as_u64()), (Some(1), Some(1)));
    let error = &attributes["errors"][0];
    for field in ["id", "code", "title", "detail"] {
        assert!(error[field].as_str().is_some_and(|s| !s.is_empty()), "{field}: {error}");
    }
    assert_eq!(error["source"]["pointer"], "/data/attributes/categories/data/1");
    let again = get(&app, &format!("{CATEGORY_JOBS}/{id}")).await;
    assert_eq!(again.json()["data"]["attributes"]["errors"][0]["id"], error["id"], "error ids are stable");
}

async fn old_revisions_send_a_plain_array_and_get_job_id() {
    let app = app().await;
    let body = json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": [
        {"type": "catalog-item", "id": compound("A")}
    ]}}});
    let created = app.send(vnd(klaviyo_at(&app.token, Method::POST, ITEM_JOBS, "2023-02-22"), &body)).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let job = &created.json()["data"];
    assert_eq!(job["attributes"]["job_id"], job["id"]);
    let categories = json!({"data": {"type": "catalog-category-bulk-update-job", "attributes": {"categories": [
        {"type": "catalog-category", "id": compound("SHOES"), "attributes": {"name": "Boots"}}
    ]}}});
    let created =
        app.send(vnd(klaviyo_at(&app.token, Method::POST, CATEGORY_JOBS, "2023-02-22.pre"), &categories)).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    // Plain `application/json` is accepted too.
    let plain = app.send(klaviyo(&app.token, Method::POST, ITEM_JOBS).json(&delete_body(&["B"]))).await;
    assert_eq!(plain.status, StatusCode::ACCEPTED, "{}", plain.text);
}

async fn filters_select_by_status_with_either_quote() {
    let app = app().await;
    let jobs = store_delete_jobs(&app, 3).await;
    app.store.cancel_job(app.project.id, JobId(jobs[0])).await.expect("cancel");
    for (filter, expected) in [
        ("equals(status,\"cancelled\")", vec![jobs[0]]),
        ("equals(status,'cancelled')", vec![jobs[0]]),
        ("equals(status,\"queued\")", vec![jobs[2], jobs[1]]),
        ("equals(status,'processing')", vec![]),
        ("equals(status,'complete')", vec![]),
    ] {
        let response = get(&app, &format!("{ITEM_JOBS}?filter={}", urlencode(filter))).await;
        assert_eq!(response.status, StatusCode::OK, "{filter}: {}", response.text);
        assert_valid("get_bulk_delete_catalog_items_jobs", &response);
        let expected: Vec<String> = expected.iter().map(i64::to_string).collect();
        assert_eq!(job_ids(&response.json()), expected, "{filter}");
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn sparse_fieldsets_keep_only_the_named_attributes() {
    let app = app().await;
    store_delete_jobs(&app, 2).await;
    let list = get(&app, &format!("{ITEM_JOBS}?fields[catalog-item-bulk-delete-job]=status,total_count")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    for job in list.json()["data"].as_array().expect("data") {
        assert_eq!(job["attributes"], json!({"status": "queued", "total_count": 1}));
        assert!(job["id"].is_string() && job["links"]["self"].is_string());
    }
    let next_self = list.json()["links"]["first"].as_str().map(str::to_owned).expect("first link");
    assert!(next_self.contains("fields%5Bcatalog-item-bulk-delete-job%5D=status%2Ctotal_count"), "{next_self}");
}

async fn paging_walks_more_than_100_jobs_both_ways_and_tolerates_the_sdk_cursor_quirks() {
    let app = app().await;
    let created = store_delete_jobs(&app, 230).await;
    let mut seen: Vec<String> = Vec::new();
    let mut page = get(&app, ITEM_JOBS).await;
    let mut pages = Vec::new();
    loop {
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_valid("get_bulk_delete_catalog_items_jobs", &page);
        let body = page.json();
        assert!(body["data"].as_array().is_some_and(|d| d.len() <= 100));
        seen.extend(job_ids(&body));
        pages.push(body.clone());
        let Some(next) = body["links"]["next"].as_str() else { break };
        let cursor = next.split("page%5Bcursor%5D=").nth(1).expect("cursor in next").to_owned();
        assert!(!cursor.contains('%'), "cursors are url-safe");
        page = get(&app, &path_of(&body["links"]["next"])).await;
    }
    assert_eq!(pages.len(), 3);
    let mut expected: Vec<String> = created.iter().map(i64::to_string).collect();
    expected.reverse();
    assert_eq!(seen, expected, "every job once, newest first");
    assert_eq!(pages[0]["links"]["prev"], Value::Null);
    // `last` is the page of the oldest jobs.
    let last = get(&app, &path_of(&pages[0]["links"]["last"])).await.json();
    assert_eq!(job_ids(&last).last(), Some(&created[0].to_string()));
    // Back from the last page through `prev`.
    let back = get(&app, &path_of(&pages[2]["links"]["prev"])).await.json();
    assert_eq!(job_ids(&back), job_ids(&pages[1]));

    // The SDK's quirks: the cursor with a leading `=`, or the whole `links.next` URL as the value.
    let next = pages[0]["links"]["next"].as_str().expect("next").to_owned();
    let cursor = next.split("page%5Bcursor%5D=").nth(1).expect("cursor").to_owned();
    for value in [format!("={cursor}"), next.clone()] {
        let quirky = get(&app, &format!("{ITEM_JOBS}?page[cursor]={}", urlencode(&value))).await;
        assert_eq!(quirky.status, StatusCode::OK, "{value}: {}", quirky.text);
        assert_eq!(job_ids(&quirky.json()), job_ids(&pages[1]), "{value}");
    }
    let bad = get(&app, &format!("{ITEM_JOBS}?page[cursor]=nonsense")).await;
    let entry = assert_error(&bad, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(entry["source"]["parameter"], "page[cursor]");
}

async fn listings_show_only_their_job_type_and_the_configured_catalog() {
    let app = app().await;
    post(&app, ITEM_JOBS, &delete_body(&["A"])).await;
    post(&app, CATEGORY_JOBS, &category_body(&[("SHOES", None, &[])])).await;
    // A native job on another catalog is not a Klaviyo job.
    app.post("/v1/catalogs", &json!({"name": "other"})).await;
    app.post("/v1/catalogs/other/items/bulk-delete", &json!({"ids": ["x"]})).await;
    let items = get(&app, ITEM_JOBS).await.json();
    let categories = get(&app, CATEGORY_JOBS).await.json();
    assert_eq!(items["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(categories["data"].as_array().map(Vec::len), Some(1));
    let category_id = categories["data"][0]["id"].as_str().expect("id").to_owned();
    let wrong_type = get(&app, &format!("{ITEM_JOBS}/{category_id}")).await;
    assert_error(&wrong_type, StatusCode::NOT_FOUND, "not_found");
}

async fn links_use_the_host_and_forwarded_proto() {
    let app = app().await;
    let created = app
        .send(vnd(
            klaviyo(&app.token, Method::POST, ITEM_JOBS).header("x-forwarded-proto", "https"),
            &delete_body(&["A"]),
        ))
        .await;
    let link = created.json()["data"]["links"]["self"].as_str().map(str::to_owned);
    assert!(link.is_some_and(|l| l.starts_with(&format!("https://{HOST}{ITEM_JOBS}/"))), "{}", created.text);
}

async fn successful_responses_carry_ratelimit_headers() {
    let app = app().await;
    for response in [get(&app, ITEM_JOBS).await, post(&app, ITEM_JOBS, &delete_body(&["A"])).await] {
        for name in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
            assert!(response.header(name).is_some(), "{name}: {:?}", response.headers);
        }
    }
    assert_eq!(get(&app, ITEM_JOBS).await.header("ratelimit-limit"), Some("350"));
}

// ---------------------------------------------------------------------------------------------
// Every error row of the contract

async fn missing_or_foreign_auth_scheme_is_401_not_authenticated() {
    let app = app().await;
    let none = app.send(TestRequest::new(Method::GET, ITEM_JOBS).header("revision", REVISION)).await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "not_authenticated");
    assert_valid("get_bulk_delete_catalog_items_jobs", &none);
    let bearer =
        app.send(TestRequest::new(Method::GET, ITEM_JOBS).bearer(&app.token).header("revision", REVISION)).await;
    assert_error(&bearer, StatusCode::UNAUTHORIZED, "not_authenticated");
}

async fn unknown_key_is_401_authentication_failed() {
    let app = app().await;
    let response = app.send(klaviyo("pk_nope", Method::GET, ITEM_JOBS)).await;
    assert_error(&response, StatusCode::UNAUTHORIZED, "authentication_failed");
    assert_eq!(error_entry(&response)["title"], "Incorrect authentication credentials.");
}

async fn missing_scope_is_403_permission_denied() {
    let app = app().await;
    let read_only = app.token_for("acme", &[Scope::CatalogsRead]).await;
    let write_only = app.token_for("acme", &[Scope::CatalogsWrite]).await;
    let post = app.send(vnd(klaviyo(&read_only, Method::POST, ITEM_JOBS), &delete_body(&["A"]))).await;
    assert_error(&post, StatusCode::FORBIDDEN, "permission_denied");
    assert_eq!(get(&app, ITEM_JOBS).await.json()["data"].as_array().map(Vec::len), Some(0), "nothing created");
    let list = app.send(klaviyo(&write_only, Method::GET, CATEGORY_JOBS)).await;
    assert_error(&list, StatusCode::FORBIDDEN, "permission_denied");
    assert_valid("get_bulk_update_categories_jobs", &list);
}

async fn missing_or_malformed_revision_is_400_on_the_revision_parameter() {
    let app = app().await;
    let missing = app
        .send(
            TestRequest::new(Method::GET, ITEM_JOBS).header("authorization", &format!("Klaviyo-API-Key {}", app.token)),
        )
        .await;
    let entry = assert_error(&missing, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(entry["source"], json!({"parameter": "revision"}));
    for bad in ["2023-2-22", "latest", "2023-02-22."] {
        let response = app.send(klaviyo_at(&app.token, Method::GET, ITEM_JOBS, bad)).await;
        let entry = assert_error(&response, StatusCode::BAD_REQUEST, "invalid");
        assert_eq!(entry["source"], json!({"parameter": "revision"}), "{bad}");
    }
}

async fn a_post_that_is_not_json_is_415() {
    let app = app().await;
    let response = app
        .send(
            klaviyo(&app.token, Method::POST, ITEM_JOBS)
                .raw_body("text/plain", delete_body(&["A"]).to_string().into_bytes()),
        )
        .await;
    assert_error(&response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert_valid("bulk_delete_catalog_items", &response);
}

async fn a_body_over_5_mb_is_413_and_creates_nothing() {
    let app = app().await;
    let long_id = "x".repeat(5 * 1024 * 1024);
    let response = post(&app, ITEM_JOBS, &delete_body(&[&long_id])).await;
    assert_error(&response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(get(&app, ITEM_JOBS).await.json()["data"].as_array().map(Vec::len), Some(0));
}

async fn more_than_100_items_or_categories_is_400_with_the_pointer() {
    let app = app().await;
    let ids: Vec<String> = (0..101).map(|i| format!("I{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let items = post(&app, ITEM_JOBS, &delete_body(&refs)).await;
    let entry = assert_error(&items, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(entry["source"], json!({"pointer": "/data/attributes/items/data"}));
    assert_valid("bulk_delete_catalog_items", &items);
    let categories: Vec<(&str, Option<&str>, &[&str])> = refs.iter().map(|id| (*id, None, &[] as &[&str])).collect();
    let response = post(&app, CATEGORY_JOBS, &category_body(&categories)).await;
    let entry = assert_error(&response, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(entry["source"], json!({"pointer": "/data/attributes/categories/data"}));
    let exactly_100 = post(&app, ITEM_JOBS, &delete_body(&refs[..100])).await;
    assert_eq!(exactly_100.status, StatusCode::ACCEPTED, "{}", exactly_100.text);
    let empty = post(&app, ITEM_JOBS, &delete_body(&[])).await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid");
}

async fn bad_compound_ids_are_400_with_a_pointer_each() {
    let app = app().await;
    let body = json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": {"data": [
        {"type": "catalog-item", "id": compound("A")},
        {"type": "catalog-item", "id": "$shopify:::$default:::B"},
        {"type": "catalog-item", "id": "$custom:::other:::C"},
        {"type": "catalog-item", "id": "$custom:::$default:::"},
        {"type": "catalog-item", "id": "PLAIN"},
        {"type": "catalog-item", "id": compound("A")},
        {"type": "catalog-item", "id": 7},
    ]}}}});
    let response = post(&app, ITEM_JOBS, &body).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "invalid");
    assert_valid("bulk_delete_catalog_items", &response);
    let pointers: Vec<Value> =
        response.json()["errors"].as_array().expect("errors").iter().map(|e| e["source"]["pointer"].clone()).collect();
    let expected: Vec<Value> = (1..=6).map(|i| json!(format!("/data/attributes/items/data/{i}/id"))).collect();
    assert_eq!(pointers, expected);
    let category_item = post(
        &app,
        CATEGORY_JOBS,
        &json!({"data": {"type": "catalog-category-bulk-update-job", "attributes": {"categories": {"data": [
            {"type": "catalog-category", "id": compound("APPAREL"), "attributes": {},
             "relationships": {"items": {"data": [{"type": "catalog-item", "id": "B"}]}}}
        ]}}}}),
    )
    .await;
    let entry = assert_error(&category_item, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(entry["source"]["pointer"], "/data/attributes/categories/data/0/relationships/items/data/0/id");
    assert_eq!(get(&app, ITEM_JOBS).await.json()["data"].as_array().map(Vec::len), Some(0), "nothing created");
}

async fn malformed_bodies_are_400_with_a_pointer() {
    let app = app().await;
    for (body, pointer) in [
        (json!({}), "/data"),
        (json!({"data": {"type": "catalog-item", "attributes": {}}}), "/data/type"),
        (json!({"data": {"type": "catalog-item-bulk-delete-job"}}), "/data/attributes"),
        (json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {}}}), "/data/attributes/items"),
        (
            json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": {"data": [{"id": compound("A")}]}}}}),
            "/data/attributes/items/data/0/type",
        ),
    ] {
        let response = post(&app, ITEM_JOBS, &body).await;
        let entry = assert_error(&response, StatusCode::BAD_REQUEST, "invalid");
        assert_eq!(entry["source"]["pointer"], pointer, "{body}");
    }
    let not_json = app
        .send(klaviyo(&app.token, Method::POST, ITEM_JOBS).raw_body("application/vnd.api+json", b"{".to_vec()))
        .await;
    assert_error(&not_json, StatusCode::BAD_REQUEST, "invalid");
}

async fn the_500th_job_in_progress_is_the_last_one_accepted() {
    let app = app().await;
    store_delete_jobs(&app, 499).await;
    let last = post(&app, ITEM_JOBS, &delete_body(&["A"])).await;
    assert_eq!(last.status, StatusCode::ACCEPTED, "{}", last.text);
    let refused = post(&app, CATEGORY_JOBS, &category_body(&[("SHOES", None, &[])])).await;
    let entry = assert_error(&refused, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(entry["source"]["pointer"], "/data");
    assert_valid("bulk_update_catalog_categories", &refused);
}

async fn a_missing_default_catalog_is_400() {
    let app = TestApp::new().await;
    let response = post(&app, ITEM_JOBS, &delete_body(&["A"])).await;
    let entry = assert_error(&response, StatusCode::BAD_REQUEST, "invalid");
    assert!(entry["detail"].as_str().is_some_and(|d| d.contains("'default'")), "{entry}");
}

async fn bad_filters_are_400_on_the_filter_parameter() {
    let app = app().await;
    for filter in [
        "equals(status,\"done\")",
        "equals(created_at,\"2024-01-01\")",
        "any(status,[\"queued\"])",
        "greater-than(status,\"queued\")",
        "equals(status,queued)",
        "status=queued",
        "and(equals(status,\"queued\"),equals(status,\"complete\"))",
    ] {
        let response = get(&app, &format!("{CATEGORY_JOBS}?filter={}", urlencode(filter))).await;
        let entry = assert_error(&response, StatusCode::BAD_REQUEST, "invalid");
        assert_eq!(entry["source"], json!({"parameter": "filter"}), "{filter}");
    }
}

async fn unknown_parameters_and_fields_are_400() {
    let app = app().await;
    let job =
        post(&app, ITEM_JOBS, &delete_body(&["A"])).await.json()["data"]["id"].as_str().map(str::to_owned).expect("id");
    for (path, parameter) in [
        (format!("{ITEM_JOBS}?page[size]=10"), "page[size]"),
        (format!("{ITEM_JOBS}?sort=created_at"), "sort"),
        (
            format!("{ITEM_JOBS}?fields[catalog-item-bulk-delete-job]=status,colour"),
            "fields[catalog-item-bulk-delete-job]",
        ),
        (format!("{ITEM_JOBS}/{job}?include=items"), "include"),
        (format!("{ITEM_JOBS}/{job}?filter=equals(status,'queued')"), "filter"),
        (format!("{CATEGORY_JOBS}/{job}?include=items"), "include"),
        (format!("{CATEGORY_JOBS}/{job}?fields[catalog-category]=colour"), "fields[catalog-category]"),
        (format!("{ITEM_JOBS}?filter=x&filter=y"), "filter"),
    ] {
        let response = get(&app, &path).await;
        let entry = assert_error(&response, StatusCode::BAD_REQUEST, "invalid");
        assert_eq!(entry["source"], json!({"parameter": parameter}), "{path}");
    }
}

async fn unknown_jobs_are_404_not_found() {
    let app = app().await;
    let job =
        post(&app, ITEM_JOBS, &delete_body(&["A"])).await.json()["data"]["id"].as_str().map(str::to_owned).expect("id");
    for path in [
        format!("{ITEM_JOBS}/999999"),
        format!("{ITEM_JOBS}/01GSQPBF74KQ5YTDEPP41T1BZH"),
        format!("{CATEGORY_JOBS}/{job}"),
    ] {
        let response = get(&app, &path).await;
        assert_error(&response, StatusCode::NOT_FOUND, "not_found");
        assert_valid("get_bulk_delete_catalog_items_job", &response);
    }
    // Another project's job is not found either.
    let other = app.token_for("other", &[Scope::CatalogsRead]).await;
    let response = app.send(klaviyo(&other, Method::GET, &format!("{ITEM_JOBS}/{job}"))).await;
    assert_error(&response, StatusCode::NOT_FOUND, "not_found");
}

async fn other_methods_are_405_in_the_envelope() {
    let app = app().await;
    for (method, path) in [
        (Method::DELETE, ITEM_JOBS.to_owned()),
        (Method::PATCH, format!("{CATEGORY_JOBS}/1")),
        (Method::POST, format!("{ITEM_JOBS}/1/")),
    ] {
        let response = app.send(klaviyo(&app.token, method.clone(), &path)).await;
        assert_error(&response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

async fn throttled_requests_get_429_with_an_integer_retry_after_and_create_nothing() {
    let settings =
        ["klaviyo-create-burst=2/10s".parse().expect("setting"), "klaviyo-read-burst=3/10s".parse().expect("setting")];
    let app = with_app(TestApp::with_rate_limits(&settings).await).await;
    for _ in 0..2 {
        assert_eq!(post(&app, ITEM_JOBS, &delete_body(&["A"])).await.status, StatusCode::ACCEPTED);
    }
    let limited = post(&app, ITEM_JOBS, &delete_body(&["B"])).await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "throttled");
    assert_valid("bulk_delete_catalog_items", &limited);
    let retry_after = limited.header("retry-after").expect("Retry-After");
    assert!(retry_after.parse::<u64>().is_ok_and(|s| s >= 1), "integer seconds: {retry_after}");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(&app, ITEM_JOBS).await);
    }
    let listed = statuses[0].json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2), "the limited POST created nothing");
    assert_eq!(statuses[3].status, StatusCode::TOO_MANY_REQUESTS);
    assert!(statuses[3].header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok()));
}

async fn finished_jobs_keep_their_relationships() {
    let app = app().await;
    let created = post(&app, CATEGORY_JOBS, &category_body(&[("APPAREL", Some("Clothes"), &[])])).await;
    let id = created.json()["data"]["id"].as_str().map(str::to_owned).expect("id");
    let deleted = post(&app, ITEM_JOBS, &delete_body(&["A"])).await;
    let item_job = deleted.json()["data"]["id"].as_str().map(str::to_owned).expect("id");
    app.run_jobs().await;
    let got = get(&app, &format!("{CATEGORY_JOBS}/{id}?include=categories")).await.json();
    assert_eq!(got["data"]["relationships"]["categories"]["data"][0]["id"], compound("APPAREL"));
    assert_eq!(got["included"][0]["attributes"]["name"], "Clothes");
    let got = get(&app, &format!("{ITEM_JOBS}/{item_job}")).await.json();
    assert_eq!(got["data"]["relationships"]["items"]["data"][0]["id"], compound("A"));
}

async fn the_default_catalog_is_configurable() {
    let mut app = TestApp::new().await;
    app.reconfigure(|state| state.klaviyo_catalog = "shop".into());
    app.post("/v1/catalogs", &json!({"name": "shop"})).await;
    let request = TestRequest::new(Method::POST, ITEM_JOBS)
        .header("authorization", &format!("Klaviyo-API-Key {}", app.token))
        .header("revision", REVISION)
        .raw_body("application/vnd.api+json", delete_body(&["A"]).to_string().into_bytes());
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    let jobs = app.get("/v1/jobs").await.json();
    assert_eq!(jobs["data"][0]["catalog"], "shop");
}

// ---------------------------------------------------------------------------------------------
// What no backend can store (catalog-domain's `storable`): Klaviyo refuses the request with the
// pointer of each bad value, creates nothing, and a clean request goes through

/// The `source.pointer` of every error entry.
fn pointers(response: &TestResponse) -> Vec<String> {
    response.json()["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["source"]["pointer"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn unstorable_ids_and_names_are_400_with_their_pointers() {
    let app = app().await;
    let long = "x".repeat(1_025);
    let items = post(&app, ITEM_JOBS, &delete_body(&["A", "N\u{0}UL", &long])).await;
    assert_error(&items, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(pointers(&items), ["/data/attributes/items/data/1/id", "/data/attributes/items/data/2/id"]);
    assert!(items.text.contains("NUL"), "{}", items.text);
    let categories = "/data/attributes/categories/data";
    type Category<'a> = (&'a str, Option<&'a str>, &'a [&'a str]);
    let cases: [(&[Category], String); 4] = [
        (&[("APPAREL", Some("App\u{0}arel"), &["A"])], format!("{categories}/0/attributes/name")),
        (
            &[("APPAREL", None, &["A"]), ("SHOES", None, &["B\u{0}"])],
            format!("{categories}/1/relationships/items/data/0/id"),
        ),
        (&[("SHOES", None, &[]), ("C\u{0}", None, &[])], format!("{categories}/1/id")),
        (&[("SHOES", None, &[]), (&long, None, &[])], format!("{categories}/1/id")),
    ];
    for (body, pointer) in cases {
        let response = post(&app, CATEGORY_JOBS, &category_body(body)).await;
        assert_error(&response, StatusCode::BAD_REQUEST, "invalid");
        assert_eq!(pointers(&response), [pointer]);
    }
    for path in [ITEM_JOBS, CATEGORY_JOBS] {
        assert_eq!(get(&app, path).await.json()["data"].as_array().map(Vec::len), Some(0), "{path}");
    }

    let clean = post(&app, CATEGORY_JOBS, &category_body(&[("APPAREL", Some("Apparel 2"), &["A", "B"])])).await;
    assert_eq!(clean.status, StatusCode::ACCEPTED, "{}", clean.text);
    let delete = post(&app, ITEM_JOBS, &delete_body(&["C"])).await;
    assert_eq!(delete.status, StatusCode::ACCEPTED, "{}", delete.text);
    app.run_jobs().await;
    let categories = app.get("/v1/catalogs/default/categories").await.json();
    assert_eq!(categories["data"][0]["name"], "Apparel 2", "{categories}");
    assert_eq!(categories["data"][0]["item_ids"], json!(["A", "B"]));
    assert_eq!(app.get("/v1/catalogs/default/items/C").await.status, StatusCode::NOT_FOUND);
}

async fn a_repeated_key_anywhere_is_400_on_the_document() {
    let app = app().await;
    let cases = [
        (ITEM_JOBS, r#"{"data": {"type": "catalog-item-bulk-delete-job", "type": "x", "attributes": {}}}"#),
        (
            ITEM_JOBS,
            r#"{"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": {"data": [
                {"type": "catalog-item", "id": "$custom:::$default:::A", "id": "$custom:::$default:::B"}]}}}}"#,
        ),
        (
            CATEGORY_JOBS,
            r#"{"data": {"type": "catalog-category-bulk-update-job", "attributes": {"categories": {"data": [
                {"type": "catalog-category", "id": "$custom:::$default:::S", "attributes": {"name": "a", "name": "b"}}]}}}}"#,
        ),
    ];
    for (path, body) in cases {
        let request = klaviyo(&app.token, Method::POST, path).raw_body("application/vnd.api+json", body.into());
        let response = app.send(request).await;
        assert_error(&response, StatusCode::BAD_REQUEST, "invalid");
        assert_eq!(pointers(&response), ["/"], "{body}");
        assert!(response.text.contains("duplicate key"), "{}", response.text);
    }
    assert_eq!(get(&app, ITEM_JOBS).await.json()["data"].as_array().map(Vec::len), Some(0));
}

async fn a_declared_oversize_body_is_413_before_it_is_read() {
    let app = app().await;
    let request =
        klaviyo(&app.token, Method::POST, ITEM_JOBS).unreadable_body("application/vnd.api+json", 5 * 1024 * 1024 + 1);
    let response = app.send(request).await;
    assert_error(&response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

/// An id of exactly `bytes` bytes that does not compress (PostgreSQL may compress a long index
/// entry; these must fit as they are): 4-byte characters from a simple generator.
fn incompressible_id(seed: u32, bytes: usize) -> String {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..bytes / 4)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from_u32(0x1_0000 + (state >> 8) % 0xE_0000).unwrap_or('\u{10000}')
        })
        .collect()
}

async fn ids_at_the_storage_cap_are_indexed_on_both_backends() {
    let app = app().await;
    let (category, member) = (incompressible_id(1, 1_024), incompressible_id(2, 1_024));
    assert_eq!((category.len(), member.len()), (1_024, 1_024));
    let input = CategoryInput {
        id: RawId::String(category.clone()),
        external_id: None,
        name: Some("Widest".into()),
        item_ids: Some(vec![member.clone()]),
    };
    // Through the store: no dialect creates a category with such an id, but Klaviyo may name one.
    let outcome = app
        .store
        .bulk_upsert_categories(app.project.id, "default", Dialect::Klaviyo, vec![input], &JobOptions::default())
        .await
        .expect("accepted");
    assert_eq!(outcome.results, [Ok(category.clone())]);
    let deleted = post(&app, ITEM_JOBS, &delete_body(&[&incompressible_id(3, 1_024)])).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    app.run_jobs().await;
    let jobs = app.get("/v1/jobs").await.json();
    for job in jobs["data"].as_array().into_iter().flatten() {
        assert_eq!((job["status"].as_str(), job["failed_count"].as_u64()), (Some("completed"), Some(0)), "{job}");
    }
    let categories = app.get("/v1/catalogs/default/categories").await.json();
    let widest = categories["data"].as_array().into_iter().flatten().find(|c| c["id"] == category.as_str());
    assert_eq!(widest.map(|c| c["item_ids"].clone()), Some(json!([member])));
}

catalog_api::on_both_backends!(
    seed_000_get_delete_items_jobs_has_the_seed_shape,
    seed_001_get_update_categories_jobs_has_the_seed_shape,
    create_item_delete_job_then_get_it_until_complete,
    create_category_update_job_and_read_it_with_included_categories,
    a_missing_category_is_a_job_error_with_every_field,
    old_revisions_send_a_plain_array_and_get_job_id,
    filters_select_by_status_with_either_quote,
    sparse_fieldsets_keep_only_the_named_attributes,
    paging_walks_more_than_100_jobs_both_ways_and_tolerates_the_sdk_cursor_quirks,
    listings_show_only_their_job_type_and_the_configured_catalog,
    links_use_the_host_and_forwarded_proto,
    successful_responses_carry_ratelimit_headers,
    missing_or_foreign_auth_scheme_is_401_not_authenticated,
    unknown_key_is_401_authentication_failed,
    missing_scope_is_403_permission_denied,
    missing_or_malformed_revision_is_400_on_the_revision_parameter,
    a_post_that_is_not_json_is_415,
    a_body_over_5_mb_is_413_and_creates_nothing,
    more_than_100_items_or_categories_is_400_with_the_pointer,
    bad_compound_ids_are_400_with_a_pointer_each,
    malformed_bodies_are_400_with_a_pointer,
    the_500th_job_in_progress_is_the_last_one_accepted,
    a_missing_default_catalog_is_400,
    bad_filters_are_400_on_the_filter_parameter,
    unknown_parameters_and_fields_are_400,
    unknown_jobs_are_404_not_found,
    other_methods_are_405_in_the_envelope,
    throttled_requests_get_429_with_an_integer_retry_after_and_create_nothing,
    finished_jobs_keep_their_relationships,
    the_default_catalog_is_configurable,
    unstorable_ids_and_names_are_400_with_their_pointers,
    a_repeated_key_anywhere_is_400_on_the_document,
    a_declared_oversize_body_is_413_before_it_is_read,
    ids_at_the_storage_cap_are_indexed_on_both_backends,
);
