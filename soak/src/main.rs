//! `coffeebuddy-soak`: CoffeeBuddy under a steady, realistic load for
//! minutes, with Slack slow and sometimes failing, then an account of
//! everything it did (`scripts/soak [MINUTES]`).
//!
//! Starts the Slack stand-in (the tests' recording fake: 100 ms a call,
//! one Web API call in 100 answered 500, half of those after Slack did the
//! work) and the real `coffeebuddy-local` binary next to this one, on the
//! durable Postgres at `DATABASE_URL`. Then, at a steady rate, people in
//! hundreds of channels start runs (most with a pickup time, so reminders
//! fall due), order, edit their orders, close runs, open the App Home, ask
//! for stats and help, and run `/coffee-admin` (which a workspace admin's
//! changes send through Slack's `users.info` first) — each over signed
//! HTTP, exactly as Slack sends it ([`coffeebuddy_test_support::driver`]).
//! At most one request per channel is in flight, so no answer depends on
//! a race between two of the same channel's requests.
//!
//! Then it stops the traffic, waits for every effect and reminder due to
//! settle, and reports: requests and ack latency by kind, errors by kind
//! (every one is unexpected), Slack effects the traffic must have caused
//! against those the database records as done and those Slack holds (each
//! post exactly once: [`coffeebuddy_test_support::ledger`]), and the
//! process's resident memory from start to end. Exits 1 if anything was
//! unexpected, lost or doubled.
//!
//! Settings (environment): `SOAK_MINUTES` (or the first argument; default
//! 5), `SOAK_CHANNELS` (300), `SOAK_RATE` (requests a second, 20),
//! `SOAK_BIN_DIR` (where `coffeebuddy-local` is; default next to this
//! binary).

// The soak's output is its report.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use coffeebuddy_shared::slack::blocks;
use coffeebuddy_test_support::driver::{Answer, SlackDriver, run_of_message};
use coffeebuddy_test_support::ledger::audit_posts;
use coffeebuddy_test_support::measure::percentile;
use coffeebuddy_test_support::process::{AppProcess, sibling_binary};
use coffeebuddy_test_support::slack_fake::SlackFake;
use sqlx::PgPool;
use uuid::Uuid;

const SECRET: &str = "soak-signing-secret";
/// A workspace admin (per Slack's `users.info`) who is no channel's admin.
const ADMIN: &str = "U0ADMIN";
const PEOPLE: usize = 600;
/// How `/coffee-admin` acks a change it must first check with Slack.
const CHECKING: &str = "Checking that you may change CoffeeBuddy here";
const ADMIN_COMMANDS: [&str; 7] = [
    "status",
    "reminder-offset 1",
    "timezone Europe/Paris",
    "retention 30",
    "auto-close off",
    "reminders on",
    "help",
];
const ORDERS: [&str; 6] = [
    "flat white",
    "tea, no milk",
    "oat latte",
    "double espresso",
    "mocha & a croissant",
    "<!channel> hot chocolate",
];

/// A small xorshift generator: the soak needs variety, not cryptography,
/// and a seed makes a run repeatable.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Start,
    Order,
    Edit,
    Close,
    Admin,
    Stats,
    Help,
    Home,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Start => "/coffee (start)",
            Self::Order => "order",
            Self::Edit => "order edit",
            Self::Close => "close",
            Self::Admin => "/coffee-admin",
            Self::Stats => "/coffee stats",
            Self::Help => "/coffee help",
            Self::Home => "App Home opened",
        }
    }
}

#[derive(Debug, Default)]
struct Run {
    starter: String,
    /// `None` until its run message is seen in Slack.
    id: Option<Uuid>,
    /// Who ordered (an edit keeps the count).
    orders: BTreeMap<String, String>,
    with_pickup: bool,
}

#[derive(Debug, Default)]
struct Channel {
    run: Option<Run>,
    busy: bool,
}

