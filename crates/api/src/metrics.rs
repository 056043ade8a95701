//! Prometheus metrics through the `metrics` facade and its Prometheus exporter.
//!
//! Two kinds of series, rendered one after the other by `GET /metrics`:
//! - **Recorded** series, emitted with `metrics::counter!`, `gauge!` and `histogram!` wherever
//!   something happens (this crate's request middleware, the store's runner, the events and
//!   webhooks), into the process-wide recorder [`Metrics`] installs once. Its registry is
//!   lock-free per series (atomics), so a request no longer takes a global mutex to be counted.
//! - **Read** series, the job gauges the store answers at scrape time ([`Metrics::render_jobs`]):
//!   they belong to one store, so they are rendered through a recorder of their own per scrape
//!   and never mix with another store's (tests run many stores in one process).

use catalog_store::JobMetrics;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bounds of the latency histograms (requests, runner chunks, the job writer's commits), in
/// seconds.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds of a batch's size in jobs (`catalogd_runner_batch_jobs`, and
/// `catalogd_job_writer_batch_jobs`, whose batches hold at most 256).
const BATCH_JOBS_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Upper bounds of a batch's size in inputs (`catalogd_runner_batch_inputs`).
const BATCH_INPUTS_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];

/// Upper bounds of a webhook delivery's lag behind its event, in seconds: retries back off up
/// to a day, so the buckets reach it.
const DELIVERY_LAG_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1_800.0, 3_600.0, 21_600.0, 86_400.0];

/// How often the recorder's histogram samples are folded into their buckets when nobody
/// scrapes: without it they would pile up between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The HTTP layer's handle on the process-wide recorder. Cheap to clone; every instance renders
/// the same recorded series.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Default for Metrics {
    /// The handle of the process-wide recorder, installed by the first call.
    fn default() -> Self {
        Self { handle: global().clone() }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The exporter's configuration: which histograms are rendered with which buckets (the others
/// would be rendered as summaries).
fn builder() -> PrometheusBuilder {
    let buckets = [
        ("catalogd_http_request_duration_seconds", LATENCY_BUCKETS),
        ("catalogd_runner_chunk_seconds", LATENCY_BUCKETS),
        ("catalogd_runner_batch_jobs", BATCH_JOBS_BUCKETS),
        ("catalogd_runner_batch_inputs", BATCH_INPUTS_BUCKETS),
        ("catalogd_job_writer_batch_jobs", BATCH_JOBS_BUCKETS),
        ("catalogd_job_writer_batch_seconds", LATENCY_BUCKETS),
        ("catalogd_webhook_delivery_lag_seconds", DELIVERY_LAG_BUCKETS),
    ];
    buckets.into_iter().fold(PrometheusBuilder::new(), |builder, (name, bounds)| {
        // Only an empty list of bounds is refused, and none of these is empty.
        match builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), bounds) {
            Ok(builder) => builder,
            Err(_) => unreachable!("the bucket bounds of {name} are not empty"),
        }
    })
}

/// Installs the process-wide recorder once and describes the series it will hold.
fn global() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // A program embedding the router installed its own: the series go there, and this
            // handle renders only the read ones.
            tracing::warn!("a metrics recorder was already installed; /metrics shows the job gauges only");
        }
        describe_recorded();
        // Present from the start, so that a rate over it is defined before the first loss.
        metrics::counter!("catalogd_runner_leases_lost_total").absolute(0);
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        });
        if let Err(error) = spawned {
            // Rendering folds the samples too: only an unscraped process grows.
            tracing::warn!(%error, "cannot start the metrics upkeep thread");
        }
        handle
    })
}

/// The HELP lines of the recorded series, wherever they are emitted.
fn describe_recorded() {
    describe_counter!("catalogd_http_requests_total", "HTTP requests answered, by route and status.");
    describe_histogram!("catalogd_http_request_duration_seconds", Unit::Seconds, "HTTP request latency, by route.");
    describe_histogram!(
        "catalogd_runner_chunk_seconds",
        Unit::Seconds,
        "Time a runner took to apply one chunk (with its checkpoint), whatever its outcome."
    );
    describe_histogram!(
        "catalogd_runner_batch_jobs",
        Unit::Count,
        "Jobs applied together in one batch transaction (the leader and the jobs that joined it)."
    );
    describe_histogram!("catalogd_runner_batch_inputs", Unit::Count, "Inputs applied in one batch transaction.");
    describe_histogram!(
        "catalogd_job_writer_batch_jobs",
        Unit::Count,
        "Jobs the job writer inserted in one transaction (a group commit of accepted requests)."
    );
    describe_histogram!(
        "catalogd_job_writer_batch_seconds",
        Unit::Seconds,
        "Time one job writer transaction took; its rate is the share of time the writer was busy."
    );
    describe_counter!(
        "catalogd_runner_leases_lost_total",
        "Leases this process's runners found taken over (by the heartbeat or at a checkpoint)."
    );
    describe_counter!("catalogd_webhook_deliveries_total", "Webhook delivery attempts, by outcome.");
    describe_histogram!(
        "catalogd_webhook_delivery_lag_seconds",
        Unit::Seconds,
        "Time from an event to its webhook delivery."
    );
    describe_gauge!("catalogd_event_streams_open", "Event streams (GET /v1/events and /v1/jobs/{id}/events) open.");
}

