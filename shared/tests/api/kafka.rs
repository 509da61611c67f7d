//! The outbox publishing through `KafkaSink` to a real broker, the consumer
//! loop `local` uses, and what happens while Kafka is unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloudevents::{AttributesReader as _, Event};
use coffeebuddy_shared::events::{
    DeliverError, EventSink as _, KafkaSink, NewEvent, Outbox, OutboxRow, PublishError,
    RUN_CREATED, RunCreated, consume, enqueue, event_from_kafka, kafka_probe, to_cloudevent,
};
use coffeebuddy_shared::probe::NOT_CHECKED_YET;
use coffeebuddy_shared::runtime::Readiness;
use coffeebuddy_shared::runtime::health::Status;
use coffeebuddy_shared::trace;
use coffeebuddy_test_support::events::{Tansu, TansuBroker, event, read_messages};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Short enough to see an outage quickly, long enough for a loaded CI box.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

fn run_created(channel: &str) -> NewEvent {
    let run_id = Uuid::new_v4();
    NewEvent::new(
        channel,
        Some(run_id.to_string()),
        &RunCreated {
            run_id,
            channel_id: channel.to_owned(),
        },
    )
}

async fn enqueue_committed(pool: &PgPool, event: NewEvent) -> Uuid {
    let mut tx = pool.begin().await.expect("begin");
    let id = enqueue(&mut tx, "/coffeebuddy/test", event)
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    id
}

