//! `catalogd serve`: open the store, start the runner, serve HTTP, and shut down in order.
//!
//! Connections are served by [`crate::listener`], under its timeouts and cap; at start the soft
//! open-file limit is raised to the hard one, and the cap lowered if the limit still cannot hold it.
//!
//! Shutdown (SIGTERM or ctrl-c): stop accepting connections, answer every `?wait=` long poll at
//! once with its job as it stands, finish the other requests in flight, then let the runner finish
//! or checkpoint its chunk in flight and release its leases, then close the pool; each step is
//! logged, and the exit status is 0. A second signal meanwhile exits at once (status 130 after
//! SIGINT, 143 after SIGTERM).

use crate::config::{ConnectionArgs, LogFormat, ServeArgs};
use crate::limits::RateLimits;
use crate::listener::{cap_for_file_limit, raise_open_file_limit, ConnectionLimits};
use crate::metrics::Metrics;
use crate::state::AppState;
use catalog_store::{default_chunk_size, Runner, RunnerConfig, Store, StoreConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Installs the global tracing subscriber (`RUST_LOG` filters; default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The store configuration `serve` uses.
pub fn store_config(args: &ServeArgs) -> StoreConfig {
    StoreConfig {
        retention_ms: i64::from(args.job_retention_days) * 24 * 60 * 60 * 1_000,
        max_queued_inputs_per_project: args.max_queued_inputs_per_project,
        max_queued_inputs: args.max_queued_inputs,
        queue_recount_after: std::time::Duration::from_millis(args.queue_recount_ms),
        ..StoreConfig::default()
    }
}

/// How `serve` sends webhooks.
pub fn webhook_settings(args: &ServeArgs) -> crate::webhooks::WebhookSettings {
    crate::webhooks::WebhookSettings {
        allow_private: args.webhook_allow_private,
        retry: catalog_domain::events::RetrySchedule {
            first_delay_ms: args.webhook_retry_delay_ms,
            ..catalog_domain::events::RetrySchedule::default()
        },
        timeout: Duration::from_secs(args.webhook_timeout_seconds),
    }
}

/// The connection bounds of `args`, the cap lowered to what `open_file_limit` can hold.
pub fn connection_limits(args: &ConnectionArgs, open_file_limit: Option<u64>) -> ConnectionLimits {
    let cap = cap_for_file_limit(args.max_connections, open_file_limit);
    if cap < args.max_connections {
        tracing::warn!(
            max_connections = args.max_connections,
            open_file_limit,
            lowered_to = cap,
            "the open-file limit cannot hold --max-connections; the cap is lowered (raise the hard limit, `ulimit -Hn`)"
        );
    }
    ConnectionLimits {
        header_timeout: Duration::from_secs(args.header_timeout_seconds),
        body_timeout: Duration::from_secs(args.body_timeout_seconds),
        keep_alive_timeout: Duration::from_secs(args.keep_alive_seconds),
        max_connections: usize::try_from(cap).unwrap_or(usize::MAX),
    }
}

/// The signals that stop the server: SIGINT (ctrl-c) and SIGTERM, listened for from the start so
/// that none is missed between the first and the second.
struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

/// A signal that arrived: its name for the log, and the exit status a second one ends with
/// (128 + its number, as a shell reports a process killed by it).
#[derive(Debug, Clone, Copy)]
struct Received {
    name: &'static str,
    exit_status: i32,
}

impl ShutdownSignals {
    fn install() -> Result<Self, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind, name| signal(kind).map_err(|e| format!("cannot listen for {name}: {e}"));
            Ok(ShutdownSignals {
                interrupt: listen(SignalKind::interrupt(), "SIGINT")?,
                terminate: listen(SignalKind::terminate(), "SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) -> Received {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Received { name: "SIGINT", exit_status: 130 },
                _ = self.terminate.recv() => Received { name: "SIGTERM", exit_status: 143 },
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            Received { name: "ctrl-c", exit_status: 130 }
        }
    }
}

/// Resolves at the first signal, once every long poll has been told to answer; from then on a
/// second signal ends the process at once, without waiting for requests or the runner.
async fn first_signal(mut signals: ShutdownSignals, store: Store) {
    let first = signals.next().await;
    tracing::info!(
        signal = first.name,
        "shutting down: answering long polls with their job as it stands, finishing requests in flight, then \
         letting the runner checkpoint (a second signal exits at once)"
    );
    store.end_waits();
    tokio::spawn(async move {
        let second = signals.next().await;
        tracing::warn!(
            signal = second.name,
            "second signal: exiting at once, without waiting for requests or the runner"
        );
        std::process::exit(second.exit_status);
    });
}

/// Runs the server until a shutdown signal.
pub async fn serve(args: ServeArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let limits = connection_limits(&args.connections, raise_open_file_limit());
    let store = Store::connect(&args.database.database_url, store_config(&args))
        .await
        .map_err(|e| format!("cannot open {}: {e}", redact(&args.database.database_url)))?;
    if store.list_projects().await.map_err(|e| e.to_string())?.is_empty() {
        tracing::info!(
            "the database has no project yet; create one and a key with:\n  catalogd admin project create my-project\n  catalogd admin key create --project my-project --scopes catalogs:read,catalogs:write,jobs:read,jobs:write"
        );
    }
    let signals = ShutdownSignals::install()?;
    let state = AppState {
        store: store.clone(),
        rate_limits: Arc::new(RateLimits::new(&args.rate_limits)),
        metrics: Arc::new(Metrics::default()),
        max_body_bytes: args.max_body_bytes,
        klaviyo_catalog: args.klaviyo_catalog.as_str().into(),
        webhooks: Arc::new(webhook_settings(&args)),
    };
    let listener = crate::listener::bind(args.listen).map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;

    let (stop_runner, runner_stopped) = watch::channel(false);
    let runner_config = RunnerConfig {
        workers: args.runner_workers,
        max_running_catalogs_per_project: args.max_running_catalogs_per_project,
        chunk_size: args.chunk_size.unwrap_or_else(|| default_chunk_size(store.is_postgres())).max(1),
        batch_inputs: usize::try_from(args.batch_inputs).unwrap_or(usize::MAX),
        lease_duration: std::time::Duration::from_secs(args.lease_seconds.max(1)),
        ..RunnerConfig::default()
    };
    let runner = Runner::new(store.clone(), runner_config);
    let runner_task = tokio::spawn(async move {
        if args.runner_workers == 0 {
            tracing::info!("--runner-workers 0: this process runs no jobs");
            return Ok(());
        }
        let mut stopped = runner_stopped;
        runner
            .run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });

    let (stop_sender, sender_stopped) = watch::channel(false);
    let sender = tokio::spawn(crate::webhook_sender::run(store.clone(), webhook_settings(&args), async move {
        let mut stopped = sender_stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    }));

    tracing::info!(
        %address,
        database = %redact(&args.database.database_url),
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_timeout.as_secs(),
        body_timeout_s = limits.body_timeout.as_secs(),
        keep_alive_s = limits.keep_alive_timeout.as_secs(),
        "catalogd listening"
    );
    crate::listener::serve(listener, crate::router(state), limits, first_signal(signals, store.clone())).await;
    tracing::info!("requests finished; the runner checkpoints and releases its leases");
    let _ = stop_runner.send(true);
    match runner_task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "runner stopped with an error"),
        Err(error) => tracing::error!(%error, "runner task failed"),
    }
    let _ = stop_sender.send(true);
    if let Err(error) = sender.await {
        tracing::error!(%error, "webhook sender task failed");
    }
    store.close().await;
    tracing::info!("catalogd stopped");
    Ok(())
}

/// The database URL with its password replaced by `***`, for logs and error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, store_config};
    use crate::config::{Cli, Command};
    use clap::Parser;
    use std::time::Duration;

    fn store_config_of(args: &[&str]) -> catalog_store::StoreConfig {
        match Cli::try_parse_from(["catalogd", "serve"].iter().chain(args)) {
            Ok(Cli { command: Command::Serve(serve), .. }) => store_config(&serve),
            other => panic!("not a serve command: {other:?}"),
        }
    }

    #[test]
    fn the_queue_flags_reach_the_store() {
        let config = store_config_of(&["--max-queued-inputs", "7", "--queue-recount-ms", "0"]);
        assert_eq!((config.max_queued_inputs, config.queue_recount_after), (7, Duration::ZERO));
        let defaults = store_config_of(&[]);
        assert_eq!(defaults.queue_recount_after, catalog_store::queue::DEFAULT_QUEUE_RECOUNT_AFTER);
        assert_eq!(defaults.max_queued_inputs, catalog_store::queue::DEFAULT_MAX_QUEUED_INPUTS);
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://catalogd.db"), "sqlite://catalogd.db");
    }
}
