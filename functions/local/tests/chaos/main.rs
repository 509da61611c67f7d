//! Slow fault injection against the real parts (issue 8), run by
//! `scripts/chaos` (`--run-ignored only`), never by `scripts/test`:
//!
//! - `coffeebuddy-local`, the real binary, SIGKILLed mid-close while Slack
//!   holds the answers to the summary and DMs (some already posted, some
//!   not), then started again on the same database;
//! - the Kafka broker (tansu, with its SQLite storage so that a restart
//!   keeps its topics and offsets) SIGKILLed while runs open, take orders
//!   and close, then started again;
//! - Postgres stopped (`pg_ctl stop`) mid-traffic and started again, under
//!   the same running process.
//!
//! Each ends with what people would notice: every message there once,
//! every acknowledged command kept, nothing half written. Slack is the only
//! fake (the recording stand-in, over real HTTP). Each test prints a line
//! with its numbers (`--success-output final` shows them).

// The one-line reports are the point of a chaos run.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use coffeebuddy_shared::slack::blocks;
use coffeebuddy_test_support::driver::{SlackDriver, run_of_message};
use coffeebuddy_test_support::events::{DurableTansu, record_count};
use coffeebuddy_test_support::ledger::{PostAudit, audit_posts};
use coffeebuddy_test_support::process::AppProcess;
use coffeebuddy_test_support::slack_fake::{FakeResponse, SlackFake};
use coffeebuddy_test_support::{BOT_TOKEN, SIGNING_SECRET, database_url};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_coffeebuddy-local");
const ALICE: &str = "U0ALICE";
const PEOPLE: [&str; 3] = ["U0BOB", "U0CAROL", "U0DAVE"];

/// The environment of the real process: test secrets, the Slack fake, a
/// one-second tick (the repair and the sweep run often), plus `extra`.
fn env(
    db_url: &str,
    slack: &SlackFake,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut vars: Vec<(&'static str, String)> = vec![
        ("SERVICE_ENV", "test".to_owned()),
        ("SLACK_SIGNING_SECRET", SIGNING_SECRET.to_owned()),
        ("SLACK_BOT_TOKEN", BOT_TOKEN.to_owned()),
        ("SLACK_API_BASE_URL", slack.base_url()),
        ("DATABASE_URL", db_url.to_owned()),
        ("TICK_SECONDS", "1".to_owned()),
        ("LOG_LEVEL", "info,sqlx=warn,rdkafka=warn".to_owned()),
    ];
    vars.extend_from_slice(extra);
    vars
}

