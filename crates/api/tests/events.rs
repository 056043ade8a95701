//! Job events over SSE (`/v1/events`, `/v1/jobs/{id}/events`) and webhooks (`/v1/webhooks`),
//! through the real router on both backends; webhook deliveries go to real HTTP receivers (small
//! axum servers in the test) through the real sender.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use catalog_api::testing::{TestApp, TestRequest};
use catalog_api::webhooks::WebhookSettings;
use catalog_domain::events::RetrySchedule;
use catalog_store::Scope;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// A bound on every wait of this suite: a test that would hang fails instead. Nothing is
/// asserted on time.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
struct Message {
    id: i64,
    event: String,
    data: Value,
}

/// Parses complete SSE messages out of `buffer`, leaving an unfinished one there; comments
/// (`: keep-alive`) are dropped.
fn parse_messages(buffer: &mut String) -> Vec<Message> {
    let mut messages = Vec::new();
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        let (mut id, mut event, mut data) = (None, None, None);
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.parse().ok();
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = serde_json::from_str(v).ok();
            }
        }
        if let (Some(id), Some(event), Some(data)) = (id, event, data) {
            messages.push(Message { id, event, data });
        }
    }
    messages
}

/// An open SSE stream.
struct Stream {
    body: Body,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, request: TestRequest) -> Stream {
        let (status, headers, body) = app.open(request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
        Stream { body, buffer: String::new() }
    }

    /// Reads until `n` messages came, or the stream ended.
    async fn take(&mut self, n: usize) -> Vec<Message> {
        let mut got = Vec::new();
        while got.len() < n {
            let frame = tokio::time::timeout(PATIENCE, self.body.frame()).await.expect("no event in time");
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.push_str(&String::from_utf8_lossy(&data));
                        got.extend(parse_messages(&mut self.buffer));
                    }
                }
                _ => break,
            }
        }
        got
    }
}

