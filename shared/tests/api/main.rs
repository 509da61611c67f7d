//! Integration tests of `coffeebuddy-shared` over real sockets, the Slack fake, a real
//! Postgres (`DATABASE_URL`, one fresh database per `#[sqlx::test]`) and a
//! real Kafka-compatible broker (tansu, `KAFKA_TEST_BROKERS`): run them
//! through `scripts/test`, which provides both.

// Ory JWT verification against the JWKS fake: each refusal's reason.
mod ory_verifier;
// The Slack Web API client against the recording Slack fake.
mod slack_client;
// The `POST /` CloudEvents intake over HTTP, both modes.
mod intake;
// Outbox → Kafka → consumer, and Kafka outages.
mod kafka;
// Slack secrets from Vault against the Vault fake: success, every refusal.
mod vault;