async fn start_local(env: &[(&'static str, String)]) -> AppProcess {
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    AppProcess::start(Path::new(BIN), &env)
        .await
        .expect("coffeebuddy-local starts")
}

/// Polls `check` every 100 ms until it returns `Some`, or fails naming
/// `what` after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The run whose message is in `channel` (waits for it).
async fn run_message(slack: &SlackFake, channel: &str) -> Uuid {
    eventually(
        &format!("the run message in {channel}"),
        Duration::from_secs(30),
        || async { slack.messages(channel).iter().find_map(run_of_message) },
    )
    .await
}

/// Effects not yet settled, and runs not yet decided.
async fn unsettled(db: &PgPool) -> (i64, i64) {
    let effects: i64 =
        sqlx::query_scalar("SELECT count(*) FROM effects WHERE status IN ('pending', 'in_flight')")
            .fetch_one(db)
            .await
            .unwrap_or(-1);
    let runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM runs WHERE status IN ('open', 'closing')")
            .fetch_one(db)
            .await
            .unwrap_or(-1);
    (effects, runs)
}

/// Waits until every effect is settled (and, with `all_runs_decided`,
/// every run closed or cancelled).
async fn settled(db: &PgPool, all_runs_decided: bool, timeout: Duration) {
    eventually("every effect settled", timeout, || async {
        let (effects, runs) = unsettled(db).await;
        (effects == 0 && (!all_runs_decided || runs == 0)).then_some(())
    })
    .await;
}

/// Messages in `channel` whose text contains `needle`.
fn count_text(slack: &SlackFake, channel: &str, needle: &str) -> usize {
    slack
        .messages(channel)
        .iter()
        .filter(|m| m.to_string().contains(needle))
        .count()
}

fn assert_exact(audit: &PostAudit) {
    assert!(audit.is_exact(), "{audit}");
}

/// One coffee run: Alice starts it in `channel`, the people order.
async fn open_run_with_orders(driver: &SlackDriver, slack: &SlackFake, channel: &str) -> Uuid {
    let answer = driver
        .coffee(channel, ALICE, "", &slack.response_url("cmd"))
        .await
        .expect("/coffee");
    assert!(answer.text().contains("Coffee run started"), "{answer:?}");
    let run_id = run_message(slack, channel).await;
    for person in PEOPLE {
        let answer = driver
            .submit_order(person, run_id, "flat white", &[])
            .await
            .expect("order");
        assert_eq!(answer.status, 200, "{person}: {answer:?}");
    }
    run_id
}

#[sqlx::test(migrations = false)]
#[ignore = "slow (waits out a 60 s effect lease): run by scripts/chaos"]
async fn local_killed_mid_close_finishes_the_close_exactly_once_after_a_restart(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange: a real process; a run with three orders.
    let db_url = database_url(&opts);
    let slack = SlackFake::start().await;
    let vars = env(&db_url, &slack, &[]);
    let mut first = start_local(&vars).await;
    let driver = SlackDriver::new(&first.base, SIGNING_SECRET);
    let db = PgPoolOptions::new().connect_with(opts).await.unwrap();
    let channel = "C0KILL";
    let run_id = open_run_with_orders(&driver, &slack, channel).await;
    settled(&db, false, Duration::from_secs(30)).await;
    // Slack will hold every post of the close: the summary and the three
    // DMs. Two are done before the hold (Slack posted, we never hear: the
    // kill lands between Slack's OK and our commit), two only after it.
    let posts_before = slack.calls_to("chat.postMessage").len();
    for i in 0..4 {
        let hold = Duration::from_secs(20);
        slack.fail_next(
            "chat.postMessage",
            if i % 2 == 0 {
                FakeResponse::DoneButLate(hold)
            } else {
                FakeResponse::Delayed(hold)
            },
        );
    }

    // Act: Alice closes; once the runner is chosen and all four posts are
    // in Slack's hands, the process is SIGKILLed.
    let answer = driver
        .click(
            channel,
            ALICE,
            blocks::ACTION_CLOSE,
            run_id,
            &slack.response_url("close"),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    slack
        .wait_for_calls(
            "chat.postMessage",
            posts_before + 4,
            Duration::from_secs(30),
        )
        .await;
    let (status, runner): (String, Option<String>) =
        sqlx::query_as("SELECT status, runner_id FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&db)
            .await
            .unwrap();
    first.kill_hard().unwrap();
    let read_backs_before = slack.calls_to("conversations.history").len();
    let posted_before_restart = slack.messages(channel).len()
        + PEOPLE
            .iter()
            .map(|p| slack.dm_messages(p).len())
            .sum::<usize>();
    let mut second = start_local(&vars).await;

    // Assert: the runner was chosen before the kill, and the close finishes
    // (once the dead process's 60 s leases expire) with one summary and
    // one DM each, the runner counted once.
    assert_eq!(status, "closed");
    let runner = runner.expect("a runner was chosen before the kill");
    assert_eq!(
        posted_before_restart, 3,
        "at the kill Slack held the run message and the two posts done before the hold"
    );
    settled(&db, true, Duration::from_secs(150)).await;
    assert_eq!(count_text(&slack, channel, "is getting the coffee"), 1);
    for person in PEOPLE {
        assert_eq!(slack.dm_messages(person).len(), 1, "{person}'s DMs");
    }
    let served: Vec<(String, i32)> = sqlx::query_as(
        "SELECT user_id, runs_served_count FROM channel_user_stats WHERE channel_id = $1 \
         AND runs_served_count > 0",
    )
    .bind(channel)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(served, vec![(runner, 1)]);
    let audit = audit_posts(&db, &slack).await.unwrap();
    assert_exact(&audit);
    let read_backs = slack.calls_to("conversations.history").len() - read_backs_before;
    assert!(
        read_backs >= 4,
        "each of the four in-doubt posts was read back before any resend: {read_backs}"
    );
    eprintln!(
        "killed with 4 posts held by Slack (2 already done); after the restart: \
         {read_backs} read-backs, {} posts done, each in Slack once",
        audit.posts_done
    );
    assert!(second.is_running());
    second
        .terminate(Duration::from_secs(20))
        .expect("a clean stop");
    db.close().await;
}

/// Where the durable tansu is (`TANSU_SQLITE_BIN`, set by `scripts/chaos`).
fn durable_tansu_binary() -> PathBuf {
    std::env::var_os("TANSU_SQLITE_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "TANSU_SQLITE_BIN is not set to a tansu built with its SQLite storage \
                 (`cargo install tansu --locked --features libsql --root DIR`): run \
                 scripts/chaos, which installs it"
            )
        })
}

#[sqlx::test(migrations = false)]
#[ignore = "slow (a broker outage): run by scripts/chaos"]
async fn the_broker_killed_and_restarted_mid_traffic_loses_no_event_and_doubles_no_message(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange: a durable broker, the real process publishing to it and
    // consuming from it; three channels with runs taking orders.
    let dir = tempdir("tansu");
    let mut broker = DurableTansu::start(&durable_tansu_binary(), &dir).await;
    let topic = broker.create_topic(3).await;
    let db_url = database_url(&opts);
    let slack = SlackFake::start().await;
    let vars = env(
        &db_url,
        &slack,
        &[
            ("KAFKA_BROKERS", broker.brokers.clone()),
            ("KAFKA_TOPIC_RUN_EVENTS", topic.clone()),
        ],
    );
    let mut local = start_local(&vars).await;
    let driver = SlackDriver::new(&local.base, SIGNING_SECRET);
    let db = PgPoolOptions::new().connect_with(opts).await.unwrap();
    let channels: Vec<String> = (0..3).map(|i| format!("C0KAFKA{i}")).collect();
    let mut runs = BTreeMap::new();
    for channel in &channels {
        runs.insert(
            channel.clone(),
            open_run_with_orders(&driver, &slack, channel).await,
        );
    }

    // What the broker holds before it dies (every event so far published).
    settled(&db, false, Duration::from_secs(30)).await;
    eventually(
        "the first events published",
        Duration::from_secs(30),
        || async {
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(&db)
                    .await
                    .ok()?;
            (left == 0).then_some(())
        },
    )
    .await;
    let held_before = records(&broker.brokers, &topic).await;
    assert!(
        held_before > 0,
        "nothing reached the broker before the kill"
    );

    // Act: the broker is SIGKILLed; meanwhile people edit orders, three
    // more channels start runs, and the first runs are closed.
    broker.kill_hard().await;
    for (channel, run_id) in &runs {
        let answer = driver
            .submit_order(PEOPLE[0], *run_id, "flat white, extra hot", &[])
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        let answer = driver
            .click(
                channel,
                ALICE,
                blocks::ACTION_CLOSE,
                *run_id,
                &slack.response_url("close"),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{channel}");
    }
    let late: Vec<String> = (0..3).map(|i| format!("C0LATE{i}")).collect();
    for channel in &late {
        let answer = driver
            .coffee(channel, ALICE, "", &slack.response_url("cmd"))
            .await
            .unwrap();
        assert!(answer.text().contains("Coffee run started"), "{answer:?}");
    }
    let unpublished_during: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&db)
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart().await;
    let held_after_restart = records(&broker.brokers, &topic).await;

    // Assert: the closes (whose run.close_requested waited for the broker)
    // all complete; the late runs get their messages; every event reaches
    // Kafka; nothing shows twice.
    assert!(unpublished_during > 0, "the outage held back no event");
    assert!(
        held_after_restart >= held_before,
        "the restarted broker lost records: {held_before} before, {held_after_restart} after"
    );
    for channel in &late {
        let run_id = run_message(&slack, channel).await;
        let answer = driver
            .submit_order(PEOPLE[1], run_id, "tea", &[])
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        driver
            .click(
                channel,
                ALICE,
                blocks::ACTION_CLOSE,
                run_id,
                &slack.response_url("close"),
            )
            .await
            .unwrap();
    }
    settled(&db, true, Duration::from_secs(120)).await;
    eventually("every event published", Duration::from_secs(60), || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&db)
                .await
                .ok()?;
        (left == 0).then_some(())
    })
    .await;
    for channel in channels.iter().chain(&late) {
        assert_eq!(
            count_text(&slack, channel, "is getting the coffee"),
            1,
            "{channel}"
        );
    }
    for channel in runs.keys() {
        let summary = slack
            .messages(channel)
            .into_iter()
            .find(|m| m.to_string().contains("is getting the coffee"))
            .unwrap();
        assert!(
            summary.to_string().contains("extra hot"),
            "the edit made while Kafka was down is in the summary"
        );
    }
    let audit = audit_posts(&db, &slack).await.unwrap();
    assert_exact(&audit);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db)
        .await
        .unwrap();
    eprintln!(
        "broker SIGKILLed for 3 s with {unpublished_during} events held back; it came back \
         with the {held_before} records it had ({held_after_restart} on restart); then all \
         {events} events published, {} runs closed, {} posts done, each in Slack once",
        channels.len() + late.len(),
        audit.posts_done
    );
    assert!(local.is_running());
    local
        .terminate(Duration::from_secs(20))
        .expect("a clean stop");
    db.close().await;
    broker.kill_hard().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records the broker holds in `topic` (3 partitions).
