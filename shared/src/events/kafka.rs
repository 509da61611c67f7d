//! Kafka: the producer sink the outbox publishes through, the binary-mode
//! header codec, a consumer loop for `local`, and the readiness probe.
//!
//! Events travel in CloudEvents Kafka binary mode: attributes as `ce_*`
//! headers (`ce_id`, `ce_source`, `ce_type`, `ce_specversion`, `ce_subject`,
//! `ce_time`, `ce_partitionkey`), `content-type` for `datacontenttype`, the
//! data bytes as value and the channel id as key, so Kafka keeps a channel's
//! events in one partition and in order. Knative's KafkaSource reads exactly
//! this and turns it into HTTP CloudEvents for the functions.
//!
//! The SDK's own `rdkafka` binding targets rdkafka 0.38, so the headers are
//! derived from its HTTP binary-mode output (`ce-` becomes `ce_`) and decoded
//! back with [`cloudevents::binding::http::to_event`].

use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use cloudevents::{AttributesReader as _, Data, Event};
use http::{HeaderMap, HeaderName, HeaderValue};
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use secrecy::ExposeSecret as _;

use super::sink::{DeliverError, EncodeEventError, EventSink, to_http_binary};
use super::{BoxFuture, partition_key};
use crate::config::KafkaSettings;
use crate::probe::{Criticality, Probe};

/// How long the producer keeps trying to deliver one message before the
/// outbox hears "failed" and keeps the row for a later pass.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the readiness probe waits for broker metadata (under the
/// runtime's 2 s probe timeout).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The least time between two of the readiness probe's metadata requests.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Longest pause between redeliveries of one consumed event.
pub const MAX_CONSUME_BACKOFF: Duration = Duration::from_secs(30);

/// How long a graceful stop of the consumer waits for librdkafka to leave
/// the group and close before giving up on it.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A librdkafka client whose destruction never blocks the dropping thread.
///
/// `rd_kafka_destroy` can wait for good for broker threads after the broker
/// went away and came back (confluentinc/librdkafka#4674, still open for
/// the 2.x we link; fede1024/rust-rdkafka#509 for `StreamConsumer`). Dropped
/// inline, such a client froze the async runtime that dropped it: a process
/// that could not stop, and a test that hung CI for an hour. Here the last
/// reference is destroyed on a thread of its own, which the process leaves
/// behind if librdkafka never returns; [`Detached::close`] waits for it a
/// bounded time on a graceful stop.
struct Detached<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> Detached<T> {
    fn new(client: T) -> Self {
        Self(Some(client))
    }

    /// Destroys the client on its own thread and waits at most `wait` for
    /// librdkafka to finish; true when it did.
    async fn close(mut self, wait: Duration) -> bool {
        let Some(client) = self.0.take() else {
            return true;
        };
        let (done, finished) = tokio::sync::oneshot::channel();
        destroy_on_own_thread(client, Some(done));
        matches!(tokio::time::timeout(wait, finished).await, Ok(Ok(())))
    }
}

impl<T: Send + 'static> std::ops::Deref for Detached<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Only `close` and `drop` take the client out, both by value.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("a closed client"))
    }
}

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            destroy_on_own_thread(client, None);
        }
    }
}

