//! `cargo run --release -p catalog-store --example bench_enqueue`: the accept path's cost of the
//! queue bounds.
//!
//! Concurrent callers (`--callers`, default 64) create small jobs (`--ids` ids each, default 50)
//! through `bulk_delete_items`, no runner running, until `--jobs` jobs (default 20,000) are
//! accepted; prints jobs accepted per second. Two stores on two fresh databases of each backend,
//! measured in alternating rounds (`--rounds`, default 3, best of each counts):
//! - `bounded`: as shipped, the counters kept by migration 0008's triggers and the limits read
//!   once per group-commit batch;
//! - `counted`: the triggers kept, both limits at `u64::MAX` (the counting's cost alone);
//! - `unbounded`: the triggers dropped and both limits at `u64::MAX` (the writer reads nothing),
//!   which is the accept path before the queue bounds.
//!
//! `--backend sqlite|postgres|both` (default both), `--pg URL` (default `CATALOGD_TEST_PG`, then
//! `postgres://postgres@127.0.0.1:5432/test`).

use catalog_domain::{Dialect, RawId};
use catalog_store::{JobOptions, ProjectId, Store, StoreConfig};
use sqlx::Connection;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    callers: usize,
    ids: usize,
    jobs: usize,
    rounds: usize,
    backend: String,
    pg: String,
}

fn parse() -> Result<Args, BoxError> {
    let mut args = Args {
        callers: 64,
        ids: 50,
        jobs: 20_000,
        rounds: 3,
        backend: "both".into(),
        pg: std::env::var("CATALOGD_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--callers" => args.callers = value()?.parse()?,
            "--ids" => args.ids = value()?.parse()?,
            "--jobs" => args.jobs = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse()?,
            "--backend" => args.backend = value()?,
            "--pg" => args.pg = value()?,
            "--help" | "-h" => {
                println!("bench_enqueue [--callers N] [--ids N] [--jobs N] [--rounds R] [--backend sqlite|postgres|both] [--pg URL]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(args)
}

/// A fresh database: its URL, and what removes it.
async fn database(backend: &str, pg: &str, name: &str) -> Result<(String, Option<(String, String)>), BoxError> {
    if backend == "sqlite" {
        let path = std::env::temp_dir().join(format!("{name}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        return Ok((format!("sqlite://{}", path.display()), None));
    }
    let mut admin = sqlx::PgConnection::connect(pg).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
    let (base, _) = pg.rsplit_once('/').ok_or("no database in the PostgreSQL URL")?;
    Ok((format!("{base}/{name}"), Some((pg.to_owned(), name.to_owned()))))
}

/// The three ways the accept path is measured.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Bounded,
    Counted,
    Unbounded,
}

async fn open(url: &str, mode: Mode) -> Result<(Store, ProjectId), BoxError> {
    let mut config = StoreConfig::default();
    if !matches!(mode, Mode::Bounded) {
        config.max_queued_inputs = u64::MAX;
        config.max_queued_inputs_per_project = u64::MAX;
    }
    let store = Store::connect(url, config).await?;
    if matches!(mode, Mode::Unbounded) {
        let drop =
            "DROP TRIGGER IF EXISTS queue_inputs_insert ON jobs; DROP TRIGGER IF EXISTS queue_inputs_update ON jobs;
                    DROP TRIGGER IF EXISTS jobs_updated ON jobs;
                    DROP TRIGGER IF EXISTS queue_inputs_delete ON jobs;";
        if url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(url).await?;
            sqlx::raw_sql(&drop.replace(" ON jobs", "")).execute(&mut c).await?;
        } else {
            let mut c = sqlx::PgConnection::connect(url).await?;
            sqlx::raw_sql(drop).execute(&mut c).await?;
        }
    }
    let project = store.create_project("bench", "bench").await?.id;
    store.create_catalog(project, "bench", None).await?;
    Ok((store, project))
}

/// Jobs accepted per second by `callers` concurrent callers until `jobs` are accepted.
async fn round(store: &Store, project: ProjectId, args: &Args, round: usize) -> Result<f64, BoxError> {
    let per_caller = args.jobs / args.callers;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..args.callers {
        let (store, ids) = (store.clone(), args.ids);
        tasks.push(tokio::spawn(async move {
            for job in 0..per_caller {
                let ids: Vec<RawId> =
                    (0..ids).map(|i| RawId::String(format!("r{round}-c{caller}-j{job}-{i}"))).collect();
                store.bulk_delete_items(project, "bench", Dialect::Native, ids, &JobOptions::default()).await?;
            }
            Ok::<(), catalog_store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed: Duration = started.elapsed();
    Ok((per_caller * args.callers) as f64 / elapsed.as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse()?;
    let backends: Vec<&str> = match args.backend.as_str() {
        "both" => vec!["sqlite", "postgres"],
        one => vec![one],
    };
    for backend in backends {
        let mut cleanups = Vec::new();
        let mut stores = Vec::new();
        for (i, mode) in [Mode::Bounded, Mode::Counted, Mode::Unbounded].into_iter().enumerate() {
            let name = format!("catalogd_bench_enqueue_{}_{i}", std::process::id());
            let (url, cleanup) = database(backend, &args.pg, &name).await?;
            stores.push((mode, open(&url, mode).await?));
            cleanups.push((url, cleanup));
        }
        let mut best = [0.0f64; 3];
        for r in 0..args.rounds {
            for (i, (mode, (store, project))) in stores.iter().enumerate() {
                let rate = round(store, *project, &args, r).await?;
                println!("{backend} round {r} {mode:?}: {rate:.0} jobs/s");
                best[i] = best[i].max(rate);
            }
        }
        println!(
            "{backend}: bounded {:.0} jobs/s, counted {:.0} jobs/s, unbounded {:.0} jobs/s, bounded/unbounded {:.3} ({} callers, {} ids a job, {} jobs a round)",
            best[0],
            best[1],
            best[2],
            best[0] / best[2],
            args.callers,
            args.ids,
            args.jobs
        );
        for (_, (store, _)) in stores {
            store.close().await;
        }
        for (url, cleanup) in cleanups {
            match cleanup {
                None => {
                    let path = url.trim_start_matches("sqlite://");
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{path}{suffix}"));
                    }
                }
                Some((admin, name)) => {
                    let mut admin = sqlx::PgConnection::connect(&admin).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await?;
                }
            }
        }
    }
    Ok(())
}