/// What the traffic must have caused, counted as it is acknowledged.
#[derive(Debug, Default)]
struct Expected {
    run_messages: i64,
    summaries: i64,
    runner_dms: i64,
    participant_dms: i64,
    reminders: i64,
    homes: i64,
    deferred_admin: i64,
}

#[derive(Debug, Default)]
struct Model {
    channels: Vec<Channel>,
    expected: Expected,
    latencies: BTreeMap<Kind, Vec<Duration>>,
    errors: BTreeMap<String, usize>,
    events: u64,
}

type Shared = Arc<Mutex<Model>>;

fn lock(model: &Shared) -> MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(|e| e.into_inner())
}

fn channel_id(i: usize) -> String {
    format!("C0SOAK{i:04}")
}

fn person(i: usize) -> String {
    format!("U0P{i:04}")
}

/// One request the traffic decided to send.
#[derive(Debug)]
enum Action {
    Start {
        text: String,
        starter: String,
    },
    Order {
        run_id: Uuid,
        who: String,
        text: String,
        edit: bool,
    },
    Close {
        run_id: Uuid,
        starter: String,
    },
    Admin {
        text: &'static str,
    },
    Stats,
    Help,
    Home {
        who: String,
    },
}

/// Picks the next action for channel `i` (and marks it busy), or `None`
/// when the channel waits for its run message.
fn decide(model: &mut Model, slack: &SlackFake, rng: &mut Rng, i: usize) -> Option<Action> {
    let channel = &mut model.channels[i];
    if channel.busy {
        return None;
    }
    let action = match &mut channel.run {
        None => {
            let roll = rng.below(100);
            if roll < 85 {
                let starter = person(rng.below(PEOPLE));
                let text = if rng.chance(80) {
                    "in 2m Blue Bottle".to_owned()
                } else {
                    String::new()
                };
                Action::Start { text, starter }
            } else if roll < 93 {
                Action::Stats
            } else {
                Action::Help
            }
        }
        Some(run) => {
            if run.id.is_none() {
                run.id = slack
                    .messages(&channel_id(i))
                    .iter()
                    .rev()
                    .find_map(run_of_message);
            }
            let run_id = run.id?;
            let roll = rng.below(100);
            if run.orders.len() < 2 || (roll < 45 && run.orders.len() < 8) {
                let who = person(rng.below(PEOPLE));
                let text = ORDERS[rng.below(ORDERS.len())].to_owned();
                let edit = run.orders.contains_key(&who);
                Action::Order {
                    run_id,
                    who,
                    text,
                    edit,
                }
            } else if roll < 60 {
                let k = rng.below(run.orders.len());
                let who = run.orders.keys().nth(k).cloned().unwrap_or_default();
                Action::Order {
                    run_id,
                    who,
                    text: format!("{} (changed)", ORDERS[rng.below(ORDERS.len())]),
                    edit: true,
                }
            } else if roll < 85 {
                Action::Close {
                    run_id,
                    starter: run.starter.clone(),
                }
            } else if roll < 95 {
                Action::Admin {
                    text: ADMIN_COMMANDS[rng.below(ADMIN_COMMANDS.len())],
                }
            } else {
                Action::Home {
                    who: person(rng.below(PEOPLE)),
                }
            }
        }
    };
    channel.busy = true;
    Some(action)
}

