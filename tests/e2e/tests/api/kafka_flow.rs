//! The run flow through a real Kafka-compatible broker (tansu): `local`
//! publishes the outbox to Kafka and consumes it back, as KafkaSource does
//! in production. Kafka being down delays the bot's messages; it never
//! stops people from starting runs or loses events.

use std::sync::Arc;
use std::time::Duration;

use coffeebuddy_shared::events::{KafkaSink, Outbox};
use coffeebuddy_test_support::events::{Tansu, TansuBroker};
use coffeebuddy_test_support::slack_fake::SlackFake;
use sqlx::PgPool;

use crate::helpers::{CoffeeApp, WAIT, all_text};

const CHANNEL: &str = "C0KAFKA";

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_whole_run_flows_through_kafka(pool: PgPool) {
    // Arrange
    let tansu = Tansu::from_env();
    let topic = tansu.create_topic(3).await;
    let brokers = tansu.settings(&topic).brokers;
    let app = CoffeeApp::start_with(
        pool,
        SlackFake::start().await,
        &[
            ("KAFKA_BROKERS", &brokers),
            ("KAFKA_TOPIC_RUN_EVENTS", &topic),
        ],
    )
    .await;

    // Act
    let (status, _) = app.coffee(CHANNEL, "U0ALICE", "Blue Bottle").await;
    let run_id = app.posted_run(CHANNEL).await; // run.created went through Kafka
    app.submit_order("U0ALICE", run_id, "flat white", &[]).await;
    app.submit_order("U0BOB", run_id, "tea", &[]).await;
    app.click_close(CHANNEL, "U0ALICE", run_id).await;

    // Assert
    assert_eq!(status, 200);
    let posts = app.slack.wait_for_calls("chat.postMessage", 4, WAIT).await; // run message, summary, 2 DMs
    let summary = posts
        .iter()
        .find(|p| p.body["channel"] == CHANNEL && all_text(&p.body).contains("getting the coffee"))
        .expect("a summary in the channel");
    assert!(all_text(&summary.body).contains("flat white"));
    // run.closed is published after the DMs went out: give it a moment.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let unpublished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&app.ctx.db)
                .await
                .unwrap();
        if unpublished == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{unpublished} events never reached Kafka"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// The private broker is killed when the test body ends, before the runtime
// drops `local`'s Kafka consumer and producer: their librdkafka destroy runs
// on threads of their own (`Detached` in shared's kafka module), because
// after an outage it can block for good (librdkafka#4674). Dropped inline,
// it once hung this test, and CI, for an hour.
#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn with_kafka_down_runs_still_start_and_are_announced_and_their_events_follow(pool: PgPool) {
    // Arrange: Kafka reachable only through a proxy we can cut; a short
    // delivery timeout and a 1 s ping tick keep the test quick.
    let broker = TansuBroker::start().await;
    let topic = broker.create_topic(1).await;
    let settings = broker.settings(&topic);
    let app = CoffeeApp::start_customized(
        pool,
        SlackFake::start().await,
        &[
            ("KAFKA_BROKERS", &broker.brokers),
            ("KAFKA_TOPIC_RUN_EVENTS", &topic),
            ("TICK_SECONDS", "1"),
        ],
        |ctx| {
            let sink =
                KafkaSink::with_delivery_timeout(&settings, Duration::from_secs(1)).expect("sink");
            let outbox = Outbox::new(ctx.db.clone(), Arc::new(sink));
            coffeebuddy_shared::runtime::Context { outbox, ..ctx }
        },
    )
    .await;

    // Act: Kafka goes away; Alice starts a run.
    broker.proxy.cut();
    let (status, answer) = app.coffee(CHANNEL, "U0ALICE", "").await;

    // Assert: the run is started and acknowledged; its event waits.
    assert_eq!(status, 200);
    assert!(
        answer["text"].as_str().unwrap().contains("started"),
        "{answer}"
    );
    let runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM runs WHERE channel_id = $1 AND status = 'open'")
            .bind(CHANNEL)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(runs, 1);
    // The run message is an effect of the run, not of its event: it goes
    // out while Kafka is down.
    app.slack
        .wait_for_calls("chat.postMessage", 1, Duration::from_secs(5))
        .await;
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(waiting, 1);
    let ready = reqwest::get(app.server.url("/health/ready")).await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "Kafka down degrades, it does not stop the service"
    );
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["database"]["status"], "healthy", "{ready}");

    // Act: Kafka comes back.
    broker.proxy.restore();

    // Assert: the event follows, and its delivery posts nothing twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&app.ctx.db)
                .await
                .unwrap();
        if waiting == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event never reached Kafka"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.slack.calls_to("chat.postMessage").len(), 1);
}
