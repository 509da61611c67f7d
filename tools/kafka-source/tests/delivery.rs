//! The stand-in's delivery against real HTTP servers: what a KafkaSource's
//! dispatcher does with each answer (the Kafka side is `kafka::consume`,
//! tested in shared).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use cloudevents::AttributesReader as _;
use coffeebuddy_kafka_source::{Config, Delivery, Dispatcher, is_retryable};
use coffeebuddy_test_support::{TestServer, events::event, spawn};
use serde_json::json;
use tokio::sync::watch;

/// A CloudEvents endpoint that answers from a script (then 202) and records
/// the headers of every request.
#[derive(Clone, Default)]
struct Recorder {
    answers: Arc<Mutex<VecDeque<(StatusCode, &'static str)>>>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Recorder {
    async fn start(answers: &[(StatusCode, &'static str)]) -> (Self, TestServer) {
        let recorder = Self::default();
        recorder
            .answers
            .lock()
            .unwrap()
            .extend(answers.iter().copied());
        let state = recorder.clone();
        let app = Router::new().route(
            "/",
            post(move |headers: HeaderMap| {
                let state = state.clone();
                async move {
                    state.seen.lock().unwrap().push(headers);
                    state
                        .answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((StatusCode::ACCEPTED, ""))
                }
            }),
        );
        let server = spawn(app).await;
        (recorder, server)
    }

    fn seen(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn dispatcher(retry: u32, dead_letters: Option<String>) -> (Dispatcher, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let delivery = Delivery {
        retry,
        backoff_delay: Duration::from_millis(1),
    };
    let dispatcher = Dispatcher::new(delivery, dead_letters, shutdown).expect("a client");
    (dispatcher, stop)
}

#[tokio::test]
async fn a_retryable_failure_is_retried_until_the_function_takes_the_event() {
    // Arrange
    let (function, server) = Recorder::start(&[
        (StatusCode::SERVICE_UNAVAILABLE, "database down"),
        (StatusCode::TOO_MANY_REQUESTS, ""),
    ])
    .await;
    let (dead, dead_server) = Recorder::start(&[]).await;
    let (dispatcher, _stop) = dispatcher(10, Some(dead_server.url("/")));
    let e = event(
        "com.coffeebuddy.run.created.v1",
        "C1",
        json!({"run_id": "r"}),
    );

    // Act
    let result = dispatcher.deliver(&server.url("/"), &e).await;

    // Assert
    assert!(result.is_ok(), "{result:?}");
    let seen = function.seen();
    assert_eq!(seen.len(), 3, "two failures, then the event taken");
    assert!(
        seen.iter().all(|h| header(h, "ce-id") == e.id()),
        "the same event each time"
    );
    assert_eq!(
        header(&seen[0], "ce-type"),
        "com.coffeebuddy.run.created.v1"
    );
    assert!(dead.seen().is_empty(), "nothing dead-lettered");
}

#[tokio::test]
async fn an_event_still_failing_after_its_retries_goes_to_the_dead_letter_sink_saying_why() {
    // Arrange
    let failures = [(StatusCode::SERVICE_UNAVAILABLE, "database down"); 4];
    let (function, server) = Recorder::start(&failures).await;
    let (dead, dead_server) = Recorder::start(&[]).await;
    let (dispatcher, _stop) = dispatcher(3, Some(dead_server.url("/")));
    let e = event("com.coffeebuddy.order.placed.v1", "C1", json!({}));

    // Act
    let result = dispatcher.deliver(&server.url("/"), &e).await;

    // Assert
    assert!(result.is_ok(), "the dead-letter sink took it: {result:?}");
    assert_eq!(function.seen().len(), 4, "the first attempt and 3 retries");
    let letters = dead.seen();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        header(letter, "ce-id"),
        e.id(),
        "the same event, not a new one"
    );
    assert_eq!(header(letter, "ce-knativeerrorcode"), "503");
    assert_eq!(header(letter, "ce-knativeerrordest"), server.url("/"));
    let data = base64::engine::general_purpose::STANDARD
        .decode(header(letter, "ce-knativeerrordata"))
        .expect("base64");
    assert_eq!(data, b"database down");
}

#[tokio::test]
async fn a_refusal_no_retry_can_fix_goes_to_the_dead_letter_sink_at_once() {
    // Arrange
    let (function, server) = Recorder::start(&[(StatusCode::BAD_REQUEST, "malformed")]).await;
    let (dead, dead_server) = Recorder::start(&[]).await;
    let (dispatcher, _stop) = dispatcher(10, Some(dead_server.url("/")));
    let e = event("com.coffeebuddy.run.closed.v1", "C1", json!({}));

    // Act
    let result = dispatcher.deliver(&server.url("/"), &e).await;

    // Assert
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(function.seen().len(), 1, "a 400 is never retried");
    assert_eq!(header(&dead.seen()[0], "ce-knativeerrorcode"), "400");
}

#[tokio::test]
async fn an_event_the_dead_letter_sink_refuses_too_is_not_acknowledged_so_it_comes_again() {
    // Arrange
    let (_function, server) = Recorder::start(&[(StatusCode::BAD_REQUEST, "")]).await;
    let (_dead, dead_server) = Recorder::start(&[(StatusCode::INTERNAL_SERVER_ERROR, "")]).await;
    let (dispatcher, _stop) = dispatcher(0, Some(dead_server.url("/")));
    let e = event("com.coffeebuddy.run.closed.v1", "C1", json!({}));

    // Act
    let result = dispatcher.deliver(&server.url("/"), &e).await;

    // Assert
    assert!(result.is_err(), "the offset must not be stored: {result:?}");
}

#[tokio::test]
async fn shutdown_cuts_a_retry_wait_short_and_leaves_the_event_unacknowledged() {
    // Arrange: a long backoff, and shutdown already asked for.
    let (_function, server) = Recorder::start(&[(StatusCode::SERVICE_UNAVAILABLE, "")]).await;
    let (stop, shutdown) = watch::channel(false);
    let delivery = Delivery {
        retry: 10,
        backoff_delay: Duration::from_secs(60),
    };
    let dispatcher = Dispatcher::new(delivery, None, shutdown).expect("a client");
    stop.send(true).expect("a receiver");
    let e = event("com.coffeebuddy.run.closed.v1", "C1", json!({}));

    // Act
    let started = std::time::Instant::now();
    let result = dispatcher.deliver(&server.url("/"), &e).await;

    // Assert
    assert!(result.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
}

#[test]
fn knative_retries_5xx_and_the_4xx_that_can_pass_only() {
    for status in [500, 502, 503, 504, 404, 408, 409, 429] {
        assert!(is_retryable(status), "{status}");
    }
    for status in [400, 401, 403, 413, 415, 422] {
        assert!(!is_retryable(status), "{status}");
    }
}

#[test]
fn the_shipped_schedule_waits_about_eight_and_a_half_minutes_before_dead_lettering() {
    let config = Config::from_lookup(&|name| match name {
        "KAFKA_BROKERS" => Some("tansu:9092".to_owned()),
        "KAFKA_SOURCE_SINKS" => Some("g=http://f:8080/".to_owned()),
        _ => None,
    })
    .expect("valid");
    assert_eq!(config.delivery.retry, 10);
    let waits: Vec<Duration> = (0..config.delivery.retry)
        .map(|n| config.delivery.wait_before_retry(n))
        .collect();
    assert_eq!(waits[0], Duration::from_millis(500));
    assert_eq!(waits[9], Duration::from_secs(256));
    assert_eq!(
        waits.iter().sum::<Duration>(),
        Duration::from_millis(511_500)
    );
}

#[test]
fn a_bad_configuration_names_every_problem_at_once() {
    let err = Config::from_lookup(&|name| match name {
        "KAFKA_SECURITY_PROTOCOL" => Some("sasl_ssl".to_owned()),
        "KAFKA_SOURCE_SINKS" => Some("g=http://a/, g=ftp://b, nonsense".to_owned()),
        "KAFKA_SOURCE_RETRY" => Some("many".to_owned()),
        _ => None,
    })
    .expect_err("invalid");
    let message = format!("{err:#}");
    for expected in [
        "KAFKA_BROKERS",
        "KAFKA_SECURITY_PROTOCOL",
        "group g twice",
        "ftp://b",
        "\"nonsense\" is not group=url",
        "KAFKA_SOURCE_RETRY",
    ] {
        assert!(
            message.contains(expected),
            "{expected} missing from: {message}"
        );
    }
}