impl Metrics {
    /// Records one answered request of `route` (the matched path template).
    pub fn observe_request(&self, route: &str, status: u16, elapsed: Duration) {
        metrics::counter!("catalogd_http_requests_total", "route" => route.to_owned(), "status" => status.to_string())
            .increment(1);
        metrics::histogram!("catalogd_http_request_duration_seconds", "route" => route.to_owned()).record(elapsed);
    }

    /// The recorded series (HTTP, runner, events) in Prometheus text format.
    pub fn render_recorded(&self) -> String {
        self.handle.render()
    }

    /// The job gauges of one store, read at scrape time, in Prometheus text format.
    pub fn render_jobs(jobs: &JobMetrics) -> String {
        let recorder = builder().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            describe_gauge!("catalogd_jobs", "Jobs stored, by status.");
            for (status, count) in &jobs.by_status {
                metrics::gauge!("catalogd_jobs", "status" => status.as_str()).set(*count as f64);
            }
            describe_counter!(
                "catalogd_items_processed_total",
                "Inputs applied (completed or failed) by this process's runners."
            );
            metrics::counter!("catalogd_items_processed_total").absolute(jobs.items_processed);
            describe_gauge!("catalogd_runner_lag_seconds", Unit::Seconds, "Age of the oldest due job not yet claimed.");
            metrics::gauge!("catalogd_runner_lag_seconds").set(jobs.oldest_due_ms as f64 / 1_000.0);
            // Overall only: a series per project would grow with the number of projects.
            describe_gauge!("catalogd_queue_jobs", "Unfinished jobs (queued, scheduled, running), all projects.");
            metrics::gauge!("catalogd_queue_jobs").set(jobs.queued_jobs as f64);
            describe_gauge!(
                "catalogd_queue_inputs",
                "Inputs of unfinished jobs not yet applied, all projects (the queue limits bound it)."
            );
            metrics::gauge!("catalogd_queue_inputs").set(jobs.queued_inputs as f64);
            if let Some(rate) = jobs.drain_rate {
                describe_gauge!(
                    "catalogd_queue_drain_rate",
                    "Inputs applied per second by this process's runners over the last minute."
                );
                metrics::gauge!("catalogd_queue_drain_rate").set(rate);
            }
        });
        recorder.handle().render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog_domain::JobStatus;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        // A local recorder: the process-wide one is shared with every other test.
        let recorder = builder().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            let metrics = Metrics { handle: recorder.handle() };
            metrics.observe_request("/v1/jobs", 200, Duration::from_millis(3));
            metrics.observe_request("/v1/jobs", 200, Duration::from_millis(30));
        });
        let out = recorder.handle().render();
        assert!(out.contains("catalogd_http_requests_total{route=\"/v1/jobs\",status=\"200\"} 2"), "{out}");
        assert!(out.contains("le=\"0.005\"} 1"), "{out}");
        assert!(out.contains("le=\"0.05\"} 2"), "{out}");
        assert!(out.contains("le=\"+Inf\"} 2"), "{out}");
        assert!(out.contains("# TYPE catalogd_http_request_duration_seconds histogram"), "{out}");
    }

    #[test]
    fn job_gauges_are_rendered_per_store() {
        let jobs = JobMetrics {
            by_status: vec![(JobStatus::Queued, 3), (JobStatus::Completed, 0)],
            items_processed: 42,
            oldest_due_ms: 1_500,
            queued_jobs: 3,
            queued_inputs: 7,
            drain_rate: None,
        };
        let out = Metrics::render_jobs(&jobs);
        assert!(out.contains("catalogd_jobs{status=\"queued\"} 3"), "{out}");
        assert!(out.contains("catalogd_jobs{status=\"completed\"} 0"), "{out}");
        assert!(out.contains("catalogd_items_processed_total 42"), "{out}");
        assert!(out.contains("catalogd_runner_lag_seconds 1.5"), "{out}");
        assert!(out.contains("catalogd_queue_inputs 7"), "{out}");
        assert!(!out.contains("catalogd_queue_drain_rate"), "{out}");
    }
}
