//! Storage trouble over HTTP: a full database is 507 `insufficient_storage` and a busy,
//! restarting or unreachable one 503 `unavailable`, both with `Retry-After`, in every dialect's
//! envelope; `/readyz` says not ready meanwhile, within its bound, and ready again once writes
//! succeed; with PostgreSQL unreachable requests fail after the acquire timeout instead of
//! hanging, and the runner carries on once it is back; a read-only database stops `catalogd
//! serve` at start with a message saying so. SQLite is filled with a capped file, PostgreSQL
//! trouble is raised by triggers with the server's own SQLSTATEs, and PostgreSQL goes away
//! behind a TCP proxy the test controls (the shared server is never stopped).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use catalog_api::limits::RateLimits;
use catalog_api::metrics::Metrics;
use catalog_api::testing::{Backend, ScratchDatabase};
use catalog_api::AppState;
use catalog_domain::ErrorCode;
use catalog_store::{Runner, RunnerConfig, Scope, Store, StoreConfig};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::Connection;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------------
// Harness: a router over a store of the test's choosing
// ---------------------------------------------------------------------------------------------

struct App {
    store: Store,
    router: Router,
    token: String,
    /// `Authorization` for Bloomreach: Basic base64(<key id>:<token>).
    basic: String,
}

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl App {
    /// A router over `url` with project `acme` (created unless `existing`) and a new key.
    async fn open(url: &str, config: StoreConfig) -> App {
        let store = Store::connect(url, config).await.unwrap();
        let project = match store.get_project_by_key("acme").await {
            Ok(project) => project,
            Err(_) => store.create_project("acme", "Acme").await.unwrap(),
        };
        let key = store.create_api_key(project.id, None, Scope::ALL).await.unwrap();
        let principal = store.authenticate(&key.token).await.unwrap().unwrap();
        let pair = format!("{}:{}", principal.key_id.0, key.token);
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        let state = AppState {
            store: store.clone(),
            rate_limits: Arc::new(RateLimits::new(&[])),
            metrics: Arc::new(Metrics::default()),
            max_body_bytes: 10 * 1024 * 1024,
            klaviyo_catalog: "default".into(),
            webhooks: Default::default(),
        };
        App { router: catalog_api::router(state), store, token: key.token, basic }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<(&str, &Value)>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path).header("host", "catalogd.test");
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if path.starts_with("/api/") {
            request = request.header("revision", "2026-07-15");
        }
        let body = match body {
            Some((content_type, value)) => {
                request = request.header("content-type", content_type);
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            retry_after: parts.headers.get("retry-after").map(|v| v.to_str().unwrap().to_owned()),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    async fn native(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.send(method, path, Some(&self.bearer()), body.map(|b| ("application/json", b))).await
    }

    async fn readyz(&self) -> Answer {
        self.send(Method::GET, "/readyz", None, None).await
    }

    /// A native bulk upsert of `n` items with 200-character fields: more than a page's worth.
    async fn upsert(&self, n: usize) -> Answer {
        let items: Vec<Value> =
            (0..n).map(|i| json!({"id": format!("item-{i}"), "fields": {"text": "x".repeat(200)}})).collect();
        self.native(Method::POST, "/v1/catalogs/c/items/bulk-upsert", Some(&json!({ "items": items }))).await
    }

    /// The catalogs every dialect writes to: `c` (native), `restaurants` (Braze), `products`
    /// (Bloomreach), `default` (Klaviyo).
    async fn create_catalogs(&self) {
        for name in ["c", "restaurants", "products", "default"] {
            let created = self.native(Method::POST, "/v1/catalogs", Some(&json!({ "name": name }))).await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        }
    }
}

/// A bulk write of each facade, each more than a page's worth: (dialect, answer).
async fn facade_writes(app: &App) -> Vec<(&'static str, Answer)> {
    let braze_items: Vec<Value> = (0..50).map(|i| json!({"id": format!("r{i}"), "Name": "n".repeat(200)})).collect();
    let braze = app
        .send(
            Method::PUT,
            "/catalogs/restaurants/items",
            Some(&app.bearer()),
            Some(("application/json", &json!({ "items": braze_items }))),
        )
        .await;
    let bloomreach_items: Vec<Value> =
        (0..50).map(|i| json!({"item_id": format!("p{i}"), "properties": {"title": "t".repeat(200)}})).collect();
    let bloomreach = app
        .send(
            Method::PUT,
            "/data/v2/projects/acme/catalogs/products/items",
            Some(&app.basic),
            Some(("application/json", &json!(bloomreach_items))),
        )
        .await;
    let klaviyo_ids: Vec<Value> = (0..100)
        .map(|i| json!({"type": "catalog-item", "id": format!("$custom:::$default:::{}{i}", "k".repeat(60))}))
        .collect();
    let klaviyo_body =
        json!({"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": {"data": klaviyo_ids}}}});
    let klaviyo = app
        .send(
            Method::POST,
            "/api/catalog-item-bulk-delete-jobs",
            Some(&format!("Klaviyo-API-Key {}", app.token)),
            Some(("application/vnd.api+json", &klaviyo_body)),
        )
        .await;
    vec![("braze", braze), ("bloomreach", bloomreach), ("klaviyo", klaviyo)]
}

