//! `EventRoutes` served on a real socket, driven by the test-support
//! CloudEvent helpers in binary and structured mode.

use coffeebuddy_shared::events::{
    EventRoutes, HandleEventError, PING, RUN_CREATED, RunCreated, decode_data,
};
use coffeebuddy_test_support::events::{event, post_binary, post_structured};
use coffeebuddy_test_support::{TestServer, spawn};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

async fn app() -> TestServer {
    let routes = EventRoutes::new("test").on(RUN_CREATED, |event| async move {
        let data: RunCreated = decode_data(&event)?;
        if data.channel_id == "C-down" {
            return Err(HandleEventError::Retryable(anyhow::anyhow!(
                "database unavailable"
            )));
        }
        Ok(())
    });
    spawn(routes.into_router()).await
}

fn run_created(channel: &str) -> serde_json::Value {
    json!({ "run_id": Uuid::new_v4(), "channel_id": channel })
}

#[tokio::test]
async fn a_known_event_is_accepted_in_binary_and_in_structured_mode() {
    // Arrange
    let server = app().await;
    let client = reqwest::Client::new();
    let event = event(RUN_CREATED, "C1", run_created("C1"));

    // Act
    let binary = post_binary(&client, &server.url("/"), &event)
        .send()
        .await
        .expect("request");
    let structured = post_structured(&client, &server.url("/"), &event)
        .send()
        .await
        .expect("request");

    // Assert
    assert_eq!(binary.status(), StatusCode::ACCEPTED);
    assert_eq!(structured.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_unknown_type_is_acknowledged_and_ignored() {
    let server = app().await;
    let client = reqwest::Client::new();

    let response = post_binary(&client, &server.url("/"), &event(PING, "C1", json!({})))
        .send()
        .await
        .expect("request");

    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn malformed_events_are_400_with_a_json_error_in_both_modes() {
    let server = app().await;
    let client = reqwest::Client::new();
    let bad_data = event(RUN_CREATED, "C1", json!({ "channel_id": 42 }));

    for response in [
        post_binary(&client, &server.url("/"), &bad_data),
        post_structured(&client, &server.url("/"), &bad_data),
        // No ce-id and no ce-source.
        client
            .post(server.url("/"))
            .header("ce-specversion", "1.0")
            .header("ce-type", RUN_CREATED)
            .json(&run_created("C1")),
        // Structured mode, but not JSON.
        client
            .post(server.url("/"))
            .header("content-type", "application/cloudevents+json")
            .body("{nope"),
    ] {
        let response = response.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = response.json().await.expect("a JSON error");
        assert!(body["error"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn a_retryable_failure_is_503_so_the_platform_retries() {
    let server = app().await;
    let client = reqwest::Client::new();

    let response = post_binary(
        &client,
        &server.url("/"),
        &event(RUN_CREATED, "C-down", run_created("C-down")),
    )
    .send()
    .await
    .expect("request");

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
