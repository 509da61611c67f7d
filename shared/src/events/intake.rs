//! The `POST /` every function serves: CloudEvents over HTTP, in binary mode
//! (`ce-*` headers, as Knative's KafkaSource and PingSource send them) and
//! in structured mode (`application/cloudevents+json`), dispatched by type.
//!
//! The status codes are the retry contract with Knative (STYLE rule 17):
//! - `202` when the event was handled, and for types this function does not
//!   consume (acknowledged and ignored: every function sees every event);
//! - `400` with a JSON error for events that are not valid CloudEvents or
//!   whose data does not fit their type: retrying cannot help;
//! - `503` when the handler says a retry can help (database down…).
//!
//! A handler runs as the next hop of the trace the event carries
//! ([`super::next_hop_of`]): the events and effects it writes, and its log
//! lines, carry the same trace id and correlation id as the Slack request
//! that caused the event.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cloudevents::{AttributesReader as _, Event};
use tracing::Instrument as _;

use super::{BoxFuture, next_hop_of};
use crate::trace;

/// Largest event body accepted. Our events are a few hundred bytes; this
/// is what the SDK's extractor would otherwise read without any bound.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Counter of events received on `POST /`, labelled `consumer`, `type` and
/// `outcome` (`handled`, `ignored`, `malformed`, `retryable`).
pub const EVENTS_HANDLED_TOTAL: &str = "coffeebuddy_events_handled_total";

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleEventError {
    /// The event can never be applied (bad data, unknown run…): answered
    /// 400 and not retried.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The event could be applied later (database or Slack unavailable…):
    /// answered 503 so the platform retries it.
    #[error("retryable failure: {0:#}")]
    Retryable(anyhow::Error),
}

impl From<sqlx::Error> for HandleEventError {
    fn from(e: sqlx::Error) -> Self {
        Self::Retryable(anyhow::Error::new(e).context("database error"))
    }
}

impl From<anyhow::Error> for HandleEventError {
    fn from(e: anyhow::Error) -> Self {
        Self::Retryable(e)
    }
}

/// A registered event handler.
pub type HandlerFn =
    Arc<dyn Fn(Event) -> BoxFuture<'static, Result<(), HandleEventError>> + Send + Sync>;

/// The handlers of one consumer (function), by event type.
#[derive(Clone)]
pub struct EventRoutes {
    consumer: &'static str,
    handlers: HashMap<&'static str, HandlerFn>,
}

impl fmt::Debug for EventRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<_> = self.handlers.keys().collect();
        types.sort_unstable();
        f.debug_struct("EventRoutes")
            .field("consumer", &self.consumer)
            .field("types", &types)
            .finish()
    }
}

impl EventRoutes {
    /// No handlers yet. `consumer` names the function in logs, metrics and
    /// the idempotency ledger (e.g. `close-run`).
    pub fn new(consumer: &'static str) -> Self {
        Self {
            consumer,
            handlers: HashMap::new(),
        }
    }

    /// Handles events of `event_type` with `handler` (a later registration
    /// for the same type replaces an earlier one).
    pub fn on<F, Fut>(mut self, event_type: &'static str, handler: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandleEventError>> + Send + 'static,
    {
        let handler: HandlerFn = Arc::new(move |event| Box::pin(handler(event)));
        self.handlers.insert(event_type, handler);
        self
    }

    /// The router serving `POST /`.
    pub fn into_router(self) -> Router {
        Router::new()
            .route("/", post(intake))
            .with_state(Arc::new(self))
    }
}

/// A JSON error response.
fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

fn count(consumer: &'static str, event_type: &str, outcome: &'static str) {
    metrics::counter!(
        EVENTS_HANDLED_TOTAL,
        "consumer" => consumer,
        "type" => event_type.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

/// Reads and parses the event itself rather than through the SDK's axum
/// extractor: the extractor reads the body without a limit and rejects in
/// plain text, while we want a bounded read and our JSON error format.
async fn intake(State(routes): State<Arc<EventRoutes>>, request: Request) -> Response {
    let consumer = routes.consumer;
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(Body::new(body), MAX_EVENT_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(consumer, error = %e, "cannot read event body");
            count(consumer, "invalid", "malformed");
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "event body too large or unreadable",
            );
        }
    };
    let event = match cloudevents::binding::http::to_event(&parts.headers, bytes.to_vec()) {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(consumer, error = %e, "rejected a request that is not a valid CloudEvent");
            count(consumer, "invalid", "malformed");
            return error(
                StatusCode::BAD_REQUEST,
                &format!("not a valid CloudEvent: {e}"),
            );
        }
    };

