//! Faults injected into the real parts while people use the bot (issue 8):
//! the quick ones, run with every test. Slow ones (a broker killed and
//! restarted, Postgres stopped for real, `coffeebuddy-local` SIGKILLed
//! mid-close) are in `functions/local/tests/chaos`, run by `scripts/chaos`.
//!
//! Every check is what a person would notice: a message missing or shown
//! twice, an acknowledged order gone, a run half there.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffeebuddy_test_support::TcpProxy;
use coffeebuddy_test_support::driver::effect_key;
use coffeebuddy_test_support::ledger::audit_posts;
use coffeebuddy_test_support::slack_fake::{FakeResponse, RecordedCall, SlackFake};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{CoffeeApp, WAIT, all_text};

const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";
const CAROL: &str = "U0CAROL";
const DAVE: &str = "U0DAVE";

/// The conversation (lane) a Web API call writes to or reads from: a
/// channel, or a person's DM (`U…`, whatever id the call used for it).
fn lane(call: &RecordedCall) -> Option<String> {
    let body = &call.body;
    // A person's ephemerals and Home tab are lanes of their own.
    match call.method.as_str() {
        "chat.postEphemeral" => {
            return Some(format!("ephemeral:{}:{}", body["channel"], body["user"]));
        }
        "views.publish" => return Some(format!("home:{}", body["user_id"])),
        _ => {}
    }
    let id = body["channel"]
        .as_str()
        .or_else(|| body["users"].as_str())
        .or_else(|| body["user"].as_str())?;
    // A DM is addressed by the user (`U…`) or its conversation (`D…`).
    Some(
        id.strip_prefix('D')
            .map_or(id.to_owned(), |rest| format!("U{rest}")),
    )
}

/// Every Web API call as `+ms method lane fault effect-key`, for a failure
/// message.
fn timeline(calls: &[RecordedCall]) -> String {
    let Some(first) = calls.first() else {
        return String::new();
    };
    calls
        .iter()
        .filter(|c| !c.method.starts_with("response:"))
        .map(|c| {
            format!(
                "{:>6} ms {:<22} {:<24} {:?} {}\n",
                c.at.duration_since(first.at).as_millis(),
                c.method,
                lane(c).unwrap_or_default(),
                c.fault,
                c.body["metadata"]["event_payload"]["effect"]
            )
        })
        .collect()
}

/// What makes a call the same request again: its method, conversation,
/// and the message it posts (effect key) or updates (`ts`).
fn request(call: &RecordedCall) -> Option<String> {
    Some(format!(
        "{} {} {} {}",
        call.method,
        lane(call)?,
        call.body["metadata"]["event_payload"]["effect"],
        call.body["ts"]
    ))
}

/// For every call answered 429, how long after it the same request came
/// again (for those that were sent again).
fn waits_after_rate_limits(calls: &[RecordedCall]) -> Vec<Duration> {
    let mut waits = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        if call.fault != Some(429) || call.method.starts_with("response:") {
            continue;
        }
        let Some(refused) = request(call) else {
            continue;
        };
        if let Some(again) = calls[i + 1..]
            .iter()
            .find(|c| request(c).as_deref() == Some(&refused))
        {
            waits.push(again.at.duration_since(call.at));
        }
    }
    waits.sort();
    waits
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Waits until the run is decided and every effect settled.
async fn finished(app: &CoffeeApp, run_id: Uuid, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM effects WHERE status IN ('pending', 'in_flight')",
        )
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
        if (status == "closed" || status == "cancelled") && open == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} is {status} with {open} effect(s) unsettled after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// The distribution of waits is the test's report (nextest shows it on failure
