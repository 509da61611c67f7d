//! The laptop stack's stand-in for Knative's KafkaSources (`compose.yaml`,
//! profile `all`): what `knative/kafkasources.yaml` does in a cluster, for
//! functions running as plain containers.
//!
//! For each [`Sink`] (a consumer group and a function's URL) it consumes the
//! run-events topic with [`kafka::consume`] (at least once, offsets stored
//! after delivery) and POSTs each event to the function as a binary-mode
//! HTTP CloudEvent, with the KafkaSources' delivery ([`Delivery`]): retry a
//! retryable failure (no answer, 5xx, 404, 408, 409, 429, as Knative does)
//! with exponential backoff, then hand the event to the dead-letter sink
//! with Knative's `knativeerror*` extensions, and move on. A failure that
//! no retry can fix (any other 4xx, e.g. 400 for a malformed event) goes to
//! the dead-letter sink at once.
//!
//! Unlike `ordering: unordered` in the cluster, a consumer here delivers
//! one event at a time: an event being retried holds up the events after
//! it for that one function (at most the retry schedule, about 8.5 minutes
//! as shipped). The laptop stack trades that for a few lines of code.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine as _;
use cloudevents::{AttributesReader as _, Event};
use coffeebuddy_shared::config::{
    DEFAULT_RUN_EVENTS_TOPIC, KafkaSecurityProtocol, KafkaSettings, LogFormat, LogSettings,
};
use coffeebuddy_shared::events::sink::to_http_binary;
use coffeebuddy_shared::events::{BoxFuture, DeliverError, kafka};
use tokio::sync::watch;

/// `group=url` pairs, comma-separated: one consumer group per function.
pub const SINKS_VAR: &str = "KAFKA_SOURCE_SINKS";
/// Where events go once their retries are spent (unset: they are dropped
/// with an error log, as a KafkaSource without `deadLetterSink` does).
pub const DEAD_LETTER_URL_VAR: &str = "KAFKA_SOURCE_DEAD_LETTER_URL";
/// `delivery.retry`: retries after the first attempt.
pub const RETRY_VAR: &str = "KAFKA_SOURCE_RETRY";
/// `delivery.backoffDelay` in milliseconds; doubled after each retry.
pub const BACKOFF_DELAY_VAR: &str = "KAFKA_SOURCE_BACKOFF_DELAY_MS";

/// Every environment variable [`Config::from_lookup`] reads.
pub const ENV_VARS: [&str; 10] = [
    "KAFKA_BROKERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_TOPIC_RUN_EVENTS",
    SINKS_VAR,
    DEAD_LETTER_URL_VAR,
    RETRY_VAR,
    BACKOFF_DELAY_VAR,
    "PORT",
    "LOG_LEVEL",
    "LOG_FORMAT",
];

/// Longest single wait between two attempts, whatever the schedule says.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How much of a refusing answer's body the dead letter carries.
const ERROR_DATA_BYTES: usize = 1024;

/// One function fed by one consumer group: a KafkaSource's `consumerGroup`
/// and `sink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    /// The consumer group (each function has its own, so each gets every
    /// event).
    pub group: String,
    /// The function's CloudEvents endpoint, e.g. `http://reminder:8080/`.
    pub url: String,
}

/// A KafkaSource's `delivery`: `retry` and exponential `backoffDelay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Retries after the first attempt.
    pub retry: u32,
    /// Wait before the first retry; doubled before each further one.
    pub backoff_delay: Duration,
}

impl Delivery {
    /// The wait before retry number `n` (0-based): `backoff_delay × 2ⁿ`,
    /// capped at ten minutes.
    pub fn wait_before_retry(&self, n: u32) -> Duration {
        let factor = 2u32.checked_pow(n).unwrap_or(u32::MAX);
        self.backoff_delay
            .checked_mul(factor)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }
}

/// Everything the stand-in is configured with, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `KAFKA_BROKERS`.
    pub brokers: String,
    /// `KAFKA_TOPIC_RUN_EVENTS`.
    pub topic: String,
    /// `KAFKA_SOURCE_SINKS`.
    pub sinks: Vec<Sink>,
    /// `KAFKA_SOURCE_DEAD_LETTER_URL`.
    pub dead_letter_url: Option<String>,
    /// `KAFKA_SOURCE_RETRY` (default 10) and `KAFKA_SOURCE_BACKOFF_DELAY_MS`
    /// (default 500): knative/kafkasources.yaml's numbers.
    pub delivery: Delivery,
    /// `PORT` of the health endpoints (default 8080).
    pub port: u16,
    /// `LOG_LEVEL`, `LOG_FORMAT`.
    pub log: LogSettings,
}

