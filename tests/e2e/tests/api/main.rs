//! End-to-end tests: the production router over real HTTP, against a real
//! Postgres (one fresh database per test, created by `#[sqlx::test]` from
//! `DATABASE_URL`, which `scripts/test` points at a throwaway server).

// Each module is one capability, tested the way a user or operator meets it.
mod admin; // /coffee-admin: permissions, audit, reset, retention
mod admin_api; // the operators' REST API: config, bounds, audit, events
mod chaos; // faults in the real parts mid-traffic: Slack 429s and 5xx, Postgres cut off
mod coffee_run; // /coffee → orders → close → runner, summary, DMs
mod correlation; // correlation ids in responses and log lines
mod effects; // Slack effects when Slack misbehaves: never lost, never twice, never in the way
mod features; // issue 9: auto-close setting, why you, stats, CSV export, Events API
mod follow_request; // one request's trace id on its events, effects and downstream log lines
mod health; // liveness and readiness, including a database outage
mod helpers;
mod kafka_flow; // the same flow through a real Kafka broker, and Kafka outages
mod metrics; // the Prometheus endpoint
mod migrations; // the schema and its constraints
mod operator_auth; // Ory JWTs: accepted, refused, key rotation, JWKS outage
mod reminders; // the runner's pickup reminder: on time, once, only where enabled
mod shutdown; // draining in-flight requests
mod signature; // Slack request signing on a real route