fn destroy_on_own_thread<T: Send + 'static>(
    client: T,
    done: Option<tokio::sync::oneshot::Sender<()>>,
) {
    // Should the thread not start, the closure is dropped here: the
    // `ManuallyDrop` then leaks the client instead of destroying it inline.
    let client = std::mem::ManuallyDrop::new(client);
    let spawned = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || {
            drop(std::mem::ManuallyDrop::into_inner(client));
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
    if let Err(e) = spawned {
        // No thread to spare: the client is leaked rather than risk
        // blocking the caller; the process's exit reclaims it.
        tracing::warn!(error = %e, "cannot start a thread to close a kafka client; leaking it");
    }
}

/// A Kafka client could not be configured (bad settings; creating a client
/// never waits for the brokers).
#[derive(Debug, thiserror::Error)]
#[error("cannot configure the Kafka client")]
pub struct ConfigureKafkaError(#[from] KafkaError);

/// A Kafka message is not a binary-mode CloudEvent.
#[derive(Debug, thiserror::Error)]
pub enum DecodeKafkaEventError {
    /// A `ce_*` header has a name or value HTTP cannot carry.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// The SDK rejected the attributes (missing `ce_id`, bad `ce_time`…).
    #[error("not a CloudEvent: {0}")]
    NotACloudEvent(String),
}

/// The librdkafka settings shared by every client we create. The SASL
/// password and the TLS key's passphrase go only into librdkafka's config,
/// never into a log line. The TLS files (checked to be readable when the
/// settings were loaded) are librdkafka's `ssl.*.location`s; without a CA
/// file it trusts the system's CA store.
fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", &settings.client_id)
        .set("security.protocol", settings.security_protocol.as_str())
        // Reconnect quickly after an outage; the default backs off to 10 s.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000");
    if let Some(sasl) = &settings.sasl {
        config
            .set("sasl.mechanism", sasl.mechanism.as_str())
            .set("sasl.username", &sasl.username)
            .set("sasl.password", sasl.password.expose_secret());
    }
    let tls = &settings.tls;
    for (key, path) in [
        ("ssl.ca.location", &tls.ca_location),
        ("ssl.certificate.location", &tls.certificate_location),
        ("ssl.key.location", &tls.key_location),
    ] {
        if let Some(path) = path {
            config.set(key, path.to_string_lossy());
        }
    }
    if let Some(password) = &tls.key_password {
        config.set("ssl.key.password", password.expose_secret());
    }
    config
}

/// Turns `ce-foo` into `ce_foo`; other names are kept.
fn kafka_header_name(http_name: &str) -> String {
    match http_name.strip_prefix("ce-") {
        Some(rest) => format!("ce_{rest}"),
        None => http_name.to_owned(),
    }
}

/// The binary-mode Kafka headers of `event`: every attribute and extension
/// as `ce_*`, `datacontenttype` as `content-type`.
pub fn kafka_headers(event: &Event) -> Result<OwnedHeaders, EncodeEventError> {
    let (headers, _) = to_http_binary(event)?;
    Ok(owned_headers(&headers))
}

fn owned_headers(headers: &HeaderMap) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |acc, (name, value)| {
            acc.insert(Header {
                key: &kafka_header_name(name.as_str()),
                value: Some(value.as_bytes()),
            })
        },
    )
}

/// The CloudEvent carried by a binary-mode Kafka message. JSON data comes
/// back as [`Data::Json`], so a round trip yields the event that was sent.
pub fn event_from_kafka(message: &impl Message) -> Result<Event, DecodeKafkaEventError> {
    let mut headers = HeaderMap::new();
    if let Some(kafka_headers) = message.headers() {
        for header in kafka_headers.iter() {
            let name = match header.key.strip_prefix("ce_") {
                Some(rest) => format!("ce-{rest}"),
                None => header.key.to_ascii_lowercase(),
            };
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| DecodeKafkaEventError::InvalidHeader(header.key.to_owned()))?;
            let value = HeaderValue::from_bytes(header.value.unwrap_or_default())
                .map_err(|_| DecodeKafkaEventError::InvalidHeader(header.key.to_owned()))?;
            headers.append(name, value);
        }
    }
    let body = message.payload().map(<[u8]>::to_vec).unwrap_or_default();
    let mut event = cloudevents::binding::http::to_event(&headers, body)
        .map_err(|e| DecodeKafkaEventError::NotACloudEvent(e.to_string()))?;
    normalise_json_data(&mut event);
    Ok(event)
}

/// Binary mode carries data as bytes; when the content type says JSON and
/// the bytes parse, keep it as JSON (as it was built).
fn normalise_json_data(event: &mut Event) {
    let is_json = event
        .datacontenttype()
        .is_some_and(|ct| ct.starts_with("application/json") || ct.ends_with("+json"));
    if !is_json {
        return;
    }
    if let Some(Data::Binary(bytes)) = event.data()
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        event.set_data_unchecked(value);
    }
}

