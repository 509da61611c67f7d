//! A recording Slack for tests: the shared Slack stand-in
//! ([`coffeebuddy_slack_standin`], the same model the playground, the demo
//! and the benchmark use) on a real loopback socket, with a test-only fault
//! layer in front of it.
//!
//! Point `SLACK_API_BASE_URL` at [`SlackFake::base_url`] and hand out
//! [`SlackFake::response_url`]s in Slack payloads; every request is recorded
//! (faults included) and can be asserted on afterwards, and what Slack would
//! now hold can be read back ([`SlackFake::messages`]).
//!
//! The model behaves like Slack where that catches real bugs: argument
//! checks and size limits (more than 50 blocks, a section over 3000
//! characters, about 12,000 characters of block text, 40,000 of `text`, 100
//! blocks in a view) answered `{"ok": false, "error": …}` as Slack answers
//! them and listed by [`SlackFake::refusals`]; a DM to a user id reported as
//! its `D…` conversation; `users.info` reading `user` only from a form or
//! the query (a JSON body gets `user_not_found`); `not_authed` without
//! `Authorization`. It is lenient about what tests make up: unknown
//! `trigger_id`s, channels and users are accepted. Message timestamps are
//! wall-clock, strictly increasing, as Slack's.
//!
//! # Faults
//! Checked in this order for each call; the first that applies answers:
//! 1. [`SlackFake::set_down`]: 503 to everything (response URLs included).
//! 2. [`SlackFake::rate_limit_every`]: every n-th Web API call is 429.
//! 3. [`SlackFake::fail_next`]: scripted answers, one per call, in order.
//! 4. [`SlackFake::fail_channel`]: posts and updates to one channel fail.
//! 5. [`SlackFake::fail_one_in`]: a steady share of Web API calls is
//!    answered 5xx (half of them after doing the work, as a Slack that
//!    failed while answering).
//!
//! Then the model does the work, and [`SlackFake::set_latency`],
//! [`SlackFake::set_method_latency`] and [`FakeResponse::DoneButLate`] hold
//! the answer back (the work is already done).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use coffeebuddy_slack_standin::{Options, SlackStandIn, WebRequest};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// The Web API method (`chat.postMessage`), or `response:{name}` for a
    /// post to a response URL.
    pub method: String,
    /// The body: JSON as sent, a form as an object of strings, anything else
    /// as a JSON string (`Null` when empty).
    pub body: Value,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// When it arrived.
    pub at: Instant,
    /// The HTTP status a fault answered it with (503 while down, 429 rate
    /// limited, a scripted or failing-channel status, an error-rate 5xx);
    /// `None` when the model answered (however late).
    pub fault: Option<u16>,
}

/// A scripted answer for the next call to one method.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeResponse {
    /// This HTTP status with a plain-text body; nothing is done.
    Status(u16),
    /// HTTP 429 with `Retry-After: retry_after_secs`; nothing is done.
    RateLimited {
        /// Seconds to ask the client to wait.
        retry_after_secs: u64,
    },
    /// HTTP 200 `{"ok": false, "error": …}`; nothing is done.
    SlackError(&'static str),
    /// HTTP 200 with exactly this JSON body; nothing is done.
    Json(Value),
    /// Waits this long, then does the work and answers normally (a slow
    /// Slack: the work happens only after the delay).
    Delayed(Duration),
    /// Does the work at once (the message is stored, the call counted),
    /// then answers only after this delay: past a client's timeout, this is
    /// the "Slack did it but we never heard" case.
    DoneButLate(Duration),
}

#[derive(Debug, Default)]
struct Faults {
    calls: Vec<RecordedCall>,
    refusals: Vec<RecordedCall>,
    scripted: HashMap<String, VecDeque<FakeResponse>>,
    down: bool,
    latency: Option<Duration>,
    method_latency: HashMap<String, Duration>,
    failing_channels: HashMap<String, u16>,
    /// `(n, retry_after_secs)`: every n-th Web API call is rate limited.
    rate_limit: Option<(usize, u64)>,
    /// Web API calls since `rate_limit` was set.
    web_calls: usize,
    /// `(n, status)`: one Web API call in `n`, drawn at random, is
    /// answered `status`.
    error_rate: Option<(u32, u16)>,
    /// The xorshift state drawing those calls (seeded, so a run can be
    /// repeated).
    rng: u64,
    /// Calls answered with an error-rate fault after doing the work.
    done_then_failed: usize,
}

