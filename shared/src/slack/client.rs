//! The Slack Web API client: the only code that talks to Slack.
//!
//! Every call is `POST {SLACK_API_BASE_URL}/{method}` with
//! `Authorization: Bearer <bot token>`. Write methods take a JSON body;
//! `users.info` is one of Slack's older read methods that ignore JSON bodies
//! (they answer `user_not_found` as if no user was sent), so it is sent
//! form-encoded instead.
//!
//! # Failures and retries
//! Slack answers most failures with HTTP 200 and `{"ok": false, "error": …}`;
//! those become [`SlackApiError::Api`]. Each call is retried under a
//! [`RetryPolicy`]:
//! - HTTP 429: wait for `Retry-After` and try again, unless Slack asks for
//!   longer than [`RetryPolicy::max_retry_after`] (then give up at once with
//!   [`SlackApiError::RateLimited`] and let the caller's own retry, e.g.
//!   Knative redelivery, take over);
//! - 5xx, timeouts, connection errors and the transient `ok: false` errors
//!   (`internal_error`, `ratelimited`…): exponential backoff from
//!   [`RetryPolicy::base_backoff`];
//! - everything else fails at once.
//!
//! Slack's rate limits are per method (tiers), not per call: after a 429,
//! every clone of the client holds back its calls to that method until the
//! `Retry-After` has passed (waiting, or failing at once with
//! [`SlackApiError::RateLimited`] when the wait is longer than the policy
//! allows), instead of each in-flight caller earning its own 429. Other
//! methods go on.
//!
//! `views.open` is the exception: its `trigger_id` dies three seconds after
//! the click, so it gets one attempt with a 2.5 s timeout.
//!
//! The token never appears in `Debug`, logs or errors ([`SecretString`]), and
//! error messages carry no URL (a `response_url` is itself a credential).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::SlackSettings;
use crate::domain::ids::{ChannelId, UserId};
use crate::slack::blocks::OutgoingMessage;
use crate::slack::payloads::ResponseUrl;

/// Longest we let `views.open` take: Slack's `trigger_id` expires after 3 s.
pub const VIEWS_OPEN_TIMEOUT: Duration = Duration::from_millis(2500);

/// The content type Slack wants for JSON bodies (it warns without the charset).
const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Slack `error` codes that describe a passing condition on Slack's side
/// rather than a problem with our request.
const RETRYABLE_API_ERRORS: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// How hard a call tries before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first one included (at least 1 is always made).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for every further attempt.
    pub base_backoff: Duration,
    /// Longest `Retry-After` we are willing to sleep through; a longer one
    /// fails the call with [`SlackApiError::RateLimited`] instead of holding a
    /// request (and a Knative pod) hostage.
    pub max_retry_after: Duration,
    /// Timeout of each attempt, from connect to the last body byte.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based):
    /// `base_backoff · 2^(attempt-1)`.
    fn backoff(&self, attempt: u32) -> Duration {
        self.base_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
    }
}

/// Why a Slack call failed. Never contains the token or a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackApiError {
    /// Slack answered `{"ok": false, "error": …}`.
    #[error("Slack {method} failed: {error}")]
    Api {
        /// The Web API method, e.g. `chat.postMessage`.
        method: String,
        /// Slack's error code, e.g. `channel_not_found`.
        error: String,
    },
    /// Slack answered 429 and we did not (or could no longer) wait.
    #[error("Slack {method} is rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// The Web API method.
        method: String,
        /// What Slack's `Retry-After` asked for.
        retry_after: Duration,
    },
    /// Slack answered with an unexpected HTTP status.
    #[error("Slack {method} answered HTTP {status}")]
    Status {
        /// The Web API method.
        method: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The request did not complete: connection refused, reset, or timed out.
    #[error("Slack {method} could not be reached: {message}")]
    Transport {
        /// The Web API method.
        method: String,
        /// What went wrong, without the URL.
        message: String,
        /// Whether the request may have reached Slack: `false` only when the
        /// connection was never made (refused, DNS, connect timeout), so
        /// Slack certainly did nothing.
        maybe_sent: bool,
    },
    /// Slack answered 2xx with a body we could not read.
    #[error("Slack {method} answered with an unreadable body: {message}")]
    Decode {
        /// The Web API method.
        method: String,
        /// What was wrong with the body.
        message: String,
    },
}

