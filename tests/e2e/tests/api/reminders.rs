//! The runner's pickup reminder (DESIGN §1.5), as the runner meets it: a DM
//! at `pickup − offset`, once, only where the channel wants reminders.
//!
//! One test runs in real time (`local`'s ticker every second, a pickup a
//! minute away) to show the reminder lands within ±2 s of its due time.
//! The others pin time with a [`ManualClock`] and deliver ping ticks to the
//! reminder function's `POST /` themselves, so they run in well under a
//! second of waiting each.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use coffeebuddy_shared::clock::ManualClock;
use coffeebuddy_shared::events::{self, RunClosed};
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_test_support::events::{event, post_binary};
use coffeebuddy_test_support::slack_fake::{FakeResponse, SlackFake};
use coffeebuddy_test_support::{TestServer, spawn};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{CoffeeApp, WAIT};

const CHANNEL: &str = "C0REMIND";
const ALICE: &str = "U0ALICE";

/// The reminder DMs the runner received, oldest first.
/// Waits until `count` reminder DMs to `user` arrived (the effect worker
/// sends them right after the tick hands them over), then a little longer
/// to catch any extra one, and returns them all.
async fn wait_for_reminders(slack: &SlackFake, user: &str, count: usize) -> Vec<(Instant, Value)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while reminders_to(slack, user).len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited for {count} reminder(s) to {user}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    reminders_to(slack, user)
}

fn reminders_to(slack: &SlackFake, user: &str) -> Vec<(Instant, Value)> {
    slack
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| {
            c.body["channel"] == user
                && c.body["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Reminder"))
        })
        .map(|c| (c.at, c.body))
        .collect()
}