#[derive(Debug, Clone)]
struct Shared {
    slack: SlackStandIn,
    faults: Arc<Mutex<Faults>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Faults> {
        // A test that panicked while holding the lock already failed; keep
        // the recorded calls readable for its report.
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake Slack server. Clones share state.
#[derive(Debug, Clone)]
pub struct SlackFake {
    addr: SocketAddr,
    shared: Shared,
}

/// Methods [`SlackFake::fail_channel`] applies to.
const CHANNEL_WRITES: [&str; 3] = ["chat.postMessage", "chat.update", "chat.postEphemeral"];

impl SlackFake {
    /// Starts the fake on `127.0.0.1:0`; it runs until the test's runtime ends.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the Slack fake");
        let addr = listener.local_addr().expect("Slack fake address");
        let shared = Shared {
            slack: SlackStandIn::new(Options::for_tests()),
            faults: Arc::new(Mutex::new(Faults::default())),
        };
        let app = Router::new()
            .route("/api/{method}", any(web_api))
            .route("/response/{name}", any(response_url))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    fn lock(&self) -> MutexGuard<'_, Faults> {
        self.shared.lock()
    }

    /// The Web API base, e.g. `http://127.0.0.1:PORT/api`, for
    /// `SLACK_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// A response URL on the fake; posts to it are recorded as
    /// `response:{name}` (and answered `ok`).
    pub fn response_url(&self, name: &str) -> String {
        format!("http://{}/response/{name}", self.addr)
    }

    /// The stand-in behind the fake, for what the knobs here do not cover
    /// (e.g. [`SlackStandIn::issue_trigger_id`] for a real, expiring
    /// `trigger_id`).
    pub fn standin(&self) -> &SlackStandIn {
        &self.shared.slack
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.lock().calls.clone()
    }

    /// The calls to `method` (`chat.postMessage`, `response:{name}`…).
    pub fn calls_to(&self, method: &str) -> Vec<RecordedCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// The calls Slack refused for their arguments or size (`invalid_blocks`,
    /// `msg_too_long`, `msg_blocks_too_long`, `invalid_arguments`,
    /// `channel_not_found`, `user_not_found`, `unknown_method`…), so a test
    /// can assert there were none. Scripted failures are not refusals.
    pub fn refusals(&self) -> Vec<RecordedCall> {
        self.lock().refusals.clone()
    }

    /// A channel's current messages (after updates), oldest first, thread
    /// replies included, each as `conversations.history` returns it (`ts`,
    /// `text`, `blocks`, `thread_ts`, `metadata`…).
    pub fn messages(&self, channel: &str) -> Vec<Value> {
        self.shared.slack.messages(channel)
    }

    /// The current messages of `user`'s DM conversation with the bot (see
    /// [`Self::messages`]).
    pub fn dm_messages(&self, user: &str) -> Vec<Value> {
        self.shared.slack.dm_messages(user)
    }

    /// Waits until at least `count` calls to `method` arrived and returns
    /// them. Panics after `timeout`, listing every call seen.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<RecordedCall> {
        let deadline = Instant::now() + timeout;
        loop {
            let calls = self.calls_to(method);
            if calls.len() >= count {
                return calls;
            }
            if Instant::now() >= deadline {
                let mut seen = String::new();
                for call in self.calls() {
                    let _ = writeln!(seen, "  {} {}", call.method, call.body);
                }
                panic!(
                    "waited {timeout:?} for {count} call(s) to {method}, got {}; all calls:\n{seen}",
                    calls.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Makes `users.info` report `user` as a workspace admin (or not).
    pub fn set_workspace_admin(&self, user: &str, admin: bool) {
        self.shared.slack.set_workspace_admin(user, admin);
    }

    /// Queues `response` for the next call to `method` (`response:{name}`
    /// for a response URL). Several queued answers are used in order.
    pub fn fail_next(&self, method: &str, response: FakeResponse) {
        self.lock()
            .scripted
            .entry(method.to_owned())
            .or_default()
            .push_back(response);
    }

    /// While `down`, every request is answered 503 (and still recorded).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Every Web API call (not response URLs) is answered `d` after it
    /// arrived; the work is done on arrival. `Duration::ZERO` turns it off.
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = (!d.is_zero()).then_some(d);
    }

    /// Like [`Self::set_latency`] for one method only (e.g. `users.info`
    /// taking 4 s); it wins over the general latency. `Duration::ZERO`
    /// removes it.
    pub fn set_method_latency(&self, method: &str, d: Duration) {
        let mut faults = self.lock();
        if d.is_zero() {
            faults.method_latency.remove(method);
        } else {
            faults.method_latency.insert(method.to_owned(), d);
        }
    }

    /// While `Some(code)`, `chat.postMessage`, `chat.update` and
    /// `chat.postEphemeral` to `channel` (a `C…` id, or the user or `D…` id
    /// of a DM) are answered HTTP `code` and do nothing; other channels are
    /// unaffected. `None` restores the channel.
    pub fn fail_channel(&self, channel: &str, status: Option<u16>) {
        let mut faults = self.lock();
        match status {
            Some(code) => faults.failing_channels.insert(channel.to_owned(), code),
            None => faults.failing_channels.remove(channel),
        };
    }

    /// Every `n`-th Web API call from now on (counting all methods) is
    /// answered 429 with `Retry-After: retry_after_secs` and does nothing.
    /// `n = 0` turns it off.
    pub fn rate_limit_every(&self, n: usize, retry_after_secs: u64) {
        let mut faults = self.lock();
        faults.rate_limit = (n > 0).then_some((n, retry_after_secs));
        faults.web_calls = 0;
    }

    /// From now on one Web API call in `n`, drawn at random from `seed`,
    /// is answered HTTP `status`. Every other such call fails before doing
    /// anything; the rest do the work first and then fail (Slack posted,
    /// but its answer was an error: the in-doubt case a client must not
    /// repeat blindly). `n = 0` turns it off.
    pub fn fail_one_in(&self, n: u32, status: u16, seed: u64) {
        let mut faults = self.lock();
        faults.error_rate = (n > 0).then_some((n, status));
        // xorshift must not start at zero.
        faults.rng = seed | 1;
    }

    /// How many calls [`Self::fail_one_in`] answered with an error after
    /// the work was done.
    pub fn done_then_failed(&self) -> usize {
        self.lock().done_then_failed
    }
}

/// What the error rate decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    /// Answer this status at once; do nothing.
    Before(u16),
    /// Do the work, then answer this status.
    After(u16),
}

impl Faults {
    /// Draws whether this call fails under [`SlackFake::fail_one_in`].
    fn draw_error(&mut self) -> Option<Injected> {
        let (n, status) = self.error_rate?;
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        if !x.is_multiple_of(u64::from(n)) {
            return None;
        }
        Some(if (x >> 32).is_multiple_of(2) {
            Injected::Before(status)
        } else {
            Injected::After(status)
        })
    }

    /// Marks the call just recorded as answered by a fault.
    fn faulted(&mut self, code: u16) {
        if let Some(call) = self.calls.last_mut() {
            call.fault = Some(code);
        }
    }
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The body as JSON: JSON as is, a form as an object of strings, else a string.
fn decode_body(content_type: Option<&str>, body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    let is_form =
        content_type.is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if is_form && let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        return Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn record_call(method: String, headers: &HeaderMap, body: &[u8]) -> RecordedCall {
    let content_type = header_string(headers, header::CONTENT_TYPE);
    RecordedCall {
        body: decode_body(content_type.as_deref(), body),
        authorization: header_string(headers, header::AUTHORIZATION),
        content_type,
        method,
        at: Instant::now(),
        fault: None,
    }
}

fn rate_limited(retry_after_secs: u64) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after_secs.to_string())],
        axum::Json(json!({ "ok": false, "error": "ratelimited" })),
    )
        .into_response()
}

