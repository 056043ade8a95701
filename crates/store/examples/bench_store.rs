//! `cargo xtask bench store [--items N]`: the job path against a raw delete loop.
//!
//! For each backend: seed N items, delete them all through the job path (bulk-delete requests of
//! 10,000 ids, or `--batch`, through the service layer, applied by the runner), then seed the same
//! items again and delete the same ids, in the same order, with a raw loop — one set-based
//! statement per transaction of 10,000 ids (`--raw-batch`; the native API's most per request,
//! whatever size the requests of the job path are), same schema, no job machinery. Prints items/s
//! of both and their ratio; the last line is `ratio sqlite=<x> postgres=<y>`. Both measurements run in the same process on the same machine,
//! in alternating rounds (best of each counts), so the ratio holds on a noisy machine where the
//! absolute figures do not.
//!
//! Options: `--items N` (default 1,000,000), `--backend sqlite|postgres|both` (default both),
//! `--rounds R` (default 3; each path's best round counts), `--chunk N` (the runner's chunk size,
//! default the server's: 1,000 on SQLite, 10,000 on PostgreSQL), `--senders N` (requests in
//! flight at once, default 64, as many clients would send them; 1 sends them one after another,
//! each waiting for its commit), `--pg URL` (default `CATALOGD_BENCH_PG`, then `CATALOGD_TEST_PG`, then
//! `postgres://postgres@127.0.0.1:5432/test`), `--batch N` (ids per request, default 10,000; small
//! requests measure the runner's cost per job), `--raw-batch N` (ids per transaction of the raw
//! loop, default 10,000), `--queued-first` (every job is enqueued before the runner starts, and
//! only the runner is timed: what it applies, without the wait of requests sent one after another
//! for their commits), `--docs PATH` (default `docs/PERFORMANCE.md`; the
//! table is written between `<!-- bench:SECTION:start -->` and `<!-- bench:SECTION:end -->` when
//! the file has those markers), `--section NAME` (default `store`), `--no-docs`.

use catalog_domain::{Dialect, JobStatus, RawId};
use catalog_store::{
    default_chunk_size, with_database, JobId, JobOptions, ProjectId, Runner, RunnerConfig, Store, StoreConfig,
};
use sqlx::Connection;
use std::time::{Duration, Instant};

/// Ids per bulk request and per raw transaction, unless `--batch` and `--raw-batch` say otherwise.
const DEFAULT_BATCH: usize = 10_000;
/// The request size the small-request goal is set for (Braze's most per request).
const SMALL_BATCH: usize = 50;
/// Items seeded per transaction (not measured).
const SEED_BATCH: usize = 10_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    items: usize,
    sqlite: bool,
    postgres: bool,
    pg_url: String,
    docs: Option<String>,
    /// `None`: the server's default for the backend.
    chunk: Option<usize>,
    senders: usize,
    rounds: usize,
    batch: usize,
    raw_batch: usize,
    queued_first: bool,
    section: String,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        items: 1_000_000,
        sqlite: true,
        postgres: true,
        pg_url: std::env::var("CATALOGD_BENCH_PG")
            .or_else(|_| std::env::var("CATALOGD_TEST_PG"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        docs: Some("docs/PERFORMANCE.md".to_owned()),
        chunk: None,
        senders: 64,
        rounds: 3,
        batch: DEFAULT_BATCH,
        raw_batch: DEFAULT_BATCH,
        queued_first: false,
        section: "store".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--items" => args.items = value()?.replace('_', "").parse()?,
            "--backend" => match value()?.as_str() {
                "sqlite" => args.postgres = false,
                "postgres" => args.sqlite = false,
                "both" => {}
                other => return Err(format!("unknown backend {other}").into()),
            },
            "--pg" => args.pg_url = value()?,
            "--docs" => args.docs = Some(value()?),
            "--no-docs" => args.docs = None,
            "--chunk" => args.chunk = Some(value()?.replace('_', "").parse()?),
            "--senders" => args.senders = value()?.parse::<usize>()?.max(1),
            "--rounds" => args.rounds = value()?.parse::<usize>()?.max(1),
            "--batch" => args.batch = value()?.replace('_', "").parse::<usize>()?.max(1),
            "--raw-batch" => args.raw_batch = value()?.replace('_', "").parse::<usize>()?.max(1),
            "--queued-first" => args.queued_first = true,
            "--section" => args.section = value()?,
            "--help" | "-h" => {
                println!("bench_store [--items N] [--rounds R] [--chunk N] [--batch N] [--raw-batch N] [--queued-first] [--backend sqlite|postgres|both] [--pg URL] [--docs PATH|--no-docs] [--section NAME]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.items == 0 {
        return Err("--items must be at least 1".into());
    }
    Ok(args)
}

/// A fresh database for one backend, removed afterwards.
enum Target {
    Sqlite { path: std::path::PathBuf },
    Postgres { admin_url: String, name: String },
}

impl Target {
    fn url(&self) -> String {
        match self {
            Target::Sqlite { path } => format!("sqlite://{}", path.display()),
            Target::Postgres { admin_url, name } => with_database(admin_url, name),
        }
    }

    async fn drop_database(&self) {
        match self {
            Target::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Target::Postgres { admin_url, name } => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                }
            }
        }
    }
}

