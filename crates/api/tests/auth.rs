//! The `Authorization` rule in every dialect (native Bearer, Braze Bearer, Bloomreach Basic,
//! Klaviyo `Klaviyo-API-Key`, OpenReplay Bearer): exactly one header reading `<scheme> <token68>`
//! with one space; anything else is 401, two headers 400 in the dialect's own envelope, and
//! neither runs the route.
//!
//! SQLite only: what is checked happens before any storage is touched beyond the key lookup,
//! which is the same query on both backends (the suites of each dialect cover it there).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use catalog_api::testing::{TestApp, TestRequest, TestResponse};
use serde_json::{json, Value};

/// One dialect: a read route that answers 200 to good credentials, the scheme, the credentials
/// that go after it, and a check of the 400 envelope.
struct Dialect {
    name: &'static str,
    path: &'static str,
    scheme: &'static str,
    credentials: String,
    extra: &'static [(&'static str, &'static str)],
    is_its_400: fn(&Value) -> bool,
}

async fn dialects(app: &TestApp) -> Vec<Dialect> {
    let key_id = app.store.authenticate(&app.token).await.unwrap().unwrap().key_id.0;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key_id}:{}", app.token));
    vec![
        Dialect {
            name: "native",
            path: "/v1/catalogs",
            scheme: "Bearer",
            credentials: app.token.clone(),
            extra: &[],
            is_its_400: |body| body["error"]["code"] == "invalid_request",
        },
        Dialect {
            name: "braze",
            path: "/catalogs",
            scheme: "Bearer",
            credentials: app.token.clone(),
            extra: &[],
            is_its_400: |body| body["errors"][0]["id"] == "invalid-authorization" && body["message"].is_string(),
        },
        Dialect {
            name: "bloomreach",
            path: "/data/v2/projects/acme/catalogs",
            scheme: "Basic",
            credentials: basic,
            extra: &[],
            is_its_400: |body| body["success"] == false && body["errors"]["_global"][0].is_string(),
        },
        Dialect {
            name: "klaviyo",
            path: "/api/catalog-item-bulk-delete-jobs",
            scheme: "Klaviyo-API-Key",
            credentials: app.token.clone(),
            extra: &[("revision", "2026-07-15")],
            is_its_400: |body| {
                let entry = &body["errors"][0];
                entry["status"] == 400
                    && entry["code"] == "invalid"
                    && entry["source"] == json!({"parameter": "Authorization"})
            },
        },
        Dialect {
            name: "openreplay",
            path: "/public/acme/jobs",
            scheme: "Bearer",
            credentials: app.token.clone(),
            extra: &[],
            is_its_400: |body| body["error"].is_string(),
        },
    ]
}

async fn call(app: &TestApp, dialect: &Dialect, authorizations: &[String]) -> TestResponse {
    let mut request = TestRequest::new(Method::GET, dialect.path);
    for value in authorizations {
        request = request.header("authorization", value);
    }
    for (name, value) in dialect.extra {
        request = request.header(name, value);
    }
    app.send(request).await
}

#[tokio::test]
async fn the_exact_form_passes_with_the_scheme_in_any_case() {
    let app = TestApp::new().await;
    for dialect in dialects(&app).await {
        let (scheme, credentials) = (dialect.scheme, &dialect.credentials);
        for value in [
            format!("{scheme} {credentials}"),
            format!("{} {credentials}", scheme.to_lowercase()),
            format!("{} {credentials}", scheme.to_uppercase()),
        ] {
            let response = call(&app, &dialect, std::slice::from_ref(&value)).await;
            assert_eq!(response.status, StatusCode::OK, "{} {value:?}: {}", dialect.name, response.text);
        }
    }
}

#[tokio::test]
async fn any_other_form_is_401() {
    let app = TestApp::new().await;
    for dialect in dialects(&app).await {
        let (scheme, credentials) = (dialect.scheme, &dialect.credentials);
        let other_scheme = if scheme == "Basic" { "Bearer" } else { "Basic" };
        let cases = [
            ("no header", None),
            ("two spaces", Some(format!("{scheme}  {credentials}"))),
            ("a tab", Some(format!("{scheme}\t{credentials}"))),
            ("a trailing space", Some(format!("{scheme} {credentials} "))),
            ("a leading space", Some(format!(" {scheme} {credentials}"))),
            ("no space", Some(format!("{scheme}{credentials}"))),
            ("no token", Some(format!("{scheme} "))),
            ("the scheme alone", Some(scheme.to_owned())),
            ("a second word", Some(format!("{scheme} {credentials} {credentials}"))),
            ("a parameter after the token", Some(format!("{scheme} {credentials},realm=x"))),
            ("a character outside token68", Some(format!("{scheme} {credentials}!"))),
            ("another scheme", Some(format!("{other_scheme} {credentials}"))),
            ("the token alone", Some(credentials.clone())),
        ];
        for (case, value) in cases {
            let values: Vec<String> = value.into_iter().collect();
            let response = call(&app, &dialect, &values).await;
            assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{} with {case}: {}", dialect.name, response.text);
        }
    }
}

#[tokio::test]
async fn two_headers_are_400_in_the_dialects_envelope() {
    let app = TestApp::new().await;
    for dialect in dialects(&app).await {
        let good = format!("{} {}", dialect.scheme, dialect.credentials);
        for (case, values) in [
            ("the same header twice", vec![good.clone(), good.clone()]),
            ("a good one then a bad one", vec![good.clone(), format!("{} nope", dialect.scheme)]),
            ("a bad one then a good one", vec![format!("{} nope", dialect.scheme), good.clone()]),
        ] {
            let response = call(&app, &dialect, &values).await;
            assert_eq!(response.status, StatusCode::BAD_REQUEST, "{} with {case}: {}", dialect.name, response.text);
            assert!((dialect.is_its_400)(&response.json()), "{} with {case}: {}", dialect.name, response.text);
        }
    }
}

/// A refused request runs nothing: a bulk write with two headers creates no job.
#[tokio::test]
async fn a_refused_write_creates_no_job() {
    let app = TestApp::new().await;
    let created = app.post("/v1/catalogs", &json!({"name": "shoes"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let good = format!("Bearer {}", app.token);
    let path = "/v1/catalogs/shoes/items/bulk-delete";
    let body = json!({"ids": ["a"]});
    let twice = app
        .send(
            TestRequest::new(Method::POST, path)
                .header("authorization", &good)
                .header("authorization", &good)
                .json(&body),
        )
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST, "{}", twice.text);
    let padded = app
        .send(
            TestRequest::new(Method::POST, path).header("authorization", &format!("Bearer  {}", app.token)).json(&body),
        )
        .await;
    assert_eq!(padded.status, StatusCode::UNAUTHORIZED, "{}", padded.text);
    let jobs = app.get("/v1/jobs").await;
    assert_eq!(jobs.status, StatusCode::OK, "{}", jobs.text);
    assert_eq!(jobs.json()["data"], json!([]), "{}", jobs.text);
}
