//! Plays Slack's side of a conversation with a running CoffeeBuddy: signed
//! slash commands, button clicks, modal submissions and Events API
//! requests, built exactly as Slack sends them, to any base URL (an
//! in-process test server or a real `coffeebuddy-local`).
//!
//! Shared by the end-to-end chaos tests, the benchmark, the demo and the
//! soak, so that all of them speak the same wire format.

use std::time::{Duration, Instant};

use coffeebuddy_shared::slack::blocks;
use coffeebuddy_shared::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::slack::{now, signed_form};

/// The team every driven request comes from.
pub const TEAM: &str = "T0TEAM";

/// What CoffeeBuddy answered one request with.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// From sending the request to the last byte of the answer: the ack
    /// latency Slack would see.
    pub latency: Duration,
}

impl Answer {
    /// The answer's `text` (empty when there is none).
    pub fn text(&self) -> &str {
        self.body["text"].as_str().unwrap_or_default()
    }
}

/// Sends signed requests to one CoffeeBuddy.
#[derive(Debug, Clone)]
pub struct SlackDriver {
    base: String,
    secret: String,
    http: reqwest::Client,
}

impl SlackDriver {
    /// A driver for the CoffeeBuddy at `base` (`http://127.0.0.1:PORT`),
    /// signing with `secret`, with a 10 s timeout per request.
    pub fn new(base: &str, secret: &str) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
            http,
        }
    }

    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts `body` signed at the current time to `path`.
    pub async fn post_signed(&self, path: &str, body: &str) -> reqwest::Result<Answer> {
        let started = Instant::now();
        let response = signed_form(&self.http, &self.url(path), &self.secret, now(), body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            latency: started.elapsed(),
        })
    }

    /// `/coffee <text>` typed by `user` in `channel`; Slack would give the
    /// command `response_url`.
    pub async fn coffee(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        response_url: &str,
    ) -> reqwest::Result<Answer> {
        let body = command_form("/coffee", channel, user, text, response_url);
        self.post_signed("/slack/commands", &body).await
    }

    /// `/coffee-admin <text>` typed by `user` in `channel`.
    pub async fn coffee_admin(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        response_url: &str,
    ) -> reqwest::Result<Answer> {
        let body = command_form("/coffee-admin", channel, user, text, response_url);
        self.post_signed("/slack/admin", &body).await
    }

    /// `user` clicks the button `action_id` (e.g. [`blocks::ACTION_CLOSE`])
    /// of `run_id`'s message in `channel`.
    pub async fn click(
        &self,
        channel: &str,
        user: &str,
        action_id: &str,
        run_id: Uuid,
        response_url: &str,
    ) -> reqwest::Result<Answer> {
        let payload = button_payload(channel, user, action_id, run_id, response_url);
        self.interact(&payload).await
    }

    /// `user` submits the order modal of `run_id` with `text` and the
    /// ticked `options` ([`blocks::OPTION_SAVE_USUAL`],
    /// [`blocks::OPTION_RUNNER_AGAIN`]).
    pub async fn submit_order(
        &self,
        user: &str,
        run_id: Uuid,
        text: &str,
        options: &[&str],
    ) -> reqwest::Result<Answer> {
        self.interact(&order_submission(user, run_id, text, options))
            .await
    }

    /// Posts an interaction `payload` (`payload=<JSON>`).
    pub async fn interact(&self, payload: &Value) -> reqwest::Result<Answer> {
        let body =
            serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default();
        self.post_signed("/slack/interactions", &body).await
    }

    /// `user` opens CoffeeBuddy's App Home: the Events API's
    /// `app_home_opened`, as event `event_id` (JSON, signed).
    pub async fn app_home_opened(&self, user: &str, event_id: &str) -> reqwest::Result<Answer> {
        let body = app_home_opened(user, event_id).to_string();
        let ts = now().to_string();
        let started = Instant::now();
        let response = self
            .http
            .post(self.url("/slack/events"))
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, &ts)
            .header(
                SIGNATURE_HEADER,
                sign(self.secret.as_bytes(), &ts, body.as_bytes()),
            )
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            latency: started.elapsed(),
        })
    }
}