/// A raw pool on the bench database with the store's connection settings.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

async fn raw_pool(url: &str) -> Result<Raw, BoxError> {
    if url.starts_with("sqlite:") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        use std::str::FromStr;
        // The same pragmas as Store::connect, so the baseline pays the same durability.
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Ok(Raw::Sqlite(sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await?))
    } else {
        Ok(Raw::Pg(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?))
    }
}

fn item_id(i: usize) -> String {
    format!("item-{i:08}")
}

/// Inserts items `0..n` into the catalog, 10,000 per transaction (not measured).
async fn seed(raw: &Raw, catalog_id: i64, n: usize) -> Result<(), BoxError> {
    for start in (0..n).step_by(SEED_BATCH) {
        let ids: Vec<String> = (start..n.min(start + SEED_BATCH)).map(item_id).collect();
        match raw {
            Raw::Sqlite(pool) => {
                let json = serde_json::to_string(&ids)?;
                sqlx::query(
                    "INSERT INTO items (catalog_id, item_id, fields, created_at, updated_at)
                     SELECT $1, value, '{\"price\":1}', 0, 0 FROM json_each($2)",
                )
                .bind(catalog_id)
                .bind(json)
                .execute(pool)
                .await?;
            }
            Raw::Pg(pool) => {
                sqlx::query(
                    "INSERT INTO items (catalog_id, item_id, fields, created_at, updated_at)
                     SELECT $1, id, '{\"price\":1}', 0, 0 FROM unnest($2::text[]) AS id",
                )
                .bind(catalog_id)
                .bind(&ids)
                .execute(pool)
                .await?;
            }
        }
    }
    Ok(())
}

/// Compacts the table and refreshes the planner's statistics after a seed, as autovacuum would on
/// a live table, so that both paths meet the same table. Without the ANALYZE the first phase to
/// run meets a never-analyzed table on PostgreSQL, whose default estimates turn `= ANY($ids)` into
/// sequential scans. Without the VACUUM each phase meets the dead rows of every delete before it:
/// the first phase (always the job path) a compact table, where the planner deletes 10,000 ids by
/// a sequential scan (55 ms on this machine), the later ones a table twice the size, where it
/// takes the primary key (40 ms); best-of-rounds then compared the two plans, not the two paths.
async fn analyze(raw: &Raw) -> Result<(), BoxError> {
    match raw {
        Raw::Sqlite(_) => {}
        Raw::Pg(pool) => {
            sqlx::query("VACUUM ANALYZE items").execute(pool).await?;
        }
    }
    Ok(())
}

async fn count_items(raw: &Raw) -> Result<i64, BoxError> {
    use sqlx::Row;
    Ok(match raw {
        Raw::Sqlite(pool) => sqlx::query("SELECT COUNT(*) FROM items").fetch_one(pool).await?.try_get::<i64, _>(0)?,
        Raw::Pg(pool) => sqlx::query("SELECT COUNT(*) FROM items").fetch_one(pool).await?.try_get::<i64, _>(0)?,
    })
}

