//! The HTTP half of webhooks: one task per `catalogd serve` process turns readable events into
//! deliveries, leases the due ones and POSTs each, signed, to its webhook, recording the outcome
//! (catalog-store's `webhooks` is the storage half). Semantics: docs/EVENTS.md.
//!
//! Every attempt runs in a task of its own, and a webhook has at most one delivery in flight (the
//! claim's rule), so a slow or silent receiver holds one task and never another webhook's
//! deliveries. The loop wakes when new events are readable, when an attempt ends, and every
//! poll interval (retries coming due).

use crate::events::event_json;
use crate::webhooks::WebhookSettings;
use catalog_domain::events::is_private_address;
use catalog_store::{now_ms, AttemptOutcome, DueDelivery, Store, StoreError, EVENT_POLL_INTERVAL};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;

/// The most attempts one process has in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// How long past an attempt's timeout its lease lasts: a delivery whose sender died is sent again
/// once the lease ends.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// `Catalogd-Signature` of `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, as Stripe signs.
pub fn signature_header(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return format!("t={timestamp}"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Runs the sender until `stop` resolves, restarting it if it panics; attempts in flight at the
/// stop are left to finish within their timeout.
pub async fn run(store: Store, settings: WebhookSettings, stop: impl Future<Output = ()> + Send + 'static) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    loop {
        let task = tokio::spawn(run_once(store.clone(), settings.clone(), stop_rx.clone()));
        match task.await {
            Ok(()) => return,
            Err(error) => tracing::error!(%error, "the webhook sender failed; starting it again"),
        }
    }
}

async fn run_once(store: Store, settings: WebhookSettings, mut stop: tokio::sync::watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("catalogd-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; webhooks are not sent");
            return;
        }
    };
    match store.take_back_delivery_leases().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deliveries = n, "took back the deliveries a previous process had in flight"),
        Err(error) => tracing::warn!(%error, "cannot take back delivery leases"),
    }
    let mut signal = store.subscribe_events();
    let mut in_flight = JoinSet::new();
    let mut fanned_out = None;
    loop {
        if *stop.borrow() {
            break;
        }
        signal.borrow_and_update();
        if let Err(error) = step(&store, &settings, &client, &mut in_flight, &mut fanned_out).await {
            tracing::warn!(%error, "webhook sender: cannot read or lease deliveries; trying again");
        }
        tokio::select! {
            _ = signal.changed() => {}
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(error) = done {
                    tracing::error!(%error, "a webhook attempt failed");
                }
            }
            () = tokio::time::sleep(EVENT_POLL_INTERVAL) => {}
            _ = stop.changed() => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// Makes the deliveries of new events (when there are any since `fanned_out`, the latest id
/// this process fanned out) and starts the due ones. Writes only when there is work: on SQLite
/// every write takes the one write lock.
async fn step(
    store: &Store,
    settings: &WebhookSettings,
    client: &reqwest::Client,
    in_flight: &mut JoinSet<()>,
    fanned_out: &mut Option<i64>,
) -> Result<(), StoreError> {
    // Not `latest_event_id`: that would wait for the transactions writing events now; their events
    // are fanned out at a later step.
    let latest = store.readable_event_horizon().await?;
    if fanned_out.is_none_or(|done| latest > done) {
        store.fan_out_deliveries(latest, now_ms()).await?;
        *fanned_out = Some(latest);
    }
    let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
    if room == 0 || !store.deliveries_due(now_ms()).await? {
        return Ok(());
    }
    let lease = settings.timeout + LEASE_MARGIN;
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let due = store.claim_due_deliveries(now_ms(), lease_ms, u32::try_from(room).unwrap_or(u32::MAX)).await?;
    for delivery in due {
        let (store, settings, client) = (store.clone(), settings.clone(), client.clone());
        in_flight.spawn(async move { attempt(&store, &settings, &client, delivery).await });
    }
    Ok(())
}

/// Sends one delivery and records what came of it.
async fn attempt(store: &Store, settings: &WebhookSettings, client: &reqwest::Client, delivery: DueDelivery) {
    let body = event_json(&delivery.event);
    let sent_at = now_ms();
    let answer = match refused_target(&delivery.url, settings).await {
        Some(problem) => Err(problem),
        None => {
            let signature = signature_header(&delivery.secret, sent_at.div_euclid(1_000), &body);
            client
                .post(&delivery.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Catalogd-Signature", signature)
                .header("Catalogd-Event-Id", delivery.event.id.to_string())
                .header("Catalogd-Delivery-Id", delivery.id.to_string())
                .body(body)
                .send()
                .await
                .map(|response| response.status().as_u16())
                .map_err(|error| describe(&error))
        }
    };
    let now = now_ms();
    let retry =
        |failed: u64| settings.retry.next_attempt(delivery.created_at, u32::try_from(failed).unwrap_or(u32::MAX), now);
    let outcome = match answer {
        Ok(code @ 200..=299) => AttemptOutcome::Succeeded { response_code: code },
        Ok(code) => AttemptOutcome::Failed {
            response_code: Some(code),
            error: format!("HTTP {code}"),
            next_attempt_at: retry(delivery.attempts + 1),
        },
        Err(error) => {
            AttemptOutcome::Failed { response_code: None, error, next_attempt_at: retry(delivery.attempts + 1) }
        }
    };
    let label = match &outcome {
        AttemptOutcome::Succeeded { .. } => "succeeded",
        AttemptOutcome::Failed { next_attempt_at: Some(_), .. } => "retrying",
        AttemptOutcome::Failed { next_attempt_at: None, .. } => "failed",
    };
    metrics::counter!("catalogd_webhook_deliveries_total", "outcome" => label).increment(1);
    metrics::histogram!("catalogd_webhook_delivery_lag_seconds")
        .record((now - delivery.event.created_at).max(0) as f64 / 1_000.0);
    tracing::debug!(delivery = delivery.id, webhook = delivery.webhook_id, outcome = label, "webhook attempt");
    if let Err(error) = store.record_delivery(delivery.id, &outcome, now).await {
        // The lease runs out and the delivery is sent again: at least once.
        tracing::warn!(%error, delivery = delivery.id, "cannot record a webhook attempt; it will be sent again");
    }
}

/// Why an attempt is not made: the URL names, or resolves to, a loopback or private address and
/// the operator has not allowed those. A name is resolved here, before each attempt, since what
/// it resolves to may have changed since the webhook was created.
async fn refused_target(url: &str, settings: &WebhookSettings) -> Option<String> {
    if settings.allow_private {
        return None;
    }
    if let Some(problem) = crate::webhooks::url_problem(url, false) {
        return Some(problem);
    }
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let resolved = tokio::net::lookup_host((host.as_str(), port)).await.map(|found| found.collect::<Vec<_>>());
    match resolved {
        Ok(addresses) => addresses
            .iter()
            .any(|a| is_private_address(a.ip()))
            .then(|| format!("`{host}` resolves to a loopback or private address")),
        Err(error) => Some(format!("cannot resolve `{host}`: {error}")),
    }
}

/// An error of the HTTP client, without the URL (the caller shows it next to the webhook).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::signature_header;

    #[test]
    fn signature_is_stripes_scheme() {
        // HMAC-SHA256("key", "1.{}"), computed independently (Python's hmac module).
        assert_eq!(
            signature_header("key", 1, "{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