async fn app_with_catalog() -> TestApp {
    let app = TestApp::new().await;
    let created = app.post("/v1/catalogs", &json!({"name": "shoes"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    app
}

async fn upsert(app: &TestApp, ids: &[&str]) -> i64 {
    let items: Vec<Value> = ids.iter().map(|id| json!({"id": id, "fields": {"n": 1}})).collect();
    let response = app.post("/v1/catalogs/shoes/items/bulk-upsert", &json!({"items": items})).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    response.json()["job"]["id"].as_i64().unwrap()
}

fn events_of(text: &str) -> Vec<Message> {
    let mut buffer = text.to_owned();
    parse_messages(&mut buffer)
}

async fn a_jobs_stream_replays_it_and_ends_after_its_last_event() {
    let app = app_with_catalog().await;
    let job = upsert(&app, &["a", "b"]).await;
    app.run_jobs().await;
    let response = app.get(&format!("/v1/jobs/{job}/events")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let messages = events_of(&response.text);
    let kinds: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(kinds, ["job.created", "job.started", "job.completed"], "{}", response.text);
    assert!(messages.windows(2).all(|w| w[0].id < w[1].id));
    for m in &messages {
        assert_eq!(m.data["id"], m.id);
        assert_eq!(m.data["type"], m.event.as_str());
        assert!(m.data["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(m.data["data"]["job"]["id"], job);
    }
    let done = &messages[2].data["data"]["job"];
    assert_eq!((done["status"].as_str(), done["completed_count"].as_u64()), (Some("completed"), Some(2)));
    // The view is the one GET /v1/jobs/{id} renders.
    assert_eq!(*done, app.get(&format!("/v1/jobs/{job}")).await.json());

    // Resumed: after Last-Event-ID (which wins over `after`), or after `?after=`.
    let resumed = app
        .send(
            TestRequest::new(Method::GET, &format!("/v1/jobs/{job}/events?after=0"))
                .bearer(&app.token)
                .header("last-event-id", &messages[1].id.to_string()),
        )
        .await;
    assert_eq!(events_of(&resumed.text), messages[2..]);
    let after = app.get(&format!("/v1/jobs/{job}/events?after={}", messages[0].id)).await;
    assert_eq!(events_of(&after.text), messages[1..]);
}

async fn the_project_stream_follows_new_events_with_filters() {
    let app = app_with_catalog().await;
    let before = upsert(&app, &["old"]).await;
    app.run_jobs().await;
    // Without Last-Event-ID the stream starts with what happens from now on.
    let mut everything = Stream::open(&app, TestRequest::new(Method::GET, "/v1/events").bearer(&app.token)).await;
    let mut ends = Stream::open(
        &app,
        TestRequest::new(Method::GET, "/v1/events?type=job.completed&type=job.failed,job.cancelled").bearer(&app.token),
    )
    .await;
    let job = upsert(&app, &["a"]).await;
    app.run_jobs().await;
    let got = everything.take(3).await;
    assert_eq!(
        got.iter().map(|m| m.event.as_str()).collect::<Vec<_>>(),
        ["job.created", "job.started", "job.completed"]
    );
    assert!(got.iter().all(|m| m.data["data"]["job"]["id"] == job), "{got:?}");
    let ended = ends.take(1).await;
    assert_eq!((ended[0].event.as_str(), &ended[0].data["data"]["job"]["id"]), ("job.completed", &json!(job)));

    // Resuming from the start replays the earlier job's events too; `job` and `status` filter.
    let replay = Stream::open(
        &app,
        TestRequest::new(Method::GET, &format!("/v1/events?job={before}&status=completed"))
            .bearer(&app.token)
            .header("last-event-id", "0"),
    )
    .await
    .take(1)
    .await;
    assert_eq!(replay[0].data["data"]["job"]["id"], before);
    assert_eq!(replay[0].event, "job.completed");
}

/// A second store on the same database stands for another `catalogd` process: the job it
/// accepts and runs reaches the first one's stream (on PostgreSQL through the outbox, with ids
/// given by whichever process sequences first).
async fn events_of_another_process_reach_the_stream() {
    let app = app_with_catalog().await;
    let mut stream = Stream::open(&app, TestRequest::new(Method::GET, "/v1/events").bearer(&app.token)).await;
    let other =
        catalog_store::Store::connect(&app.database_url(), catalog_store::StoreConfig::default()).await.unwrap();
    let outcome = other
        .bulk_delete_items(
            app.project.id,
            "shoes",
            catalog_domain::Dialect::Native,
            vec![catalog_domain::RawId::String("a".into())],
            &catalog_store::JobOptions::default(),
        )
        .await
        .unwrap();
    let job = outcome.job.unwrap().id.0;
    catalog_store::Runner::new(other.clone(), catalog_store::RunnerConfig::default()).run_until_idle().await.unwrap();
    let got = stream.take(3).await;
    assert_eq!(
        got.iter().map(|m| m.event.as_str()).collect::<Vec<_>>(),
        ["job.created", "job.started", "job.completed"]
    );
    assert!(got.iter().all(|m| m.data["data"]["job"]["id"] == job));
    other.close().await;
}

async fn streams_need_jobs_read_and_stay_in_the_project() {
    let app = app_with_catalog().await;
    let job = upsert(&app, &["a"]).await;
    let catalogs_only = app.token_for("acme", &[Scope::CatalogsRead, Scope::CatalogsWrite]).await;
    for path in ["/v1/events".to_owned(), format!("/v1/jobs/{job}/events"), "/v1/webhooks".to_owned()] {
        let refused = app.send(TestRequest::new(Method::GET, &path).bearer(&catalogs_only)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}: {}", refused.text);
    }
    let stranger = app.token_for("other", Scope::ALL).await;
    let hidden = app.send(TestRequest::new(Method::GET, &format!("/v1/jobs/{job}/events")).bearer(&stranger)).await;
    assert_eq!(
        (hidden.status, hidden.json()["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("job_not_found"))
    );
    for bad in ["/v1/events?type=completed", "/v1/events?nope=1", "/v1/events?after=-2", "/v1/events?status=done"] {
        let response = app.get(bad).await;
        assert_eq!(
            (response.status, response.json()["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query")),
            "{bad}"
        );
    }
    let bad_header =
        app.send(TestRequest::new(Method::GET, "/v1/events").bearer(&app.token).header("last-event-id", "x")).await;
    assert_eq!(bad_header.status, StatusCode::BAD_REQUEST);
}

async fn webhooks_are_created_listed_rotated_and_deleted() {
    let mut app = TestApp::new().await;
    let body = json!({"url": "https://hooks.example.com/catalogd", "events": ["job.completed", "job.failed"], "description": "ops"});
    let created = app.post("/v1/webhooks", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let hook = created.json();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!((hook["url"].clone(), hook["events"].clone()), (body["url"].clone(), body["events"].clone()));
    let id = hook["id"].as_i64().unwrap();

    let listed = app.get("/v1/webhooks").await.json();
    assert_eq!(listed["webhooks"][0]["id"], id);
    assert!(listed["webhooks"][0].get("secret").is_none(), "the secret is shown once");
    let one = app.get(&format!("/v1/webhooks/{id}")).await.json();
    assert_eq!((one["description"].as_str(), one.get("secret")), (Some("ops"), None));

    let rotated = app.post(&format!("/v1/webhooks/{id}/rotate-secret"), &json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert_ne!(rotated.json()["secret"].as_str(), Some(secret.as_str()));

    for (bad, pointer) in [
        (json!({"url": "http://127.0.0.1:9/h", "events": ["job.completed"]}), "/url"),
        (json!({"url": "http://localhost/h", "events": ["job.completed"]}), "/url"),
        (json!({"url": "ftp://example.com/h", "events": ["job.completed"]}), "/url"),
        (json!({"url": "https://example.com/h", "events": []}), "/events"),
        (json!({"url": "https://example.com/h", "events": ["completed"]}), "/events/0"),
    ] {
        let refused = app.post("/v1/webhooks", &bad).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}: {}", refused.text);
        assert_eq!(refused.json()["error"]["details"]["pointer"], pointer, "{}", refused.text);
    }
    let unknown =
        app.post("/v1/webhooks", &json!({"url": "https://example.com/h", "events": ["job.created"], "x": 1})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    app.reconfigure(|state| {
        state.webhooks = Arc::new(WebhookSettings { allow_private: true, ..WebhookSettings::default() })
    });
    let private = app.post("/v1/webhooks", &json!({"url": "http://127.0.0.1:9/h", "events": ["job.created"]})).await;
    assert_eq!(private.status, StatusCode::CREATED, "{}", private.text);

    let deleted = app.send(TestRequest::new(Method::DELETE, &format!("/v1/webhooks/{id}")).bearer(&app.token)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(
        (gone.status, gone.json()["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("webhook_not_found"))
    );
    let gone = app.get(&format!("/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------
// Deliveries to real receivers

/// One request a receiver got.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

/// A receiver: every request is sent on `requests`; while `hold` is set, each waits for
/// `release` before it answers.
#[derive(Clone)]
struct Receiver {
    requests: mpsc::UnboundedSender<Received>,
    hold: Arc<std::sync::atomic::AtomicBool>,
    release: Arc<Notify>,
    status: StatusCode,
}

async fn receive(
    axum::extract::State(receiver): axum::extract::State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let _ = receiver.requests.send(Received { headers, body });
    if receiver.hold.load(std::sync::atomic::Ordering::SeqCst) {
        receiver.release.notified().await;
    }
    receiver.status
}

/// Serves a receiver on `listener`; answers its address, its requests and its controls.
fn serve_receiver(
    listener: tokio::net::TcpListener,
    status: StatusCode,
) -> (String, mpsc::UnboundedReceiver<Received>, Receiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let receiver = Receiver { requests: tx, hold: Arc::default(), release: Arc::default(), status };
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, rx, receiver)
}

async fn receiver(status: StatusCode) -> (String, mpsc::UnboundedReceiver<Received>, Receiver) {
    serve_receiver(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), status)
}

/// Runs the real sender over the app's store until the returned guard drops.
struct Sender(Option<tokio::sync::oneshot::Sender<()>>, Option<tokio::task::JoinHandle<()>>);

impl Sender {
    fn start(app: &TestApp) -> Sender {
        Sender::start_with(app, true)
    }

    fn start_with(app: &TestApp, allow_private: bool) -> Sender {
        let settings = WebhookSettings {
            allow_private,
            retry: RetrySchedule { first_delay_ms: 50, ..RetrySchedule::default() },
            timeout: Duration::from_secs(20),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(catalog_api::webhook_sender::run(app.store.clone(), settings, async move {
            let _ = stopped.await;
        }));
        Sender(Some(stop), Some(task))
    }

    async fn stop(mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.1.take() {
            task.await.unwrap();
        }
    }
}

/// A webhook to a receiver on loopback, made in the store (the API refuses loopback targets
/// unless the operator allows them, as the CRUD test shows).
async fn create_hook(app: &TestApp, url: &str, events: &[&str]) -> (i64, String) {
    let events: Vec<_> = events.iter().map(|e| e.parse().unwrap()).collect();
    let hook = app.store.create_webhook(app.project.id, url, &events, None, catalog_store::now_ms()).await.unwrap();
    (hook.id, hook.secret)
}

async fn next(requests: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(PATIENCE, requests.recv()).await.expect("no delivery in time").expect("receiver gone")
}

/// Checks `Catalogd-Signature` the way a receiver would, with the HMAC computed here.
fn verify(received: &Received, secret: &str) -> Value {
    let header = received.headers.get("catalogd-signature").and_then(|v| v.to_str().ok()).expect("signed");
    let (t, v1) = header.split_once(',').expect("t=...,v1=...");
    let t = t.strip_prefix("t=").expect("t=");
    let v1 = v1.strip_prefix("v1=").expect("v1=");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", received.body).as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1, expected, "signature of {}", received.body);
    assert_eq!(received.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    serde_json::from_str(&received.body).unwrap()
}

async fn deliveries_are_signed_and_listed_and_can_be_sent_again() {
    let app = app_with_catalog().await;
    let (url, mut requests, _) = receiver(StatusCode::NO_CONTENT).await;
    let (hook, secret) = create_hook(&app, &url, &["job.created", "job.completed"]).await;
    let sender = Sender::start(&app);
    let job = upsert(&app, &["a", "b"]).await;
    app.run_jobs().await;
    let mut bodies = [verify(&next(&mut requests).await, &secret), verify(&next(&mut requests).await, &secret)];
    bodies.sort_by_key(|b| b["id"].as_i64());
    assert_eq!(
        bodies.iter().map(|b| b["type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["job.created", "job.completed"]
    );
    assert_eq!(bodies[1]["data"]["job"], app.get(&format!("/v1/jobs/{job}")).await.json());

    // Listed, newest first, once recorded.
    let deliveries = wait_for_deliveries(&app, hook, |d| d.iter().all(|d| d["status"] == "succeeded")).await;
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0]["event_type"], "job.completed");
    assert_eq!((deliveries[0]["response_code"].as_u64(), deliveries[0]["attempts"].as_u64()), (Some(204), Some(1)));
    assert_eq!(deliveries[0]["next_attempt_at"], Value::Null);

    let again =
        app.post(&format!("/v1/webhooks/{hook}/deliveries/{}/redeliver", deliveries[0]["id"]), &json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    let resent = verify(&next(&mut requests).await, &secret);
    assert_eq!(resent["id"], bodies[1]["id"]);
    wait_for_deliveries(&app, hook, |d| d[0]["attempts"] == 2 && d[0]["status"] == "succeeded").await;
    let missing = app.post(&format!("/v1/webhooks/{hook}/deliveries/999999/redeliver"), &json!({})).await;
    assert_eq!(missing.json()["error"]["code"], "delivery_not_found");
    sender.stop().await;
}

/// Reads the webhook's deliveries until `done` holds of them.
async fn wait_for_deliveries(app: &TestApp, hook: i64, done: impl Fn(&Vec<Value>) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let page = app.get(&format!("/v1/webhooks/{hook}/deliveries")).await.json();
        let rows = page["deliveries"].as_array().cloned().unwrap_or_default();
        if !rows.is_empty() && done(&rows) {
            return rows;
        }
        assert!(tokio::time::Instant::now() < deadline, "deliveries never got there: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_receiver_that_is_down_gets_the_event_once_it_is_back() {
    let app = app_with_catalog().await;
    // A port bound but not listening: connections to it are refused, and no other test's receiver
    // can take it meanwhile (a port released here was once handed to another test's receiver, which
    // got this test's deliveries). The receiver that comes back listens on the same socket.
    let parked = tokio::net::TcpSocket::new_v4().unwrap();
    parked.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = parked.local_addr().unwrap();
    let (hook, secret) = create_hook(&app, &format!("http://{address}/hook"), &["job.completed"]).await;
    let sender = Sender::start(&app);
    upsert(&app, &["a"]).await;
    app.run_jobs().await;
    let failed = wait_for_deliveries(&app, hook, |d| d[0]["attempts"].as_u64() >= Some(2)).await;
    assert_eq!((failed[0]["status"].as_str(), &failed[0]["response_code"]), (Some("pending"), &Value::Null));
    assert!(failed[0]["last_error"].as_str().is_some_and(|e| e.contains("connect")), "{failed:?}");
    assert!(failed[0]["next_attempt_at"].is_string());

    let (_, mut requests, _) = serve_receiver(parked.listen(1024).unwrap(), StatusCode::OK);
    let body = verify(&next(&mut requests).await, &secret);
    assert_eq!(body["type"], "job.completed");
    let done = wait_for_deliveries(&app, hook, |d| d[0]["status"] == "succeeded").await;
    assert!(done[0]["attempts"].as_u64() >= Some(3));
    sender.stop().await;
}

async fn a_slow_receiver_does_not_delay_another() {
    let app = app_with_catalog().await;
    let (slow_url, mut slow, slow_control) = receiver(StatusCode::OK).await;
    slow_control.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    let (fast_url, mut fast, _) = receiver(StatusCode::OK).await;
    let all = ["job.created", "job.started", "job.completed"];
    let (_, slow_secret) = create_hook(&app, &slow_url, &all).await;
    let (_, fast_secret) = create_hook(&app, &fast_url, &all).await;
    let sender = Sender::start(&app);
    upsert(&app, &["a"]).await;
    app.run_jobs().await;
    // The slow receiver holds its first request unanswered ...
    verify(&next(&mut slow).await, &slow_secret);
    // ... while the other gets all three.
    let mut types = Vec::new();
    for _ in 0..3 {
        types.push(verify(&next(&mut fast).await, &fast_secret)["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(types, all);
    assert!(slow.try_recv().is_err(), "one delivery at a time per webhook");
    slow_control.hold.store(false, std::sync::atomic::Ordering::SeqCst);
    slow_control.release.notify_waiters();
    for _ in 0..2 {
        verify(&next(&mut slow).await, &slow_secret);
    }
    sender.stop().await;
}

/// Without `--webhook-allow-private` the sender refuses a loopback target before each attempt
/// (a webhook made before the operator changed the setting, or a name that resolves so).
async fn the_sender_refuses_private_targets_unless_allowed() {
    let app = app_with_catalog().await;
    let (url, mut requests, _) = receiver(StatusCode::OK).await;
    let (hook, _) = create_hook(&app, &url.replace("127.0.0.1", "localhost"), &["job.created"]).await;
    let sender = Sender::start_with(&app, false);
    upsert(&app, &["a"]).await;
    let refused = wait_for_deliveries(&app, hook, |d| d[0]["attempts"].as_u64() >= Some(1)).await;
    assert!(refused[0]["last_error"].as_str().is_some_and(|e| e.contains("private")), "{refused:?}");
    assert_eq!(refused[0]["response_code"], Value::Null);
    assert!(requests.try_recv().is_err(), "nothing was sent");
    sender.stop().await;
}

/// A metrics recorder that keeps each series' latest value (counters and gauges: their sum;
/// histograms: how many values were recorded), keyed `name{label=value,...}`.
#[derive(Default, Clone)]
struct Captured(Arc<std::sync::Mutex<std::collections::BTreeMap<String, f64>>>);

struct Series(String, Captured);

impl Captured {
    fn get(&self, key: &str) -> f64 {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0.0)
    }

    fn add(&self, key: &str, value: f64) {
        *self.0.lock().unwrap().entry(key.to_owned()).or_default() += value;
    }

    fn series(&self, key: &metrics::Key) -> Arc<Series> {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let name =
            if labels.is_empty() { key.name().to_owned() } else { format!("{}{{{}}}", key.name(), labels.join(",")) };
        Arc::new(Series(name, self.clone()))
    }
}

impl metrics::CounterFn for Series {
    fn increment(&self, value: u64) {
        self.1.add(&self.0, value as f64);
    }
    fn absolute(&self, _: u64) {}
}

impl metrics::GaugeFn for Series {
    fn increment(&self, value: f64) {
        self.1.add(&self.0, value);
    }
    fn decrement(&self, value: f64) {
        self.1.add(&self.0, -value);
    }
    fn set(&self, _: f64) {}
}

impl metrics::HistogramFn for Series {
    fn record(&self, _: f64) {
        self.1.add(&self.0, 1.0);
    }
}

impl metrics::Recorder for Captured {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.series(key))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.series(key))
    }
    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.series(key))
    }
}

/// The events' series, under the names of the contract: open streams, deliveries by outcome,
/// delivery lag. (The test's runtime has one thread, so the recorder, local to it, sees all.)
async fn the_events_series_are_recorded() {
    let captured = Captured::default();
    let _recording = metrics::set_default_local_recorder(&captured);
    let app = app_with_catalog().await;
    let stream = Stream::open(&app, TestRequest::new(Method::GET, "/v1/events").bearer(&app.token)).await;
    assert_eq!(captured.get("catalogd_event_streams_open"), 1.0);
    drop(stream);
    assert_eq!(captured.get("catalogd_event_streams_open"), 0.0);

    let (url, mut requests, _) = receiver(StatusCode::OK).await;
    let (hook, _) = create_hook(&app, &url, &["job.created"]).await;
    let sender = Sender::start(&app);
    upsert(&app, &["a"]).await;
    next(&mut requests).await;
    wait_for_deliveries(&app, hook, |d| d[0]["status"] == "succeeded").await;
    sender.stop().await;
    assert_eq!(captured.get("catalogd_webhook_deliveries_total{outcome=succeeded}"), 1.0);
    assert_eq!(captured.get("catalogd_webhook_delivery_lag_seconds"), 1.0);
}

catalog_api::on_both_backends!(
    the_events_series_are_recorded,
    the_sender_refuses_private_targets_unless_allowed,
    a_jobs_stream_replays_it_and_ends_after_its_last_event,
    the_project_stream_follows_new_events_with_filters,
    events_of_another_process_reach_the_stream,
    streams_need_jobs_read_and_stay_in_the_project,
    webhooks_are_created_listed_rotated_and_deleted,
    deliveries_are_signed_and_listed_and_can_be_sent_again,
    a_receiver_that_is_down_gets_the_event_once_it_is_back,
    a_slow_receiver_does_not_delay_another,
);
