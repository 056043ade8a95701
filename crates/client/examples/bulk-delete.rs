//! Deletes items by id, one per line of a file, through catalog-client; waits for the jobs and
//! prints each one's outcome.
//!
//! ```sh
//! export CATALOGD_URL=http://127.0.0.1:8080 CATALOGD_TOKEN=cat_...
//! cargo run -p catalog-client --example bulk-delete -- --catalog shoes ids.txt
//! ```
//!
//! `--url` and `--token` override the environment; `--chunk-size N` sends at most N ids per
//! request (and so per job; default and maximum 10,000). Ids that break the native id rule, or
//! repeat an earlier line, are listed by line and not sent. The exit status is 0 when every id
//! was deleted by a job that completed with no failed item, 1 otherwise, 2 for a usage error.

use catalog_client::{BulkOptions, BulkReport, Client, Job};
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str =
    "usage: bulk-delete --catalog NAME [--url URL] [--token TOKEN] [--chunk-size N] IDS_FILE (one id per line)";

/// Every id deleted.
pub const SUCCEEDED: u8 = 0;
/// Some id not deleted: refused, not sent, or failed in its job.
pub const FAILED: u8 = 1;
/// Bad arguments or an unreadable file.
pub const USAGE_ERROR: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    let status = program(&args, &env, &mut std::io::stdout(), &mut std::io::stderr()).await;
    ExitCode::from(status)
}

/// What to delete, where. (No `Debug`: it holds the token.)
pub struct Settings {
    /// The server.
    pub url: String,
    /// The API key.
    pub token: String,
    /// The catalog to delete from.
    pub catalog: String,
    /// Ids per request.
    pub chunk_size: usize,
    /// The file of ids.
    pub ids_file: String,
}

/// Reads `args`, with `CATALOGD_URL` and `CATALOGD_TOKEN` from `env` as defaults.
pub fn parse_args(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, String> {
    let (mut url, mut token) = (env("CATALOGD_URL"), env("CATALOGD_TOKEN"));
    let (mut catalog, mut chunk_size, mut ids_file) = (None, BulkOptions::default().chunk_size, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--catalog" => catalog = Some(value()?),
            "--url" => url = Some(value()?),
            "--token" => token = Some(value()?),
            "--chunk-size" => {
                let text = value()?;
                chunk_size = text.parse().map_err(|_| format!("--chunk-size takes a number, not `{text}`"))?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ if ids_file.is_some() => return Err("only one IDS_FILE".to_owned()),
            path => ids_file = Some(path.to_owned()),
        }
    }
    Ok(Settings {
        url: url.unwrap_or_else(|| "http://127.0.0.1:8080".to_owned()),
        token: token.ok_or("no token: set CATALOGD_TOKEN or pass --token")?,
        catalog: catalog.ok_or("--catalog is required")?,
        chunk_size,
        ids_file: ids_file.ok_or("IDS_FILE is required")?,
    })
}

/// The whole program: outcomes to `out`, complaints to `err`; returns the exit status.
pub async fn program(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> u8 {
    let settings = match parse_args(args, env) {
        Ok(settings) => settings,
        Err(message) => {
            let _ = writeln!(err, "bulk-delete: {message}\n{USAGE}");
            return USAGE_ERROR;
        }
    };
    // Read whole, so an unreadable file is reported before anything is deleted.
    let ids = match std::fs::read_to_string(&settings.ids_file) {
        Ok(text) => text,
        Err(error) => {
            let _ = writeln!(err, "bulk-delete: cannot read {}: {error}", settings.ids_file);
            return USAGE_ERROR;
        }
    };
    match delete(&settings, ids.lines(), out).await {
        Ok(true) => SUCCEEDED,
        Ok(false) => FAILED,
        Err(error) => {
            let _ = writeln!(err, "bulk-delete: {error}");
            FAILED
        }
    }
}

/// Deletes `ids` and reports, line by line and job by job; true when every id was deleted.
pub async fn delete<'a>(
    settings: &Settings,
    ids: impl IntoIterator<Item = &'a str>,
    out: &mut impl Write,
) -> Result<bool, Box<dyn std::error::Error>> {
    let client = Client::new(&settings.url, &settings.token)?;
    let options = BulkOptions { chunk_size: settings.chunk_size, ..BulkOptions::default() };
    let report = client.bulk_delete(&settings.catalog, ids, &options).await?;
    print_refusals(&report, out)?;
    let mut every_job_succeeded = true;
    for submitted in report.jobs() {
        let job = client.wait(submitted.id).await?;
        every_job_succeeded &= job.succeeded();
        print_outcome(&client, &job, out).await?;
    }
    writeln!(
        out,
        "{} of {} ids sent in {} jobs; {} rejected, {} in requests that failed",
        report.accepted,
        report.read,
        report.jobs().count(),
        report.rejected.len(),
        report.failures.iter().map(|failure| failure.items).sum::<usize>(),
    )?;
    Ok(report.is_success() && every_job_succeeded)
}

/// The inputs not sent, and the requests that failed.
fn print_refusals(report: &BulkReport, out: &mut impl Write) -> std::io::Result<()> {
    for rejection in &report.rejected {
        let id = rejection.id.as_deref().unwrap_or("");
        let (line, reason) = (rejection.index + 1, rejection.problem.reason());
        writeln!(out, "line {line}: {id:?}: not sent: {} ({reason})", rejection.problem)?;
    }
    for failure in &report.failures {
        let (first, last) = (failure.first_index + 1, failure.last_index + 1);
        writeln!(out, "lines {first}-{last}: request failed: {}", failure.error)?;
    }
    if report.stopped_early {
        writeln!(out, "stopped early: every later request would have failed the same way")?;
    }
    Ok(())
}

/// A finished job, and its per-item failures (first page).
async fn print_outcome(client: &Client, job: &Job, out: &mut impl Write) -> Result<(), Box<dyn std::error::Error>> {
    writeln!(
        out,
        "job {}: {}, {} of {} deleted, {} failed",
        job.id, job.status, job.completed_count, job.total_count, job.failed_count
    )?;
    if job.failed_count > 0 {
        for error in client.job_errors(job.id, None, None).await?.data {
            let detail = error.detail.or(error.title).unwrap_or_default();
            writeln!(out, "  {:?}: {} ({detail})", error.item_id.unwrap_or_default(), error.code)?;
        }
    }
    Ok(())
}
