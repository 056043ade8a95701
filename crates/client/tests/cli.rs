//! catalogctl against a real catalogd (see `common`).

mod common;

use catalog_client::{BulkOptions, ItemInput, JobFilter, JobKind, JobStatus};
use common::Server;
use serde_json::{json, Value};
use std::io::Write;

fn write_lines(path: &std::path::Path, lines: impl Iterator<Item = String>) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("file"));
    for line in lines {
        writeln!(file, "{line}").expect("write");
    }
    file.flush().expect("flush");
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

/// 100,000 ids deleted through catalogctl under a write rate limit low enough to force 429s:
/// every id is deleted, each chunk became exactly one job, and the exit status is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_100_000_ids_under_rate_limiting() {
    const N: usize = 100_000;
    // Two writes per second, burst two: four chunks in flight at once cannot all pass.
    let server = Server::start("delete-100k", &["--rate-limit", "native-write=2/1s"]);
    // Generous attempts: this test is about surviving 429s, so it must not lose a chunk to a run
    // of unlucky retries on a slow machine.
    let patient = catalog_client::RetryPolicy { max_attempts: 30, ..catalog_client::RetryPolicy::default() };
    let client = catalog_client::Client::builder(&server.url)
        .token(&server.token)
        .retry_policy(patient)
        .build()
        .expect("client");
    client.create_catalog("bulk", None).await.expect("catalog");

    // Seed through the library's bulk upsert.
    let items =
        (0..N).map(|n| ItemInput::new(format!("sku-{n}"), json!({"n": n}).as_object().cloned().unwrap_or_default()));
    let seeded = client.bulk_upsert("bulk", items, &BulkOptions::default()).await.expect("seeding runs");
    assert!(seeded.is_success(), "seeding failed: {:?}", seeded.failures);
    assert_eq!(seeded.accepted, N as u64);
    for job in seeded.jobs() {
        let job = client.wait(job.id).await.expect("wait");
        assert!(job.succeeded(), "seed job {job:?}");
    }
    assert_eq!(client.get_catalog("bulk").await.expect("catalog").item_count, Some(N as u64));

    let ids = server.dir.0.join("ids.txt");
    write_lines(&ids, (0..N).map(|n| format!("sku-{n}")));
    let output = server.catalogctl(&[
        "--output",
        "json",
        "--max-attempts",
        "30",
        "items",
        "delete",
        "--catalog",
        "bulk",
        "--ids-file",
        ids.to_str().expect("utf-8 path"),
        "--wait",
    ]);
    let summary = stdout_json(&output);
    assert!(
        output.status.success(),
        "exit {:?}: {summary}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(summary["sent"], true);
    assert_eq!(summary["read"], N);
    assert_eq!(summary["accepted"], N);
    assert_eq!(summary["rejected"], json!([]));
    assert_eq!(summary["failed_chunks"], json!([]));
    assert_eq!(summary["requests"], 10);
    let retries = summary["retries"].as_u64().expect("retries");
    eprintln!("requests retried after 429s: {retries}");
    assert!(retries > 0, "the rate limit should have forced at least one 429 and retry");
    let jobs = summary["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 10);
    assert!(jobs.iter().all(|j| j["status"] == "completed" && j["failed_count"] == 0));

    // Nothing left, by listing and by count.
    let page = client.list_items("bulk", Some(10), None).await.expect("items");
    assert!(page.data.is_empty(), "items left: {:?}", page.data.iter().map(|i| &i.id).collect::<Vec<_>>());
    assert_eq!(client.get_catalog("bulk").await.expect("catalog").item_count, Some(0));

    // No chunk became a second job despite the retries: one delete job per chunk.
    let filter =
        JobFilter { kinds: vec![JobKind::ItemBulkDelete], catalog: Some("bulk".into()), ..JobFilter::default() };
    let delete_jobs = client.list_all_jobs(&filter).await.expect("jobs");
    assert_eq!(delete_jobs.len(), 10, "jobs: {delete_jobs:?}");
    assert_eq!(delete_jobs.iter().map(|j| j.total_count).sum::<u64>(), N as u64);
    assert!(delete_jobs.iter().all(|j| j.status == JobStatus::Completed));
}

/// A file with bad ids: they are listed with their line and reason, nothing is sent, and the exit
/// status is non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_are_listed_and_nothing_is_sent() {
    let server = Server::start("bad-ids", &[]);
    let client = server.client();
    client.create_catalog("strict", None).await.expect("catalog");
    let ids = server.dir.0.join("ids.txt");
    let long = "x".repeat(251);
    write_lines(
        &ids,
        ["good-1", "bad id", "good-2", "good-1", "", "a/b", long.as_str(), "good-3"].iter().map(|s| s.to_string()),
    );
    let path = ids.to_str().expect("utf-8 path");

    // Text output: each bad id on stderr with its line and reason.
    let output = server.catalogctl(&["items", "delete", "--catalog", "strict", "--ids-file", path, "--no-progress"]);
    assert!(!output.status.success());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "line 2: \"bad id\"",
        "(invalid_character)",
        "line 4: \"good-1\": the id is already on line 1 (duplicate_id)",
        "line 5: \"\"",
        "(empty_id)",
        "line 6: \"a/b\"",
        "line 7:",
        "(id_too_long)",
        "nothing sent",
    ] {
        assert!(stderr.contains(expected), "stderr lacks {expected:?}:\n{stderr}");
    }

    // JSON output says the same to a script.
    let output = server.catalogctl(&["--output", "json", "items", "delete", "--catalog", "strict", "--ids-file", path]);
    assert_eq!(output.status.code(), Some(1));
    let summary = stdout_json(&output);
    assert_eq!(summary["sent"], false);
    let rejected: Vec<(u64, String)> = summary["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| (r["line"].as_u64().unwrap_or(0), r["reason"].as_str().unwrap_or("").to_owned()))
        .collect();
    let expected: Vec<(u64, String)> =
        [(2, "invalid_character"), (4, "duplicate_id"), (5, "empty_id"), (6, "invalid_character"), (7, "id_too_long")]
            .iter()
            .map(|(line, reason)| (*line, reason.to_string()))
            .collect();
    assert_eq!(rejected, expected);

    // And from standard input too.
    let mut child = std::process::Command::new(common::catalogctl_bin())
        .args(["items", "delete", "--catalog", "strict", "--ids-file", "-"])
        .env("CATALOGD_URL", &server.url)
        .env("CATALOGD_TOKEN", &server.token)
        .env("HOME", &server.dir.0)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("catalogctl starts");
    child.stdin.take().expect("stdin").write_all(b"ok\nnot ok\n").expect("write");
    let output = child.wait_with_output().expect("catalogctl ends");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 2: \"not ok\""));

    // Nothing reached the server: no job at all.
    let jobs = client.list_all_jobs(&JobFilter::default()).await.expect("jobs");
    assert!(jobs.is_empty(), "jobs were created: {jobs:?}");
    assert_eq!(client.get_catalog("strict").await.expect("catalog").item_count, Some(0));
}

