//! Command line, environment and configuration file: `catalogd serve`, `catalogd admin ...`.
//!
//! A setting comes from, in this order (as Meilisearch does): its flag, its environment variable,
//! the TOML configuration file (`--config FILE` or `CATALOGD_CONFIG`), the built-in default. The
//! file's keys are the environment variables' names without `CATALOGD_`, in lower case
//! (`database_url`, `listen`, `rate_limits`, ...); [`with_config_file`] makes its values clap's
//! defaults, so clap's own precedence and value checks apply to them. `docs/config.example.toml`
//! lists every key.

use crate::limits::RateLimitSetting;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// catalogd keeps product catalogs and applies bulk changes to them (delete, upsert, patch items;
/// reassign categories) as durable jobs: each request is answered at once and its job runs in the
/// background, in order per catalog. Besides its native API it speaks the Braze, Bloomreach,
/// Klaviyo and OpenReplay catalog dialects.
///
/// Start: `catalogd admin project create acme`, `catalogd admin key create --project acme`, then
/// `catalogd serve` (SQLite in ./catalogd.db, http://127.0.0.1:8080).
#[derive(Debug, Parser)]
#[command(name = "catalogd", version)]
pub struct Cli {
    /// TOML configuration file; its keys are the environment variables' names without
    /// `CATALOGD_`, in lower case (docs/config.example.toml). Flags and environment variables
    /// override it.
    #[arg(long, env = "CATALOGD_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands whose settings a configuration file may give.
const CONFIGURABLE: &[&str] = &["serve", "admin"];

/// The configuration file named by `args` (`--config FILE` or `--config=FILE`), else by
/// `CATALOGD_CONFIG`: read before clap parses, since its values become clap's defaults.
pub fn config_file_of(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|arg| arg.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("CATALOGD_CONFIG").filter(|path| !path.is_empty()).map(PathBuf::from)
}

/// `command` with the values of the TOML file at `path` as its defaults. An unknown key, or a
/// value that is not a string, number, boolean or array of them, is an error naming the file.
pub fn with_config_file(command: clap::Command, path: &Path) -> Result<clap::Command, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut command = command;
    for (key, value) in table {
        let values = config_values(&value).ok_or_else(|| {
            format!("{}: `{key}` must be a string, a number, a boolean or an array of them", path.display())
        })?;
        let mut known = false;
        for name in CONFIGURABLE {
            let takes_it = command
                .find_subcommand(name)
                .is_some_and(|sub| sub.get_arguments().any(|arg| arg.get_id() == key.as_str() && key != "config"));
            if takes_it {
                known = true;
                let values = values.clone();
                command = command.mut_subcommand(name, |sub| {
                    sub.mut_arg(key.as_str(), |arg| {
                        arg.default_values(values.into_iter().map(clap::builder::OsStr::from))
                    })
                });
            }
        }
        if !known {
            return Err(format!(
                "{}: unknown key `{key}`; the keys are the environment variables' names without `CATALOGD_`, in \
                 lower case (see docs/config.example.toml)",
                path.display()
            ));
        }
    }
    Ok(command)
}

/// A TOML value as the command-line values it stands for.
fn config_values(value: &toml::Value) -> Option<Vec<String>> {
    let scalar = |value: &toml::Value| match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    };
    match value {
        toml::Value::Array(values) => values.iter().map(scalar).collect(),
        other => scalar(other).map(|value| vec![value]),
    }
}

