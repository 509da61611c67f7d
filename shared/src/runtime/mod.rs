//! The process shell every function shares: one [`run`] call from `main`
//! loads settings, sets up logging, reads the secrets from Vault when
//! `VAULT_ADDR` is set ([`crate::secrets`]), sets up metrics, makes sure the
//! database schema is current ([`db::migrate_on_start`]), serves the
//! function's router next to `/health/live`, `/health/ready` and
//! `METRICS_PATH`, and drains in-flight requests on SIGTERM (Knative's way
//! of stopping a pod) or Ctrl-C. Built with the `lambda` feature and started
//! by AWS Lambda, it serves the same router through the Lambda Runtime API
//! instead ([`lambda`]).
//!
//! [`app`] and [`serve`] are separate from [`run`] so tests can build the
//! exact production router around any inner router and drive it over a real
//! socket with an injected shutdown signal.

pub mod health;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metrics;
pub mod observe;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;

use crate::app::authz::WorkspaceAdmins;
use crate::app::worker::EffectWorker;
use crate::auth::OryVerifier;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{ServiceIdentity, Settings};
use crate::db;
use crate::effects::Effect;
use crate::events::NewEvent;
use crate::events::outbox::{Outbox, enqueue};
use crate::events::sink::{EventSink, InProcessSink, KafkaSink};
use crate::slack::client::SlackClient;
use crate::slack::signature::SlackVerifier;
pub use health::{Criticality, Probe, Readiness};

/// Largest request body accepted on any route. Slack payloads are a few KiB;
/// a modal submission with every block is well under this.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a starting function waits for Postgres before giving up (and
/// letting Kubernetes restart it).
pub const DATABASE_START_DEADLINE: Duration = Duration::from_secs(60);

/// How long after start the background work that is not the first
/// request's waits: the outbox relay's and the effect worker's first sweep
/// for what an earlier process left, and loading the HTTPS client's root
/// certificates. A function woken from zero serves the request that woke it
/// (and Knative's readiness checks) first, with the CPU and the pooled
/// database connection to itself; the events and effects that request
/// commits still go at once, since they wake the relay and the worker.
/// Nothing waits on the sweep in the meantime: leftovers are at least this
/// late, and the ping tick's sweep catches them anyway.
pub const START_SWEEP_DELAY: Duration = Duration::from_millis(500);

/// What a function hands to the runtime: its routes and extra probes.
#[derive(Debug)]
pub struct Service {
    /// The function's own routes (Slack paths, `POST /` for CloudEvents…).
    pub router: Router,
    /// Readiness probes beyond the database one the runtime always adds.
    pub probes: Vec<Probe>,
    /// The effect worker to run, when the service rewired its context's
    /// (`local`'s playground points Slack at its stand-in); else the
    /// runtime runs the context's own.
    pub effects: Option<EffectWorker>,
}

impl Service {
    /// A service with only the runtime's probes.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            probes: Vec::new(),
            effects: None,
        }
    }

    /// Runs `worker` instead of the context's effect worker.
    pub fn with_effect_worker(mut self, worker: EffectWorker) -> Self {
        self.effects = Some(worker);
        self
    }

    /// Adds a readiness probe.
    pub fn with_probe(mut self, probe: Probe) -> Self {
        self.probes.push(probe);
        self
    }

    /// Adds readiness probes.
    pub fn with_probes(mut self, probes: impl IntoIterator<Item = Probe>) -> Self {
        self.probes.extend(probes);
        self
    }
}

/// What the runtime gives a function to build itself from. It is also the
/// axum state of every function router.
#[derive(Debug, Clone)]
pub struct Context {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// The Postgres pool (migrations already applied).
    pub db: PgPool,
    /// The clock; the system clock in production.
    pub clock: SharedClock,
    /// The Slack Web API client.
    pub slack: SlackClient,
    /// Where handlers write events (in their transaction) and whom they wake
    /// after commit.
    pub outbox: Outbox,
    /// Without Kafka, the outbox delivers here: `local` registers every
    /// function's `POST /` router as a target.
    pub in_process: Option<InProcessSink>,
    /// Recent answers to "is this person a workspace admin?".
    pub workspace_admins: WorkspaceAdmins,
    /// Carries out the Slack effects handlers write ([`crate::effects`]);
    /// woken by [`Context::commit_and_publish`].
    pub effects: EffectWorker,
    /// Verifies operators' Ory JWTs; `None` where Ory is not configured
    /// (only possible in `local`). One per process: clones share the JWKS
    /// cache.
    pub ory: Option<OryVerifier>,
}

