//! The `sustained` and `shared` sections: what the runner applies while small requests keep
//! coming, against what the same server applies from large requests.
//!
//! One project, one catalog of `--items` items (500,000), filled through 10,000-id bulk upserts.
//! The reference: every item deleted through 10,000-id bulk deletes, timed from the first request
//! until every job has finished (ids/s), then the items upserted again; the fastest of
//! [`REFERENCE_ROUNDS`] such rounds counts. Then
//! `--connections` (64) closed loops send 50-id bulk deletes for `--seconds` (30): the figure is
//! the ids of the accepted requests over the load plus the drain, until every accepted job has
//! finished. The 50-id requests walk the items in order and start over when they have named them
//! all, so the first pass deletes items and later ones find them gone (deletes are idempotent).
//! 5xx and 429 answers are counted and printed. Beside it, the CPU time each accepted request
//! cost over the load and the drain (from `/proc`): the server processes', and the whole
//! machine's (the database and the load generator included). On two busy cores that is what
//! bounds the load, and unlike the ratio it does not carry the reference's own spread (a third
//! within an hour on one machine, docs/PERFORMANCE.md). And the job writer's share of the load's
//! time in its group commits (from `/metrics`): near 100%, the requests in flight wait for it,
//! not for the machine.
//!
//! `shared` (PostgreSQL): the same, then the same load spread over two `catalogd serve` processes
//! sharing a database of their own, filled the same way, against the one-process figure. (On the
//! first database the one-process load leaves some 250,000 finished jobs and their events: a
//! second run of one process there applied 0.87 of the first, which the comparison would have
//! counted against two processes.)

use crate::client::{ids_body, items_body, load, Answers, Conn};
use crate::setup::{date, machine, Backend, Database, Server};
use crate::{BoxError, Options};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ids per request of the reference (the native API's most).
const LARGE: u64 = 10_000;
/// Ids per request of the load (Braze's most).
const SMALL: u64 = 50;
/// Seconds of load unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 30;
/// The queue bounds for this section, per project and overall: far above anything the load can
/// queue, so that what is measured is the runner, not the bound (a refusal would be a 429).
const QUEUE_BOUND: &str = "1000000000000";
/// Rounds of the reference (each deletes every item, then upserts them again); the fastest
/// counts. The reference takes about a second, and a pause of the database within it (a
/// checkpoint, an autovacuum) moved single runs by a fifth (443,000 to 537,000 ids/s on one
/// PostgreSQL build), and the ratio with it: the best round is the conservative reference.
const REFERENCE_ROUNDS: usize = 3;
/// The catalog the section works on.
const CATALOG: &str = "sustained";

/// Ids applied over a stretch of time.
#[derive(Debug, Clone, Copy)]
struct Phase {
    ids: u64,
    elapsed: Duration,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ids as f64 / self.elapsed.as_secs_f64()
    }
}

/// A load of 50-id deletes and the drain after it.
#[derive(Debug, Clone, Copy)]
struct SmallRun {
    answers: Answers,
    drain: Duration,
    /// CPU time over the load and the drain, when `/proc` could be read.
    cpu: Option<CpuUsed>,
    /// The job writer over the load, when one process took it.
    writer: Option<WriterUse>,
}

/// The job writer's series, read before and after the load (`catalogd_job_writer_batch_*`).
const WRITER_SERIES: [&str; 3] = [
    "catalogd_job_writer_batch_seconds_sum",
    "catalogd_job_writer_batch_jobs_sum",
    "catalogd_job_writer_batch_jobs_count",
];

/// How the server's job writer (its group commit) spent the load: when it is busy nearly all the
/// time, accepted requests wait for it, whatever the machine has left.
#[derive(Debug, Clone, Copy)]
struct WriterUse {
    /// Its transactions' time over the load's.
    busy: f64,
    jobs_per_transaction: f64,
    seconds_per_transaction: f64,
}

impl WriterUse {
    /// From [`WRITER_SERIES`] read `before` and `after` a load that lasted `load`.
    fn between(before: &[f64], after: &[f64], load: Duration) -> Option<WriterUse> {
        let change = |i: usize| Some(after.get(i)? - before.get(i)?);
        let (seconds, jobs, transactions) = (change(0)?, change(1)?, change(2)?);
        (transactions > 0.0).then(|| WriterUse {
            busy: seconds / load.as_secs_f64(),
            jobs_per_transaction: jobs / transactions,
            seconds_per_transaction: seconds / transactions,
        })
    }
}