/// The ids in a fixed pseudo-random order (xorshift Fisher–Yates), cut into batches of `batch`:
/// requests arrive in no particular order.
fn shuffled_batches(n: usize, batch: usize) -> Vec<Vec<String>> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order.chunks(batch).map(|c| c.iter().map(|&i| item_id(i)).collect()).collect()
}

/// The same ids in the same order, regrouped into transactions of `size` for the raw loop.
fn regroup(batches: &[Vec<String>], size: usize) -> Vec<Vec<String>> {
    let ids: Vec<&String> = batches.iter().flatten().collect();
    ids.chunks(size).map(|c| c.iter().map(|id| (*id).clone()).collect()).collect()
}

/// The job path: every batch through `bulk_delete_items` (validation, payload, enqueue), applied
/// by a running runner (claim, chunks, checkpoints); timed until the last job completes. With
/// `queued_first`, every job is enqueued before the runner starts, and only the runner is timed.
async fn job_path(
    store: &Store,
    project: ProjectId,
    batches: &[Vec<String>],
    chunk: usize,
    queued_first: bool,
    senders: usize,
) -> Result<Duration, BoxError> {
    let runner = Runner::new(
        store.clone(),
        RunnerConfig { owner: "bench".into(), chunk_size: chunk, ..RunnerConfig::default() },
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut start_runner = Some(move || {
        tokio::spawn(async move {
            runner
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    });
    let mut handle = if queued_first { None } else { start_runner.take().map(|start| start()) };
    let mut started = Instant::now();
    let jobs = send_all(store, project, batches, senders).await?;
    let enqueued = started.elapsed();
    if queued_first {
        started = Instant::now();
        handle = start_runner.take().map(|start| start());
    }
    let handle = handle.ok_or("the runner did not start")?;
    // Done when the last job is: the jobs of one catalog finish in the order they were accepted,
    // and the last accepted has the highest id. Checked job by job after the clock. (A long poll,
    // woken by the runner's finish, rather than counting the unfinished jobs every 2 ms: with
    // thousands queued, that count took a tenth of the database's time from the runner.)
    let last = jobs.iter().copied().max_by_key(|id| id.0).ok_or("no job was sent")?;
    while !store.wait_for_job(project, last, Duration::from_secs(60)).await?.status.is_terminal() {}
    let elapsed = started.elapsed();
    for id in &jobs {
        let job = store.get_job(project, *id).await?;
        if job.status != JobStatus::Completed || job.completed_count != job.total_count {
            return Err(
                format!("job {} ended {} with {}/{}", id, job.status, job.completed_count, job.total_count).into()
            );
        }
    }
    let done = if queued_first { "then the runner applied them in" } else { "all done after" };
    println!(
        "  enqueued {} jobs in {:.2} s, {done} {:.2} s",
        jobs.len(),
        enqueued.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    let _ = stop_tx.send(());
    handle.await??;
    Ok(elapsed)
}

/// Sends every batch as a bulk delete request, `senders` at a time (each sender sends its share one
/// after another, as a client connection would); answers the jobs created.
async fn send_all(
    store: &Store,
    project: ProjectId,
    batches: &[Vec<String>],
    senders: usize,
) -> Result<Vec<JobId>, BoxError> {
    let share = batches.len().div_ceil(senders.max(1)).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for part in batches.chunks(share) {
        let (store, part) = (store.clone(), part.to_vec());
        tasks.spawn(async move {
            let mut jobs = Vec::with_capacity(part.len());
            for batch in part {
                let ids: Vec<RawId> = batch.into_iter().map(RawId::String).collect();
                let options = JobOptions::default();
                let outcome = store.bulk_delete_items(project, "bench", Dialect::Native, ids, &options).await?;
                jobs.push(outcome.job.ok_or("no job created")?.id);
            }
            Ok::<_, BoxError>(jobs)
        });
    }
    let mut jobs = Vec::with_capacity(batches.len());
    while let Some(sent) = tasks.join_next().await {
        jobs.extend(sent??);
    }
    Ok(jobs)
}

/// The baseline: the same ids, one transaction per group of `--raw-batch`, one set-based
/// statement on sorted ids.
async fn raw_path(raw: &Raw, catalog_id: i64, batches: &[Vec<String>]) -> Result<Duration, BoxError> {
    let started = Instant::now();
    for batch in batches {
        let mut ids = batch.clone();
        ids.sort_unstable();
        match raw {
            Raw::Sqlite(pool) => {
                let json = serde_json::to_string(&ids)?;
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM items WHERE catalog_id = $1 AND item_id IN (SELECT value FROM json_each($2))")
                    .bind(catalog_id)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Raw::Pg(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM items WHERE catalog_id = $1 AND item_id = ANY($2)")
                    .bind(catalog_id)
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
    }
    Ok(started.elapsed())
}

struct Figures {
    job_rate: f64,
    raw_rate: f64,
}

impl Figures {
    fn ratio(&self) -> f64 {
        self.job_rate / self.raw_rate
    }
}

async fn bench(name: &str, target: &Target, args: &Args) -> Result<Figures, BoxError> {
    let (n, rounds) = (args.items, args.rounds);
    let chunk = args.chunk.unwrap_or_else(|| default_chunk_size(name == "postgres"));
    let url = target.url();
    let store = Store::connect(&url, StoreConfig::default()).await?;
    let project = store.create_project("bench", "bench").await?.id;
    let catalog = store.create_catalog(project, "bench", None).await?;
    let raw = raw_pool(&url).await?;
    let batches = shuffled_batches(n, args.batch);
    let raw_batches = regroup(&batches, args.raw_batch);

    // Rounds alternate which path goes first, and each path keeps its best round: a burst of
    // load from elsewhere on the machine then costs a round, not the comparison.
    let mut best_job = Duration::MAX;
    let mut best_raw = Duration::MAX;
    for round in 0..rounds {
        for job_first in [round % 2 == 0, round % 2 != 0] {
            seed(&raw, catalog.id.0, n).await?;
            analyze(&raw).await?;
            let (label, elapsed) = if job_first {
                ("job path", job_path(&store, project, &batches, chunk, args.queued_first, args.senders).await?)
            } else {
                ("raw loop", raw_path(&raw, catalog.id.0, &raw_batches).await?)
            };
            let left = count_items(&raw).await?;
            if left != 0 {
                return Err(format!("{name}: {label} left {left} items").into());
            }
            println!("  round {}: {label} {:.2} s", round + 1, elapsed.as_secs_f64());
            let best = if job_first { &mut best_job } else { &mut best_raw };
            *best = (*best).min(elapsed);
        }
    }
    let (job_time, raw_time) = (best_job, best_raw);

    let figures = Figures { job_rate: n as f64 / job_time.as_secs_f64(), raw_rate: n as f64 / raw_time.as_secs_f64() };
    println!(
        "{name:<8} job path {:>9.0} items/s ({:.2} s)   raw loop {:>9.0} items/s ({:.2} s)   ratio {:.3}",
        figures.job_rate,
        job_time.as_secs_f64(),
        figures.raw_rate,
        raw_time.as_secs_f64(),
        figures.ratio()
    );
    match &raw {
        Raw::Sqlite(p) => p.close().await,
        Raw::Pg(p) => p.close().await,
    }
    store.close().await;
    Ok(figures)
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{model}, {cores} cores")
}

fn today() -> String {
    let days =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The checkout's commit, `+` when it has uncommitted changes other than to PERFORMANCE.md (which
/// the benchmarks themselves rewrite): what the figures were measured on.
fn commit() -> String {
    let git = |args: &[&str]| std::process::Command::new("git").args(args).output().ok().filter(|o| o.status.success());
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/PERFORMANCE.md"])
        .is_some_and(|o| !o.stdout.is_empty());
    format!("{}{}", String::from_utf8_lossy(&head.stdout).trim(), if dirty { "+" } else { "" })
}

fn table(args: &Args, rows: &[(&str, Option<&Figures>)]) -> String {
    let (n, rounds, batch, raw_batch) = (args.items, args.rounds, args.batch, args.raw_batch);
    let chunk = match args.chunk {
        Some(chunk) => chunk.to_string(),
        None => format!("{} on SQLite and {} on PostgreSQL", default_chunk_size(false), default_chunk_size(true)),
    };
    let senders = match args.senders {
        1 => ", requests sent one after another".to_owned(),
        n => format!(", {n} requests in flight"),
    };
    let timed =
        if args.queued_first { ", every job queued before the runner starts and only the runner timed" } else { "" };
    let mut out = String::new();
    out.push_str(&format!(
        "Bulk delete of {n} items in {batch}-id jobs (service layer + runner, chunks of {chunk}{senders}{timed}) against a raw loop \
         (one transaction and one set-based DELETE per {raw_batch} ids, same order); best of {rounds} alternating rounds each. \
         Measured {} on {}, commit {}.\n\n",
        today(),
        machine(),
        commit()
    ));
    out.push_str("| backend | job path (items/s) | raw loop (items/s) | ratio | target |\n|---|---:|---:|---:|---:|\n");
    // The targets are set against 10,000-id raw transactions: 0.9 for 10,000-id requests, 0.8
    // for 50-id ones.
    let target = match (batch, raw_batch) {
        (DEFAULT_BATCH, DEFAULT_BATCH) => "≥ 0.9",
        (SMALL_BATCH, DEFAULT_BATCH) => "≥ 0.8",
        _ => "none set",
    };
    for (name, figures) in rows {
        match figures {
            Some(f) => out.push_str(&format!(
                "| {name} | {:.0} | {:.0} | {:.3} | {target} |\n",
                f.job_rate,
                f.raw_rate,
                f.ratio()
            )),
            None => out.push_str(&format!("| {name} | not run | not run | – | {target} |\n")),
        }
    }
    out
}

fn write_docs(path: &str, section: &str, block: &str) -> Result<bool, BoxError> {
    let start_marker = format!("<!-- bench:{section}:start -->");
    let end_marker = format!("<!-- bench:{section}:end -->");
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(false);
    };
    let (Some(start), Some(end)) = (text.find(&start_marker), text.find(&end_marker)) else {
        return Ok(false);
    };
    if end < start {
        return Ok(false);
    }
    let updated = format!("{}{start_marker}\n{block}{}", &text[..start], &text[end..]);
    std::fs::write(path, updated)?;
    Ok(true)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let suffix = std::process::id();
    println!(
        "bench store: {} items, {}-id requests, raw transactions of {} ids, {}",
        args.items,
        args.batch,
        args.raw_batch,
        machine()
    );

    let mut sqlite = None;
    if args.sqlite {
        let target = Target::Sqlite { path: std::env::temp_dir().join(format!("catalogd_bench_{suffix}.db")) };
        let result = bench("sqlite", &target, &args).await;
        target.drop_database().await;
        sqlite = Some(result?);
    }
    let mut postgres = None;
    if args.postgres {
        let name = format!("catalogd_bench_{suffix}");
        let mut admin = sqlx::PgConnection::connect(&args.pg_url).await.map_err(|e| {
            format!("PostgreSQL at {} is unreachable: {e} (use --backend sqlite or --pg URL)", args.pg_url)
        })?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        admin.close().await?;
        let target = Target::Postgres { admin_url: args.pg_url.clone(), name };
        let result = bench("postgres", &target, &args).await;
        target.drop_database().await;
        postgres = Some(result?);
    }

    let block = table(&args, &[("SQLite", sqlite.as_ref()), ("PostgreSQL", postgres.as_ref())]);
    println!("\n{block}");
    if let Some(path) = &args.docs {
        if write_docs(path, &args.section, &block)? {
            println!("(table written to {path})");
        }
    }
    let fmt = |f: &Option<Figures>| f.as_ref().map_or_else(|| "n/a".to_owned(), |f| format!("{:.3}", f.ratio()));
    println!("ratio sqlite={} postgres={}", fmt(&sqlite), fmt(&postgres));
    Ok(())
}
