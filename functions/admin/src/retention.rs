//! Daily retention (DESIGN §1.6): closed and cancelled runs older than a
//! channel's `retention_days` are deleted (their orders, reminders and
//! effect records go with them), in bounded batches, at most once a day per
//! channel, audited as `system`. The same pass trims our own bookkeeping:
//! published outbox rows, the event ledger, the Slack Events API's receipts
//! and finished Slack effects beyond a week, and response URLs past their
//! 30-minute life. Each channel is purged in its own transaction.

use chrono::Duration;
use coffeebuddy_shared::db::audit::{self, SYSTEM_ACTOR};
use coffeebuddy_shared::domain::admin::AuditAction;
use coffeebuddy_shared::runtime::Context;

/// Runs deleted per statement, so a first purge of a big channel never holds
/// long locks.
const BATCH: i64 = 500;
/// Channels looked at per tick.
const CHANNELS_PER_TICK: i64 = 50;
/// How long our own bookkeeping is kept. A redelivery older than this is
/// not expected from Knative (its retries are minutes apart).
const BOOKKEEPING_DAYS: i64 = 7;

/// What one purge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Channels whose daily purge ran.
    pub channels: u64,
    /// Runs deleted.
    pub runs: u64,
}

/// Purges every channel due for its daily retention pass.
pub async fn purge_expired(ctx: &Context) -> Result<PurgeReport, sqlx::Error> {
    let now = ctx.clock.now();
    let mut report = PurgeReport::default();
    // One channel per transaction: a long purge of one channel never holds
    // another's rows, and a failure loses only that channel's pass. SKIP
    // LOCKED: two admin replicas ticking together split the channels.
    for _ in 0..CHANNELS_PER_TICK {
        let mut tx = ctx.db.begin().await?;
        let due: Option<(String, i32)> = sqlx::query_as(
            "SELECT channel_id, retention_days FROM channels
             WHERE retention_checked_at IS NULL OR retention_checked_at <= $1
             ORDER BY retention_checked_at NULLS FIRST LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED",
        )
        .bind(now - Duration::days(1))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((channel_id, retention_days)) = due else {
            break;
        };
        let cutoff = now - Duration::days(i64::from(retention_days));
        let mut deleted = 0u64;
        loop {
            let n = sqlx::query(
                "DELETE FROM runs WHERE run_id IN (
                   SELECT run_id FROM runs
                   WHERE channel_id = $1 AND status IN ('closed', 'cancelled') AND closed_at < $2
                   LIMIT $3)",
            )
            .bind(&channel_id)
            .bind(cutoff)
            .bind(BATCH)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            deleted += n;
            if n < BATCH as u64 {
                break;
            }
        }
        sqlx::query("UPDATE channels SET retention_checked_at = $2 WHERE channel_id = $1")
            .bind(&channel_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if deleted > 0 {
            audit::record(
                &mut tx,
                &channel_id,
                SYSTEM_ACTOR,
                AuditAction::RetentionPurge,
                Some(serde_json::json!({ "retention_days": retention_days, "closed_before": cutoff })),
                Some(serde_json::json!({ "runs_deleted": deleted })),
            )
            .await?;
            tracing::info!(%channel_id, deleted, retention_days, "retention purge");
        }
        tx.commit().await?;
        report.channels += 1;
        report.runs += deleted;
    }
    let mut tx = ctx.db.begin().await?;
    let keep_after = now - Duration::days(BOOKKEEPING_DAYS);
    sqlx::query("DELETE FROM outbox WHERE published_at < $1")
        .bind(keep_after)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM processed_events WHERE processed_at < $1")
        .bind(keep_after)
        .execute(&mut *tx)
        .await?;
    coffeebuddy_shared::db::event_receipts::purge(&mut tx, keep_after).await?;
    // Finished Slack effects (their rows are history once done) and
    // response URLs past their 30-minute life.
    sqlx::query("DELETE FROM effects WHERE finished_at < $1")
        .bind(keep_after)
        .execute(&mut *tx)
        .await?;
    coffeebuddy_shared::app::responses::trim_expired(&mut tx, now).await?;
    sqlx::query("DELETE FROM pending_confirmations WHERE requested_at < $1")
        .bind(now - Duration::hours(1))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(report)
}
