//! Postgres: the pool, the migrations (the schema's single source) and the
//! readiness probe.
//!
//! Migrations run at every function start. sqlx's migrator takes a Postgres
//! advisory lock for the duration of a run, so five functions starting at
//! once serialise instead of racing; the ones that come second find nothing
//! left to apply.
//!
//! Queries shared by several functions live in the aggregate modules below;
//! they take `&mut PgConnection` so callers decide the transaction.
//! They are checked at run time and covered by tests against a real
//! Postgres, so a build never needs a database.

pub mod audit;
pub mod channels;
pub mod effects;
pub mod event_receipts;
pub mod follow_through;
pub mod orders;
pub mod runs;
pub mod stats;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseSettings;
use crate::runtime::{Criticality, Probe};

/// Every migration under `shared/migrations`, embedded at compile time. Tests
/// use it with `#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]`.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A lazily connecting pool: creating it never waits for Postgres, so a
/// function can start (and report itself unready) while the database is down.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .min_connections(settings.pool_min)
        .max_connections(settings.pool_max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(settings.url.expose_secret())
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Applies migrations, retrying while Postgres is unreachable for up to
/// `deadline` (a database that is still starting is normal during a
/// rollout). Errors that waiting cannot fix, such as a failing migration,
/// are returned at once.
pub async fn migrate_on_start(pool: &PgPool, deadline: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(250);
    loop {
        match migrate(pool).await {
            Ok(()) => {
                tracing::info!(
                    migrations = MIGRATOR.iter().count(),
                    "database schema is up to date"
                );
                return Ok(());
            }
            Err(sqlx::migrate::MigrateError::Execute(e))
                if is_unreachable(&e) && started.elapsed() < deadline =>
            {
                tracing::warn!(error = %describe(&e), retry_in_ms = backoff.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).context("cannot apply database migrations"),
        }
    }
}

fn is_unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)
    )
}

/// A short description of a database error that is safe to show on
/// `/health/ready` (no connection string, no credentials).
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => format!("database unreachable: {io}"),
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".to_owned(),
        sqlx::Error::Tls(_) => "TLS error talking to the database".to_owned(),
        sqlx::Error::Database(db) => format!("database error: {}", db.message()),
        sqlx::Error::PoolClosed => "database pool is closed".to_owned(),
        _ => "database error".to_owned(),
    }
}

/// The required `database` readiness probe: one round trip.
pub fn probe(pool: PgPool) -> Probe {
    Probe::new("database", Criticality::Required, move || {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(|e| describe(&e))
        }
    })
}
