//! `coffeebuddy-demo`: a whole coffee run, with no Slack workspace needed.
//!
//! It starts the Slack stand-in (`coffeebuddy-slack-standin`, the model of
//! Slack the playground and the end-to-end tests' recording fake share),
//! starts the real `coffeebuddy-local` binary pointed at it, plays a
//! scripted run over signed HTTP requests exactly as Slack would send them,
//! and prints the conversation as the people in the channel would read it.
//! `scripts/demo` builds everything and provides the database.

// The demo's whole purpose is to print a transcript for a person to read.
#![allow(clippy::print_stdout)]

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use coffeebuddy_shared::slack::blocks;
use coffeebuddy_test_support::driver::{SlackDriver, button_value};
use coffeebuddy_test_support::slack_fake::SlackFake;
use serde_json::Value;
use uuid::Uuid;

const SECRET: &str = "demo-signing-secret";
const CHANNEL: &str = "C0DEMO";
const PEOPLE: [(&str, &str); 4] = [
    ("U0ALICE", "Alice"),
    ("U0BOB", "Bob"),
    ("U0CAROL", "Carol"),
    ("U0DAVE", "Dave"),
];

fn name(id: &str) -> &str {
    PEOPLE.iter().find(|(i, _)| *i == id).map_or(id, |(_, n)| n)
}

