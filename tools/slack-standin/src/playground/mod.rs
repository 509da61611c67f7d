//! The playground: a browser page that plays Slack for CoffeeBuddy.
//!
//! `coffeebuddy-local` mounts [`Playground::router`] at `/playground` in dev
//! when no real Slack is configured. The page shows a small workspace
//! ([`seed`]: channels, people, one of them a workspace admin) held by a
//! [`SlackStandIn`] served on its own loopback port, which the functions
//! call over HTTP exactly as they call Slack. What the person at the
//! keyboard does reaches the functions the way Slack sends it:
//!
//! - a message starting with `/coffee` or `/coffee-admin` is a slash command,
//!   a signed form to `/slack/commands` or `/slack/admin`, with a fresh
//!   `trigger_id` and a response URL on the stand-in; the immediate answer
//!   is shown as Slack shows it (ephemeral unless `in_channel`);
//! - a button click is a signed `block_actions` payload to
//!   `/slack/interactions`, with a fresh `trigger_id` (it expires after 3 s,
//!   as Slack's do) and a response URL for that message;
//! - a modal submission is a signed `view_submission`, checked first as
//!   Slack's client checks it (required inputs, `max_length`), whose answer
//!   (`response_action: errors`, `update`, `push`, `clear`, or nothing)
//!   is applied to the modal;
//! - opening the App Home tab is a signed `app_home_opened` event to
//!   `/slack/events`.
//!
//! The page (`assets/`, embedded with `include_str!`) learns about changes
//! through Server-Sent Events and fetches the state of the person it acts
//! as; it renders user text with DOM text nodes only, never as HTML.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use coffeebuddy_shared::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use futures::Stream;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::model::{APP_ID, HookTarget, Options, Person, SlackStandIn, TEAM, dm_id};
use crate::server::StandInServer;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// How long Slack waits for a command or interaction to be acknowledged.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);

/// The team's domain in payloads.
const TEAM_DOMAIN: &str = "playground";
/// The (deprecated) verification token Slack still puts in payloads.
const VERIFICATION_TOKEN: &str = "playground-verification-token";
/// An SSE stream ends after this long (the browser reconnects at once), so
/// no connection outlives a graceful shutdown by much.
const EVENT_STREAM_LIFETIME: Duration = Duration::from_secs(30);

/// The workspace the playground starts with: `#coffee` and `#office` (the
/// bot invited), `#random` (not invited: posting there shows what happens
/// when someone forgets `/invite`), and four people, Carol a workspace
/// admin.
pub fn seed(slack: &SlackStandIn) {
    slack.add_person(Person::new("U0ALICE", "alice", "Alice Martin"));
    slack.add_person(Person::new("U0BOB", "bob", "Bob Chen"));
    slack.add_person(Person::new("U0CAROL", "carol", "Carol Diaz").admin());
    slack.add_person(Person::new("U0DAVE", "dave", "Dave Kim"));
    slack.add_channel("C0COFFEE", "coffee", true);
    slack.add_channel("C0OFFICE", "office", true);
    slack.add_channel("C0RANDOM", "random", false);
}

/// Where the functions listen, for the page's signed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionsAddress {
    /// `http://127.0.0.1:{port}`.
    Port(u16),
    /// The port the browser reached the page on (from its `Host` header):
    /// for a server started with `PORT=0`, whose port is only known once it
    /// listens.
    SameAsPage,
}

/// The playground: the stand-in, its HTTP server and the page's routes.
#[derive(Clone)]
pub struct Playground {
    slack: SlackStandIn,
    server: StandInServer,
    signing_secret: Arc<SecretString>,
    functions: FunctionsAddress,
    http: reqwest::Client,
    closing: watch::Receiver<bool>,
}