// or with --no-capture).
#[allow(clippy::print_stderr)]
#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_whole_run_through_429s_on_every_second_call_and_bursts_of_5xx_lands_every_message_once(
    pool: PgPool,
) {
    // Arrange: from the first call on, every second Web API call is 429
    // with Retry-After: 1.
    let app = CoffeeApp::start(pool).await;
    app.slack.rate_limit_every(2, 1);
    let channel = "C0CHAOS";

    // Act: a whole run, with two bursts of Slack being down (503 to
    // everything) and three 500s on posts in between.
    let (status, answer) = app.coffee(channel, ALICE, "in 30m Blue Bottle").await;
    assert_eq!(status, 200, "{answer}");
    let run_id = app.posted_run(channel).await;
    for (who, order) in [(BOB, "flat white"), (CAROL, "tea"), (DAVE, "mocha")] {
        let response = app.submit_order(who, run_id, order, &[]).await;
        assert_eq!(response.status(), 200, "{who}");
    }
    app.slack.set_down(true);
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.slack.set_down(false);
    for _ in 0..3 {
        app.slack
            .fail_next("chat.postMessage", FakeResponse::Status(500));
    }
    let response = app
        .submit_order(BOB, run_id, "flat white, oat milk", &[])
        .await;
    assert_eq!(response.status(), 200);
    let response = app.click_close(channel, ALICE, run_id).await;
    assert_eq!(response.status(), 200);
    app.slack.set_down(true);
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.slack.set_down(false);
    finished(&app, run_id, Duration::from_secs(60)).await;

    // Assert: one run message (closed, the edit shown), one summary, one
    // DM for each of the three who ordered.
    let messages = app.slack.messages(channel);
    let run_messages: Vec<&Value> = messages
        .iter()
        .filter(|m| all_text(m).contains("started a coffee run"))
        .collect();
    assert_eq!(run_messages.len(), 1, "{messages:#?}");
    let shown = all_text(run_messages[0]);
    assert!(shown.contains("Closed"), "{shown}");
    assert!(shown.contains("oat milk"), "{shown}");
    let summaries = messages
        .iter()
        .filter(|m| all_text(m).contains("is getting the coffee"))
        .count();
    assert_eq!(summaries, 1);
    for who in [BOB, CAROL, DAVE] {
        assert_eq!(app.slack.dm_messages(who).len(), 1, "{who}'s DMs");
    }
    assert!(
        app.slack.dm_messages(ALICE).is_empty(),
        "Alice did not order"
    );
    // From the database's side: every effect done, each post in Slack once.
    let audit = audit_posts(&app.ctx.db, &app.slack).await.unwrap();
    assert!(audit.is_exact(), "{audit}");
    assert_eq!(audit.posts_done, 5, "{audit}"); // run message, summary, 3 DMs
    // Retry-After honoured: each request refused with a 429 was sent again
    // no sooner than Slack asked (the distribution is reported).
    let calls = app.slack.calls();
    let limited = calls.iter().filter(|c| c.fault == Some(429)).count();
    let waits = waits_after_rate_limits(&calls);
    assert!(limited >= 5 && !waits.is_empty(), "{limited} rate limited");
    eprintln!(
        "{} Web API calls, {limited} answered 429; each refused request came again \
         after: min {:?}, p50 {:?}, max {:?} ({} retries)",
        calls.len(),
        quantile(&waits, 0.0),
        quantile(&waits, 0.5),
        quantile(&waits, 1.0),
        waits.len()
    );
    assert!(
        waits[0] >= Duration::from_millis(990),
        "a retry came {:?} after a 429 asking for 1 s; waits: {waits:?}\n{}",
        waits[0],
        timeline(&calls)
    );
    assert!(
        app.slack.refusals().is_empty(),
        "{:#?}",
        app.slack.refusals()
    );
}

