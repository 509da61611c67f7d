//! Slack signatures on a real route: only correctly signed, fresh requests
//! reach the handler; everything else is a 401 that changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::FromRef;
use axum::routing::post;
use chrono::DateTime;
use coffeebuddy_shared::clock::ManualClock;
use coffeebuddy_shared::runtime::{self, Readiness};
use coffeebuddy_shared::slack::signature::{SignedBody, SlackVerifier};
use coffeebuddy_test_support::slack::signed_form;
use coffeebuddy_test_support::spawn;

// Slack's published example ("Verifying requests from Slack").
const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TIMESTAMP: i64 = 1_531_420_618;
const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

#[derive(Clone)]
struct State {
    verifier: SlackVerifier,
    handled: Arc<AtomicUsize>,
}

impl FromRef<State> for SlackVerifier {
    fn from_ref(state: &State) -> Self {
        state.verifier.clone()
    }
}

async fn handler(
    axum::extract::State(state): axum::extract::State<State>,
    SignedBody(body): SignedBody,
) -> String {
    state.handled.fetch_add(1, Ordering::SeqCst);
    format!("{} bytes", body.len())
}

#[tokio::test]
async fn only_correctly_signed_fresh_requests_reach_the_handler() {
    // Arrange: the clock reads Slack's example time.
    let clock = ManualClock::new(DateTime::from_timestamp(TIMESTAMP, 0).unwrap());
    let handled = Arc::new(AtomicUsize::new(0));
    let state = State {
        verifier: SlackVerifier::new(SECRET.into(), Arc::new(clock.clone())),
        handled: Arc::clone(&handled),
    };
    let inner = Router::new()
        .route("/slack/commands", post(handler))
        .with_state(state);
    let app = spawn(runtime::app(inner, Readiness::new("v"), "/metrics")).await;
    let url = app.url("/slack/commands");
    let client = reqwest::Client::new();
    let send = |ts: Option<&str>, sig: Option<&str>, body: &str| {
        let mut req = client.post(&url).body(body.to_owned());
        if let Some(ts) = ts {
            req = req.header("X-Slack-Request-Timestamp", ts);
        }
        if let Some(sig) = sig {
            req = req.header("X-Slack-Signature", sig);
        }
        req.send()
    };
    let ts = TIMESTAMP.to_string();

    // Act + Assert: every kind of bad request is a 401 with a JSON error.
    let tampered = BODY.replace("roadrunner", "coyote");
    let refused = [
        send(Some(&ts), Some(SIGNATURE), &tampered).await.unwrap(),
        signed_form(&client, &url, "wrong-secret", TIMESTAMP, BODY)
            .send()
            .await
            .unwrap(),
        send(None, Some(SIGNATURE), BODY).await.unwrap(),
        send(Some(&ts), None, BODY).await.unwrap(),
        send(Some(&ts), Some("v0=nothex"), BODY).await.unwrap(),
        signed_form(&client, &url, SECRET, TIMESTAMP - 301, BODY)
            .send()
            .await
            .unwrap(),
        signed_form(&client, &url, SECRET, TIMESTAMP + 301, BODY)
            .send()
            .await
            .unwrap(),
    ];
    for response in refused {
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid Slack signature");
    }
    assert_eq!(
        handled.load(Ordering::SeqCst),
        0,
        "no refused request reached the handler"
    );

    // Slack's own example passes, as does a fresh request signed now.
    let ok = send(Some(&ts), Some(SIGNATURE), BODY).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), format!("{} bytes", BODY.len()));
    let ok = signed_form(&client, &url, SECRET, TIMESTAMP + 299, "text=in+5m")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    // The same request replayed ten minutes later is refused.
    clock.advance(chrono::Duration::minutes(10));
    let replay = send(Some(&ts), Some(SIGNATURE), BODY).await.unwrap();
    assert_eq!(replay.status(), 401);
    assert_eq!(handled.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_reaches_a_handler() {
    // Arrange
    let handled = Arc::new(AtomicUsize::new(0));
    let state = State {
        verifier: SlackVerifier::new(
            SECRET.into(),
            Arc::new(ManualClock::new(chrono::Utc::now())),
        ),
        handled: Arc::clone(&handled),
    };
    let inner = Router::new()
        .route("/slack/commands", post(handler))
        .with_state(state);
    let app = spawn(runtime::app(inner, Readiness::new("v"), "/metrics")).await;
    let body = "x".repeat(runtime::MAX_BODY_BYTES + 1);

    // Act
    let response = signed_form(
        &reqwest::Client::new(),
        &app.url("/slack/commands"),
        SECRET,
        coffeebuddy_test_support::slack::now(),
        &body,
    )
    .send()
    .await
    .unwrap();

    // Assert
    assert_eq!(response.status(), 413);
    assert_eq!(handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn hostile_timestamps_are_refused_with_401_and_never_reach_the_handler() {
    // Arrange: the clock reads Slack's example time; each hostile timestamp
    // is signed with the right secret, so only the timestamp check stands
    // between it and the handler.
    let clock = ManualClock::new(DateTime::from_timestamp(TIMESTAMP, 0).unwrap());
    let handled = Arc::new(AtomicUsize::new(0));
    let state = State {
        verifier: SlackVerifier::new(SECRET.into(), Arc::new(clock)),
        handled: Arc::clone(&handled),
    };
    let inner = Router::new()
        .route("/slack/commands", post(handler))
        .with_state(state);
    let app = spawn(runtime::app(inner, Readiness::new("v"), "/metrics")).await;
    let url = app.url("/slack/commands");
    let client = reqwest::Client::new();
    let hostile = [
        i64::MIN.to_string(),
        i64::MAX.to_string(),
        "-1".to_owned(),
        "1234567890123456789012345678901234567890".to_owned(),
        "1e10".to_owned(),
        "0x10".to_owned(),
        String::new(),
        " ".to_owned(),
        format!(" {TIMESTAMP} "),
        format!("+{TIMESTAMP}"),
    ];

    for ts in &hostile {
        // Act
        let response = client
            .post(&url)
            .header("X-Slack-Request-Timestamp", ts.as_str())
            .header(
                "X-Slack-Signature",
                coffeebuddy_shared::slack::signature::sign(SECRET.as_bytes(), ts, BODY.as_bytes()),
            )
            .body(BODY)
            .send()
            .await
            .unwrap_or_else(|e| panic!("timestamp {ts:?} dropped the connection: {e}"));

        // Assert
        assert_eq!(response.status(), 401, "timestamp {ts:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid Slack signature", "timestamp {ts:?}");
    }
    assert_eq!(handled.load(Ordering::SeqCst), 0);

    // The server is still up and a good request still passes.
    let ok = signed_form(&client, &url, SECRET, TIMESTAMP, BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
