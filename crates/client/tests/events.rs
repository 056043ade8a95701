//! Events and webhooks through a real catalogd (see `common`): `catalogctl events`, `jobs watch`
//! and `webhooks create|list|deliveries`; and a kill -9 of catalogd loses no webhook delivery.
//! Webhooks go to a minimal HTTP receiver in the test.

mod common;

use catalog_client::{BulkOptions, ItemInput};
use common::{Backend, Server};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A bound on every wait: a test that would hang fails instead. Nothing is asserted on time.
const PATIENCE: Duration = Duration::from_secs(90);

/// One request a receiver got: its head (lower-cased header lines) and body.
#[derive(Debug)]
struct Received {
    head: String,
    body: Value,
}

/// A minimal HTTP/1.1 receiver on loopback answering 200 to every request; each request is sent
/// on the channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else { continue };
                    let head = text[..end].to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if data.len() < end + 4 + length {
                        continue;
                    }
                    let body = serde_json::from_slice(&data[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                    let _ = tx.send(Received { head, body });
                    let _ =
                        socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                    return;
                }
            });
        }
    });
    (url, rx)
}

fn stdout_json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

async fn upsert(server: &Server, ids: &[&str]) -> i64 {
    let client = server.client();
    let items = ids.iter().map(|id| ItemInput::new(*id, serde_json::Map::new()));
    let report = client.bulk_upsert("shoes", items, &BulkOptions::default()).await.expect("upsert");
    let id = report.jobs().next().expect("a job").id;
    id
}

fn start(backend: Backend, label: &str) -> Option<Server> {
    let args = [
        "--webhook-allow-private",
        "--webhook-retry-delay-ms",
        "100",
        "--webhook-timeout-seconds",
        "2",
        "--lease-seconds",
        "2",
    ];
    Server::start_on(backend, label, &args)
}

async fn catalogctl_follows_events_and_manages_webhooks(backend: Backend) {
    let Some(server) = start(backend, "events-cli") else { return };
    server.client().create_catalog("shoes", None).await.expect("catalog");
    let (url, mut received) = receiver().await;
    let created = server.catalogctl(&["--output", "json", "webhooks", "create", &url, "--events", "job.completed"]);
    assert!(
        created.status.success(),
        "{} {}",
        String::from_utf8_lossy(&created.stdout),
        String::from_utf8_lossy(&created.stderr)
    );
    let hook = stdout_json(&created);
    assert!(hook["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{hook}");
    let hook_id = hook["id"].as_i64().expect("id");

    // `events` from the start (after id 0), one JSON event per line, read as it comes.
    let mut follower = Command::new(common::catalogctl_bin())
        .args(["--output", "json", "events", "--type", "job.completed", "--after", "0"])
        .env("CATALOGD_URL", &server.url)
        .env("CATALOGD_TOKEN", &server.token)
        .env("HOME", &server.dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("catalogctl events runs");
    let stdout = follower.stdout.take().expect("stdout");
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    let job = upsert(&server, &["a", "b"]).await;
    let watched = server.catalogctl(&["--output", "json", "jobs", "watch", &job.to_string()]);
    assert!(watched.status.success(), "{}", String::from_utf8_lossy(&watched.stderr));
    assert_eq!(stdout_json(&watched)["jobs"][0]["status"], "completed");

    let line = tokio::time::timeout(PATIENCE, lines.recv()).await.expect("an event in time").expect("a line");
    let event: Value = serde_json::from_str(&line).expect("a JSON event per line");
    assert_eq!((event["type"].as_str(), &event["data"]["job"]["id"]), (Some("job.completed"), &Value::from(job)));
    follower.kill().ok();
    follower.wait().ok();

    let delivery = tokio::time::timeout(PATIENCE, received.recv()).await.expect("a delivery in time").expect("sent");
    assert!(delivery.head.contains("catalogd-signature: t="), "{}", delivery.head);
    assert_eq!(delivery.body["id"], event["id"]);

    let listed = stdout_json(&server.catalogctl(&["--output", "json", "webhooks", "list"]));
    assert_eq!(listed["webhooks"][0]["id"], hook_id);
    assert!(listed["webhooks"][0].get("secret").is_none(), "{listed}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let page =
            stdout_json(&server.catalogctl(&["--output", "json", "webhooks", "deliveries", &hook_id.to_string()]));
        if page["deliveries"][0]["status"] == "succeeded" {
            assert_eq!(page["deliveries"][0]["response_code"], 200);
            assert_eq!(page["deliveries"][0]["event_id"], event["id"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never recorded: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = server.catalogctl(&["webhooks", "deliveries", &hook_id.to_string()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("succeeded"));
}

/// Jobs are accepted and catalogd is killed with SIGKILL at once, wherever it is (running jobs,
/// fanning out, sending); restarted on the same database, every job's created and completed
/// events reach the receiver (at least once).
async fn a_kill_9_loses_no_delivery(backend: Backend) {
    let Some(mut server) = start(backend, "events-kill") else { return };
    server.client().create_catalog("shoes", None).await.expect("catalog");
    let (url, mut received) = receiver().await;
    let created =
        server.catalogctl(&["--output", "json", "webhooks", "create", &url, "--events", "job.created,job.completed"]);
    assert!(
        created.status.success(),
        "{} {}",
        String::from_utf8_lossy(&created.stdout),
        String::from_utf8_lossy(&created.stderr)
    );
    let mut expected = BTreeSet::new();
    for i in 0..10 {
        let id = format!("item-{i}");
        let job = upsert(&server, &[id.as_str()]).await;
        expected.insert(("job.created".to_owned(), job));
        expected.insert(("job.completed".to_owned(), job));
    }
    server.kill_and_restart();
    let mut got = BTreeSet::new();
    while !expected.is_subset(&got) {
        let delivery = tokio::time::timeout(PATIENCE, received.recv())
            .await
            .unwrap_or_else(|_| panic!("missing deliveries: {:?}; log: {}", expected.difference(&got), server.log()))
            .expect("sent");
        let kind = delivery.body["type"].as_str().unwrap_or_default().to_owned();
        got.insert((kind, delivery.body["data"]["job"]["id"].as_i64().unwrap_or_default()));
    }
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both_backends!(catalogctl_follows_events_and_manages_webhooks, a_kill_9_loses_no_delivery);
