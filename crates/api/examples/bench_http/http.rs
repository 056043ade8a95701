//! The `http` section: the release `catalogd` binary over TCP, each figure next to a reference
//! measured in the same run:
//!
//! - latency to accept one 10,000-id bulk delete (p50/p99), next to `/healthz` latency;
//! - accepted 50-id bulk deletes per second from 64 keep-alive connections, next to `/healthz`
//!   requests per second from the same load generator;
//! - job listing latency with 1,000,000 jobs stored, on page 1 and on page 10,000 (keyset), and
//!   the latency of a `/metrics` scrape, which counts them by status;
//! - the server's peak RSS while it accepts a 10 MB body, next to its RSS before.

use crate::client::{load, Conn};
use crate::setup::{date, machine, Backend, Database, Server};
use crate::{BoxError, Options};
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seconds per load unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 10;

/// Runs the section on a fresh database; returns its table.
pub async fn run(options: &Options, backend: Backend, database: &Database) -> Result<String, BoxError> {
    let seconds = options.seconds.unwrap_or(DEFAULT_SECONDS);
    let token = database.project(&options.bin, "acme")?;
    eprintln!("seeding {} finished jobs…", options.jobs);
    seed_jobs(database, options.jobs).await?;
    let server = Server::start(&options.bin, database, &options.serve_args).await?;
    let (port, pid) = (server.port, server.pid());
    let mut conn = Conn::open(port, &token).await?;
    conn.expect("POST", "/v1/catalogs", Some(br#"{"name":"shoes"}"#), 201).await?;

    // Listing with 1,000,000 jobs stored: page 1 (repeated), then walk to page 10,000.
    eprintln!("job listing…");
    let mut first_pages = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        conn.send("GET", "/v1/jobs?limit=100", None).await?;
        first_pages.push(started.elapsed());
    }
    let mut deep_pages = Vec::new();
    let mut cursor: Option<String> = None;
    let pages = (options.jobs / 100).min(10_000);
    for page in 1..=pages {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=100&cursor={c}"),
            None => "/v1/jobs?limit=100".to_owned(),
        };
        let started = Instant::now();
        let (_, body) = conn.send("GET", &path, None).await?;
        if page + 200 > pages {
            deep_pages.push(started.elapsed());
        }
        cursor = serde_json::from_slice::<Value>(&body)?["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    first_pages.sort();
    deep_pages.sort();

    // A Prometheus scrape counts every stored job by status.
    let mut scrapes = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let (status, _) = conn.send("GET", "/metrics", None).await?;
        scrapes.push(started.elapsed());
        if status != 200 {
            return Err(format!("/metrics answered {status}").into());
        }
    }
    scrapes.sort();

    // Accepting one 10,000-id request, next to /healthz on the same connection.
    eprintln!("10,000-id requests…");
    let mut accept = Vec::new();
    for round in 0..50 {
        let ids: Vec<String> = (0..10_000).map(|i| format!("r{round}-{i}")).collect();
        let body = serde_json::to_vec(&json!({"ids": ids}))?;
        let started = Instant::now();
        let (status, _) = conn.send("POST", "/v1/catalogs/shoes/items/bulk-delete", Some(&body)).await?;
        accept.push(started.elapsed());
        if status != 202 {
            return Err(format!("bulk delete answered {status}").into());
        }
    }
    let mut health = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        conn.send("GET", "/healthz", None).await?;
        health.push(started.elapsed());
    }
    accept.sort();
    health.sort();

    // Throughput: 50-id bulk deletes from many connections, then /healthz the same way.
    eprintln!("throughput ({} connections, {seconds} s each)…", options.connections);
    let deletes = load(
        &[port],
        &token,
        options.connections,
        seconds,
        202,
        Arc::new(|n| {
            // Written directly rather than through serde_json: the load generator shares the
            // machine's two cores with the server, so its own cost should be small.
            let mut body = String::with_capacity(16 * 50 + 16);
            body.push_str(r#"{"ids":["#);
            for i in 0..50 {
                let separator = if i == 0 { "" } else { "," };
                let _ = write!(body, r#"{separator}"t{n}-{i}""#);
            }
            body.push_str("]}");
            ("POST".to_owned(), "/v1/catalogs/shoes/items/bulk-delete".to_owned(), Some(body.into_bytes()))
        }),
    )
    .await?
    .per_second();
    let healthz = load(
        &[port],
        &token,
        options.connections,
        seconds,
        200,
        Arc::new(|_| ("GET".to_owned(), "/healthz".to_owned(), None)),
    )
    .await?
    .per_second();

    // Memory: peak RSS while a 10 MB body is accepted.
    eprintln!("10 MB body…");
    let rss_before = rss_kib(pid, "VmRSS:");
    let hwm_before = rss_kib(pid, "VmHWM:");
    let filler = "x".repeat(1_000);
    let items: Vec<Value> =
        (0..10_000).map(|i| json!({"id": format!("big-{i}"), "fields": {"blob": filler}})).collect();
    let body = serde_json::to_vec(&json!({"items": items}))?;
    let (status, _) = conn.send("POST", "/v1/catalogs/shoes/items/bulk-upsert", Some(&body)).await?;
    let hwm_after = rss_kib(pid, "VmHWM:");
    drop(server);

    let flags = if options.serve_args.is_empty() {
        String::new()
    } else {
        format!(", server flags `{}`", options.serve_args.join(" "))
    };
    let table = format!(
        "Measured {date} on {machine}, {backend} backend, release build of {commit}, by `cargo xtask bench http{flag}` \
         ({jobs} stored jobs, {conns} connections, {seconds} s per load{flags}).\n\n\
         | figure | catalogd | reference (same run) | goal |\n|---|---|---|---|\n\
         | accept one 10,000-id bulk delete, p50 / p99 | {a50} / {a99} | `/healthz` p50 / p99: {h50} / {h99} | p99 ≤ 20 ms |\n\
         | accepted 50-id bulk deletes per second | {deletes:.0}/s | `/healthz`: {healthz:.0}/s | 20,000/s |\n\
         | job listing page 1, p50 / p99 | {l50} / {l99} | — | p99 ≤ 5 ms |\n\
         | job listing page {pages}, p50 / p99 | {d50} / {d99} | page 1 (above) | p99 ≤ 5 ms, flat |\n\
         | `/metrics` scrape, p50 / p99 | {m50} / {m99} | `/healthz` (first row) | none set |\n\
         | peak RSS accepting a {mb:.1} MB body (status {status}) | {hwm_after} KiB | before: RSS {rss_before} KiB, peak {hwm_before} KiB | ≤ 100 MB |\n",
        date = date(),
        machine = machine(),
        backend = backend.label(),
        commit = options.commit,
        flag = if backend == Backend::Postgres { " --backend postgres" } else { "" },
        jobs = options.jobs,
        conns = options.connections,
        a50 = ms(percentile(&accept, 0.5)),
        a99 = ms(percentile(&accept, 0.99)),
        h50 = ms(percentile(&health, 0.5)),
        h99 = ms(percentile(&health, 0.99)),
        l50 = ms(percentile(&first_pages, 0.5)),
        l99 = ms(percentile(&first_pages, 0.99)),
        d50 = ms(percentile(&deep_pages, 0.5)),
        d99 = ms(percentile(&deep_pages, 0.99)),
        m50 = ms(percentile(&scrapes, 0.5)),
        m99 = ms(percentile(&scrapes, 0.99)),
        mb = body.len() as f64 / 1_000_000.0,
    );
    Ok(table)
}

/// Inserts `n` finished jobs for project 1 in one statement, as if a busy project had run them.
async fn seed_jobs(database: &Database, n: u64) -> Result<(), BoxError> {
    let n = i64::try_from(n)?;
    if database.url.starts_with("sqlite:") {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&database.url)?.connect().await?;
        sqlx::query(&format!(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1) {SEED_JOBS} FROM seq"
        ))
        .bind(n)
        .execute(&mut conn)
        .await?;
    } else {
        let mut conn = sqlx::PgConnection::connect(&database.url).await?;
        sqlx::query(&format!("{SEED_JOBS} FROM generate_series(1, $1) AS seq(i)")).bind(n).execute(&mut conn).await?;
        // As autovacuum would on a live table: the listing's plans need the statistics.
        sqlx::query("ANALYZE jobs").execute(&mut conn).await?;
    }
    Ok(())
}

/// The insert of [`seed_jobs`], whatever makes the sequence `i`.
const SEED_JOBS: &str =
    "INSERT INTO jobs (project_id, catalog_name, kind, status, total_count, completed_count, created_at, updated_at,
                           finished_at, expires_at)
         SELECT 1, 'archive', 'item_bulk_delete', 'completed', 50, 50, 1700000000000 + i, 1700000000000 + i,
                1700000000000 + i, 4102444800000";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
