//! The real `coffeebuddy-slash-command` binary on AWS Lambda: started the way
//! Lambda starts it (`AWS_LAMBDA_RUNTIME_API` pointing at a fake Runtime
//! API, no `PORT`), it serves the same router through `lambda_http` and
//! gives a signed `/coffee` the answer it gives over plain HTTP.
//!
//! Test builds compile `coffeebuddy-shared` with its `lambda` feature (this
//! crate's dev-dependency), so the binary under test has the adapter; plain
//! `cargo build` does not.

use std::process::Stdio;
use std::time::Duration;

use coffeebuddy_shared::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use coffeebuddy_test_support::lambda_fake::{LambdaFake, Outcome, api_gateway_v2_event};
use coffeebuddy_test_support::slack_fake::SlackFake;
use coffeebuddy_test_support::{BOT_TOKEN, SIGNING_SECRET, database_url, slack};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_coffeebuddy-slash-command");

/// The binary with exactly `env` (nothing inherited), killed when dropped;
/// its stdout lines arrive on the channel.
fn start(env: &[(&str, String)]) -> (Child, mpsc::UnboundedReceiver<String>) {
    let mut child = Command::new(BIN)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start coffeebuddy-slash-command");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Waits for the JSON log line whose message is `message`.
async fn wait_for(lines: &mut mpsc::UnboundedReceiver<String>, message: &str) -> Value {
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no {message:?} log line; got:\n{}", seen.join("\n")));
        if let Ok(json) = serde_json::from_str::<Value>(&line)
            && json["message"] == message
        {
            return json;
        }
        seen.push(line);
    }
}

fn common_env(db_url: &str, slack: &SlackFake) -> Vec<(&'static str, String)> {
    vec![
        ("SERVICE_ENV", "test".to_owned()),
        ("SLACK_SIGNING_SECRET", SIGNING_SECRET.to_owned()),
        ("SLACK_BOT_TOKEN", BOT_TOKEN.to_owned()),
        ("SLACK_API_BASE_URL", slack.base_url()),
        ("DATABASE_URL", db_url.to_owned()),
    ]
}

fn coffee_body(channel: &str) -> String {
    serde_urlencoded::to_string([
        ("team_id", "T0LAMBDA"),
        ("channel_id", channel),
        ("user_id", "U0LAMBDA"),
        ("command", "/coffee"),
        ("text", "Blue Bottle"),
        ("response_url", "http://127.0.0.1:9/unused"),
        ("trigger_id", "lambda-test"),
    ])
    .expect("form")
}

/// `body` as API Gateway hands it to Lambda, signed with `secret`.
fn signed_event(body: &str, secret: &str) -> Value {
    let ts = slack::now().to_string();
    let signature = sign(secret.as_bytes(), &ts, body.as_bytes());
    api_gateway_v2_event(
        "POST",
        "/slack/commands",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            (TIMESTAMP_HEADER, &ts),
            (SIGNATURE_HEADER, &signature),
        ],
        body.as_bytes(),
    )
}

/// The status, content type and JSON body of a Lambda HTTP response.
fn lambda_answer(outcome: Option<Outcome>) -> (u16, String, Value) {
    let Some(Outcome::Response(response)) = outcome else {
        panic!("no response from the function: {outcome:?}");
    };
    let status = response["statusCode"].as_u64().expect("statusCode") as u16;
    let content_type = response["headers"]["content-type"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let body = response["body"].as_str().expect("a text body");
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, content_type, body)
}

#[sqlx::test(migrations = false)]
async fn a_signed_coffee_through_the_lambda_runtime_api_gets_the_same_answer_as_over_http(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange: the same binary twice on one fresh database, once as Knative
    // runs it (a port) and once as Lambda does (the Runtime API, no port).
    let db_url = database_url(&opts);
    let slack_fake = SlackFake::start().await;
    let mut http_env = common_env(&db_url, &slack_fake);
    http_env.push(("PORT", "0".to_owned()));
    let (_http_child, mut http_lines) = start(&http_env);
    let listening = wait_for(&mut http_lines, "listening").await;
    let addr = listening["addr"].as_str().expect("addr").to_owned();
    let port = addr.rsplit(':').next().expect("port").to_owned();

    let lambda = LambdaFake::start().await;
    let mut lambda_env = common_env(&db_url, &slack_fake);
    lambda_env.extend(lambda.vars());
    let (_lambda_child, mut lambda_lines) = start(&lambda_env);
    wait_for(
        &mut lambda_lines,
        "serving through the AWS Lambda Runtime API",
    )
    .await;

    // Act: /coffee in two channels, one per transport.
    let http_body = coffee_body("C0OVERHTTP");
    let response = slack::signed_form(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}/slack/commands"),
        SIGNING_SECRET,
        slack::now(),
        &http_body,
    )
    .send()
    .await
    .expect("HTTP /coffee");
    let over_http = (
        response.status().as_u16(),
        response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_owned(),
        response.json::<Value>().await.expect("JSON answer"),
    );
    let over_lambda = lambda_answer(
        lambda
            .invoke(
                signed_event(&coffee_body("C0OVERLAMBDA"), SIGNING_SECRET),
                Duration::from_secs(30),
            )
            .await,
    );

    // Assert: the same answer, and the Lambda invocation started a real run.
    assert_eq!(over_http.0, 200, "{over_http:?}");
    assert!(
        over_http.2["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Coffee run started"),
        "{over_http:?}"
    );
    assert_eq!(over_lambda, over_http);
    let pool = PgPoolOptions::new().connect_with(opts).await.unwrap();
    let channels: Vec<String> =
        sqlx::query_scalar("SELECT channel_id FROM runs ORDER BY channel_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(channels, ["C0OVERHTTP", "C0OVERLAMBDA"]);
    pool.close().await;
    assert!(
        lambda.init_errors().is_empty(),
        "{:?}",
        lambda.init_errors()
    );
}

#[sqlx::test(migrations = false)]
async fn a_badly_signed_coffee_through_lambda_is_refused_like_over_http_and_changes_nothing(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange
    let db_url = database_url(&opts);
    let slack_fake = SlackFake::start().await;
    let lambda = LambdaFake::start().await;
    let mut env = common_env(&db_url, &slack_fake);
    env.extend(lambda.vars());
    let (_child, mut lines) = start(&env);
    wait_for(&mut lines, "serving through the AWS Lambda Runtime API").await;

    // Act
    let (status, _, body) = lambda_answer(
        lambda
            .invoke(
                signed_event(&coffee_body("C0FORGED"), "not-the-signing-secret"),
                Duration::from_secs(30),
            )
            .await,
    );

    // Assert
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].is_string(), "a JSON error: {body}");
    let pool = PgPoolOptions::new().connect_with(opts).await.unwrap();
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 0);
    pool.close().await;
}
