//! `/coffee-admin` (DESIGN §1.6) over real HTTP: who may change what, the
//! audit trail, reset with confirmation, and daily retention.

use std::sync::Arc;

use chrono::{Duration, Utc};
use coffeebuddy_shared::clock::ManualClock;
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_test_support::events::{event, post_binary};
use coffeebuddy_test_support::slack_fake::SlackFake;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::CoffeeApp;

const CHANNEL: &str = "C0ADMIN";
const BOSS: &str = "U0BOSS"; // a workspace admin
const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";

async fn audit_rows(db: &PgPool) -> Vec<(String, String, Option<Value>, Option<Value>)> {
    sqlx::query_as("SELECT actor, action, before, after FROM audit_log WHERE channel_id = $1 ORDER BY audit_id")
        .bind(CHANNEL)
        .fetch_all(db)
        .await
        .unwrap()
}

async fn app_with_boss(pool: PgPool) -> CoffeeApp {
    let slack = SlackFake::start().await;
    slack.set_workspace_admin(BOSS, true);
    CoffeeApp::start_with(pool, slack, &[]).await
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_non_admin_is_refused_every_change_and_nothing_changes(pool: PgPool) {
    // Arrange
    let app = app_with_boss(pool).await;

    // Act + Assert
    for sub in [
        "enable",
        "disable",
        "reminders off",
        "reminder-offset 10",
        "retention 30",
        "timezone Europe/Berlin",
        "admins add <@U0BOB>",
        "admins remove <@U0BOSS>",
        "reset",
        "reset confirm",
    ] {
        let answer = app.admin(CHANNEL, ALICE, sub).await;
        assert!(
            answer.contains("Only channel admins and workspace admins"),
            "{sub}: {answer}"
        );
    }
    assert!(audit_rows(&app.ctx.db).await.is_empty());
    let changed: i64 = sqlx::query_scalar("SELECT count(*) FROM channels WHERE channel_id = $1 AND NOT (enabled AND reminders_enabled AND reminder_offset_minutes = 5 AND retention_days = 90 AND timezone = 'UTC')")
        .bind(CHANNEL)
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(changed, 0);

    // help and status are open to everyone.
    assert!(
        app.admin(CHANNEL, ALICE, "help")
            .await
            .contains("reminder-offset")
    );
    assert!(
        app.admin(CHANNEL, ALICE, "status")
            .await
            .contains("Retention: 90 days")
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_workspace_admin_disables_coffee_and_enables_it_again(pool: PgPool) {
    let app = app_with_boss(pool).await;

    let answer = app.admin(CHANNEL, BOSS, "disable").await;
    assert!(answer.contains("disabled"), "{answer}");
    let (_, refused) = app.coffee(CHANNEL, ALICE, "").await;
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("disabled by an admin"),
        "{refused}"
    );

    app.admin(CHANNEL, BOSS, "enable").await;
    let (_, started) = app.coffee(CHANNEL, ALICE, "").await;
    assert!(
        started["text"].as_str().unwrap().contains("started"),
        "{started}"
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn every_change_is_audited_with_before_and_after(pool: PgPool) {
    // Arrange
    let app = app_with_boss(pool).await;

    // Act
    for sub in [
        "reminders off",
        "reminder-offset 12",
        "retention 30",
        "timezone America/New_York",
        "admins add <@U0ALICE|alice>",
    ] {
        app.admin(CHANNEL, BOSS, sub).await;
    }
    // Alice, now a channel admin, may change settings; Bob may not.
    assert!(
        app.admin(CHANNEL, ALICE, "disable")
            .await
            .starts_with("Done.")
    );
    assert!(
        app.admin(CHANNEL, BOB, "enable")
            .await
            .contains("Only channel admins")
    );
    app.admin(CHANNEL, BOSS, "admins remove <@U0ALICE>").await;
    assert!(
        app.admin(CHANNEL, ALICE, "enable")
            .await
            .contains("Only channel admins")
    );

    // Assert
    let rows = audit_rows(&app.ctx.db).await;
    let actions: Vec<(&str, &str)> = rows
        .iter()
        .map(|(a, b, _, _)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (BOSS, "reminders-off"),
            (BOSS, "reminder-offset"),
            (BOSS, "retention"),
            (BOSS, "timezone"),
            (BOSS, "admins-add"),
            (ALICE, "disable"),
            (BOSS, "admins-remove"),
        ]
    );
    let (_, _, before, after) = &rows[1];
    assert_eq!(before.as_ref().unwrap()["reminder_offset_minutes"], 5);
    assert_eq!(after.as_ref().unwrap()["reminder_offset_minutes"], 12);
    assert_eq!(
        after.as_ref().unwrap()["reminders_enabled"],
        false,
        "the earlier change is in the state"
    );
    let (_, _, before, after) = &rows[4];
    assert_eq!(before.as_ref().unwrap(), &json!({ "admins": [] }));
    assert_eq!(after.as_ref().unwrap(), &json!({ "admins": [ALICE] }));
    // Each change also went out as an event.
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'com.coffeebuddy.channel.config_changed.v1'")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(events, 7);
    let status = app.admin(CHANNEL, BOB, "status").await;
    assert!(
        status.contains("America/New_York") && status.contains("12 min"),
        "{status}"
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn bad_arguments_get_a_reason_and_change_nothing(pool: PgPool) {
    let app = app_with_boss(pool).await;
    for (sub, reason) in [
        ("reminder-offset 61", "0 to 60"),
        ("retention 0", "1 to 3650"),
        ("timezone Mars/Olympus", "not a time zone"),
        ("admins add bob", "not a user mention"),
        ("frobnicate", "Unknown subcommand"),
    ] {
        let answer = app.admin(CHANNEL, BOSS, sub).await;
        assert!(answer.contains(reason), "{sub}: {answer}");
    }
    assert!(audit_rows(&app.ctx.db).await.is_empty());
}

/// Starts `local` with a clock the test moves.
async fn app_with_clock(pool: PgPool, clock: &ManualClock) -> CoffeeApp {
    let slack = SlackFake::start().await;
    slack.set_workspace_admin(BOSS, true);
    let clock = clock.clone();
    CoffeeApp::start_customized(pool, slack, &[], move |ctx| Context {
        clock: Arc::new(clock),
        ..ctx
    })
    .await
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn reset_needs_the_same_person_to_confirm_within_five_minutes(pool: PgPool) {
    // Arrange: a channel with history.
    let clock = ManualClock::new(Utc::now());
    let app = app_with_clock(pool, &clock).await;
    app.coffee(CHANNEL, ALICE, "").await;
    let run_id = app.posted_run(CHANNEL).await;
    app.submit_order(ALICE, run_id, "tea", &[]).await;
    app.click_close(CHANNEL, ALICE, run_id).await;
    app.slack
        .wait_for_calls("chat.postMessage", 3, crate::helpers::WAIT)
        .await;
    app.admin(CHANNEL, BOSS, "admins add <@U0BOB>").await;
    app.admin(CHANNEL, BOSS, "retention 30").await;

    // Act + Assert: confirm without asking, or by someone else, or too late.
    assert!(
        app.admin(CHANNEL, BOSS, "reset confirm")
            .await
            .contains("no reset of yours")
    );
    app.admin(CHANNEL, BOSS, "reset").await;
    assert!(
        app.admin(CHANNEL, BOB, "reset confirm")
            .await
            .contains("no reset of yours")
    );
    clock.advance(Duration::minutes(6));
    assert!(
        app.admin(CHANNEL, BOSS, "reset confirm")
            .await
            .contains("no reset of yours")
    );
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(runs, 1, "nothing was deleted yet");

    // Act: ask again and confirm in time.
    app.admin(CHANNEL, BOSS, "reset").await;
    clock.advance(Duration::minutes(4));
    let answer = app.admin(CHANNEL, BOSS, "reset confirm").await;

    // Assert: runs, orders and counts gone; config, admins and audit stay.
    assert!(answer.contains("deleted 1 run"), "{answer}");
    for (table, query) in [
        ("runs", "SELECT count(*) FROM runs"),
        ("orders", "SELECT count(*) FROM orders"),
        (
            "channel_user_stats",
            "SELECT count(*) FROM channel_user_stats",
        ),
        ("slack_effects", "SELECT count(*) FROM slack_effects"),
    ] {
        let n: i64 = sqlx::query_scalar(query)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} emptied");
    }
    let retention: i32 =
        sqlx::query_scalar("SELECT retention_days FROM channels WHERE channel_id = $1")
            .bind(CHANNEL)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(retention, 30, "configuration stays");
    let rows = audit_rows(&app.ctx.db).await;
    assert_eq!(rows.last().unwrap().1, "reset");
    assert_eq!(rows.last().unwrap().2.as_ref().unwrap()["runs"], 1);
    assert!(
        app.admin(CHANNEL, BOB, "status").await.contains("<@U0BOB>"),
        "admins stay"
    );

    // Fairness restarts: the next run's only participant runs it, counted once.
    app.coffee(CHANNEL, ALICE, "").await;
    let run_id = app.posted_run(CHANNEL).await;
    app.submit_order(ALICE, run_id, "tea", &[]).await;
    app.click_close(CHANNEL, ALICE, run_id).await;
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    loop {
        let served: Option<i32> = sqlx::query_scalar(
            "SELECT runs_served_count FROM channel_user_stats WHERE user_id = $1",
        )
        .bind(ALICE)
        .fetch_optional(&app.ctx.db)
        .await
        .unwrap();
        if served == Some(1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the count restarted at {served:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

async fn closed_run(
    db: &PgPool,
    channel: &str,
    closed_days_ago: i64,
    now: chrono::DateTime<Utc>,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO channels (channel_id, retention_days) VALUES ($1, 30) ON CONFLICT DO NOTHING",
    )
    .bind(channel)
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO runs (run_id, channel_id, initiator_id, status, runner_id, created_at, closed_at)
         VALUES ($1, $2, 'U0ALICE', 'closed', 'U0ALICE', $3, $3)",
    )
    .bind(id)
    .bind(channel)
    .bind(now - Duration::days(closed_days_ago))
    .execute(db)
    .await
    .unwrap();
    sqlx::query("INSERT INTO orders (order_id, run_id, user_id, order_text) VALUES ($1, $2, 'U0ALICE', 'tea')")
        .bind(Uuid::new_v4())
        .bind(id)
        .execute(db)
        .await
        .unwrap();
    id
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn retention_deletes_exactly_what_is_older_than_the_window_once_a_day(pool: PgPool) {
    // Arrange: runs closed 31, 29 and 1 days ago in a 30-day channel, and an
    // open run started long ago.
    let now = Utc::now();
    let clock = ManualClock::new(now);
    let app = app_with_clock(pool, &clock).await;
    let old = closed_run(&app.ctx.db, CHANNEL, 31, now).await;
    let kept = [
        closed_run(&app.ctx.db, CHANNEL, 29, now).await,
        closed_run(&app.ctx.db, CHANNEL, 1, now).await,
    ];
    sqlx::query("INSERT INTO runs (run_id, channel_id, initiator_id, created_at) VALUES ($1, $2, 'U0BOB', $3)")
        .bind(Uuid::new_v4())
        .bind(CHANNEL)
        .bind(now - Duration::days(400))
        .execute(&app.ctx.db)
        .await
        .unwrap();
    let admin = coffeebuddy_test_support::spawn(coffeebuddy_admin::event_router(&app.ctx)).await;
    let ping = || async {
        let r = post_binary(
            &reqwest::Client::new(),
            &admin.url("/"),
            &event("dev.knative.sources.ping", "-", json!({})),
        )
        .send()
        .await
        .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    };

    // Act
    ping().await;

    // Assert
    let remaining: Vec<Uuid> =
        sqlx::query_scalar("SELECT run_id FROM runs WHERE status = 'closed' ORDER BY closed_at")
            .fetch_all(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(remaining, kept);
    assert!(!remaining.contains(&old));
    let orphans: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE run_id = $1")
        .bind(old)
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(orphans, 0, "orders go with their run");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'open'")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(open, 1, "open runs are never purged");
    let rows = audit_rows(&app.ctx.db).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("system", "retention")
    );
    assert_eq!(rows[0].3.as_ref().unwrap()["runs_deleted"], 1);

    // A day later (not before) the 29-day-old run has aged out too.
    clock.advance(Duration::hours(12));
    ping().await;
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM runs WHERE status = 'closed'")
            .fetch_one(&app.ctx.db)
            .await
            .unwrap(),
        2
    );
    clock.advance(Duration::hours(13));
    ping().await;
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM runs WHERE status = 'closed'")
            .fetch_one(&app.ctx.db)
            .await
            .unwrap(),
        1
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn slack_is_asked_about_workspace_admins_once_for_a_burst_of_commands(pool: PgPool) {
    // Arrange
    let app = app_with_boss(pool).await;

    // Act: several changes by a workspace admin, several refusals for Alice.
    for sub in ["disable", "enable", "reminders off"] {
        assert!(
            app.admin(CHANNEL, BOSS, sub).await.starts_with("Done."),
            "{sub}"
        );
    }
    for sub in ["disable", "retention 30"] {
        assert!(
            app.admin(CHANNEL, ALICE, sub)
                .await
                .contains("Only channel admins"),
            "{sub}"
        );
    }

    // Assert: one users.info per person (the answer is trusted for 60 s).
    let lookups: Vec<String> = app
        .slack
        .calls_to("users.info")
        .iter()
        .map(|c| c.body["user"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(lookups, [BOSS, ALICE], "{lookups:?}");
}