impl std::fmt::Debug for Playground {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playground")
            .field("stand_in", &self.server.base_url())
            .field("functions", &self.functions)
            .field("signing_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// A person the page acts as (`?as=U…` or `"as": "U…"`).
#[derive(Debug, Deserialize)]
struct As {
    #[serde(rename = "as")]
    user: String,
}

#[derive(Debug, Deserialize)]
struct CommandRequest {
    #[serde(rename = "as")]
    user: String,
    channel: String,
    text: String,
}

#[derive(Debug, Deserialize)]
struct ClickRequest {
    #[serde(rename = "as")]
    user: String,
    /// A message's conversation and ts…
    channel: Option<String>,
    ts: Option<String>,
    /// …or a view's id.
    view_id: Option<String>,
    block_id: Option<String>,
    action_id: String,
}

#[derive(Debug, Deserialize)]
struct SubmitRequest {
    #[serde(rename = "as")]
    user: String,
    view_id: String,
    /// `block_id → action_id → text` for text inputs, or `→ [values]` for
    /// checkboxes.
    #[serde(default)]
    values: Map<String, Value>,
    /// Send what Slack's client would have blocked (to see the app's own
    /// checks at work).
    #[serde(default)]
    skip_client_checks: bool,
}

#[derive(Debug, Deserialize)]
struct CloseRequest {
    #[serde(rename = "as")]
    user: String,
    view_id: String,
}

/// What an action did, for the page: `notice` is shown to the person.
fn done(notice: Option<String>) -> Response {
    Json(json!({ "ok": notice.is_none(), "notice": notice })).into_response()
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "ok": false, "notice": message })),
    )
        .into_response()
}

/// How a request to the functions went.
#[derive(Debug)]
enum Delivery {
    /// Answered 2xx with this body.
    Answered(Vec<u8>),
    /// Answered another status.
    Status(u16),
    /// No answer within [`ACK_TIMEOUT`].
    TimedOut,
    /// Not reachable.
    Unreachable,
}

/// Resolves when this process is asked to stop (SIGTERM or Ctrl-C), so open
/// event streams end and the server can drain.
fn closing_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
        let _ = tx.send(true);
    });
    rx
}