impl SlackApiError {
    /// Whether trying the same call again later may succeed: rate limits, 5xx,
    /// transport failures and Slack's transient error codes. Callers use it to
    /// choose between a 5xx (Knative retries) and a 2xx (give up) answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::Api { error, .. } => RETRYABLE_API_ERRORS.contains(&error.as_str()),
            Self::Decode { .. } => false,
        }
    }

    /// What this failure says about whether Slack did the work, for calls
    /// that must not be repeated blindly (posts). See [`Failure`].
    pub fn classify(&self) -> Failure {
        match self {
            Self::RateLimited { retry_after, .. } => Failure::NotDone {
                retry_after: Some(*retry_after),
            },
            Self::Transport {
                maybe_sent: false, ..
            } => Failure::NotDone { retry_after: None },
            Self::Transport { .. } | Self::Decode { .. } => Failure::InDoubt,
            // 502 and 503 come from Slack's edge when the method could not be
            // reached (the usual face of an outage): nothing was done. A 500,
            // a 504 (the edge gave up waiting) or any other 5xx may come after
            // the method did its work: in doubt, read back before sending
            // again.
            Self::Status {
                status: 502 | 503, ..
            } => Failure::NotDone { retry_after: None },
            Self::Status { status, .. } if *status >= 500 => Failure::InDoubt,
            Self::Status { status: 429, .. } => Failure::NotDone { retry_after: None },
            Self::Status { .. } => Failure::Permanent,
            Self::Api { error, .. } => match error.as_str() {
                "ratelimited" | "rate_limited" | "request_timeout" => {
                    Failure::NotDone { retry_after: None }
                }
                // Slack's docs for both: "it's possible some aspect of the
                // operation succeeded before the error was raised".
                "internal_error" | "fatal_error" | "service_unavailable" => Failure::InDoubt,
                _ => Failure::Permanent,
            },
        }
    }

    /// The Web API method (or `response_url`) that failed.
    pub fn method(&self) -> &str {
        match self {
            Self::Api { method, .. }
            | Self::RateLimited { method, .. }
            | Self::Status { method, .. }
            | Self::Transport { method, .. }
            | Self::Decode { method, .. } => method,
        }
    }
}

/// What a failed call means for work that must happen exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Slack certainly did nothing (429, connection refused, a transient
    /// refusal before any work): safe to send again, after `retry_after`
    /// when Slack named a wait.
    NotDone {
        /// Slack's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Slack may or may not have done it (timeout after sending, 5xx,
    /// `internal_error`): read back before sending again.
    InDoubt,
    /// Slack refused the request itself (`channel_not_found`,
    /// `invalid_blocks`…): sending it again can never succeed.
    Permanent,
}

/// Extra `chat.postMessage` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostOptions {
    /// Reply in this message's thread.
    pub thread_ts: Option<String>,
    /// Our id for the post, sent as message `metadata` so that a post whose
    /// outcome is in doubt can be found again ([`SlackClient::find_posted`]).
    pub effect_key: Option<String>,
}

/// The `metadata.event_type` CoffeeBuddy marks its posts with.
pub const EFFECT_METADATA_TYPE: &str = "coffeebuddy_effect";

/// Where `chat.postMessage` put a message: needed to `chat.update` it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMessage {
    /// The conversation id Slack reports. For a DM sent to a user id this is
    /// the `D…` id of the DM, not the user id.
    pub channel: String,
    /// The message timestamp, Slack's message id within the channel.
    pub ts: String,
}

/// The parts of a `users.info` answer CoffeeBuddy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackUser {
    /// The user's id.
    pub id: UserId,
    /// Workspace admin.
    pub is_admin: bool,
    /// Workspace owner.
    pub is_owner: bool,
    /// The workspace's primary owner.
    pub is_primary_owner: bool,
    /// Deactivated accounts keep their flags; they must not count.
    pub deleted: bool,
}

impl SlackUser {
    /// Whether this person may administer any channel (DESIGN §1.4, §1.6): a
    /// workspace admin, owner or primary owner whose account is active.
    pub fn is_workspace_admin(&self) -> bool {
        !self.deleted && (self.is_admin || self.is_owner || self.is_primary_owner)
    }
}

/// A Slack Web API client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct SlackClient {
    base_url: String,
    token: SecretString,
    retry: RetryPolicy,
    /// Until when each rate-limited method is held back, shared by clones.
    limited: Arc<Mutex<HashMap<String, tokio::time::Instant>>>,
}

