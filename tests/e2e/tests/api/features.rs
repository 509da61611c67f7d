//! Issue 9 (DESIGN §1.10, §1.12–§1.14) as people and operators meet it:
//! the auto-close setting, "why you", `/coffee stats`, the operators' stats
//! and CSV export, and the Events API. Real HTTP to `local`, real Postgres,
//! signed Slack requests, Ory JWTs from the JWKS fake.

use std::time::Duration;

use coffeebuddy_shared::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use coffeebuddy_test_support::SIGNING_SECRET;
use coffeebuddy_test_support::slack_fake::SlackFake;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::admin_api::{OpsApp, operator_token};
use crate::helpers::{CoffeeApp, WAIT};

const CHANNEL: &str = "C0OPS";
const BOSS: &str = "U0BOSS";
const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";
const CAROL: &str = "U0CAROL";

async fn app_with_boss(pool: PgPool) -> CoffeeApp {
    let slack = SlackFake::start().await;
    slack.set_workspace_admin(BOSS, true);
    CoffeeApp::start_with(pool, slack, &[]).await
}

async fn audit_actions(db: &PgPool) -> Vec<(String, Option<Value>, Option<Value>)> {
    sqlx::query_as(
        "SELECT action, before -> 'auto_close_minutes', after -> 'auto_close_minutes'
         FROM audit_log WHERE channel_id = $1 ORDER BY audit_id",
    )
    .bind(CHANNEL)
    .fetch_all(db)
    .await
    .unwrap()
}

/// Waits until `run_id` is closed or cancelled.
async fn wait_finished(app: &CoffeeApp, run_id: Uuid) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
        if status == "closed" || status == "cancelled" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run_id} never closed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `/coffee <text>` by Alice in CHANNEL, orders by the given people, Close.
async fn finished_run(app: &CoffeeApp, text: &str, orders: &[(&str, &str)]) -> Uuid {
    let (status, _) = app.coffee(CHANNEL, ALICE, text).await;
    assert_eq!(status, 200);
    let run_id = app.posted_run(CHANNEL).await;
    for (who, what) in orders {
        assert_eq!(app.submit_order(who, run_id, what, &[]).await.status(), 200);
    }
    assert_eq!(app.click_close(CHANNEL, ALICE, run_id).await.status(), 200);
    wait_finished(app, run_id).await;
    run_id
}