fn status(code: u16, text: &'static str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        text,
    )
        .into_response()
}

/// What a scripted answer means for this call.
enum Script {
    /// Answer this instead; do nothing.
    Answer(Response),
    /// Wait, then go on normally.
    WaitFirst(Duration),
    /// Go on normally, then hold the answer back.
    WaitAfter(Duration),
}

fn script(scripted: FakeResponse) -> Script {
    match scripted {
        FakeResponse::Status(code) => Script::Answer(status(code, "scripted failure")),
        FakeResponse::RateLimited { retry_after_secs } => {
            Script::Answer(rate_limited(retry_after_secs))
        }
        FakeResponse::SlackError(error) => {
            Script::Answer(axum::Json(json!({ "ok": false, "error": error })).into_response())
        }
        FakeResponse::Json(body) => Script::Answer(axum::Json(body).into_response()),
        FakeResponse::Delayed(d) => Script::WaitFirst(d),
        FakeResponse::DoneButLate(d) => Script::WaitAfter(d),
    }
}

async fn web_api(
    State(shared): State<Shared>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = record_call(method, &headers, &body);
    let (scripted, latency, fail_after) = {
        let mut faults = shared.lock();
        faults.calls.push(call.clone());
        if faults.down {
            faults.faulted(503);
            return status(503, "Slack fake is down");
        }
        faults.web_calls = faults.web_calls.saturating_add(1);
        if let Some((n, retry_after)) = faults.rate_limit
            && faults.web_calls % n == 0
        {
            faults.faulted(429);
            return rate_limited(retry_after);
        }
        let scripted = faults
            .scripted
            .get_mut(&call.method)
            .and_then(VecDeque::pop_front)
            .map(script);
        if let Some(Script::Answer(response)) = scripted {
            let code = response.status().as_u16();
            if code != 200 {
                faults.faulted(code);
            }
            return response;
        }
        if CHANNEL_WRITES.contains(&call.method.as_str())
            && let Some(channel) = call.body.get("channel").and_then(Value::as_str)
        {
            let dm = coffeebuddy_slack_standin::dm_id(channel);
            if let Some(code) = faults.failing_channels.get(channel).or_else(|| {
                channel
                    .starts_with(['U', 'W'])
                    .then(|| faults.failing_channels.get(&dm))
                    .flatten()
            }) {
                let code = *code;
                faults.faulted(code);
                return status(code, "channel failing (fail_channel)");
            }
        }
        let fail_after = match faults.draw_error() {
            Some(Injected::Before(code)) => {
                faults.faulted(code);
                return status(code, "injected error (fail_one_in)");
            }
            Some(Injected::After(code)) => {
                faults.faulted(code);
                Some(code)
            }
            None => None,
        };
        let latency = faults
            .method_latency
            .get(&call.method)
            .copied()
            .or(faults.latency);
        (scripted, latency, fail_after)
    };
    let mut hold_back = latency.unwrap_or_default();
    match scripted {
        Some(Script::WaitFirst(d)) => tokio::time::sleep(d).await,
        Some(Script::WaitAfter(d)) => hold_back = hold_back.max(d),
        Some(Script::Answer(_)) | None => {}
    }
    let answer = shared.slack.web_api(&WebRequest {
        method: &call.method,
        authorization: call.authorization.as_deref(),
        content_type: call.content_type.as_deref(),
        query: query.as_deref(),
        body: &body,
    });
    if answer.refused {
        shared.lock().refusals.push(call);
    }
    if !hold_back.is_zero() {
        tokio::time::sleep(hold_back).await;
    }
    if let Some(code) = fail_after {
        shared.lock().done_then_failed += 1;
        return status(code, "injected error after the work (fail_one_in)");
    }
    axum::Json(answer.body).into_response()
}