impl fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackClient")
            .field("base_url", &self.base_url)
            .field("token", &"[redacted]")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy)]
enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
}

/// Whether the bot token goes with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Bot,
    None,
}

/// What a successful HTTP exchange produced.
#[derive(Debug)]
enum Reply {
    /// A Web API `{"ok": true, …}` body.
    Json(Value),
    /// A 2xx whose body we do not read (response URLs answer `ok` as text).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A Web API answer: JSON with `ok`.
    WebApi,
    /// Any 2xx will do.
    AnySuccess,
}

impl SlackClient {
    /// A client for the Web API at `settings.api_base_url`, authorised with
    /// `settings.bot_token`, using the default [`RetryPolicy`].
    /// Builds nothing: the HTTP client is the process's shared one
    /// ([`crate::http_client`]), built on first use.
    pub fn new(settings: &SlackSettings) -> Self {
        Self {
            base_url: settings.api_base_url.trim_end_matches('/').to_owned(),
            token: settings.bot_token.clone(),
            retry: RetryPolicy::default(),
            limited: Arc::default(),
        }
    }

    /// The same client with another retry policy (tests use tiny backoffs).
    pub fn with_retry_policy(self, policy: RetryPolicy) -> Self {
        Self {
            retry: policy,
            ..self
        }
    }

    /// `chat.postMessage`. `channel` is a conversation id, or a user id to
    /// send a DM (Slack opens the DM and reports its `D…` id back).
    pub async fn post_message(
        &self,
        channel: &str,
        msg: &OutgoingMessage,
    ) -> Result<PostedMessage, SlackApiError> {
        self.post_message_with(channel, msg, &PostOptions::default())
            .await
    }

    /// `chat.postMessage` with a thread and/or an effect key (see
    /// [`PostOptions`]).
    pub async fn post_message_with(
        &self,
        channel: &str,
        msg: &OutgoingMessage,
        options: &PostOptions,
    ) -> Result<PostedMessage, SlackApiError> {
        const METHOD: &str = "chat.postMessage";
        let mut body = json!({
            "channel": channel,
            "text": msg.text,
            "blocks": msg.blocks,
            "unfurl_links": false,
            "unfurl_media": false,
        });
        if let Some(thread_ts) = &options.thread_ts {
            body["thread_ts"] = json!(thread_ts);
        }
        if let Some(key) = &options.effect_key {
            body["metadata"] = json!({
                "event_type": EFFECT_METADATA_TYPE,
                "event_payload": { "effect": key },
            });
        }
        let answer = self.web_api(METHOD, Body::Json(&body), self.retry).await?;
        let channel = string_field(METHOD, &answer, "channel")?;
        let ts = string_field(METHOD, &answer, "ts")?;
        Ok(PostedMessage { channel, ts })
    }

    /// `chat.update`: replaces the text and blocks of the message at `ts`.
    pub async fn update_message(
        &self,
        channel: &ChannelId,
        ts: &str,
        msg: &OutgoingMessage,
    ) -> Result<(), SlackApiError> {
        let body = json!({
            "channel": channel.as_ref(),
            "ts": ts,
            "text": msg.text,
            "blocks": msg.blocks,
        });
        self.web_api("chat.update", Body::Json(&body), self.retry)
            .await
            .map(drop)
    }

    /// `views.open`: one attempt, at most [`VIEWS_OPEN_TIMEOUT`] (or the
    /// policy's timeout if shorter). A retry would arrive after the
    /// `trigger_id` expired and fail with `expired_trigger_id` anyway.
    pub async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<(), SlackApiError> {
        let policy = RetryPolicy {
            max_attempts: 1,
            timeout: self.retry.timeout.min(VIEWS_OPEN_TIMEOUT),
            ..self.retry
        };
        let body = json!({ "trigger_id": trigger_id, "view": view });
        self.web_api("views.open", Body::Json(&body), policy)
            .await
            .map(drop)
    }

    /// `views.publish`: `user`'s App Home tab shows `view` (a `home` view).
    pub async fn publish_view(&self, user: &UserId, view: &Value) -> Result<(), SlackApiError> {
        let body = json!({ "user_id": user.as_ref(), "view": view });
        self.web_api("views.publish", Body::Json(&body), self.retry)
            .await
            .map(drop)
    }

