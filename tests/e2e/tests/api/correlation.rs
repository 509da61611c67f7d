//! Correlation ids: taken from Kong's headers or generated, echoed in the
//! response, and present on the request's log lines.

use axum::Router;
use axum::routing::get;
use coffeebuddy_shared::config::{LogFormat, LogSettings};
use coffeebuddy_shared::runtime::{self, Readiness};
use coffeebuddy_shared::telemetry;
use coffeebuddy_test_support::{LogCapture, spawn};
use serde_json::Value;

/// The "request completed" log line(s) carrying `id`.
fn completed_lines_for(logs: &LogCapture, id: &str) -> Vec<Value> {
    logs.json_lines()
        .into_iter()
        .filter(|l| l["message"] == "request completed" && l["span"]["correlation_id"] == id)
        .collect()
}

// A current-thread runtime (tokio::test's default) keeps the spawned server on
// this thread, where the capturing subscriber is the default.
#[tokio::test]
async fn the_correlation_id_is_echoed_and_on_every_log_line_of_the_request() {
    // Arrange
    let logs = LogCapture::default();
    let settings = LogSettings {
        level: "info".to_owned(),
        format: LogFormat::Json,
    };
    let _guard = tracing::subscriber::set_default(telemetry::subscriber(&settings, logs.clone()));
    let inner = Router::new().route(
        "/work",
        get(|| async {
            tracing::info!("doing the work");
            "done"
        }),
    );
    let app = spawn(runtime::app(inner, Readiness::new("v"), "/metrics")).await;
    let client = reqwest::Client::new();

    // Act
    let from_kong = client
        .get(app.url("/work"))
        .header("X-Correlation-ID", "kong-abc-123")
        .send()
        .await
        .unwrap();
    let from_request_id = client
        .get(app.url("/work"))
        .header("X-Request-ID", "req-456")
        .send()
        .await
        .unwrap();
    let generated = client.get(app.url("/work")).send().await.unwrap();
    let hostile = client
        .get(app.url("/work"))
        .header("X-Correlation-ID", "\"}{\"injected\":true")
        .send()
        .await
        .unwrap();

    // Assert: echoed.
    assert_eq!(from_kong.headers()["x-correlation-id"], "kong-abc-123");
    assert_eq!(from_request_id.headers()["x-correlation-id"], "req-456");
    let generated_id = generated.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated_id.len(), 36, "a UUID: {generated_id}");
    let replaced = hostile.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(replaced, "\"}{\"injected\":true");

    // Assert: on the handler's own line and on the access line.
    for id in ["kong-abc-123", "req-456", generated_id.as_str()] {
        assert_eq!(
            completed_lines_for(&logs, id).len(),
            1,
            "access line for {id}:\n{}",
            logs.contents()
        );
        let handler_lines = logs
            .json_lines()
            .into_iter()
            .filter(|l| l["message"] == "doing the work" && l["span"]["correlation_id"] == id)
            .count();
        assert_eq!(handler_lines, 1, "handler line for {id}");
    }
    let access = &completed_lines_for(&logs, "kong-abc-123")[0];
    assert_eq!(access["status"], 200);
    assert_eq!(access["span"]["path"], "/work");
}

/// The handler's own line of the request whose trace id is `trace_id`.
fn work_line_of_trace(logs: &LogCapture, trace_id: &str) -> Option<Value> {
    logs.json_lines()
        .into_iter()
        .find(|l| l["message"] == "doing the nested work" && l["trace_id"] == trace_id)
}

#[tokio::test]
async fn a_valid_traceparent_is_continued_and_an_invalid_one_replaced_on_every_line() {
    // Arrange
    let logs = LogCapture::default();
    let settings = LogSettings {
        level: "info".to_owned(),
        format: LogFormat::Json,
    };
    let _guard = tracing::subscriber::set_default(telemetry::subscriber(&settings, logs.clone()));
    let inner = Router::new().route(
        "/work",
        get(|| async {
            // A handler's own span hides the request span's fields from
            // `span`; the trace fields are on the line itself.
            let span = tracing::info_span!("handler", channel_id = "C1");
            let _entered = span.enter();
            tracing::info!("doing the nested work");
            "done"
        }),
    );
    let app = spawn(runtime::app(inner, Readiness::new("v"), "/metrics")).await;
    let client = reqwest::Client::new();
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    // Act
    for traceparent in [
        valid,
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4738-00f067aa0ba902b7-01",
    ] {
        let response = client
            .get(app.url("/work"))
            .header("traceparent", traceparent)
            .header("X-Correlation-ID", "kong-trace-1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    // Assert: the valid trace is continued with a span of our own.
    let line = work_line_of_trace(&logs, "4bf92f3577b34da6a3ce929d0e0e4736")
        .unwrap_or_else(|| panic!("the handler's line carries the trace: {}", logs.contents()));
    assert_eq!(line["correlation_id"], "kong-trace-1");
    assert_eq!(line["span"]["channel_id"], "C1");
    let span_id = line["span_id"].as_str().unwrap();
    assert_eq!(span_id.len(), 16);
    assert_ne!(span_id, "00f067aa0ba902b7", "a new span id for our hop");
    let access = logs
        .json_lines()
        .into_iter()
        .find(|l| {
            l["message"] == "request completed"
                && l["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        })
        .expect("the access line carries the trace too");
    assert_eq!(
        access["span"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    // Assert: the invalid ones each got a fresh trace, never their own ids.
    let traces: Vec<String> = logs
        .json_lines()
        .into_iter()
        .filter(|l| l["message"] == "doing the nested work")
        .filter_map(|l| l["trace_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(traces.len(), 4, "{traces:?}");
    let fresh = &traces[1..];
    for trace in fresh {
        assert_eq!(trace.len(), 32);
        assert!(
            trace
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(trace, &"0".repeat(32));
        assert!(
            !trace.starts_with("4bf92f3577b34da6a3ce929d0e0e473"),
            "{trace}"
        );
    }
    assert_ne!(fresh[0], fresh[1]);
    assert_ne!(fresh[1], fresh[2]);
}
