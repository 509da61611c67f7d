//! The stand-in on HTTP: `POST /api/{method}` answers the Web API and
//! `POST /response/{token}` the response URLs, exactly as [`SlackStandIn`]
//! decides. Point `SLACK_API_BASE_URL` at [`StandInServer::base_url`].

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::model::{SlackStandIn, WebRequest};

/// The stand-in's routes.
pub fn router(slack: SlackStandIn) -> Router {
    Router::new()
        .route("/api/{method}", any(web_api))
        .route("/response/{token}", any(response_url))
        .with_state(slack)
}

/// A header as text, if present and readable.
pub fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn web_api(
    State(slack): State<SlackStandIn>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = slack.web_api(&WebRequest {
        method: &method,
        authorization: header_str(&headers, header::AUTHORIZATION),
        content_type: header_str(&headers, header::CONTENT_TYPE),
        query: query.as_deref(),
        body: &body,
    });
    axum::Json(answer.body).into_response()
}

async fn response_url(
    State(slack): State<SlackStandIn>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let answer = slack.respond(&token, &body);
    (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.body,
    )
        .into_response()
}

/// A stand-in served on its own loopback port.
#[derive(Debug, Clone)]
pub struct StandInServer {
    /// Where it listens.
    pub addr: SocketAddr,
}

impl StandInServer {
    /// Binds `127.0.0.1:0` and serves [`router`] on it in the background
    /// (until the runtime stops). Synchronous so a service builder can call
    /// it; must run inside a Tokio runtime.
    pub fn spawn(slack: SlackStandIn) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = router(slack);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the Slack stand-in stopped");
            }
        });
        Ok(Self { addr })
    }

    /// The Web API base, for `SLACK_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The URL of a response-URL token.
    pub fn response_url(&self, token: &str) -> String {
        format!("http://{}/response/{token}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HookTarget, Options, Person};
    use serde_json::{Value, json};

    #[tokio::test]
    async fn the_stand_in_answers_the_web_api_and_response_urls_over_http() {
        let slack = SlackStandIn::new(Options::strict(None));
        slack.add_person(Person::new("U0ALICE", "alice", "Alice"));
        slack.add_channel("C0COFFEE", "coffee", true);
        let server = StandInServer::spawn(slack.clone()).expect("bind");
        let http = reqwest::Client::new();

        let posted: Value = http
            .post(format!("{}/chat.postMessage", server.base_url()))
            .bearer_auth("xoxb-1")
            .json(&json!({ "channel": "C0COFFEE", "text": "hi" }))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        assert_eq!(posted["ok"], true);
        let unauthed: Value = http
            .post(format!("{}/chat.postMessage", server.base_url()))
            .json(&json!({ "channel": "C0COFFEE", "text": "hi" }))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        assert_eq!(unauthed["error"], "not_authed");

        let token = slack.issue_response_token(HookTarget {
            channel: "C0COFFEE".into(),
            user: "U0ALICE".into(),
            message_ts: None,
            ephemeral: false,
        });
        let answered = http
            .post(server.response_url(&token))
            .json(&json!({ "text": "only you" }))
            .send()
            .await
            .expect("post");
        assert_eq!(answered.status(), 200);
        assert_eq!(answered.text().await.expect("text"), "ok");
        assert_eq!(
            slack.ephemerals("C0COFFEE", "U0ALICE")[0]["text"],
            "only you"
        );
        assert_eq!(slack.messages("C0COFFEE").len(), 1);
    }
}
