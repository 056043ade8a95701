//! A harness for tests of the HTTP layer: a router over a fresh SQLite store with one project and
//! one all-scopes key, and a one-call request helper. Public so every test crate (native API,
//! facades) shares it instead of each building its own.

use crate::limits::{RateLimitSetting, RateLimits};
use crate::metrics::Metrics;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use catalog_store::{Project, Runner, RunnerConfig, Scope, Store, StoreConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tower::ServiceExt;

/// A router on a temporary SQLite database, with a project `acme` and a token for it.
pub struct TestApp {
    /// The store behind the router.
    pub store: Store,
    /// The project every request is made for.
    pub project: Project,
    /// A token with every scope on `project`.
    pub token: String,
    /// The state the router was built with.
    pub state: AppState,
    router: Router,
    path: PathBuf,
}

/// One answered request.
#[derive(Debug)]
pub struct TestResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
}

impl TestResponse {
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request under construction.
pub struct TestRequest {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl TestRequest {
    /// A request with no headers and no body.
    pub fn new(method: Method, path: &str) -> Self {
        TestRequest { method, path: path.to_owned(), headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a JSON body with `Content-Type: application/json`.
    pub fn json(self, body: &Value) -> Self {
        self.raw_body("application/json", body.to_string().into_bytes())
    }

    /// Sets a body of any content type.
    pub fn raw_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers.push(("content-type".to_owned(), content_type.to_owned()));
        self.body = body;
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
}

static NEXT_DB: AtomicU64 = AtomicU64::new(0);

impl TestApp {
    /// A fresh app with default rate limits.
    pub async fn new() -> Self {
        Self::with_rate_limits(&[]).await
    }

    /// A fresh app with these rate-limit settings applied over the defaults.
    pub async fn with_rate_limits(settings: &[RateLimitSetting]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "catalogd_api_test_{}_{}.db",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        ));
        let store = Store::connect(&format!("sqlite://{}", path.display()), StoreConfig::default())
            .await
            .unwrap_or_else(|e| panic!("cannot open the test store: {e}"));
        let project = store.create_project("acme", "Acme").await.unwrap_or_else(|e| panic!("create project: {e}"));
        let token = store
            .create_api_key(project.id, None, Scope::ALL)
            .await
            .unwrap_or_else(|e| panic!("create key: {e}"))
            .token;
        let state = AppState {
            store: store.clone(),
            rate_limits: Arc::new(RateLimits::new(settings)),
            metrics: Arc::new(Metrics::default()),
            max_body_bytes: 10 * 1024 * 1024,
            klaviyo_catalog: "default".into(),
        };
        let router = crate::router(state.clone());
        TestApp { store, project, token, state, router, path }
    }

    /// Changes the router's state (a setting such as the Klaviyo catalog) and rebuilds the router.
    pub fn reconfigure(&mut self, change: impl FnOnce(&mut AppState)) {
        change(&mut self.state);
        self.router = crate::router(self.state.clone());
    }

    /// The URL of the app's database, for a second store on it (another process, as the admin
    /// CLI would be).
    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// A token for a new project `key` with `scopes`.
    pub async fn token_for(&self, key: &str, scopes: &[Scope]) -> String {
        let project = match self.store.get_project_by_key(key).await {
            Ok(project) => project,
            Err(_) => self.store.create_project(key, key).await.unwrap_or_else(|e| panic!("create project: {e}")),
        };
        self.store.create_api_key(project.id, None, scopes).await.unwrap_or_else(|e| panic!("create key: {e}")).token
    }

    /// Sends a request through the router.
    pub async fn send(&self, request: TestRequest) -> TestResponse {
        let mut builder = Request::builder().method(request.method).uri(&request.path);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Body::from(request.body)).unwrap_or_else(|e| panic!("bad test request: {e}"));
        let response = self.router.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// `GET path` as the test project.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(TestRequest::new(Method::GET, path).bearer(&self.token)).await
    }

    /// `POST path` with a JSON body as the test project.
    pub async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.send(TestRequest::new(Method::POST, path).bearer(&self.token).json(body)).await
    }

    /// Runs every due job to completion.
    pub async fn run_jobs(&self) {
        let runner = Runner::new(self.store.clone(), RunnerConfig::default());
        runner.run_until_idle().await.unwrap_or_else(|e| panic!("runner failed: {e}"));
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}
