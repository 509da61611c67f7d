//! `coffeebuddy-shared`: everything the CoffeeBuddy functions share.
//!
//! # Layout
//! - [`config`]: settings from the environment, validated once at start.
//! - [`telemetry`]: JSON logs through `tracing`.
//! - [`trace`]: the W3C trace context and correlation id that follow one
//!   request across functions (events, effects, log lines).
//! - [`probe`]: readiness probes, handed by each dependency's owner to the
//!   runtime.
//! - [`runtime`]: the process shell (`run`), health, metrics, correlation
//!   ids, graceful shutdown.
//! - [`db`]: the Postgres pool, the migrations and the readiness probe.
//! - [`events`]: our CloudEvents, the transactional outbox, the Kafka and
//!   in-process sinks, and the `POST /` intake.
//! - [`secrets`]: the secrets from Vault (Kubernetes auth, KV v2),
//!   read once at start when `VAULT_ADDR` is set.
//! - [`auth`]: Ory JWT verification for the operators' admin API.
//! - [`http_client`]: the one HTTPS client for calls out (Slack, Ory),
//!   built on first use so a cold start never waits for it.
//! - [`slack`]: request signatures, payloads, Block Kit and the Web API client.
//! - [`clock`]: time as an injectable dependency.
//! - [`domain`]: pure rules (ids, text, and the coffee-run rules).
//! - [`effects`]: Slack effects as rows, decided in the state change's
//!   transaction (DESIGN §5).
//! - [`app`]: the application core: use cases shared by the functions
//!   (closing a run, who may govern a channel, a run's view) and the effect
//!   worker that carries effects out.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod effects;
pub mod events;
pub mod http_client;
pub mod probe;
pub mod runtime;
pub mod secrets;
pub mod slack;
pub mod telemetry;
pub mod trace;