/// Sends `action` for channel `i` and records what it got.
async fn perform(model: Shared, driver: SlackDriver, slack: SlackFake, i: usize, action: Action) {
    let channel = channel_id(i);
    let (kind, result) = match &action {
        Action::Start { text, starter } => (
            Kind::Start,
            driver
                .coffee(
                    &channel,
                    starter,
                    text,
                    &slack.response_url(&format!("cmd-{channel}")),
                )
                .await,
        ),
        Action::Order {
            run_id,
            who,
            text,
            edit,
        } => (
            if *edit { Kind::Edit } else { Kind::Order },
            driver.submit_order(who, *run_id, text, &[]).await,
        ),
        Action::Close { run_id, starter } => (
            Kind::Close,
            driver
                .click(
                    &channel,
                    starter,
                    blocks::ACTION_CLOSE,
                    *run_id,
                    &slack.response_url(&format!("close-{channel}")),
                )
                .await,
        ),
        Action::Admin { text } => (
            Kind::Admin,
            driver
                .coffee_admin(
                    &channel,
                    ADMIN,
                    text,
                    &slack.response_url(&format!("admin-{channel}")),
                )
                .await,
        ),
        Action::Stats => (
            Kind::Stats,
            driver
                .coffee(&channel, &person(i), "stats", &slack.response_url("stats"))
                .await,
        ),
        Action::Help => (
            Kind::Help,
            driver
                .coffee(&channel, &person(i), "help", &slack.response_url("help"))
                .await,
        ),
        Action::Home { who } => {
            let event_id = format!("Ev{}", Uuid::new_v4().simple());
            (Kind::Home, driver.app_home_opened(who, &event_id).await)
        }
    };
    let mut m = lock(&model);
    m.events += 1;
    let answer = match result {
        Ok(answer) => answer,
        Err(e) => {
            let what = if e.is_timeout() {
                "timeout"
            } else {
                "transport"
            };
            *m.errors
                .entry(format!("{}: {what}", kind.label()))
                .or_default() += 1;
            m.channels[i].busy = false;
            return;
        }
    };
    m.latencies.entry(kind).or_default().push(answer.latency);
    if let Some(error) = unexpected(kind, &action, &answer) {
        *m.errors
            .entry(format!("{}: {error}", kind.label()))
            .or_default() += 1;
        m.channels[i].busy = false;
        return;
    }
    let Model {
        channels, expected, ..
    } = &mut *m;
    let channel = &mut channels[i];
    channel.busy = false;
    match action {
        Action::Start { text, starter } => {
            expected.run_messages += 1;
            channel.run = Some(Run {
                starter,
                with_pickup: !text.is_empty(),
                ..Run::default()
            });
        }
        Action::Order { who, text, .. } => {
            if let Some(run) = &mut channel.run {
                run.orders.insert(who, text);
            }
        }
        Action::Close { .. } => {
            if let Some(run) = channel.run.take() {
                let participants = run.orders.len() as i64;
                expected.summaries += 1;
                expected.runner_dms += 1;
                expected.participant_dms += participants - 1;
                if run.with_pickup {
                    expected.reminders += 1;
                }
            }
        }
        Action::Admin { .. } => {
            // A change by someone only Slack can vouch for is acked at once
            // and answered privately once `users.info` has said yes.
            if answer.text().starts_with(CHECKING) {
                expected.deferred_admin += 1;
            }
        }
        Action::Home { .. } => expected.homes += 1,
        Action::Stats | Action::Help => {}
    }
}