/// Publishes events to the run-events topic with an idempotent producer
/// (`acks=all`), one message per event, keyed by channel id.
///
/// An idempotent producer can hit a fatal error (e.g. fenced after its
/// messages timed out during an outage) and then refuses everything; the
/// sink then replaces it with a fresh producer, so the next outbox pass
/// goes through once Kafka is back.
pub struct KafkaSink {
    /// Kept to recreate the producer; holds the SASL password, so the sink's
    /// `Debug` leaves it out.
    config: ClientConfig,
    producer: RwLock<Arc<Detached<FutureProducer>>>,
    topic: String,
    timeout: Duration,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A sink for `settings.topic_run_events`, giving up on a message after
    /// [`DEFAULT_DELIVERY_TIMEOUT`]. Does not contact the brokers.
    pub fn new(settings: &KafkaSettings) -> Result<Self, ConfigureKafkaError> {
        Self::with_delivery_timeout(settings, DEFAULT_DELIVERY_TIMEOUT)
    }

    /// Like [`new`](Self::new) with another delivery timeout (tests use a
    /// short one to see an outage quickly).
    pub fn with_delivery_timeout(
        settings: &KafkaSettings,
        timeout: Duration,
    ) -> Result<Self, ConfigureKafkaError> {
        let timeout_ms = timeout.as_millis().max(1).to_string();
        let mut config = client_config(settings);
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", &timeout_ms)
            // A pass publishes one event at a time; no point waiting to batch.
            .set("linger.ms", "0");
        let producer: FutureProducer = config.create()?;
        Ok(Self {
            config,
            producer: RwLock::new(Arc::new(Detached::new(producer))),
            topic: settings.topic_run_events.clone(),
            timeout,
        })
    }

    /// The topic events go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn producer(&self) -> Arc<Detached<FutureProducer>> {
        Arc::clone(&self.producer.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces `failed` with a fresh producer (a new producer id) when its
    /// idempotence state is broken: a fatal error, or the broker refusing
    /// its producer id or epoch. Otherwise (timeouts, broker down) the
    /// producer recovers by itself and is kept.
    fn recover(&self, failed: &Arc<Detached<FutureProducer>>, error: &KafkaError) {
        let reason = match failed.client().fatal_error() {
            Some((code, reason)) => format!("fatal error {code}: {reason}"),
            None => match error.rdkafka_error_code() {
                Some(
                    code @ (RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::UnknownProducerId
                    | RDKafkaErrorCode::InvalidProducerIdMapping
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber),
                ) => format!("broker refused the producer: {code}"),
                _ => return,
            },
        };
        let mut current = self
            .producer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&current, failed) {
            return;
        }
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!(reason, "replaced the kafka producer");
                *current = Arc::new(Detached::new(fresh));
            }
            Err(e) => {
                tracing::error!(reason, error = %e, "cannot recreate the kafka producer");
            }
        }
    }
}

impl EventSink for KafkaSink {
    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(async move {
            let (headers, payload) = to_http_binary(event)?;
            let key = partition_key(event).unwrap_or_default();
            let mut record = FutureRecord::to(&self.topic)
                .headers(owned_headers(&headers))
                .key(key.as_bytes());
            if !payload.is_empty() {
                record = record.payload(&payload);
            }
            let producer = self.producer();
            let sent = producer.send(record, Timeout::After(self.timeout)).await;
            match sent {
                Ok(delivery) => {
                    tracing::debug!(
                        event_id = event.id(),
                        event_type = event.ty(),
                        partition = delivery.partition,
                        offset = delivery.offset,
                        "published to kafka"
                    );
                    Ok(())
                }
                Err((e, _message)) => {
                    self.recover(&producer, &e);
                    Err(DeliverError::Kafka(e))
                }
            }
        })
    }
}

