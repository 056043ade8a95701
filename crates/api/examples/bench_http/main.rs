//! `cargo xtask bench http`: the HTTP figures of docs/PERFORMANCE.md, against the real release
//! `catalogd` binary, each next to a reference measured in the same run. Each section runs on a
//! fresh database of its own (SQLite, or PostgreSQL with `--backend postgres`) and writes its
//! table between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` (`NAME-postgres` on
//! PostgreSQL):
//!
//! - `http` (the default): accept latency, accepted requests/s, listing latency at depth, peak
//!   memory (`http.rs`); a name starting with `http-` runs it into another marker, e.g.
//!   `--section http-api-only --serve-arg --runner-workers --serve-arg 0`;
//! - `sustained`: 50-id bulk deletes under load, applied over load + drain, against 10,000-id
//!   requests (`sustained.rs`);
//! - `fairness`: one project's 50-id job behind another's 1,000,000 queued ids (`fairness.rs`);
//! - `shared` (PostgreSQL only): the sustained load through two `catalogd serve` processes on one
//!   database, against one process (`sustained.rs`).
//!
//! Usage: `bench_http --bin target/release/catalogd [--backend sqlite|postgres|both] [--pg URL]
//! [--section NAME ...] [--jobs N] [--seconds S] [--connections C] [--items N] [--backlog N]
//! [--catalogs K] [--serve-arg FLAG ...] [--write docs/PERFORMANCE.md]`.

mod client;
mod fairness;
mod http;
mod setup;
mod sustained;

use setup::{Backend, Database};
use std::path::PathBuf;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The command line.
pub struct Options {
    /// The `catalogd` binary under test.
    bin: PathBuf,
    /// The backends to run each section on, in order.
    backends: Vec<Backend>,
    /// Where PostgreSQL databases are created: `--pg`, else `CATALOGD_BENCH_PG`, else
    /// `CATALOGD_TEST_PG`, else the test server of the README.
    pg_url: String,
    /// The sections to run, in order (repeatable `--section`, or comma-separated).
    sections: Vec<String>,
    /// Extra flags for `catalogd serve` (repeatable `--serve-arg`).
    serve_args: Vec<String>,
    /// Finished jobs stored before the `http` section's listing.
    jobs: u64,
    /// Seconds of each load; the section's own default when not given (10 for `http`, 30 for
    /// `sustained` and `shared`).
    seconds: Option<u64>,
    /// Keep-alive connections of each load.
    connections: usize,
    /// Items of the `sustained` and `shared` sections.
    items: u64,
    /// Ids queued ahead of the small job in the `fairness` section (in 10,000-id jobs).
    backlog: u64,
    /// Catalogs the `fairness` backlog is spread over.
    catalogs: u64,
    /// The PERFORMANCE.md to write the tables into.
    write: Option<PathBuf>,
    /// The commit measured, read once before any table is written (see [`setup::commit`]).
    commit: String,
}

fn options() -> Result<Options, BoxError> {
    let mut options = Options {
        bin: PathBuf::from("target/release/catalogd"),
        backends: vec![Backend::Sqlite],
        pg_url: std::env::var("CATALOGD_BENCH_PG")
            .or_else(|_| std::env::var("CATALOGD_TEST_PG"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        sections: Vec::new(),
        serve_args: Vec::new(),
        jobs: 1_000_000,
        seconds: None,
        connections: 64,
        items: 500_000,
        backlog: 1_000_000,
        catalogs: 4,
        write: None,
        commit: setup::commit(),
    };
    let number = |value: &str| value.replace('_', "").parse::<u64>();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bin" => options.bin = PathBuf::from(value),
            "--backend" => {
                options.backends = match value.as_str() {
                    "sqlite" => vec![Backend::Sqlite],
                    "postgres" => vec![Backend::Postgres],
                    "both" => vec![Backend::Sqlite, Backend::Postgres],
                    other => return Err(format!("unknown backend {other}").into()),
                }
            }
            "--pg" => options.pg_url = value,
            "--section" => options.sections.extend(value.split(',').map(str::to_owned)),
            "--serve-arg" => options.serve_args.push(value),
            "--jobs" => options.jobs = number(&value)?,
            "--seconds" => options.seconds = Some(number(&value)?),
            "--connections" => options.connections = usize::try_from(number(&value)?)?.max(1),
            "--items" => options.items = number(&value)?.max(1),
            "--backlog" => options.backlog = number(&value)?.max(1),
            "--catalogs" => options.catalogs = number(&value)?.max(1),
            "--write" => options.write = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if options.sections.is_empty() {
        options.sections.push("http".to_owned());
    }
    for section in &options.sections {
        if Section::of(section).is_none() {
            return Err(format!("unknown section {section} (http, http-*, sustained, fairness, shared)").into());
        }
    }
    options.bin = std::fs::canonicalize(&options.bin)?;
    Ok(options)
}

/// What a section name runs.
#[derive(Debug, Clone, Copy)]
enum Section {
    Http,
    Sustained,
    Fairness,
    Shared,
}

impl Section {
    fn of(name: &str) -> Option<Section> {
        match name {
            "sustained" => Some(Section::Sustained),
            "fairness" => Some(Section::Fairness),
            "shared" => Some(Section::Shared),
            _ if name == "http" || name.starts_with("http-") => Some(Section::Http),
            _ => None,
        }
    }
}

/// Runs one section on a fresh database; returns its table. The database is removed after a
/// success and kept (with the server logs) after a failure.
async fn run(options: &Options, backend: Backend, name: &str) -> Result<String, BoxError> {
    let section = Section::of(name).ok_or_else(|| format!("unknown section {name}"))?;
    let database = Database::create(backend, &options.pg_url).await?;
    let table = match section {
        Section::Http => http::run(options, backend, &database).await,
        Section::Sustained => sustained::run(options, backend, &database, 1).await,
        Section::Shared => sustained::run(options, backend, &database, 2).await,
        Section::Fairness => fairness::run(options, backend, &database).await,
    };
    match table {
        Ok(table) => {
            database.remove().await;
            Ok(table)
        }
        Err(error) => {
            Err(format!("{name} on {}: {error} (logs in {})", backend.label(), database.dir.display()).into())
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    for &backend in &options.backends {
        for name in &options.sections {
            if matches!(Section::of(name), Some(Section::Shared)) && backend != Backend::Postgres {
                eprintln!("{name}: PostgreSQL only (two processes on one database); skipped on {}", backend.label());
                continue;
            }
            eprintln!("== {name} on {}", backend.label());
            let table = run(&options, backend, name).await?;
            println!("{table}");
            if let Some(path) = &options.write {
                let marker = backend.marker(name);
                setup::write_section(path, &marker, &table)?;
                eprintln!("wrote {} ({marker})", path.display());
            }
        }
    }
    Ok(())
}
