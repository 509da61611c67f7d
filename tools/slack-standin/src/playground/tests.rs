//! The playground against a stand-in for CoffeeBuddy: a small router that
//! checks each request's signature and answers as the functions would.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::*;

const SECRET: &str = "playground-test-secret";
const TOKEN: &str = "xoxb-playground-test";

#[derive(Clone, Default)]
struct Functions {
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    slack_base: Arc<Mutex<String>>,
}

/// Checks the signature as CoffeeBuddy does and records the request.
fn record(functions: &Functions, path: &str, headers: &HeaderMap, body: &Bytes) -> Value {
    let ts = headers[TIMESTAMP_HEADER].to_str().expect("timestamp");
    let signature = headers[SIGNATURE_HEADER].to_str().expect("signature");
    assert_eq!(
        signature,
        sign(SECRET.as_bytes(), ts, body),
        "signed as Slack signs"
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).expect("a form");
    let mut value: Value = Value::Object(
        form.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    );
    if let Some(payload) = value.get("payload").and_then(Value::as_str) {
        value = serde_json::from_str(payload).expect("payload JSON");
    }
    functions
        .seen
        .lock()
        .expect("lock")
        .push((path.to_owned(), value.clone()));
    value
}

async fn commands(
    State(f): State<Functions>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let form = record(&f, "/slack/commands", &headers, &body);
    axum::Json(
        json!({ "response_type": "ephemeral", "text": format!("You said *{}*", form["text"].as_str().unwrap_or("")) }),
    )
}

async fn interactions(
    State(f): State<Functions>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let payload = record(&f, "/slack/interactions", &headers, &body);
    if payload["type"] == "block_actions" {
        // Open a modal with the click's trigger_id, as the Order button does.
        let base = f.slack_base.lock().expect("lock").clone();
        let view = json!({
            "type": "modal", "callback_id": "order_submit", "private_metadata": "run-1",
            "title": { "type": "plain_text", "text": "Coffee order" },
            "submit": { "type": "plain_text", "text": "Order" },
            "blocks": [{ "type": "input", "block_id": "order_block", "label": { "type": "plain_text", "text": "Your order" },
                "element": { "type": "plain_text_input", "action_id": "order_text", "max_length": 10 } }],
        });
        let answer: Value = reqwest::Client::new()
            .post(format!("{base}/views.open"))
            .bearer_auth(TOKEN)
            .json(&json!({ "trigger_id": payload["trigger_id"], "view": view }))
            .send()
            .await
            .expect("views.open")
            .json()
            .await
            .expect("json");
        assert_eq!(answer["ok"], true, "{answer}");
        return axum::http::StatusCode::OK.into_response();
    }
    let text = payload["view"]["state"]["values"]["order_block"]["order_text"]["value"]
        .as_str()
        .unwrap_or_default();
    if text == "tea" {
        return axum::Json(
            json!({ "response_action": "errors", "errors": { "order_block": "No tea today" } }),
        )
        .into_response();
    }
    axum::http::StatusCode::OK.into_response()
}

