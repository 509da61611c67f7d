//! `coffeebuddy-bench`: how fast CoffeeBuddy acknowledges Slack, and how much
//! memory it needs doing so.
//!
//! Starts the Slack stand-in (`coffeebuddy-slack-standin`, through the
//! tests' recording fake) and the real `coffeebuddy-local` binary (built
//! by `scripts/bench` in release mode, on a real Postgres), then sends signed
//! `/coffee` commands — each one starts a run in its own channel, the full
//! path: signature check, parse, one transaction with the run and its
//! outbox event, ack — and order submissions, at several concurrency levels.
//! Prints latency distributions (p50/p90/p99/max) and the server's peak
//! resident memory. Results are distributions, never pass/fail: DESIGN's
//! goal is p99 < 50 ms for the ack (Slack's hard limit is 3 s).
//!
//! Then, per function binary, what a scale-from-zero start costs: the time
//! from exec to the first 200 on `/health/ready` (database connected and
//! already migrated, by the `local` run above), over `COLD_START_RUNS`
//! starts (default 20, after one unmeasured start that warms the page
//! cache), the resident memory once idle, and the binary's size on disk.
//! `coffeebuddy-bench cold-start` prints only that table, `coffeebuddy-bench
//! acks` everything but it;
//! `BENCH_BIN_DIR` measures the binaries (`coffeebuddy-local` and the
//! functions) of another build, e.g. an older release, for a before/after
//! comparison.

// The benchmark's output is its report.
#![allow(clippy::print_stdout)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use coffeebuddy_shared::runtime::START_SWEEP_DELAY;
use coffeebuddy_shared::slack::blocks;
use coffeebuddy_test_support::driver::{Answer, SlackDriver, button_value};
use coffeebuddy_test_support::measure::percentile;
use coffeebuddy_test_support::ory::{JwksFake, TestKey};
use coffeebuddy_test_support::process::proc_status_kib;
use coffeebuddy_test_support::slack_fake::SlackFake;
use uuid::Uuid;

const SECRET: &str = "bench-signing-secret";

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A `/proc/<pid>/status` memory line (`VmHWM`, `VmRSS`) in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    proc_status_kib(pid, field).map(|kib| kib as f64 / 1024.0)
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmHWM:")
}

/// The five Knative functions, by binary name.
const FUNCTIONS: [&str; 5] = [
    "coffeebuddy-slash-command",
    "coffeebuddy-interaction",
    "coffeebuddy-close-run",
    "coffeebuddy-reminder",
    "coffeebuddy-admin",
];

