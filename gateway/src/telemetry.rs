//! Logging and OpenTelemetry: stderr logs always; traces and metrics exported over OTLP/HTTP
//! (protobuf) when the standard `OTEL_*` environment variables ask for them.
//!
//! Which signals are exported:
//! - nothing when `OTEL_SDK_DISABLED=true`;
//! - traces when `OTEL_TRACES_EXPORTER=otlp`, or when it is unset and
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set;
//!   `OTEL_TRACES_EXPORTER=none` turns traces off; metrics likewise with `OTEL_METRICS_EXPORTER`
//!   and `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`. (The specification's default exporter is `otlp`
//!   to localhost; a gateway that sends to a collector nobody runs only logs errors, so Strait
//!   exports only when an endpoint or an exporter is named.)
//! - The protocol is `http/protobuf`; `OTEL_EXPORTER_OTLP[_TRACES|_METRICS]_PROTOCOL` set to
//!   anything else is a start-up error, as is any other exporter name.
//!
//! The exporter crates read the rest themselves: endpoints, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `_TIMEOUT`, `_COMPRESSION`; `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (service name
//! `strait` unless set); `OTEL_BSP_*` for the span batch; `OTEL_METRIC_EXPORT_INTERVAL`.
//!
//! Spans: one `s3.request` span per request (target `strait::request`, level INFO, made by the
//! front service) with child spans for file-system work (`fs.*`, target `strait::fs`) and index
//! work (`index.*`, target `strait::index`), both at DEBUG, so that they cost nothing unless
//! OTLP traces are on (the stderr log filter, `RUST_LOG`, defaults to `info`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The exporters in use; [`Telemetry::shutdown`] flushes them.
#[derive(Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

/// What the environment asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Signals {
    pub traces: bool,
    pub metrics: bool,
}

impl Signals {
    /// Read the `OTEL_*` variables through `get` (the process environment in production).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let set = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(Self::default());
        }
        let signal = |name: &str, exporter_var: &str| -> Result<bool, String> {
            for var in ["OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(), format!("OTEL_EXPORTER_OTLP_{name}_PROTOCOL")] {
                if let Some(p) = set(&var) {
                    if p.trim() != "http/protobuf" {
                        return Err(format!("{var}={p}: only http/protobuf is supported"));
                    }
                }
            }
            match set(exporter_var).as_deref().map(str::trim) {
                Some("none") => Ok(false),
                Some("otlp") => Ok(true),
                Some(other) => Err(format!("{exporter_var}={other}: expected otlp or none")),
                None => Ok(set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                    || set(&format!("OTEL_EXPORTER_OTLP_{name}_ENDPOINT")).is_some()),
            }
        };
        Ok(Self {
            traces: signal("TRACES", "OTEL_TRACES_EXPORTER")?,
            metrics: signal("METRICS", "OTEL_METRICS_EXPORTER")?,
        })
    }
}

fn resource() -> Resource {
    let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut b =
        Resource::builder().with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if !named {
        b = b.with_service_name("strait");
    }
    b.build()
}

/// Install the stderr logger and, when asked for, the OTLP exporters. Must run outside any Tokio
/// runtime (the exporters' HTTP client is a blocking one, driven by the SDK's own threads).
pub fn init() -> Result<Telemetry, String> {
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,s3s=off"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(log_filter);
    let signals = Signals::from_env(|k| std::env::var(k).ok()).map_err(|e| format!("OpenTelemetry: {e}"))?;
    let mut t = Telemetry::default();
    let otel_layer = if signals.traces {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| format!("OpenTelemetry trace exporter: {e}"))?;
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource()).build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("strait")).with_filter(
            Targets::new()
                .with_target("strait::request", tracing::Level::INFO)
                .with_target("strait::fs", tracing::Level::DEBUG)
                .with_target("strait::index", tracing::Level::DEBUG)
                .with_target("strait_gateway", tracing::Level::INFO)
                .with_target("strait_connectors", tracing::Level::INFO)
                .with_target("strait_metadata", tracing::Level::INFO),
        );
        t.tracer = Some(provider);
        Some(layer)
    } else {
        None
    };
    tracing_subscriber::registry().with(fmt).with(otel_layer).try_init().map_err(|e| e.to_string())?;
    if signals.metrics {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .build()
            .map_err(|e| format!("OpenTelemetry metric exporter: {e}"))?;
        let provider = SdkMeterProvider::builder().with_periodic_exporter(exporter).with_resource(resource()).build();
        opentelemetry::global::set_meter_provider(provider.clone());
        t.meter = Some(provider);
    }
    if signals.traces || signals.metrics {
        tracing::info!(traces = signals.traces, metrics = signals.metrics, "OpenTelemetry OTLP/HTTP export on");
    }
    Ok(t)
}

impl Telemetry {
    /// Flush and stop the exporters (outside any Tokio runtime).
    pub fn shutdown(self) {
        if let Some(m) = self.meter {
            if let Err(e) = m.shutdown() {
                eprintln!("strait: OpenTelemetry metrics shutdown: {e}");
            }
        }
        if let Some(t) = self.tracer {
            if let Err(e) = t.shutdown() {
                eprintln!("strait: OpenTelemetry traces shutdown: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(vars: &[(&str, &str)]) -> Result<Signals, String> {
        Signals::from_env(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn export_only_when_asked() {
        assert_eq!(signals(&[]).unwrap(), Signals::default());
        let both = Signals { traces: true, metrics: true };
        assert_eq!(signals(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]).unwrap(), both);
        let only_traces = signals(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")]).unwrap();
        assert_eq!(only_traces, Signals { traces: true, metrics: false });
        let no_metrics =
            signals(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_METRICS_EXPORTER", "none")]).unwrap();
        assert_eq!(no_metrics, Signals { traces: true, metrics: false });
        assert_eq!(signals(&[("OTEL_METRICS_EXPORTER", "otlp")]).unwrap(), Signals { traces: false, metrics: true });
        let disabled = signals(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(disabled.unwrap(), Signals::default());
    }

    #[test]
    fn unsupported_choices_are_named() {
        let e = signals(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(e.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && e.contains("http/protobuf"), "{e}");
        let e = signals(&[("OTEL_TRACES_EXPORTER", "zipkin")]).unwrap_err();
        assert!(e.contains("OTEL_TRACES_EXPORTER=zipkin"), "{e}");
        assert!(signals(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf")]).is_ok());
    }
}