/// What one `/coffee` got, per channel.
type Acks = Arc<Mutex<HashMap<String, bool>>>;

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn postgres_cut_off_mid_traffic_loses_no_acknowledged_run_or_order_and_half_writes_nothing(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange: the app reaches Postgres only through a proxy we can cut;
    // a 1 s acquire timeout so that requests fail instead of queueing.
    let upstream = (opts.get_host(), opts.get_port())
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let proxy = TcpProxy::start(upstream).await;
    let via_proxy = opts.clone().host("127.0.0.1").port(proxy.addr.port());
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(via_proxy);
    let app = Arc::new(CoffeeApp::start_with(pool, SlackFake::start().await, &[]).await);
    let (_, answer) = app.coffee("C0ORDERS", ALICE, "").await;
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("Coffee run started")
    );
    let orders_run = app.posted_run("C0ORDERS").await;

    // Act: four people keep starting runs in new channels and ordering,
    // while the database goes away for 1.5 s and comes back.
    let acks: Acks = Arc::default();
    let orders: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
    let stop = Instant::now() + Duration::from_millis(3500);
    let mut traffic = Vec::new();
    for worker in 0..4 {
        let (app, acks, orders) = (Arc::clone(&app), Arc::clone(&acks), Arc::clone(&orders));
        traffic.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < stop {
                let channel = format!("C0W{worker}N{i}");
                let (status, answer) = app.coffee(&channel, ALICE, "").await;
                let started = status == 200
                    && answer["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Coffee run started"));
                acks.lock().unwrap().insert(channel, started);
                let person = format!("U0W{worker}P{i}");
                let response = app.submit_order(&person, orders_run, "latte", &[]).await;
                // An empty 200 closes the modal: the order is saved.
                let ok = response.status() == 200;
                let saved = ok && response.text().await.unwrap_or_default().is_empty();
                orders.lock().unwrap().insert(person, saved);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = reqwest::get(app.server.url("/health/ready")).await.unwrap();
    let during_status = during.status().as_u16();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    proxy.restore();
    for task in traffic {
        task.await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    let after_status = loop {
        let status = reqwest::get(app.server.url("/health/ready"))
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Assert: readiness went 503 then 200 in the same process.
    assert_eq!((during_status, after_status), (503, 200));
    let acks = acks.lock().unwrap().clone();
    let orders = orders.lock().unwrap().clone();
    let refused = acks.values().filter(|ok| !**ok).count();
    assert!(refused > 0, "the cut refused no /coffee: it did not bite");
    assert!(acks.len() > refused, "nothing was acknowledged");
    // Every acknowledged run is there, whole: its run.created event and
    // its run message effect committed with it.
    let runs: Vec<(String, Uuid, i64, i64)> = sqlx::query_as(
        "SELECT r.channel_id, r.run_id, \
           (SELECT count(*) FROM outbox o WHERE o.event_type = 'com.coffeebuddy.run.created.v1' \
              AND o.payload->>'run_id' = r.run_id::text), \
           (SELECT count(*) FROM effects e WHERE e.kind = 'post_run_message' AND e.run_id = r.run_id) \
         FROM runs r",
    )
    .fetch_all(&app.ctx.db)
    .await
    .unwrap();
    let stored: HashMap<String, Uuid> = runs.iter().map(|(c, r, _, _)| (c.clone(), *r)).collect();
    for (channel, acked) in &acks {
        if *acked {
            assert!(
                stored.contains_key(channel),
                "acknowledged run in {channel} lost"
            );
        }
    }
    for (channel, run_id, events, posts) in &runs {
        assert_eq!(
            (*events, *posts),
            (1, 1),
            "run {run_id} in {channel} is half written"
        );
    }
    // Every acknowledged order is there.
    let ordered: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM orders WHERE run_id = $1 AND active")
            .bind(orders_run)
            .fetch_all(&app.ctx.db)
            .await
            .unwrap();
    for (person, acked) in &orders {
        if *acked {
            assert!(
                ordered.contains(person),
                "acknowledged order of {person} lost"
            );
        }
    }
    // Once the database is back, every stored run gets its message, once.
    app.settle_effects().await;
    let audit = audit_posts(&app.ctx.db, &app.slack).await.unwrap();
    assert!(audit.is_exact(), "{audit}");
    for (channel, _) in stored {
        let posted = app
            .slack
            .messages(&channel)
            .iter()
            .filter(|m| effect_key(m).is_some())
            .count();
        assert_eq!(posted, 1, "{channel}");
    }
    app.ctx.db.close().await;
}
