//! The `fairness` section: how long one project's small job waits behind another project's
//! backlog.
//!
//! Project `backlog` has `--backlog` (1,000,000) items in `--catalogs` (4) catalogs, filled
//! through 10,000-id upserts, and schedules their deletion as 10,000-id jobs that all become due
//! at one moment (`start_at`). As soon as a runner has started on them, project `small` submits one
//! 50-id delete of its own items. The figure is that job's wait (created → finished) as a fraction
//! of the backlog's drain (its first job started → its last job finished), both read from the
//! jobs' own timestamps.
//!
//! Submitting the small job at a fixed delay after `start_at` would not do: idle runners find
//! jobs that became due by polling (once a second), while an enqueue wakes them at once, so a job
//! submitted before the next poll may be claimed before a backlog that is due but not yet seen.

use crate::client::{ids_body, items_body, Conn};
use crate::setup::{date, machine, Backend, Database, Server};
use crate::{BoxError, Options};
use catalog_domain::time::{format_rfc3339, parse_rfc3339};
use serde_json::Value;
use std::time::Duration;

/// Ids per backlog job.
const LARGE: u64 = 10_000;
/// Ids of the small job.
const SMALL: u64 = 50;
/// How often the backlog is checked for a running job before the small job is submitted.
const POLL: Duration = Duration::from_millis(10);

