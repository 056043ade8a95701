//! The OpenAPI document against the router that serves it: every `$ref` resolves, every route is
//! documented with exactly its methods, and the documented constraints are the ones the server
//! enforces, at their boundaries.

#![allow(clippy::unwrap_used)]

use axum::http::{Method, StatusCode};
use catalog_api::native::{openapi_json, MAX_IDEMPOTENCY_KEY_LEN, MAX_PAGE_LIMIT, MAX_WAIT_SECS};
use catalog_api::testing::{TestApp, TestRequest, TestResponse};
use catalog_domain::{Dialect, MAX_CATALOG_NAME_LEN};
use regex_automata::meta::Regex;
use serde_json::{json, Value};

fn document() -> Value {
    serde_json::from_str(openapi_json()).expect("the document is JSON")
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                refs.push(target.clone());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

/// The schema at a `#/...` reference.
fn resolve<'d>(doc: &'d Value, target: &str) -> Option<&'d Value> {
    doc.pointer(target.strip_prefix('#')?)
}

fn pattern(schema: &Value) -> Regex {
    Regex::new(schema["pattern"].as_str().expect("a pattern")).expect("the pattern compiles")
}

fn fully_matches(regex: &Regex, text: &str) -> bool {
    // Documented patterns are anchored; a match must still cover the whole text.
    regex.find(text).is_some_and(|m| m.start() == 0 && m.end() == text.len())
}

#[test]
fn every_ref_resolves_and_the_served_document_is_the_committed_one() {
    let doc = document();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "only {} references", refs.len());
    for target in &refs {
        assert!(resolve(&doc, target).is_some(), "{target} does not resolve");
    }
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json"))
        .expect("docs/openapi.json");
    assert_eq!(committed, openapi_json(), "docs/openapi.json is stale: run `cargo xtask codegen`");
}

