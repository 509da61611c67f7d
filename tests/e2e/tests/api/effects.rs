//! Slack effects when Slack misbehaves (DESIGN §5): never before the ack,
//! never under a lock, never lost, never twice, within Slack's limits, one
//! channel's trouble never delaying another's, poison parked.

use std::time::{Duration, Instant};

use coffeebuddy_test_support::events::post_binary;
use coffeebuddy_test_support::slack_fake::{FakeResponse, SlackFake};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::admin_api::{OpsApp, operator_token};
use crate::helpers::{ADMIN_CHECKING, CoffeeApp, WAIT, all_text, button_labels};

const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";

/// Waits until `done` holds, or fails naming `what`.
async fn eventually<F: Fn() -> bool>(what: &str, timeout: Duration, done: F) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The run messages (with an **Order** button or a run status) in `channel`.
fn run_messages(slack: &SlackFake, channel: &str) -> Vec<Value> {
    slack
        .messages(channel)
        .into_iter()
        .filter(|m| all_text(m).contains("started a coffee run"))
        .collect()
}

/// Waits until the run is decided (closed or cancelled), then until every
/// effect is settled.
async fn decided(app: &CoffeeApp, run_id: Uuid) {
    let deadline = Instant::now() + WAIT;
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
        if status == "closed" || status == "cancelled" {
            break;
        }
        assert!(Instant::now() < deadline, "run {run_id} is still {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.settle_effects().await;
}

/// A run started by Alice with `people` ordering `order`; returns its id.
async fn run_with_orders(app: &CoffeeApp, channel: &str, people: &[String], order: &str) -> Uuid {
    let (status, _) = app.coffee(channel, ALICE, "").await;
    assert_eq!(status, 200);
    let run_id = app.posted_run(channel).await;
    for person in people {
        let response = app.submit_order(person, run_id, order, &[]).await;
        assert_eq!(response.status(), 200, "{person}");
    }
    run_id
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_channel_slack_refuses_does_not_delay_another_and_gets_its_message_once_later(
    pool: PgPool,
) {
    // Arrange: Slack answers 500 to everything posted in C0BROKEN.
    let app = CoffeeApp::start(pool).await;
    app.slack.fail_channel("C0BROKEN", Some(500));
    let (status, _) = app.coffee("C0BROKEN", ALICE, "").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: meanwhile, a run in another channel.
    let started = Instant::now();
    app.coffee("C0FINE", BOB, "").await;
    app.posted_run("C0FINE").await;

    // Assert: it arrives promptly although C0BROKEN keeps failing.
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "took {waited:?}");
    assert!(run_messages(&app.slack, "C0BROKEN").is_empty());

    // Act: Slack recovers for C0BROKEN.
    app.slack.fail_channel("C0BROKEN", None);

    // Assert: its run message arrives, once (the 500s were in doubt and
    // were read back before posting again).
    eventually("the refused channel's run message", WAIT, || {
        !run_messages(&app.slack, "C0BROKEN").is_empty()
    })
    .await;
    app.settle_effects().await;
    assert_eq!(run_messages(&app.slack, "C0BROKEN").len(), 1);
    assert_eq!(run_messages(&app.slack, "C0FINE").len(), 1);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn posts_slack_did_but_answered_too_late_are_not_posted_again(pool: PgPool) {
    // Arrange: the run message post is done but answered after the
    // worker's 2 s timeout.
    let app = CoffeeApp::start(pool).await;
    app.slack.fail_next(
        "chat.postMessage",
        FakeResponse::DoneButLate(Duration::from_secs(3)),
    );

    // Act
    app.coffee("C0LATE", ALICE, "").await;
    let run_id = app.posted_run("C0LATE").await;
    app.settle_effects().await;

    // Assert: one run message, and the run knows its ts.
    assert_eq!(run_messages(&app.slack, "C0LATE").len(), 1);
    let ts: Option<String> = sqlx::query_scalar("SELECT message_ts FROM runs WHERE run_id = $1")
        .bind(run_id)
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(
        ts.as_deref(),
        run_messages(&app.slack, "C0LATE")[0]["ts"].as_str()
    );

    // Arrange: Bob orders; the close's first DM is answered late as well.
    app.submit_order(BOB, run_id, "flat white", &[]).await;
    app.settle_effects().await;
    app.slack.fail_next(
        "chat.postMessage",
        FakeResponse::DoneButLate(Duration::from_secs(3)),
    );

    // Act
    app.click_close("C0LATE", ALICE, run_id).await;
    eventually("the runner's DM", WAIT, || {
        !app.slack.dm_messages(BOB).is_empty()
    })
    .await;
    app.settle_effects().await;

    // Assert: Bob (the only participant, so the runner) got one DM, and the
    // channel one summary.
    assert_eq!(
        app.slack.dm_messages(BOB).len(),
        1,
        "{:#?}",
        app.slack.dm_messages(BOB)
    );
    let summaries = app
        .slack
        .messages("C0LATE")
        .into_iter()
        .filter(|m| all_text(m).contains("is getting the coffee"))
        .count();
    assert_eq!(summaries, 1);
    assert!(
        app.slack.refusals().is_empty(),
        "{:#?}",
        app.slack.refusals()
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_slow_users_info_never_delays_the_ack_of_a_workspace_admin(pool: PgPool) {
    // Arrange: users.info takes 4 s; Carol is a workspace admin but neither
    // the starter nor a channel admin.
    let app = CoffeeApp::start(pool).await;
    const CAROL: &str = "U0CAROL";
    app.slack.set_workspace_admin(CAROL, true);
    let run_id = run_with_orders(&app, "C0SLOW", &[BOB.to_owned()], "tea").await;
    app.settle_effects().await;
    app.slack
        .set_method_latency("users.info", Duration::from_secs(4));

    // Act: Carol clicks Close run.
    let started = Instant::now();
    let response = app.click_close("C0SLOW", CAROL, run_id).await;
    let acked = started.elapsed();

    // Assert: acknowledged at once; the close happens after Slack answers.
    assert_eq!(response.status(), 200);
    assert!(acked < Duration::from_secs(1), "ack took {acked:?}");
    eventually("the close by a workspace admin", WAIT, || {
        !app.slack.dm_messages(BOB).is_empty()
    })
    .await;

    // Act: Dave, another workspace admin, disables the channel.
    const DAVE: &str = "U0DAVE";
    app.slack.set_workspace_admin(DAVE, true);
    let started = Instant::now();
    let ack = app.admin_ack("C0SLOW", DAVE, "disable").await;
    let acked = started.elapsed();

    // Assert: acknowledged at once, applied after Slack answered, and the
    // answer reaches Dave privately.
    assert!(acked < Duration::from_secs(1), "ack took {acked:?}");
    assert!(ack.starts_with(ADMIN_CHECKING), "{ack}");
    let answers = app
        .slack
        .wait_for_calls("response:admin-U0DAVE", 1, WAIT)
        .await;
    assert!(
        answers[0].body["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Done"),
        "{}",
        answers[0].body
    );
    let (_, refused) = app.coffee("C0SLOW", BOB, "").await;
    assert!(
        refused["text"]
            .as_str()
            .unwrap_or_default()
            .contains("disabled"),
        "{refused}"
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_rate_limited_refresh_still_leaves_the_run_message_closed(pool: PgPool) {
    // Arrange: an open run with an order.
    let app = CoffeeApp::start(pool).await;
    let run_id = run_with_orders(&app, "C0RATE", &[BOB.to_owned()], "mocha").await;
    app.settle_effects().await;

    // Act: the order's refresh is rate limited while the run closes.
    app.slack.fail_next(
        "chat.update",
        FakeResponse::RateLimited {
            retry_after_secs: 1,
        },
    );
    app.submit_order(BOB, run_id, "mocha, oat milk", &[]).await;
    app.click_close("C0RATE", ALICE, run_id).await;
    decided(&app, run_id).await;

    // Assert: the message ends closed, with no buttons.
    let message = run_messages(&app.slack, "C0RATE")
        .pop()
        .expect("run message");
    assert!(button_labels(&message).is_empty(), "{message}");
    assert!(all_text(&message).contains("Closed"), "{message}");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn forty_five_long_orders_stay_within_slacks_limits_and_the_runner_gets_every_one(
    pool: PgPool,
) {
    // Arrange: 45 people, each a 150-character order of `&<>` (five times
    // longer once escaped).
    let app = CoffeeApp::start(pool).await;
    let people: Vec<String> = (0..45).map(|i| format!("U0P{i:03}")).collect();
    let order: String = "&<>".repeat(50);
    let run_id = run_with_orders(&app, "C0BIG", &people, &order).await;

    // Act
    app.click_close("C0BIG", ALICE, run_id).await;
    decided(&app, run_id).await;

    // Assert: Slack refused nothing, and the runner's DMs list everyone.
    assert!(
        app.slack.refusals().is_empty(),
        "{:#?}",
        app.slack.refusals()
    );
    let runner: String = sqlx::query_scalar("SELECT runner_id FROM runs WHERE run_id = $1")
        .bind(run_id)
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    let dm_text: String = app
        .slack
        .dm_messages(&runner)
        .iter()
        .map(all_text)
        .collect::<Vec<_>>()
        .join("\n");
    for person in &people {
        assert!(
            dm_text.contains(&format!("<@{person}>")),
            "{person} missing from the runner's DMs"
        );
    }
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn eight_channels_closing_at_once_on_a_two_connection_pool_all_finish(pool: PgPool) {
    // Arrange: Slack at 0.4 s a call; eight runs with two orders each; a
    // pool of two connections.
    let app = CoffeeApp::start_with(
        pool,
        SlackFake::start().await,
        &[("DATABASE_POOL_MAX", "2")],
    )
    .await;
    let mut runs = Vec::new();
    for i in 0..8 {
        let channel = format!("C0PAR{i}");
        let run_id =
            run_with_orders(&app, &channel, &[BOB.to_owned(), format!("U0X{i}")], "tea").await;
        runs.push((channel, run_id));
    }
    app.settle_effects().await;
    app.slack.set_latency(Duration::from_millis(400));

    // Act: all eight close at once.
    let clicks = runs
        .iter()
        .map(|(channel, run_id)| app.click_close(channel, ALICE, *run_id));
    for response in futures::future::join_all(clicks).await {
        assert_eq!(response.status(), 200);
    }
    for (_, run_id) in &runs {
        decided(&app, *run_id).await;
    }

    // Assert: every channel got its summary, every run is closed.
    for (channel, _) in &runs {
        let summaries = app
            .slack
            .messages(channel)
            .into_iter()
            .filter(|m| all_text(m).contains("is getting the coffee"))
            .count();
        assert_eq!(summaries, 1, "{channel}");
    }
    let closed: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'closed'")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(closed, 8);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_poison_event_is_parked_and_the_good_ones_after_it_are_delivered(pool: PgPool) {
    // Arrange: a run.created whose payload no consumer can read, then a
    // real run in the same channel.
    let ops = OpsApp::start(pool).await;
    let app = &ops.app;
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, source, partition_key, payload) \
         VALUES ($1, 'com.coffeebuddy.run.created.v1', '/test', 'C0POISON', '{\"run_id\": 7}')",
    )
    .bind(Uuid::new_v4())
    .execute(&app.ctx.db)
    .await
    .unwrap();

    // Act
    app.coffee("C0POISON", ALICE, "").await;

    // Assert: the good run is announced; the poison one is a dead letter
    // the operators' API lists.
    app.posted_run("C0POISON").await;
    let mut listed = Value::Null;
    let deadline = Instant::now() + WAIT;
    while listed.as_array().is_none_or(Vec::is_empty) {
        assert!(Instant::now() < deadline, "no dead letter listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let auth = format!("Bearer {}", operator_token());
        let (status, _, body) = ops
            .send(
                reqwest::Method::GET,
                "/admin/api/v1/dead-letters",
                Some(&auth),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        listed = body;
    }
    assert_eq!(listed[0]["source"], "outbox", "{listed}");
    assert_eq!(listed[0]["kind"], "com.coffeebuddy.run.created.v1");
    let (status, _, _) = ops
        .send(
            reqwest::Method::GET,
            "/admin/api/v1/dead-letters",
            None,
            None,
        )
        .await;
    assert_eq!(status, 401, "the listing needs an operator token");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn the_tick_finishes_a_run_whose_close_event_was_never_delivered(pool: PgPool) {
    // Arrange: a run left in `closing` two minutes ago, its event lost
    // (as after a KafkaSource gave up).
    let app = CoffeeApp::start(pool).await;
    let run_id = run_with_orders(&app, "C0STUCK", &[BOB.to_owned()], "latte").await;
    app.settle_effects().await;
    sqlx::query(
        "UPDATE runs SET status = 'closing', close_requested_by = $2, \
         close_requested_at = now() - interval '2 minutes' WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(ALICE)
    .execute(&app.ctx.db)
    .await
    .unwrap();

    // Act: a ping tick.
    app.tick().await;

    // Assert: the run is closed and announced, as a close would have.
    app.settle_effects().await;
    let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE run_id = $1")
        .bind(run_id)
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(status, "closed");
    assert_eq!(app.slack.dm_messages(BOB).len(), 1);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn local_answers_events_posted_to_it_like_the_functions_would(pool: PgPool) {
    // Arrange
    let app = CoffeeApp::start(pool).await;
    let client = reqwest::Client::new();

    // Act + Assert: a type nobody handles is accepted and ignored.
    let unknown = coffeebuddy_test_support::events::event(
        "com.example.unrelated.v1",
        "C0ANY",
        json!({ "hello": "world" }),
    );
    let response = post_binary(&client, &app.server.url("/"), &unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // Act + Assert: a run event with a payload nobody can read is refused.
    let malformed = coffeebuddy_test_support::events::event(
        "com.coffeebuddy.run.created.v1",
        "C0ANY",
        json!({ "run_id": "not-a-uuid" }),
    );
    let response = post_binary(&client, &app.server.url("/"), &malformed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Act + Assert: not a CloudEvent at all.
    let response = client
        .post(app.server.url("/"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
}