impl Context {
    /// Wires the Slack client and the outbox for `settings`: events go to
    /// Kafka when `KAFKA_BROKERS` is set, else to an in-process sink.
    ///
    /// Refuses settings whose Slack secrets are still to be read from Vault
    /// ([`Settings::secrets_pending`]; [`crate::secrets::resolve`] first).
    pub fn new(settings: Arc<Settings>, db: PgPool, clock: SharedClock) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !settings.secrets_pending,
            "the Slack secrets have not been read from Vault yet (call secrets::resolve first)"
        );
        let slack = SlackClient::new(&settings.slack);
        let (sink, in_process): (Arc<dyn EventSink>, _) = match &settings.kafka {
            Some(kafka) => (
                Arc::new(KafkaSink::new(kafka).context("cannot create the Kafka producer")?),
                None,
            ),
            None => {
                let sink = InProcessSink::new();
                (Arc::new(sink.clone()), Some(sink))
            }
        };
        let outbox = Outbox::new(db.clone(), sink);
        let ory = settings
            .ory
            .as_ref()
            .map(|ory| OryVerifier::new(ory, Arc::clone(&clock)));
        let effects = EffectWorker::new(
            db.clone(),
            &slack,
            Arc::clone(&clock),
            &event_source_of(&settings),
        );
        Ok(Self {
            effects,
            ory,
            settings,
            db,
            clock,
            slack,
            outbox,
            in_process,
            workspace_admins: WorkspaceAdmins::default(),
        })
    }

    /// The CloudEvent `source` of events this process writes.
    pub fn event_source(&self) -> String {
        event_source_of(&self.settings)
    }

    /// The same context talking to Slack through `slack` (handlers and the
    /// effect worker alike).
    pub fn with_slack_client(self, slack: SlackClient) -> Self {
        let effects = EffectWorker::new(
            self.db.clone(),
            &slack,
            Arc::clone(&self.clock),
            &self.event_source(),
        );
        Self {
            slack,
            effects,
            ..self
        }
    }

    /// Writes a Slack effect inside the caller's transaction, due now: it
    /// commits (or not) with the state change that causes it, and the
    /// worker carries it out after [`commit_and_publish`](Self::commit_and_publish).
    pub async fn record_effect(
        &self,
        conn: &mut sqlx::PgConnection,
        effect: &Effect,
    ) -> Result<(), sqlx::Error> {
        crate::effects::enqueue(conn, self.clock.now(), effect)
            .await
            .map(drop)
    }

    /// Writes an event about `run_id` in `channel_id` into the outbox, inside
    /// the caller's transaction: it commits (or not) with the state change.
    pub async fn record_event<T: crate::events::EventData>(
        &self,
        conn: &mut sqlx::PgConnection,
        channel_id: &str,
        run_id: uuid::Uuid,
        data: &T,
    ) -> Result<uuid::Uuid, sqlx::Error> {
        let event = NewEvent::new(channel_id, Some(run_id.to_string()), data);
        enqueue(conn, &self.event_source(), event).await
    }

    /// Writes an event about a whole channel (no run) into the outbox,
    /// inside the caller's transaction.
    pub async fn record_channel_event<T: crate::events::EventData>(
        &self,
        conn: &mut sqlx::PgConnection,
        channel_id: &str,
        data: &T,
    ) -> Result<uuid::Uuid, sqlx::Error> {
        let event = NewEvent::new(channel_id, None, data);
        enqueue(conn, &self.event_source(), event).await
    }

    /// Commits a transaction that recorded events or effects, then wakes
    /// the relay and the effect worker so they go out at once rather than
    /// at the next sweep.
    pub async fn commit_and_publish(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.outbox.notify();
        self.effects.notify();
        Ok(())
    }
}

/// The CloudEvent `source` of a process with these settings.
fn event_source_of(settings: &Settings) -> String {
    format!("/coffeebuddy/{}", settings.service.name)
}

impl axum::extract::FromRef<Context> for SlackVerifier {
    fn from_ref(ctx: &Context) -> Self {
        SlackVerifier::new(
            ctx.settings.slack.signing_secret.clone(),
            Arc::clone(&ctx.clock),
        )
    }
}

/// Wraps `router` with the platform routes and middleware: health, metrics,
/// correlation ids, access logs, the latency histogram and the body limit.
pub fn app(router: Router, readiness: Readiness, metrics_path: &str) -> Router {
    let platform = Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .with_state(Arc::new(readiness))
        .merge(
            Router::new()
                .route(metrics_path, get(metrics::render))
                .with_state(metrics::handle()),
        );
    let metrics_path: Arc<str> = Arc::from(metrics_path);
    router
        .merge(platform)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(move |req, next| {
            observe::observe(Arc::clone(&metrics_path), req, next)
        }))
}

/// The production router for `service`: its routes plus the platform
/// routes. Readiness checks the database (required) and, where events go
/// through Kafka, the brokers (optional: Kafka down = degraded, the outbox
/// holds the events), then the service's own probes.
pub fn assemble(ctx: &Context, service: Service) -> Router {
    let mut readiness =
        Readiness::new(ctx.settings.service.version.clone()).with_probe(db::probe(ctx.db.clone()));
    if let Some(kafka) = &ctx.settings.kafka {
        // The same settings already built the producer in `Context::new`, so
        // this cannot fail in practice; if it did, readiness just lacks it.
        match crate::events::kafka::kafka_probe(kafka) {
            Ok(probe) => readiness = readiness.with_probe(probe),
            Err(e) => tracing::warn!(error = %e, "no Kafka readiness probe"),
        }
    }
    app(
        service.router,
        readiness.with_probes(service.probes),
        &ctx.settings.metrics_path,
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting
/// and waits for in-flight requests to finish.
pub async fn serve<S>(listener: TcpListener, app: Router, shutdown: S) -> std::io::Result<()>
where
    S: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; draining in-flight requests"),
        () = terminate => tracing::info!("SIGTERM received; draining in-flight requests"),
    }
}