/// Turns Slack mrkdwn into what a person sees: names for mentions, escapes undone.
fn readable(text: &str) -> String {
    let mut out = text.to_owned();
    for (id, n) in PEOPLE {
        out = out.replace(&format!("<@{id}>"), &format!("@{n}"));
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The visible text of a message: its blocks' texts, or its fallback text.
fn visible(message: &Value) -> String {
    let mut lines = Vec::new();
    if let Some(blocks) = message["blocks"].as_array() {
        for block in blocks {
            if let Some(t) = block["text"]["text"].as_str() {
                lines.push(t.to_owned());
            }
            for field in block["fields"].as_array().into_iter().flatten() {
                if let Some(t) = field["text"].as_str() {
                    lines.push(t.to_owned());
                }
            }
            for el in block["elements"].as_array().into_iter().flatten() {
                match el["type"].as_str() {
                    Some("button") => lines.push(format!(
                        "[ {} ]",
                        el["text"]["text"].as_str().unwrap_or("?")
                    )),
                    _ => {
                        if let Some(t) = el["text"].as_str() {
                            lines.push(t.to_owned());
                        }
                    }
                }
            }
        }
    }
    if lines.is_empty() {
        lines.push(message["text"].as_str().unwrap_or_default().to_owned());
    }
    readable(&lines.join("\n"))
}

fn say(who: &str, what: &str) {
    println!("\n{who}:");
    for line in what.lines() {
        println!("    {line}");
    }
}

struct Demo {
    base: String,
    slack: SlackFake,
    http: reqwest::Client,
    driver: SlackDriver,
}

impl Demo {
    async fn coffee(&self, user: &str, text: &str) -> anyhow::Result<()> {
        say(name(user), &format!("/coffee {text}"));
        let answer = self
            .driver
            .coffee(CHANNEL, user, text, &self.slack.response_url("coffee"))
            .await
            .context("POST /slack/commands")?;
        say(
            &format!("CoffeeBuddy (only visible to {})", name(user)),
            &readable(answer.text()),
        );
        Ok(())
    }

    async fn click(
        &self,
        user: &str,
        action_id: &str,
        label: &str,
        run_id: &str,
    ) -> anyhow::Result<()> {
        say(name(user), &format!("(clicks [ {label} ])"));
        let reply_to = format!("{action_id}-{user}");
        let before = self.slack.calls_to(&format!("response:{reply_to}")).len();
        self.driver
            .click(
                CHANNEL,
                user,
                action_id,
                Uuid::parse_str(run_id)?,
                &self.slack.response_url(&reply_to),
            )
            .await
            .context("POST /slack/interactions")?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for reply in self
            .slack
            .calls_to(&format!("response:{reply_to}"))
            .iter()
            .skip(before)
        {
            say(
                &format!("CoffeeBuddy (only visible to {})", name(user)),
                &readable(reply.body["text"].as_str().unwrap_or_default()),
            );
        }
        Ok(())
    }

    async fn order(
        &self,
        user: &str,
        run_id: &str,
        text: &str,
        options: &[&str],
    ) -> anyhow::Result<()> {
        let ticked: String = options
            .iter()
            .map(|o| match *o {
                blocks::OPTION_SAVE_USUAL => "  [x] Save as my usual",
                blocks::OPTION_RUNNER_AGAIN => "  [x] Happy to be the runner again",
                _ => "  [x] ?",
            })
            .collect();
        say(
            name(user),
            &format!("(types in the order form) {text}{ticked}"),
        );
        let answer = self
            .driver
            .submit_order(user, Uuid::parse_str(run_id)?, text, options)
            .await
            .context("POST /slack/interactions")?;
        if let Some(error) = answer.body["errors"][blocks::ORDER_BLOCK].as_str() {
            say("Order form", &format!("(refused) {error}"));
        }
        Ok(())
    }

    /// Prints every Slack call the bot made since `from`, as people see them.
    fn show_bot_messages(&self, from: usize) -> usize {
        let calls = self.slack.calls();
        for call in calls.iter().skip(from) {
            let to = call.body["channel"].as_str().unwrap_or_default();
            match call.method.as_str() {
                "chat.postMessage" if to == CHANNEL => {
                    say("CoffeeBuddy in #coffee", &visible(&call.body))
                }
                "chat.postMessage" => say(
                    &format!("CoffeeBuddy (DM to {})", name(to)),
                    &visible(&call.body),
                ),
                "chat.update" => say(
                    "CoffeeBuddy (updates its message in #coffee)",
                    &visible(&call.body),
                ),
                "views.open" => say("CoffeeBuddy", "(opens the order form)"),
                _ => {}
            }
        }
        calls.len()
    }

    async fn settle(&self) {
        // Events flow asynchronously; give the bot a moment to act on them.
        let mut last = usize::MAX;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let n = self.slack.calls().len();
            if n == last {
                return;
            }
            last = n;
        }
    }

    fn run_id(&self) -> anyhow::Result<String> {
        self.slack
            .calls_to("chat.postMessage")
            .iter()
            .rev()
            .find_map(|c| button_value(&c.body, blocks::ACTION_ORDER))
            .context("the bot never posted a run message")
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_local(slack: &SlackFake, port: u16) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?.with_file_name("coffeebuddy-local");
    if !exe.exists() {
        bail!(
            "{} not found: build the workspace first (scripts/demo does)",
            exe.display()
        );
    }
    Command::new(exe)
        .env("PORT", port.to_string())
        .env("SERVICE_ENV", "dev")
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", "xoxb-demo")
        .env("SLACK_API_BASE_URL", slack.base_url())
        .env(
            "LOG_LEVEL",
            std::env::var("LOG_LEVEL").unwrap_or_else(|_| "warn".to_owned()),
        )
        .env("LOG_FORMAT", "pretty")
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start coffeebuddy-local")
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("coffeebuddy-local did not become ready within 30 s")
}

async fn play(demo: &Demo) -> anyhow::Result<()> {
    println!(
        "=== A coffee run in #coffee (Slack stand-in; every request signed as Slack signs it) ==="
    );
    let mut seen = 0;
    demo.coffee("U0ALICE", "in 15m Blue Bottle").await?;
    demo.settle().await;
    seen = demo.show_bot_messages(seen);
    let run_id = demo.run_id()?;

    demo.click("U0BOB", blocks::ACTION_ORDER, "Order", &run_id)
        .await?;
    demo.settle().await;
    seen = demo.show_bot_messages(seen);
    demo.order(
        "U0BOB",
        &run_id,
        "flat white, oat milk",
        &[blocks::OPTION_SAVE_USUAL],
    )
    .await?;
    demo.order("U0ALICE", &run_id, "double espresso", &[])
        .await?;
    demo.order("U0CAROL", &run_id, "<!channel> chai latte & a cookie", &[])
        .await?;
    demo.order("U0DAVE", &run_id, &"very long order ".repeat(12), &[])
        .await?;
    demo.order("U0DAVE", &run_id, "cortado", &[blocks::OPTION_RUNNER_AGAIN])
        .await?;
    demo.order("U0BOB", &run_id, "flat white, oat milk, extra hot", &[])
        .await?;
    demo.settle().await;
    seen = demo.show_bot_messages(seen);

    demo.click("U0CAROL", blocks::ACTION_CLOSE, "Close run", &run_id)
        .await?;
    demo.click("U0ALICE", blocks::ACTION_CLOSE, "Close run", &run_id)
        .await?;
    demo.settle().await;
    demo.show_bot_messages(seen);
    println!("\n=== End of the run ===");
    let refused = demo.slack.refusals();
    if let Some(first) = refused.first() {
        bail!(
            "Slack would have refused {} call(s), e.g. {} {}",
            refused.len(),
            first.method,
            first.body
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let slack = SlackFake::start().await;
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            println!("demo failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut child = match start_local(&slack, port) {
        Ok(c) => c,
        Err(e) => {
            println!("demo failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let demo = Demo {
        base: format!("http://127.0.0.1:{port}"),
        slack,
        http: reqwest::Client::new(),
        driver: SlackDriver::new(&format!("http://127.0.0.1:{port}"), SECRET),
    };
    let outcome = match wait_ready(&demo.http, &demo.base).await {
        Ok(()) => play(&demo).await,
        Err(e) => Err(e),
    };
    // Stop the server the way Knative would, and let it drain.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