/// The file of a `sqlite:` database URL (`sqlite://catalogd.db`, `sqlite:data/c.db?mode=rwc`);
/// `None` for PostgreSQL and in-memory databases.
pub fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and run jobs.
    Serve(ServeArgs),
    /// Print the native API's OpenAPI document (as committed in docs/openapi.json).
    Openapi,
    /// Print a shell completion script, e.g. `catalogd completions bash >
    /// ~/.local/share/bash-completion/completions/catalogd`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Manage projects and API keys in the database. Only `project create` creates a SQLite
    /// database that does not exist yet; the others refuse, naming the file they looked for.
    Admin {
        /// Database to manage.
        #[command(flatten)]
        database: DatabaseArgs,
        /// The admin command.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (the embedded default) or `postgres://...` (several processes may share it).
    #[arg(long, env = "CATALOGD_DATABASE_URL", default_value = "sqlite://catalogd.db", global = true)]
    pub database_url: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `catalogd serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CATALOGD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database to serve.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Log format.
    #[arg(long, env = "CATALOGD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes: a larger declared `Content-Length` gets 413 before
    /// the body is read, and a body that turns out larger while it is read gets 413 then.
    #[arg(long, env = "CATALOGD_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Days a finished job is kept before it is purged.
    #[arg(long, env = "CATALOGD_JOB_RETENTION_DAYS", default_value_t = 30)]
    pub job_retention_days: u32,
    /// The most inputs (ids, items, categories) one project may have waiting in unfinished jobs;
    /// a request that would pass it gets 429 `queue_full` and creates nothing.
    #[arg(long, env = "CATALOGD_MAX_QUEUED_INPUTS_PER_PROJECT", default_value_t = catalog_store::queue::DEFAULT_MAX_QUEUED_INPUTS_PER_PROJECT)]
    pub max_queued_inputs_per_project: u64,
    /// The most inputs all projects together may have waiting in unfinished jobs (429
    /// `queue_full` past it).
    #[arg(long, env = "CATALOGD_MAX_QUEUED_INPUTS", default_value_t = catalog_store::queue::DEFAULT_MAX_QUEUED_INPUTS)]
    pub max_queued_inputs: u64,
    /// Milliseconds the job writer may admit requests on its last count of the queue plus what it
    /// admitted since, before counting again (docs/RULES.md, "Queue bounds"). Exact within one
    /// process; processes sharing a PostgreSQL database may together pass a limit by what they
    /// accept in this time. 0 counts before every group commit.
    #[arg(long, env = "CATALOGD_QUEUE_RECOUNT_MS", default_value_t = catalog_store::queue::DEFAULT_QUEUE_RECOUNT_MS)]
    pub queue_recount_ms: u64,
    /// Jobs this process runs at once; 0 serves HTTP only and leaves the jobs to other processes
    /// sharing the database (PostgreSQL).
    #[arg(long, env = "CATALOGD_RUNNER_WORKERS", default_value_t = 2)]
    pub runner_workers: usize,
    /// The most catalogs one project may run at once, over every process sharing the database;
    /// a project at the cap waits while other projects' jobs are served. 0: no cap. See
    /// `docs/RULES.md`, "Projects served in turn".
    #[arg(long, env = "CATALOGD_MAX_RUNNING_CATALOGS_PER_PROJECT",
          default_value_t = catalog_store::RunnerConfig::DEFAULT_MAX_RUNNING_CATALOGS_PER_PROJECT)]
    pub max_running_catalogs_per_project: u32,
    /// Seconds a runner's lease on a job lasts without renewal; a job whose runner died is taken
    /// over by another runner after this long.
    #[arg(long, env = "CATALOGD_LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,
    /// Inputs a job applies per transaction (a chunk); a cancel takes effect between two. Default:
    /// 1,000 on SQLite, whose write lock requests share; 10,000 on PostgreSQL.
    #[arg(long, env = "CATALOGD_CHUNK_SIZE")]
    pub chunk_size: Option<usize>,
    /// The most inputs one transaction applies when a job's last chunk is applied together with
    /// the due jobs of its catalog behind it (docs/RULES.md, "Small jobs applied together"); 0
    /// applies every job on its own.
    #[arg(long, env = "CATALOGD_BATCH_INPUTS", default_value_t = catalog_domain::autobatch::DEFAULT_BATCH_INPUTS)]
    pub batch_inputs: u64,
    /// Override a rate-limit policy: `POLICY=LIMIT/PERIOD` (periods like `1s`, `10s`, `1m`) or
    /// `POLICY=off`. Repeatable; the environment variable takes a comma-separated list.
    /// Policies and defaults: see `docs/RULES.md`, "Rate limits".
    #[arg(long = "rate-limit", env = "CATALOGD_RATE_LIMITS", value_delimiter = ',')]
    pub rate_limits: Vec<RateLimitSetting>,
    /// The catalog (of the caller's project) that Klaviyo compound ids' `$default` names.
    #[arg(long, env = "CATALOGD_KLAVIYO_CATALOG", default_value = "default")]
    pub klaviyo_catalog: String,
    /// Let webhooks point at loopback and private addresses (receivers inside your own network,
    /// tests); refused otherwise, at creation and before each attempt.
    #[arg(long, env = "CATALOGD_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// The wait after a webhook delivery's first failed attempt, in milliseconds; it doubles after
    /// each further failure, and a delivery not answered with a 2xx within a day fails.
    #[arg(long, env = "CATALOGD_WEBHOOK_RETRY_DELAY_MS", default_value_t = catalog_domain::events::DEFAULT_FIRST_DELAY_MS,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub webhook_retry_delay_ms: i64,
    /// How long one webhook attempt may take (connecting, sending, the answer), in seconds.
    #[arg(long, env = "CATALOGD_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_timeout_seconds: u64,
    /// Bounds on connections: timeouts and the connection cap.
    #[command(flatten)]
    pub connections: ConnectionArgs,
}

/// How long a connection may take at each stage, and how many may be open at once. Defaults and
/// reasons: `docs/RULES.md`, "Connections".
#[derive(Debug, Clone, Copy, Args)]
pub struct ConnectionArgs {
    /// Seconds a client has to send a whole request head (request line and headers): counted from
    /// the accept for a connection's first request, from the first byte for the next ones.
    #[arg(long, env = "CATALOGD_HEADER_TIMEOUT_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a whole request body, counted from the end of its head.
    #[arg(long, env = "CATALOGD_BODY_TIMEOUT_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_seconds: u64,
    /// Seconds a kept-alive connection may stay idle after an answer before the server closes it.
    #[arg(long, env = "CATALOGD_KEEP_ALIVE_SECONDS", default_value_t = 75,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_alive_seconds: u64,
    /// Connections open at once; more wait in the listen backlog until one closes. Lowered at
    /// start if the open-file limit cannot hold this many.
    #[arg(long, env = "CATALOGD_MAX_CONNECTIONS", default_value_t = 4_096,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
}

/// `catalogd admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Projects (tenants).
    Project {
        /// What to do with projects.
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// API keys.
    Key {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeyCommand,
    },
}

/// `catalogd admin project ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project.
    Create {
        /// Url-safe key (used in facade paths).
        key: String,
        /// Display name (defaults to the key).
        #[arg(long)]
        name: Option<String>,
    },
    /// List projects.
    List,
}

/// `catalogd admin key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; its token is printed alone on the last line, this once.
    Create {
        /// The project's key.
        #[arg(long)]
        project: String,
        /// Comma-separated scopes: catalogs:read, catalogs:write, jobs:read, jobs:write.
        #[arg(long, value_delimiter = ',', default_value = "catalogs:read,catalogs:write,jobs:read,jobs:write")]
        scopes: Vec<String>,
    },
    /// List a project's keys (never their tokens).
    List {
        /// The project's key.
        #[arg(long)]
        project: String,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key's id.
        id: i64,
    },
}