// ---- Auto-close (§1.10) ----------------------------------------------------

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn auto_close_is_set_shown_in_status_audited_and_turned_off_again(pool: PgPool) {
    // Arrange
    let app = app_with_boss(pool).await;
    assert!(
        app.admin(CHANNEL, ALICE, "status")
            .await
            .contains("Auto-close: off")
    );
    assert!(
        app.admin(CHANNEL, ALICE, "help")
            .await
            .contains("auto-close 10")
    );

    // Act
    let on = app.admin(CHANNEL, BOSS, "auto-close 10").await;
    let off = app.admin(CHANNEL, BOSS, "auto-close off").await;

    // Assert
    assert!(
        on.starts_with("Done.") && on.contains("Auto-close: 10 min before pickup"),
        "{on}"
    );
    assert!(off.contains("Auto-close: off"), "{off}");
    assert_eq!(
        audit_actions(&app.ctx.db).await,
        [
            ("auto-close".to_owned(), Some(Value::Null), Some(json!(10))),
            (
                "auto-close-off".to_owned(),
                Some(json!(10)),
                Some(Value::Null)
            ),
        ]
    );
    let stored: Option<i32> =
        sqlx::query_scalar("SELECT auto_close_minutes FROM channels WHERE channel_id = $1")
            .bind(CHANNEL)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(stored, None);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn auto_close_out_of_bounds_or_junk_is_refused_with_the_usage_and_changes_nothing(
    pool: PgPool,
) {
    let app = app_with_boss(pool).await;
    for sub in [
        "auto-close 0",
        "auto-close 61",
        "auto-close 99",
        "auto-close soon",
        "auto-close",
    ] {
        let answer = app.admin(CHANNEL, BOSS, sub).await;
        assert!(
            answer.contains("`/coffee-admin auto-close 10` / `auto-close off`"),
            "{sub}: the usage is shown: {answer}"
        );
        assert!(
            answer.contains("1 to 60")
                || answer.contains("Usage: `/coffee-admin auto-close <1-60>|off`"),
            "{sub}: {answer}"
        );
    }
    // A non-admin may not change it either.
    assert!(
        app.admin(CHANNEL, ALICE, "auto-close 5")
            .await
            .contains("Only channel admins")
    );
    assert!(audit_actions(&app.ctx.db).await.is_empty());
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn the_rest_config_reads_sets_and_clears_auto_close_within_bounds(pool: PgPool) {
    // Arrange
    let ops = OpsApp::start(pool).await;
    let path = format!("/admin/api/v1/channels/{CHANNEL}/config");
    let (status, body) = ops.get(&path).await;
    assert_eq!(
        (status, &body["auto_close_minutes"]),
        (200, &Value::Null),
        "{body}"
    );

    // Act + Assert: set, bounds, clear.
    let (status, body) = ops.put(&path, r#"{"auto_close_minutes": 15}"#).await;
    assert_eq!(
        (status, &body["auto_close_minutes"]),
        (200, &json!(15)),
        "{body}"
    );
    for bad in ["0", "61", "99", "\"off\"", "2.5"] {
        let (status, body) = ops
            .put(&path, &format!(r#"{{"auto_close_minutes": {bad}}}"#))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("1 to 60"),
            "{bad}: {body}"
        );
    }
    assert_eq!(ops.get(&path).await.1["auto_close_minutes"], 15);
    let (status, body) = ops.put(&path, r#"{"auto_close_minutes": null}"#).await;
    assert_eq!(
        (status, &body["auto_close_minutes"]),
        (200, &Value::Null),
        "{body}"
    );
    assert_eq!(
        ops.audit_rows(CHANNEL).await,
        2,
        "two changes, no refused ones"
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_run_started_with_auto_close_on_knows_when_it_closes_and_says_so(pool: PgPool) {
    // Arrange: auto-close 10 in two channels; a third keeps the default (off).
    let app = app_with_boss(pool).await;
    for channel in ["C0EARLY", "C0LATE"] {
        assert!(
            app.admin(channel, BOSS, "auto-close 10")
                .await
                .starts_with("Done.")
        );
    }
    let stored = |channel: &'static str| {
        let db = app.ctx.db.clone();
        async move {
            let row: (
                Option<chrono::DateTime<chrono::Utc>>,
                Option<chrono::DateTime<chrono::Utc>>,
            ) = sqlx::query_as("SELECT pickup_at, auto_close_at FROM runs WHERE channel_id = $1")
                .bind(channel)
                .fetch_one(&db)
                .await
                .unwrap();
            row
        }
    };

    // Act
    let (_, early) = app.coffee("C0EARLY", ALICE, "in 30m").await;
    let (_, late) = app.coffee("C0LATE", ALICE, "in 5m").await;
    let (_, off) = app.coffee("C0OFF", ALICE, "in 30m").await;

    // Assert: pickup − 10 min; too close → at pickup; off → only by hand.
    let (pickup, closes) = stored("C0EARLY").await;
    assert_eq!(closes, pickup.map(|p| p - chrono::Duration::minutes(10)));
    assert!(
        early["text"]
            .as_str()
            .unwrap()
            .contains("Orders close by themselves at"),
        "{early}"
    );
    let (pickup, closes) = stored("C0LATE").await;
    assert_eq!(closes, pickup);
    assert!(
        late["text"]
            .as_str()
            .unwrap()
            .contains("Orders stay open until pickup"),
        "{late}"
    );
    let (_, closes) = stored("C0OFF").await;
    assert_eq!(closes, None);
    assert!(!off["text"].as_str().unwrap().contains("Orders"), "{off}");
}

// ---- Why you (§1.12) and /coffee stats (§1.13) ------------------------------

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn coffee_stats_in_a_channel_with_no_runs_says_so_privately_and_starts_nothing(pool: PgPool) {
    let app = CoffeeApp::start(pool).await;

    let (status, answer) = app.coffee(CHANNEL, ALICE, "stats").await;

    assert_eq!(status, 200);
    assert_eq!(answer["response_type"], "ephemeral");
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains("No coffee run has finished here yet"),
        "{text}"
    );
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(runs, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.slack.calls_to("chat.postMessage").is_empty());
    // `help` mentions it.
    let (_, help) = app.coffee(CHANNEL, ALICE, "help").await;
    assert!(help["text"].as_str().unwrap().contains("/coffee stats"));
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn after_real_runs_stats_count_people_and_the_pick_says_why(pool: PgPool) {
    // Arrange: two runs; the second is marked delivered 6 minutes after close.
    let app = CoffeeApp::start(pool).await;
    let first = finished_run(&app, "in 10m", &[(ALICE, "flat white"), (BOB, "latte")]).await;
    let second = finished_run(
        &app,
        "in 10m",
        &[(ALICE, "tea"), (BOB, "latte"), (CAROL, "mocha")],
    )
    .await;
    sqlx::query(
        "UPDATE runs SET delivered_at = closed_at + interval '6 minutes' WHERE run_id = $1",
    )
    .bind(second)
    .execute(&app.ctx.db)
    .await
    .unwrap();

    // Assert: each pick stored its "why you" line, from the same decision.
    for run_id in [first, second] {
        let (runner, why): (String, String) =
            sqlx::query_as("SELECT runner_id, runner_why FROM runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(&app.ctx.db)
                .await
                .unwrap();
        assert!(why.contains("because") && why.contains("served"), "{why}");
        assert!(why.contains(&format!("<@{runner}>")), "{why}");
    }
    let (_, second_why): (String, String) =
        sqlx::query_as("SELECT runner_id, runner_why FROM runs WHERE run_id = $1")
            .bind(second)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert!(
        second_why.contains("sat out as the last run's runner"),
        "{second_why}"
    );

    // Act
    let (status, answer) = app.coffee(CHANNEL, CAROL, "stats").await;

    // Assert
    assert_eq!(status, 200);
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains("2 runs closed · 0 cancelled · 5 cups · 3 people"),
        "{text}"
    );
    assert!(
        text.contains("Close → delivered: 6 min on average (1 run marked delivered)"),
        "{text}"
    );
    assert!(
        text.contains("• <@U0CAROL>:") && text.contains("ordered 1 time"),
        "{text}"
    );
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'open'")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(open, 0, "stats never start a run");
}

// ---- Operators' stats and CSV (§1.13) ---------------------------------------

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn operators_get_stats_as_json_and_runs_as_an_injection_safe_csv(pool: PgPool) {
    // Arrange: a run whose orders have quotes, commas and a formula, and a
    // note that is one; then a cancelled run.
    let ops = OpsApp::start(pool).await;
    let app = &ops.app;
    let run = finished_run(
        app,
        "in 10m =SUM(1)",
        &[
            (ALICE, r#"flat white, "extra hot""#),
            (BOB, "=cmd|' /C calc'!A0"),
        ],
    )
    .await;
    let cancelled = finished_run(app, "", &[]).await;
    let client = reqwest::Client::new();
    let auth = format!("Bearer {}", operator_token());

    // Act
    let (status, stats) = ops
        .get(&format!("/admin/api/v1/channels/{CHANNEL}/stats"))
        .await;
    let response = client
        .get(
            app.server
                .url(&format!("/admin/api/v1/channels/{CHANNEL}/runs.csv")),
        )
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();

    // Assert: JSON stats.
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["channel_id"], CHANNEL);
    assert_eq!(stats["totals"]["runs_closed"], 1);
    assert_eq!(stats["totals"]["runs_cancelled"], 1);
    assert_eq!(stats["totals"]["orders"], 2);
    assert_eq!(stats["people"].as_array().unwrap().len(), 2);
    assert_eq!(stats["people"][0]["runs_served"], 1);
    assert_eq!(stats["people"][0]["cups_carried"], 2);
    // Assert: the CSV.
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    let lines: Vec<&str> = body.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "run_id,status,started_by,started_at,pickup_at,closed_at,runner,order_count,orders,note,picked_up_at,delivered_at"
    );
    assert!(
        lines[1].starts_with(&format!("{run},closed,U0ALICE,")),
        "{body}"
    );
    assert!(
        lines[1].contains(
            r#","U0ALICE: flat white, ""extra hot""; U0BOB: =cmd|' /C calc'!A0",'=SUM(1),"#
        ),
        "quoted per RFC 4180, the formula note defused: {body}"
    );
    assert!(
        lines[2].starts_with(&format!("{cancelled},cancelled,U0ALICE,")),
        "{body}"
    );
    assert_eq!(lines[3], "", "CRLF after the last row");
    assert_eq!(lines.len(), 4);
    // No row cell begins with a formula character.
    for line in &lines[1..3] {
        for cell in line.split(',') {
            assert!(!cell.starts_with(['=', '+', '@']), "{cell} in {line}");
        }
    }

    // Without a token: 401, for both.
    for path in ["stats", "runs.csv"] {
        let r = client
            .get(
                app.server
                    .url(&format!("/admin/api/v1/channels/{CHANNEL}/{path}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // A bad channel id: 400.
    let (status, _) = ops.get("/admin/api/v1/channels/not-a-channel/stats").await;
    assert_eq!(status, 400);
}

// ---- Events API (§1.14) -------------------------------------------------------

/// Posts `body` to `/slack/events`, signed when `signed`, with extra headers.
async fn post_event(
    app: &CoffeeApp,
    body: &Value,
    signed: bool,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let body = body.to_string();
    let ts = app.ctx.clock.now().timestamp().to_string();
    let mut request = reqwest::Client::new()
        .post(app.server.url("/slack/events"))
        .header("content-type", "application/json")
        .body(body.clone());
    if signed {
        request = request.header(TIMESTAMP_HEADER, &ts).header(
            SIGNATURE_HEADER,
            sign(SIGNING_SECRET.as_bytes(), &ts, body.as_bytes()),
        );
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn app_home_opened(event_id: &str) -> Value {
    json!({
        "token": "legacy-unused",
        "team_id": "T0TEAM",
        "api_app_id": "A0APP",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_700_000_000,
        "event": {
            "type": "app_home_opened",
            "user": ALICE,
            "channel": "D0ALICE",
            "tab": "home",
            "event_ts": "1700000000.000100"
        }
    })
}

async fn receipts(app: &CoffeeApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM slack_event_receipts")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn an_unsigned_event_is_refused_and_changes_nothing(pool: PgPool) {
    let app = CoffeeApp::start(pool).await;

    let response = post_event(&app, &app_home_opened("Ev0UNSIGNED"), false, &[]).await;

    assert_eq!(response.status(), 401);
    assert_eq!(receipts(&app).await, 0);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn url_verification_is_answered_with_its_challenge(pool: PgPool) {
    let app = CoffeeApp::start(pool).await;
    let body = json!({ "token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification" });

    let response = post_event(&app, &body, true, &[]).await;

    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer,
        json!({ "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" })
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_retried_event_is_recorded_once_and_answered_200_fast_every_time(pool: PgPool) {
    let app = CoffeeApp::start(pool).await;

    let started = std::time::Instant::now();
    let first = post_event(&app, &app_home_opened("Ev0HOME1"), true, &[]).await;
    let retry = post_event(
        &app,
        &app_home_opened("Ev0HOME1"),
        true,
        &[
            ("X-Slack-Retry-Num", "1"),
            ("X-Slack-Retry-Reason", "http_timeout"),
        ],
    )
    .await;
    let elapsed = started.elapsed();

    assert_eq!(
        (first.status().as_u16(), retry.status().as_u16()),
        (200, 200)
    );
    assert_eq!(receipts(&app).await, 1);
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // A new event is a new receipt; other event types are acknowledged too.
    assert_eq!(
        post_event(&app, &app_home_opened("Ev0HOME2"), true, &[])
            .await
            .status(),
        200
    );
    let other = json!({ "type": "event_callback", "event_id": "Ev0MSG", "event": { "type": "message", "user": BOB } });
    assert_eq!(post_event(&app, &other, true, &[]).await.status(), 200);
    assert_eq!(receipts(&app).await, 3);
    // No Slack call on the ack path; the two Home tabs are published
    // afterwards, once each.
    app.settle_effects().await;
    let methods: Vec<String> = app.slack.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["views.publish", "views.publish"], "{methods:?}");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn the_home_view_shows_the_usual_served_runs_and_open_runs_from_the_database(pool: PgPool) {
    // Arrange: Bob saves a usual and orders in a run that closes; a new run opens.
    let app = CoffeeApp::start(pool).await;
    let (status, _) = app.coffee(CHANNEL, ALICE, "").await;
    assert_eq!(status, 200);
    let run_id = app.posted_run(CHANNEL).await;
    let r = app
        .submit_order(
            BOB,
            run_id,
            "oat flat white",
            &[coffeebuddy_shared::slack::blocks::OPTION_SAVE_USUAL],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.click_close(CHANNEL, ALICE, run_id).await.status(), 200);
    wait_finished(&app, run_id).await;
    let (status, _) = app.coffee(CHANNEL, ALICE, "in 20m Blue Bottle").await;
    assert_eq!(status, 200);
    let open = app.posted_run(CHANNEL).await;

    // Act
    let bob = coffeebuddy_shared::domain::ids::UserId::parse(BOB).unwrap();
    let mut conn = app.ctx.db.acquire().await.unwrap();
    let view = coffeebuddy_shared::app::home::home_view(&mut conn, &bob)
        .await
        .unwrap();

    // Assert
    let text = view.to_string();
    assert_eq!(view["type"], "home");
    assert!(text.contains("*Your usual:* oat flat white"), "{text}");
    assert!(text.contains(coffeebuddy_shared::slack::home::ACTION_EDIT_USUAL));
    assert!(
        text.contains(&format!("• <#{CHANNEL}>: 1 run")),
        "Bob ran the first run alone: {text}"
    );
    assert!(
        text.contains(&open.to_string()),
        "the open run's Order button: {text}"
    );
    assert!(text.contains("Blue Bottle"));
    assert!(view["blocks"].as_array().unwrap().len() <= 100);
}

/// `user` submits the App Home's "Edit usual" modal with `text`.
async fn submit_usual(app: &CoffeeApp, user: &str, text: &str) -> reqwest::Response {
    use coffeebuddy_shared::slack::blocks::{ORDER_BLOCK, ORDER_INPUT};
    let payload = json!({
        "type": "view_submission",
        "team": { "id": "T0TEAM", "domain": "acme" },
        "user": { "id": user, "username": user, "team_id": "T0TEAM" },
        "api_app_id": "A0APP",
        "trigger_id": "trigger-usual",
        "view": {
            "id": "V0USUAL",
            "type": "modal",
            "callback_id": coffeebuddy_shared::slack::home::USUAL_MODAL_CALLBACK,
            "private_metadata": "",
            "state": { "values": {
                ORDER_BLOCK: { ORDER_INPUT: { "type": "plain_text_input", "value": text } }
            } }
        }
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    coffeebuddy_test_support::slack::signed_form(
        &reqwest::Client::new(),
        &app.server.url("/slack/interactions"),
        SIGNING_SECRET,
        app.ctx.clock.now().timestamp(),
        &body,
    )
    .send()
    .await
    .unwrap()
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn the_edit_usual_modal_saves_a_valid_usual_and_keeps_the_runner_answer(pool: PgPool) {
    // Arrange: Bob said "happy to be the runner again" last time.
    let app = CoffeeApp::start(pool).await;
    sqlx::query("INSERT INTO user_preferences (user_id, usual_order, runner_opt_in) VALUES ($1, 'tea', true)")
        .bind(BOB)
        .execute(&app.ctx.db)
        .await
        .unwrap();
    let prefs = || async {
        let row: (Option<String>, bool) = sqlx::query_as(
            "SELECT usual_order, runner_opt_in FROM user_preferences WHERE user_id = $1",
        )
        .bind(BOB)
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
        row
    };

    // Act + Assert: an empty usual is refused on the input, nothing changes.
    let refused = submit_usual(&app, BOB, "   ").await;
    assert_eq!(refused.status(), 200);
    let answer: Value = refused.json().await.unwrap();
    assert_eq!(answer["response_action"], "errors", "{answer}");
    assert!(answer["errors"]["order_block"].is_string(), "{answer}");
    assert_eq!(prefs().await, (Some("tea".to_owned()), true));

    // A valid one is saved; the modal closes (empty 200).
    let saved = submit_usual(&app, BOB, "oat flat white").await;
    assert_eq!(saved.status(), 200);
    assert!(saved.text().await.unwrap().is_empty());
    assert_eq!(prefs().await, (Some("oat flat white".to_owned()), true));
}

// ---- Wired through the effect worker: Home, follow-through, auto-close ------

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn opening_the_app_home_publishes_the_persons_home_view(pool: PgPool) {
    // Arrange: Alice has a saved usual.
    let app = CoffeeApp::start(pool).await;
    sqlx::query(
        "INSERT INTO user_preferences (user_id, usual_order) VALUES ($1, 'oat flat white')",
    )
    .bind(ALICE)
    .execute(&app.ctx.db)
    .await
    .unwrap();

    // Act
    let response = post_event(&app, &app_home_opened("Ev0HOMEPUB"), true, &[]).await;
    app.settle_effects().await;

    // Assert: one publish, a home view for Alice that shows her usual.
    assert_eq!(response.status(), 200);
    let published = app.slack.calls_to("views.publish");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].body["user_id"], ALICE);
    assert_eq!(published[0].body["view"]["type"], "home");
    assert!(
        published[0].body["view"]
            .to_string()
            .contains("oat flat white"),
        "{}",
        published[0].body
    );
}

/// `user` presses `action_id` on the runner's DM of `run_id`.
async fn press(app: &CoffeeApp, user: &str, action_id: &str, run_id: Uuid) -> u16 {
    let payload = json!({
        "type": "block_actions",
        "team": { "id": "T0TEAM", "domain": "acme" },
        "user": { "id": user, "username": user, "team_id": "T0TEAM" },
        "api_app_id": "A0APP",
        "trigger_id": format!("trigger-{user}-{action_id}"),
        "channel": { "id": format!("D{}", &user[1..]) },
        "container": { "type": "message", "message_ts": "1700000000.000100", "channel_id": format!("D{}", &user[1..]) },
        "response_url": app.slack.response_url(&format!("press-{user}")),
        "actions": [{ "action_id": action_id, "block_id": "follow_through", "type": "button", "value": run_id.to_string() }]
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    let now = app.ctx.clock.now().timestamp();
    coffeebuddy_test_support::slack::signed_form(
        &reqwest::Client::new(),
        &app.server.url("/slack/interactions"),
        SIGNING_SECRET,
        now,
        &body,
    )
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

/// The replies in `channel` in the thread of the message `parent_ts`.
fn thread_replies(app: &CoffeeApp, channel: &str, parent_ts: &str) -> Vec<Value> {
    app.slack
        .messages(channel)
        .into_iter()
        .filter(|m| m["thread_ts"] == parent_ts && m["ts"] != parent_ts)
        .collect()
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn only_the_runner_follows_through_and_the_channel_hears_each_step_once(pool: PgPool) {
    // Arrange: Bob is the only participant, so the runner; his DM lists the
    // order barista-ready, with the follow-through buttons.
    let app = CoffeeApp::start(pool).await;
    let run_id = finished_run(&app, "", &[(BOB, "flat white")]).await;
    app.settle_effects().await;
    let dm = app.slack.dm_messages(BOB);
    assert_eq!(dm.len(), 1, "{dm:#?}");
    let dm_text = crate::helpers::all_text(&dm[0]);
    assert!(dm_text.contains("1× flat white"), "{dm_text}");
    let labels = crate::helpers::button_labels(&dm[0]);
    assert_eq!(labels, ["Picked up", "Delivered"]);
    let summary = app
        .slack
        .messages(CHANNEL)
        .into_iter()
        .find(|m| crate::helpers::all_text(m).contains("is getting the coffee"))
        .expect("the summary");
    let summary_text = crate::helpers::all_text(&summary);
    assert!(
        summary_text.contains("because") && summary_text.contains("served"),
        "why you: {summary_text}"
    );
    let summary_ts = summary["ts"].as_str().expect("ts").to_owned();

    // Act: Carol (not the runner) presses Delivered.
    assert_eq!(press(&app, CAROL, "run_delivered", run_id).await, 200);
    app.settle_effects().await;

    // Assert: refused privately, nothing recorded, the channel hears nothing.
    let refusals = app.slack.calls_to("response:press-U0CAROL");
    assert_eq!(refusals.len(), 1);
    let delivered: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT delivered_at FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(delivered, None);
    assert!(thread_replies(&app, CHANNEL, &summary_ts).is_empty());

    // Act: Bob presses Picked up twice, then Delivered.
    assert_eq!(press(&app, BOB, "run_picked_up", run_id).await, 200);
    assert_eq!(press(&app, BOB, "run_picked_up", run_id).await, 200);
    assert_eq!(press(&app, BOB, "run_delivered", run_id).await, 200);
    app.settle_effects().await;

    // Assert: two replies in the summary's thread, in order, and the time.
    let replies: Vec<String> = thread_replies(&app, CHANNEL, &summary_ts)
        .iter()
        .map(crate::helpers::all_text)
        .collect();
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert!(replies[0].contains("picked up"), "{}", replies[0]);
    assert!(replies[1].contains("delivered"), "{}", replies[1]);
    let delivered: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT delivered_at FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert!(delivered.is_some());
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_run_whose_auto_close_time_came_closes_itself_on_the_tick(pool: PgPool) {
    // Arrange: auto-close 10 minutes before pickup; Bob orders; the close
    // time is then moved to a second ago (as if 20 minutes had passed).
    let app = app_with_boss(pool).await;
    assert!(
        app.admin(CHANNEL, BOSS, "auto-close 10")
            .await
            .starts_with("Done.")
    );
    let (status, _) = app.coffee(CHANNEL, ALICE, "in 30m").await;
    assert_eq!(status, 200);
    let run_id = app.posted_run(CHANNEL).await;
    app.settle_effects().await;
    let message = app.slack.messages(CHANNEL).pop().expect("run message");
    assert!(
        crate::helpers::all_text(&message).contains("Orders close by themselves at"),
        "{message}"
    );
    app.submit_order(BOB, run_id, "cortado", &[]).await;
    sqlx::query("UPDATE runs SET auto_close_at = now() - interval '1 second' WHERE run_id = $1")
        .bind(run_id)
        .execute(&app.ctx.db)
        .await
        .unwrap();

    // Act: a ping tick.
    app.tick().await;
    wait_finished(&app, run_id).await;
    app.settle_effects().await;

    // Assert: closed as if Alice had pressed Close: runner, summary, DM.
    let (status, requested_by): (String, Option<String>) =
        sqlx::query_as("SELECT status, close_requested_by FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), requested_by.as_deref()),
        ("closed", Some(ALICE))
    );
    assert_eq!(app.slack.dm_messages(BOB).len(), 1);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn edit_usual_on_the_home_tab_opens_the_usual_modal_prefilled(pool: PgPool) {
    // Arrange
    let app = CoffeeApp::start(pool).await;
    sqlx::query("INSERT INTO user_preferences (user_id, usual_order) VALUES ($1, 'cortado')")
        .bind(ALICE)
        .execute(&app.ctx.db)
        .await
        .unwrap();

    // Act
    let status = press(
        &app,
        ALICE,
        coffeebuddy_shared::slack::home::ACTION_EDIT_USUAL,
        Uuid::nil(),
    )
    .await;

    // Assert: acked, and the modal opened with the usual in it.
    assert_eq!(status, 200);
    let opened = app.slack.calls_to("views.open");
    assert_eq!(opened.len(), 1);
    let view = &opened[0].body["view"];
    assert_eq!(
        view["callback_id"],
        coffeebuddy_shared::slack::home::USUAL_MODAL_CALLBACK
    );
    assert!(view.to_string().contains("cortado"), "{view}");
}
