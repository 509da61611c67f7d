//! The run flow through a real Kafka-compatible broker (tansu): `local`
//! publishes the outbox to Kafka and consumes it back, as KafkaSource does
//! in production. Kafka being down delays the bot's messages; it never
//! stops people from starting runs or loses events.

use std::sync::Arc;
use std::time::Duration;

use cloudevents::AttributesReader as _;
use coffeebuddy_shared::events::{
    BoxFuture, DeliverError, KafkaSink, Outbox, RUN_CLOSE_REQUESTED, kafka,
};
use coffeebuddy_test_support::events::{Tansu, TansuBroker, post_binary};
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
    // The kafka check runs in the background: ask until it has seen the
    // broker gone (the first answers say it has not checked yet).
    let (ready_status, ready) = app
        .readiness_until("the kafka check seeing the broker gone", |ready| {
            ready["checks"]["kafka"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("unreachable"))
        })
        .await;
    assert_eq!(
        ready_status, 200,
        "Kafka down degrades, it does not stop the service"
    );
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

/// How many times Knative's KafkaSource tries one event with `retry: 10`
/// (`knative/kafka-sources.yaml`) before sending it to its dead-letter sink.
const KNATIVE_DELIVERIES: usize = 11;

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_close_event_knative_gave_up_on_is_parked_and_the_tick_still_finishes_the_run(
    pool: PgPool,
) {
    // Arrange: production's shape. The outbox publishes to Kafka (tansu);
    // the test plays the KafkaSource, delivering each event to `POST /` and
    // giving up after 11 failed deliveries, to the dead-letter sink. Closing
    // is broken meanwhile: the database refuses to end a run (a trigger
    // standing in for a bad migration or a full disk).
    let tansu = Tansu::from_env();
    let topic = tansu.create_topic(1).await;
    let settings = tansu.settings(&topic);
    let app = CoffeeApp::start_customized(pool, SlackFake::start().await, &[], |ctx| {
        let sink = KafkaSink::new(&settings).expect("sink");
        let outbox = Outbox::new(ctx.db.clone(), Arc::new(sink));
        coffeebuddy_shared::runtime::Context { outbox, ..ctx }
    })
    .await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_to_end_runs() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$;
         CREATE TRIGGER refuse_to_end_runs BEFORE UPDATE ON runs FOR EACH ROW \
           WHEN (OLD.status = 'closing' AND NEW.status <> 'closing') \
           EXECUTE FUNCTION refuse_to_end_runs();",
    )
    .execute(&app.ctx.db)
    .await
    .unwrap();
    let (status, _) = app.coffee(CHANNEL, "U0ALICE", "").await;
    assert_eq!(status, 200);
    let run_id = app.posted_run(CHANNEL).await;
    app.submit_order("U0BOB", run_id, "tea", &[]).await;

    // Act: Alice closes; the KafkaSource delivers run.close_requested 11
    // times, every one refused, then parks it and never delivers it again.
    app.click_close(CHANNEL, "U0ALICE", run_id).await;
    let answers: Arc<std::sync::Mutex<Vec<u16>>> = Arc::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = Arc::new(std::sync::Mutex::new(Some(stop)));
    let source = {
        let (answers, stop) = (Arc::clone(&answers), Arc::clone(&stop));
        let (http, intake) = (reqwest::Client::new(), app.server.url("/"));
        let dead_letters = app.server.url("/dead-letters");
        let deliver = move |mut event: cloudevents::Event| {
            let (answers, stop, http) = (Arc::clone(&answers), Arc::clone(&stop), http.clone());
            let (intake, dead_letters) = (intake.clone(), dead_letters.clone());
            let deliver: BoxFuture<'static, Result<(), DeliverError>> = Box::pin(async move {
                if event.ty() != RUN_CLOSE_REQUESTED {
                    let response = post_binary(&http, &intake, &event).send().await;
                    return match response {
                        Ok(r) if r.status().is_success() => Ok(()),
                        _ => Err(DeliverError::Unavailable("the intake refused".into())),
                    };
                }
                let mut last = 0;
                for _ in 0..KNATIVE_DELIVERIES {
                    let response = post_binary(&http, &intake, &event).send().await.unwrap();
                    last = response.status().as_u16();
                    answers.lock().unwrap().push(last);
                    if response.status().is_success() {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                event.set_extension("knativeerrorcode", last.to_string());
                event.set_extension("knativeerrordest", intake.as_str());
                let parked = post_binary(&http, &dead_letters, &event)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(parked.status(), 202, "the dead-letter sink takes it");
                if let Some(stop) = stop.lock().unwrap().take() {
                    let _ = stop.send(());
                }
                Ok(())
            });
            deliver
        };
        let settings = settings.clone();
        tokio::spawn(async move {
            kafka::consume(&settings, "knative-kafka-source", deliver, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    tokio::time::timeout(Duration::from_secs(60), source)
        .await
        .expect("the KafkaSource gave up within a minute")
        .unwrap()
        .expect("the consumer ran");

    // Assert: every delivery was refused as retryable (so Knative retried),
    // the event is parked for operators, and the run waits in `closing`.
    let answers = answers.lock().unwrap().clone();
    assert_eq!(answers.len(), KNATIVE_DELIVERIES, "{answers:?}");
    assert!(answers.iter().all(|s| *s >= 500), "{answers:?}");
    let parked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE source = 'sink' AND kind = $1")
            .bind(RUN_CLOSE_REQUESTED)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(parked, 1);
    assert!(
        app.slack.dm_messages("U0BOB").is_empty(),
        "nobody was told yet"
    );

    // Act: the database is fixed; the close was asked for over a minute
    // ago (Knative's retries take about 8.5 min); a ping tick comes.
    sqlx::raw_sql("DROP TRIGGER refuse_to_end_runs ON runs")
        .execute(&app.ctx.db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE runs SET close_requested_at = close_requested_at - interval '2 minutes' \
         WHERE run_id = $1",
    )
    .bind(run_id)
    .execute(&app.ctx.db)
    .await
    .unwrap();
    app.tick().await;

    // Assert: the run is closed and announced, once.
    app.settle_effects().await;
    let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE run_id = $1")
        .bind(run_id)
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(status, "closed");
    assert_eq!(app.slack.dm_messages("U0BOB").len(), 1, "Bob hears once");
    let summaries = app
        .slack
        .messages(CHANNEL)
        .into_iter()
        .filter(|m| all_text(m).contains("getting the coffee"))
        .count();
    assert_eq!(summaries, 1, "one summary");
}