/// The whole life of a function process; `main` returns its exit code.
pub async fn run<F>(identity: ServiceIdentity, build: F) -> ExitCode
where
    F: FnOnce(Context) -> anyhow::Result<Service>,
{
    let settings = match Settings::from_env(identity) {
        Ok(settings) => settings,
        Err(e) => {
            // Logging is configured by these very settings, so a broken
            // configuration is reported as plain text on stderr.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{}: {e}", identity.name);
            }
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = crate::telemetry::init(&settings.log) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{}: cannot install the log subscriber: {e}", identity.name);
        }
        return ExitCode::FAILURE;
    }
    if settings.vault.is_some() {
        for var in crate::secrets::REPLACED_ENV_VARS {
            if std::env::var_os(var).is_some() {
                tracing::warn!(
                    var,
                    "ignored: VAULT_ADDR is set, so this secret comes from Vault"
                );
            }
        }
    }
    match start(settings, build).await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal error");
            ExitCode::FAILURE
        }
    }
}

/// Starts the function, then serves until SIGTERM.
///
/// A cold start is on the path of the first request after scale-to-zero,
/// so the work is ordered for it: the database check (a connection and one
/// query, mostly waiting on Postgres) runs in the background while the
/// process builds its clients and router and binds the socket (mostly CPU).
/// Requests are accepted only once the schema is known to be current, so
/// none can meet an old schema; connections arriving earlier wait in the
/// socket's backlog rather than being refused.
async fn start<F>(settings: Settings, build: F) -> anyhow::Result<()>
where
    F: FnOnce(Context) -> anyhow::Result<Service>,
{
    let started = std::time::Instant::now();
    tracing::info!(
        service = %settings.service.name,
        version = %settings.service.version,
        env = settings.service.env.as_str(),
        "starting"
    );
    // Before anything is built from them: the Slack client, the signature
    // verifier, the pool and the Kafka client must only ever see the real
    // secrets.
    let settings = Arc::new(
        crate::secrets::resolve(settings)
            .await
            .context("cannot load the secrets from Vault")?,
    );
    let secrets_done = started.elapsed();
    metrics::handle();
    metrics::record_build_info(&settings.service.name, &settings.service.version);

    let pool = db::pool(&settings.database).context("invalid DATABASE_URL")?;
    let schema = tokio::spawn({
        let pool = pool.clone();
        async move {
            let result = db::migrate_on_start(&pool, DATABASE_START_DEADLINE).await;
            (result, started.elapsed())
        }
    });

    let ctx = Context::new(Arc::clone(&settings), pool.clone(), Arc::new(SystemClock))?;
    let service = build(ctx.clone()).context("cannot build the service")?;
    let effects = service
        .effects
        .clone()
        .unwrap_or_else(|| ctx.effects.clone());
    let app = assemble(&ctx, service);
    let built = started.elapsed();

    #[cfg(feature = "lambda")]
    if lambda::is_lambda() {
        let (result, _) = schema.await.context("the schema check panicked")?;
        result?;
        // Lambda freezes the process between invocations: the worker runs
        // while one is in flight, and the scheduled ping drains the rest.
        let relay = ctx.outbox.spawn_relay(START_SWEEP_DELAY);
        let worker = effects.spawn(START_SWEEP_DELAY);
        crate::http_client::warm_after(START_SWEEP_DELAY);
        let served = lambda::serve(app).await;
        relay.abort();
        worker.abort();
        pool.close().await;
        return served;
    }

    let addr = SocketAddr::from(([0, 0, 0, 0], settings.port));
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("no local address")?;
    let (result, schema_done) = schema.await.context("the schema check panicked")?;
    result?;
    // Publishes what handlers commit, and anything an earlier process left;
    // carries out their Slack effects.
    let relay = ctx.outbox.spawn_relay(START_SWEEP_DELAY);
    let worker = effects.spawn(START_SWEEP_DELAY);
    crate::http_client::warm_after(START_SWEEP_DELAY);
    tracing::info!(
        addr = %local,
        startup_ms = ms(started.elapsed()),
        secrets_ms = ms(secrets_done),
        build_ms = ms(built.saturating_sub(secrets_done)),
        schema_ms = ms(schema_done.saturating_sub(secrets_done)),
        "listening"
    );
    serve(listener, app, shutdown_signal())
        .await
        .context("server error")?;
    // Whatever the relay had not published stays in the outbox for the next
    // process (or the ping sweep): nothing is lost by stopping it here.
    relay.abort();
    // An effect cut off mid-call keeps its claim until the lease expires;
    // the next worker then reconciles it (never resends blindly).
    worker.abort();
    pool.close().await;
    Ok(())
}

/// Milliseconds with a fraction, for start-up timings in the log.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}