/// Consumes the run-events topic as consumer group `group_id` and hands each
/// event to `deliver` until `shutdown` resolves: what a Knative KafkaSource
/// does in production, for `local` with `KAFKA_BROKERS` set.
///
/// At least once and in order: an event's offset is committed only after
/// `deliver` succeeded, and a failing event is retried with backoff (up to
/// [`MAX_CONSUME_BACKOFF`]) rather than skipped. Only messages that are not
/// CloudEvents at all are skipped, with a warning. Returns an error only
/// when the consumer cannot be set up; broker outages are waited out.
pub async fn consume<F, S>(
    settings: &KafkaSettings,
    group_id: &str,
    deliver: F,
    shutdown: S,
) -> Result<(), ConfigureKafkaError>
where
    F: Fn(Event) -> BoxFuture<'static, Result<(), DeliverError>> + Send + Sync,
    S: Future<Output = ()> + Send,
{
    let consumer: Detached<StreamConsumer> = Detached::new(
        client_config(settings)
            .set("group.id", group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            // Offsets are stored by hand after a successful delivery.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()?,
    );
    consumer.subscribe(&[settings.topic_run_events.as_str()])?;
    tracing::info!(topic = %settings.topic_run_events, group_id, "consuming events");

    tokio::pin!(shutdown);
    let mut recv_backoff = Duration::from_millis(100);
    'messages: loop {
        let received = tokio::select! {
            () = &mut shutdown => break 'messages,
            received = consumer.recv() => received.map(|m| m.detach()),
        };
        let message = match received {
            Ok(message) => {
                recv_backoff = Duration::from_millis(100);
                message
            }
            Err(e) => {
                tracing::warn!(error = %e, "kafka receive failed; retrying");
                tokio::select! {
                    () = &mut shutdown => break 'messages,
                    () = tokio::time::sleep(recv_backoff) => {}
                }
                recv_backoff = (recv_backoff * 2).min(MAX_CONSUME_BACKOFF);
                continue;
            }
        };
        match event_from_kafka(&message) {
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    partition = message.partition(),
                    offset = message.offset(),
                    "skipping a message that is not a CloudEvent"
                );
            }
            Ok(event) => {
                let mut backoff = Duration::from_millis(100);
                // The consumer is a hop of the event's trace too: its own
                // lines about the event carry the trace id.
                let context = super::next_hop_of(&event);
                let trace_id = context.trace_id();
                loop {
                    let delivered = crate::trace::scope(context.clone(), deliver(event.clone()));
                    match delivered.await {
                        Ok(()) => break,
                        // A malformed event is refused the same way every
                        // time: retrying it would stall its partition for
                        // good. The deliver function parks it as poison.
                        Err(e) if e.is_permanent() => {
                            tracing::error!(
                                error = %e,
                                event_id = event.id(),
                                event_type = event.ty(),
                                trace_id = %trace_id,
                                "event refused as malformed; skipping it"
                            );
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(
                                error = %e,
                                event_id = event.id(),
                                event_type = event.ty(),
                                trace_id = %trace_id,
                                retry_in_ms = backoff.as_millis() as u64,
                                "event delivery failed; retrying"
                            );
                            tokio::select! {
                                // Not stored: the event comes again next time.
                                () = &mut shutdown => break 'messages,
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(MAX_CONSUME_BACKOFF);
                        }
                    }
                }
            }
        }
        if let Err(e) =
            consumer.store_offset(message.topic(), message.partition(), message.offset())
        {
            // E.g. the partition was revoked meanwhile: its new owner gets
            // the event again, which idempotent handlers tolerate.
            tracing::warn!(error = %e, "cannot store the consumed offset");
        }
    }
    // Commit what was stored since the last auto-commit before leaving.
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "cannot commit consumed offsets on shutdown"),
    }
    if consumer.close(CLOSE_WAIT).await {
        tracing::info!("stopped consuming events");
    } else {
        tracing::warn!(
            wait_ms = CLOSE_WAIT.as_millis() as u64,
            "stopped consuming events; librdkafka is still closing the consumer"
        );
    }
    Ok(())
}

