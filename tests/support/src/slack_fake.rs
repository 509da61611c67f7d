//! A recording stand-in for the Slack Web API, on a real loopback socket.
//!
//! Point `SLACK_API_BASE_URL` at [`SlackFake::base_url`] and hand out
//! [`SlackFake::response_url`]s in Slack payloads; every request is recorded
//! (scripted failures included) and can be asserted on afterwards.
//!
//! It behaves like Slack where that catches real bugs:
//! - `chat.postMessage` to a user id (a DM) reports a `D…` conversation id,
//!   as Slack does, never the user id;
//! - `users.info` reads `user` only from a form body or the query string: a
//!   JSON body is ignored and answered `user_not_found`, as Slack does;
//! - a Web API call without `Authorization` is answered `not_authed`.
//!
//! Scripted answers ([`SlackFake::fail_next`]) are consumed one per call, in
//! the order queued; [`SlackFake::set_down`] answers 503 to everything.

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
}

/// A scripted answer for the next call to one method.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeResponse {
    /// This HTTP status with a plain-text body.
    Status(u16),
    /// HTTP 429 with `Retry-After: retry_after_secs`.
    RateLimited {
        /// Seconds to ask the client to wait.
        retry_after_secs: u64,
    },
    /// HTTP 200 `{"ok": false, "error": …}`.
    SlackError(&'static str),
    /// HTTP 200 with exactly this JSON body.
    Json(Value),
    /// The normal answer, after this delay (to exercise client timeouts).
    Delayed(Duration),
}

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<RecordedCall>,
    admins: HashMap<String, bool>,
    scripted: HashMap<String, VecDeque<FakeResponse>>,
    down: bool,
    messages_posted: u64,
}

/// The fake Slack Web API server. Clones share state.
#[derive(Debug, Clone)]
pub struct SlackFake {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl SlackFake {
    /// Starts the fake on `127.0.0.1:0`; it runs until the test's runtime ends.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the Slack fake");
        let addr = listener.local_addr().expect("Slack fake address");
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app = Router::new()
            .route("/api/{method}", any(web_api))
            .route("/response/{name}", any(response_url))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A test that panicked while holding the lock already failed; keep
        // the recorded calls readable for its report.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Web API base, e.g. `http://127.0.0.1:PORT/api`, for
    /// `SLACK_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// A response URL on the fake; posts to it are recorded as
    /// `response:{name}`.
    pub fn response_url(&self, name: &str) -> String {
        format!("http://{}/response/{name}", self.addr)
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
        self.lock().admins.insert(user.to_owned(), admin);
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
}

type Shared = Arc<Mutex<FakeState>>;

fn lock(state: &Shared) -> MutexGuard<'_, FakeState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
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

/// Records the call and takes the scripted answer for it, if any.
fn record(
    state: &Shared,
    method: String,
    headers: &HeaderMap,
    body: &[u8],
) -> (RecordedCall, Option<FakeResponse>, bool) {
    let content_type = header_string(headers, header::CONTENT_TYPE);
    let call = RecordedCall {
        body: decode_body(content_type.as_deref(), body),
        authorization: header_string(headers, header::AUTHORIZATION),
        content_type,
        method,
        at: Instant::now(),
    };
    let mut state = lock(state);
    state.calls.push(call.clone());
    let down = state.down;
    let scripted = state
        .scripted
        .get_mut(&call.method)
        .and_then(VecDeque::pop_front);
    (call, scripted, down)
}

/// The answer that replaces the method's normal one: 503 while down, or the
/// scripted response. A `Delayed` script sleeps, then lets the normal answer
/// through.
async fn override_response(down: bool, scripted: Option<FakeResponse>) -> Option<Response> {
    if down {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "Slack fake is down").into_response());
    }
    Some(match scripted? {
        FakeResponse::Status(status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "scripted failure",
        )
            .into_response(),
        FakeResponse::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            axum::Json(json!({ "ok": false, "error": "ratelimited" })),
        )
            .into_response(),
        FakeResponse::SlackError(error) => {
            axum::Json(json!({ "ok": false, "error": error })).into_response()
        }
        FakeResponse::Json(body) => axum::Json(body).into_response(),
        FakeResponse::Delayed(delay) => {
            tokio::time::sleep(delay).await;
            return None;
        }
    })
}

async fn web_api(
    State(state): State<Shared>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (call, scripted, down) = record(&state, method, &headers, &body);
    if let Some(response) = override_response(down, scripted).await {
        return response;
    }
    if call.authorization.is_none() {
        return axum::Json(json!({ "ok": false, "error": "not_authed" })).into_response();
    }
    let field = |name: &str| {
        call.body
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let answer = match call.method.as_str() {
        "chat.postMessage" => {
            let channel = field("channel").unwrap_or_default();
            // A DM addressed to a user id lands in a `D…` conversation.
            let channel = match channel.strip_prefix(['U', 'W']) {
                Some(rest) => format!("D{rest}"),
                None => channel,
            };
            let n = {
                let mut state = lock(&state);
                state.messages_posted += 1;
                state.messages_posted
            };
            let ts = format!("{}.{:06}", 1_700_000_000 + n / 10_000, (n % 10_000) * 100);
            json!({ "ok": true, "channel": channel, "ts": ts, "message": { "text": field("text") } })
        }
        "chat.update" => json!({
            "ok": true,
            "channel": field("channel"),
            "ts": field("ts"),
            "text": field("text"),
        }),
        "chat.postEphemeral" => json!({ "ok": true, "message_ts": "1700000000.000001" }),
        "views.open" => json!({ "ok": true, "view": { "id": "V0FAKEVIEW" } }),
        "users.info" => {
            // Slack ignores JSON bodies for this method: only form or query.
            let from_form = call
                .content_type
                .as_deref()
                .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
                .then(|| field("user"))
                .flatten();
            let from_query = query.as_deref().and_then(|q| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                    .ok()?
                    .into_iter()
                    .find(|(k, _)| k == "user")
                    .map(|(_, v)| v)
            });
            match from_form.or(from_query) {
                Some(user) => {
                    let admin = lock(&state).admins.get(&user).copied().unwrap_or(false);
                    json!({ "ok": true, "user": {
                        "id": user,
                        "name": user.to_lowercase(),
                        "deleted": false,
                        "is_admin": admin,
                        "is_owner": false,
                        "is_primary_owner": false,
                        "is_bot": false,
                    } })
                }
                None => json!({ "ok": false, "error": "user_not_found" }),
            }
        }
        _ => json!({ "ok": true }),
    };
    axum::Json(answer).into_response()
}

async fn response_url(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, scripted, down) = record(&state, format!("response:{name}"), &headers, &body);
    if let Some(response) = override_response(down, scripted).await {
        return response;
    }
    // Slack answers response URLs with a plain `ok`.
    (StatusCode::OK, "ok").into_response()
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
        assert_eq!(posted["ts"], "1700000000.000100");

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
}
