//! Where the outbox delivers events: the [`EventSink`] trait, the
//! in-process fan-out `local` uses instead of Kafka ([`InProcessSink`]),
//! and the HTTP binary-mode encoding both it and the Kafka header codec are
//! built on.
//!
//! The Kafka sink lives in [`super::kafka`]; it is re-exported here too so
//! every sink can be named from one place.

use std::fmt;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use cloudevents::binding::http::{Builder, Serializer};
use cloudevents::message::BinaryDeserializer as _;
use cloudevents::{AttributesReader as _, Event};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use tower::ServiceExt as _;

use super::BoxFuture;
pub use super::kafka::KafkaSink;

/// A destination for published events. Implementations must be safe to call
/// concurrently and must only return `Ok` once the event is durably
/// accepted: the outbox marks the row published on `Ok`.
pub trait EventSink: Send + Sync + fmt::Debug {
    /// Delivers one event.
    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliverError>>;
}

/// Why a sink did not accept an event. Every variant is worth retrying
/// later except [`DeliverError::Encode`], which the outbox still retries
/// (and records) so that an operator sees it in `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The event cannot be put on the wire (e.g. a header value with a
    /// newline).
    #[error("cannot encode the event: {0}")]
    Encode(#[from] EncodeEventError),
    /// An in-process target answered with a non-2xx status.
    #[error("target {target} answered HTTP {status}")]
    Rejected {
        /// Which registered target (0-based, in registration order).
        target: usize,
        /// The status it answered.
        status: u16,
    },
    /// The destination is not there (no targets yet, broker unreachable…).
    #[error("sink unavailable: {0}")]
    Unavailable(String),
    /// Kafka refused or timed out the message.
    #[error("kafka did not accept the event")]
    Kafka(#[source] rdkafka::error::KafkaError),
}

impl DeliverError {
    /// Whether delivering the same event again can never succeed: it cannot
    /// be encoded, or a consumer refused it as malformed (HTTP 4xx).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Encode(_) => true,
            Self::Rejected { status, .. } => (400..500).contains(status),
            Self::Unavailable(_) | Self::Kafka(_) => false,
        }
    }
}

/// The CloudEvents SDK could not encode an event.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode CloudEvent: {0}")]
pub struct EncodeEventError(String);

impl From<cloudevents::message::Error> for EncodeEventError {
    fn from(e: cloudevents::message::Error) -> Self {
        Self(e.to_string())
    }
}

/// Collects the SDK's binary-mode output instead of building a response.
#[derive(Default)]
struct CollectBinary {
    headers: HeaderMap,
}

impl Builder<(HeaderMap, Vec<u8>)> for CollectBinary {
    fn header(&mut self, key: &str, value: HeaderValue) {
        // The SDK only emits lowercase `ce-*` names and `content-type`.
        if let Ok(name) = HeaderName::from_bytes(key.as_bytes()) {
            self.headers.insert(name, value);
        }
    }

    fn body(&mut self, bytes: Vec<u8>) -> cloudevents::message::Result<(HeaderMap, Vec<u8>)> {
        Ok((std::mem::take(&mut self.headers), bytes))
    }

    fn finish(&mut self) -> cloudevents::message::Result<(HeaderMap, Vec<u8>)> {
        Ok((std::mem::take(&mut self.headers), Vec::new()))
    }
}

/// `event` in HTTP binary mode: the `ce-*` and `content-type` headers, and
/// the data bytes as body (empty without data).
pub fn to_http_binary(event: &Event) -> Result<(HeaderMap, Vec<u8>), EncodeEventError> {
    Ok(event
        .clone()
        .deserialize_binary(Serializer::new(CollectBinary::default()))?)
}

/// `event` in HTTP structured mode: `application/cloudevents+json` body.
pub fn to_http_structured(event: &Event) -> Result<Vec<u8>, EncodeEventError> {
    serde_json::to_vec(event).map_err(|e| EncodeEventError(e.to_string()))
}