/// CPU time, in the kernel's clock ticks (`USER_HZ`), spent by the server processes and by the
/// whole machine (every process, the kernel's own work included).
#[derive(Debug, Clone, Copy)]
struct CpuUsed {
    servers: u64,
    machine: u64,
}

/// `/proc` counts CPU time in `USER_HZ` ticks, which Linux fixes at 100 a second for user space
/// whatever the kernel's own tick rate.
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuUsed {
    /// The CPU time spent so far by `pids` and by the machine; none where `/proc` is not Linux's.
    fn now(pids: &[u32]) -> Option<CpuUsed> {
        let mut servers = 0;
        for pid in pids {
            // After the command's name, which is in parentheses and may hold spaces: the fields
            // from the third on; utime and stime are the 14th and 15th.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            servers += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        }
        // The first line adds up every CPU: user, nice, system, idle, iowait, irq, softirq, steal.
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).map_while(|t| t.parse().ok()).collect();
        let busy = [0, 1, 2, 5, 6].iter().map(|&i| ticks.get(i).copied().unwrap_or(0)).sum();
        Some(CpuUsed { servers, machine: busy })
    }

    /// What was spent between `self` and `later`.
    fn until(self, later: CpuUsed) -> CpuUsed {
        CpuUsed {
            servers: later.servers.saturating_sub(self.servers),
            machine: later.machine.saturating_sub(self.machine),
        }
    }
}

impl SmallRun {
    /// Ids of the accepted requests per second of load plus drain.
    fn applied_rate(&self) -> f64 {
        (self.answers.wanted * SMALL) as f64 / (self.answers.elapsed + self.drain).as_secs_f64()
    }

    fn accepted_rate(&self) -> f64 {
        self.answers.per_second()
    }

    /// The job writer's busy share over the load; its jobs and milliseconds per transaction.
    fn writer_use(&self) -> String {
        match self.writer {
            Some(w) => format!(
                "{:.0}%; {:.1} jobs, {:.1} ms",
                w.busy * 100.0,
                w.jobs_per_transaction,
                w.seconds_per_transaction * 1e3
            ),
            None => "— (not read)".to_owned(),
        }
    }

    /// Microseconds of CPU per accepted request: the server processes', the whole machine's.
    fn cpu_per_request(&self) -> String {
        match self.cpu {
            Some(cpu) if self.answers.wanted > 0 => {
                let per_request = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / self.answers.wanted as f64 * 1e6;
                format!("{:.0} µs / {:.0} µs", per_request(cpu.servers), per_request(cpu.machine))
            }
            _ => "— (no /proc)".to_owned(),
        }
    }
}

/// Runs the section with `processes` servers (1: `sustained`; 2: `shared`); returns its table.
pub async fn run(
    options: &Options,
    backend: Backend,
    database: &Database,
    processes: usize,
) -> Result<String, BoxError> {
    let seconds = options.seconds.unwrap_or(DEFAULT_SECONDS);
    let args = serve_args(options);
    let (first, token, mut conn) = filled(options, database, &args).await?;
    let (mut reference, mut refill) = (None::<Phase>, None::<Phase>);
    for round in 1..=REFERENCE_ROUNDS {
        eprintln!("reference, round {round} of {REFERENCE_ROUNDS}: deleting them in {LARGE}-id requests…");
        let deleted = bulk(&mut conn, "bulk-delete", options.items).await?;
        eprintln!("  {:.0} ids/s; upserting them again…", deleted.rate());
        let upserted = bulk(&mut conn, "bulk-upsert", options.items).await?;
        eprintln!("  {:.0} ids/s", upserted.rate());
        reference = Some(fastest(reference, deleted));
        refill = Some(fastest(refill, upserted));
    }
    let (Some(reference), Some(refill)) = (reference, refill) else {
        return Err("the reference ran no round".into());
    };
    let one = small_deletes(&[&first], &token, options, seconds, &mut conn).await?;
    if processes < 2 {
        return Ok(sustained_table(options, backend, seconds, &args, reference, refill, &one));
    }
    drop((conn, first));
    let shared = Database::create(backend, &options.pg_url).await?;
    let two = match two_processes(options, &shared, &args, seconds).await {
        Ok(two) => two,
        Err(error) => return Err(format!("{error} (the two processes' logs in {})", shared.dir.display()).into()),
    };
    shared.remove().await;
    Ok(shared_table(options, seconds, &args, reference, &one, &two))
}