/// Why an answer is not what that request must get, if it is not.
fn unexpected(kind: Kind, action: &Action, answer: &Answer) -> Option<String> {
    if answer.status != 200 {
        return Some(format!("HTTP {}", answer.status));
    }
    let text = answer.text();
    let fine = match kind {
        Kind::Start => text.contains("Coffee run started"),
        Kind::Order | Kind::Edit | Kind::Close | Kind::Home => answer.body.is_null(),
        Kind::Admin => match action {
            Action::Admin {
                text: "status" | "help",
            } => !text.is_empty() && !text.starts_with(CHECKING),
            _ => !text.is_empty(),
        },
        Kind::Stats => text.contains("stats") || text.contains("No coffee run has finished"),
        Kind::Help => !text.is_empty(),
    };
    (!fine).then(|| {
        let shown: String = text.chars().take(60).collect();
        if shown.is_empty() {
            answer.body.to_string().chars().take(60).collect()
        } else {
            shown
        }
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn count(db: &PgPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(db).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let minutes: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| setting("SOAK_MINUTES", 5.0));
    let channels: usize = setting("SOAK_CHANNELS", 300);
    let rate: f64 = setting("SOAK_RATE", 20.0);
    let database_url = std::env::var("DATABASE_URL").context("DATABASE_URL must be set")?;
    let binary = match std::env::var_os("SOAK_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join("coffeebuddy-local"),
        None => sibling_binary("coffeebuddy-local")
            .context("no coffeebuddy-local next to this binary (set SOAK_BIN_DIR)")?,
    };

    // Slack: 100 ms a call, 1 % of Web API calls answered 500.
    let slack = SlackFake::start().await;
    slack.set_latency(Duration::from_millis(100));
    slack.fail_one_in(100, 500, 0x5eed_c0ffee);
    slack.set_workspace_admin(ADMIN, true);
    let env: Vec<(&str, String)> = vec![
        ("SERVICE_ENV", "test".to_owned()),
        ("SLACK_SIGNING_SECRET", SECRET.to_owned()),
        ("SLACK_BOT_TOKEN", "xoxb-soak".to_owned()),
        ("SLACK_API_BASE_URL", slack.base_url()),
        ("DATABASE_URL", database_url.clone()),
        ("DATABASE_POOL_MAX", "20".to_owned()),
        ("TICK_SECONDS", "10".to_owned()),
        ("CHANNEL_DEFAULT_REMINDER_MINUTES", "1".to_owned()),
        // The `listening` line (its port) and warnings; not a line per request.
        (
            "LOG_LEVEL",
            "warn,coffeebuddy_shared::runtime=info,coffeebuddy_shared::runtime::observe=warn"
                .to_owned(),
        ),
    ];
    let mut local = AppProcess::start(&binary, &env).await?;
    let driver = SlackDriver::new(&local.base, SECRET);
    let db = PgPool::connect(&database_url).await?;
    let model: Shared = Arc::new(Mutex::new(Model {
        channels: (0..channels).map(|_| Channel::default()).collect(),
        ..Model::default()
    }));
    println!(
        "soak: {minutes} min, {channels} channels, {rate} requests/s, Slack 100 ms a call with \
         1 % 500s; coffeebuddy-local pid {} at {}",
        local.pid(),
        local.base
    );

    // Steady traffic: one decision every 1/rate s, sent without waiting.
    let started = Instant::now();
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let mut rss = vec![(Duration::ZERO, local.rss_kib())];
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rng = Rng(0x00c0_ffee_beef_f00d);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut next_sample = Duration::from_secs(10);
    while started.elapsed() < duration {
        ticker.tick().await;
        let decided = {
            let mut m = lock(&model);
            (0..8).find_map(|_| {
                let i = rng.below(channels);
                decide(&mut m, &slack, &mut rng, i).map(|a| (i, a))
            })
        };
        if let Some((i, action)) = decided {
            in_flight.spawn(perform(
                Arc::clone(&model),
                driver.clone(),
                slack.clone(),
                i,
                action,
            ));
        }
        while in_flight.try_join_next().is_some() {}
        if started.elapsed() >= next_sample {
            rss.push((started.elapsed(), local.rss_kib()));
            next_sample += Duration::from_secs(10);
        }
    }
    while in_flight.join_next().await.is_some() {}
    let traffic_time = started.elapsed();
    rss.push((traffic_time, local.rss_kib()));

    // Settle: every effect done and every reminder of a closed run sent
    // (they fall due up to a minute after the run started, plus a tick).
    let settle_started = Instant::now();
    loop {
        let effects = count(
            &db,
            "SELECT count(*) FROM effects WHERE status IN ('pending', 'in_flight')",
        )
        .await?;
        let reminders = count(
            &db,
            "SELECT count(*) FROM reminders WHERE status = 'pending'",
        )
        .await?;
        let outbox = count(
            &db,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        )
        .await?;
        if effects == 0 && reminders == 0 && outbox == 0 {
            break;
        }
        if settle_started.elapsed() > Duration::from_secs(240) {
            println!(
                "not settled after 240 s: {effects} effects, {reminders} reminders, {outbox} events"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settle_time = settle_started.elapsed();
    let end_rss = local.rss_kib();
    let peak_rss = local.peak_rss_kib();

    // Report.
    // Every request has finished: take the model out of its lock.
    let m = std::mem::take(&mut *lock(&model));
    let total: usize = m.latencies.values().map(Vec::len).sum();
    let errors: usize = m.errors.values().sum();
    println!(
        "\ntraffic {:.0} s, settled {:.0} s later; {} requests answered, {} errors\n",
        traffic_time.as_secs_f64(),
        settle_time.as_secs_f64(),
        total,
        errors
    );
    println!("| request | count | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut all: Vec<Duration> = Vec::with_capacity(total);
    for (kind, latencies) in &m.latencies {
        let mut sorted = latencies.clone();
        sorted.sort();
        all.extend(&sorted);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            kind.label(),
            sorted.len(),
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 90.0)),
            ms(percentile(&sorted, 99.0)),
            ms(*sorted.last().unwrap_or(&Duration::ZERO)),
        );
    }
    all.sort();
    println!(
        "| **all** | {} | {} | {} | {} | {} |",
        all.len(),
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 90.0)),
        ms(percentile(&all, 99.0)),
        ms(*all.last().unwrap_or(&Duration::ZERO)),
    );
    println!(
        "\nerrors by kind (every one unexpected): {}",
        if m.errors.is_empty() {
            "none".to_owned()
        } else {
            format!("{:?}", m.errors)
        }
    );

    let done = |kind: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM effects WHERE kind = $1 AND status = 'done'",
            )
            .bind(kind)
            .fetch_one(&db)
            .await
        }
    };
    let e = &m.expected;
    let rows = [
        ("run messages", "post_run_message", e.run_messages),
        ("channel summaries", "post_summary", e.summaries),
        ("runner DMs", "dm_runner", e.runner_dms),
        ("participant DMs", "dm_participant", e.participant_dms),
        ("reminder DMs", "dm_reminder", e.reminders),
        ("App Home publishes", "publish_home", e.homes),
    ];
    let mut mismatched = 0;
    println!("\n| Slack effect | expected | done (database) |");
    println!("|---|---:|---:|");
    for (label, kind, expected) in rows {
        let got = done(kind).await?;
        if got != expected {
            mismatched += 1;
        }
        println!("| {label} | {expected} | {got} |");
    }
    let deferred = slack
        .calls()
        .iter()
        .filter(|c| c.method.starts_with("response:admin-"))
        .count() as i64;
    println!(
        "| deferred /coffee-admin answers (response URL) | {} | {deferred} |",
        e.deferred_admin
    );
    if deferred != e.deferred_admin {
        mismatched += 1;
    }
    let audit = audit_posts(&db, &slack).await?;
    let calls = slack.calls();
    let faulted = calls.iter().filter(|c| c.fault.is_some()).count();
    println!(
        "\nSlack: {} calls, {} answered 500 ({} of them after doing the work)",
        calls.len(),
        faulted,
        slack.done_then_failed()
    );
    println!("{audit}");
    let rss_series: Vec<String> = rss
        .iter()
        .map(|(t, kib)| format!("{:.0}s {}", t.as_secs_f64(), mib(*kib)))
        .collect();
    println!(
        "RSS MiB: start {}, end of traffic {}, after settling {}, peak {}",
        mib(rss.get(1).and_then(|(_, k)| *k)),
        mib(rss.last().and_then(|(_, k)| *k)),
        mib(end_rss),
        mib(peak_rss)
    );
    println!("RSS every 10 s: {}", rss_series.join(", "));
    let refusals = slack.refusals().len();
    println!("Slack refusals (limits, arguments): {refusals}");
    let running = local.is_running();
    local.terminate(Duration::from_secs(30))?;
    db.close().await;
    if errors > 0 || mismatched > 0 || !audit.is_exact() || refusals > 0 || !running {
        bail!(
            "soak failed: {errors} unexpected errors, {mismatched} effect counts off, audit exact: {}, refusals {refusals}, process running: {running}",
            audit.is_exact()
        );
    }
    println!("\nsoak passed: every request answered as expected, every effect done once");
    Ok(())
}