/// The content type of a structured-mode CloudEvent.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Delivers each event as an HTTP binary-mode `POST /` to every registered
/// router, in process (no sockets), as a KafkaSource per function would in
/// production. Every target must answer 2xx or the delivery fails and the
/// outbox retries it (handlers are idempotent, so the targets that already
/// succeeded are unharmed). With no target registered yet, delivery fails
/// too, so events committed before `local` finished starting are kept.
#[derive(Clone, Default)]
pub struct InProcessSink {
    targets: Arc<RwLock<Vec<Router>>>,
}

impl fmt::Debug for InProcessSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessSink")
            .field("targets", &self.targets().len())
            .finish()
    }
}

impl InProcessSink {
    /// A sink with no targets yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a router whose `POST /` receives every event from now on.
    /// Clones of the sink share their targets.
    pub fn add_target(&self, router: Router) {
        // A poisoned lock only means a panic elsewhere while pushing; the
        // vector itself is still sound.
        let mut targets = self
            .targets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        targets.push(router);
    }

    fn targets(&self) -> Vec<Router> {
        self.targets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl EventSink for InProcessSink {
    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(async move {
            let targets = self.targets();
            if targets.is_empty() {
                return Err(DeliverError::Unavailable(
                    "no in-process targets registered yet".to_owned(),
                ));
            }
            let (headers, body) = to_http_binary(event)?;
            let mut first_failure = None;
            for (i, router) in targets.into_iter().enumerate() {
                let mut request = Request::new(Body::from(body.clone()));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = http::Uri::from_static("/");
                *request.headers_mut() = headers.clone();
                // A Router's error type is Infallible.
                let status = match router.oneshot(request).await {
                    Ok(response) => response.status(),
                    Err(never) => match never {},
                };
                tracing::debug!(
                    event_id = event.id(),
                    event_type = event.ty(),
                    target = i,
                    status = status.as_u16(),
                    "delivered in process"
                );
                if !status.is_success() && first_failure.is_none() {
                    first_failure = Some(DeliverError::Rejected {
                        target: i,
                        status: status.as_u16(),
                    });
                }
            }
            first_failure.map_or(Ok(()), Err)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::http::StatusCode;
    use axum::routing::post;
    use cloudevents::{EventBuilder as _, EventBuilderV10};

    use super::*;

    fn event() -> Event {
        EventBuilderV10::new()
            .id("e-1")
            .source("/test")
            .ty(super::super::RUN_CREATED)
            .subject("run-1")
            .data("application/json", serde_json::json!({ "run_id": 1 }))
            .build()
            .expect("valid event")
    }

    fn recording(status: StatusCode, seen: Arc<Mutex<Vec<Event>>>) -> Router {
        Router::new().route(
            "/",
            post(move |e: Event| async move {
                seen.lock().expect("lock").push(e);
                status
            }),
        )
    }

    #[tokio::test]
    async fn every_target_receives_the_event_in_binary_mode() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = InProcessSink::new();
        sink.add_target(recording(StatusCode::ACCEPTED, seen.clone()));
        sink.add_target(recording(StatusCode::OK, seen.clone()));

        sink.deliver(&event()).await.expect("delivered");

        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 2);
        assert!(
            seen.iter()
                .all(|e| e.id() == "e-1" && e.subject() == Some("run-1"))
        );
    }

    #[tokio::test]
    async fn a_target_answering_5xx_fails_the_delivery_but_the_others_still_get_it() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = InProcessSink::new();
        sink.add_target(recording(StatusCode::SERVICE_UNAVAILABLE, seen.clone()));
        sink.add_target(recording(StatusCode::ACCEPTED, seen.clone()));

        let result = sink.deliver(&event()).await;

        assert!(matches!(
            result,
            Err(DeliverError::Rejected {
                target: 0,
                status: 503
            })
        ));
        assert_eq!(seen.lock().expect("lock").len(), 2);
    }

    #[tokio::test]
    async fn without_targets_delivery_fails_so_the_outbox_keeps_the_event() {
        let result = InProcessSink::new().deliver(&event()).await;
        assert!(matches!(result, Err(DeliverError::Unavailable(_))));
    }

    #[test]
    fn binary_mode_puts_attributes_in_ce_headers_and_data_in_the_body() {
        let (headers, body) = to_http_binary(&event()).expect("encodes");
        assert_eq!(headers["ce-id"], "e-1");
        assert_eq!(headers["ce-specversion"], "1.0");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, br#"{"run_id":1}"#);
    }
}