impl Playground {
    /// Seeds a workspace, serves the stand-in on its own loopback port and
    /// prepares the page. `bot_token` is the only token the stand-in
    /// accepts; `signing_secret` signs what the page sends. Must run inside
    /// a Tokio runtime.
    pub fn start(
        bot_token: &str,
        signing_secret: SecretString,
        functions: FunctionsAddress,
    ) -> std::io::Result<Self> {
        let slack = SlackStandIn::new(Options::strict(Some(bot_token.to_owned())));
        seed(&slack);
        let server = StandInServer::spawn(slack.clone())?;
        let http = reqwest::Client::builder()
            .timeout(ACK_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            slack,
            server,
            signing_secret: Arc::new(signing_secret),
            functions,
            http,
            closing: closing_signal(),
        })
    }

    /// The stand-in's Web API base, for the functions' Slack client.
    pub fn slack_api_base_url(&self) -> String {
        self.server.base_url()
    }

    /// The stand-in itself.
    pub fn slack(&self) -> &SlackStandIn {
        &self.slack
    }

    /// `/playground` and its API.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/playground", get(index))
            .route("/playground/", get(index))
            .route("/playground/app.js", get(app_js))
            .route("/playground/app.css", get(app_css))
            .route("/playground/api/state", get(state))
            .route("/playground/api/events", get(events))
            .route("/playground/api/command", post(command))
            .route("/playground/api/click", post(click))
            .route("/playground/api/submit", post(submit))
            .route("/playground/api/close", post(close))
            .route("/playground/api/home", post(home))
            .with_state(self.clone())
    }

    fn known(&self, user: &str) -> Option<Person> {
        self.slack.people().into_iter().find(|p| p.id == user)
    }

    fn functions_url(&self, headers: &HeaderMap, path: &str) -> String {
        let port = match self.functions {
            FunctionsAddress::Port(port) => port,
            FunctionsAddress::SameAsPage => headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(80),
        };
        format!("http://127.0.0.1:{port}{path}")
    }

    /// Sends `body` to the functions, signed as Slack signs it.
    async fn send(
        &self,
        headers: &HeaderMap,
        path: &str,
        content_type: &str,
        body: String,
        what: &str,
    ) -> Delivery {
        let url = self.functions_url(headers, path);
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let signature = sign(
            self.signing_secret.expose_secret().as_bytes(),
            &ts,
            body.as_bytes(),
        );
        let started = Instant::now();
        let result = self
            .http
            .post(&url)
            .header(header::CONTENT_TYPE, content_type)
            .header(TIMESTAMP_HEADER, &ts)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let ms = started.elapsed().as_millis();
        let delivery = match result {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(b) => Delivery::Answered(b.to_vec()),
                Err(_) => Delivery::Unreachable,
            },
            Ok(r) => Delivery::Status(r.status().as_u16()),
            Err(e) if e.is_timeout() => Delivery::TimedOut,
            Err(_) => Delivery::Unreachable,
        };
        let outcome = match &delivery {
            Delivery::Answered(_) => format!("200 in {ms} ms"),
            Delivery::Status(s) => format!("{s} in {ms} ms"),
            Delivery::TimedOut => format!("no answer within {} s", ACK_TIMEOUT.as_secs()),
            Delivery::Unreachable => "unreachable".to_owned(),
        };
        self.slack
            .log("Slack → bot", format!("POST {path} {what}"), outcome);
        delivery
    }

    fn user_json(person: &Person) -> Value {
        json!({ "id": person.id, "username": person.name, "name": person.name, "team_id": TEAM })
    }

    fn channel_json(&self, channel: &str) -> Value {
        let name = self
            .slack
            .conversation_name(channel)
            .unwrap_or_else(|| "directmessage".to_owned());
        json!({ "id": channel, "name": name })
    }

    /// Whether `person` can act in `channel`: a channel, or their own DM.
    fn conversation_exists(&self, person: &Person, channel: &str) -> bool {
        if channel.starts_with('D') {
            return channel == dm_id(&person.id);
        }
        self.slack.conversation_name(channel).is_some()
    }
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
                ),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn app_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        APP_JS,
    )
        .into_response()
}

async fn app_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        APP_CSS,
    )
        .into_response()
}

async fn state(State(pg): State<Playground>, Query(who): Query<As>) -> Response {
    if pg.known(&who.user).is_none() {
        return bad_request("unknown person");
    }
    Json(pg.slack.snapshot(&who.user)).into_response()
}