/// A concrete path for a template: `{catalog}` and `{id}` filled with values that parse.
fn concrete(template: &str) -> String {
    template.replace("{catalog}", "shoes").replace("{id}", "1").replace("{delivery_id}", "1")
}

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method_is() {
    let app = TestApp::new().await;
    let doc = document();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 19, "{} paths", paths.len());
    for (template, item) in paths {
        for method in METHODS {
            let documented = item.get(method.as_str().to_ascii_lowercase()).is_some();
            let mut request = TestRequest::new(method.clone(), &concrete(template)).bearer(&app.token);
            if method == Method::POST {
                request = request.json(&json!({}));
            }
            // A live stream never ends: its status and headers are all there is to check.
            let streams = item[method.as_str().to_ascii_lowercase()]["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some();
            let response = if streams {
                let (status, headers, _) = app.open(request).await;
                TestResponse { status, headers, text: String::new() }
            } else {
                app.send(request).await
            };
            let code = response.json()["error"]["code"].as_str().unwrap_or_default().to_owned();
            if documented {
                // Reached the route: neither the fallback's `not_found` nor a 405.
                assert!(
                    response.status != StatusCode::METHOD_NOT_ALLOWED && code != "not_found",
                    "{method} {template} is documented but not served: {} {}",
                    response.status,
                    response.text
                );
                let status = response.status.as_str().to_owned();
                let operation = &item[method.as_str().to_ascii_lowercase()];
                assert!(
                    operation["responses"].get(&status).is_some(),
                    "{method} {template} answered {status}, which it does not document: {}",
                    response.text
                );
            } else {
                assert_eq!(
                    (response.status, code.as_str()),
                    (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
                    "{method} {template} is served but not documented: {}",
                    response.text
                );
            }
        }
    }
}

#[test]
fn documented_constraints_are_the_domain_rules() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let native_id = &schemas["NativeId"];
    let max_id = Dialect::Native.limits().max_id_len.expect("native ids are capped");
    assert_eq!(native_id["maxLength"], json!(max_id));
    let id = pattern(native_id);
    for ch in (0u8..=0x7f).map(char::from).chain(['é', '\u{0}', '😀']) {
        let text = ch.to_string();
        assert_eq!(
            fully_matches(&id, &text),
            catalog_domain::check_id(Dialect::Native, &text).is_ok(),
            "{ch:?}: the pattern and the rule disagree"
        );
    }
    assert!(fully_matches(&id, &"a".repeat(max_id)));
    assert!(!fully_matches(&id, &"a".repeat(max_id + 1)));
    assert!(!fully_matches(&id, ""));

    let name = &schemas["CatalogName"];
    assert_eq!(name["maxLength"], json!(MAX_CATALOG_NAME_LEN));
    let name_pattern = pattern(name);
    assert!(fully_matches(&name_pattern, &"n".repeat(MAX_CATALOG_NAME_LEN)));
    assert!(!fully_matches(&name_pattern, &"n".repeat(MAX_CATALOG_NAME_LEN + 1)));

    let max_items = Dialect::Native.limits().max_items_per_request;
    for body in ["IdsBody", "ItemsBody", "CategoriesBody"] {
        let inputs = schemas[body]["properties"].as_object().expect("properties");
        let (_, array) = inputs.iter().find(|(_, s)| s["type"] == "array").expect("the inputs array");
        assert_eq!((array["minItems"].as_u64(), array["maxItems"].as_u64()), (Some(1), Some(max_items as u64)));
        let valid = resolve(&doc, array["contains"]["$ref"].as_str().expect("contains a reference"));
        assert!(valid.is_some(), "{body}: `contains` does not resolve");
    }
    // Per-input rules are not schema-required of each element: an element without `id` is a
    // per-input rejection, not a refused request. `fields` is the request's shape: an element
    // without it (a flat item) refuses the request.
    assert_eq!(schemas["ItemEntry"]["required"], json!(["fields"]));
    assert_eq!(schemas["ItemInputSchema"]["required"], json!(["id", "fields"]));

    let jobs = &doc["paths"]["/v1/jobs"]["get"]["parameters"];
    let param = |name: &str| jobs.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["schema"].clone();
    assert_eq!(
        (param("limit")["minimum"].as_u64(), param("limit")["maximum"].as_u64()),
        (Some(1), Some(MAX_PAGE_LIMIT.into()))
    );
    let statuses = pattern(&param("status"));
    for text in ["", "queued", "queued,running", ",completed,,failed,"] {
        assert!(fully_matches(&statuses, text), "{text:?}");
    }
    for text in ["queuedrunning", "queued, running", "done"] {
        assert!(!fully_matches(&statuses, text), "{text:?}");
    }
    let bulk = &doc["paths"]["/v1/catalogs/{catalog}/items/bulk-delete"]["post"]["parameters"];
    let key = bulk.as_array().unwrap().iter().find(|p| p["name"] == "Idempotency-Key").unwrap();
    let key = pattern(&key["schema"]);
    for (text, ok) in [("k", true), (" k\t", true), ("a b", true), ("", false), (" ", false), ("é", false)] {
        assert_eq!(fully_matches(&key, text), ok, "{text:?}");
    }
    assert!(fully_matches(&key, &"k".repeat(MAX_IDEMPOTENCY_KEY_LEN)));
    assert!(!fully_matches(&key, &"k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1)));
    let wait = &doc["paths"]["/v1/jobs/{id}"]["get"]["parameters"][1]["schema"];
    assert_eq!((wait["minimum"].as_u64(), wait["maximum"].as_u64()), (Some(0), Some(MAX_WAIT_SECS)));
}

#[tokio::test]
async fn the_server_refuses_what_the_schema_refuses_at_each_boundary() {
    let app = TestApp::new().await;
    assert_eq!(app.post("/v1/catalogs", &json!({"name": "shoes"})).await.status, StatusCode::CREATED);
    let refused = |response: &catalog_api::testing::TestResponse| response.status == StatusCode::BAD_REQUEST;

    for (limit, ok) in [(0, false), (1, true), (MAX_PAGE_LIMIT, true), (MAX_PAGE_LIMIT + 1, false)] {
        let response = app.get(&format!("/v1/catalogs?limit={limit}")).await;
        assert_eq!(!refused(&response), ok, "limit={limit}: {}", response.text);
    }
    for (wait, ok) in [(MAX_WAIT_SECS, true), (MAX_WAIT_SECS + 1, false)] {
        let response = app.get(&format!("/v1/jobs/1?wait={wait}")).await;
        // A job that does not exist is 404 at once; an out-of-range wait is refused first.
        assert_eq!(!refused(&response), ok, "wait={wait}: {}", response.text);
    }
    let long_name = "n".repeat(MAX_CATALOG_NAME_LEN + 1);
    assert!(refused(&app.post("/v1/catalogs", &json!({"name": long_name})).await));
    assert!(refused(&app.get(&format!("/v1/jobs?catalog={long_name}")).await));
    assert!(refused(&app.get("/v1/jobs?catalog=no%20spaces").await));
    assert_eq!(app.get("/v1/jobs?catalog=shoes").await.status, StatusCode::OK);

    let max_items = Dialect::Native.limits().max_items_per_request;
    let ids = |n: usize| (0..n).map(|i| format!("id{i}")).collect::<Vec<_>>();
    for (key, ok) in [("k".repeat(MAX_IDEMPOTENCY_KEY_LEN), true), ("k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1), false)] {
        let request = TestRequest::new(Method::POST, "/v1/catalogs/shoes/items/bulk-delete")
            .bearer(&app.token)
            .header("idempotency-key", &key)
            .json(&json!({"ids": ["a"]}));
        assert_eq!(!refused(&app.send(request).await), ok, "a key of {} characters", key.len());
    }
    assert!(refused(&app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": []})).await));
    assert!(refused(&app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ids(max_items + 1)})).await));
    let full = app.post("/v1/catalogs/shoes/items/bulk-delete", &json!({"ids": ids(max_items)})).await;
    assert_eq!(full.status, StatusCode::ACCEPTED, "{}", full.text);
    // `contains`: one valid input is enough, the others are rejected one by one...
    let mixed = app
        .post("/v1/catalogs/shoes/items/bulk-upsert", &json!({"items": [{"fields": {}}, {"id": "ok", "fields": {}}]}))
        .await;
    assert_eq!(mixed.status, StatusCode::ACCEPTED, "{}", mixed.text);
    assert_eq!(mixed.json()["results"][0]["status"], "rejected");
    // ...none is refused, and so is any invalid one under `atomic`.
    assert!(refused(&app.post("/v1/catalogs/shoes/items/bulk-upsert", &json!({"items": [{"fields": {}}]})).await));
    let atomic = json!({"items": [{"fields": {}}, {"id": "ok", "fields": {}}], "atomic": true});
    assert!(refused(&app.post("/v1/catalogs/shoes/items/bulk-upsert", &atomic).await));
}

#[tokio::test]
async fn real_cursors_match_their_documented_patterns() {
    let app = TestApp::new().await;
    for name in ["a", "b"] {
        assert_eq!(app.post("/v1/catalogs", &json!({"name": name})).await.status, StatusCode::CREATED);
    }
    let items = json!({"items": [{"id": "x", "fields": {}}, {"id": "y", "fields": {}}]});
    assert_eq!(app.post("/v1/catalogs/a/items/bulk-upsert", &items).await.status, StatusCode::ACCEPTED);
    let categories = json!({"categories": [{"id": "x"}, {"id": "y"}]});
    assert_eq!(app.post("/v1/catalogs/a/categories/bulk-upsert", &categories).await.status, StatusCode::ACCEPTED);
    let patch = json!({"items": [{"id": "missing1", "fields": {}}, {"id": "missing2", "fields": {}}]});
    let patched = app.post("/v1/catalogs/a/items/bulk-patch", &patch).await.json();
    app.run_jobs().await;
    let job = patched["job"]["id"].as_i64().expect("a job");

    let doc = document();
    for (template, path) in [
        ("/v1/catalogs", "/v1/catalogs".to_owned()),
        ("/v1/catalogs/{catalog}/items", "/v1/catalogs/a/items".to_owned()),
        ("/v1/catalogs/{catalog}/categories", "/v1/catalogs/a/categories".to_owned()),
        ("/v1/jobs", "/v1/jobs".to_owned()),
        ("/v1/jobs/{id}/errors", format!("/v1/jobs/{job}/errors")),
    ] {
        let params = doc["paths"][template]["get"]["parameters"].as_array().expect("parameters");
        let cursor = params.iter().find(|p| p["name"] == "cursor").expect("a cursor parameter");
        let page = app.get(&format!("{path}?limit=1")).await.json();
        let next = page["next_cursor"].as_str().unwrap_or_else(|| panic!("{path}: no next page: {page}"));
        assert!(fully_matches(&pattern(&cursor["schema"]), next), "{path}: {next} breaks {}", cursor["schema"]);
        let second = app.get(&format!("{path}?limit=1&cursor={next}")).await;
        assert_eq!(second.status, StatusCode::OK, "{path}: {}", second.text);
    }
}
