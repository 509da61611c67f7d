//! The stand-in end to end through a real broker (tansu, `KAFKA_TEST_BROKERS`
//! from scripts/test): every consumer group gets every event, and a poison
//! event is dead-lettered without holding up the events after it.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use cloudevents::AttributesReader as _;
use coffeebuddy_kafka_source::{Config, Dispatcher, run};
use coffeebuddy_shared::events::kafka::KafkaSink;
use coffeebuddy_shared::events::sink::EventSink as _;
use coffeebuddy_test_support::events::{Tansu, event};
use coffeebuddy_test_support::{TestServer, spawn};
use serde_json::json;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(30);

/// Records the `ce-id` of every event; refuses `poison` with a 400.
async fn function(poison: String) -> (Arc<Mutex<Vec<String>>>, TestServer) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Arc::clone(&seen);
    let app = Router::new().route(
        "/",
        post(move |headers: HeaderMap| {
            let state = Arc::clone(&state);
            let poison = poison.clone();
            async move {
                let id = headers
                    .get("ce-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let refuse = id == poison;
                state.lock().unwrap().push(id);
                if refuse {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::ACCEPTED
                }
            }
        }),
    );
    (seen, spawn(app).await)
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_group_gets_every_event_and_a_poison_event_is_dead_lettered_without_blocking() {
    // Arrange: a topic, two functions, a dead-letter sink.
    let tansu = Tansu::from_env();
    let topic = tansu.create_topic(1).await;
    let poison = event("com.coffeebuddy.run.created.v1", "C1", json!({"n": 1}));
    let after = event("com.coffeebuddy.run.created.v1", "C1", json!({"n": 2}));
    let poison_id = poison.id().to_owned();
    let (first, first_server) = function(poison_id.clone()).await;
    let (second, second_server) = function(String::new()).await;
    let (letters, letters_server) = function(String::new()).await;
    let group = |name: &str| format!("{name}-{}", uuid_like(&topic));
    let sinks = format!(
        "{}={},{}={}",
        group("first"),
        first_server.url("/"),
        group("second"),
        second_server.url("/")
    );
    let config = Config::from_lookup(&|name| match name {
        "KAFKA_BROKERS" => Some(tansu.brokers.clone()),
        "KAFKA_TOPIC_RUN_EVENTS" => Some(topic.clone()),
        "KAFKA_SOURCE_SINKS" => Some(sinks.clone()),
        "KAFKA_SOURCE_DEAD_LETTER_URL" => Some(letters_server.url("/")),
        "KAFKA_SOURCE_BACKOFF_DELAY_MS" => Some("1".to_owned()),
        _ => None,
    })
    .expect("valid configuration");
    let (stop, shutdown) = watch::channel(false);
    let dispatcher = Dispatcher::new(
        config.delivery,
        config.dead_letter_url.clone(),
        shutdown.clone(),
    )
    .expect("a client");
    let running = Arc::new(AtomicUsize::new(0));
    let consumers = tokio::spawn({
        let config = config.clone();
        let running = Arc::clone(&running);
        async move { run(&config, dispatcher, running, shutdown).await }
    });

    // Act: the poison event first, then a good one, on one partition.
    let producer = KafkaSink::new(&tansu.settings(&topic)).expect("a producer");
    producer.deliver(&poison).await.expect("published");
    producer.deliver(&after).await.expect("published");

    // Assert
    let ids = |seen: &Arc<Mutex<Vec<String>>>| seen.lock().unwrap().clone();
    wait_until("both functions see both events", || {
        ids(&first).contains(&after.id().to_owned()) && ids(&second).len() >= 2
    })
    .await;
    assert_eq!(
        ids(&first).iter().filter(|id| **id == poison_id).count(),
        1,
        "a 400 is not retried"
    );
    assert_eq!(
        ids(&second),
        [poison.id(), after.id()],
        "in order, once each"
    );
    wait_until("the poison event is dead-lettered", || {
        !ids(&letters).is_empty()
    })
    .await;
    assert_eq!(ids(&letters), [poison.id()]);

    let _ = stop.send(true);
    tokio::time::timeout(WAIT, consumers)
        .await
        .expect("the consumers stop on shutdown")
        .expect("no panic");
}

/// A suffix unique to this test run (the topic name is already unique).
fn uuid_like(topic: &str) -> String {
    topic.trim_start_matches("test-").to_owned()
}
