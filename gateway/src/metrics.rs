//! Metrics: Prometheus text exposition on the admin listener's `/metrics`, and the same
//! measurements as OpenTelemetry instruments (exported over OTLP when configured; see
//! `telemetry`). Both are updated at the same call sites, so they always agree.

use opentelemetry::KeyValue;
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
    io_queue_depth: Gauge,
    io_engine: Family<Labels, Gauge>,
    sendfile_bytes: Counter,
    listing_dirs: Family<Labels, Counter>,
    object_opens: Family<Labels, Counter>,
    index_memory: Family<Labels, Gauge>,
    allocator: Family<Labels, Gauge>,
    otel: Otel,
}

/// The OpenTelemetry instruments (no-ops unless a meter provider is installed first).
struct Otel {
    requests: opentelemetry::metrics::Counter<u64>,
    errors: opentelemetry::metrics::Counter<u64>,
    latency: opentelemetry::metrics::Histogram<f64>,
    bytes_in: opentelemetry::metrics::Counter<u64>,
    bytes_out: opentelemetry::metrics::Counter<u64>,
    in_flight: opentelemetry::metrics::UpDownCounter<i64>,
    _io_queue_depth: opentelemetry::metrics::ObservableGauge<i64>,
    _listing_dirs: opentelemetry::metrics::ObservableCounter<u64>,
    _object_opens: opentelemetry::metrics::ObservableCounter<u64>,
}

impl Otel {
    fn new() -> Self {
        let m = opentelemetry::global::meter("strait");
        Self {
            requests: m
                .u64_counter("strait.requests")
                .with_unit("{request}")
                .with_description("S3 requests by operation and HTTP status")
                .build(),
            errors: m
                .u64_counter("strait.errors")
                .with_unit("{error}")
                .with_description("S3 error responses by S3 error code")
                .build(),
            latency: m
                .f64_histogram("strait.request.duration")
                .with_unit("s")
                .with_description("Time to the response head, by operation")
                .with_boundaries((0..16).map(|i| 0.0005 * f64::powi(2.0, i)).collect())
                .build(),
            bytes_in: m
                .u64_counter("strait.received.bytes")
                .with_unit("By")
                .with_description("Request body bytes (Content-Length)")
                .build(),
            bytes_out: m
                .u64_counter("strait.sent.bytes")
                .with_unit("By")
                .with_description("Response body bytes (Content-Length)")
                .build(),
            in_flight: m
                .i64_up_down_counter("strait.requests.in_flight")
                .with_unit("{request}")
                .with_description("Requests being served")
                .build(),
            _io_queue_depth: m
                .i64_observable_gauge("strait.io.queue_depth")
                .with_unit("{operation}")
                .with_description(IO_QUEUE_HELP)
                .with_callback(|o| o.observe(crate::s3::io::queue_depth(), &[]))
                .build(),
            _listing_dirs: m
                .u64_observable_counter("strait.listing.directories")
                .with_unit("{directory}")
                .with_description(LISTING_DIRS_HELP)
                .with_callback(|o| {
                    let (read, indexed) = strait_connectors::list::directory_counts();
                    o.observe(read, &[KeyValue::new("source", "readdir")]);
                    o.observe(indexed, &[KeyValue::new("source", "index")]);
                })
                .build(),
            _object_opens: m
                .u64_observable_counter("strait.object.opens")
                .with_unit("{open}")
                .with_description(OBJECT_OPENS_HELP)
                .with_callback(|o| {
                    let (inline, pool) = crate::s3::io::inline_counts();
                    o.observe(inline, &[KeyValue::new("path", "inline")]);
                    o.observe(pool, &[KeyValue::new("path", "pool")]);
                })
                .build(),
        }
    }
}

const OBJECT_OPENS_HELP: &str =
    "GET/HEAD object opens tried from the kernel's caches on the async thread, by where they ran: inline (served there) or pool (a step would have blocked; rerun on the I/O pool)";
const LISTING_DIRS_HELP: &str =
    "Directories visited by listings, by source: readdir (read and sorted) or index (a trusted snapshot)";
