//! Test support shared by every CoffeeBuddy test crate (STYLE rule 15).
//!
//! Everything here talks over real sockets: [`spawn`] serves a router on
//! `127.0.0.1:0`, [`TcpProxy`] sits between the app and Postgres so a test
//! can cut the database off and bring it back without restarting anything,
//! [`slack`] signs requests exactly as Slack does, [`slack_fake`] stands in
//! for the Slack Web API and records every call, [`events`] builds and
//! posts CloudEvents and provides Kafka (tansu) brokers and topics, [`ory`]
//! fakes Ory's JWKS and mints operator tokens, [`vault_fake`] stands in for
//! Vault's Kubernetes login and KV v2 reads, [`lambda_fake`] stands in for
//! the AWS Lambda Runtime API, and [`LogCapture`] collects log lines for
//! assertions. [`driver`] plays Slack's side against any running
//! CoffeeBuddy (tests, chaos, bench, demo and soak share it), and
//! [`process`] runs the real binary as a child that can be killed, and
//! [`ledger`] checks every Slack effect in the database against what the
//! fake holds (nothing lost, nothing twice).

pub mod driver;
pub mod events;
pub mod lambda_fake;
pub mod ledger;
pub mod measure;
pub mod ory;
pub mod process;
pub mod slack;
pub mod slack_fake;
pub mod vault_fake;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use coffeebuddy_shared::config::{ServiceIdentity, Settings};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The signing secret every test app is configured with.
pub const SIGNING_SECRET: &str = "test-signing-secret";
/// The bot token every test app is configured with.
pub const BOT_TOKEN: &str = "xoxb-test-bot-token";

/// A router served on a real loopback socket.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl TestServer {
    /// `http://127.0.0.1:port` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Asks the server to stop (as SIGTERM would) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.begin_shutdown();
        self.task.await.map_err(io::Error::other)?
    }
}

/// Serves `app` (already wrapped by `runtime::app` if the test wants the
/// platform routes) on `127.0.0.1:0` with the production `serve` loop.
pub async fn spawn(app: Router) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(coffeebuddy_shared::runtime::serve(
        listener,
        app,
        async move {
            let _ = rx.await;
        },
    ));
    TestServer {
        addr,
        shutdown: Some(tx),
        task,
    }
}

/// The `postgres://` URL of a test database's connect options (user,
/// address and database; the throwaway server trusts loopback, so no
/// password), for settings and child processes that take a URL.
pub fn database_url(opts: &sqlx::postgres::PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("postgres")
    )
}

/// Settings for a test app talking to `database_url`, with test secrets and
/// `SERVICE_ENV=test`. `extra` adds or overrides variables.
pub fn settings(database_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: Vec<(String, String)> = vec![
        ("SERVICE_ENV".into(), "test".into()),
        ("SLACK_SIGNING_SECRET".into(), SIGNING_SECRET.into()),
        ("SLACK_BOT_TOKEN".into(), BOT_TOKEN.into()),
        ("DATABASE_URL".into(), database_url.into()),
        ("PORT".into(), "0".into()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    let identity = ServiceIdentity {
        name: "coffeebuddy-test",
        version: "0.0.0-test",
        requires_ory: false,
    };
    Settings::from_lookup(identity, &move |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .expect("test settings are valid")
}

/// A TCP forwarder that can be cut and restored, to simulate a dependency
/// (Postgres, Kafka) going away and coming back while the app keeps running.
#[derive(Debug, Clone)]
pub struct TcpProxy {
    /// Where clients should connect instead of the upstream.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl TcpProxy {
    /// Starts forwarding `127.0.0.1:<random>` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2) = (Arc::clone(&up), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    // Refuse while cut: drop the connection at once.
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().expect("proxy lock").push(task);
            }
        });
        Self {
            addr,
            up,
            connections,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().expect("proxy lock").drain(..) {
            task.abort();
        }
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A `MakeWriter` that keeps every log line in memory.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far, as text.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }

    /// The captured JSON lines, parsed (non-JSON lines are skipped).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.contents()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