fn http_url(var: &str, value: &str, problems: &mut Vec<String>) -> String {
    let value = value.trim();
    if (!value.starts_with("http://") && !value.starts_with("https://"))
        || reqwest::Url::parse(value).is_err()
    {
        problems.push(format!("{var}: {value:?} is not an http(s) URL"));
    }
    value.to_owned()
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`; the error names every
    /// problem at once.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();

        let brokers = get("KAFKA_BROKERS").unwrap_or_else(|| {
            problems.push("KAFKA_BROKERS: is required".to_owned());
            String::new()
        });
        if let Some(protocol) = get("KAFKA_SECURITY_PROTOCOL")
            && protocol.parse::<KafkaSecurityProtocol>().ok()
                != Some(KafkaSecurityProtocol::Plaintext)
        {
            problems.push(format!(
                "KAFKA_SECURITY_PROTOCOL: the laptop stand-in speaks plaintext only, not {protocol:?}"
            ));
        }
        let topic =
            get("KAFKA_TOPIC_RUN_EVENTS").unwrap_or_else(|| DEFAULT_RUN_EVENTS_TOPIC.to_owned());

        let mut sinks: Vec<Sink> = Vec::new();
        for entry in get(SINKS_VAR).unwrap_or_default().split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            match entry.split_once('=') {
                Some((group, url)) if !group.trim().is_empty() => {
                    let group = group.trim().to_owned();
                    if sinks.iter().any(|s| s.group == group) {
                        problems.push(format!(
                            "{SINKS_VAR}: consumer group {group} twice: the two would split the events"
                        ));
                    }
                    let url = http_url(SINKS_VAR, url, &mut problems);
                    sinks.push(Sink { group, url });
                }
                _ => problems.push(format!("{SINKS_VAR}: {entry:?} is not group=url")),
            }
        }
        if sinks.is_empty() {
            problems.push(format!("{SINKS_VAR}: names no group=url"));
        }
        let dead_letter_url =
            get(DEAD_LETTER_URL_VAR).map(|url| http_url(DEAD_LETTER_URL_VAR, &url, &mut problems));

        let mut number = |var: &str, default: u64, max: u64| -> u64 {
            match get(var).map(|v| v.trim().parse::<u64>()) {
                None => default,
                Some(Ok(n)) if n <= max => n,
                Some(_) => {
                    problems.push(format!("{var}: must be a whole number from 0 to {max}"));
                    default
                }
            }
        };
        let retry = u32::try_from(number(RETRY_VAR, 10, 100)).unwrap_or(10);
        let backoff_ms = number(BACKOFF_DELAY_VAR, 500, 60_000);
        let port = u16::try_from(number("PORT", 8080, u64::from(u16::MAX))).unwrap_or(8080);

        let format = match get("LOG_FORMAT").map(|f| f.parse::<LogFormat>()) {
            None => LogFormat::Json,
            Some(Ok(format)) => format,
            Some(Err(e)) => {
                problems.push(format!("LOG_FORMAT: {e}"));
                LogFormat::Json
            }
        };
        let level = get("LOG_LEVEL").unwrap_or_else(|| "info".to_owned());

        if !problems.is_empty() {
            anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "));
        }
        Ok(Self {
            brokers,
            topic,
            sinks,
            dead_letter_url,
            delivery: Delivery {
                retry,
                backoff_delay: Duration::from_millis(backoff_ms),
            },
            port,
            log: LogSettings { level, format },
        })
    }

    /// Kafka settings for the consumers.
    pub fn kafka(&self) -> KafkaSettings {
        KafkaSettings {
            brokers: self.brokers.clone(),
            client_id: "coffeebuddy-kafka-source".to_owned(),
            security_protocol: KafkaSecurityProtocol::Plaintext,
            sasl: None,
            tls: Default::default(),
            topic_run_events: self.topic.clone(),
        }
    }
}

/// Why the last attempt of a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// No answer (connection refused, timeout…).
    NoAnswer(String),
    /// An answer that is not 2xx, with the start of its body.
    Status(u16, Vec<u8>),
}

/// Whether Knative retries a delivery that got `status`: 5xx and the 4xx
/// that can pass (404 while a service starts, 408, 409, 429).
pub fn is_retryable(status: u16) -> bool {
    status >= 500 || matches!(status, 404 | 408 | 409 | 429)
}

/// Delivers events the way a KafkaSource's dispatcher does.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    client: reqwest::Client,
    delivery: Delivery,
    dead_letter_url: Option<String>,
    shutdown: watch::Receiver<bool>,
}

impl Dispatcher {
    /// A dispatcher that stops waiting between retries once `shutdown`
    /// turns true (the event is then redelivered after a restart).
    pub fn new(
        delivery: Delivery,
        dead_letter_url: Option<String>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()?;
        Ok(Self {
            client,
            delivery,
            dead_letter_url,
            shutdown,
        })
    }

    async fn post(&self, url: &str, event: &Event) -> Result<(), Failure> {
        let (headers, body) =
            to_http_binary(event).map_err(|e| Failure::NoAnswer(format!("cannot encode: {e}")))?;
        let answer = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::NoAnswer(e.to_string()))?;
        let status = answer.status().as_u16();
        if answer.status().is_success() {
            return Ok(());
        }
        let mut data = answer.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        data.truncate(ERROR_DATA_BYTES);
        Err(Failure::Status(status, data))
    }

    /// Waits `wait` unless shutdown comes first (then `false`).
    async fn pause(&self, wait: Duration) -> bool {
        let mut shutdown = self.shutdown.clone();
        if *shutdown.borrow() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            _ = shutdown.wait_for(|stop| *stop) => false,
        }
    }

    /// Delivers `event` to `url`: the first attempt, up to `retry` retries
    /// of retryable failures, then the dead-letter sink. `Ok` once the
    /// function or the dead-letter sink took it (or it was dropped for want
    /// of one); `Err` when the dead-letter sink refused it too, or shutdown
    /// interrupted: the consumer then redelivers it later.
    pub async fn deliver(&self, url: &str, event: &Event) -> Result<(), DeliverError> {
        let mut failure = match self.post(url, event).await {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        for n in 0..self.delivery.retry {
            if matches!(failure, Failure::Status(status, _) if !is_retryable(status)) {
                break;
            }
            let wait = self.delivery.wait_before_retry(n);
            tracing::warn!(
                event_id = event.id(),
                event_type = event.ty(),
                %url,
                failure = ?failure,
                retry = n + 1,
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "delivery failed; retrying"
            );
            if !self.pause(wait).await {
                return Err(DeliverError::Unavailable("shutting down".to_owned()));
            }
            failure = match self.post(url, event).await {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
        }
        self.dead_letter(url, event, failure).await
    }

    async fn dead_letter(
        &self,
        url: &str,
        event: &Event,
        failure: Failure,
    ) -> Result<(), DeliverError> {
        let Some(dead_letters) = &self.dead_letter_url else {
            tracing::error!(event_id = event.id(), event_type = event.ty(), %url, failure = ?failure,
                "delivery failed for good and no dead-letter sink is set: event dropped");
            return Ok(());
        };
        // Knative's extensions: where it failed, the status, and the start
        // of the answer (base64).
        let mut letter = event.clone();
        letter.set_extension("knativeerrordest", url.to_owned());
        match &failure {
            Failure::Status(status, data) => {
                letter.set_extension("knativeerrorcode", status.to_string());
                if !data.is_empty() {
                    letter.set_extension(
                        "knativeerrordata",
                        base64::engine::general_purpose::STANDARD.encode(data),
                    );
                }
            }
            Failure::NoAnswer(reason) => {
                letter.set_extension(
                    "knativeerrordata",
                    base64::engine::general_purpose::STANDARD.encode(reason.as_bytes()),
                );
            }
        }
        match self.post(dead_letters, &letter).await {
            Ok(()) => {
                tracing::warn!(event_id = event.id(), event_type = event.ty(), %url, failure = ?failure,
                    "delivery failed for good: event sent to the dead-letter sink");
                Ok(())
            }
            Err(e) => Err(DeliverError::Unavailable(format!(
                "{url} refused the event ({failure:?}) and so did the dead-letter sink {dead_letters} ({e:?})"
            ))),
        }
    }
}

/// `/health/live` and `/health/ready`: ready while every consumer runs.
pub fn health_router(running: Arc<AtomicUsize>, consumers: usize) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { (StatusCode::OK, r#"{"status":"healthy"}"#) }),
        )
        .route(
            "/health/ready",
            get(move || {
                let running = running.load(Ordering::Relaxed);
                async move {
                    if running == consumers {
                        (StatusCode::OK, r#"{"status":"healthy"}"#)
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"unhealthy"}"#)
                    }
                }
            }),
        )
}

/// Runs one consumer per sink until `shutdown` turns true; `running`
/// counts the consumers that are up.
pub async fn run(
    config: &Config,
    dispatcher: Dispatcher,
    running: Arc<AtomicUsize>,
    shutdown: watch::Receiver<bool>,
) {
    let settings = config.kafka();
    let mut tasks = tokio::task::JoinSet::new();
    for sink in config.sinks.clone() {
        let settings = settings.clone();
        let dispatcher = dispatcher.clone();
        let running = Arc::clone(&running);
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            let url = Arc::new(sink.url.clone());
            let deliver = move |event: Event| -> BoxFuture<'static, Result<(), DeliverError>> {
                let dispatcher = dispatcher.clone();
                let url = Arc::clone(&url);
                Box::pin(async move { dispatcher.deliver(&url, &event).await })
            };
            running.fetch_add(1, Ordering::Relaxed);
            tracing::info!(group = %sink.group, url = %sink.url, "delivering events");
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            if let Err(e) = kafka::consume(&settings, &sink.group, deliver, stopped).await {
                tracing::error!(group = %sink.group, error = %e, "the consumer cannot run");
            }
            running.fetch_sub(1, Ordering::Relaxed);
        });
    }
    while tasks.join_next().await.is_some() {}
}