/// The Events API body Slack sends when `user` opens the App Home tab.
pub fn app_home_opened(user: &str, event_id: &str) -> Value {
    json!({
        "token": "legacy-unused",
        "team_id": TEAM,
        "api_app_id": "A0APP",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_700_000_000,
        "event": {
            "type": "app_home_opened",
            "user": user,
            "channel": format!("D{}", user.trim_start_matches('U')),
            "tab": "home",
            "event_ts": "1700000000.000100"
        }
    })
}

/// The form Slack posts for a slash command.
pub fn command_form(
    command: &str,
    channel: &str,
    user: &str,
    text: &str,
    response_url: &str,
) -> String {
    serde_urlencoded::to_string([
        ("token", "legacy-unused"),
        ("team_id", TEAM),
        ("team_domain", "acme"),
        ("channel_id", channel),
        ("channel_name", "coffee"),
        ("user_id", user),
        ("user_name", user),
        ("command", command),
        ("text", text),
        ("api_app_id", "A0APP"),
        ("response_url", response_url),
        ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
    ])
    .unwrap_or_default()
}

/// The `block_actions` payload of a click on a run message's button.
pub fn button_payload(
    channel: &str,
    user: &str,
    action_id: &str,
    run_id: Uuid,
    response_url: &str,
) -> Value {
    json!({
        "type": "block_actions",
        "team": { "id": TEAM, "domain": "acme" },
        "user": { "id": user, "username": user, "team_id": TEAM },
        "api_app_id": "A0APP",
        "trigger_id": format!("trigger-{user}-{action_id}"),
        "channel": { "id": channel, "name": "coffee" },
        "container": { "type": "message", "message_ts": "1700000000.000100", "channel_id": channel },
        "message": { "type": "message", "ts": "1700000000.000100", "text": "coffee run" },
        "response_url": response_url,
        "actions": [{
            "type": "button",
            "action_id": action_id,
            "block_id": "run_actions",
            "value": run_id.to_string(),
            "text": { "type": "plain_text", "text": "button" },
            "action_ts": "1700000001.000200"
        }]
    })
}

/// The `view_submission` payload of the order modal.
pub fn order_submission(user: &str, run_id: Uuid, text: &str, options: &[&str]) -> Value {
    let selected: Vec<Value> = options
        .iter()
        .map(|o| json!({ "value": o, "text": { "type": "plain_text", "text": o } }))
        .collect();
    json!({
        "type": "view_submission",
        "team": { "id": TEAM, "domain": "acme" },
        "user": { "id": user, "username": user, "team_id": TEAM },
        "api_app_id": "A0APP",
        "trigger_id": format!("trigger-{user}-submit"),
        "view": {
            "id": "V0MODAL",
            "type": "modal",
            "callback_id": blocks::ORDER_MODAL_CALLBACK,
            "private_metadata": run_id.to_string(),
            "state": { "values": {
                blocks::ORDER_BLOCK: { blocks::ORDER_INPUT: { "type": "plain_text_input", "value": text } },
                blocks::OPTIONS_BLOCK: { blocks::OPTIONS_INPUT: { "type": "checkboxes", "selected_options": selected } }
            } }
        }
    })
}

/// The `value` of the button with `action_id` anywhere in a message's
/// blocks (the run id on a run message's **Order** button).
pub fn button_value(message: &Value, action_id: &str) -> Option<String> {
    fn walk(v: &Value, action_id: &str) -> Option<String> {
        match v {
            Value::Object(map) => {
                if map.get("action_id").and_then(Value::as_str) == Some(action_id) {
                    return map.get("value").and_then(Value::as_str).map(str::to_owned);
                }
                map.values().find_map(|v| walk(v, action_id))
            }
            Value::Array(items) => items.iter().find_map(|v| walk(v, action_id)),
            _ => None,
        }
    }
    walk(&message["blocks"], action_id)
}

/// The run a run message is for (its **Order** button's value).
pub fn run_of_message(message: &Value) -> Option<Uuid> {
    button_value(message, blocks::ACTION_ORDER).and_then(|v| Uuid::parse_str(&v).ok())
}

/// The effect key (`<effect id>:<page>`) CoffeeBuddy puts in every post's
/// metadata, which makes a post recognisable when it is read back.
pub fn effect_key(message: &Value) -> Option<&str> {
    message["metadata"]["event_payload"]["effect"].as_str()
}