/// Runs the section; returns its table.
pub async fn run(options: &Options, backend: Backend, database: &Database) -> Result<String, BoxError> {
    let backlog_token = database.project(&options.bin, "backlog")?;
    let small_token = database.project(&options.bin, "small")?;
    let server = Server::start(&options.bin, database, &options.serve_args).await?;
    let mut backlog = Conn::open(server.port, &backlog_token).await?;
    let mut small = Conn::open(server.port, &small_token).await?;
    let jobs = options.backlog.div_ceil(LARGE);
    let catalog = |job: u64| format!("backlog-{}", job % options.catalogs);

    eprintln!("filling {} items in {} catalogs…", options.backlog, options.catalogs.min(jobs));
    for k in 0..options.catalogs.min(jobs) {
        let body = format!(r#"{{"name":"{}"}}"#, catalog(k));
        backlog.expect("POST", "/v1/catalogs", Some(body.as_bytes()), 201).await?;
    }
    small.expect("POST", "/v1/catalogs", Some(br#"{"name":"small"}"#), 201).await?;
    for job in 0..jobs {
        let path = format!("/v1/catalogs/{}/items/bulk-upsert", catalog(job));
        backlog.expect("POST", &path, Some(&items_body(job_ids(job, options.backlog))), 202).await?;
    }
    small.expect("POST", "/v1/catalogs/small/items/bulk-upsert", Some(&items_body(0..SMALL)), 202).await?;
    backlog.drained().await?;

    // Far enough ahead to schedule every job before it; checked below.
    let due = now_ms() + 5_000 + 50 * i64::try_from(jobs)?;
    let extra = format!(r#","start_at":"{}""#, format_rfc3339(due));
    eprintln!("scheduling {jobs} deletes of {LARGE} ids, due at {}…", format_rfc3339(due));
    for job in 0..jobs {
        let path = format!("/v1/catalogs/{}/items/bulk-delete", catalog(job));
        let answer = backlog.expect("POST", &path, Some(&ids_body(job_ids(job, options.backlog), &extra)), 202).await?;
        if answer["job"]["status"] != "scheduled" {
            return Err(format!("backlog job {job} is {}, not scheduled", answer["job"]["status"]).into());
        }
    }
    let ahead = due - now_ms();
    if ahead <= 0 {
        return Err("scheduling the backlog took longer than its lead; the jobs did not become due together".into());
    }
    tokio::time::sleep(Duration::from_millis(u64::try_from(ahead)?)).await;
    backlog_running(&mut backlog).await?;

    let answer =
        small.expect("POST", "/v1/catalogs/small/items/bulk-delete", Some(&ids_body(0..SMALL, "")), 202).await?;
    let small_id = answer["job"]["id"].as_i64().ok_or("the small job has no id")?;
    eprintln!("small job {small_id} submitted; waiting for it…");
    let small_job = finished(&mut small, small_id).await?;
    backlog.drained().await?;
    let (first, last) = backlog_span(&mut backlog, jobs).await?;
    let created = millis(&small_job, "created_at")?;
    let wait = millis(&small_job, "finished_at")? - created;
    let drain = last - first;
    eprintln!(
        "  submitted {} ms after the backlog became due; waited {:.2} s of a {:.2} s drain",
        created - due,
        wait as f64 / 1e3,
        drain as f64 / 1e3
    );
    drop(server);
    Ok(table(options, backend, jobs, created - due, wait, drain))
}

/// The ids of backlog job `job` (the same for its upsert and its delete).
fn job_ids(job: u64, backlog: u64) -> std::ops::Range<u64> {
    job * LARGE..backlog.min((job + 1) * LARGE)
}

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    i64::try_from(now).unwrap_or(i64::MAX)
}

/// A timestamp field of a job, as epoch milliseconds.
fn millis(job: &Value, field: &str) -> Result<i64, BoxError> {
    let text = job[field].as_str().ok_or_else(|| format!("job {} has no {field}", job["id"]))?;
    Ok(parse_rfc3339(text)?)
}

/// Long-polls a job until it has finished; it must have completed every input.
async fn finished(conn: &mut Conn, id: i64) -> Result<Value, BoxError> {
    loop {
        let job = conn.expect("GET", &format!("/v1/jobs/{id}?wait=60"), None, 200).await?;
        match job["status"].as_str() {
            Some("completed") if job["completed_count"] == job["total_count"] => return Ok(job),
            Some("scheduled" | "queued" | "running") => continue,
            _ => return Err(format!("job {id} ended {job}").into()),
        }
    }
}

/// Returns once a runner has started on the backlog (one of its jobs is running or done).
async fn backlog_running(conn: &mut Conn) -> Result<(), BoxError> {
    let path = "/v1/jobs?kind=item_bulk_delete&status=running,completed,failed&limit=1";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = conn.expect("GET", path, None, 200).await?;
        if page["data"].as_array().is_some_and(|jobs| !jobs.is_empty()) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err("no runner started on the backlog within 60 s of it becoming due".into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// When the first of the backlog's `jobs` deletes started and the last finished, after checking
/// that each completed every input; read from the job list, a page of up to 1,000 at a time.
async fn backlog_span(conn: &mut Conn, jobs: u64) -> Result<(i64, i64), BoxError> {
    let (mut first, mut last, mut seen, mut cursor) = (i64::MAX, i64::MIN, 0u64, None::<String>);
    loop {
        let mut path = "/v1/jobs?kind=item_bulk_delete&limit=1000".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = conn.expect("GET", &path, None, 200).await?;
        for job in page["data"].as_array().ok_or("a job page without data")? {
            if job["status"] != "completed" || job["completed_count"] != job["total_count"] {
                return Err(format!("backlog job ended {job}").into());
            }
            first = first.min(millis(job, "started_at")?);
            last = last.max(millis(job, "finished_at")?);
            seen += 1;
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    if seen != jobs {
        return Err(format!("{seen} backlog deletes listed, not {jobs}").into());
    }
    Ok((first, last))
}

fn table(options: &Options, backend: Backend, jobs: u64, after: i64, wait: i64, drain: i64) -> String {
    format!(
        "Measured {date} on {machine}, {label} backend, release build of {commit}, by `cargo xtask bench http --backend {flag} --section fairness`.\n\n\
         | backend | backlog (one project) | its drain, first started → last finished | the other project's {SMALL}-id job, created → finished | wait / drain | goal |\n\
         |---|---|---|---|---|---|\n\
         | {label} | {jobs} jobs × {LARGE} ids in {catalogs} catalogs, due together | {drain:.2} s | {wait:.2} s (submitted {after} ms after the backlog became due, once it ran) | {fraction:.3} | ≤ 0.05 |\n",
        date = date(),
        machine = machine(),
        label = backend.label(),
        commit = options.commit,
        flag = if backend == Backend::Postgres { "postgres" } else { "sqlite" },
        catalogs = options.catalogs.min(jobs),
        drain = drain as f64 / 1e3,
        wait = wait as f64 / 1e3,
        fraction = wait as f64 / drain as f64,
    )
}