async fn outbox_row(pool: &PgPool, event_id: Uuid) -> OutboxRow {
    sqlx::query_as(
        "SELECT event_id, event_type, source, subject, partition_key, payload, created_at, attempts, \
                traceparent, tracestate, correlation_id \
         FROM outbox WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_one(pool)
    .await
    .expect("outbox row")
}

/// Asks for readiness until the `kafka` check satisfies `done` (the check
/// runs in the background, so it follows the broker within a probe
/// interval or two); that check's error.
async fn kafka_check_until(
    readiness: &Readiness,
    what: &str,
    done: impl Fn(Status, Option<&str>) -> bool,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let report = readiness.check().await;
        let kafka = &report.checks["kafka"];
        if done(kafka.status, kafka.error.as_deref()) {
            return kafka.error.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: last kafka check {:?} {:?}",
            kafka.status,
            kafka.error
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn unpublished(pool: &PgPool) -> Vec<(Uuid, i32, Option<String>)> {
    sqlx::query_as(
        "SELECT event_id, attempts, last_error FROM outbox WHERE published_at IS NULL ORDER BY created_at",
    )
    .fetch_all(pool)
    .await
    .expect("outbox")
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn the_outbox_publishes_binary_mode_cloudevents_keyed_by_channel(pool: PgPool) {
    // Arrange
    let tansu = Tansu::from_env();
    let settings = tansu.settings(&tansu.create_topic(1).await);
    let sink = KafkaSink::with_delivery_timeout(&settings, DELIVERY_TIMEOUT).expect("sink");
    let outbox = Outbox::new(pool.clone(), Arc::new(sink));
    let event_id = enqueue_committed(&pool, run_created("C0FFEE")).await;

    // Act
    let published = outbox.publish_pending().await.expect("published");

    // Assert
    assert_eq!(published, 1);
    let message = read_messages(&settings, 1).await.remove(0);
    assert_eq!(message.key(), Some("C0FFEE".as_bytes()));
    let headers = message.headers().expect("headers");
    let keys: Vec<&str> = headers.iter().map(|h| h.key).collect();
    for key in [
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_specversion",
        "ce_subject",
        "ce_time",
        "ce_partitionkey",
        "ce_traceparent",
        "ce_correlationid",
        "content-type",
    ] {
        assert!(keys.contains(&key), "missing {key} in {keys:?}");
    }
    let mut decoded = event_from_kafka(&message).expect("a CloudEvent");
    // Written outside any request, the event starts a trace of its own.
    let traceparent = decoded
        .remove_extension(trace::TRACEPARENT)
        .expect("a traceparent")
        .to_string();
    assert!(
        trace::TraceParent::parse(&traceparent).is_ok(),
        "{traceparent}"
    );
    decoded.remove_extension(trace::CORRELATION_ID_EXTENSION);
    assert_eq!(decoded, to_cloudevent(&outbox_row(&pool, event_id).await));
    assert!(unpublished(&pool).await.is_empty());
}

#[tokio::test]
async fn consume_delivers_each_event_retrying_failures_and_commits_after_success() {
    // Arrange: one event on a fresh topic; the callback fails once.
    let tansu = Tansu::from_env();
    let settings = tansu.settings(&tansu.create_topic(1).await);
    let sent = event(RUN_CREATED, "C1", serde_json::json!({ "n": 1 }));
    KafkaSink::with_delivery_timeout(&settings, DELIVERY_TIMEOUT)
        .expect("sink")
        .deliver(&sent)
        .await
        .expect("produced");
    let group = format!("group-{}", Uuid::new_v4());
    let calls = Arc::new(AtomicUsize::new(0));
    let (delivered_tx, mut delivered_rx) = mpsc::unbounded_channel::<Event>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();

    // Act
    let consumer = {
        let (settings, group, calls) = (settings.clone(), group.clone(), Arc::clone(&calls));
        tokio::spawn(async move {
            consume(
                &settings,
                &group,
                move |event| {
                    let calls = Arc::clone(&calls);
                    let delivered_tx = delivered_tx.clone();
                    Box::pin(async move {
                        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                            return Err(DeliverError::Unavailable("first try fails".to_owned()));
                        }
                        let _ = delivered_tx.send(event);
                        Ok(())
                    })
                },
                async move {
                    let _ = stop_rx.await;
                },
            )
            .await
        })
    };
    let received = tokio::time::timeout(Duration::from_secs(30), delivered_rx.recv())
        .await
        .expect("delivered within 30 s")
        .expect("an event");
    let _ = stop_tx.send(());
    consumer
        .await
        .expect("no panic")
        .expect("consumer configured");

    // Assert
    assert_eq!(received, sent);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "retried once, then done");
    let committed: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(&settings.topic_run_events, 0);
    let offsets = tokio::task::spawn_blocking(move || {
        committed.committed_offsets(partitions, Duration::from_secs(10))
    })
    .await
    .expect("no panic")
    .expect("committed offsets");
    let offset = offsets
        .find_partition(&settings.topic_run_events, 0)
        .expect("partition 0")
        .offset();
    assert_eq!(offset, Offset::Offset(1), "the consumed event is committed");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn while_kafka_is_unreachable_events_stay_in_the_outbox_and_go_out_after_it_returns(
    pool: PgPool,
) {
    // Arrange: a private broker behind a proxy, and one event through it.
    let broker = TansuBroker::start().await;
    let settings = broker.settings(&broker.create_topic(1).await);
    let sink = KafkaSink::with_delivery_timeout(&settings, DELIVERY_TIMEOUT).expect("sink");
    let outbox = Outbox::new(pool.clone(), Arc::new(sink));
    let readiness = Readiness::new("test").with_probe(kafka_probe(&settings).expect("probe"));
    let before = enqueue_committed(&pool, run_created("C1")).await;
    assert_eq!(outbox.publish_pending().await.expect("published"), 1);

    // Act: cut Kafka off and publish two more.
    broker.proxy.cut();
    let during = [
        enqueue_committed(&pool, run_created("C1")).await,
        enqueue_committed(&pool, run_created("C1")).await,
    ];
    let failed = outbox.publish_pending().await;

    // Assert: nothing lost, the attempt recorded, readiness degraded.
    assert!(
        matches!(failed, Err(PublishError::Deliver { event_id, .. }) if event_id == during[0]),
        "{failed:?}"
    );
    let waiting = unpublished(&pool).await;
    assert_eq!(
        waiting.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
        during
    );
    assert_eq!(waiting[0].1, 1);
    assert!(waiting[0].2.is_some());
    let down = kafka_check_until(&readiness, "kafka down is reported", |status, error| {
        status == Status::Degraded && error != Some(NOT_CHECKED_YET)
    })
    .await;
    assert!(
        down.as_deref()
            .is_some_and(|e| e.contains("kafka unreachable")),
        "{down:?}"
    );

    // Act: bring Kafka back.
    broker.proxy.restore();
    let mut published = 0;
    let mut last_error = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while published < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not republished within 30 s; last error: {last_error:?}"
        );
        match outbox.publish_pending().await {
            Ok(n) => published += n,
            Err(e) => {
                last_error = Some(format!("{:#}", anyhow::Error::new(e)));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    // Assert: all three on the topic, in order.
    assert!(unpublished(&pool).await.is_empty());
    kafka_check_until(&readiness, "kafka is back", |status, _| {
        status == Status::Healthy
    })
    .await;
    let ids: Vec<String> = read_messages(&settings, 3)
        .await
        .iter()
        .map(|m| event_from_kafka(m).expect("event").id().to_owned())
        .collect();
    assert_eq!(ids, [before, during[0], during[1]].map(|id| id.to_string()));
}