async fn events(
    State(pg): State<Playground>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = pg.slack.subscribe();
    let deadline = tokio::time::Instant::now() + EVENT_STREAM_LIFETIME;
    let stream = futures::stream::unfold(
        (changes, pg.closing.clone(), true),
        move |(mut changes, mut closing, first)| async move {
            if *closing.borrow() {
                return None;
            }
            if first {
                let v = *changes.borrow_and_update();
                return Some((
                    Ok(Event::default().event("change").data(v.to_string())),
                    (changes, closing, false),
                ));
            }
            tokio::select! {
                changed = changes.changed() => {
                    changed.ok()?;
                    // Let a burst of changes settle into one refresh.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    let v = *changes.borrow_and_update();
                    Some((Ok(Event::default().event("change").data(v.to_string())), (changes, closing, false)))
                }
                _ = closing.changed() => None,
                () = tokio::time::sleep_until(deadline) => None,
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A slash command's form, exactly as Slack posts it.
fn command_form(
    person: &Person,
    channel: &Value,
    command: &str,
    text: &str,
    response_url: &str,
    trigger_id: &str,
) -> String {
    let channel_id = channel["id"].as_str().unwrap_or_default();
    let channel_name = channel["name"].as_str().unwrap_or_default();
    serde_urlencoded::to_string([
        ("token", VERIFICATION_TOKEN),
        ("team_id", TEAM),
        ("team_domain", TEAM_DOMAIN),
        ("channel_id", channel_id),
        ("channel_name", channel_name),
        ("user_id", &person.id),
        ("user_name", &person.name),
        ("command", command),
        ("text", text),
        ("api_app_id", APP_ID),
        ("is_enterprise_install", "false"),
        ("response_url", response_url),
        ("trigger_id", trigger_id),
    ])
    .unwrap_or_default()
}

async fn command(
    State(pg): State<Playground>,
    headers: HeaderMap,
    Json(req): Json<CommandRequest>,
) -> Response {
    let Some(person) = pg.known(&req.user) else {
        return bad_request("unknown person");
    };
    if !pg.conversation_exists(&person, &req.channel) {
        return bad_request("unknown conversation");
    }
    let text = req.text.trim();
    if text.is_empty() {
        return bad_request("type something first");
    }
    let target = HookTarget {
        channel: req.channel.clone(),
        user: person.id.clone(),
        message_ts: None,
        ephemeral: false,
    };
    let Some(slash) = text.strip_prefix('/') else {
        return match pg.slack.post_as(&req.channel, &person.id, text) {
            Ok(_) => done(None),
            Err(e) => done(Some(e.to_owned())),
        };
    };
    let (name, args) = slash.split_once(char::is_whitespace).unwrap_or((slash, ""));
    let (command, path) = match name {
        "coffee" => ("/coffee", "/slack/commands"),
        "coffee-admin" => ("/coffee-admin", "/slack/admin"),
        "invite" => {
            // Slack's own command: `/invite @CoffeeBuddy` adds the bot.
            if !args.to_lowercase().contains("coffeebuddy") {
                let _ = pg.slack.deliver_command_answer(&target, &json!({ "text": "This playground can only invite @CoffeeBuddy: `/invite @CoffeeBuddy`" }));
                return done(None);
            }
            pg.slack.set_bot_member(&req.channel, true);
            let _ = pg.slack.post_as(
                &req.channel,
                &person.id,
                "added @CoffeeBuddy to this channel",
            );
            return done(None);
        }
        other => {
            let _ = pg.slack.deliver_command_answer(
                &target,
                &json!({ "text": format!("`/{other}` is not a valid command. This playground knows `/coffee`, `/coffee-admin` and `/invite @CoffeeBuddy`.") }),
            );
            return done(None);
        }
    };
    let channel = pg.channel_json(&req.channel);
    let token = pg.slack.issue_response_token(target.clone());
    let trigger_id = pg.slack.issue_trigger_id(&person.id);
    let form = command_form(
        &person,
        &channel,
        command,
        args.trim(),
        &pg.server.response_url(&token),
        &trigger_id,
    );
    let what = format!("{command} {}", args.trim());
    let delivery = pg
        .send(
            &headers,
            path,
            "application/x-www-form-urlencoded",
            form,
            what.trim_end(),
        )
        .await;
    let failed =
        |error: &str| json!({ "text": format!("{command} failed with the error \"{error}\"") });
    let answer = match delivery {
        Delivery::Answered(body) if body.iter().all(u8::is_ascii_whitespace) => None,
        Delivery::Answered(body) => Some(
            serde_json::from_slice::<Value>(&body)
                .unwrap_or_else(|_| json!({ "text": String::from_utf8_lossy(&body) })),
        ),
        Delivery::Status(_) => Some(failed("dispatch_failed")),
        Delivery::TimedOut => Some(failed("operation_timeout")),
        Delivery::Unreachable => Some(failed("dispatch_failed")),
    };
    if let Some(answer) = answer
        && let Err(refusal) = pg.slack.deliver_command_answer(&target, &answer)
    {
        pg.slack.log(
            "Slack",
            format!("refused the answer to {command}"),
            refusal.error,
        );
        return done(Some(format!(
            "Slack would not show the answer: {}",
            refusal.error
        )));
    }
    done(None)
}

/// The element with `action_id` (in the block `block_id`, if given).
fn find_action(
    blocks: &Value,
    block_id: Option<&str>,
    action_id: &str,
) -> Option<(Value, Option<String>)> {
    for block in blocks.as_array()? {
        let id = block.get("block_id").and_then(Value::as_str);
        if block_id.is_some() && id != block_id {
            continue;
        }
        let candidates = block
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(block.get("accessory"));
        for el in candidates {
            if el.get("action_id").and_then(Value::as_str) == Some(action_id) {
                return Some((el.clone(), id.map(str::to_owned)));
            }
        }
    }
    None
}

fn action_json(element: &Value, block_id: Option<String>) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut action = json!({
        "type": element.get("type").cloned().unwrap_or(json!("button")),
        "action_id": element.get("action_id"),
        "block_id": block_id.unwrap_or_default(),
        "text": element.get("text"),
        "action_ts": format!("{now:.6}"),
    });
    if let Some(value) = element.get("value") {
        action["value"] = value.clone();
    }
    if let Some(style) = element.get("style") {
        action["style"] = style.clone();
    }
    action
}

async fn click(
    State(pg): State<Playground>,
    headers: HeaderMap,
    Json(req): Json<ClickRequest>,
) -> Response {
    let Some(person) = pg.known(&req.user) else {
        return bad_request("unknown person");
    };
    let trigger_id = pg.slack.issue_trigger_id(&person.id);
    let mut payload = json!({
        "type": "block_actions",
        "user": Playground::user_json(&person),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "team": { "id": TEAM, "domain": TEAM_DOMAIN },
        "enterprise": null,
        "is_enterprise_install": false,
        "state": { "values": {} },
    });
    let label;
    if let Some(view_id) = &req.view_id {
        let Some((owner, view)) = pg.slack.view(view_id) else {
            return bad_request("that view is gone");
        };
        if owner != person.id {
            return bad_request("that view belongs to someone else");
        }
        let Some((element, block_id)) =
            find_action(&view["blocks"], req.block_id.as_deref(), &req.action_id)
        else {
            return bad_request("no such button");
        };
        label = element["text"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        payload["container"] = json!({ "type": "view", "view_id": view_id });
        payload["view"] = view;
        payload["actions"] = json!([action_json(&element, block_id)]);
    } else {
        let (Some(channel), Some(ts)) = (&req.channel, &req.ts) else {
            return bad_request("a click needs a message or a view");
        };
        if !pg.conversation_exists(&person, channel) {
            return bad_request("unknown conversation");
        }
        let Some(mut message) = pg.slack.find_message(channel, ts, &person.id) else {
            return bad_request("that message is gone");
        };
        let Some((element, block_id)) =
            find_action(&message["blocks"], req.block_id.as_deref(), &req.action_id)
        else {
            return bad_request("no such button");
        };
        label = element["text"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ephemeral = message["ephemeral"] == true;
        if let Some(m) = message.as_object_mut() {
            m.remove("ephemeral");
        }
        let token = pg.slack.issue_response_token(HookTarget {
            channel: channel.clone(),
            user: person.id.clone(),
            message_ts: Some(ts.clone()),
            ephemeral,
        });
        payload["container"] = json!({ "type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": ephemeral });
        payload["channel"] = pg.channel_json(channel);
        if !ephemeral {
            payload["message"] = message;
        }
        payload["response_url"] = json!(pg.server.response_url(&token));
        payload["actions"] = json!([action_json(&element, block_id)]);
    }
    let form = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default();
    let what = format!("block_actions [{label}]");
    match pg
        .send(
            &headers,
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            form,
            &what,
        )
        .await
    {
        Delivery::Answered(_) => done(None),
        Delivery::Status(s) => done(Some(format!(
            "CoffeeBuddy answered {s}: Slack would show a warning next to the button"
        ))),
        Delivery::TimedOut => done(Some("CoffeeBuddy did not answer within 3 s".to_owned())),
        Delivery::Unreachable => done(Some("CoffeeBuddy is not reachable".to_owned())),
    }
}

/// Slack's client-side checks of a modal's inputs, and the `state.values`
/// it would send: `Err` maps block ids to the messages Slack shows.
pub fn view_state(
    view: &Value,
    values: &Map<String, Value>,
    skip_checks: bool,
) -> Result<Value, Map<String, Value>> {
    let mut state = Map::new();
    let mut errors = Map::new();
    for block in view
        .get("blocks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if block.get("type").and_then(Value::as_str) != Some("input") {
            continue;
        }
        let (Some(block_id), Some(element)) = (
            block.get("block_id").and_then(Value::as_str),
            block.get("element"),
        ) else {
            continue;
        };
        let action_id = element
            .get("action_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let given = values.get(block_id).and_then(|b| b.get(action_id));
        let optional = block.get("optional") == Some(&json!(true));
        let kind = element
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let entry = match kind {
            "plain_text_input" => {
                let text = given.and_then(Value::as_str).unwrap_or_default();
                let len = text.chars().count();
                let max = element.get("max_length").and_then(Value::as_u64);
                let min = element.get("min_length").and_then(Value::as_u64);
                if !skip_checks {
                    if text.trim().is_empty() && !optional {
                        errors.insert(block_id.to_owned(), json!("Please fill out this field."));
                    } else if let Some(max) = max.filter(|m| len as u64 > *m) {
                        errors.insert(
                            block_id.to_owned(),
                            json!(format!("Please use {max} characters or fewer ({len} now).")),
                        );
                    } else if let Some(min) = min.filter(|m| !text.is_empty() && (len as u64) < *m)
                    {
                        errors.insert(
                            block_id.to_owned(),
                            json!(format!("Please use at least {min} characters.")),
                        );
                    }
                }
                // Slack sends `null` for an input left empty.
                json!({ "type": kind, "value": if text.is_empty() { Value::Null } else { json!(text) } })
            }
            "checkboxes" => {
                let chosen: Vec<&str> = given
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let selected: Vec<Value> = element
                    .get("options")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|o| {
                        o.get("value")
                            .and_then(Value::as_str)
                            .is_some_and(|v| chosen.contains(&v))
                    })
                    .cloned()
                    .collect();
                if selected.is_empty() && !optional && !skip_checks {
                    errors.insert(
                        block_id.to_owned(),
                        json!("Please select at least one option."),
                    );
                }
                json!({ "type": kind, "selected_options": selected })
            }
            _ => json!({ "type": kind, "value": given.cloned().unwrap_or(Value::Null) }),
        };
        state
            .entry(block_id.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(action_id.to_owned(), entry));
    }
    if errors.is_empty() {
        Ok(json!({ "values": state }))
    } else {
        Err(errors)
    }
}

async fn submit(
    State(pg): State<Playground>,
    headers: HeaderMap,
    Json(req): Json<SubmitRequest>,
) -> Response {
    let Some(person) = pg.known(&req.user) else {
        return bad_request("unknown person");
    };
    let Some((owner, mut view)) = pg.slack.view(&req.view_id) else {
        return bad_request("that view is gone");
    };
    if owner != person.id {
        return bad_request("that view belongs to someone else");
    }
    let state = match view_state(&view, &req.values, req.skip_client_checks) {
        Ok(state) => state,
        Err(errors) => {
            // Slack's client shows these itself; nothing is sent.
            let answer = json!({ "response_action": "errors", "errors": errors });
            let _ = pg
                .slack
                .apply_submission_answer(&person.id, &req.view_id, Some(&answer));
            pg.slack.log(
                "Slack (client)",
                "blocked a submission",
                "inline errors; nothing sent",
            );
            return done(None);
        }
    };
    view["state"] = state;
    let payload = json!({
        "type": "view_submission",
        "team": { "id": TEAM, "domain": TEAM_DOMAIN },
        "user": Playground::user_json(&person),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": pg.slack.issue_trigger_id(&person.id),
        "view": view,
        "response_urls": [],
        "is_enterprise_install": false,
        "enterprise": null,
    });
    let form = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default();
    let callback = view["callback_id"].as_str().unwrap_or_default().to_owned();
    let trouble = "We had some trouble connecting. Try again?".to_owned();
    match pg
        .send(
            &headers,
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            form,
            &format!("view_submission {callback}"),
        )
        .await
    {
        Delivery::Answered(body) => {
            let answer = if body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(v) => Some(v),
                    Err(_) => return done(Some(trouble)),
                }
            };
            match pg
                .slack
                .apply_submission_answer(&person.id, &req.view_id, answer.as_ref())
            {
                Ok(()) => done(None),
                Err(why) => {
                    pg.slack.log(
                        "Slack",
                        "could not use the answer to a view submission",
                        why.clone(),
                    );
                    done(Some(format!("{trouble} ({why})")))
                }
            }
        }
        Delivery::Status(_) | Delivery::TimedOut | Delivery::Unreachable => done(Some(trouble)),
    }
}

async fn close(
    State(pg): State<Playground>,
    headers: HeaderMap,
    Json(req): Json<CloseRequest>,
) -> Response {
    let Some(person) = pg.known(&req.user) else {
        return bad_request("unknown person");
    };
    let view = pg.slack.view(&req.view_id);
    if pg.slack.close_view(&person.id, &req.view_id)
        && let Some((_, view)) = view
    {
        let payload = json!({
            "type": "view_closed",
            "team": { "id": TEAM, "domain": TEAM_DOMAIN },
            "user": Playground::user_json(&person),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "view": view,
            "is_cleared": false,
        });
        let form =
            serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default();
        pg.send(
            &headers,
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            form,
            "view_closed",
        )
        .await;
    }
    done(None)
}

async fn home(State(pg): State<Playground>, headers: HeaderMap, Json(req): Json<As>) -> Response {
    let Some(person) = pg.known(&req.user) else {
        return bad_request("unknown person");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut event = json!({
        "type": "app_home_opened",
        "user": person.id,
        "channel": dm_id(&person.id),
        "tab": "home",
        "event_ts": format!("{now:.6}"),
    });
    if let Some(view) = pg.slack.home(&person.id) {
        event["view"] = view;
    }
    let body = json!({
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": format!("Ev{}", uuid::Uuid::new_v4().simple().to_string().to_uppercase()),
        "event_time": now as u64,
        "authorizations": [{ "team_id": TEAM, "user_id": crate::model::BOT_USER, "is_bot": true }],
        "is_ext_shared_channel": false,
    });
    match pg.send(&headers, "/slack/events", "application/json", body.to_string(), "app_home_opened").await {
        Delivery::Answered(_) => done(None),
        Delivery::Status(404) => done(Some("This CoffeeBuddy has no Events API endpoint (/slack/events) yet, so it has no App Home.".to_owned())),
        Delivery::Status(s) => done(Some(format!("CoffeeBuddy answered the app_home_opened event with {s}"))),
        Delivery::TimedOut => done(Some("CoffeeBuddy did not answer the event within 3 s".to_owned())),
        Delivery::Unreachable => done(Some("CoffeeBuddy is not reachable".to_owned())),
    }
}

/// What `/playground` answers where the playground is off: why, and how to
/// turn it on.
pub fn refusal_router(reason: &'static str) -> Router {
    Router::new().route(
        "/playground",
        get(move || async move {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("The playground is off: {reason}. It runs only in coffeebuddy-local with SERVICE_ENV=dev and no SLACK_API_BASE_URL (scripts/dev).\n"),
            )
        }),
    )
}

#[cfg(test)]
mod tests;