/// One `GET /health/ready` over a fresh connection; whether it answered 200.
/// Connecting fails at once (refused) until the process has bound its port;
/// after that the request waits in the backlog until it is served.
fn ready_once(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if stream
        .write_all(b"GET /health/ready HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Cold starts of one binary: exec → first 200 on `/health/ready`, each,
/// and the resident memory of the last start once idle.
fn cold_starts(
    exe: &Path,
    env: &[(&'static str, String)],
    runs: usize,
) -> anyhow::Result<(Vec<Duration>, Option<f64>)> {
    let mut times = Vec::with_capacity(runs);
    let mut idle_rss = None;
    // The first start warms the page cache and is not counted.
    for run in 0..=runs {
        let port = free_port()?;
        let started = Instant::now();
        let mut child = Command::new(exe)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let deadline = started + Duration::from_secs(30);
        while !ready_once(port) {
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not become ready", exe.display());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let elapsed = started.elapsed();
        if run > 0 {
            times.push(elapsed);
        }
        if run == runs {
            // Idle: what a replica holds between requests, once the work
            // deferred past the first requests (the first sweeps, the TLS
            // roots) is done.
            std::thread::sleep(START_SWEEP_DELAY + Duration::from_secs(1));
            idle_rss = status_mib(child.id(), "VmRSS:");
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    times.sort();
    Ok((times, idle_rss))
}

/// Prints the per-function cold start table.
async fn cold_start_table(dir: &Path, slack: &SlackFake) -> anyhow::Result<()> {
    let runs: usize = std::env::var("COLD_START_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20);
    // The admin function needs Ory: a JWKS it can reach, as in a cluster.
    let jwks = JwksFake::start(&[TestKey::Rsa1]).await;
    let mut env: Vec<(&'static str, String)> = vec![
        ("SERVICE_ENV", "test".to_owned()),
        ("SLACK_SIGNING_SECRET", SECRET.to_owned()),
        ("SLACK_BOT_TOKEN", "xoxb-bench".to_owned()),
        ("SLACK_API_BASE_URL", slack.base_url()),
        ("DATABASE_URL", std::env::var("DATABASE_URL")?),
        ("LOG_LEVEL", "info".to_owned()),
    ];
    env.extend(jwks.vars());
    println!("\n| function | cold start p50 ms | p90 ms | runs | idle RSS MiB | binary MiB |");
    println!("|---|---|---|---|---|---|");
    for name in FUNCTIONS {
        let exe = dir.join(name);
        let size = std::fs::metadata(&exe)
            .with_context(|| format!("no binary at {}", exe.display()))?
            .len();
        let env = env.clone();
        let (times, rss) =
            tokio::task::spawn_blocking(move || cold_starts(&exe, &env, runs)).await??;
        println!(
            "| {name} | {} | {} | {runs} | {} | {:.1} |",
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 90.0)),
            rss.map_or_else(|| "?".to_owned(), |r| format!("{r:.1}")),
            size as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}

/// Where the function binaries are: `BENCH_BIN_DIR`, else next to this one.
fn bin_dir() -> anyhow::Result<PathBuf> {
    match std::env::var_os("BENCH_BIN_DIR") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("the bench binary has no directory")?
            .to_path_buf()),
    }
}

/// The benchmark's requests: the tests' Slack driver, timing each ack.
struct Target {
    base: String,
    http: reqwest::Client,
    driver: SlackDriver,
}

impl Target {
    async fn coffee(&self, channel: &str, user: &str) -> anyhow::Result<Duration> {
        let answer = self
            .driver
            .coffee(
                channel,
                user,
                "in 30m Blue Bottle",
                "http://127.0.0.1:9/unused",
            )
            .await?;
        acked("/slack/commands", &answer)
    }

    async fn order(&self, run_id: &str, user: &str) -> anyhow::Result<Duration> {
        let answer = self
            .driver
            .submit_order(user, Uuid::parse_str(run_id)?, "flat white", &[])
            .await?;
        acked("/slack/interactions", &answer)
    }

    async fn close(&self, channel: &str, user: &str, run_id: &str) -> anyhow::Result<Duration> {
        let answer = self
            .driver
            .click(
                channel,
                user,
                blocks::ACTION_CLOSE,
                Uuid::parse_str(run_id)?,
                "http://127.0.0.1:9/unused",
            )
            .await?;
        acked("/slack/interactions", &answer)
    }
}

/// The ack's latency, if it was a success.
fn acked(path: &str, answer: &Answer) -> anyhow::Result<Duration> {
    if !(200..300).contains(&answer.status) {
        bail!("{path} answered {}", answer.status);
    }
    Ok(answer.latency)
}

async fn round<F, Fut>(name: &str, total: usize, concurrency: usize, make: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(total);
    for batch in (0..total).collect::<Vec<_>>().chunks(concurrency) {
        let results = futures::future::join_all(batch.iter().map(|&i| make(i))).await;
        for r in results {
            latencies.push(r?);
        }
    }
    let wall = started.elapsed();
    latencies.sort();
    println!(
        "| {name} | {concurrency} | {total} | {} | {} | {} | {} | {:.0} |",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        total as f64 / wall.as_secs_f64()
    );
    Ok(())
}

fn start_local(slack: &SlackFake, port: u16) -> anyhow::Result<Child> {
    let exe = bin_dir()?.join("coffeebuddy-local");
    Command::new(&exe)
        .env("PORT", port.to_string())
        .env("SERVICE_ENV", "dev")
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", "xoxb-bench")
        .env("SLACK_API_BASE_URL", slack.base_url())
        .env("LOG_LEVEL", "warn")
        .env("DATABASE_POOL_MAX", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let slack = SlackFake::start().await;
    let only = std::env::args().nth(1);
    let cold_start_only = only.as_deref() == Some("cold-start");
    let acks_only = only.as_deref() == Some("acks");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = start_local(&slack, port)?;
    let target = Target {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        driver: SlackDriver::new(&format!("http://127.0.0.1:{port}"), SECRET),
    };
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = target
            .http
            .get(format!("{}/health/ready", target.base))
            .send()
            .await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ready {
        let _ = child.kill();
        bail!("coffeebuddy-local did not become ready");
    }
    if cold_start_only {
        // `local` has migrated the database; the functions only check it.
        stop(child);
        return cold_start_table(&bin_dir()?, &slack).await;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();

    println!("| request | concurrency | requests | p50 ms | p90 ms | p99 ms | max ms | req/s |");
    println!("|---|---|---|---|---|---|---|---|");
    // Warm-up: connections, prepared statements.
    for i in 0..50 {
        target
            .coffee(&format!("C0WARM{stamp}X{i}"), "U0BENCH")
            .await?;
    }
    for concurrency in [1, 8, 32] {
        let prefix = format!("C0B{stamp}C{concurrency}X");
        round("`/coffee` (starts a run)", 1000, concurrency, |i| {
            let channel = format!("{prefix}{i}");
            let target = &target;
            async move { target.coffee(&channel, "U0BENCH").await }
        })
        .await?;
    }
    // Orders into one open run: the one-row-per-person upsert under contention.
    target.coffee(&format!("C0ORD{stamp}"), "U0BENCH").await?;
    // Its run message queues behind the 3,050 of the rounds above (a
    // loaded machine posts them in about a minute).
    let channel = format!("C0ORD{stamp}");
    let run_id = posted_run_id(&slack, &channel, Duration::from_secs(180)).await?;
    for concurrency in [1, 8] {
        round("order submission (same run)", 500, concurrency, |i| {
            let user = format!("U0C{concurrency}X{i}");
            let target = &target;
            let run_id = run_id.clone();
            async move { target.order(&run_id, &user).await }
        })
        .await?;
    }
    if let Some(rss) = peak_rss_mib(child.id()) {
        println!("\nPeak resident memory of coffeebuddy-local: {rss:.1} MiB");
    }

    println!(
        "\n| close | Slack per call | channels × people | slowest ack ms | a run's last DM after the click: p50 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|");
    let scenarios = [
        ("one big run", Duration::from_millis(100), 1, 50),
        ("one run", Duration::from_millis(400), 1, 6),
        ("eight runs at once", Duration::from_millis(400), 8, 6),
    ];
    for (n, (name, latency, channels, people)) in scenarios.into_iter().enumerate() {
        let prefix = format!("C0CL{stamp}S{n}X");
        close_scenario(&target, &slack, name, &prefix, latency, channels, people).await?;
    }
    if acks_only {
        stop(child);
        return Ok(());
    }
    stop(child);
    cold_start_table(&bin_dir()?, &slack).await
}

/// The run id on the **Order** button of the newest run message posted to
/// `channel`, waiting up to `wait` for it.
async fn posted_run_id(slack: &SlackFake, channel: &str, wait: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + wait;
    loop {
        let run_id = slack
            .calls_to("chat.postMessage")
            .iter()
            .rev()
            .find(|c| c.body["channel"] == channel)
            .and_then(|c| button_value(&c.body, blocks::ACTION_ORDER));
        if let Some(run_id) = run_id {
            return Ok(run_id);
        }
        if Instant::now() > deadline {
            bail!("no run message in {channel} within {wait:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `channels` runs of `people` orders each, closed at the same moment while
/// Slack answers every call after `latency`: how long after the click each
/// run's last DM (every participant's, runner included) reached Slack, and
/// when the last of all the runs' summaries and DMs did.
async fn close_scenario(
    target: &Target,
    slack: &SlackFake,
    name: &str,
    prefix: &str,
    latency: Duration,
    channels: usize,
    people: usize,
) -> anyhow::Result<()> {
    let mut runs = Vec::with_capacity(channels);
    for c in 0..channels {
        let channel = format!("{prefix}{c}");
        let starter = format!("U{prefix}{c}P0");
        target.coffee(&channel, &starter).await?;
        let run_id = posted_run_id(slack, &channel, Duration::from_secs(30)).await?;
        let users: Vec<String> = (0..people).map(|p| format!("U{prefix}{c}P{p}")).collect();
        for user in &users {
            target.order(&run_id, user).await?;
        }
        runs.push((channel, starter, run_id, users));
    }
    // Let the run-message refreshes of the orders settle before timing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    slack.set_latency(latency);
    let clicked = Instant::now();
    let acks = futures::future::join_all(
        runs.iter()
            .map(|(channel, starter, run_id, _)| target.close(channel, starter, run_id)),
    )
    .await;
    let mut ack = Duration::ZERO;
    for a in acks {
        ack = ack.max(a?);
    }
    let expected: usize = runs.iter().map(|(_, _, _, users)| users.len()).sum();
    let deadline = Instant::now() + Duration::from_secs(120);
    let dms = loop {
        let dms: Vec<(String, Instant)> = slack
            .calls_to("chat.postMessage")
            .into_iter()
            .filter(|c| c.at >= clicked)
            .filter_map(|c| Some((c.body["channel"].as_str()?.to_owned(), c.at)))
            .filter(|(to, _)| runs.iter().any(|(_, _, _, users)| users.contains(to)))
            .collect();
        if dms.len() >= expected {
            break dms;
        }
        if Instant::now() > deadline {
            slack.set_latency(Duration::ZERO);
            bail!("{name}: {} of {expected} DMs within 120 s", dms.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    slack.set_latency(Duration::ZERO);
    let mut last_dm: Vec<Duration> = runs
        .iter()
        .map(|(_, _, _, users)| {
            dms.iter()
                .filter(|(to, _)| users.contains(to))
                .map(|(_, at)| at.duration_since(clicked))
                .max()
                .unwrap_or_default()
        })
        .collect();
    last_dm.sort();
    let all_done = last_dm.last().copied().unwrap_or_default();
    println!(
        "| {name} | {} ms | {channels} × {people} | {} | {} | {} |",
        latency.as_millis(),
        ms(ack),
        ms(percentile(&last_dm, 50.0)),
        ms(all_done),
    );
    Ok(())
}

/// SIGTERM, then wait: the server drains and exits.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
