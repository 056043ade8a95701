//! Shutdown of the real binary: the first SIGTERM answers open `?wait=` long polls at once with
//! their job as it stands and exits 0 saying so; a second signal during the shutdown exits at once.
//! Both on SQLite and on PostgreSQL. The tests wait for events (a log line, an answer, the exit),
//! never for time to pass; the deadlines are failure guards only.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use catalog_api::testing::{Backend, ScratchDatabase};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{create_project_and_key_on, free_port, launch, serve_args, temp_dir, Server, BIN};

/// Failure guard for every wait below.
const GUARD: Duration = Duration::from_secs(60);

/// One HTTP/1.1 request on a new connection; the status and the body of the answer.
fn request(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

/// Waits until the server's log (`dir/server-PORT.log`) holds `needle`.
fn wait_for_log(dir: &Path, port: u16, needle: &str) {
    let path = dir.join(format!("server-{port}.log"));
    let deadline = Instant::now() + GUARD;
    loop {
        if std::fs::read_to_string(&path).unwrap_or_default().contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in {}", path.display());
        std::thread::yield_now();
    }
}

fn log(dir: &Path, port: u16) -> String {
    std::fs::read_to_string(dir.join(format!("server-{port}.log"))).unwrap()
}

fn signal(server: &Server, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &server.child.id().to_string()]).status().unwrap();
    assert!(sent.success());
}

/// A server on `database_url` that runs no jobs (so a job stays queued) and logs long polls.
fn start(dir: &Path, database_url: &str, port: u16) -> Server {
    let mut command = Command::new(BIN);
    command
        .args(serve_args(database_url, port))
        .args(["--runner-workers", "0"])
        // The default level, plus the long poll's debug line the test waits for.
        .env("RUST_LOG", "info,catalog_store::jobs=debug");
    launch(command, dir, port)
}

/// A project, a key, catalog `shoes` and a queued bulk delete; the token and the job's id.
fn queued_job(dir: &Path, database_url: &str, port: u16) -> (String, i64) {
    let token = create_project_and_key_on(dir, database_url);
    assert_eq!(request(port, "POST", "/v1/catalogs", &token, r#"{"name":"shoes"}"#).0, 201);
    let (status, answer) =
        request(port, "POST", "/v1/catalogs/shoes/items/bulk-delete", &token, r#"{"ids":["sku-1"]}"#);
    assert_eq!(status, 202, "{answer}");
    (token, answer["job"]["id"].as_i64().unwrap())
}

async fn sigterm_answers_long_polls_and_exits_zero() {
    let dir = temp_dir(&format!("shutdown_poll_{:?}", Backend::current()));
    let database = ScratchDatabase::new(Backend::current()).await;
    let port = free_port();
    let mut server = start(&dir, database.url(), port);
    let (token, job) = queued_job(&dir, database.url(), port);

    let poll = std::thread::spawn(move || request(port, "GET", &format!("/v1/jobs/{job}?wait=60"), &token, ""));
    wait_for_log(&dir, port, "long poll waiting");
    signal(&server, "TERM");

    let (status, answer) = poll.join().unwrap();
    assert_eq!((status, answer["id"].as_i64(), answer["status"].as_str()), (200, Some(job), Some("queued")));
    let exit = server.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{}", log(&dir, port));
    let log = log(&dir, port);
    let said = |line: &str| log.find(line).unwrap_or_else(|| panic!("no {line:?} in the log:\n{log}"));
    assert!(said("shutting down") < said("catalogd stopped"), "{log}");
    // The access log: one line per request at the default level, the poll's among them.
    let poll_line = log.lines().find(|line| line.contains("route=/v1/jobs/{id} ")).expect("the poll's access line");
    for part in [" INFO ", "method=GET", "status=200", "latency_ms=", r#"project="acme""#] {
        assert!(poll_line.contains(part), "{part} in {poll_line}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

async fn a_second_signal_exits_at_once() {
    let dir = temp_dir(&format!("shutdown_twice_{:?}", Backend::current()));
    let database = ScratchDatabase::new(Backend::current()).await;
    let port = free_port();
    let mut server = start(&dir, database.url(), port);
    let token = create_project_and_key_on(&dir, database.url());

    // A request whose body never comes holds the first shutdown: the server has read its head
    // once it asks for the body (100 Continue), so it is in flight when the signal arrives.
    let mut held = TcpStream::connect(("127.0.0.1", port)).unwrap();
    held.set_read_timeout(Some(GUARD)).unwrap();
    write!(
        held,
        "POST /v1/catalogs HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 16\r\nexpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut continued = String::new();
    BufReader::new(&held).read_line(&mut continued).unwrap();
    assert!(continued.starts_with("HTTP/1.1 100"), "{continued}");

    signal(&server, "TERM");
    wait_for_log(&dir, port, "shutting down");
    signal(&server, "TERM");
    let exit = server.child.wait().unwrap();
    assert_eq!(exit.code(), Some(143), "{}", log(&dir, port));
    assert!(log(&dir, port).contains("second signal: exiting at once"), "{}", log(&dir, port));
    drop((held, server));
    let _ = std::fs::remove_dir_all(dir);
}

/// An open event stream does not hold the shutdown: the first SIGTERM ends it (its client resumes
/// with `Last-Event-ID`) and the process exits 0.
async fn sigterm_ends_event_streams_and_exits_zero() {
    let dir = temp_dir(&format!("shutdown_stream_{:?}", Backend::current()));
    let database = ScratchDatabase::new(Backend::current()).await;
    let port = free_port();
    let mut server = start(&dir, database.url(), port);
    let (token, job) = queued_job(&dir, database.url(), port);

    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    write!(
        stream,
        "GET /v1/events HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nlast-event-id: 0\r\n\
         authorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut seen = String::new();
    // The head, then the queued job's `job.created` event: the stream is open and serving.
    while !seen.contains("event: job.created") || !seen.ends_with("\n\n") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended early: {seen}");
        seen.push_str(&line);
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains(&format!("\"id\":{job}")), "{seen}");
    signal(&server, "TERM");
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let exit = server.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{}", log(&dir, port));
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

catalog_api::on_both_backends!(
    sigterm_answers_long_polls_and_exits_zero,
    a_second_signal_exits_at_once,
    sigterm_ends_event_streams_and_exits_zero
);