/// `--skip-invalid` sends the valid ids and still exits non-zero for the bad ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_invalid_sends_the_valid_ids() {
    let server = Server::start("skip-invalid", &[]);
    let client = server.client();
    client.create_catalog("c", None).await.expect("catalog");
    let items = ["a", "b", "c"].map(|id| ItemInput::new(id, serde_json::Map::new()));
    let seeded = client.bulk_upsert("c", items, &BulkOptions::default()).await.expect("seed");
    for job in seeded.jobs() {
        client.wait(job.id).await.expect("wait");
    }
    let ids = server.dir.0.join("ids.txt");
    write_lines(&ids, ["a", "b b", "c"].iter().map(|s| s.to_string()));
    let output = server.catalogctl(&[
        "--output",
        "json",
        "items",
        "delete",
        "--catalog",
        "c",
        "--ids-file",
        ids.to_str().expect("utf-8 path"),
        "--skip-invalid",
        "--wait",
    ]);
    assert_eq!(output.status.code(), Some(1), "a bad id still fails the run");
    let summary = stdout_json(&output);
    assert_eq!(summary["accepted"], 2);
    assert_eq!(summary["rejected"][0]["line"], 2);
    let left: Vec<String> =
        client.list_items("c", None, None).await.expect("items").data.into_iter().map(|i| i.id).collect();
    assert_eq!(left, vec!["b".to_owned()]);
}

