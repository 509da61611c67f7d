//! CloudEvents and Kafka for tests.
//!
//! - [`event`] builds a CloudEvent the way our outbox does;
//!   [`post_binary`] and [`post_structured`] send it to a function's
//!   `POST /` in either HTTP mode, as Knative would.
//! - [`Tansu`] talks to the Kafka-compatible broker `scripts/test` starts
//!   (`KAFKA_TEST_BROKERS`) and gives each test its own topic.
//! - [`TansuBroker`] starts a private broker behind a [`TcpProxy`], for
//!   tests that take Kafka away and bring it back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cloudevents::{Event, EventBuilder as _, EventBuilderV10};
use coffeebuddy_shared::config::{KafkaSecurityProtocol, KafkaSettings};
use coffeebuddy_shared::events::{
    JSON_CONTENT_TYPE, PARTITION_KEY_EXTENSION, to_http_binary, to_http_structured,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::TcpProxy;

/// The variable `scripts/test` sets to the broker it started.
pub const BROKERS_VAR: &str = "KAFKA_TEST_BROKERS";

/// A CloudEvent of `event_type` with `data`, a fresh id, source `/test`,
/// and `partitionkey` = `channel_id`, shaped like the outbox's events.
pub fn event(event_type: &str, channel_id: &str, data: serde_json::Value) -> Event {
    EventBuilderV10::new()
        .id(uuid::Uuid::new_v4().to_string())
        .source("/test")
        .ty(event_type)
        .time(chrono::Utc::now())
        .extension(PARTITION_KEY_EXTENSION, channel_id)
        .data(JSON_CONTENT_TYPE, data)
        .build()
        .expect("a test event with every required attribute")
}

/// `POST url` carrying `event` in HTTP binary mode (`ce-*` headers, data as
/// body), as Knative's KafkaSource delivers.
pub fn post_binary(client: &reqwest::Client, url: &str, event: &Event) -> reqwest::RequestBuilder {
    let (headers, body) = to_http_binary(event).expect("a test event encodes");
    client.post(url).headers(headers).body(body)
}

/// `POST url` carrying `event` in HTTP structured mode
/// (`application/cloudevents+json`).
pub fn post_structured(
    client: &reqwest::Client,
    url: &str,
    event: &Event,
) -> reqwest::RequestBuilder {
    let body = to_http_structured(event).expect("a test event encodes");
    client
        .post(url)
        .header("content-type", "application/cloudevents+json")
        .body(body)
}

/// Kafka settings for `brokers` and `topic`: plaintext, no SASL.
pub fn kafka_settings(brokers: &str, topic: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: brokers.to_owned(),
        client_id: "coffeebuddy-test".to_owned(),
        security_protocol: KafkaSecurityProtocol::Plaintext,
        sasl: None,
        tls: Default::default(),
        topic_run_events: topic.to_owned(),
    }
}

/// The shared test broker (`KAFKA_TEST_BROKERS`).
#[derive(Debug, Clone)]
pub struct Tansu {
    /// `host:port` of the broker.
    pub brokers: String,
}

impl Tansu {
    /// The broker `scripts/test` started. Panics with instructions when the
    /// variable is unset: a Kafka test that silently skipped would prove
    /// nothing.
    pub fn from_env() -> Self {
        match std::env::var(BROKERS_VAR) {
            Ok(brokers) if !brokers.trim().is_empty() => Self { brokers },
            _ => panic!(
                "{BROKERS_VAR} is not set: Kafka tests need a broker. Run the tests through \
                 scripts/test (it starts a tansu broker), or start one yourself \
                 (`tansu broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url \
                 tcp://127.0.0.1:9092 --storage-engine memory://tansu/`) and export \
                 {BROKERS_VAR}=127.0.0.1:9092"
            ),
        }
    }

    /// Creates a topic with a unique name and `partitions` partitions.
    pub async fn create_topic(&self, partitions: i32) -> String {
        create_topic(&self.brokers, partitions).await
    }

    /// Settings for publishing to and consuming from `topic`.
    pub fn settings(&self, topic: &str) -> KafkaSettings {
        kafka_settings(&self.brokers, topic)
    }
}

/// Creates a uniquely named topic on `brokers` and returns its name.
pub async fn create_topic(brokers: &str, partitions: i32) -> String {
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("a Kafka admin client");
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .unwrap_or_else(|e| panic!("cannot create topic {name} on {brokers}: {e}"));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("cannot create topic {topic} on {brokers}: {code}");
        }
    }
    name
}

