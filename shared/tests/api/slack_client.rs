//! `SlackClient` against `SlackFake`: real HTTP over loopback, scripted
//! failures, recorded calls.

use std::time::{Duration, Instant};

use coffeebuddy_shared::config::SlackSettings;
use coffeebuddy_shared::domain::ids::{ChannelId, UserId};
use coffeebuddy_shared::slack::blocks::OutgoingMessage;
use coffeebuddy_shared::slack::client::{RetryPolicy, SlackApiError, SlackClient};
use coffeebuddy_shared::slack::payloads::ResponseUrl;
use coffeebuddy_test_support::BOT_TOKEN;
use coffeebuddy_test_support::slack_fake::{FakeResponse, SlackFake};
use secrecy::SecretString;
use serde_json::json;

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
    }
}

fn client_for(base_url: &str) -> SlackClient {
    SlackClient::new(&SlackSettings {
        signing_secret: SecretString::from("signing"),
        bot_token: SecretString::from(BOT_TOKEN),
        api_base_url: base_url.to_owned(),
    })
    .with_retry_policy(fast_policy())
}

async fn fake_and_client() -> (SlackFake, SlackClient) {
    let fake = SlackFake::start().await;
    let client = client_for(&fake.base_url());
    (fake, client)
}

fn message() -> OutgoingMessage {
    OutgoingMessage {
        text: "hello".to_owned(),
        blocks: json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "hello" } }]),
    }
}

fn channel() -> ChannelId {
    ChannelId::parse("C0COFFEE").expect("valid channel id")
}

