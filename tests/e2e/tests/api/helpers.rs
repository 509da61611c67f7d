//! Helpers for this test binary; cross-crate ones live in `coffeebuddy-test-support`.

use std::sync::Arc;
use std::time::Duration;

use coffeebuddy_shared::app::worker::{EffectWorker, WorkerPolicy};
use coffeebuddy_shared::clock::{ManualClock, SystemClock};
use coffeebuddy_shared::runtime::{self, Context};
use coffeebuddy_shared::slack::blocks;
use coffeebuddy_shared::slack::client::RetryPolicy;
use coffeebuddy_test_support::driver;
use coffeebuddy_test_support::slack::signed_form;
use coffeebuddy_test_support::slack_fake::SlackFake;
use coffeebuddy_test_support::{SIGNING_SECRET, TestServer, database_url, spawn};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// Spawns the all-in-one `local` service exactly as `runtime::run` builds it,
/// on `pool`, with test settings (plus `extra` variables).
pub(crate) async fn spawn_local(
    pool: PgPool,
    database_url: &str,
    extra: &[(&str, &str)],
) -> (TestServer, Context) {
    let settings = Arc::new(coffeebuddy_test_support::settings(database_url, extra));
    let ctx = Context::new(settings, pool, Arc::new(SystemClock)).expect("context");
    let service = coffeebuddy_local::service(ctx.clone()).expect("local service builds");
    let server = spawn(runtime::assemble(&ctx, service)).await;
    (server, ctx)
}

/// A running `local` service wired to a Slack fake, with a client that
/// speaks to it as Slack does (signed slash commands and interactions).
pub(crate) struct CoffeeApp {
    pub(crate) server: TestServer,
    pub(crate) ctx: Context,
    pub(crate) slack: SlackFake,
    client: reqwest::Client,
    relay: AbortOnDrop,
    worker: AbortOnDrop,
}

/// The effect worker's pace in tests: short waits, a 2 s call timeout (so
/// "answered after the timeout" takes 2 s, not 10) and a 4 s lease.
pub(crate) fn test_worker_policy() -> WorkerPolicy {
    WorkerPolicy {
        lease: Duration::from_secs(4),
        concurrency: 16,
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        in_doubt_wait: Duration::from_millis(500),
        call_timeout: Duration::from_secs(2),
        idle_poll: Duration::from_secs(1),
    }
}

/// Stops a background task when the test's app goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How `/coffee-admin` acks a change it must first check with Slack.
pub(crate) const ADMIN_CHECKING: &str = "Checking that you may change CoffeeBuddy here";