async fn wait_until_async<F, Fut>(what: &str, timeout: Duration, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `/coffee <pickup>` by Alice, her order, her close; returns the run once
/// its `run.closed` event was delivered to every function, the reminder
/// function included. Alice, the only participant, is the runner.
async fn closed_run(app: &CoffeeApp, pickup: &str) -> Uuid {
    let (status, _) = app.coffee(CHANNEL, ALICE, pickup).await;
    assert_eq!(status, 200);
    let run_id = app.posted_run(CHANNEL).await;
    let ordered = app.submit_order(ALICE, run_id, "flat white", &[]).await;
    assert_eq!(ordered.status(), 200);
    assert_eq!(app.click_close(CHANNEL, ALICE, run_id).await.status(), 200);
    let db = app.ctx.db.clone();
    wait_until_async("run.closed to reach every function", WAIT, || {
        let db = db.clone();
        async move {
            // The in-process sink marks an event published only once every
            // function answered 2xx.
            let published: Option<bool> = sqlx::query_scalar(
                "SELECT published_at IS NOT NULL FROM outbox WHERE event_type = $1 AND subject = $2",
            )
            .bind(events::RUN_CLOSED)
            .bind(run_id.to_string())
            .fetch_optional(&db)
            .await
            .unwrap();
            published == Some(true)
        }
    })
    .await;
    app.settle_effects().await;
    run_id
}

/// The reminder row of a run: (status, due_at, sent_at, attempts, last_error).
type ReminderRow = (
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    i32,
    Option<String>,
);

async fn reminder_row(pool: &PgPool, run_id: Uuid) -> Option<ReminderRow> {
    sqlx::query_as(
        "SELECT status, due_at, sent_at, attempts, last_error FROM reminders WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

async fn pickup_of(pool: &PgPool, run_id: Uuid) -> DateTime<Utc> {
    let pickup: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT pickup_at FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(pool)
            .await
            .unwrap();
    pickup.expect("the run has a pickup time")
}

/// The reminder function alone on its own socket, as one replica of it.
async fn reminder_replica(ctx: &Context) -> TestServer {
    spawn(coffeebuddy_reminder::router(ctx)).await
}

/// A PingSource tick delivered to a reminder function; it answers once the
/// tick's work is done.
async fn tick(replica: &TestServer) {
    let response = post_binary(
        &reqwest::Client::new(),
        &replica.url("/"),
        &coffeebuddy_local::ping_event(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 202);
}

/// The sum of every series of counter `name` in a Prometheus text page.
async fn counter(app: &CoffeeApp, name: &str) -> f64 {
    let page = reqwest::get(app.server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn start_at(pool: PgPool, clock: &ManualClock) -> CoffeeApp {
    CoffeeApp::start_with_clock(pool, SlackFake::start().await, &[], clock.clone()).await
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn the_runner_is_reminded_within_two_seconds_of_pickup_in_real_time(pool: PgPool) {
    // Arrange: ticks every second, reminders at pickup (offset 0).
    let app = CoffeeApp::start_with(
        pool.clone(),
        SlackFake::start().await,
        &[
            ("TICK_SECONDS", "1"),
            ("CHANNEL_DEFAULT_REMINDER_MINUTES", "0"),
        ],
    )
    .await;
    // Pairs the fake's monotonic call times with wall-clock time.
    let (epoch_instant, epoch_utc) = (Instant::now(), Utc::now());

    // Act
    let run_id = closed_run(&app, "in 1m").await;
    let pickup = pickup_of(&pool, run_id).await;
    let until_pickup = (pickup - Utc::now()).to_std().unwrap_or_default();
    wait_until_async("the reminder DM", until_pickup + WAIT, || async {
        !reminders_to(&app.slack, ALICE).is_empty()
    })
    .await;
    // A few more ticks must not send it again.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Assert
    let reminders = reminders_to(&app.slack, ALICE);
    assert_eq!(reminders.len(), 1, "exactly one reminder");
    let (arrived, body) = &reminders[0];
    let arrived_utc =
        epoch_utc + chrono::Duration::from_std(arrived.duration_since(epoch_instant)).unwrap();
    let off_by = (arrived_utc - pickup).as_seconds_f64();
    assert!(
        off_by.abs() <= 2.0,
        "the reminder arrived {off_by:.3} s from its due time"
    );
    assert!(
        body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Reminder: pickup at ")),
        "{body}"
    );
    let (status, _, sent_at, _, _) = reminder_row(&pool, run_id).await.expect("a reminder row");
    assert_eq!(status, "sent");
    assert!(sent_at.is_some());
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_due_reminder_is_sent_once_by_the_tick_with_the_orders(pool: PgPool) {
    // Arrange: pickup in 10 minutes, the default offset of 5.
    let clock = ManualClock::new(Utc::now());
    let app = start_at(pool.clone(), &clock).await;
    let run_id = closed_run(&app, "in 10m Blue <Bottle>").await;
    let (status, due_at, ..) = reminder_row(&pool, run_id).await.expect("scheduled");
    assert_eq!(status, "pending");
    assert_eq!(
        due_at,
        pickup_of(&pool, run_id).await - chrono::Duration::minutes(5)
    );
    let replica = reminder_replica(&app.ctx).await;

    // Act: a tick before the due time sends nothing; one at it sends.
    tick(&replica).await;
    assert!(reminders_to(&app.slack, ALICE).is_empty());
    clock.set(due_at);
    tick(&replica).await;
    tick(&replica).await;

    // Assert
    let reminders = wait_for_reminders(&app.slack, ALICE, 1).await;
    assert_eq!(reminders.len(), 1);
    let text = crate::helpers::all_text(&reminders[0].1);
    assert!(text.contains("<@U0ALICE>: flat white"), "{text}");
    assert!(text.contains("Blue &lt;Bottle&gt;"), "{text}");
    let (status, _, sent_at, ..) = reminder_row(&pool, run_id).await.expect("row");
    assert_eq!(status, "sent");
    assert_eq!(sent_at, Some(due_at));
    let sent_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = $1 AND subject = $2")
            .bind(events::REMINDER_SENT)
            .bind(run_id.to_string())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(sent_events, 1);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn no_reminder_is_scheduled_in_a_channel_with_reminders_off(pool: PgPool) {
    // Arrange
    sqlx::query("INSERT INTO channels (channel_id, reminders_enabled) VALUES ($1, false)")
        .bind(CHANNEL)
        .execute(&pool)
        .await
        .unwrap();
    let clock = ManualClock::new(Utc::now());
    let app = start_at(pool.clone(), &clock).await;

    // Act
    let run_id = closed_run(&app, "in 10m").await;
    clock.advance(chrono::Duration::hours(1));
    tick(&reminder_replica(&app.ctx).await).await;

    // Assert
    assert_eq!(reminder_row(&pool, run_id).await, None);
    assert!(reminders_to(&app.slack, ALICE).is_empty());
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn turning_reminders_off_after_close_skips_the_reminder_at_send_time(pool: PgPool) {
    // Arrange
    let clock = ManualClock::new(Utc::now());
    let app = start_at(pool.clone(), &clock).await;
    let run_id = closed_run(&app, "in 10m").await;
    assert!(reminder_row(&pool, run_id).await.is_some());
    sqlx::query("UPDATE channels SET reminders_enabled = false WHERE channel_id = $1")
        .bind(CHANNEL)
        .execute(&pool)
        .await
        .unwrap();
    let skipped_before = counter(&app, "coffeebuddy_reminders_skipped_total").await;

    // Act
    clock.advance(chrono::Duration::seconds(330));
    tick(&reminder_replica(&app.ctx).await).await;

    // Assert
    assert!(reminders_to(&app.slack, ALICE).is_empty());
    let (status, _, sent_at, _, last_error) = reminder_row(&pool, run_id).await.expect("row");
    assert_eq!(status, "skipped");
    assert_eq!(sent_at, None);
    assert!(last_error.is_some_and(|e| e.contains("disabled")));
    assert!(counter(&app, "coffeebuddy_reminders_skipped_total").await > skipped_before);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn two_replicas_ticking_together_send_the_reminder_once(pool: PgPool) {
    // Arrange: two reminder functions with their own contexts on one
    // database; Slack is slow, so the first holds its claim while the
    // second looks.
    let clock = ManualClock::new(Utc::now());
    let app = start_at(pool.clone(), &clock).await;
    let run_id = closed_run(&app, "in 10m").await;
    let second = Context::new(
        app.ctx.settings.clone(),
        pool.clone(),
        std::sync::Arc::new(clock.clone()),
    )
    .unwrap();
    // Both publish to the same place, as replicas share one broker: a sweep
    // by the second then delivers what the first committed (its own
    // in-process sink has no consumers and would refuse it, a 503).
    let second = Context {
        outbox: app.ctx.outbox.clone(),
        ..second
    };
    let (one, two) = (
        reminder_replica(&app.ctx).await,
        reminder_replica(&second).await,
    );
    app.slack.fail_next(
        "chat.postMessage",
        FakeResponse::Delayed(Duration::from_millis(300)),
    );

    // Act
    clock.advance(chrono::Duration::minutes(5));
    tokio::join!(tick(&one), tick(&two), tick(&one), tick(&two));
    // The DM is an effect the ticks wrote; wait until it and anything a
    // second claim might have written are carried out.
    app.settle_effects().await;

    // Assert
    assert_eq!(reminders_to(&app.slack, ALICE).len(), 1);
    let (status, ..) = reminder_row(&pool, run_id).await.expect("row");
    assert_eq!(status, "sent");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_reminder_missed_while_everything_was_down_is_sent_once_and_counted_late(pool: PgPool) {
    // Arrange: the run closes, then everything stops until long after the
    // reminder was due.
    let clock = ManualClock::new(Utc::now());
    let app = start_at(pool.clone(), &clock).await;
    let run_id = closed_run(&app, "in 10m").await;
    let slack = app.stop().await;
    clock.advance(chrono::Duration::hours(2));
    let app = CoffeeApp::start_with_clock(pool.clone(), slack, &[], clock.clone()).await;
    let replica = reminder_replica(&app.ctx).await;
    let late_before = counter(&app, "coffeebuddy_reminders_late_total").await;

    // Act: the first tick after recovery, then another.
    tick(&replica).await;
    tick(&replica).await;

    // Assert
    assert_eq!(wait_for_reminders(&app.slack, ALICE, 1).await.len(), 1);
    let (status, due_at, sent_at, ..) = reminder_row(&pool, run_id).await.expect("row");
    assert_eq!(status, "sent");
    let lateness = sent_at.expect("sent") - due_at;
    assert!(lateness > chrono::Duration::minutes(100), "{lateness}");
    assert_eq!(
        counter(&app, "coffeebuddy_reminders_late_total").await,
        late_before + 1.0
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_run_deleted_after_scheduling_gets_no_reminder(pool: PgPool) {
    // Arrange
    let clock = ManualClock::new(Utc::now());
    let app = start_at(pool.clone(), &clock).await;
    let run_id = closed_run(&app, "in 10m").await;
    assert!(reminder_row(&pool, run_id).await.is_some());

    // Act: the run goes (a channel reset), then the reminder falls due.
    sqlx::query("DELETE FROM runs WHERE run_id = $1")
        .bind(run_id)
        .execute(&pool)
        .await
        .unwrap();
    clock.advance(chrono::Duration::seconds(330));
    tick(&reminder_replica(&app.ctx).await).await;

    // Assert
    assert!(reminders_to(&app.slack, ALICE).is_empty());
    assert_eq!(reminder_row(&pool, run_id).await, None);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_redelivered_run_closed_schedules_one_reminder(pool: PgPool) {
    // Arrange
    let clock = ManualClock::new(Utc::now());
    let app = start_at(pool.clone(), &clock).await;
    let run_id = closed_run(&app, "in 10m").await;
    let replica = reminder_replica(&app.ctx).await;
    let closed = event(
        events::RUN_CLOSED,
        CHANNEL,
        serde_json::to_value(RunClosed {
            run_id,
            channel_id: CHANNEL.to_owned(),
            runner_id: Some(ALICE.to_owned()),
            cancelled: false,
        })
        .unwrap(),
    );

    // Act: the same event again, twice at once; then the reminder falls due.
    let client = reqwest::Client::new();
    let (a, b) = tokio::join!(
        post_binary(&client, &replica.url("/"), &closed).send(),
        post_binary(&client, &replica.url("/"), &closed).send(),
    );
    assert_eq!(a.unwrap().status(), 202);
    assert_eq!(b.unwrap().status(), 202);
    clock.advance(chrono::Duration::seconds(330));
    tick(&replica).await;

    // Assert
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM reminders WHERE run_id = $1")
        .bind(run_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(wait_for_reminders(&app.slack, ALICE, 1).await.len(), 1);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_run_closed_after_its_reminder_was_due_is_reminded_at_close(pool: PgPool) {
    // Arrange: a 60-minute offset makes a pickup 10 minutes away overdue.
    let clock = ManualClock::new(Utc::now());
    let app = CoffeeApp::start_with_clock(
        pool.clone(),
        SlackFake::start().await,
        &[("CHANNEL_DEFAULT_REMINDER_MINUTES", "60")],
        clock.clone(),
    )
    .await;

    // Act: no tick at all.
    let run_id = closed_run(&app, "in 10m").await;

    // Assert
    assert_eq!(wait_for_reminders(&app.slack, ALICE, 1).await.len(), 1);
    let (status, ..) = reminder_row(&pool, run_id).await.expect("row");
    assert_eq!(status, "sent");
}

/// The reminder DM's effect row for `run_id`: (status, attempts, last error).
async fn reminder_effect(pool: &PgPool, run_id: Uuid) -> Option<(String, i32, Option<String>)> {
    sqlx::query_as(
        "SELECT status, attempts, last_error FROM effects WHERE run_id = $1 AND kind = 'dm_reminder'",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// Waits until the reminder effect of `run_id` is settled (no longer
/// pending or in flight) and returns it. The test's clock is moved on
/// meanwhile, so retries backing off fall due.
async fn settled_reminder_effect(
    pool: &PgPool,
    clock: &ManualClock,
    run_id: Uuid,
) -> (String, i32, Option<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        clock.advance(chrono::Duration::milliseconds(500));
        if let Some(row) = reminder_effect(pool, run_id).await
            && row.0 != "pending"
            && row.0 != "in_flight"
        {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reminder effect never settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn while_slack_is_down_the_reminder_waits_and_arrives_once_when_it_returns(pool: PgPool) {
    // Arrange
    let clock = ManualClock::new(Utc::now());
    let app = start_at(pool.clone(), &clock).await;
    let run_id = closed_run(&app, "in 10m").await;
    let replica = reminder_replica(&app.ctx).await;
    clock.advance(chrono::Duration::seconds(330));

    // Act: Slack is down when the reminder falls due.
    app.slack.set_down(true);
    tick(&replica).await;

    // Assert: the reminder is handed over once; its DM keeps retrying.
    let (status, ..) = reminder_row(&pool, run_id).await.expect("row");
    assert_eq!(status, "sent", "handed to the effect worker");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (effect_status, _, last_error) = reminder_effect(&pool, run_id)
            .await
            .expect("the DM is an effect");
        assert!(
            matches!(effect_status.as_str(), "pending" | "in_flight"),
            "{effect_status}"
        );
        if last_error.is_some_and(|e| e.contains("503")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Act: Slack returns; later ticks come and go.
    app.slack.set_down(false);
    let (effect_status, ..) = settled_reminder_effect(&pool, &clock, run_id).await;
    tick(&replica).await;
    tick(&replica).await;

    // Assert: exactly one reminder DM got through.
    assert_eq!(effect_status, "done");
    let posted: Value = sqlx::query_scalar(
        "SELECT progress -> 'posted' FROM effects WHERE run_id = $1 AND kind = 'dm_reminder'",
    )
    .bind(run_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(posted.as_array().map(Vec::len), Some(1), "{posted}");
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM effects WHERE run_id = $1 AND kind = 'dm_reminder'",
    )
    .bind(run_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(rows, 1, "one reminder, however many ticks");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_permanent_slack_refusal_settles_the_reminder_for_good(pool: PgPool) {
    // Arrange
    let clock = ManualClock::new(Utc::now());
    let app = start_at(pool.clone(), &clock).await;
    let run_id = closed_run(&app, "in 10m").await;
    let replica = reminder_replica(&app.ctx).await;
    clock.advance(chrono::Duration::seconds(330));

    // Act
    app.slack.fail_next(
        "chat.postMessage",
        FakeResponse::SlackError("user_not_found"),
    );
    tick(&replica).await;
    let settled = settled_reminder_effect(&pool, &clock, run_id).await;
    tick(&replica).await;

    // Assert: one attempt, none after it.
    assert_eq!(reminders_to(&app.slack, ALICE).len(), 1);
    let (status, attempts, last_error) = settled;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(last_error.is_some_and(|e| e.contains("user_not_found")));
}
