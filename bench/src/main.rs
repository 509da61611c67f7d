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

// The benchmark's output is its report.
#![allow(clippy::print_stdout)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use coffeebuddy_test_support::slack::signed_form;
use coffeebuddy_test_support::slack_fake::SlackFake;
use serde_json::json;

const SECRET: &str = "bench-signing-secret";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

struct Target {
    base: String,
    http: reqwest::Client,
}

impl Target {
    async fn coffee(&self, channel: &str, user: &str) -> anyhow::Result<Duration> {
        let body = serde_urlencoded::to_string([
            ("team_id", "T0BENCH"),
            ("channel_id", channel),
            ("user_id", user),
            ("command", "/coffee"),
            ("text", "in 30m Blue Bottle"),
            ("response_url", "http://127.0.0.1:9/unused"),
            ("trigger_id", "bench"),
        ])?;
        self.timed("/slack/commands", body).await
    }

    async fn order(&self, run_id: &str, user: &str) -> anyhow::Result<Duration> {
        let payload = json!({
            "type": "view_submission",
            "team": { "id": "T0BENCH" },
            "user": { "id": user },
            "view": {
                "id": "V0BENCH",
                "callback_id": "order_submit",
                "private_metadata": run_id,
                "state": { "values": { "order_block": { "order_text": { "type": "plain_text_input", "value": "flat white" } } } }
            }
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())])?;
        self.timed("/slack/interactions", body).await
    }

    async fn timed(&self, path: &str, body: String) -> anyhow::Result<Duration> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let started = Instant::now();
        let response = signed_form(
            &self.http,
            &format!("{}{path}", self.base),
            SECRET,
            now,
            &body,
        )
        .send()
        .await?;
        let status = response.status();
        response.bytes().await?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            bail!("{path} answered {status}");
        }
        Ok(elapsed)
    }
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
    let exe = std::env::current_exe()?.with_file_name("coffeebuddy-local");
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = start_local(&slack, port)?;
    let target = Target {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
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
    // The relay may still be posting the run messages of the rounds above.
    let channel = format!("C0ORD{stamp}");
    let mut run_id = None;
    for _ in 0..600 {
        run_id = slack
            .calls_to("chat.postMessage")
            .iter()
            .rev()
            .find(|c| c.body["channel"] == channel.as_str())
            .and_then(|c| {
                c.body["blocks"]
                    .as_array()?
                    .iter()
                    .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
                    .find(|e| e["action_id"] == "order_open")
                    .and_then(|e| e["value"].as_str().map(str::to_owned))
            });
        if run_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run_id = run_id.context("no run message for the order benchmark within 60 s")?;
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
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    Ok(())
}