impl CoffeeApp {
    /// Starts `local` on `pool` with a fresh Slack fake.
    pub(crate) async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, SlackFake::start().await, &[]).await
    }

    /// Starts `local` on `pool` against an existing Slack fake (to restart
    /// "the same deployment"), with extra settings.
    /// Use the pool `#[sqlx::test]` hands the test: sqlx closes it before
    /// dropping the test database (an unclosed pool makes Postgres wait 5 s).
    pub(crate) async fn start_with(pool: PgPool, slack: SlackFake, extra: &[(&str, &str)]) -> Self {
        Self::start_customized(pool, slack, extra, |ctx| ctx).await
    }

    /// Like [`start_with`](Self::start_with), on `clock` instead of the
    /// system clock (start it near the real time: Slack request signatures
    /// are checked against it).
    pub(crate) async fn start_with_clock(
        pool: PgPool,
        slack: SlackFake,
        extra: &[(&str, &str)],
        clock: ManualClock,
    ) -> Self {
        Self::start_customized(pool, slack, extra, |ctx| Context {
            clock: Arc::new(clock),
            ..ctx
        })
        .await
    }

    /// Like [`start_with`](Self::start_with), letting the test adjust the
    /// context (e.g. a Kafka sink with a short delivery timeout).
    pub(crate) async fn start_customized(
        pool: PgPool,
        slack: SlackFake,
        extra: &[(&str, &str)],
        customize: impl FnOnce(Context) -> Context,
    ) -> Self {
        let database_url = database_url(&pool.connect_options());
        let base_url = slack.base_url();
        let mut vars: Vec<(&str, &str)> = vec![("SLACK_API_BASE_URL", base_url.as_str())];
        vars.extend_from_slice(extra);
        let settings = Arc::new(coffeebuddy_test_support::settings(&database_url, &vars));
        let ctx = Context::new(settings, pool, Arc::new(SystemClock)).expect("context");
        let ctx = Context {
            slack: ctx.slack.clone().with_retry_policy(RetryPolicy {
                max_attempts: 2,
                base_backoff: Duration::from_millis(10),
                max_retry_after: Duration::from_secs(2),
                timeout: Duration::from_secs(5),
            }),
            ..ctx
        };
        let ctx = customize(ctx);
        // The worker on the test's clock and Slack client, at a test pace.
        let effects = EffectWorker::with_policy(
            ctx.db.clone(),
            &ctx.slack,
            Arc::clone(&ctx.clock),
            &ctx.event_source(),
            test_worker_policy(),
        );
        let ctx = Context { effects, ..ctx };
        let service = coffeebuddy_local::service(ctx.clone()).expect("local service builds");
        let server = spawn(runtime::assemble(&ctx, service)).await;
        let relay = AbortOnDrop(ctx.outbox.spawn_relay(Duration::ZERO));
        let worker = AbortOnDrop(ctx.effects.spawn(Duration::ZERO));
        Self {
            server,
            ctx,
            slack,
            client: reqwest::Client::new(),
            relay,
            worker,
        }
    }

    /// Waits until every Slack effect written so far is settled (none
    /// pending or in flight), moving a test clock on is the caller's job.
    pub(crate) async fn settle_effects(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM effects WHERE status IN ('pending', 'in_flight')",
            )
            .fetch_one(&self.ctx.db)
            .await
            .unwrap();
            if open == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{open} Slack effect(s) never settled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asks for `/health/ready` until its body satisfies `done` (checks
    /// that run in the background follow their dependency within a probe
    /// or two); that answer's HTTP status and body.
    pub(crate) async fn readiness_until(
        &self,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> (u16, Value) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let response = reqwest::get(self.server.url("/health/ready"))
                .await
                .unwrap();
            let status = response.status().as_u16();
            let ready: Value = response.json().await.unwrap();
            if done(&ready) {
                return (status, ready);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "readiness never showed {what}: {ready}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (draining requests) and the relay, as a pod stop would.
    pub(crate) async fn stop(self) -> SlackFake {
        let CoffeeApp {
            server,
            slack,
            relay,
            worker,
            ..
        } = self;
        drop(relay);
        drop(worker);
        server.shutdown().await.expect("clean shutdown");
        slack
    }

    fn signed(&self, path: &str, body: &str) -> reqwest::RequestBuilder {
        // Signed at "now" as the app sees it, so tests that move its clock
        // still send fresh requests.
        let now = self.ctx.clock.now().timestamp();
        signed_form(
            &self.client,
            &self.server.url(path),
            SIGNING_SECRET,
            now,
            body,
        )
    }

    /// `/coffee <text>` typed by `user` in `channel`; returns Slack's view of
    /// the answer (status, JSON body).
    pub(crate) async fn coffee(&self, channel: &str, user: &str, text: &str) -> (u16, Value) {
        self.coffee_with_headers(channel, user, text, &[]).await
    }

    /// [`coffee`](Self::coffee) with extra HTTP headers, as Kong adds them
    /// (`traceparent`, `X-Correlation-ID`…).
    pub(crate) async fn coffee_with_headers(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let body = driver::command_form(
            "/coffee",
            channel,
            user,
            text,
            &self.slack.response_url(&format!("cmd-{user}")),
        );
        let mut request = self.signed("/slack/commands", &body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The form Slack posts for `/coffee-admin <text>` by `user` in `channel`.
    fn admin_body(&self, channel: &str, user: &str, text: &str) -> String {
        driver::command_form(
            "/coffee-admin",
            channel,
            user,
            text,
            &self.slack.response_url(&format!("admin-{user}")),
        )
    }

    /// A PingSource tick delivered to `local`'s `POST /`.
    pub(crate) async fn tick(&self) {
        let response = coffeebuddy_test_support::events::post_binary(
            &self.client,
            &self.server.url("/"),
            &coffeebuddy_local::ping_event(),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 202);
    }

    /// `/coffee-admin <text>` typed by `user` in `channel`; returns the
    /// ephemeral answer's text.
    pub(crate) async fn admin(&self, channel: &str, user: &str, text: &str) -> String {
        let body = self.admin_body(channel, user, text);
        let answered_before = self.slack.calls_to(&format!("response:admin-{user}")).len();
        let response = self.signed("/slack/admin", &body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["response_type"], "ephemeral", "{answer}");
        let text = answer["text"].as_str().unwrap_or_default().to_owned();
        if !text.starts_with(ADMIN_CHECKING) {
            return text;
        }
        // Only Slack can say whether this person is a workspace admin: the
        // command was acked at once and is answered privately once Slack
        // has told us (DESIGN §5).
        let calls = self
            .slack
            .wait_for_calls(
                &format!("response:admin-{user}"),
                answered_before + 1,
                Duration::from_secs(10),
            )
            .await;
        let later = &calls[answered_before];
        assert_eq!(later.body["response_type"], "ephemeral", "{}", later.body);
        later.body["text"].as_str().unwrap_or_default().to_owned()
    }

    /// `/coffee-admin <text>` typed by `user`, returning the immediate
    /// answer only (status, text) without waiting for a deferred one.
    pub(crate) async fn admin_ack(&self, channel: &str, user: &str, text: &str) -> String {
        let body = self.admin_body(channel, user, text);
        let response = self.signed("/slack/admin", &body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        answer["text"].as_str().unwrap_or_default().to_owned()
    }

    async fn interact(&self, payload: Value) -> reqwest::Response {
        self.interact_with_headers(payload, &[]).await
    }

    async fn interact_with_headers(
        &self,
        payload: Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        let mut request = self.signed("/slack/interactions", &body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    fn button_payload(&self, channel: &str, user: &str, action_id: &str, run_id: Uuid) -> Value {
        let response_url = self.slack.response_url(&format!("{action_id}-{user}"));
        driver::button_payload(channel, user, action_id, run_id, &response_url)
    }

    /// `user` clicks **Order** on the run message.
    pub(crate) async fn click_order(
        &self,
        channel: &str,
        user: &str,
        run_id: Uuid,
    ) -> reqwest::Response {
        self.interact(self.button_payload(channel, user, blocks::ACTION_ORDER, run_id))
            .await
    }

    /// `user` clicks **Close run** on the run message.
    pub(crate) async fn click_close(
        &self,
        channel: &str,
        user: &str,
        run_id: Uuid,
    ) -> reqwest::Response {
        self.click_close_with_headers(channel, user, run_id, &[])
            .await
    }

    /// [`click_close`](Self::click_close) with extra HTTP headers.
    pub(crate) async fn click_close_with_headers(
        &self,
        channel: &str,
        user: &str,
        run_id: Uuid,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let payload = self.button_payload(channel, user, blocks::ACTION_CLOSE, run_id);
        self.interact_with_headers(payload, headers).await
    }

    /// `user` submits the order modal with `text` and the ticked options.
    pub(crate) async fn submit_order(
        &self,
        user: &str,
        run_id: Uuid,
        text: &str,
        options: &[&str],
    ) -> reqwest::Response {
        self.interact(driver::order_submission(user, run_id, text, options))
            .await
    }

    /// The open run of `channel`, read from the buttons of the run message
    /// the bot posted for it (waits until it is posted).
    pub(crate) async fn posted_run(&self, channel: &str) -> Uuid {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let latest = self
                .slack
                .calls_to("chat.postMessage")
                .iter()
                .rev()
                .filter(|c| c.body["channel"] == channel)
                .find_map(|c| button_value(&c.body, blocks::ACTION_ORDER))
                .and_then(|v| Uuid::parse_str(&v).ok());
            if let Some(run_id) = latest {
                let open: Option<bool> =
                    sqlx::query_scalar("SELECT status = 'open' FROM runs WHERE run_id = $1")
                        .bind(run_id)
                        .fetch_optional(&self.ctx.db)
                        .await
                        .expect("query runs");
                if open == Some(true) {
                    return run_id;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no run message for an open run in {channel}: {:#?}",
                self.slack.calls()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// How long a test waits for asynchronous effects (events, Slack calls):
/// a deadline, not a speed target. They usually take milliseconds; a CI
/// machine running two dozen test processes on two cores (once also a soak
/// beside them) has taken over 10 s for a run message refresh.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// The `value` of the button with `action_id` anywhere in a message's blocks.
pub(crate) use coffeebuddy_test_support::driver::button_value;

/// The labels of every button in a message.
pub(crate) fn button_labels(message: &Value) -> Vec<String> {
    let mut labels = Vec::new();
    fn walk(v: &Value, labels: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("button")
                    && let Some(text) = map
                        .get("text")
                        .and_then(|t| t.get("text"))
                        .and_then(Value::as_str)
                {
                    labels.push(text.to_owned());
                }
                map.values().for_each(|v| walk(v, labels));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, labels)),
            _ => {}
        }
    }
    walk(&message["blocks"], &mut labels);
    labels
}

/// All text of a message (fallback text and every text field in its blocks).
pub(crate) fn all_text(message: &Value) -> String {
    let mut out = String::new();
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "text"
                        || k == "blocks"
                        || k == "elements"
                        || k == "fields"
                        || matches!(v, Value::Object(_) | Value::Array(_))
                    {
                        walk(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(message, &mut out);
    out
}
