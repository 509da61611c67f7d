//! Prometheus metrics, rendered on our own `METRICS_PATH` route.
//!
//! The recorder is process-global (the `metrics` facade allows one), so it
//! is installed once and its handle reused; in tests several apps in one
//! process then share it, which is harmless because every series carries
//! labels that tell them apart.
//!
//! Each scrape also reports the standard process metrics
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`,
//! `process_virtual_memory_bytes`, `process_threads`), read from `/proc`
//! at scrape time by `metrics-process`'s collector. They are written here
//! rather than through the recorder because a `metrics` counter holds whole
//! numbers only, and CPU seconds need their fraction.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram of HTTP request durations, labelled `route`, `method`, `status`.
pub const HTTP_REQUEST_DURATION: &str = "coffeebuddy_http_request_duration_seconds";
/// Gauge set to 1, labelled with the service name and version.
pub const BUILD_INFO: &str = "coffeebuddy_build_info";

/// Latency buckets in seconds: fine-grained below Slack's 3 s deadline,
/// coarse above it.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0,
];

/// Buckets for "how late" histograms (seconds): reminders are due to the
/// second but may be hours late after an outage.
const LATENESS_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 14400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_lateness_seconds".to_owned()),
                    LATENESS_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("_seconds".to_owned()),
                        LATENCY_BUCKETS,
                    )
                })
                .expect("static, non-empty buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Only fails if another recorder was installed first, e.g. by a
            // test harness; our handle then renders nothing but the process
            // keeps working, which is the right trade for an observability aid.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            metrics::describe_histogram!(
                HTTP_REQUEST_DURATION,
                metrics::Unit::Seconds,
                "HTTP request latency by route, method and status"
            );
            metrics::describe_gauge!(BUILD_INFO, "Always 1; labels carry the build identity");
            handle
        })
        .clone()
}

/// Records the build identity gauge.
pub fn record_build_info(service: &str, version: &str) {
    metrics::gauge!(BUILD_INFO, "service" => service.to_owned(), "version" => version.to_owned())
        .set(1.0);
}

/// `GET $METRICS_PATH`.
pub(crate) async fn render(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    let mut text = handle.render();
    write_process_metrics(&mut text);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Appends the process metrics, in the names and types every Prometheus
/// client library uses, so stock dashboards and alerts work unchanged. A
/// value the platform cannot tell (no `/proc`) is left out, never faked.
fn write_process_metrics(out: &mut String) {
    use std::fmt::Write as _;
    let m = metrics_process::collector::collect();
    let as_f64 = |v: Option<u64>| v.map(|v| v as f64);
    let rows: [(&str, &str, &str, Option<f64>); 7] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            m.cpu_seconds_total,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            as_f64(m.resident_memory_bytes),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            as_f64(m.virtual_memory_bytes),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            as_f64(m.open_fds),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors (0 = unlimited).",
            as_f64(m.max_fds),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            as_f64(m.start_time_seconds),
        ),
        (
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            as_f64(m.threads),
        ),
    ];
    for (name, kind, help, value) in rows {
        if let Some(value) = value {
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_histograms_reach_hours_and_latency_ones_stay_fine_grained() {
        let handle = handle();
        metrics::histogram!("coffeebuddy_test_lateness_seconds").record(4000.0);
        metrics::histogram!("coffeebuddy_test_request_seconds").record(0.004);
        let text = handle.render();
        assert!(
            text.contains(r#"coffeebuddy_test_lateness_seconds_bucket{le="14400"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"coffeebuddy_test_request_seconds_bucket{le="0.005"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"coffeebuddy_test_request_seconds_bucket{le="14400"}"#),
            "{text}"
        );
    }
}