    /// `chat.postEphemeral`: a message only `user` sees, in `channel`.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &UserId,
        text: &str,
    ) -> Result<(), SlackApiError> {
        let body = json!({ "channel": channel, "user": user.as_ref(), "text": text });
        self.web_api("chat.postEphemeral", Body::Json(&body), self.retry)
            .await
            .map(drop)
    }

    /// `conversations.open`: the `D…` id of the bot's DM with `user`.
    pub async fn open_dm(&self, user: &UserId) -> Result<String, SlackApiError> {
        const METHOD: &str = "conversations.open";
        let body = json!({ "users": user.as_ref() });
        let answer = self.web_api(METHOD, Body::Json(&body), self.retry).await?;
        answer
            .pointer("/channel/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SlackApiError::Decode {
                method: METHOD.to_owned(),
                message: "no channel.id in the answer".to_owned(),
            })
    }

    /// Reads `channel`'s history since `oldest` (a Slack `ts`, inclusive)
    /// and returns the `ts` of the message CoffeeBuddy posted with effect
    /// key `key` (see [`PostOptions::effect_key`]), if any. Needs the
    /// `channels:history`, `groups:history` or `im:history` scope for the
    /// conversation; without it Slack answers `missing_scope`.
    pub async fn find_posted(
        &self,
        channel: &str,
        oldest: &str,
        key: &str,
    ) -> Result<Option<String>, SlackApiError> {
        const METHOD: &str = "conversations.history";
        let form = [
            ("channel", channel),
            ("oldest", oldest),
            ("inclusive", "true"),
            ("include_all_metadata", "true"),
            ("limit", "200"),
        ];
        let answer = self.web_api(METHOD, Body::Form(&form), self.retry).await?;
        let messages = answer
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        Ok(messages.iter().find_map(|m| {
            let metadata = m.get("metadata")?;
            (metadata.get("event_type")?.as_str()? == EFFECT_METADATA_TYPE
                && metadata.pointer("/event_payload/effect")?.as_str()? == key)
                .then(|| m.get("ts")?.as_str().map(str::to_owned))
                .flatten()
        }))
    }

    /// `users.info`: whether someone is a workspace admin or owner.
    pub async fn users_info(&self, user: &UserId) -> Result<SlackUser, SlackApiError> {
        const METHOD: &str = "users.info";
        #[derive(Deserialize)]
        struct Answer {
            user: UserWire,
        }
        #[derive(Deserialize)]
        struct UserWire {
            id: UserId,
            #[serde(default)]
            is_admin: bool,
            #[serde(default)]
            is_owner: bool,
            #[serde(default)]
            is_primary_owner: bool,
            #[serde(default)]
            deleted: bool,
        }
        // Form-encoded on purpose: see the module docs.
        let form = [("user", user.as_ref())];
        let answer = self.web_api(METHOD, Body::Form(&form), self.retry).await?;
        let Answer { user } =
            serde_json::from_value(answer).map_err(|e| SlackApiError::Decode {
                method: METHOD.to_owned(),
                message: e.to_string(),
            })?;
        Ok(SlackUser {
            id: user.id,
            is_admin: user.is_admin,
            is_owner: user.is_owner,
            is_primary_owner: user.is_primary_owner,
            deleted: user.deleted,
        })
    }

    /// Posts `body` as JSON to a slash command's or interaction's
    /// `response_url`. The bot token is not sent: the URL is its own
    /// credential. Retried like a Web API call.
    pub async fn respond(
        &self,
        response_url: &ResponseUrl,
        body: &Value,
    ) -> Result<(), SlackApiError> {
        self.send(
            "response_url",
            response_url.as_ref(),
            Body::Json(body),
            Auth::None,
            Expect::AnySuccess,
            self.retry,
        )
        .await
        .map(drop)
    }

    /// Calls Web API `method`, returning the `ok: true` answer.
    async fn web_api(
        &self,
        method: &str,
        body: Body<'_>,
        policy: RetryPolicy,
    ) -> Result<Value, SlackApiError> {
        let url = format!("{}/{method}", self.base_url);
        match self
            .send(method, &url, body, Auth::Bot, Expect::WebApi, policy)
            .await?
        {
            Reply::Json(answer) => Ok(answer),
            Reply::Done => Err(SlackApiError::Decode {
                method: method.to_owned(),
                message: "no JSON body".to_owned(),
            }),
        }
    }

    /// The retry loop around [`Self::attempt`].
    #[tracing::instrument(name = "slack_call", skip_all, fields(method = %method))]
    async fn send(
        &self,
        method: &str,
        url: &str,
        body: Body<'_>,
        auth: Auth,
        expect: Expect,
        policy: RetryPolicy,
    ) -> Result<Reply, SlackApiError> {
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            if let Some(wait) = self.held_back(method) {
                if wait > policy.max_retry_after {
                    return Err(SlackApiError::RateLimited {
                        method: method.to_owned(),
                        retry_after: wait,
                    });
                }
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "waiting out the method's rate limit"
                );
                tokio::time::sleep(wait).await;
            }
            let error = match self.attempt(method, url, body, auth, expect, policy).await {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            if let SlackApiError::RateLimited { retry_after, .. } = &error {
                self.hold_back(method, *retry_after);
            }
            if attempt >= max_attempts || !error.is_retryable() {
                tracing::warn!(attempt, %error, "Slack call failed");
                return Err(error);
            }
            let wait = match &error {
                SlackApiError::RateLimited { retry_after, .. } => {
                    if *retry_after > policy.max_retry_after {
                        tracing::warn!(attempt, %error, "Slack asks us to wait too long; giving up");
                        return Err(error);
                    }
                    *retry_after
                }
                _ => policy.backoff(attempt),
            };
            tracing::info!(attempt, %error, wait_ms = wait.as_millis() as u64, "retrying Slack call");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// How long calls to `method` are still held back after a 429.
    fn held_back(&self, method: &str) -> Option<Duration> {
        let mut limited = self.limited.lock().unwrap_or_else(PoisonError::into_inner);
        let until = *limited.get(method)?;
        let now = tokio::time::Instant::now();
        if until <= now {
            limited.remove(method);
            return None;
        }
        Some(until - now)
    }

    /// Holds calls to `method` back for `retry_after` (never shortening a
    /// longer hold another caller learned).
    fn hold_back(&self, method: &str, retry_after: Duration) {
        // `Retry-After` is Slack's to choose: an absurd one must not
        // overflow the clock (an hour is already far past any caller's wait).
        let now = tokio::time::Instant::now();
        let until = now
            .checked_add(retry_after.min(MAX_HOLD_BACK))
            .unwrap_or(now);
        let mut limited = self.limited.lock().unwrap_or_else(PoisonError::into_inner);
        let held = limited.entry(method.to_owned()).or_insert(until);
        *held = (*held).max(until);
    }

    /// One HTTP exchange, classified.
    async fn attempt(
        &self,
        method: &str,
        url: &str,
        body: Body<'_>,
        auth: Auth,
        expect: Expect,
        policy: RetryPolicy,
    ) -> Result<Reply, SlackApiError> {
        let http = crate::http_client::client().map_err(|reason| SlackApiError::Transport {
            method: method.to_owned(),
            message: reason.to_owned(),
            maybe_sent: false,
        })?;
        let mut request = http.post(url).timeout(policy.timeout);
        if auth == Auth::Bot {
            // `bearer_auth` marks the header sensitive, so reqwest and hyper
            // never print it either.
            request = request.bearer_auth(self.token.expose_secret());
        }
        request = match body {
            Body::Json(value) => request
                .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
                .body(value.to_string()),
            Body::Form(fields) => request.form(fields),
        };
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(method, &e))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(SlackApiError::RateLimited {
                method: method.to_owned(),
                retry_after: retry_after(response.headers()).unwrap_or(policy.base_backoff),
            });
        }
        if !status.is_success() {
            return Err(SlackApiError::Status {
                method: method.to_owned(),
                status: status.as_u16(),
            });
        }
        if expect == Expect::AnySuccess {
            return Ok(Reply::Done);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(method, &e))?;
        let answer: Value = serde_json::from_slice(&bytes).map_err(|e| SlackApiError::Decode {
            method: method.to_owned(),
            message: e.to_string(),
        })?;
        match answer.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(Reply::Json(answer)),
            Some(false) => Err(SlackApiError::Api {
                method: method.to_owned(),
                error: answer
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown_error")
                    .to_owned(),
            }),
            None => Err(SlackApiError::Decode {
                method: method.to_owned(),
                message: "no boolean `ok` field".to_owned(),
            }),
        }
    }
}