/// Upserts from JSON Lines in both shapes, then the jobs and catalogs commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_file_then_jobs_and_catalogs_commands() {
    let server = Server::start("upsert", &[]);
    let output = server.catalogctl(&["catalogs", "create", "shop", "--description", "test shop"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let file = server.dir.0.join("items.jsonl");
    write_lines(
        &file,
        [r#"{"id":"p1","fields":{"price":10}}"#, r#"{"id":"p2","price":20,"name":"two"}"#]
            .iter()
            .map(|s| s.to_string()),
    );
    let output = server.catalogctl(&[
        "--output",
        "json",
        "items",
        "upsert",
        "--catalog",
        "shop",
        "--file",
        file.to_str().expect("utf-8 path"),
        "--wait",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = stdout_json(&output);
    let job_id = summary["jobs"][0]["id"].as_i64().expect("job id");
    assert_eq!(summary["jobs"][0]["kind"], "item_bulk_upsert");

    let client = server.client();
    let item = client.get_item("shop", "p2").await.expect("item");
    assert_eq!(serde_json::Value::Object(item.fields), json!({"price": 20, "name": "two"}));
    let item = client.get_item("shop", "p1").await.expect("item");
    assert_eq!(serde_json::Value::Object(item.fields), json!({"price": 10}));

    let output = server.catalogctl(&["--output", "json", "catalogs", "list"]);
    let list = stdout_json(&output);
    assert_eq!(list["data"][0]["name"], "shop");
    assert_eq!(list["data"][0]["description"], "test shop");

    let output = server.catalogctl(&["--output", "json", "jobs", "get", &job_id.to_string()]);
    assert_eq!(stdout_json(&output)["status"], "completed");
    let output =
        server.catalogctl(&["--output", "json", "jobs", "list", "--kind", "item_bulk_upsert", "--catalog", "shop"]);
    assert_eq!(stdout_json(&output)["data"].as_array().map(Vec::len), Some(1));
    let output = server.catalogctl(&["jobs", "watch", &job_id.to_string()]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("completed"));

    // A finished job cannot be cancelled: the server's code reaches the user, exit status 1.
    let output = server.catalogctl(&["--output", "json", "jobs", "cancel", &job_id.to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout_json(&output)["error"]["code"], "job_not_cancellable");
    let output = server.catalogctl(&["jobs", "get", "999999"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("job_not_found"));
}

/// `catalogctl ARGS` with no server settings but `extra_env`, and no config file.
fn catalogctl_alone(dir: &common::TempDir, args: &[&str], extra_env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(common::catalogctl_bin());
    command
        .args(args)
        .env("HOME", &dir.0)
        .env_remove("CATALOGD_URL")
        .env_remove("CATALOGD_TOKEN")
        .env_remove("CATALOGCTL_CONFIG")
        .env_remove("XDG_CONFIG_HOME");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    command.output().expect("catalogctl runs")
}

/// First use: no token says how to set one and sends nothing; a server that is down is named
/// (`cannot connect to URL`) without a retry; an empty listing says it is empty.
#[tokio::test]
async fn first_use_errors_and_empty_listings_say_what_to_do() {
    let dir = common::TempDir::new("first-use");
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://127.0.0.1:{}", listener.local_addr().expect("address").port())
    };

    let no_token = catalogctl_alone(&dir, &["--url", &down, "jobs", "list"], &[]);
    let stderr = String::from_utf8_lossy(&no_token.stderr);
    assert_eq!(no_token.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no API token: set CATALOGD_TOKEN"), "{stderr}");

    let server_down = catalogctl_alone(&dir, &["--url", &down, "jobs", "list"], &[("CATALOGD_TOKEN", "t")]);
    let stderr = String::from_utf8_lossy(&server_down.stderr);
    assert_eq!(server_down.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot connect to {down}")), "{stderr}");
    assert!(!stderr.to_lowercase().contains("retry"), "a server never reached is not retried: {stderr}");

    let server = Server::start("first-use", &[]);
    let jobs = server.catalogctl(&["jobs", "list"]);
    assert!(jobs.status.success(), "{}", String::from_utf8_lossy(&jobs.stderr));
    assert_eq!(String::from_utf8_lossy(&jobs.stdout), "no jobs\n");
    let created = server.catalogctl(&["catalogs", "create", "empty"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let items = server.catalogctl(&["items", "list", "--catalog", "empty"]);
    assert!(items.status.success(), "{}", String::from_utf8_lossy(&items.stderr));
    assert_eq!(String::from_utf8_lossy(&items.stdout), "no items\n");
    let deleted = server.catalogctl(&["catalogs", "delete", "empty", "--wait", "--output", "json"]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    let job = stdout_json(&deleted)["jobs"][0]["id"].as_i64().expect("the delete's job id").to_string();
    let errors = server.catalogctl(&["jobs", "errors", &job]);
    assert!(errors.status.success(), "{}", String::from_utf8_lossy(&errors.stderr));
    assert_eq!(String::from_utf8_lossy(&errors.stdout), "no errors\n");
}

/// `catalogctl completions SHELL` prints a script for that shell, with no server or token; `--help`
/// speaks to a user.
#[test]
fn completions_and_help_need_no_settings() {
    let dir = common::TempDir::new("completions");
    let bash = catalogctl_alone(&dir, &["completions", "bash"], &[]);
    assert!(bash.status.success(), "{}", String::from_utf8_lossy(&bash.stderr));
    assert!(String::from_utf8_lossy(&bash.stdout).contains("_catalogctl()"));
    let help = catalogctl_alone(&dir, &["--help"], &[]);
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("catalogctl manages a catalogd server"));
}
