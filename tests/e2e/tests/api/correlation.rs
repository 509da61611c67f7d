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
