//! Integration tests of `coffeebuddy-shared` over real sockets, a real
//! Postgres (`DATABASE_URL`, one fresh database per `#[sqlx::test]`) and a
//! real Kafka-compatible broker (tansu, `KAFKA_TEST_BROKERS`): run them
//! through `scripts/test`, which provides both.

// The `POST /` CloudEvents intake over HTTP, both modes.
mod intake;
// Outbox → Kafka → consumer, and Kafka outages.
mod kafka;
