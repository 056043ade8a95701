//! A harness for tests of the HTTP layer: a router over a fresh store with one project and one
//! all-scopes key, and a one-call request helper. Public so every test crate (native API,
//! facades) shares it instead of each building its own.
//!
//! A store is a temporary SQLite file, or a PostgreSQL database of its own created on the server
//! at `CATALOGD_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`) and dropped with the
//! app. [`on_both_backends!`](crate::on_both_backends) declares each test of a suite once per
//! backend; [`TestApp::new`] builds on the backend of the test it runs in. The PostgreSQL halves
//! are `#[ignore]`d, so a plain `cargo test` reports them as ignored rather than passing them
//! unrun; `--include-ignored` runs them (`cargo xtask ci` adds it when PostgreSQL answers or `CI`
//! is set), and then an unreachable server fails them.

use crate::limits::{RateLimitSetting, RateLimits};
use crate::metrics::Metrics;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use catalog_store::{with_database, Project, Runner, RunnerConfig, Scope, Store, StoreConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::Connection as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tower::ServiceExt;

/// The database a [`TestApp`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh database on the PostgreSQL server at `CATALOGD_TEST_PG`.
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

impl Backend {
    /// The backend of the running test ([`Backend::run`]); SQLite outside one. The choice is
    /// task-local: build every [`TestApp`] in the test's own task, not in one it spawns.
    pub fn current() -> Backend {
        BACKEND.try_with(|backend| *backend).unwrap_or(Backend::Sqlite)
    }

    /// Runs `test` with every [`TestApp`] it builds on this backend. On PostgreSQL, a server that
    /// cannot be reached fails the test (its half runs only when asked for, see the module).
    pub async fn run(self, test: impl Future<Output = ()>) {
        self.require().await;
        BACKEND.scope(self, test).await;
    }

    /// Fails the test, saying what to do, when this backend is PostgreSQL and the server at
    /// `CATALOGD_TEST_PG` cannot be reached.
    pub async fn require(self) {
        if self == Backend::Postgres {
            let url = postgres_base_url();
            if let Err(error) = sqlx::PgConnection::connect(&url).await {
                panic!(
                    "PostgreSQL at {url} is unreachable ({error}): start it or set CATALOGD_TEST_PG, or run without \
                     --include-ignored to leave the PostgreSQL tests out (they are then listed as ignored)"
                );
            }
        }
    }
}

/// Declares each named `async fn` test once per backend: `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::testing::Backend::Sqlite.run(super::$name()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
                async fn $name() {
                    $crate::testing::Backend::Postgres.run(super::$name()).await;
                }
            )*
        }
    };
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_base_url() -> String {
    std::env::var("CATALOGD_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh, empty database, removed when dropped: what a [`TestApp`] runs on, or what a test that
/// starts its own server (the binary) points it at.
pub struct ScratchDatabase {
    url: String,
    _scratch: Scratch,
}

impl ScratchDatabase {
    /// A new database on `backend` (not yet migrated: a store connecting to it migrates it).
    pub async fn new(backend: Backend) -> Self {
        let (url, scratch) = scratch_database(backend).await;
        ScratchDatabase { url, _scratch: scratch }
    }

    /// Its URL, for `Store::connect` or `catalogd --database-url`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// What a [`ScratchDatabase`] removes when it is dropped.
enum Scratch {
    File(PathBuf),
    PostgresDatabase { admin_url: String, name: String },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match self {
            Scratch::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut path = path.clone().into_os_string();
                    path.push(suffix);
                    let _ = std::fs::remove_file(path);
                }
            }
            Scratch::PostgresDatabase { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop may run inside the test's runtime, which must not be blocked on: a thread
                // with a runtime of its own drops the database.
                let _ = std::thread::spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return;
                    };
                    runtime.block_on(async {
                        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                            let _ = sqlx::query(&drop).execute(&mut admin).await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A router on a fresh database, with a project `acme` and a token for it.
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
    database: ScratchDatabase,
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
    /// Reading the body panics: it must be refused on its headers alone.
    unreadable: bool,
}

impl TestRequest {
    /// A request with no headers and no body.
    pub fn new(method: Method, path: &str) -> Self {
        TestRequest { method, path: path.to_owned(), headers: Vec::new(), body: Vec::new(), unreadable: false }
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

    /// A body that declares `declared_length` bytes in `Content-Length` and panics, failing the
    /// test, if the server reads any of it: for checks that must refuse a request on its headers.
    pub fn unreadable_body(mut self, content_type: &str, declared_length: u64) -> Self {
        self.headers.push(("content-type".to_owned(), content_type.to_owned()));
        self.headers.push(("content-length".to_owned(), declared_length.to_string()));
        self.body = b"{}".to_vec();
        self.unreadable = true;
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
}

static NEXT_DB: AtomicU64 = AtomicU64::new(0);

/// A name no other test of any process uses at the same time.
fn scratch_name() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("catalogd_api_t_{}_{}_{nanos}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed))
}

/// A fresh, empty database on `backend`: its URL, and what removes it.
async fn scratch_database(backend: Backend) -> (String, Scratch) {
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{}.db", scratch_name()));
            (format!("sqlite://{}", path.display()), Scratch::File(path))
        }
        Backend::Postgres => {
            let admin_url = postgres_base_url();
            let mut admin = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
            let name = scratch_name();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
            let _ = admin.close().await;
            (with_database(&admin_url, &name), Scratch::PostgresDatabase { admin_url, name })
        }
    }
}

impl TestApp {
    /// A fresh app with default rate limits.
    pub async fn new() -> Self {
        Self::with_rate_limits(&[]).await
    }

    /// A fresh app with these rate-limit settings applied over the defaults, on the backend of the
    /// running test ([`Backend::current`]).
    pub async fn with_rate_limits(settings: &[RateLimitSetting]) -> Self {
        let database = ScratchDatabase::new(Backend::current()).await;
        let url = database.url();
        // Few connections: many tests, and other suites, share one PostgreSQL server.
        let config = StoreConfig { max_connections: 4, ..StoreConfig::default() };
        let store =
            Store::connect(url, config).await.unwrap_or_else(|e| panic!("cannot open the test store at {url}: {e}"));
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
            webhooks: Arc::default(),
        };
        let router = crate::router(state.clone());
        TestApp { store, project, token, state, router, database }
    }

    /// Changes the router's state (a setting such as the Klaviyo catalog) and rebuilds the router.
    pub fn reconfigure(&mut self, change: impl FnOnce(&mut AppState)) {
        change(&mut self.state);
        self.router = crate::router(self.state.clone());
    }

    /// The URL of the app's database, for a second store on it (another process, as the admin
    /// CLI would be).
    pub fn database_url(&self) -> String {
        self.database.url.clone()
    }

    /// The backend the app runs on.
    pub fn backend(&self) -> Backend {
        if self.database.url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
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
        let body = if request.unreadable {
            let armed = request.unreadable;
            let read = move |frame| {
                if armed {
                    panic!("the server read a body it should have refused on its Content-Length");
                }
                frame
            };
            Body::new(http_body_util::Full::new(axum::body::Bytes::from(request.body)).map_frame(read))
        } else {
            Body::from(request.body)
        };
        let request = builder.body(body).unwrap_or_else(|e| panic!("bad test request: {e}"));
        let response = self.router.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Sends a request through the router and answers with its body unread: for streams, which
    /// a test reads frame by frame ([`http_body_util::BodyExt::frame`]).
    pub async fn open(&self, request: TestRequest) -> (StatusCode, HeaderMap, Body) {
        let mut builder = Request::builder().method(request.method).uri(&request.path);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Body::from(request.body)).unwrap_or_else(|e| panic!("bad test request: {e}"));
        let response = self.router.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        (parts.status, parts.headers, body)
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