async fn response_url(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = record_call(format!("response:{name}"), &headers, &body);
    let scripted = {
        let mut faults = shared.lock();
        faults.calls.push(call.clone());
        if faults.down {
            faults.faulted(503);
            return status(503, "Slack fake is down");
        }
        let scripted = faults
            .scripted
            .get_mut(&call.method)
            .and_then(VecDeque::pop_front)
            .map(script);
        if let Some(Script::Answer(response)) = &scripted
            && response.status() != StatusCode::OK
        {
            faults.faulted(response.status().as_u16());
        }
        scripted
    };
    let mut hold_back = Duration::ZERO;
    match scripted {
        Some(Script::Answer(response)) => return response,
        Some(Script::WaitFirst(d)) => tokio::time::sleep(d).await,
        Some(Script::WaitAfter(d)) => hold_back = d,
        None => {}
    }
    let answer = shared.slack.respond(&name, &body);
    if answer.refused {
        shared.lock().refusals.push(call);
    }
    if !hold_back.is_zero() {
        tokio::time::sleep(hold_back).await;
    }
    (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fake_records_calls_and_answers_like_slack() {
        let fake = SlackFake::start().await;
        let http = reqwest::Client::new();

        let posted: Value = http
            .post(format!("{}/chat.postMessage", fake.base_url()))
            .bearer_auth("xoxb-1")
            .json(&json!({ "channel": "U0BOB", "text": "hi" }))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        assert_eq!(posted["ok"], true);
        assert_eq!(posted["channel"], "D0BOB", "a DM reports its D… id");
        let ts: f64 = posted["ts"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("a ts");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!((ts - now).abs() < 60.0, "a wall-clock ts: {ts}");

        fake.set_workspace_admin("U0ADMIN", true);
        let info: Value = http
            .post(format!("{}/users.info", fake.base_url()))
            .bearer_auth("xoxb-1")
            .form(&[("user", "U0ADMIN")])
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        assert_eq!(info["user"]["is_admin"], true);

        fake.fail_next("chat.update", FakeResponse::Status(500));
        let failed = http
            .post(format!("{}/chat.update", fake.base_url()))
            .bearer_auth("xoxb-1")
            .json(&json!({ "channel": "C1", "ts": "1.2" }))
            .send()
            .await
            .expect("post");
        assert_eq!(failed.status(), 500);

        let answered = http
            .post(fake.response_url("cmd"))
            .json(&json!({ "text": "done" }))
            .send()
            .await
            .expect("post");
        assert_eq!(answered.text().await.expect("text"), "ok");

        let calls = fake
            .wait_for_calls("response:cmd", 1, Duration::from_secs(1))
            .await;
        assert_eq!(calls[0].body["text"], "done");
        assert_eq!(calls[0].authorization, None);
        let methods: Vec<String> = fake.calls().into_iter().map(|c| c.method).collect();
        assert_eq!(
            methods,
            [
                "chat.postMessage",
                "users.info",
                "chat.update",
                "response:cmd"
            ]
        );
        assert_eq!(
            fake.calls_to("chat.postMessage")[0]
                .authorization
                .as_deref(),
            Some("Bearer xoxb-1")
        );
        assert_eq!(fake.calls_to("users.info")[0].body["user"], "U0ADMIN");
    }

    #[tokio::test]
    async fn users_info_ignores_a_json_body_as_slack_does() {
        let fake = SlackFake::start().await;
        let info: Value = reqwest::Client::new()
            .post(format!("{}/users.info", fake.base_url()))
            .bearer_auth("xoxb-1")
            .json(&json!({ "user": "U0ADMIN" }))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        assert_eq!(info, json!({ "ok": false, "error": "user_not_found" }));
    }

    #[tokio::test]
    async fn a_down_fake_answers_503_and_still_records() {
        let fake = SlackFake::start().await;
        fake.set_down(true);
        let status = reqwest::Client::new()
            .post(format!("{}/views.open", fake.base_url()))
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, 503);
        assert_eq!(fake.calls_to("views.open").len(), 1);
    }

    #[tokio::test]
    #[should_panic(expected = "waited")]
    async fn waiting_for_calls_that_never_come_panics() {
        let fake = SlackFake::start().await;
        fake.wait_for_calls("chat.postMessage", 1, Duration::from_millis(50))
            .await;
    }

    async fn post(fake: &SlackFake, method: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/{method}", fake.base_url()))
            .bearer_auth("xoxb-1")
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn messages_show_what_slack_now_holds_after_updates_and_dms_by_person() {
        let fake = SlackFake::start().await;
        let (_, posted) = post(&fake, "chat.postMessage", json!({ "channel": "C1", "text": "v1", "metadata": { "event_type": "run", "event_payload": { "id": 1 } } })).await;
        post(
            &fake,
            "chat.update",
            json!({ "channel": "C1", "ts": posted["ts"], "text": "v2" }),
        )
        .await;
        post(
            &fake,
            "chat.postMessage",
            json!({ "channel": "U0BOB", "text": "dm" }),
        )
        .await;
        let messages = fake.messages("C1");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["text"], "v2");
        assert_eq!(messages[0]["metadata"]["event_type"], "run");
        assert_eq!(fake.dm_messages("U0BOB")[0]["text"], "dm");
        assert!(fake.refusals().is_empty());
    }

    #[tokio::test]
    async fn calls_slack_refuses_for_size_are_listed_as_refusals() {
        let fake = SlackFake::start().await;
        let blocks: Vec<Value> = (0..51).map(|_| json!({ "type": "divider" })).collect();
        let (status, answer) = post(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C1", "blocks": blocks }),
        )
        .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (200, Some("invalid_blocks"))
        );
        assert_eq!(fake.refusals().len(), 1);
        assert!(fake.messages("C1").is_empty());
    }

    #[tokio::test]
    async fn a_failing_channel_answers_its_status_and_stores_nothing_until_restored() {
        let fake = SlackFake::start().await;
        fake.fail_channel("C1", Some(500));
        assert_eq!(
            post(
                &fake,
                "chat.postMessage",
                json!({ "channel": "C1", "text": "x" })
            )
            .await
            .0,
            500
        );
        assert_eq!(
            post(
                &fake,
                "chat.postMessage",
                json!({ "channel": "C2", "text": "x" })
            )
            .await
            .0,
            200
        );
        assert!(fake.messages("C1").is_empty());
        fake.fail_channel("C1", None);
        assert_eq!(
            post(
                &fake,
                "chat.postMessage",
                json!({ "channel": "C1", "text": "x" })
            )
            .await
            .0,
            200
        );
        assert_eq!(fake.messages("C1").len(), 1);
    }

    #[tokio::test]
    async fn done_but_late_stores_the_message_at_once_and_answers_after_the_delay() {
        let fake = SlackFake::start().await;
        fake.fail_next(
            "chat.postMessage",
            FakeResponse::DoneButLate(Duration::from_millis(400)),
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(100))
            .build()
            .expect("client");
        let timed_out = client
            .post(format!("{}/chat.postMessage", fake.base_url()))
            .bearer_auth("xoxb-1")
            .json(&json!({ "channel": "C1", "text": "late" }))
            .send()
            .await;
        assert!(timed_out.is_err_and(|e| e.is_timeout()));
        assert_eq!(fake.messages("C1")[0]["text"], "late", "the work was done");
    }

    #[tokio::test]
    async fn latency_holds_every_answer_back_and_a_method_latency_wins_for_its_method() {
        // Lower bounds are what the knobs guarantee; the upper bounds only
        // tell the latencies apart, with margins wide enough for a loaded
        // machine (a localhost call takes milliseconds).
        let fake = SlackFake::start().await;
        fake.set_latency(Duration::from_millis(150));
        fake.set_method_latency("users.info", Duration::from_millis(1500));
        let started = Instant::now();
        post(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C1", "text": "x" }),
        )
        .await;
        let general = started.elapsed();
        assert!(
            general >= Duration::from_millis(150) && general < Duration::from_millis(1500),
            "{general:?}: the general latency, not users.info's"
        );
        let started = Instant::now();
        reqwest::Client::new()
            .post(format!("{}/users.info", fake.base_url()))
            .bearer_auth("xoxb-1")
            .form(&[("user", "U1")])
            .send()
            .await
            .expect("post");
        assert!(started.elapsed() >= Duration::from_millis(1500));
        fake.set_latency(Duration::ZERO);
        let started = Instant::now();
        post(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C1", "text": "x" }),
        )
        .await;
        let off = started.elapsed();
        assert!(off < Duration::from_secs(1), "{off:?}: latency turned off");
    }

    #[tokio::test]
    async fn one_call_in_n_fails_some_before_and_some_after_the_work_and_is_marked() {
        let fake = SlackFake::start().await;
        fake.fail_one_in(4, 500, 7);
        let http = reqwest::Client::new();
        let mut failed = 0;
        for i in 0..400 {
            let status = http
                .post(format!("{}/chat.postMessage", fake.base_url()))
                .bearer_auth("xoxb-1")
                .json(&json!({ "channel": "C1", "text": format!("m{i}") }))
                .send()
                .await
                .expect("post")
                .status();
            if status == 500 {
                failed += 1;
            }
        }
        let marked = fake.calls().iter().filter(|c| c.fault == Some(500)).count();
        assert_eq!(marked, failed);
        assert!((50..150).contains(&failed), "{failed} of 400 failed");
        let after = fake.done_then_failed();
        assert!(
            after > 0 && after < failed,
            "{after} of {failed} after the work"
        );
        assert_eq!(fake.messages("C1").len(), 400 - (failed - after));
    }

    #[tokio::test]
    async fn every_nth_call_is_rate_limited_with_retry_after_and_does_nothing() {
        let fake = SlackFake::start().await;
        fake.rate_limit_every(2, 3);
        let mut statuses = Vec::new();
        for i in 0..4 {
            let response = reqwest::Client::new()
                .post(format!("{}/chat.postMessage", fake.base_url()))
                .bearer_auth("xoxb-1")
                .json(&json!({ "channel": "C1", "text": format!("m{i}") }))
                .send()
                .await
                .expect("post");
            if response.status() == 429 {
                assert_eq!(response.headers()["retry-after"], "3");
            }
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, [200, 429, 200, 429]);
        let texts: Vec<Value> = fake
            .messages("C1")
            .into_iter()
            .map(|m| m["text"].clone())
            .collect();
        assert_eq!(texts, [json!("m0"), json!("m2")]);
        fake.rate_limit_every(0, 0);
        assert_eq!(
            post(
                &fake,
                "chat.postMessage",
                json!({ "channel": "C1", "text": "x" })
            )
            .await
            .0,
            200
        );
    }
}