/// Asserts `answer` is `code` in `dialect`'s envelope, with the code's status and Retry-After.
fn assert_trouble(dialect: &str, answer: &Answer, code: ErrorCode) {
    let status = StatusCode::from_u16(code.http_status()).unwrap();
    assert_eq!(answer.status, status, "{dialect}: {}", answer.body);
    let expected_retry = code.retry_after_secs().unwrap().to_string();
    assert_eq!(answer.retry_after.as_deref(), Some(expected_retry.as_str()), "{dialect}: Retry-After");
    let full = code == ErrorCode::InsufficientStorage;
    let body = &answer.body;
    match dialect {
        "native" => assert_eq!(body["error"]["code"], code.as_str(), "{body}"),
        "braze" => {
            let id = if full { "insufficient-storage" } else { "service-unavailable" };
            assert_eq!(body["errors"][0]["id"], id, "{body}");
            assert_eq!(body["message"], "Invalid Request", "{body}");
        }
        "bloomreach" => {
            let message = if full { "Insufficient storage" } else { "Service unavailable" };
            assert_eq!(body, &json!({"errors": {"_global": [message]}, "success": false}));
        }
        "klaviyo" => {
            let entry = &body["errors"][0];
            assert_eq!(entry["code"], if full { "insufficient_storage" } else { "service_unavailable" }, "{body}");
            assert_eq!(entry["status"], json!(status.as_u16()), "{body}");
        }
        "openreplay" => {
            assert_eq!(body["error"], if full { "insufficient storage" } else { "service unavailable" }, "{body}")
        }
        other => panic!("unknown dialect {other}"),
    }
}

fn assert_not_ready(answer: &Answer, reason: ErrorCode) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    assert_eq!(answer.body, json!({"status": "unavailable", "reason": reason.as_str()}));
    assert!(answer.retry_after.is_some());
}

fn assert_ready(answer: &Answer) {
    assert_eq!((answer.status, &answer.body), (StatusCode::OK, &json!({"status": "ready"})));
}

/// A fresh PostgreSQL database of the test's own (the harness's [`ScratchDatabase`]); an
/// unreachable server fails the test.
struct PgDatabase {
    scratch: ScratchDatabase,
    url: String,
}

impl PgDatabase {
    async fn create() -> Option<PgDatabase> {
        Backend::Postgres.require().await;
        let scratch = ScratchDatabase::new(Backend::Postgres).await;
        Some(PgDatabase { url: scratch.url().to_owned(), scratch })
    }

    /// The URL through `port` on 127.0.0.1 instead of the server's own address.
    fn url_via(&self, port: u16) -> String {
        let (scheme, rest) = self.scratch.url().split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap();
        let credentials = authority.rsplit_once('@').map_or(String::new(), |(c, _)| format!("{c}@"));
        format!("{scheme}://{credentials}127.0.0.1:{port}/{path}")
    }

