//! Graceful shutdown: a request in flight when the stop signal arrives still
//! gets its answer; the server then stops accepting.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use coffeebuddy_shared::runtime::{self, Readiness};
use coffeebuddy_test_support::spawn;

#[tokio::test]
async fn an_in_flight_request_completes_after_the_stop_signal() {
    // Arrange: a handler that takes a while.
    let inner = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "finished"
        }),
    );
    let mut app = spawn(runtime::app(inner, Readiness::new("v"), "/metrics")).await;
    let url = app.url("/slow");
    let in_flight = tokio::spawn(async move { reqwest::get(url).await?.text().await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Act: stop (what SIGTERM triggers in production).
    app.begin_shutdown();

    // Assert: the slow request still gets its full answer…
    let body = in_flight
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(body, "finished");
    // …and the server then stops and refuses new connections.
    let addr = app.addr;
    tokio::time::timeout(Duration::from_secs(5), app.shutdown())
        .await
        .expect("server stops after draining")
        .unwrap();
    assert!(
        reqwest::get(format!("http://{addr}/health/live"))
            .await
            .is_err()
    );
}
