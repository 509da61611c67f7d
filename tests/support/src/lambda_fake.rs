//! A stand-in for the AWS Lambda Runtime API on a real loopback socket, as
//! `lambda_runtime` talks to it: `GET /2018-06-01/runtime/invocation/next`
//! long-polls for the next event (with the `Lambda-Runtime-*` headers),
//! `POST /2018-06-01/runtime/invocation/{id}/response` and `…/{id}/error`
//! hand back the outcome, `POST /2018-06-01/runtime/init/error` reports a
//! failed start.
//!
//! Start a function with [`LambdaFake::vars`] and call
//! [`LambdaFake::invoke`] with an event, e.g. one from
//! [`api_gateway_v2_event`] (what API Gateway's HTTP API and Function URLs
//! send), to get what the function answered.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// The function ARN the fake hands out.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:coffeebuddy-test";

/// What the function sent back for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST …/{id}/response`: the response document.
    Response(Value),
    /// `POST …/{id}/error`: the error document.
    Error(Value),
}

#[derive(Debug, Default)]
struct FakeState {
    queue: VecDeque<(String, Value)>,
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_errors: Vec<Value>,
}

/// The fake Runtime API. Clones share state.
#[derive(Debug, Clone)]
pub struct LambdaFake {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    queued: Arc<Notify>,
}

type Shared = (Arc<Mutex<FakeState>>, Arc<Notify>);

impl LambdaFake {
    /// Serves on `127.0.0.1:0` with no event queued.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let queued = Arc::new(Notify::new());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state((Arc::clone(&state), Arc::clone(&queued)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Lambda Runtime API fake");
        let addr = listener.local_addr().expect("fake address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            state,
            queued,
        }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().expect("Lambda fake lock")
    }

    /// The variables Lambda sets for a function: `AWS_LAMBDA_RUNTIME_API`
    /// (`host:port`, no scheme) pointing here, and the function's identity.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", "coffeebuddy-test".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ]
    }

    /// Queues `event` for the function's next poll and waits (at most
    /// `timeout`) for what it sends back.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Option<Outcome> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            state.waiting.insert(id.clone(), tx);
            state.queue.push_back((id, event));
        }
        self.queued.notify_one();
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }

    /// Every `init/error` the function reported.
    pub fn init_errors(&self) -> Vec<Value> {
        self.lock().init_errors.clone()
    }
}

async fn next(State((state, queued)): State<Shared>) -> Response {
    loop {
        // Register interest before looking, so an event queued in between
        // is not missed.
        let notified = queued.notified();
        let event = state.lock().expect("Lambda fake lock").queue.pop_front();
        if let Some((id, event)) = event {
            let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
            let mut headers = HeaderMap::new();
            let mut put = |name: &'static str, value: String| {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            };
            put("lambda-runtime-aws-request-id", id);
            put("lambda-runtime-deadline-ms", deadline.to_string());
            put(
                "lambda-runtime-invoked-function-arn",
                FUNCTION_ARN.to_owned(),
            );
            put(
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
                    .to_owned(),
            );
            return (StatusCode::OK, headers, axum::Json(event)).into_response();
        }
        // Long poll, as the real API does: the function waits here between
        // invocations.
        notified.await;
    }
}

fn outcome(state: &Mutex<FakeState>, id: &str, outcome: Outcome) -> StatusCode {
    match state.lock().expect("Lambda fake lock").waiting.remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State((state, _)): State<Shared>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    outcome(&state, &id, Outcome::Response(body))
}

async fn error(
    State((state, _)): State<Shared>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    outcome(&state, &id, Outcome::Error(body))
}

async fn init_error(State((state, _)): State<Shared>, body: axum::body::Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state
        .lock()
        .expect("Lambda fake lock")
        .init_errors
        .push(body);
    StatusCode::ACCEPTED
}

/// An API Gateway HTTP API (payload format 2.0) event, as a Function URL or
/// an HTTP API route sends it: `headers` lower-cased, `body` base64-encoded
/// (as API Gateway does for form posts), so the function must decode it to
/// the exact bytes Slack signed.
pub fn api_gateway_v2_event(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String((*v).to_owned())))
        .collect();
    let now = chrono::Utc::now();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "Slackbot 1.0 (+https://api.slack.com/robots)"
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
}