    fn server_address(&self) -> String {
        let rest = self.scratch.url().split_once("://").unwrap().1;
        let authority = rest.split_once('/').unwrap().0;
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:5432")
        }
    }

    async fn exec(&self, sql: &str) {
        let mut connection = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut connection).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_full_database_is_507_on_every_surface_until_there_is_room() {
    let file = ScratchDatabase::new(Backend::Sqlite).await;
    // The catalogs and room to free later first, then the file capped at its size.
    {
        let setup = App::open(file.url(), StoreConfig::default()).await;
        setup.create_catalogs().await;
        setup.store.close().await;
        let mut raw = sqlx::SqliteConnection::connect(file.url()).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE filler (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64)
             INSERT INTO filler SELECT randomblob(4096) FROM n;",
        )
        .execute(&mut raw)
        .await
        .unwrap();
        raw.close().await.unwrap();
    }
    let pages: u32 = {
        let mut raw = sqlx::SqliteConnection::connect(file.url()).await.unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&mut raw).await.unwrap();
        pages.try_into().unwrap()
    };
    let app = App::open(file.url(), StoreConfig { sqlite_max_page_count: Some(pages), ..StoreConfig::default() }).await;
    let mut refused = None;
    for _ in 0..100 {
        let answer = app.upsert(50).await;
        if answer.status != StatusCode::ACCEPTED {
            refused = Some(answer);
            break;
        }
    }
    assert_trouble("native", &refused.expect("the file fills up"), ErrorCode::InsufficientStorage);
    for (dialect, answer) in facade_writes(&app).await {
        assert_trouble(dialect, &answer, ErrorCode::InsufficientStorage);
    }
    assert_not_ready(&app.readyz().await, ErrorCode::InsufficientStorage);
    // Reads are still served.
    assert_eq!(app.native(Method::GET, "/v1/catalogs", None).await.status, StatusCode::OK);

    // Room is made: ready again, and writes are accepted and applied.
    let mut raw = sqlx::SqliteConnection::connect(file.url()).await.unwrap();
    sqlx::query("DELETE FROM filler").execute(&mut raw).await.unwrap();
    assert_ready(&app.readyz().await);
    let accepted = app.upsert(50).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    Runner::new(app.store.clone(), RunnerConfig::default()).run_until_idle().await.unwrap();
    let job = app.native(Method::GET, &format!("/v1/jobs/{}", accepted.body["job"]["id"]), None).await;
    assert_eq!(job.body["status"], "completed", "{}", job.body);
    app.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_database_locked_by_another_process_is_503() {
    let file = ScratchDatabase::new(Backend::Sqlite).await;
    let app =
        App::open(file.url(), StoreConfig { busy_timeout: Duration::from_millis(20), ..StoreConfig::default() }).await;
    app.create_catalogs().await;
    let holder = sqlx::SqlitePool::connect(file.url()).await.unwrap();
    let lock = holder.begin_with("BEGIN IMMEDIATE").await.unwrap();
    assert_trouble("native", &app.upsert(5).await, ErrorCode::Unavailable);
    for (dialect, answer) in facade_writes(&app).await {
        assert_trouble(dialect, &answer, ErrorCode::Unavailable);
    }
    assert_not_ready(&app.readyz().await, ErrorCode::Unavailable);
    lock.rollback().await.unwrap();
    assert_ready(&app.readyz().await);
    assert_eq!(app.upsert(5).await.status, StatusCode::ACCEPTED);
    app.store.close().await;
    holder.close().await;
}

