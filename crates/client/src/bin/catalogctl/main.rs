//! `catalogctl`: catalogd's command line, on top of catalog-client.
//!
//! Exit status: 0 when everything asked for succeeded; 1 when anything failed (a bad input, a
//! chunk that could not be submitted, a job that failed, was cancelled or failed some items, an
//! error answer); 2 for a usage error.

mod config;
mod input;
mod progress;

use catalog_client::{
    BulkEvent, BulkOptions, BulkReport, Client, Error, EventFilter, IdProblem, Job, JobFilter, JobKind, JobStatus,
    Problem, RetryPolicy, WaitOptions,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures_util::stream;
use input::Source;
use progress::Progress;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// catalogctl manages a catalogd server's catalogs, bulk item changes and jobs: it checks ids
/// before sending, splits any number of them into requests, retries rate-limited ones and shows
/// progress.
///
/// Set the server and the key first: `export CATALOGD_URL=http://127.0.0.1:8080
/// CATALOGD_TOKEN=...` (the token is the last line of `catalogd admin key create --project NAME`).
#[derive(Debug, Parser)]
#[command(name = "catalogctl", version)]
struct Cli {
    /// Server base URL (default http://127.0.0.1:8080, or the config file's `url`).
    #[arg(long, env = "CATALOGD_URL", global = true)]
    url: Option<String>,
    /// API token (or the config file's `token`).
    #[arg(long, env = "CATALOGD_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// JSON config file with `url` and `token` (default $XDG_CONFIG_HOME/catalogctl/config.json or
    /// ~/.config/catalogctl/config.json).
    #[arg(long, env = "CATALOGCTL_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Output format: text for people, json (one document on stdout) for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    /// Most tries of one request (429, 503 and connection failures are retried).
    #[arg(long, default_value_t = RetryPolicy::default().max_attempts, global = true)]
    max_attempts: u32,
    /// No progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Catalogs of the project.
    Catalogs {
        #[command(subcommand)]
        command: CatalogsCommand,
    },
    /// Items of a catalog, and bulk changes to them.
    Items {
        #[command(subcommand)]
        command: ItemsCommand,
    },
    /// Jobs: list, inspect, cancel, follow.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Follow the project's job events as they happen (one line each; `--output json`: one JSON
    /// event per line). Runs until interrupted.
    Events {
        /// Only this job's events.
        #[arg(long)]
        job: Option<i64>,
        /// Only these types (comma-separated: job.created, job.started, job.progress, job.completed, job.failed, job.cancelled).
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
        /// Only jobs of this catalog.
        #[arg(long)]
        catalog: Option<String>,
        /// Only events that left their job in these statuses (comma-separated).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Start after this event id (default: from now on).
        #[arg(long)]
        after: Option<i64>,
    },
    /// Webhooks: signed HTTP POSTs of job events.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Print a shell completion script, e.g. `catalogctl completions bash > ~/.local/share/bash-completion/completions/catalogctl`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Create a webhook; prints its signing secret, which is shown only now.
    Create {
        /// Where to POST the events (http or https). Positional: `--url` is the server's.
        target: String,
        /// The event types to send (comma-separated, e.g. job.completed,job.failed).
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the project's webhooks.
    List,
    /// List a webhook's deliveries, newest first.
    Deliveries {
        /// The webhook's id.
        id: i64,
        /// Rows per page (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Cursor from a previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogsCommand {
    /// List catalogs.
    List,
    /// Create a catalog.
    Create {
        /// Its name: letters, digits, `-` and `_`, at most 250.
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Show a catalog with its item count.
    Get {
        /// The catalog's name.
        name: String,
    },
    /// Delete a catalog and its items (a job).
    Delete {
        /// The catalog's name.
        name: String,
        /// Wait for the job to finish.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ItemsCommand {
    /// Delete items by id: one id per line of a file (or `-` for standard input).
    Delete(DeleteArgs),
    /// Create or replace items from a JSON Lines file (or `-`): one object per line, either
    /// {"id": "...", "fields": {...}} or a flat object whose `id` is the id and the rest its fields.
    Upsert(UpsertArgs),
    /// List items (one page, or all with --all).
    List {
        /// The catalog.
        #[arg(long)]
        catalog: String,
        /// Rows per page (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Cursor from a previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Follow the cursor to the last page.
        #[arg(long)]
        all: bool,
    },
    /// Show one item.
    Get {
        /// The catalog.
        #[arg(long)]
        catalog: String,
        /// The item's id.
        id: String,
    },
}

#[derive(Debug, Args)]
struct BulkArgs {
    /// The catalog.
    #[arg(long)]
    catalog: String,
    /// Wait for the jobs to finish (with a progress bar) and fail unless they all succeed.
    #[arg(long)]
    wait: bool,
    /// Send the valid inputs even if some are bad (the bad ones are still listed, and the exit
    /// status is still 1). Without it, one bad input means nothing is sent.
    #[arg(long)]
    skip_invalid: bool,
    /// Only check the input and say how many requests it would take.
    #[arg(long)]
    dry_run: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = catalog_client::bulk::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Inputs per request (at most 10000).
    #[arg(long, default_value_t = catalog_client::bulk::MAX_ITEMS_PER_REQUEST)]
    chunk_size: usize,
    /// Free text stored with every job.
    #[arg(long)]
    description: Option<String>,
    /// Your reference, stored with every job.
    #[arg(long)]
    reference_id: Option<String>,
    /// Don't start the jobs before this time (RFC 3339).
    #[arg(long)]
    start_at: Option<String>,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    /// File with one id per line, `-` for standard input.
    #[arg(long)]
    ids_file: String,
    #[command(flatten)]
    bulk: BulkArgs,
}

#[derive(Debug, Args)]
struct UpsertArgs {
    /// JSON Lines file, `-` for standard input.
    #[arg(long)]
    file: String,
    #[command(flatten)]
    bulk: BulkArgs,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// List jobs, newest first (one page, or all with --all).
    List {
        /// Only these statuses (comma-separated: scheduled, queued, running, completed, failed, cancelled).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Only these kinds (comma-separated, e.g. item_bulk_delete).
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        /// Only this catalog's jobs.
        #[arg(long)]
        catalog: Option<String>,
        /// Only jobs created at or after this time (RFC 3339).
        #[arg(long)]
        created_after: Option<String>,
        /// Only jobs created before this time (RFC 3339).
        #[arg(long)]
        created_before: Option<String>,
        /// Rows per page (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Cursor from a previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Follow the cursor to the last page.
        #[arg(long)]
        all: bool,
    },
    /// Show a job.
    Get {
        /// The job's id.
        id: i64,
        /// Hold the request up to this many seconds (at most 60) until the job is finished.
        #[arg(long)]
        wait: Option<u64>,
    },
    /// Cancel a job.
    Cancel {
        /// The job's id.
        id: i64,
    },
    /// Follow jobs to their end with a progress bar, from their event streams; fails unless they
    /// all succeed.
    Watch {
        /// The jobs' ids.
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// List a job's per-item failures.
    Errors {
        /// The job's id.
        id: i64,
        /// Rows per page (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Cursor from a previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
}

/// How a command ended, when it did not end in an error.
enum Outcome {
    Success,
    /// Something failed; the output already says what.
    Failure,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = cli.output;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("catalogctl: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::FAILURE,
        Err(error) => {
            report_error(output, &error);
            ExitCode::FAILURE
        }
    }
}

/// A failure of the command as a whole.
enum CliError {
    Client(Error),
    Other(String),
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        CliError::Client(error)
    }
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        CliError::Other(message)
    }
}

fn error_json(error: &Error) -> Value {
    match error {
        Error::Api { status, code, message, details, .. } => {
            json!({"status": status, "code": code, "message": message, "details": details})
        }
        other => json!({"code": "client_error", "message": other.to_string()}),
    }
}

fn report_error(output: Output, error: &CliError) {
    match (output, error) {
        (Output::Json, CliError::Client(error)) => println!("{}", json!({"error": error_json(error)})),
        (Output::Json, CliError::Other(message)) => {
            println!("{}", json!({"error": {"code": "client_error", "message": message}}))
        }
        (Output::Text, CliError::Client(error)) => eprintln!("catalogctl: {error}"),
        (Output::Text, CliError::Other(message)) => eprintln!("catalogctl: {message}"),
    }
}

/// How long catalogctl tries to open a connection: a server that is down or a wrong URL is
/// reported within it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

async fn run(cli: Cli) -> Result<Outcome, CliError> {
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "catalogctl", &mut std::io::stdout());
        return Ok(Outcome::Success);
    }
    let settings = config::resolve(cli.url.clone(), cli.token.clone(), cli.config.as_deref())?;
    let token = settings.token.ok_or_else(|| {
        CliError::Other(
            "no API token: set CATALOGD_TOKEN (or pass --token, or put \"token\" in the config file, see --help); \
             `catalogd admin key create --project NAME` creates one and prints it on its last line"
                .to_owned(),
        )
    })?;
    let retry = RetryPolicy { max_attempts: cli.max_attempts.max(1), ..RetryPolicy::default() };
    let client = Client::builder(settings.url)
        .token(token)
        .retry_policy(retry)
        .connect_timeout(CONNECT_TIMEOUT)
        .retry_before_first_answer(false)
        .user_agent(concat!("catalogctl/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let ui = Ui { output: cli.output, progress: !cli.no_progress && cli.output == Output::Text };
    match cli.command {
        Command::Catalogs { command } => catalogs(&client, &ui, command).await,
        Command::Items { command } => items(&client, &ui, command).await,
        Command::Jobs { command } => jobs(&client, &ui, command).await,
        Command::Events { job, types, catalog, status, after } => {
            let filter = EventFilter { job, types, catalog, statuses: status };
            follow_events(&client, &ui, &filter, after).await
        }
        Command::Webhooks { command } => webhooks(&client, &ui, command).await,
        // Answered above, before any setting is read.
        Command::Completions { .. } => Ok(Outcome::Success),
    }
}

/// How to talk to the user.
struct Ui {
    output: Output,
    progress: bool,
}

impl Ui {
    fn json(&self) -> bool {
        self.output == Output::Json
    }

    fn print_json(&self, value: &Value) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("catalogctl: cannot render JSON: {error}"),
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Catalogs

async fn catalogs(client: &Client, ui: &Ui, command: CatalogsCommand) -> Result<Outcome, CliError> {
    match command {
        CatalogsCommand::List => {
            let catalogs = client.list_catalogs().await?;
            if ui.json() {
                ui.print_json(&json!({"data": to_json(&catalogs)}));
            } else if catalogs.is_empty() {
                println!("no catalogs");
            } else {
                println!("{:<30} {:>10}  {:<25}  DESCRIPTION", "NAME", "ITEMS", "CREATED");
                for c in &catalogs {
                    let count = c.item_count.map_or_else(|| "-".to_owned(), |n| n.to_string());
                    println!(
                        "{:<30} {:>10}  {:<25}  {}",
                        c.name,
                        count,
                        c.created_at,
                        c.description.as_deref().unwrap_or("")
                    );
                }
            }
        }
        CatalogsCommand::Create { name, description } => {
            let catalog = client.create_catalog(&name, description.as_deref()).await?;
            if ui.json() {
                ui.print_json(&to_json(&catalog));
            } else {
                println!("created catalog {}", catalog.name);
            }
        }
        CatalogsCommand::Get { name } => {
            let catalog = client.get_catalog(&name).await?;
            if ui.json() {
                ui.print_json(&to_json(&catalog));
            } else {
                let count = catalog.item_count.map_or_else(|| "-".to_owned(), |n| n.to_string());
                println!("name:        {}", catalog.name);
                println!("description: {}", catalog.description.as_deref().unwrap_or(""));
                println!("items:       {count}");
                println!("created:     {}", catalog.created_at);
                println!("updated:     {}", catalog.updated_at);
            }
        }
        CatalogsCommand::Delete { name, wait } => {
            let job = client.delete_catalog(&name).await?;
            let jobs = if wait { wait_for_jobs(client, ui, &[job]).await? } else { vec![job] };
            return Ok(show_jobs(ui, &jobs, wait));
        }
    }
    Ok(Outcome::Success)
}

// ---------------------------------------------------------------------------------------------
// Items

async fn items(client: &Client, ui: &Ui, command: ItemsCommand) -> Result<Outcome, CliError> {
    match command {
        ItemsCommand::Delete(args) => {
            let source = Source::open(&args.ids_file)?;
            bulk(client, ui, &args.bulk, &source, Kind::Delete).await
        }
        ItemsCommand::Upsert(args) => {
            let source = Source::open(&args.file)?;
            bulk(client, ui, &args.bulk, &source, Kind::Upsert).await
        }
        ItemsCommand::List { catalog, limit, cursor, all } => {
            let mut cursor = cursor;
            let mut rows = Vec::new();
            loop {
                let page = client.list_items(&catalog, limit, cursor.as_deref()).await?;
                if !ui.json() {
                    for item in &page.data {
                        println!("{}\t{}", item.id, Value::Object(item.fields.clone()));
                    }
                }
                rows.extend(page.data);
                cursor = page.next_cursor;
                if !all || cursor.is_none() {
                    break;
                }
            }
            if ui.json() {
                ui.print_json(&json!({"data": to_json(&rows), "next_cursor": cursor}));
            } else if rows.is_empty() {
                println!("no items");
            } else if let Some(cursor) = cursor {
                eprintln!("more: --cursor {cursor}");
            }
            Ok(Outcome::Success)
        }
        ItemsCommand::Get { catalog, id } => {
            let item = client.get_item(&catalog, &id).await?;
            if ui.json() {
                ui.print_json(&to_json(&item));
            } else {
                println!("id:      {}", item.id);
                println!("fields:  {}", Value::Object(item.fields));
                println!("created: {}", item.created_at);
                println!("updated: {}", item.updated_at);
            }
            Ok(Outcome::Success)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delete,
    Upsert,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Delete => "ids",
            Kind::Upsert => "items",
        }
    }
}

/// One pass over the input: a dry run or the real one.
async fn bulk_pass(
    client: &Client,
    catalog: &str,
    source: &Source,
    kind: Kind,
    options: &BulkOptions,
) -> Result<BulkReport, CliError> {
    let read_error = Arc::new(Mutex::new(None));
    let lines = source.lines(Arc::clone(&read_error))?;
    let report = match kind {
        Kind::Delete => {
            let ids = stream::iter(lines.map(input::id_line));
            client.bulk_delete_stream(catalog, ids, options).await?
        }
        Kind::Upsert => {
            let items = stream::iter(lines.map(input::item_line));
            client.bulk_upsert_stream(catalog, items, options).await?
        }
    };
    // A read error ends the input early: nothing after it was seen, so the run cannot be trusted
    // to be complete.
    if let Some(message) = read_error.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(CliError::Other(message));
    }
    Ok(report)
}

async fn bulk(client: &Client, ui: &Ui, args: &BulkArgs, source: &Source, kind: Kind) -> Result<Outcome, CliError> {
    let options = BulkOptions {
        concurrency: args.concurrency,
        chunk_size: args.chunk_size,
        start_at: args.start_at.clone(),
        description: args.description.clone(),
        reference_id: args.reference_id.clone(),
        ..BulkOptions::default()
    };
    // First pass: check everything and count, sending nothing.
    let check =
        bulk_pass(client, &args.catalog, source, kind, &BulkOptions { dry_run: true, ..options.clone() }).await?;
    let bad = !check.rejected.is_empty();
    if args.dry_run || (bad && !args.skip_invalid) || check.valid == 0 {
        if ui.json() {
            ui.print_json(&bulk_json(kind, &check, &[], false));
        } else {
            print_rejections(&check);
            eprintln!(
                "{} {} read, {} invalid, {} valid in {} request(s); nothing sent{}",
                check.read,
                kind.noun(),
                check.rejected.len(),
                check.valid,
                check.planned_chunks,
                if bad && !args.dry_run { " (use --skip-invalid to send the valid ones)" } else { "" }
            );
        }
        // An empty input is nothing to do, not a failure; a bad input always is.
        return Ok(if bad { Outcome::Failure } else { Outcome::Success });
    }

    // Second pass: the real run, with a progress bar over the valid inputs.
    let bar = Progress::new(ui.progress, check.valid, "submitted");
    let observer_bar = bar.clone();
    let options = options.with_observer(move |event| match event {
        BulkEvent::ChunkAccepted(chunk) => {
            observer_bar.inc(chunk.items as u64);
            if let Some(job) = &chunk.job {
                observer_bar.message(format!("job {}", job.id));
            }
        }
        BulkEvent::ChunkRetrying { chunk, notice } => observer_bar.message(format!(
            "chunk {chunk}: {}, retry {} in {:.1}s",
            short_error(notice.error),
            notice.retry,
            notice.delay.as_secs_f64()
        )),
        // Listed in full at the end; the bar only says it happened.
        BulkEvent::ChunkFailed(failure) => {
            observer_bar.message(format!("chunk {} failed: {}", failure.chunk, short_error(&failure.error)))
        }
        _ => {}
    });
    let report = bulk_pass(client, &args.catalog, source, kind, &options).await?;
    bar.finish();
    let submitted: Vec<Job> = report.jobs().cloned().collect();
    let jobs =
        if args.wait && !submitted.is_empty() { wait_for_jobs(client, ui, &submitted).await? } else { submitted };
    let jobs_ok = !args.wait || jobs.iter().all(Job::succeeded);
    if ui.json() {
        ui.print_json(&bulk_json(kind, &report, &jobs, true));
    } else {
        print_rejections(&report);
        for failure in &report.failures {
            eprintln!(
                "chunk {} (lines {}-{}, {} {}) was not submitted: {} (Idempotency-Key {})",
                failure.chunk,
                failure.first_index + 1,
                failure.last_index + 1,
                failure.items,
                kind.noun(),
                failure.error,
                failure.idempotency_key
            );
        }
        if report.stopped_early {
            eprintln!("stopped early: the server would refuse every other request the same way; the rest was not sent");
        }
        let retried: u32 = report.chunks.iter().map(|c| c.attempts.saturating_sub(1)).sum();
        println!(
            "{} {} read, {} invalid, {} accepted in {} job(s){}",
            report.read,
            kind.noun(),
            report.rejected.len(),
            report.accepted,
            jobs.len(),
            if retried > 0 { format!(" ({retried} request(s) retried)") } else { String::new() }
        );
        print_job_table(&jobs);
    }
    Ok(if report.is_success() && jobs_ok { Outcome::Success } else { Outcome::Failure })
}

fn short_error(error: &Error) -> String {
    match error {
        Error::Api { status, code, .. } => format!("{code} ({status})"),
        Error::Transport(_) => "connection failed".to_owned(),
        other => other.to_string(),
    }
}

/// A rejection's message, with input indexes turned into line numbers.
fn rejection_message(problem: &Problem) -> String {
    match problem {
        Problem::InvalidId(IdProblem::Duplicate { first_index }) => {
            format!("the id is already on line {}", first_index.saturating_add(1))
        }
        other => other.to_string(),
    }
}

fn print_rejections(report: &BulkReport) {
    for rejection in &report.rejected {
        eprintln!(
            "line {}: {}: {} ({})",
            rejection.index + 1,
            rejection.id.as_deref().map_or_else(|| "-".to_owned(), |id| format!("{id:?}")),
            rejection_message(&rejection.problem),
            rejection.problem.reason()
        );
    }
}

fn bulk_json(kind: Kind, report: &BulkReport, jobs: &[Job], sent: bool) -> Value {
    json!({
        "sent": sent,
        "read": report.read,
        "valid": report.valid,
        "accepted": report.accepted,
        "requests": report.planned_chunks,
        "stopped_early": report.stopped_early,
        "retries": report.chunks.iter().map(|c| u64::from(c.attempts.saturating_sub(1))).sum::<u64>(),
        "rejected": report.rejected.iter().map(|r| json!({
            "index": r.index,
            "line": r.index + 1,
            "id": r.id,
            "reason": r.problem.reason(),
            "message": rejection_message(&r.problem),
        })).collect::<Vec<_>>(),
        "failed_chunks": report.failures.iter().map(|f| json!({
            "chunk": f.chunk,
            "first_index": f.first_index,
            "last_index": f.last_index,
            kind.noun(): f.items,
            "idempotency_key": f.idempotency_key,
            "error": error_json(&f.error),
        })).collect::<Vec<_>>(),
        "jobs": to_json(&jobs),
    })
}

// ---------------------------------------------------------------------------------------------
// Jobs

fn parse_words<T: std::str::FromStr>(words: &[String], what: &str) -> Result<Vec<T>, CliError>
where
    T::Err: std::fmt::Display,
{
    words
        .iter()
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<T>().map_err(|e| CliError::Other(format!("--{what}: {e}"))))
        .collect()
}

async fn jobs(client: &Client, ui: &Ui, command: JobsCommand) -> Result<Outcome, CliError> {
    match command {
        JobsCommand::List { status, kind, catalog, created_after, created_before, limit, cursor, all } => {
            let filter = JobFilter {
                statuses: parse_words::<JobStatus>(&status, "status")?,
                kinds: parse_words::<JobKind>(&kind, "kind")?,
                catalog,
                created_after,
                created_before,
            };
            let mut cursor = cursor;
            let mut rows = Vec::new();
            loop {
                let page = client.list_jobs(&filter, limit, cursor.as_deref()).await?;
                rows.extend(page.data);
                cursor = page.next_cursor;
                if !all || cursor.is_none() {
                    break;
                }
            }
            if ui.json() {
                ui.print_json(&json!({"data": to_json(&rows), "next_cursor": cursor}));
            } else if rows.is_empty() {
                println!("no jobs");
            } else {
                print_job_table(&rows);
                if let Some(cursor) = cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
            Ok(Outcome::Success)
        }
        JobsCommand::Get { id, wait } => {
            let job = match wait {
                Some(secs) if secs > 0 => client.get_job_held(id, Duration::from_secs(secs)).await?,
                _ => client.get_job(id).await?,
            };
            if ui.json() {
                ui.print_json(&to_json(&job));
            } else {
                print_job(&job);
            }
            Ok(Outcome::Success)
        }
        JobsCommand::Cancel { id } => {
            let job = client.cancel_job(id).await?;
            if ui.json() {
                ui.print_json(&to_json(&job));
            } else {
                println!("job {} is {}", job.id, job.status);
            }
            Ok(Outcome::Success)
        }
        JobsCommand::Watch { ids } => {
            let mut jobs = Vec::with_capacity(ids.len());
            for id in ids {
                jobs.push(client.get_job(id).await?);
            }
            let jobs = follow_jobs(client, ui, &jobs).await?;
            Ok(show_jobs(ui, &jobs, true))
        }
        JobsCommand::Errors { id, limit, cursor } => {
            let page = client.job_errors(id, limit, cursor.as_deref()).await?;
            if ui.json() {
                ui.print_json(&to_json(&page));
            } else if page.data.is_empty() {
                println!("no errors");
            } else {
                for error in &page.data {
                    println!(
                        "input {}\t{}\t{}\t{}",
                        error.index,
                        error.item_id.as_deref().unwrap_or("-"),
                        error.code,
                        error.detail.as_deref().or(error.title.as_deref()).unwrap_or("")
                    );
                }
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
            Ok(Outcome::Success)
        }
    }
}

/// Follows `jobs` to their end with a completion bar over their inputs, and returns them
/// finished. The oldest unfinished job is long-polled: the server runs jobs roughly in order, so
/// that is the one moving.
async fn wait_for_jobs(client: &Client, ui: &Ui, jobs: &[Job]) -> Result<Vec<Job>, CliError> {
    let total: u64 = jobs.iter().map(|j| j.total_count).sum();
    let bar = Progress::new(ui.progress, total, "completed");
    let mut current: Vec<Job> = jobs.to_vec();
    bar.set(current.iter().map(Job::processed_count).sum());
    // Short holds, so the bar moves while a long job runs.
    let options = WaitOptions { timeout: None, poll: Duration::from_secs(2) };
    for position in 0..current.len() {
        if current.get(position).is_some_and(Job::is_terminal) {
            continue;
        }
        let Some(id) = current.get(position).map(|j| j.id) else { continue };
        let others: u64 =
            current.iter().enumerate().filter(|(i, _)| *i != position).map(|(_, j)| j.processed_count()).sum();
        let finished = client
            .wait_with(id, options, |job| {
                bar.set(others + job.processed_count());
                bar.message(format!("job {} {}", job.id, job.status));
            })
            .await?;
        if let Some(slot) = current.get_mut(position) {
            *slot = finished;
        }
    }
    bar.finish();
    Ok(current)
}

/// Follows `jobs` to their end through their event streams (`GET /v1/jobs/{id}/events`), with a
/// completion bar over their inputs, and returns them finished. The streams are read one after
/// the other: each replays its job's events from the first, so none is missed meanwhile.
async fn follow_jobs(client: &Client, ui: &Ui, jobs: &[Job]) -> Result<Vec<Job>, CliError> {
    let total: u64 = jobs.iter().map(|j| j.total_count).sum();
    let bar = Progress::new(ui.progress, total, "completed");
    let mut current: Vec<Job> = jobs.to_vec();
    bar.set(current.iter().map(Job::processed_count).sum());
    for position in 0..current.len() {
        let Some(job) = current.get(position).filter(|j| !j.is_terminal()) else { continue };
        let id = job.id;
        let others: u64 =
            current.iter().enumerate().filter(|(i, _)| *i != position).map(|(_, j)| j.processed_count()).sum();
        let mut events = client.job_events(id, None).await?;
        while let Some(event) = events.next().await {
            let job = event?.data.job;
            bar.set(others + job.processed_count());
            bar.message(format!("job {} {}", job.id, job.status));
            if let Some(slot) = current.get_mut(position) {
                *slot = job;
            }
        }
    }
    bar.finish();
    Ok(current)
}

/// `catalogctl events`: prints each event as it comes, until interrupted or the stream fails.
async fn follow_events(
    client: &Client,
    ui: &Ui,
    filter: &EventFilter,
    after: Option<i64>,
) -> Result<Outcome, CliError> {
    let mut events = client.events(filter, after).await?;
    while let Some(event) = events.next().await {
        let event = event?;
        if ui.json() {
            // One event per line: a stream has no end to print one document at.
            println!("{}", to_json(&event));
        } else {
            let job = &event.data.job;
            println!(
                "{:>8}  {:<14} job {:>6}  {:<10} {}/{} failed {}  {}",
                event.id,
                event.event_type,
                job.id,
                job.status.as_str(),
                job.completed_count,
                job.total_count,
                job.failed_count,
                job.catalog.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(Outcome::Success)
}

async fn webhooks(client: &Client, ui: &Ui, command: WebhooksCommand) -> Result<Outcome, CliError> {
    match command {
        WebhooksCommand::Create { target, events, description } => {
            let hook = client.create_webhook(&target, &events, description.as_deref()).await?;
            if ui.json() {
                ui.print_json(&to_json(&hook));
            } else {
                println!("webhook {} created for {} ({})", hook.id, hook.url, hook.events.join(","));
                println!("signing secret (shown only now): {}", hook.secret.as_deref().unwrap_or("-"));
            }
        }
        WebhooksCommand::List => {
            let hooks = client.list_webhooks().await?;
            if ui.json() {
                ui.print_json(&json!({"webhooks": to_json(&hooks)}));
            } else if hooks.is_empty() {
                println!("no webhooks");
            } else {
                println!("{:>6}  {:<50} {:<40} CREATED", "ID", "URL", "EVENTS");
                for hook in &hooks {
                    println!("{:>6}  {:<50} {:<40} {}", hook.id, hook.url, hook.events.join(","), hook.created_at);
                }
            }
        }
        WebhooksCommand::Deliveries { id, limit, cursor } => {
            let page = client.webhook_deliveries(id, limit, cursor.as_deref()).await?;
            if ui.json() {
                ui.print_json(&to_json(&page));
            } else if page.deliveries.is_empty() {
                println!("no deliveries");
            } else {
                println!(
                    "{:>8}  {:>8}  {:<14} {:<10} {:>8} {:>5}  LAST ATTEMPT",
                    "ID", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "CODE"
                );
                for d in &page.deliveries {
                    println!(
                        "{:>8}  {:>8}  {:<14} {:<10} {:>8} {:>5}  {}",
                        d.id,
                        d.event_id,
                        d.event_type,
                        d.status,
                        d.attempts,
                        d.response_code.map_or_else(|| "-".to_owned(), |c| c.to_string()),
                        d.last_attempt_at.as_deref().unwrap_or("-")
                    );
                }
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
        }
    }
    Ok(Outcome::Success)
}

fn show_jobs(ui: &Ui, jobs: &[Job], waited: bool) -> Outcome {
    if ui.json() {
        ui.print_json(&json!({"jobs": to_json(&jobs)}));
    } else {
        print_job_table(jobs);
    }
    if !waited || jobs.iter().all(Job::succeeded) {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

fn print_job(job: &Job) {
    println!("id:          {}", job.id);
    println!("kind:        {}", job.kind);
    println!("status:      {}", job.status);
    println!("catalog:     {}", job.catalog.as_deref().unwrap_or("-"));
    println!("total:       {}", job.total_count);
    println!("completed:   {}", job.completed_count);
    println!("failed:      {}", job.failed_count);
    if let Some(description) = &job.description {
        println!("description: {description}");
    }
    if let Some(reference) = &job.reference_id {
        println!("reference:   {reference}");
    }
    println!("created:     {}", job.created_at);
    for (label, value) in [
        ("start at:    ", &job.start_at),
        ("started:     ", &job.started_at),
        ("finished:    ", &job.finished_at),
        ("expires:     ", &job.expires_at),
    ] {
        if let Some(value) = value {
            println!("{label}{value}");
        }
    }
}

fn print_job_table(jobs: &[Job]) {
    if jobs.is_empty() {
        return;
    }
    println!(
        "{:>8}  {:<22} {:<10} {:<20} {:>10} {:>10} {:>8}  CREATED",
        "ID", "KIND", "STATUS", "CATALOG", "TOTAL", "DONE", "FAILED"
    );
    for job in jobs {
        println!(
            "{:>8}  {:<22} {:<10} {:<20} {:>10} {:>10} {:>8}  {}",
            job.id,
            job.kind.as_str(),
            job.status.as_str(),
            job.catalog.as_deref().unwrap_or("-"),
            job.total_count,
            job.completed_count,
            job.failed_count,
            job.created_at
        );
    }
}