async fn start() -> (Playground, String, Functions) {
    let functions = Functions::default();
    let app = Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .with_state(functions.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let playground = Playground::start(
        TOKEN,
        SecretString::from(SECRET),
        FunctionsAddress::Port(port),
    )
    .expect("start");
    *functions.slack_base.lock().expect("lock") = playground.slack_api_base_url();
    let app = app.merge(playground.router());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (playground, format!("http://127.0.0.1:{port}"), functions)
}

async fn act(base: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/playground/api/{path}"))
        .json(&body)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_slash_command_reaches_the_functions_signed_and_its_answer_is_shown_only_to_its_author() {
    let (playground, base, functions) = start().await;

    let answer = act(
        &base,
        "command",
        json!({ "as": "U0ALICE", "channel": "C0COFFEE", "text": "/coffee in 15m Blue Bottle" }),
    )
    .await;

    assert_eq!(answer["ok"], true, "{answer}");
    let seen = functions.seen.lock().expect("lock").clone();
    let (path, form) = &seen[0];
    assert_eq!(path, "/slack/commands");
    assert_eq!(form["command"], "/coffee");
    assert_eq!(form["text"], "in 15m Blue Bottle");
    assert_eq!(form["user_id"], "U0ALICE");
    assert_eq!(form["channel_id"], "C0COFFEE");
    assert!(
        form["response_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:"))
    );
    assert!(!form["trigger_id"].as_str().unwrap_or_default().is_empty());
    let alice = playground.slack().snapshot("U0ALICE");
    let shown = &alice["channels"][0]["messages"][0];
    assert_eq!(shown["text"], "You said *in 15m Blue Bottle*");
    assert_eq!(shown["ephemeral"], true);
    let bob = playground.slack().snapshot("U0BOB");
    assert_eq!(
        bob["channels"][0]["messages"].as_array().map(Vec::len),
        Some(0),
        "ephemerals are private"
    );
}

#[tokio::test]
async fn a_click_carries_a_fresh_trigger_id_that_opens_the_modal_and_submissions_show_inline_errors()
 {
    let (playground, base, functions) = start().await;
    let slack = playground.slack();
    let posted = slack.web_api(&WebRequestOwned::json("chat.postMessage", json!({
        "channel": "C0COFFEE", "text": "run",
        "blocks": [{ "type": "actions", "block_id": "run_actions", "elements": [
            { "type": "button", "action_id": "order_open", "value": "run-1", "text": { "type": "plain_text", "text": "Order" } }] }],
    })).as_request());
    let ts = posted.body["ts"].as_str().expect("ts").to_owned();

    let clicked = act(&base, "click", json!({ "as": "U0BOB", "channel": "C0COFFEE", "ts": ts, "block_id": "run_actions", "action_id": "order_open" })).await;
    assert_eq!(clicked["ok"], true, "{clicked}");
    let modal = slack.open_modal("U0BOB").expect("Bob sees the modal");
    assert!(slack.open_modal("U0ALICE").is_none());
    let click = functions.seen.lock().expect("lock")[0].1.clone();
    assert_eq!(click["actions"][0]["value"], "run-1");
    assert_eq!(click["container"]["message_ts"], ts);
    let view_id = modal["id"].as_str().expect("view id").to_owned();

    // Too long for max_length: Slack's client refuses, nothing is sent.
    let sent_before = functions.seen.lock().expect("lock").len();
    act(&base, "submit", json!({ "as": "U0BOB", "view_id": view_id, "values": { "order_block": { "order_text": "a very long order" } } })).await;
    assert_eq!(functions.seen.lock().expect("lock").len(), sent_before);
    assert!(
        slack.open_modal("U0BOB").expect("still open")["errors"]["order_block"]
            .as_str()
            .is_some_and(|e| e.contains("10 characters"))
    );

    // The app's own refusal shows inline too.
    act(&base, "submit", json!({ "as": "U0BOB", "view_id": view_id, "values": { "order_block": { "order_text": "tea" } } })).await;
    assert_eq!(
        slack.open_modal("U0BOB").expect("still open")["errors"]["order_block"],
        "No tea today"
    );

    // Accepted: the modal closes.
    act(&base, "submit", json!({ "as": "U0BOB", "view_id": view_id, "values": { "order_block": { "order_text": "cortado" } } })).await;
    assert!(slack.open_modal("U0BOB").is_none());
    let submitted = functions
        .seen
        .lock()
        .expect("lock")
        .last()
        .expect("sent")
        .1
        .clone();
    assert_eq!(submitted["view"]["private_metadata"], "run-1");
    assert_eq!(
        submitted["view"]["state"]["values"]["order_block"]["order_text"]["value"],
        "cortado"
    );
}

#[tokio::test]
async fn the_page_refuses_unknown_people_and_conversations() {
    let (_playground, base, _functions) = start().await;
    let nobody = reqwest::Client::new()
        .get(format!("{base}/playground/api/state?as=U0NOBODY"))
        .send()
        .await
        .expect("get");
    assert_eq!(nobody.status(), 400);
    let elsewhere = act(
        &base,
        "command",
        json!({ "as": "U0ALICE", "channel": "D0BOB", "text": "/coffee" }),
    )
    .await;
    assert_eq!(elsewhere["ok"], false);
    let page = reqwest::get(format!("{base}/playground"))
        .await
        .expect("page");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .is_ok_and(|c| c.contains("script-src 'self'"))
    );
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("CoffeeBuddy playground")
    );
}

#[test]
fn slacks_client_checks_required_inputs_and_max_length_unless_told_not_to() {
    let view = json!({ "blocks": [
        { "type": "input", "block_id": "b", "label": { "type": "plain_text", "text": "L" },
          "element": { "type": "plain_text_input", "action_id": "a", "max_length": 3 } },
        { "type": "input", "block_id": "o", "optional": true, "label": { "type": "plain_text", "text": "O" },
          "element": { "type": "checkboxes", "action_id": "c", "options": [
              { "text": { "type": "plain_text", "text": "One" }, "value": "one" },
              { "text": { "type": "plain_text", "text": "Two" }, "value": "two" }] } }
    ] });
    let values = |text: &str| -> Map<String, Value> {
        json!({ "b": { "a": text }, "o": { "c": ["two"] } })
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        view_state(&view, &values(""), false)
            .expect_err("required")
            .contains_key("b")
    );
    assert!(
        view_state(&view, &values("abcd"), false)
            .expect_err("too long")
            .contains_key("b")
    );
    let state = view_state(&view, &values("abc"), false).expect("fine");
    assert_eq!(state["values"]["b"]["a"]["value"], "abc");
    assert_eq!(
        state["values"]["o"]["c"]["selected_options"][0]["text"]["text"],
        "Two"
    );
    let skipped = view_state(&view, &values(""), true).expect("sent anyway");
    assert_eq!(skipped["values"]["b"]["a"]["value"], Value::Null);
}

/// An owned Web API request for calling the model directly.
struct WebRequestOwned {
    method: &'static str,
    body: String,
}

impl WebRequestOwned {
    fn json(method: &'static str, body: Value) -> Self {
        Self {
            method,
            body: body.to_string(),
        }
    }

    fn as_request(&self) -> crate::model::WebRequest<'_> {
        crate::model::WebRequest {
            method: self.method,
            authorization: Some("Bearer xoxb-playground-test"),
            content_type: Some("application/json"),
            query: None,
            body: self.body.as_bytes(),
        }
    }
}