/// Reads `count` messages from partition 0 of `settings`' topic, from the
/// beginning, without joining a group (a join takes seconds). Panics when
/// one does not arrive within 15 s.
pub async fn read_messages(settings: &KafkaSettings, count: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&settings.topic_run_events, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let mut messages = Vec::new();
    while messages.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(15), consumer.recv())
            .await
            .expect("a message within 15 s")
            .expect("receive");
        messages.push(message.detach());
    }
    messages
}

/// A private tansu broker whose only way in is a [`TcpProxy`], so a test
/// can cut Kafka off and restore it. The broker advertises the proxy's
/// address, so clients never learn a way around it. Stopped on drop.
#[derive(Debug)]
pub struct TansuBroker {
    /// The proxy in front of the broker.
    pub proxy: TcpProxy,
    /// What clients should use as `bootstrap.servers` (the proxy).
    pub brokers: String,
    _child: Child,
}

impl TansuBroker {
    /// Starts `tansu broker` with in-memory storage behind a new proxy.
    /// The binary is `$TANSU_BIN`, else `tansu` on `PATH`, else
    /// `~/.cargo/bin/tansu`.
    pub async fn start() -> Self {
        let port = free_port().await;
        let upstream = SocketAddr::from(([127, 0, 0, 1], port));
        let proxy = TcpProxy::start(upstream).await;
        let binary = tansu_binary();
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://{upstream}"),
                "--advertised-listener-url",
                &format!("tcp://{}", proxy.addr),
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(upstream).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "tansu did not listen on {upstream} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            brokers: proxy.addr.to_string(),
            proxy,
            _child: child,
        }
    }

    /// Creates a uniquely named topic through the proxy.
    pub async fn create_topic(&self, partitions: i32) -> String {
        create_topic(&self.brokers, partitions).await
    }

    /// Settings for `topic` through the proxy.
    pub fn settings(&self, topic: &str) -> KafkaSettings {
        kafka_settings(&self.brokers, topic)
    }
}

fn tansu_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/tansu"))
        })
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tansu not found (TANSU_BIN, PATH, ~/.cargo/bin): run the tests through \
                 scripts/test, which installs it"
            )
        })
}

/// A loopback port nothing listens on right now.
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// A tansu broker that keeps its data on disk (tansu's SQLite storage
/// engine, `sqlite://…`, which needs tansu built with its `libsql`
/// feature) and can be SIGKILLed and started again on the same port and
/// data, as a broker pod would be. Killed on drop.
#[derive(Debug)]
pub struct DurableTansu {
    binary: PathBuf,
    /// Where its SQLite file lives (the broker runs there: tansu reads a
    /// `sqlite://` URL's path relative to its working directory).
    dir: PathBuf,
    /// Where the broker listens (no proxy: the broker itself goes away).
    pub addr: SocketAddr,
    /// What clients should use as `bootstrap.servers`.
    pub brokers: String,
    child: Option<Child>,
}

impl DurableTansu {
    /// Starts `binary` with its SQLite storage in `dir` on a free port.
    pub async fn start(binary: &std::path::Path, dir: &std::path::Path) -> Self {
        let port = free_port().await;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut broker = Self {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            addr,
            brokers: addr.to_string(),
            child: None,
        };
        broker.restart().await;
        broker
    }

    /// SIGKILL: the broker dies mid-request, keeping only what it wrote.
    pub async fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the broker again on the same port and data, and waits until
    /// it accepts connections.
    pub async fn restart(&mut self) {
        self.kill_hard().await;
        let url = format!("tcp://{}", self.addr);
        let child = Command::new(&self.binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "tansu did not listen on {} within 20 s",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a uniquely named topic.
    pub async fn create_topic(&self, partitions: i32) -> String {
        create_topic(&self.brokers, partitions).await
    }
}

/// How many records `topic`'s `partitions` hold on `brokers` (the sum of
/// each partition's high minus low watermark), read without joining a
/// group. Blocks for up to 10 s a partition: call it from
/// `spawn_blocking`.
pub fn record_count(brokers: &str, topic: &str, partitions: i32) -> Result<i64, String> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "coffeebuddy-test-watermarks")
        .create()
        .map_err(|e| e.to_string())?;
    let mut total = 0;
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|e| format!("partition {partition}: {e}"))?;
        total += high - low;
    }
    Ok(total)
}
