//! The coffee run end to end (DESIGN §1.1–1.4, §1.8), as people in Slack
//! meet it: `/coffee`, the run message, ordering through the modal, closing,
//! the fair runner, the summary and the DMs. Real HTTP, real Postgres, a
//! recording Slack fake; events flow through the outbox to every function.

use std::collections::HashMap;

use coffeebuddy_shared::slack::blocks;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{CoffeeApp, WAIT, all_text, button_labels};

const CHANNEL: &str = "C0COFFEE";
const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";
const CAROL: &str = "U0CAROL";

/// Messages posted to one channel or user, in order.
fn posts_to(app: &CoffeeApp, to: &str) -> Vec<Value> {
    app.slack
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["channel"] == to)
        .map(|c| c.body)
        .collect()
}

async fn wait_until<F: Fn() -> bool>(what: &str, done: F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Runs `/coffee` → orders → close for `people` and returns the runner.
async fn full_run(app: &CoffeeApp, initiator: &str, people: &[&str], nth_run: usize) -> String {
    let (status, _) = app.coffee(CHANNEL, initiator, "in 10m").await;
    assert_eq!(status, 200);
    let run_id = app.posted_run(CHANNEL).await;
    for person in people {
        let r = app
            .submit_order(person, run_id, &format!("latte for {person}"), &[])
            .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        app.click_close(CHANNEL, initiator, run_id).await.status(),
        200
    );
    // Each run posts two channel messages: the run message and the summary.
    wait_until("the summary", || {
        posts_to(app, CHANNEL).len() >= 2 * nth_run
    })
    .await;
    let runner: Option<String> = sqlx::query_scalar("SELECT runner_id FROM runs WHERE run_id = $1")
        .bind(run_id)
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    runner.expect("the run has a runner")
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_whole_run_from_coffee_to_summary_and_dms(pool: PgPool) {
    // Arrange
    let app = CoffeeApp::start(pool.clone()).await;

    // Act: Alice starts a run.
    let (status, answer) = app.coffee(CHANNEL, ALICE, "in 15m Blue Bottle").await;

    // Assert: acked with an ephemeral note; the bot posts the run message.
    assert_eq!(status, 200);
    assert_eq!(answer["response_type"], "ephemeral");
    let run_id = app.posted_run(CHANNEL).await;
    let run_message = posts_to(&app, CHANNEL).remove(0);
    assert_eq!(button_labels(&run_message), ["Order", "Close run"]);
    let text = all_text(&run_message);
    assert!(
        text.contains("<@U0ALICE>") && text.contains("Blue Bottle"),
        "{text}"
    );

    // Act: Bob clicks Order and gets the modal.
    assert_eq!(app.click_order(CHANNEL, BOB, run_id).await.status(), 200);
    let opened = app.slack.wait_for_calls("views.open", 1, WAIT).await;
    assert_eq!(
        opened[0].body["trigger_id"],
        format!("trigger-{BOB}-{}", blocks::ACTION_ORDER)
    );
    assert_eq!(
        opened[0].body["view"]["private_metadata"],
        run_id.to_string()
    );

    // Act: three people order; Bob then edits his order.
    for (who, what) in [
        (ALICE, "flat white"),
        (BOB, "espresso"),
        (CAROL, "<!channel> oat latte & <@U0BOB>"),
    ] {
        let r = app.submit_order(who, run_id, what, &[]).await;
        assert_eq!(r.status(), 200, "{who}");
        assert!(
            r.text().await.unwrap().is_empty(),
            "an empty 200 closes the modal"
        );
    }
    let r = app
        .submit_order(BOB, run_id, "double espresso", &[blocks::OPTION_SAVE_USUAL])
        .await;
    assert_eq!(r.status(), 200);

    // Assert: one active order each, Bob's edited; his usual is saved.
    let orders: Vec<(String, String)> = sqlx::query_as(
        "SELECT user_id, order_text FROM orders WHERE run_id = $1 AND active ORDER BY user_id",
    )
    .bind(run_id)
    .fetch_all(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(orders.len(), 3);
    assert!(orders.contains(&(BOB.to_owned(), "double espresso".to_owned())));
    let usual: String =
        sqlx::query_scalar("SELECT usual_order FROM user_preferences WHERE user_id = $1")
            .bind(BOB)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(usual, "double espresso");

    // Act + Assert: bad orders are refused on the input and change nothing.
    for bad in ["x".repeat(151), "two\nlines".to_owned(), "   ".to_owned()] {
        let r = app.submit_order(ALICE, run_id, &bad, &[]).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["response_action"], "errors", "{bad:?}");
        assert!(body["errors"][blocks::ORDER_BLOCK].is_string(), "{body}");
    }
    let alice_order: String = sqlx::query_scalar(
        "SELECT order_text FROM orders WHERE run_id = $1 AND user_id = $2 AND active",
    )
    .bind(run_id)
    .bind(ALICE)
    .fetch_one(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(alice_order, "flat white");

    // Assert: the run message shows three participants, text escaped.
    wait_until("the run message to show three orders", || {
        app.slack.calls_to("chat.update").last().is_some_and(|u| {
            all_text(&u.body).contains("double espresso") && all_text(&u.body).contains("oat latte")
        })
    })
    .await;
    let updated = all_text(&app.slack.calls_to("chat.update").last().unwrap().body);
    assert!(
        updated.contains("&lt;!channel&gt;") && !updated.contains("<!channel>"),
        "{updated}"
    );
    assert!(updated.contains("&lt;@U0BOB&gt;"), "{updated}");

    // Act + Assert: Carol (a participant, not the initiator, not an admin) cannot close.
    assert_eq!(app.click_close(CHANNEL, CAROL, run_id).await.status(), 200);
    let refusal = app
        .slack
        .wait_for_calls(
            &format!("response:{}-{CAROL}", blocks::ACTION_CLOSE),
            1,
            WAIT,
        )
        .await;
    assert_eq!(refusal[0].body["response_type"], "ephemeral");
    assert!(all_text(&refusal[0].body).contains("<@U0ALICE>"));
    let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE run_id = $1")
        .bind(run_id)
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(status, "open");

    // Act: Alice closes.
    assert_eq!(app.click_close(CHANNEL, ALICE, run_id).await.status(), 200);

    // Assert: a summary naming the runner with every order, and DMs.
    wait_until("the summary and three DMs", || {
        posts_to(&app, CHANNEL).len() >= 2
            && [ALICE, BOB, CAROL]
                .iter()
                .all(|u| !posts_to(&app, u).is_empty())
    })
    .await;
    let (runner, status): (Option<String>, String) =
        sqlx::query_as("SELECT runner_id, status FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    let runner = runner.unwrap();
    assert_eq!(status, "closed");
    let summary = all_text(&posts_to(&app, CHANNEL)[1]);
    assert!(summary.contains(&format!("<@{runner}>")), "{summary}");
    for order in ["flat white", "double espresso", "oat latte"] {
        assert!(
            summary.contains(order),
            "{order} missing from the summary:\n{summary}"
        );
    }
    let runner_dm = all_text(&posts_to(&app, &runner)[0]);
    for order in ["flat white", "double espresso", "oat latte"] {
        assert!(
            runner_dm.contains(order),
            "{order} missing from the runner DM:\n{runner_dm}"
        );
    }
    assert!(
        runner_dm.contains("Blue Bottle"),
        "the note is in the runner DM:\n{runner_dm}"
    );
    for other in [ALICE, BOB, CAROL].into_iter().filter(|u| *u != runner) {
        let dm = all_text(&posts_to(&app, other)[0]);
        assert!(
            dm.contains(&format!("<@{runner}>")),
            "{other}'s DM names the runner:\n{dm}"
        );
    }
    let served: i32 = sqlx::query_scalar(
        "SELECT runs_served_count FROM channel_user_stats WHERE channel_id = $1 AND user_id = $2",
    )
    .bind(CHANNEL)
    .bind(&runner)
    .fetch_one(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(served, 1);
    // The run message now shows the outcome, without buttons.
    wait_until("the run message to show the runner", || {
        app.slack
            .calls_to("chat.update")
            .iter()
            .any(|u| button_labels(&u.body).is_empty())
    })
    .await;
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn four_runs_with_the_same_three_people_rotate_the_runner(pool: PgPool) {
    // Arrange
    let app = CoffeeApp::start(pool.clone()).await;

    // Act
    let mut runners = Vec::new();
    for n in 1..=4 {
        runners.push(full_run(&app, ALICE, &[ALICE, BOB, CAROL], n).await);
    }

    // Assert: everybody ran once in the first three; never twice in a row.
    let first_three: std::collections::HashSet<_> = runners[..3].iter().collect();
    assert_eq!(first_three.len(), 3, "{runners:?}");
    assert!(runners.windows(2).all(|w| w[0] != w[1]), "{runners:?}");
    let counts: HashMap<String, i32> = sqlx::query_as::<_, (String, i32)>(
        "SELECT user_id, runs_served_count FROM channel_user_stats WHERE channel_id = $1",
    )
    .bind(CHANNEL)
    .fetch_all(&app.ctx.db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(counts.values().sum::<i32>(), 4);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn twelve_people_typing_coffee_at_once_in_a_new_channel_start_one_run(pool: PgPool) {
    // Arrange: a channel CoffeeBuddy has never seen (its row is created by
    // whichever command comes first) and twelve people.
    let app = CoffeeApp::start(pool.clone()).await;
    let people: Vec<String> = (0..12).map(|i| format!("U0P{i:02}")).collect();

    // Act
    let commands = people.iter().map(|who| app.coffee(CHANNEL, who, ""));
    let answers = futures::future::join_all(commands).await;

    // Assert: one started, eleven told who did; one run, one message.
    assert!(answers.iter().all(|(status, _)| *status == 200));
    let texts: Vec<&str> = answers
        .iter()
        .map(|(_, a)| a["text"].as_str().unwrap_or_default())
        .collect();
    let started = texts
        .iter()
        .filter(|t| t.contains("Coffee run started"))
        .count();
    let refused: Vec<&&str> = texts
        .iter()
        .filter(|t| t.contains("already a coffee run open"))
        .collect();
    assert_eq!((started, refused.len()), (1, 11), "{texts:#?}");
    let initiator: String =
        sqlx::query_scalar("SELECT initiator_id FROM runs WHERE channel_id = $1")
            .bind(CHANNEL)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert!(
        refused
            .iter()
            .all(|t| t.contains(&format!("<@{initiator}>"))),
        "every refusal names the starter"
    );
    app.posted_run(CHANNEL).await;
    app.settle_effects().await;
    assert_eq!(posts_to(&app, CHANNEL).len(), 1, "one run message");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(events, 1, "one run.created");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn ten_concurrent_close_clicks_close_once(pool: PgPool) {
    // Arrange
    let app = CoffeeApp::start(pool.clone()).await;
    app.coffee(CHANNEL, ALICE, "").await;
    let run_id = app.posted_run(CHANNEL).await;
    for who in [ALICE, BOB, CAROL] {
        app.submit_order(who, run_id, "tea", &[]).await;
    }

    // Act
    let clicks = (0..10).map(|_| app.click_close(CHANNEL, ALICE, run_id));
    let responses = futures::future::join_all(clicks).await;

    // Assert
    assert!(responses.iter().all(|r| r.status() == 200));
    wait_until("the DMs", || {
        [ALICE, BOB, CAROL]
            .iter()
            .all(|u| !posts_to(&app, u).is_empty())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await; // let any duplicate show itself
    for who in [ALICE, BOB, CAROL] {
        assert_eq!(posts_to(&app, who).len(), 1, "{who} got exactly one DM");
    }
    assert_eq!(
        posts_to(&app, CHANNEL).len(),
        2,
        "one run message and one summary"
    );
    let served: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(runs_served_count), 0) FROM channel_user_stats WHERE channel_id = $1",
    )
    .bind(CHANNEL)
    .fetch_one(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(served, 1);
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE event_type = 'com.coffeebuddy.run.close_requested.v1'",
    )
    .fetch_one(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(events, 1);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_redelivered_close_event_sends_everything_once(pool: PgPool) {
    // Arrange: a run closed the normal way.
    let app = CoffeeApp::start(pool.clone()).await;
    app.coffee(CHANNEL, ALICE, "").await;
    let run_id = app.posted_run(CHANNEL).await;
    app.submit_order(ALICE, run_id, "tea", &[]).await;
    app.submit_order(BOB, run_id, "coffee", &[]).await;
    app.click_close(CHANNEL, ALICE, run_id).await;
    wait_until("the DMs", || {
        [ALICE, BOB].iter().all(|u| !posts_to(&app, u).is_empty())
    })
    .await;
    app.settle_effects().await;
    let calls_before = app.slack.calls().len();

    // Act: Kafka redelivers the same close event (same id) twice more.
    let (id, ty, source, data): (Uuid, String, String, Value) = sqlx::query_as(
        "SELECT event_id, event_type, source, payload FROM outbox WHERE event_type = 'com.coffeebuddy.run.close_requested.v1'",
    )
    .fetch_one(&app.ctx.db)
    .await
    .unwrap();
    let close_run =
        coffeebuddy_test_support::spawn(coffeebuddy_close_run::event_router(&app.ctx)).await;
    for _ in 0..2 {
        let response = reqwest::Client::new()
            .post(close_run.url("/"))
            .header("ce-specversion", "1.0")
            .header("ce-id", id.to_string())
            .header("ce-type", &ty)
            .header("ce-source", &source)
            .header("content-type", "application/json")
            .body(data.to_string())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    // Assert: no new Slack calls, and the runner was counted once.
    assert_eq!(
        app.slack.calls().len(),
        calls_before,
        "{:#?}",
        &app.slack.calls()[calls_before..]
    );
    let served: i64 = sqlx::query_scalar(
        "SELECT sum(runs_served_count) FROM channel_user_stats WHERE channel_id = $1",
    )
    .bind(CHANNEL)
    .fetch_one(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(served, 1);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_restart_between_ordering_and_closing_loses_nothing(pool: PgPool) {
    // Arrange: orders placed on one process…
    let app = CoffeeApp::start(pool.clone()).await;
    app.coffee(CHANNEL, ALICE, "Blue Bottle").await;
    let run_id = app.posted_run(CHANNEL).await;
    app.submit_order(ALICE, run_id, "flat white", &[]).await;
    app.submit_order(BOB, run_id, "cortado", &[]).await;
    let slack = app.stop().await;

    // Act: …a new process closes the run.
    let app = CoffeeApp::start_with(pool.clone(), slack, &[]).await;
    app.click_close(CHANNEL, ALICE, run_id).await;

    // Assert
    wait_until("the summary", || posts_to(&app, CHANNEL).len() >= 2).await;
    let summary = all_text(posts_to(&app, CHANNEL).last().unwrap());
    assert!(
        summary.contains("flat white") && summary.contains("cortado"),
        "{summary}"
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_run_nobody_ordered_in_is_cancelled(pool: PgPool) {
    let app = CoffeeApp::start(pool.clone()).await;
    app.coffee(CHANNEL, ALICE, "").await;
    let run_id = app.posted_run(CHANNEL).await;

    app.click_close(CHANNEL, ALICE, run_id).await;

    wait_until("the run message to say cancelled", || {
        app.slack
            .calls_to("chat.update")
            .iter()
            .any(|u| all_text(&u.body).contains("cancelled"))
    })
    .await;
    let (status, runner): (String, Option<String>) =
        sqlx::query_as("SELECT status, runner_id FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), runner), ("cancelled", None));
    assert!(
        posts_to(&app, ALICE).is_empty(),
        "no DMs for a cancelled run"
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn refusals_are_ephemeral_and_start_nothing(pool: PgPool) {
    let app = CoffeeApp::start(pool.clone()).await;
    let runs = |db: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM runs")
            .fetch_one(&db)
            .await
            .unwrap()
    };

    // Bad arguments get the usage and no run.
    for bad in ["25:00", "in 0m", "in 241m", "10 Blue Bottle", "in five"] {
        let (status, answer) = app.coffee(CHANNEL, ALICE, bad).await;
        assert_eq!(status, 200);
        assert_eq!(answer["response_type"], "ephemeral", "{bad}");
        assert!(
            answer["text"].as_str().unwrap().contains("/coffee"),
            "usage shown for {bad}"
        );
    }
    assert_eq!(runs(app.ctx.db.clone()).await, 0);

    // Help is just help.
    let (_, help) = app.coffee(CHANNEL, ALICE, "help").await;
    assert!(help["text"].as_str().unwrap().contains("in 15m"), "{help}");
    assert_eq!(runs(app.ctx.db.clone()).await, 0);

    // A second run in the same channel is refused, naming the open one's starter.
    app.coffee(CHANNEL, ALICE, "").await;
    let (_, second) = app.coffee(CHANNEL, BOB, "").await;
    assert!(
        second["text"].as_str().unwrap().contains("<@U0ALICE>"),
        "{second}"
    );
    assert_eq!(runs(app.ctx.db.clone()).await, 1);

    // A channel an admin disabled refuses.
    sqlx::query("INSERT INTO channels (channel_id, enabled) VALUES ('C0OTHER', false)")
        .execute(&app.ctx.db)
        .await
        .unwrap();
    let (_, disabled) = app.coffee("C0OTHER", ALICE, "").await;
    assert!(
        disabled["text"]
            .as_str()
            .unwrap()
            .contains("disabled by an admin"),
        "{disabled}"
    );
    assert_eq!(runs(app.ctx.db.clone()).await, 1);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_run_in_a_channel_the_bot_is_not_in_is_cancelled_and_the_initiator_told_how_to_fix_it(
    pool: PgPool,
) {
    // Arrange: Slack refuses posts there, as it does before `/invite`.
    let app = CoffeeApp::start(pool.clone()).await;
    app.slack.fail_next(
        "chat.postMessage",
        coffeebuddy_test_support::slack_fake::FakeResponse::SlackError("not_in_channel"),
    );

    // Act
    let (status, _) = app.coffee(CHANNEL, ALICE, "").await;

    // Assert: the initiator hears why, privately; the run does not linger.
    assert_eq!(status, 200);
    let told = app
        .slack
        .wait_for_calls(&format!("response:cmd-{ALICE}"), 1, WAIT)
        .await;
    assert_eq!(told[0].body["response_type"], "ephemeral");
    assert!(
        all_text(&told[0].body).contains("/invite"),
        "{:?}",
        told[0].body
    );
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM runs WHERE channel_id = $1 AND status = 'open'")
            .bind(CHANNEL)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(open, 0);

    // Once invited, `/coffee` works: the channel is not blocked.
    let (_, answer) = app.coffee(CHANNEL, ALICE, "").await;
    assert!(
        answer["text"].as_str().unwrap().contains("started"),
        "{answer}"
    );
    app.posted_run(CHANNEL).await;
}