#[tokio::test]
async fn a_posted_message_is_sent_as_json_with_the_bearer_token_and_its_ts_is_returned() {
    // Arrange
    let (fake, client) = fake_and_client().await;

    // Act
    let posted = client
        .post_message("C0COFFEE", &message())
        .await
        .expect("posted");

    // Assert
    assert_eq!(posted.channel, "C0COFFEE");
    assert!(
        fake.messages("C0COFFEE")
            .iter()
            .any(|m| m["ts"] == posted.ts.as_str()),
        "the ts Slack reported: {}",
        posted.ts
    );
    let calls = fake.calls_to("chat.postMessage");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    assert_eq!(
        calls[0].content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(calls[0].body["channel"], "C0COFFEE");
    assert_eq!(calls[0].body["text"], "hello");
    assert_eq!(calls[0].body["blocks"], message().blocks);
}

#[tokio::test]
async fn a_dm_to_a_user_id_reports_the_dm_conversation() {
    let (_fake, client) = fake_and_client().await;
    let posted = client
        .post_message("U0BOB", &message())
        .await
        .expect("posted");
    assert_eq!(posted.channel, "D0BOB");
}

#[tokio::test]
async fn an_update_names_the_channel_and_ts() {
    let (fake, client) = fake_and_client().await;
    client
        .update_message(&channel(), "1700000000.000100", &message())
        .await
        .expect("updated");
    let call = &fake.calls_to("chat.update")[0];
    assert_eq!(call.body["channel"], "C0COFFEE");
    assert_eq!(call.body["ts"], "1700000000.000100");
    assert_eq!(call.body["blocks"], message().blocks);
}

#[tokio::test]
async fn a_slack_error_is_returned_without_retrying() {
    let (fake, client) = fake_and_client().await;
    fake.fail_next(
        "chat.postMessage",
        FakeResponse::SlackError("channel_not_found"),
    );

    let err = client
        .post_message("C0GONE", &message())
        .await
        .expect_err("fails");

    assert_eq!(
        err,
        SlackApiError::Api {
            method: "chat.postMessage".to_owned(),
            error: "channel_not_found".to_owned()
        }
    );
    assert!(!err.is_retryable());
    assert_eq!(fake.calls_to("chat.postMessage").len(), 1);
}

#[tokio::test]
async fn a_transient_slack_error_is_retried() {
    let (fake, client) = fake_and_client().await;
    fake.fail_next("chat.update", FakeResponse::SlackError("internal_error"));

    client
        .update_message(&channel(), "1.2", &message())
        .await
        .expect("second attempt succeeds");

    assert_eq!(fake.calls_to("chat.update").len(), 2);
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_for_retry_after_then_retried() {
    let (fake, client) = fake_and_client().await;
    fake.fail_next(
        "chat.postMessage",
        FakeResponse::RateLimited {
            retry_after_secs: 1,
        },
    );

    let started = Instant::now();
    client
        .post_message("C0COFFEE", &message())
        .await
        .expect("posted");

    let calls = fake.calls_to("chat.postMessage");
    assert_eq!(calls.len(), 2);
    let gap = calls[1].at.duration_since(calls[0].at);
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_gives_up_at_once() {
    let (fake, client) = fake_and_client().await;
    fake.fail_next(
        "chat.postMessage",
        FakeResponse::RateLimited {
            retry_after_secs: 60,
        },
    );

    let started = Instant::now();
    let err = client
        .post_message("C0COFFEE", &message())
        .await
        .expect_err("gives up");

    assert_eq!(
        err,
        SlackApiError::RateLimited {
            method: "chat.postMessage".to_owned(),
            retry_after: Duration::from_secs(60)
        }
    );
    assert!(err.is_retryable(), "the caller may retry later");
    assert_eq!(fake.calls_to("chat.postMessage").len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_success() {
    let (fake, client) = fake_and_client().await;
    fake.fail_next("chat.postMessage", FakeResponse::Status(500));
    fake.fail_next("chat.postMessage", FakeResponse::Status(500));

    client
        .post_message("C0COFFEE", &message())
        .await
        .expect("third attempt succeeds");

    let calls = fake.calls_to("chat.postMessage");
    assert_eq!(calls.len(), 3);
    // 10 ms, then 20 ms.
    assert!(calls[2].at.duration_since(calls[1].at) >= Duration::from_millis(20));
}

#[tokio::test]
async fn server_errors_on_every_attempt_end_in_a_status_error() {
    let (fake, client) = fake_and_client().await;
    for _ in 0..3 {
        fake.fail_next("chat.postMessage", FakeResponse::Status(500));
    }

    let err = client
        .post_message("C0COFFEE", &message())
        .await
        .expect_err("fails");

    assert_eq!(
        err,
        SlackApiError::Status {
            method: "chat.postMessage".to_owned(),
            status: 500
        }
    );
    assert!(err.is_retryable());
    assert_eq!(fake.calls_to("chat.postMessage").len(), 3);
}

#[tokio::test]
async fn an_unreachable_slack_is_a_retryable_transport_error() {
    // A port that was free a moment ago: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = client_for(&format!("http://{addr}/api"));

    let err = client
        .post_message("C0COFFEE", &message())
        .await
        .expect_err("fails");

    assert!(matches!(err, SlackApiError::Transport { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        !err.to_string().contains(&addr.to_string()),
        "no URL in errors: {err}"
    );
}

#[tokio::test]
async fn views_open_makes_a_single_attempt() {
    let (fake, client) = fake_and_client().await;
    fake.fail_next("views.open", FakeResponse::Status(503));

    let err = client
        .open_view("trigger-1", &json!({ "type": "modal" }))
        .await
        .expect_err("fails");

    assert!(matches!(err, SlackApiError::Status { status: 503, .. }));
    let calls = fake.calls_to("views.open");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body["trigger_id"], "trigger-1");
    assert_eq!(calls[0].body["view"]["type"], "modal");
}

#[tokio::test]
async fn a_slow_views_open_times_out_instead_of_outliving_the_trigger() {
    let fake = SlackFake::start().await;
    let client = client_for(&fake.base_url()).with_retry_policy(RetryPolicy {
        timeout: Duration::from_millis(200),
        ..fast_policy()
    });
    fake.fail_next("views.open", FakeResponse::Delayed(Duration::from_secs(2)));

    let started = Instant::now();
    let err = client
        .open_view("trigger-1", &json!({}))
        .await
        .expect_err("times out");

    assert!(
        matches!(&err, SlackApiError::Transport { message, .. } if message == "timed out"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(fake.calls_to("views.open").len(), 1);
}

#[tokio::test]
async fn users_info_is_sent_as_a_form_and_reports_admins() {
    let (fake, client) = fake_and_client().await;
    fake.set_workspace_admin("U0ADMIN", true);
    let admin = UserId::parse("U0ADMIN").expect("valid");
    let someone = UserId::parse("U0SOMEONE").expect("valid");

    let admin_info = client.users_info(&admin).await.expect("info");
    let someone_info = client.users_info(&someone).await.expect("info");

    assert_eq!(admin_info.id, admin);
    assert!(admin_info.is_admin);
    assert!(admin_info.is_workspace_admin());
    assert!(!someone_info.is_workspace_admin());
    let call = &fake.calls_to("users.info")[0];
    assert_eq!(
        call.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.body["user"], "U0ADMIN");
}

#[tokio::test]
async fn a_response_url_gets_json_and_no_bot_token() {
    let (fake, client) = fake_and_client().await;
    let url = ResponseUrl::parse(&fake.response_url("cmd-1")).expect("valid URL");

    client
        .respond(&url, &json!({ "response_type": "ephemeral", "text": "hi" }))
        .await
        .expect("answered");

    let calls = fake.calls_to("response:cmd-1");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].authorization, None);
    assert_eq!(calls[0].body["text"], "hi");
}

#[tokio::test]
async fn the_token_never_shows_in_debug_or_errors() {
    let (fake, client) = fake_and_client().await;
    fake.fail_next("chat.postMessage", FakeResponse::SlackError("invalid_auth"));

    let err = client
        .post_message("C0COFFEE", &message())
        .await
        .expect_err("fails");

    assert!(!format!("{client:?}").contains(BOT_TOKEN));
    assert!(!err.to_string().contains(BOT_TOKEN));
    assert!(!format!("{err:?}").contains(BOT_TOKEN));
}

#[tokio::test]
async fn a_down_slack_fails_after_every_attempt() {
    let (fake, client) = fake_and_client().await;
    fake.set_down(true);

    let err = client
        .update_message(&channel(), "1.2", &message())
        .await
        .expect_err("fails");

    assert!(matches!(err, SlackApiError::Status { status: 503, .. }));
    assert_eq!(fake.calls_to("chat.update").len(), 3);
}

#[tokio::test]
async fn after_a_429_calls_to_that_method_wait_out_retry_after_and_other_methods_go_on() {
    // Arrange: Slack rate-limits one post for 2 s; the caller that got the
    // 429 gives up at once (one attempt), so the client has learned it.
    let (fake, client) = fake_and_client().await;
    fake.fail_next(
        "chat.postMessage",
        FakeResponse::RateLimited {
            retry_after_secs: 2,
        },
    );
    let once = client.clone().with_retry_policy(RetryPolicy {
        max_attempts: 1,
        ..fast_policy()
    });
    let refused = once.post_message("C0COFFEE", &message()).await;
    assert!(
        matches!(refused, Err(SlackApiError::RateLimited { .. })),
        "{refused:?}"
    );
    let limited_at = fake.calls_to("chat.postMessage")[0].at;

    // Act: another clone posts, and looks a user up, right away.
    let second = message();
    let other = client.post_message("C0OTHER", &second);
    let alice = UserId::parse("U0ALICE").expect("user id");
    let lookup = client.users_info(&alice);
    let (other, lookup) = tokio::join!(other, lookup);

    // Assert: the post landed without reaching Slack inside the window it
    // asked for (no second 429 earned); users.info did not wait.
    other.expect("the second post landed");
    let posts = fake.calls_to("chat.postMessage");
    assert_eq!(posts.len(), 2, "one refused, one done");
    let gap = posts[1].at.duration_since(limited_at);
    assert!(
        gap >= Duration::from_millis(1950),
        "a post only {gap:?} after the 429"
    );
    lookup.expect("users.info answered");
    let lookup_at = fake.calls_to("users.info")[0].at;
    assert!(
        lookup_at.duration_since(limited_at) < Duration::from_millis(1500),
        "users.info was held back by chat.postMessage's limit"
    );
}

#[tokio::test]
async fn a_held_back_method_fails_at_once_when_the_wait_is_beyond_the_cap() {
    // Arrange: Slack asks for a minute, beyond the 30 s the client waits.
    let (fake, client) = fake_and_client().await;
    fake.fail_next(
        "chat.postMessage",
        FakeResponse::RateLimited {
            retry_after_secs: 60,
        },
    );
    client
        .post_message("C0COFFEE", &message())
        .await
        .expect_err("rate limited");

    // Act: another post right after.
    let err = client
        .post_message("C0OTHER", &message())
        .await
        .expect_err("still held back");

    // Assert: refused without calling Slack, with the time left to wait.
    assert_eq!(fake.calls_to("chat.postMessage").len(), 1);
    match err {
        SlackApiError::RateLimited { retry_after, .. } => {
            assert!(retry_after > Duration::from_secs(55), "{retry_after:?}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}
