//! The ledger of Slack side effects already performed for a run, so a
//! redelivered event sends only what is still missing.

use sqlx::PgConnection;
use uuid::Uuid;

/// Whether `effect` was already performed for `run_id`.
pub async fn done(
    conn: &mut PgConnection,
    run_id: Uuid,
    effect: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM slack_effects WHERE run_id = $1 AND effect = $2)",
    )
    .bind(run_id)
    .bind(effect)
    .fetch_one(conn)
    .await
}

/// Records that `effect` was performed for `run_id`.
pub async fn record(
    conn: &mut PgConnection,
    run_id: Uuid,
    effect: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO slack_effects (run_id, effect) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(run_id)
    .bind(effect)
    .execute(conn)
    .await?;
    Ok(())
}

/// Serialises effect processing for one run across processes for the rest
/// of the transaction (two deliveries of the same event at once would
/// otherwise both see an effect as missing).
pub async fn lock_run_effects(conn: &mut PgConnection, run_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))")
        .bind(run_id)
        .execute(conn)
        .await?;
    Ok(())
}