/// The load through two servers on `database`, filled first as the one-process run's was.
async fn two_processes(
    options: &Options,
    database: &Database,
    args: &[String],
    seconds: u64,
) -> Result<SmallRun, BoxError> {
    let (first, token, mut conn) = filled(options, database, args).await?;
    let second = Server::start(&options.bin, database, args).await?;
    small_deletes(&[&first, &second], &token, options, seconds, &mut conn).await
}

/// A server on `database` with a project and its catalog of `--items` items, filled through
/// 10,000-id bulk upserts; answers the server, the project's token and a connection to it.
async fn filled(options: &Options, database: &Database, args: &[String]) -> Result<(Server, String, Conn), BoxError> {
    let token = database.project(&options.bin, "bench")?;
    let server = Server::start(&options.bin, database, args).await?;
    let mut conn = Conn::open(server.port, &token).await?;
    conn.expect("POST", "/v1/catalogs", Some(format!(r#"{{"name":"{CATALOG}"}}"#).as_bytes()), 201).await?;
    eprintln!("filling {} items…", options.items);
    bulk(&mut conn, "bulk-upsert", options.items).await?;
    Ok((server, token, conn))
}

/// The faster of `best` (if any) and `phase`.
fn fastest(best: Option<Phase>, phase: Phase) -> Phase {
    match best {
        Some(best) if best.rate() >= phase.rate() => best,
        _ => phase,
    }
}

/// `--serve-arg`s, plus the raised queue bounds unless those were given.
fn serve_args(options: &Options) -> Vec<String> {
    let mut args = options.serve_args.clone();
    for flag in ["--max-queued-inputs-per-project", "--max-queued-inputs"] {
        if !args.iter().any(|a| a == flag) {
            args.extend([flag.to_owned(), QUEUE_BOUND.to_owned()]);
        }
    }
    args
}

/// Sends items `0..n` through `route` in 10,000-id requests, one after another on `conn`, and
/// waits until every job has finished; timed from the first request.
async fn bulk(conn: &mut Conn, route: &str, n: u64) -> Result<Phase, BoxError> {
    let path = format!("/v1/catalogs/{CATALOG}/items/{route}");
    let started = Instant::now();
    for start in (0..n).step_by(LARGE as usize) {
        let ids = start..n.min(start + LARGE);
        let body = if route == "bulk-upsert" { items_body(ids) } else { ids_body(ids, "") };
        conn.expect("POST", &path, Some(&body), 202).await?;
    }
    let done = conn.drained().await?;
    Ok(Phase { ids: n, elapsed: done - started })
}

/// The load: 50-id deletes from `--connections` loops over `servers` for `seconds`, walking the
/// items in order; then the drain, watched on `conn`.
async fn small_deletes(
    servers: &[&Server],
    token: &str,
    options: &Options,
    seconds: u64,
    conn: &mut Conn,
) -> Result<SmallRun, BoxError> {
    eprintln!(
        "{SMALL}-id deletes: {} connections over {} process(es) for {seconds} s…",
        options.connections,
        servers.len()
    );
    let ports: Vec<u16> = servers.iter().map(|server| server.port).collect();
    let pids: Vec<u32> = servers.iter().map(|server| server.pid()).collect();
    // The writer is read on `conn`, which reaches the first process only.
    let writer_before = match servers {
        [_] => Some(conn.metrics(&WRITER_SERIES).await?),
        _ => None,
    };
    let cpu_before = CpuUsed::now(&pids);
    let items = options.items;
    let path = format!("/v1/catalogs/{CATALOG}/items/bulk-delete");
    let answers = load(
        &ports,
        token,
        options.connections,
        seconds,
        202,
        Arc::new(move |n| {
            let first = n * SMALL;
            let body = ids_body((first..first + SMALL).map(|i| i % items), "");
            ("POST".to_owned(), path.clone(), Some(body))
        }),
    )
    .await?;
    let load_ended = Instant::now();
    let writer = match writer_before {
        Some(before) => WriterUse::between(&before, &conn.metrics(&WRITER_SERIES).await?, answers.elapsed),
        None => None,
    };
    eprintln!("  {:.0} accepted/s; draining…", answers.per_second());
    let drain = conn.drained().await? - load_ended;
    let cpu = cpu_before.zip(CpuUsed::now(&pids)).map(|(before, after)| before.until(after));
    let run = SmallRun { answers, drain, cpu, writer };
    eprintln!(
        "  drained in {:.1} s: {:.0} ids/s applied over load + drain; CPU per accepted request, server / machine: {}; \
         job writer {}",
        drain.as_secs_f64(),
        run.applied_rate(),
        run.cpu_per_request(),
        run.writer_use(),
    );
    Ok(run)
}

/// The line every table of this section starts with.
fn measured(options: &Options, backend: Backend, section: &str, seconds: u64, args: &[String]) -> String {
    format!(
        "Measured {} on {}, {} backend, release build of {}, by `cargo xtask bench http --backend {} --section {section}` \
         ({} items, {} connections for {seconds} s, server flags `{}`).\n\n",
        date(),
        machine(),
        backend.label(),
        options.commit,
        if backend == Backend::Postgres { "postgres" } else { "sqlite" },
        options.items,
        options.connections,
        args.join(" "),
    )
}

fn sustained_table(
    options: &Options,
    backend: Backend,
    seconds: u64,
    args: &[String],
    reference: Phase,
    refill: Phase,
    run: &SmallRun,
) -> String {
    let a = run.answers;
    format!(
        "{head}\
         | figure | catalogd | reference (same run) | ratio | goal |\n|---|---|---|---|---|\n\
         | {SMALL}-id bulk deletes, ids applied per second over load + drain | {applied:.0} ids/s | {LARGE}-id bulk deletes of the {items} items, best of {REFERENCE_ROUNDS}: {reference:.0} ids/s | {ratio:.2} | ≥ 0.7 |\n\
         | {SMALL}-id bulk deletes accepted during the load | {accepted:.0}/s ({accepted_ids:.0} ids/s) | — | — | — |\n\
         | drain after the load (until every accepted job finished) | {drain:.1} s | the load: {load:.1} s | — | — |\n\
         | answers 5xx / 429 during the load | {errors} / {refused} | — | — | no 5xx |\n\
         | CPU per accepted request over load + drain: catalogd / the whole machine (database and load generator included) | {cpu} | — | — | — |\n\
         | the job writer during the load: share of the time in its transactions (group commits); jobs and time per transaction | {writer} | — | — | — |\n\
         | {LARGE}-id bulk upserts of the same items, applied (best of {REFERENCE_ROUNDS}) | {refill:.0} ids/s | — | — | none set |\n",
        head = measured(options, backend, "sustained", seconds, args),
        applied = run.applied_rate(),
        items = options.items,
        reference = reference.rate(),
        ratio = run.applied_rate() / reference.rate(),
        accepted = run.accepted_rate(),
        accepted_ids = run.accepted_rate() * SMALL as f64,
        drain = run.drain.as_secs_f64(),
        load = a.elapsed.as_secs_f64(),
        errors = a.server_errors,
        refused = a.too_many,
        cpu = run.cpu_per_request(),
        writer = run.writer_use(),
        refill = refill.rate(),
    )
}

fn shared_table(
    options: &Options,
    seconds: u64,
    args: &[String],
    reference: Phase,
    one: &SmallRun,
    two: &SmallRun,
) -> String {
    let row = |label: &str, run: &SmallRun, against: &str| {
        format!(
            "| {label} | {:.0}/s | {:.0} ids/s | {:.1} s | {} | {} / {} | {against} |\n",
            run.accepted_rate(),
            run.applied_rate(),
            run.drain.as_secs_f64(),
            run.cpu_per_request(),
            run.answers.server_errors,
            run.answers.too_many,
        )
    };
    format!(
        "{head}\
         {LARGE}-id bulk deletes of the {items} items through one process (the reference of the sustained section, best of {REFERENCE_ROUNDS}): \
         {reference:.0} ids/s.\n\n\
         | {SMALL}-id bulk deletes through | accepted during the load | ids applied per second over load + drain | drain after the load | CPU per accepted request, catalogd / machine | 5xx / 429 | against one process |\n\
         |---|---|---|---|---|---|---|\n{one_row}{two_row}",
        head = measured(options, Backend::Postgres, "shared", seconds, args),
        items = options.items,
        reference = reference.rate(),
        one_row = row("one process", one, &format!("{:.2} of the reference", one.applied_rate() / reference.rate())),
        two_row = row("two processes, connections split", two, &format!("{:.2}", two.applied_rate() / one.applied_rate())),
    )
}