    let Some(handler) = routes.handlers.get(event.ty()).cloned() else {
        tracing::debug!(
            consumer,
            event_id = event.id(),
            event_type = event.ty(),
            "ignoring an event type this function does not consume"
        );
        // The label is fixed for foreign types: their names are not ours to
        // bound, and each distinct label is a new time series.
        count(consumer, "other", "ignored");
        return StatusCode::ACCEPTED.into_response();
    };
    // Registered types are &'static str, which also bounds the label set.
    let event_type = event.ty().to_owned();
    let context = next_hop_of(&event);
    let span = tracing::info_span!(
        "event",
        consumer,
        event_id = %event.id(),
        event_type = %event_type,
        subject = event.subject().unwrap_or_default(),
        trace_id = %context.trace_id(),
    );
    let handled = async move {
        match handler(event).await {
            Ok(()) => {
                tracing::info!("event handled");
                count(consumer, &event_type, "handled");
                StatusCode::ACCEPTED.into_response()
            }
            Err(HandleEventError::Malformed(reason)) => {
                tracing::warn!(reason = %reason, "malformed event rejected; it will not be retried");
                count(consumer, &event_type, "malformed");
                error(StatusCode::BAD_REQUEST, &reason)
            }
            Err(HandleEventError::Retryable(e)) => {
                // The cause is logged, not returned: it may name internals.
                tracing::warn!(error = %format!("{e:#}"), "event handling failed; asking for a retry");
                count(consumer, &event_type, "retryable");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily unable to handle the event; retry later",
                )
            }
        }
    }
    .instrument(span);
    trace::scope(context, handled).await
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;
    use crate::events::sink::{STRUCTURED_CONTENT_TYPE, to_http_binary, to_http_structured};
    use crate::events::{PING, RUN_CREATED, RunCreated, decode_data};
    use cloudevents::{EventBuilder as _, EventBuilderV10};

    fn router() -> Router {
        EventRoutes::new("test")
            .on(RUN_CREATED, |event| async move {
                let data: RunCreated = decode_data(&event)?;
                if data.channel_id == "C-retry" {
                    return Err(HandleEventError::Retryable(anyhow::anyhow!(
                        "database is down"
                    )));
                }
                Ok(())
            })
            .into_router()
    }

    fn run_created(data: serde_json::Value) -> Event {
        EventBuilderV10::new()
            .id("e-1")
            .source("/test")
            .ty(RUN_CREATED)
            .data("application/json", data)
            .build()
            .expect("valid event")
    }

    fn valid_data(channel: &str) -> serde_json::Value {
        serde_json::json!({ "run_id": uuid::Uuid::nil(), "channel_id": channel })
    }

    async fn post_binary(router: Router, event: &Event) -> (StatusCode, serde_json::Value) {
        let (headers, body) = to_http_binary(event).expect("encodes");
        let mut request = Request::post("/").body(Body::from(body)).expect("request");
        *request.headers_mut() = headers;
        send(router, request).await
    }

    async fn send(router: Router, request: Request) -> (StatusCode, serde_json::Value) {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    #[tokio::test]
    async fn a_handled_event_is_accepted_in_binary_and_structured_mode() {
        let event = run_created(valid_data("C1"));
        assert_eq!(post_binary(router(), &event).await.0, StatusCode::ACCEPTED);

        let request = Request::post("/")
            .header("content-type", STRUCTURED_CONTENT_TYPE)
            .body(Body::from(to_http_structured(&event).expect("encodes")))
            .expect("request");
        assert_eq!(send(router(), request).await.0, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn a_handler_runs_as_the_next_hop_of_the_trace_its_event_carries() {
        // Arrange: a handler that reports the context it runs in.
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let router = EventRoutes::new("test")
            .on(RUN_CREATED, move |_event| {
                let recorded = Arc::clone(&recorded);
                async move {
                    recorded.lock().expect("lock").push(trace::current());
                    Ok(())
                }
            })
            .into_router();
        let sent = trace::TraceContext::continue_from(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None,
            Some("kong-9"),
        );
        let mut traced = run_created(valid_data("C1"));
        crate::events::set_trace(&mut traced, &sent);

        // Act: one traced event, one without a trace (as PingSource sends).
        assert_eq!(
            post_binary(router.clone(), &traced).await.0,
            StatusCode::ACCEPTED
        );
        let untraced = run_created(valid_data("C1"));
        assert_eq!(post_binary(router, &untraced).await.0, StatusCode::ACCEPTED);

        // Assert
        let seen = seen.lock().expect("lock").clone();
        let [Some(continued), Some(fresh)] = seen.as_slice() else {
            panic!("both handled inside a trace: {seen:?}");
        };
        assert_eq!(continued.trace_id(), sent.trace_id());
        assert_ne!(continued.traceparent, sent.traceparent, "a new span id");
        assert_eq!(continued.correlation_id, "kong-9");
        assert_ne!(fresh.trace_id(), sent.trace_id(), "a trace of its own");
    }

    #[tokio::test]
    async fn an_event_type_nobody_handles_is_acknowledged() {
        let mut event = run_created(valid_data("C1"));
        cloudevents::AttributesWriter::set_type(&mut event, PING);
        assert_eq!(post_binary(router(), &event).await.0, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn data_that_does_not_fit_the_type_is_a_400_with_a_json_error() {
        let (status, body) =
            post_binary(router(), &run_created(serde_json::json!({ "run_id": 7 }))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]
                .as_str()
                .expect("error")
                .contains("invalid data")
        );
    }

    #[tokio::test]
    async fn a_request_missing_required_attributes_is_a_400_with_a_json_error() {
        let request = Request::post("/")
            .header("ce-specversion", "1.0")
            .header("ce-type", RUN_CREATED)
            .header("content-type", "application/json")
            .body(Body::from(valid_data("C1").to_string()))
            .expect("request");
        let (status, body) = send(router(), request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]
                .as_str()
                .expect("error")
                .contains("CloudEvent")
        );
    }

    #[tokio::test]
    async fn a_structured_body_that_is_not_json_is_a_400() {
        let request = Request::post("/")
            .header("content-type", STRUCTURED_CONTENT_TYPE)
            .body(Body::from("{not json"))
            .expect("request");
        assert_eq!(send(router(), request).await.0, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_retryable_failure_is_a_503_that_hides_the_cause() {
        let (status, body) = post_binary(router(), &run_created(valid_data("C-retry"))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.to_string().contains("database is down"));
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused() {
        let request = Request::post("/")
            .header("content-type", STRUCTURED_CONTENT_TYPE)
            .body(Body::from(vec![b' '; MAX_EVENT_BYTES + 1]))
            .expect("request");
        assert_eq!(
            send(router(), request).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
