//! Prometheus metrics, rendered by hand in the text exposition format: the handful of series
//! catalogd exports do not justify a metrics framework in the dependency tree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the request latency histogram, in seconds.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Counters and histograms of the HTTP layer. Job gauges are read from the store when scraped.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// Records one answered request of `route` (the matched path template).
    pub fn observe_request(&self, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((route.to_owned(), status)).or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            let histogram = latency
                .entry(route.to_owned())
                .or_insert_with(|| Histogram { buckets: vec![0; LATENCY_BUCKETS.len()], ..Histogram::default() });
            let seconds = elapsed.as_secs_f64();
            for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
                if seconds <= *bound {
                    *bucket += 1;
                }
            }
            histogram.sum += seconds;
            histogram.count += 1;
        }
    }

    /// The HTTP series in Prometheus text format.
    pub fn render_http(&self, out: &mut String) {
        out.push_str("# HELP catalogd_http_requests_total HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE catalogd_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "catalogd_http_requests_total{{route=\"{}\",status=\"{status}\"}} {count}",
                    escape(route)
                );
            }
        }
        out.push_str("# HELP catalogd_http_request_duration_seconds HTTP request latency, by route.\n");
        out.push_str("# TYPE catalogd_http_request_duration_seconds histogram\n");
        if let Ok(latency) = self.latency.lock() {
            for (route, histogram) in latency.iter() {
                let route = escape(route);
                for (bound, count) in LATENCY_BUCKETS.iter().zip(&histogram.buckets) {
                    let _ = writeln!(
                        out,
                        "catalogd_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "catalogd_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    histogram.count
                );
                let _ =
                    writeln!(out, "catalogd_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", histogram.sum);
                let _ = writeln!(
                    out,
                    "catalogd_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    histogram.count
                );
            }
        }
    }
}

/// Escapes a label value (backslash, quote, newline).
pub fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.observe_request("/v1/jobs", 200, Duration::from_millis(3));
        metrics.observe_request("/v1/jobs", 200, Duration::from_millis(30));
        let mut out = String::new();
        metrics.render_http(&mut out);
        assert!(out.contains("catalogd_http_requests_total{route=\"/v1/jobs\",status=\"200\"} 2"), "{out}");
        assert!(out.contains("le=\"0.005\"} 1"), "{out}");
        assert!(out.contains("le=\"0.05\"} 2"), "{out}");
        assert!(out.contains("le=\"+Inf\"} 2"), "{out}");
    }
}