/// The longest a 429 holds a method back.
const MAX_HOLD_BACK: Duration = Duration::from_secs(3600);

/// `Retry-After` in (whole, per Slack) seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// A transport failure described without its URL (a `response_url` is a
/// credential) but with its causes (`connection refused`, …).
fn transport_error(method: &str, error: &reqwest::Error) -> SlackApiError {
    use std::error::Error as _;
    let message = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        let mut parts = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            parts.push(cause.to_string());
            source = cause.source();
        }
        if parts.is_empty() {
            if error.is_connect() {
                "connection failed".to_owned()
            } else {
                "request failed".to_owned()
            }
        } else {
            parts.join(": ")
        }
    };
    SlackApiError::Transport {
        method: method.to_owned(),
        message,
        // A connect error (refused, DNS, connect timeout) never sent a byte.
        maybe_sent: !error.is_connect(),
    }
}

fn string_field(method: &str, answer: &Value, field: &str) -> Result<String, SlackApiError> {
    answer
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| SlackApiError::Decode {
            method: method.to_owned(),
            message: format!("no `{field}` string in the answer"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(error: &str) -> SlackApiError {
        SlackApiError::Api {
            method: "chat.postMessage".to_owned(),
            error: error.to_owned(),
        }
    }

    #[test]
    fn transient_failures_are_retryable_and_request_errors_are_not() {
        for retryable in [
            "ratelimited",
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
        ] {
            assert!(api(retryable).is_retryable(), "{retryable}");
        }
        for terminal in [
            "channel_not_found",
            "not_in_channel",
            "invalid_auth",
            "user_not_found",
            "expired_trigger_id",
        ] {
            assert!(!api(terminal).is_retryable(), "{terminal}");
        }
        let status = |status| SlackApiError::Status {
            method: "m".to_owned(),
            status,
        };
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(
            SlackApiError::Transport {
                method: "m".to_owned(),
                message: "timed out".to_owned(),
                maybe_sent: true,
            }
            .is_retryable()
        );
        assert!(
            SlackApiError::RateLimited {
                method: "m".to_owned(),
                retry_after: Duration::from_secs(1)
            }
            .is_retryable()
        );
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(200));
        assert_eq!(policy.backoff(2), Duration::from_millis(400));
        assert_eq!(policy.backoff(3), Duration::from_millis(800));
        assert!(
            policy.backoff(200) >= Duration::from_secs(3600),
            "saturates"
        );
    }

    #[test]
    fn only_active_admins_and_owners_are_workspace_admins() {
        let user = |is_admin, is_owner, is_primary_owner, deleted| SlackUser {
            id: UserId::parse("U1").expect("valid id"),
            is_admin,
            is_owner,
            is_primary_owner,
            deleted,
        };
        assert!(user(true, false, false, false).is_workspace_admin());
        assert!(user(false, true, false, false).is_workspace_admin());
        assert!(user(false, false, true, false).is_workspace_admin());
        assert!(!user(false, false, false, false).is_workspace_admin());
        assert!(!user(true, true, true, true).is_workspace_admin());
    }

    #[test]
    fn failures_are_classified_by_whether_slack_may_have_done_the_work() {
        let transport = |maybe_sent| SlackApiError::Transport {
            method: "chat.postMessage".to_owned(),
            message: "x".to_owned(),
            maybe_sent,
        };
        let status = |status| SlackApiError::Status {
            method: "chat.postMessage".to_owned(),
            status,
        };
        let limited = SlackApiError::RateLimited {
            method: "chat.postMessage".to_owned(),
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(
            limited.classify(),
            Failure::NotDone {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            transport(false).classify(),
            Failure::NotDone { retry_after: None }
        );
        assert_eq!(transport(true).classify(), Failure::InDoubt);
        assert_eq!(status(500).classify(), Failure::InDoubt);
        assert_eq!(status(504).classify(), Failure::InDoubt);
        assert_eq!(
            status(503).classify(),
            Failure::NotDone { retry_after: None }
        );
        assert_eq!(status(404).classify(), Failure::Permanent);
        assert_eq!(api("internal_error").classify(), Failure::InDoubt);
        assert_eq!(
            api("ratelimited").classify(),
            Failure::NotDone { retry_after: None }
        );
        for permanent in [
            "channel_not_found",
            "not_in_channel",
            "msg_blocks_too_long",
            "invalid_blocks",
        ] {
            assert_eq!(api(permanent).classify(), Failure::Permanent, "{permanent}");
        }
    }
}