const IO_QUEUE_HELP: &str =
    "File-system operations submitted to the I/O engine (io_uring or the blocking thread pool) and not finished";

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
        let io_queue_depth = Gauge::default();
        registry.register("io_queue_depth", IO_QUEUE_HELP, io_queue_depth.clone());
        let io_engine = Family::<Labels, Gauge>::default();
        registry.register("io_engine", "The file I/O engine in use (1 for the running one)", io_engine.clone());
        let sendfile_bytes = Counter::default();
        registry.register(
            "sendfile_bytes",
            "Response body bytes sent from files by sendfile(2), without a user-space copy",
            sendfile_bytes.clone(),
        );
        let listing_dirs = Family::<Labels, Counter>::default();
        registry.register("listing_directories", LISTING_DIRS_HELP, listing_dirs.clone());
        let object_opens = Family::<Labels, Counter>::default();
        registry.register("object_opens", OBJECT_OPENS_HELP, object_opens.clone());
        let index_memory = Family::<Labels, Gauge>::default();
        registry.register(
            "index_memory_bytes",
            "Memory the metadata store (RocksDB) holds, by part: write_buffers, block_cache (each bounded by a limit)",
            index_memory.clone(),
        );
        let allocator = Family::<Labels, Gauge>::default();
        registry.register(
            "allocator_bytes",
            "The process's heap as its allocator (jemalloc, which also serves RocksDB's C++ allocations) sees it: allocated (live) and resident bytes",
            allocator.clone(),
        );
        Self {
            registry,
            requests,
            errors,
            latency,
            bytes_in,
            bytes_out,
            in_flight,
            io_queue_depth,
            io_engine,
            sendfile_bytes,
            listing_dirs,
            object_opens,
            index_memory,
            allocator,
            otel: Otel::new(),
        }
    }

    pub fn started(&self) {
        self.in_flight.inc();
        self.otel.in_flight.add(1, &[]);
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
        self.otel.in_flight.add(-1, &[]);
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
        let o = &self.otel;
        let op_kv = KeyValue::new("operation", op.to_owned());
        o.requests.add(1, &[op_kv.clone(), KeyValue::new("status", i64::from(status))]);
        if let Some(code) = error_code {
            o.errors.add(1, &[KeyValue::new("code", code.to_owned())]);
        }
        o.latency.record(secs, &[op_kv]);
        o.bytes_in.add(bytes.0.unwrap_or(0), &[]);
        o.bytes_out.add(bytes.1.unwrap_or(0), &[]);
    }

    /// The OpenMetrics text exposition; `index_memory` is the metadata store's
    /// (write buffers, block cache, table readers) in bytes.
    pub fn render(&self, index_memory: (u64, u64, u64)) -> String {
        let parts =
            [("write_buffers", index_memory.0), ("block_cache", index_memory.1), ("table_readers", index_memory.2)];
        for (part, n) in parts {
            self.index_memory.get_or_create(&vec![("part".into(), part.into())]).set(n as i64);
        }
        // jemalloc's view of the gateway's own heap: live bytes, and the pages it keeps resident.
        if tikv_jemalloc_ctl::epoch::advance().is_ok() {
            let stats = [
                ("allocated", tikv_jemalloc_ctl::stats::allocated::read()),
                ("resident", tikv_jemalloc_ctl::stats::resident::read()),
            ];
            for (kind, v) in stats {
                if let Ok(v) = v {
                    self.allocator.get_or_create(&vec![("kind".into(), kind.into())]).set(v as i64);
                }
            }
        }
        self.io_queue_depth.set(crate::s3::io::queue_depth());
        let engine = strait_connectors::engine::kind().as_str();
        self.io_engine.get_or_create(&vec![("engine".into(), engine.into())]).set(1);
        self.sendfile_bytes.inc_by(crate::zerocopy::sent_bytes().saturating_sub(self.sendfile_bytes.get()));
        let (read, indexed) = strait_connectors::list::directory_counts();
        for (source, n) in [("readdir", read), ("index", indexed)] {
            let c = self.listing_dirs.get_or_create(&vec![("source".into(), source.into())]);
            c.inc_by(n.saturating_sub(c.get()));
        }
        let (inline, pool) = crate::s3::io::inline_counts();
        for (path, n) in [("inline", inline), ("pool", pool)] {
            let c = self.object_opens.get_or_create(&vec![("path".into(), path.into())]);
            c.inc_by(n.saturating_sub(c.get()));
        }
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
        let text = m.render((5, 7, 9));
        assert!(text.contains("strait_index_memory_bytes{part=\"block_cache\"} 7"), "{text}");
        assert!(text.contains("strait_index_memory_bytes{part=\"table_readers\"} 9"), "{text}");
        let live = text.lines().find_map(|l| l.strip_prefix("strait_allocator_bytes{kind=\"allocated\"} "));
        assert!(live.and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v > 0), "{text}");
        assert!(text.contains(r#"strait_requests_total{operation="GetObject",status="404"} 1"#), "{text}");
        assert!(text.contains(r#"strait_errors_total{code="NoSuchKey"} 1"#), "{text}");
        assert!(text.contains("strait_sent_bytes_total 10"), "{text}");
        assert!(text.contains("strait_requests_in_flight 0"), "{text}");
        assert!(text.contains("strait_io_queue_depth 0"), "{text}");
    }
}
