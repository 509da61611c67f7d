//! Following one request across functions (issue 11, item 5): the trace
//! started by a Slack request (Kong's `traceparent` and correlation id)
//! is on every event and Slack effect the request causes, on the events as
//! delivered (in process, and through Kafka), and on the log lines of every
//! function that handles them downstream, down to the last DM.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::Utc;
use cloudevents::{AttributesReader as _, Event};
use coffeebuddy_shared::clock::ManualClock;
use coffeebuddy_shared::config::{LogFormat, LogSettings};
use coffeebuddy_shared::events::{self, next_hop_of};
use coffeebuddy_shared::telemetry;
use coffeebuddy_test_support::LogCapture;
use coffeebuddy_test_support::events::{TansuBroker, read_messages};
use coffeebuddy_test_support::slack_fake::SlackFake;
use rdkafka::message::{Headers as _, Message as _};
use sqlx::PgPool;

use crate::helpers::{CoffeeApp, WAIT};

/// What Kong sends with `/coffee`.
const COFFEE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const COFFEE_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const COFFEE_CORRELATION: &str = "kong-coffee-1";
/// What Kong sends with the **Close run** click.
const CLOSE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLOSE_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const CLOSE_CORRELATION: &str = "kong-close-2";

/// A log subscriber for this test's thread (`#[sqlx::test]` runs the
/// test, the app and its workers on one thread), writing JSON lines to
/// the returned buffer.
fn capture_logs() -> (LogCapture, tracing::subscriber::DefaultGuard) {
    let logs = LogCapture::default();
    let settings = LogSettings {
        level: "info".to_owned(),
        format: LogFormat::Json,
    };
    let guard = tracing::subscriber::set_default(telemetry::subscriber(&settings, logs.clone()));
    (logs, guard)
}

/// The trace id of a stored or sent `traceparent`.
fn trace_id_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

/// `(kind or type, trace id, correlation id)` of every row of `table`.
async fn traced_rows(app: &CoffeeApp, table: &str, name: &str) -> Vec<(String, String, String)> {
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(
        format!("SELECT {name}, traceparent, correlation_id FROM {table} ORDER BY created_at"),
    ))
    .fetch_all(&app.ctx.db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(kind, traceparent, correlation)| {
            let trace = trace_id_of(&traceparent.unwrap_or_default()).to_owned();
            (kind, trace, correlation.unwrap_or_default())
        })
        .collect()
}

/// Every kind (or type) of `rows` carrying `trace` and `correlation`.
fn carried_by(rows: &[(String, String, String)], trace: &str, correlation: &str) -> Vec<String> {
    rows.iter()
        .filter(|(_, t, c)| t == trace && c == correlation)
        .map(|(kind, _, _)| kind.clone())
        .collect()
}

/// Waits until the outbox has published everything.
async fn outbox_drained(app: &CoffeeApp) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&app.ctx.db)
                .await
                .unwrap();
        if waiting == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{waiting} events never published"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Plays a whole run in `channel` with Kong's trace headers on `/coffee`