/// The optional `kafka` readiness probe: a metadata request for the
/// run-events topic with a short timeout, run in the background (at most
/// every [`PROBE_INTERVAL`]) so that no readiness answer waits for the
/// brokers; a cold start's first one would otherwise include connecting to
/// them (TLS and SASL included), up to [`PROBE_TIMEOUT`]. Kafka down makes
/// the service `degraded`, not unready: the outbox holds the events
/// meanwhile.
pub fn kafka_probe(settings: &KafkaSettings) -> Result<Probe, ConfigureKafkaError> {
    // A dedicated client, created once: probes then reuse its connections.
    let client: Arc<Detached<BaseProducer>> =
        Arc::new(Detached::new(client_config(settings).create()?));
    let topic: Arc<str> = Arc::from(settings.topic_run_events.as_str());
    Ok(Probe::in_background(
        "kafka",
        Criticality::Optional,
        PROBE_INTERVAL,
        move || {
            let client = Arc::clone(&client);
            let topic = Arc::clone(&topic);
            async move {
                // librdkafka's metadata call blocks its thread.
                let checked = tokio::task::spawn_blocking(move || {
                    let metadata = client
                        .client()
                        .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
                        .map_err(|e| format!("kafka unreachable: {e}"))?;
                    match metadata.topics().first().and_then(|t| t.error()) {
                        Some(e) => Err(format!("topic {topic}: {}", RDKafkaErrorCode::from(e))),
                        None => Ok(()),
                    }
                })
                .await;
                checked.unwrap_or_else(|e| Err(format!("kafka probe failed: {e}")))
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use cloudevents::{EventBuilder as _, EventBuilderV10};
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    use super::*;
    use crate::events::{PARTITION_KEY_EXTENSION, RUN_CLOSED};

    fn event() -> Event {
        EventBuilderV10::new()
            .id("9f1c6d0e-0000-4000-8000-000000000001")
            .source("/coffeebuddy/close-run")
            .ty(RUN_CLOSED)
            .subject("run-1")
            .time(
                Utc.with_ymd_and_hms(2026, 11, 23, 9, 30, 0)
                    .single()
                    .expect("time"),
            )
            .extension(PARTITION_KEY_EXTENSION, "C123")
            .data(
                "application/json",
                serde_json::json!({ "run_id": "r", "channel_id": "C123", "cancelled": false }),
            )
            .build()
            .expect("valid event")
    }

    fn message(headers: OwnedHeaders, payload: Option<Vec<u8>>) -> OwnedMessage {
        OwnedMessage::new(
            payload,
            Some(b"C123".to_vec()),
            "topic".to_owned(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(headers),
        )
    }

    #[test]
    fn kafka_headers_are_ce_underscore_attributes_plus_content_type() {
        let headers = kafka_headers(&event()).expect("encodes");
        let mut keys: Vec<&str> = headers.iter().map(|h| h.key).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "ce_id",
                "ce_partitionkey",
                "ce_source",
                "ce_specversion",
                "ce_subject",
                "ce_time",
                "ce_type",
                "content-type"
            ]
        );
    }

    #[test]
    fn an_event_survives_the_kafka_header_round_trip() {
        let original = event();
        let (_, payload) = to_http_binary(&original).expect("encodes");

        let decoded = event_from_kafka(&message(
            kafka_headers(&original).expect("encodes"),
            Some(payload),
        ))
        .expect("decodes");

        assert_eq!(decoded, original);
    }

    #[test]
    fn the_tls_files_and_key_passphrase_reach_librdkafka() {
        use std::path::PathBuf;

        use crate::config::{KafkaSecurityProtocol, KafkaTls};
        let settings = KafkaSettings {
            brokers: "k:9093".to_owned(),
            client_id: "test".to_owned(),
            security_protocol: KafkaSecurityProtocol::Ssl,
            sasl: None,
            tls: KafkaTls {
                ca_location: Some(PathBuf::from("/etc/kafka/ca.pem")),
                certificate_location: Some(PathBuf::from("/etc/kafka/client.pem")),
                key_location: Some(PathBuf::from("/etc/kafka/client.key")),
                key_password: Some("key-pass".to_owned().into()),
            },
            topic_run_events: "t".to_owned(),
        };

        let config = client_config(&settings);

        assert_eq!(config.get("security.protocol"), Some("ssl"));
        assert_eq!(config.get("ssl.ca.location"), Some("/etc/kafka/ca.pem"));
        assert_eq!(
            config.get("ssl.certificate.location"),
            Some("/etc/kafka/client.pem")
        );
        assert_eq!(
            config.get("ssl.key.location"),
            Some("/etc/kafka/client.key")
        );
        assert_eq!(config.get("ssl.key.password"), Some("key-pass"));

        let plain = client_config(&KafkaSettings {
            tls: KafkaTls::default(),
            ..settings
        });
        assert_eq!(plain.get("ssl.ca.location"), None, "the system store then");
    }

    #[test]
    fn a_message_without_ce_headers_is_not_a_cloudevent() {
        let headers = OwnedHeaders::new().insert(Header {
            key: "trace",
            value: Some("x"),
        });
        let result = event_from_kafka(&message(headers, Some(b"{}".to_vec())));
        assert!(matches!(
            result,
            Err(DecodeKafkaEventError::NotACloudEvent(_))
        ));
    }
}