#[test]
fn serve_refuses_a_read_only_database_at_start() {
    let dir = support::temp_dir("trouble_read_only");
    support::admin(&dir, &["project", "create", "acme"]);
    let output = std::process::Command::new(support::BIN)
        .current_dir(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", "sqlite://catalogd.db?mode=ro"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run catalogd serve");
    assert!(!output.status.success(), "a read-only database must stop the server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot be written"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
async fn postgres_trouble_is_answered_in_every_dialect_and_readyz_follows_it() {
    let Some(db) = PgDatabase::create().await else { return };
    let app = App::open(&db.url, StoreConfig { max_connections: 4, ..StoreConfig::default() }).await;
    app.create_catalogs().await;
    let job = app.upsert(5).await.body["job"]["id"].clone();
    // Every request takes a quota, a write on PostgreSQL: these triggers make the server answer
    // every such write, every job insert and the readiness probe with the SQLSTATE in
    // trouble_code, as it would when its disk is full or it is shutting down.
    db.exec(
        "CREATE TABLE trouble_code (code TEXT);
         INSERT INTO trouble_code VALUES (NULL);
         CREATE FUNCTION make_trouble() RETURNS trigger LANGUAGE plpgsql AS $$
         DECLARE c TEXT;
         BEGIN
             SELECT code INTO c FROM trouble_code;
             IF c IS NOT NULL THEN RAISE EXCEPTION 'simulated storage trouble' USING ERRCODE = c; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER quota_trouble BEFORE INSERT OR UPDATE ON rate_limits FOR EACH ROW EXECUTE FUNCTION make_trouble();
         CREATE TRIGGER jobs_trouble BEFORE INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION make_trouble();
         CREATE TRIGGER probe_trouble BEFORE INSERT ON storage_probe FOR EACH ROW EXECUTE FUNCTION make_trouble();",
    )
    .await;
    for (sqlstate, code) in [("53100", ErrorCode::InsufficientStorage), ("57P01", ErrorCode::Unavailable)] {
        db.exec(&format!("UPDATE trouble_code SET code = '{sqlstate}'")).await;
        assert_trouble("native", &app.upsert(5).await, code);
        for (dialect, answer) in facade_writes(&app).await {
            assert_trouble(dialect, &answer, code);
        }
        let openreplay = app.send(Method::GET, "/public/acme/jobs", Some(&app.bearer()), None).await;
        assert_trouble("openreplay", &openreplay, code);
        let cancel = app.send(Method::DELETE, &format!("/public/acme/jobs/{job}"), Some(&app.bearer()), None).await;
        assert_trouble("openreplay", &cancel, code);
        assert_not_ready(&app.readyz().await, code);
        db.exec("UPDATE trouble_code SET code = NULL").await;
        assert_ready(&app.readyz().await);
    }
    assert_eq!(app.upsert(5).await.status, StatusCode::ACCEPTED);
    app.store.close().await;
}

/// A TCP proxy to PostgreSQL that the test can take down (every connection cut, new ones
/// accepted and never answered, as a server that is gone or silent) and bring back.
struct Proxy {
    port: u16,
    up: Arc<Mutex<bool>>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(server: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(Mutex::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accepting = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let forward = *up.lock().unwrap();
                    let server = server.clone();
                    let task = tokio::spawn(async move {
                        if forward {
                            if let Ok(mut upstream) = TcpStream::connect(&server).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                        } else {
                            // Silent: hold the connection, say nothing.
                            std::future::pending::<()>().await;
                            drop(client);
                        }
                    });
                    connections.lock().unwrap().push(task.abort_handle());
                }
            }
        });
        Proxy { port, up, connections, accepting }
    }

    fn down(&self) {
        *self.up.lock().unwrap() = false;
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn up(&self) {
        *self.up.lock().unwrap() = true;
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.down();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
async fn postgres_gone_requests_fail_after_the_acquire_timeout_and_the_runner_carries_on() {
    let Some(db) = PgDatabase::create().await else { return };
    let proxy = Proxy::start(db.server_address()).await;
    let acquire_timeout = Duration::from_secs(2);
    let config = StoreConfig { max_connections: 4, acquire_timeout, ..StoreConfig::default() };
    let app = App::open(&db.url_via(proxy.port), config).await;
    app.create_catalogs().await;
    let accepted = app.upsert(5).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let job = accepted.body["job"]["id"].as_i64().unwrap();

    proxy.down();
    // Readiness is bounded by its own wait, shorter than the pool's: it answers first.
    let readiness = app.store.readiness(Duration::from_millis(500)).await.expect_err("the server is gone");
    assert!(matches!(readiness, catalog_store::StoreError::TimedOut(_)), "{readiness:?}");
    assert_not_ready(&app.readyz().await, ErrorCode::Unavailable);
    // A request waits for a connection no longer than the acquire timeout, then is told to retry.
    let refused = app.native(Method::GET, "/v1/jobs", None).await;
    assert_trouble("native", &refused, ErrorCode::Unavailable);
    // A runner started during the outage waits for it to end.
    let runner = Runner::new(
        app.store.clone(),
        RunnerConfig { poll_interval: Duration::from_millis(50), ..RunnerConfig::default() },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        runner
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    proxy.up();
    assert_ready(&app.readyz().await);
    let project = app.store.get_project_by_key("acme").await.unwrap();
    let done = app.store.wait_for_job(project.id, catalog_store::JobId(job), Duration::from_secs(60)).await.unwrap();
    assert_eq!((done.status.as_str(), done.completed_count, done.attempt), ("completed", 5, 1), "no attempt lost");
    assert_eq!(app.upsert(5).await.status, StatusCode::ACCEPTED);
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    app.store.close().await;
}