/// and on **Close run**, and checks what every user-visible step stored
/// and logged. Orders come without headers (their own traces).
async fn follow_a_run(app: &CoffeeApp, logs: &LogCapture, channel: &str) {
    // Act
    let (status, _) = app
        .coffee_with_headers(
            channel,
            "U0ALICE",
            "Blue Bottle",
            &[
                ("traceparent", COFFEE_TRACEPARENT),
                ("X-Correlation-ID", COFFEE_CORRELATION),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let run_id = app.posted_run(channel).await;
    app.submit_order("U0ALICE", run_id, "flat white", &[]).await;
    app.submit_order("U0BOB", run_id, "tea", &[]).await;
    let closed = app
        .click_close_with_headers(
            channel,
            "U0ALICE",
            run_id,
            &[
                ("traceparent", CLOSE_TRACEPARENT),
                ("X-Correlation-ID", CLOSE_CORRELATION),
            ],
        )
        .await;
    assert_eq!(closed.status(), 200);
    // Run message, summary, the runner's DM and the other participant's.
    app.slack.wait_for_calls("chat.postMessage", 4, WAIT).await;
    app.settle_effects().await;
    outbox_drained(app).await;

    // Assert: the events each request caused carry its trace.
    let outbox = traced_rows(app, "outbox", "event_type").await;
    assert_eq!(
        carried_by(&outbox, COFFEE_TRACE, COFFEE_CORRELATION),
        [events::RUN_CREATED],
        "{outbox:?}"
    );
    assert_eq!(
        carried_by(&outbox, CLOSE_TRACE, CLOSE_CORRELATION),
        [events::RUN_CLOSE_REQUESTED, events::RUN_CLOSED],
        "close-run's run.closed continues the click's trace: {outbox:?}"
    );

    // Assert: so do the Slack effects, down to the last DM.
    let effects = traced_rows(app, "effects", "kind").await;
    assert_eq!(
        carried_by(&effects, COFFEE_TRACE, COFFEE_CORRELATION),
        ["post_run_message"],
        "{effects:?}"
    );
    let mut close_effects = carried_by(&effects, CLOSE_TRACE, CLOSE_CORRELATION);
    close_effects.sort();
    assert!(
        ["dm_participant", "dm_runner", "post_summary"]
            .iter()
            .all(|k| close_effects.iter().any(|e| e == k)),
        "{effects:?}"
    );

    // Assert: every function that handled them logged under the trace
    // (through Kafka, the last consumer may still be reading run.closed).
    let expected = [
        (
            COFFEE_TRACE,
            COFFEE_CORRELATION,
            "path",
            "/slack/commands",
            "request completed",
        ),
        (
            COFFEE_TRACE,
            COFFEE_CORRELATION,
            "consumer",
            "slash-command",
            "event handled",
        ),
        (
            COFFEE_TRACE,
            COFFEE_CORRELATION,
            "kind",
            "post_run_message",
            "effect done",
        ),
        (
            CLOSE_TRACE,
            CLOSE_CORRELATION,
            "path",
            "/slack/interactions",
            "request completed",
        ),
        (
            CLOSE_TRACE,
            CLOSE_CORRELATION,
            "consumer",
            "close-run",
            "event handled",
        ),
        (
            CLOSE_TRACE,
            CLOSE_CORRELATION,
            "consumer",
            "reminder",
            "event handled",
        ),
        (
            CLOSE_TRACE,
            CLOSE_CORRELATION,
            "kind",
            "post_summary",
            "effect done",
        ),
        (
            CLOSE_TRACE,
            CLOSE_CORRELATION,
            "kind",
            "dm_runner",
            "effect done",
        ),
        (
            CLOSE_TRACE,
            CLOSE_CORRELATION,
            "kind",
            "dm_participant",
            "effect done",
        ),
    ];
    let deadline = tokio::time::Instant::now() + WAIT;
    let lines = loop {
        let lines = logs.json_lines();
        let missing: Vec<_> = expected
            .iter()
            .filter(|(trace, correlation, field, value, message)| {
                !lines.iter().any(|l| {
                    l["trace_id"] == *trace
                        && l["correlation_id"] == *correlation
                        && l["message"] == *message
                        && l["span"][*field] == *value
                })
            })
            .collect();
        if missing.is_empty() {
            break lines;
        }
        if tokio::time::Instant::now() >= deadline {
            let logged: Vec<String> = lines
                .iter()
                .filter(|l| l["trace_id"].is_string())
                .map(|l| format!("{} {} {}", l["trace_id"], l["message"], l["span"]))
                .collect();
            panic!("no line under its trace for {missing:#?}; traced lines: {logged:#?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    // Each hop has a span id of its own; none reuses Kong's.
    let spans: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter(|l| l["trace_id"] == CLOSE_TRACE)
        .filter_map(|l| l["span_id"].as_str())
        .collect();
    assert!(spans.len() >= 4, "one span id per hop: {spans:?}");
    assert!(
        !spans.contains("b7ad6b7169203331"),
        "Kong's span is the parent"
    );
}

/// A `POST /` target recording every event `local` delivers in process.
fn recording_target(seen: Arc<Mutex<Vec<Event>>>) -> Router {
    Router::new().route(
        "/",
        post(move |event: Event| async move {
            seen.lock().unwrap().push(event);
            StatusCode::ACCEPTED
        }),
    )
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn in_local_one_request_is_followed_by_its_trace_from_coffee_to_the_last_dm(pool: PgPool) {
    // Arrange
    let (logs, _guard) = capture_logs();
    let app = CoffeeApp::start(pool).await;
    let delivered = Arc::new(Mutex::new(Vec::new()));
    app.ctx
        .in_process
        .as_ref()
        .expect("in-process delivery without Kafka")
        .add_target(recording_target(Arc::clone(&delivered)));

    // Act and Assert (rows and logs)
    follow_a_run(&app, &logs, "C0TRACE").await;

    // Assert: the events as delivered carry the trace as a new hop.
    let delivered = delivered.lock().unwrap().clone();
    let traceparent = |ty: &str| -> String {
        let event = delivered
            .iter()
            .find(|e| e.ty() == ty)
            .unwrap_or_else(|| panic!("no {ty} delivered"));
        event
            .extension("traceparent")
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    let created = traceparent(events::RUN_CREATED);
    assert_eq!(trace_id_of(&created), COFFEE_TRACE, "{created}");
    assert_ne!(created, COFFEE_TRACEPARENT, "a new span id per hop");
    assert_eq!(trace_id_of(&traceparent(events::RUN_CLOSED)), CLOSE_TRACE);
    let close = delivered
        .iter()
        .find(|e| e.ty() == events::RUN_CLOSE_REQUESTED)
        .expect("close requested");
    assert_eq!(next_hop_of(close).correlation_id, CLOSE_CORRELATION);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn through_kafka_one_request_is_followed_by_its_trace_from_coffee_to_the_last_dm(
    pool: PgPool,
) {
    // Arrange: a broker of its own (`local`'s consumer group is the same
    // in every test, and two tests joining it on one broker rebalance each
    // other for seconds), one partition to read every message back.
    let (logs, _guard) = capture_logs();
    let broker = TansuBroker::start().await;
    let topic = broker.create_topic(1).await;
    let settings = broker.settings(&topic);
    let app = CoffeeApp::start_with(
        pool,
        SlackFake::start().await,
        &[
            ("KAFKA_BROKERS", &settings.brokers),
            ("KAFKA_TOPIC_RUN_EVENTS", &topic),
        ],
    )
    .await;

    // Act and Assert (rows and logs: the handlers were reached through Kafka)
    follow_a_run(&app, &logs, "C0TRACEK").await;

    // Assert: the Kafka messages carry the trace in binary-mode headers.
    let published: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    let messages = read_messages(&settings, usize::try_from(published).unwrap()).await;
    let header = |message: &rdkafka::message::OwnedMessage, name: &str| -> String {
        message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let of_type = |ty: &str| {
        messages
            .iter()
            .find(|m| header(m, "ce_type") == ty)
            .unwrap_or_else(|| panic!("no {ty} on the topic"))
    };
    let created = of_type(events::RUN_CREATED);
    assert_eq!(
        trace_id_of(&header(created, "ce_traceparent")),
        COFFEE_TRACE
    );
    assert_eq!(header(created, "ce_correlationid"), COFFEE_CORRELATION);
    let closed = of_type(events::RUN_CLOSED);
    assert_eq!(trace_id_of(&header(closed, "ce_traceparent")), CLOSE_TRACE);
    assert_eq!(header(closed, "ce_correlationid"), CLOSE_CORRELATION);
    assert_eq!(created.key(), Some("C0TRACEK".as_bytes()));
}

/// Waits until `query` (one bind: the run id) returns a row.
async fn row_appears<T>(app: &CoffeeApp, query: &'static str, run_id: uuid::Uuid) -> T
where
    T: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let row: Option<T> = sqlx::query_as(query)
            .bind(run_id)
            .fetch_optional(&app.ctx.db)
            .await
            .unwrap();
        if let Some(row) = row {
            return row;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {query}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn the_pickup_reminder_a_later_tick_sends_stays_in_the_trace_of_the_close(pool: PgPool) {
    // Arrange: a run with a pickup in 10 minutes (reminder 5 minutes
    // before), closed by a click Kong traced.
    let (logs, _guard) = capture_logs();
    let clock = ManualClock::new(Utc::now());
    let app = CoffeeApp::start_with_clock(pool, SlackFake::start().await, &[], clock.clone()).await;
    let channel = "C0TRACER";
    let (status, _) = app.coffee(channel, "U0ALICE", "in 10m").await;
    assert_eq!(status, 200);
    let run_id = app.posted_run(channel).await;
    app.submit_order("U0ALICE", run_id, "flat white", &[]).await;
    let closed = app
        .click_close_with_headers(
            channel,
            "U0ALICE",
            run_id,
            &[
                ("traceparent", CLOSE_TRACEPARENT),
                ("X-Correlation-ID", CLOSE_CORRELATION),
            ],
        )
        .await;
    assert_eq!(closed.status(), 200);
    let (due_at,): (chrono::DateTime<Utc>,) = row_appears(
        &app,
        "SELECT due_at FROM reminders WHERE run_id = $1",
        run_id,
    )
    .await;

    // Act: the tick at the due time, in a trace of its own, sends it.
    clock.set(due_at);
    app.tick().await;
    let (traceparent, correlation): (Option<String>, Option<String>) = row_appears(
        &app,
        "SELECT traceparent, correlation_id FROM effects \
         WHERE run_id = $1 AND kind = 'dm_reminder'",
        run_id,
    )
    .await;
    app.settle_effects().await;

    // Assert: the DM, the event and the log lines are the close's.
    assert_eq!(trace_id_of(&traceparent.unwrap_or_default()), CLOSE_TRACE);
    assert_eq!(correlation.as_deref(), Some(CLOSE_CORRELATION));
    let (sent,): (Option<String>,) = row_appears(
        &app,
        "SELECT traceparent FROM outbox WHERE subject = $1::text AND event_type = 'com.coffeebuddy.reminder.sent.v1'",
        run_id,
    )
    .await;
    assert_eq!(trace_id_of(&sent.unwrap_or_default()), CLOSE_TRACE);
    let lines = logs.json_lines();
    for message in ["reminder sent", "effect done"] {
        assert!(
            lines.iter().any(|l| l["trace_id"] == CLOSE_TRACE
                && l["message"] == message
                && (message != "effect done" || l["span"]["kind"] == "dm_reminder")),
            "no {message:?} under the close's trace"
        );
    }
}
