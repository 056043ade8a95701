//! `catalogd serve`: open the store, start the runner, serve HTTP, and shut down in order.
//!
//! Shutdown (SIGTERM or ctrl-c): stop accepting connections and finish the requests in flight,
//! then let the runner finish or checkpoint its chunk in flight and release its leases, then close
//! the pool. Exit status 0.

use crate::config::{LogFormat, ServeArgs};
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::state::AppState;
use catalog_store::{Runner, RunnerConfig, Store, StoreConfig};
use std::sync::Arc;
use tokio::net::TcpListener;
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
    StoreConfig { retention_ms: i64::from(args.job_retention_days) * 24 * 60 * 60 * 1_000, ..StoreConfig::default() }
}

/// Resolves when SIGTERM or ctrl-c arrives.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Runs the server until a shutdown signal.
pub async fn serve(args: ServeArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let store = Store::connect(&args.database.database_url, store_config(&args))
        .await
        .map_err(|e| format!("cannot open {}: {e}", args.database.database_url))?;
    if store.list_projects().await.map_err(|e| e.to_string())?.is_empty() {
        tracing::info!(
            "the database has no project yet; create one and a key with:\n  catalogd admin project create my-project\n  catalogd admin key create --project my-project --scopes catalogs:read,catalogs:write,jobs:read,jobs:write"
        );
    }
    let state = AppState {
        store: store.clone(),
        rate_limits: Arc::new(RateLimits::new(&args.rate_limits)),
        metrics: Arc::new(Metrics::default()),
        max_body_bytes: args.max_body_bytes,
        klaviyo_catalog: args.klaviyo_catalog.as_str().into(),
    };
    let listener =
        TcpListener::bind(args.listen).await.map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;

    let (stop_runner, runner_stopped) = watch::channel(false);
    let runner_config = RunnerConfig {
        workers: args.runner_workers,
        chunk_size: args.chunk_size.max(1),
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

    tracing::info!(%address, database = %redact(&args.database.database_url), "catalogd listening");
    let served = axum::serve(listener, crate::router(state)).with_graceful_shutdown(shutdown_signal()).await;
    tracing::info!("shutting down: letting the runner checkpoint and release its leases");
    let _ = stop_runner.send(true);
    match runner_task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "runner stopped with an error"),
        Err(error) => tracing::error!(%error, "runner task failed"),
    }
    store.close().await;
    served.map_err(|e| format!("server error: {e}"))
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
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
    use super::redact;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://catalogd.db"), "sqlite://catalogd.db");
    }
}