async fn records(brokers: &str, topic: &str) -> i64 {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || record_count(&brokers, &topic, 3))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot read the topic's watermarks: {e}"))
}

/// A fresh directory under the system temp dir, readable by the
/// `postgres` user (Postgres refuses to run as root).
fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coffeebuddy-chaos-{what}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let _ = Command::new("chmod").arg("755").arg(&dir).status();
    dir
}

/// Runs a `scripts/lib/common.sh` helper (`pg_init`, `pg_start`,
/// `pg_stop`) in bash.
fn pg_helper(call: &str) {
    let common = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lib/common.sh");
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && {call}", common.display()))
        .status()
        .expect("bash runs");
    assert!(status.success(), "{call} failed");
}

/// A Postgres cluster of this test's own, which it may stop and start.
struct OwnPostgres {
    dir: PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Self {
        let dir = tempdir("pg");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        pg_helper(&format!("pg_init '{}/pg'", dir.display()));
        let this = Self { dir, port };
        this.resume();
        this
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn stop(&self) {
        pg_helper(&format!("pg_stop '{}/pg' fast", self.dir.display()));
    }

    fn resume(&self) {
        pg_helper(&format!(
            "pg_start '{}/pg' {} durable",
            self.dir.display(),
            self.port
        ));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        pg_helper(&format!("pg_stop '{}/pg' immediate", self.dir.display()));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn ready_status(base: &str) -> u16 {
    match reqwest::get(format!("{base}/health/ready")).await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow (stops and starts a Postgres server): run by scripts/chaos"]
async fn postgres_stopped_mid_traffic_and_started_again_keeps_every_acknowledged_command() {
    // Arrange: a Postgres of our own (durable), the real process on it.
    let pg = tokio::task::spawn_blocking(OwnPostgres::start)
        .await
        .unwrap();
    let slack = SlackFake::start().await;
    let vars = env(&pg.url(), &slack, &[]);
    let mut local = start_local(&vars).await;
    let driver = SlackDriver::new(&local.base, SIGNING_SECRET);
    let orders_run = open_run_with_orders(&driver, &slack, "C0PGORDERS").await;
    assert_eq!(ready_status(&local.base).await, 200);

    // Act: two people keep starting runs and ordering; Postgres is stopped
    // for three seconds in the middle, then started again.
    let stop_at = Instant::now() + Duration::from_secs(8);
    let mut traffic = Vec::new();
    for worker in 0..2 {
        let driver = driver.clone();
        let response_url = slack.response_url("cmd");
        traffic.push(tokio::spawn(async move {
            let mut acked_runs = Vec::new();
            let mut refused_runs = Vec::new();
            let mut acked_orders = Vec::new();
            let mut i = 0;
            while Instant::now() < stop_at {
                let channel = format!("C0PG{worker}N{i}");
                match driver.coffee(&channel, ALICE, "", &response_url).await {
                    Ok(a) if a.status == 200 && a.text().contains("Coffee run started") => {
                        acked_runs.push(channel)
                    }
                    _ => refused_runs.push(channel),
                }
                let person = format!("U0PG{worker}P{i}");
                if let Ok(a) = driver.submit_order(&person, orders_run, "latte", &[]).await
                    && a.status == 200
                    && a.body.is_null()
                {
                    acked_orders.push(person);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (acked_runs, refused_runs, acked_orders)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let during = eventually("readiness 503", Duration::from_secs(10), || async {
        let status = ready_status(&local.base).await;
        (status == 503).then_some(status)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.resume();
        pg
    })
    .await
    .unwrap();
    let after = eventually("readiness 200", Duration::from_secs(30), || async {
        let status = ready_status(&local.base).await;
        (status == 200).then_some(status)
    })
    .await;
    let (mut acked_runs, mut refused_runs, mut acked_orders) = (vec![], vec![], vec![]);
    for task in traffic {
        let (a, r, o) = task.await.unwrap();
        acked_runs.extend(a);
        refused_runs.extend(r);
        acked_orders.extend(o);
    }

    // Assert: 503 then 200 from the same process; every acknowledged run
    // and order is there, every run whole, every run message posted once.
    assert_eq!((during, after), (503, 200));
    assert!(local.is_running(), "the process never restarted");
    eprintln!(
        "Postgres stopped 3 s mid-traffic: {} runs acknowledged, {} refused, {} orders \
         acknowledged; readiness 503 during, 200 after, same pid {}",
        acked_runs.len(),
        refused_runs.len(),
        acked_orders.len(),
        local.pid()
    );
    assert!(!refused_runs.is_empty(), "the outage refused nothing");
    let db = PgPoolOptions::new().connect(&pg.url()).await.unwrap();
    let runs: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT r.channel_id, \
           (SELECT count(*) FROM outbox o WHERE o.event_type = 'com.coffeebuddy.run.created.v1' \
              AND o.payload->>'run_id' = r.run_id::text), \
           (SELECT count(*) FROM effects e WHERE e.kind = 'post_run_message' AND e.run_id = r.run_id) \
         FROM runs r",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let stored: BTreeMap<String, (i64, i64)> =
        runs.into_iter().map(|(c, e, p)| (c, (e, p))).collect();
    for channel in &acked_runs {
        assert!(
            stored.contains_key(channel),
            "acknowledged run in {channel} lost"
        );
    }
    for (channel, whole) in &stored {
        assert_eq!(*whole, (1, 1), "the run in {channel} is half written");
    }
    let ordered: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM orders WHERE run_id = $1 AND active")
            .bind(orders_run)
            .fetch_all(&db)
            .await
            .unwrap();
    for person in &acked_orders {
        assert!(
            ordered.contains(person),
            "acknowledged order of {person} lost"
        );
    }
    settled(&db, false, Duration::from_secs(60)).await;
    for channel in stored.keys() {
        let posted = slack
            .messages(channel)
            .iter()
            .filter(|m| run_of_message(m).is_some())
            .count();
        assert_eq!(posted, 1, "{channel}");
    }
    assert_exact(&audit_posts(&db, &slack).await.unwrap());
    local
        .terminate(Duration::from_secs(20))
        .expect("a clean stop");
    db.close().await;
}
