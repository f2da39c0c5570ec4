//! Prometheus metrics (text exposition on the admin listener's `/metrics`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: HistogramFamily,
    bytes_in: Counter,
    bytes_out: Counter,
    in_flight: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strait");
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let latency = HistogramFamily::new_with_constructor(latency_histogram);
        let (bytes_in, bytes_out, in_flight) = (Counter::default(), Counter::default(), Gauge::default());
        registry.register("requests", "S3 requests by operation and HTTP status", requests.clone());
        registry.register("errors", "S3 error responses by S3 error code", errors.clone());
        registry.register("request_duration_seconds", "Time to the response head, by operation", latency.clone());
        registry.register("received_bytes", "Request body bytes (Content-Length)", bytes_in.clone());
        registry.register("sent_bytes", "Response body bytes (Content-Length)", bytes_out.clone());
        registry.register("requests_in_flight", "Requests being served", in_flight.clone());
        Self { registry, requests, errors, latency, bytes_in, bytes_out, in_flight }
    }

    pub fn started(&self) {
        self.in_flight.inc();
    }

    /// Record a finished request (its response head is ready).
    pub fn finished(
        &self,
        op: &str,
        status: u16,
        error_code: Option<&str>,
        secs: f64,
        bytes: (Option<u64>, Option<u64>),
    ) {
        self.in_flight.dec();
        let op = if op.is_empty() { "Unknown" } else { op };
        self.requests
            .get_or_create(&vec![("operation".into(), op.into()), ("status".into(), status.to_string())])
            .inc();
        if let Some(code) = error_code {
            self.errors.get_or_create(&vec![("code".into(), code.into())]).inc();
        }
        self.latency.get_or_create(&vec![("operation".into(), op.into())]).observe(secs);
        self.bytes_in.inc_by(bytes.0.unwrap_or(0));
        self.bytes_out.inc_by(bytes.1.unwrap_or(0));
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_renders() {
        let m = Metrics::new();
        m.started();
        m.finished("GetObject", 404, Some("NoSuchKey"), 0.002, (None, Some(10)));
        let text = m.render();
        assert!(text.contains(r#"strait_requests_total{operation="GetObject",status="404"} 1"#), "{text}");
        assert!(text.contains(r#"strait_errors_total{code="NoSuchKey"} 1"#), "{text}");
        assert!(text.contains("strait_sent_bytes_total 10"), "{text}");
        assert!(text.contains("strait_requests_in_flight 0"), "{text}");
    }
}
