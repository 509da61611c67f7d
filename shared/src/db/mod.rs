//! Postgres: the pool, the migrations (the schema's single source) and the
//! readiness probe.
//!
//! Every function start makes sure the schema is current, cheaply: one
//! query reads `_sqlx_migrations` and compares it with [`MIGRATOR`]
//! (versions and checksums). Only when something differs (a pending
//! migration, a fresh database, a checksum mismatch, a failed earlier run)
//! does sqlx's migrator run; it takes a Postgres advisory lock for the
//! duration, so five functions starting at once after a release serialise
//! instead of racing, and the ones that come second find nothing left to
//! apply. A scale-from-zero start of an already migrated database thus
//! costs one round trip, not a lock, a `CREATE TABLE IF NOT EXISTS` and
//! several queries.
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
pub mod reminders;
pub mod runs;
pub mod stats;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseSettings;
use crate::probe::{Criticality, Probe};

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

/// Whether the database holds exactly [`MIGRATOR`]'s migrations, all applied
/// successfully and with the same checksums: one query, no lock. `false`
/// also for a database never migrated (no `_sqlx_migrations` table). Where
/// it says `false`, [`migrate`] decides (and refuses what it must, such as a
/// changed migration).
pub async fn schema_is_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    // The table name is sqlx's constant, not input.
    let query = format!(
        "SELECT version, checksum, success FROM {} ORDER BY version",
        MIGRATOR.table_name
    );
    let applied: Vec<(i64, Vec<u8>, bool)> = match sqlx::query_as(sqlx::AssertSqlSafe(query))
        .fetch_all(pool)
        .await
    {
        Ok(rows) => rows,
        // undefined_table: a database no migrator has touched yet.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let mut expected = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration());
    let mut applied = applied.iter();
    loop {
        match (expected.next(), applied.next()) {
            (None, None) => return Ok(true),
            (Some(m), Some((version, checksum, true)))
                if m.version == *version && *m.checksum == **checksum => {}
            _ => return Ok(false),
        }
    }
}

/// Brings the schema up to date: the cheap check first, the (locking)
/// migrator only when the check finds a difference. Returns whether the
/// migrator ran.
async fn bring_up_to_date(pool: &PgPool) -> Result<bool, sqlx::migrate::MigrateError> {
    if schema_is_current(pool)
        .await
        .map_err(sqlx::migrate::MigrateError::Execute)?
    {
        return Ok(false);
    }
    migrate(pool).await.map(|()| true)
}

/// Makes sure the schema is current ([`schema_is_current`], else
/// [`migrate`]), retrying while Postgres is unreachable for up to `deadline`
/// (a database that is still starting is normal during a rollout). Errors
/// that waiting cannot fix, such as a failing migration, are returned at
/// once.
pub async fn migrate_on_start(pool: &PgPool, deadline: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(250);
    loop {
        match bring_up_to_date(pool).await {
            Ok(migrated) => {
                tracing::info!(
                    migrations = MIGRATOR.iter().count(),
                    migrated,
                    elapsed_ms = started.elapsed().as_millis() as u64,
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
