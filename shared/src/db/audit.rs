//! The audit trail: every governance change, who made it, and what it was
//! before and after (DESIGN §1.6; operators' contract: table `audit_log`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::domain::admin::AuditAction;

/// The actor recorded for changes CoffeeBuddy makes by itself (retention).
pub const SYSTEM_ACTOR: &str = "system";

/// One audit row, as the operators' API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// A Slack user id, an operator's JWT `sub`, or `system`.
    pub actor: String,
    /// What was done, e.g. `disable`, `reminder-offset`, `admins-add`, `reset`.
    pub action: String,
    /// The state before, when there was one.
    pub before: Option<serde_json::Value>,
    /// The state after.
    pub after: Option<serde_json::Value>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Writes one audit row. Call it inside the transaction of the change.
pub async fn record(
    conn: &mut PgConnection,
    channel_id: &str,
    actor: &str,
    action: AuditAction,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (channel_id, actor, action, before, after) VALUES ($1, $2, $3, $4, $5)")
        .bind(channel_id)
        .bind(actor)
        .bind(action.as_str())
        .bind(before)
        .bind(after)
        .execute(conn)
        .await?;
    Ok(())
}

/// A channel's audit trail, newest first, at most `limit` rows.
pub async fn list(
    conn: &mut PgConnection,
    channel_id: &str,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT actor, action, before, after, at FROM audit_log WHERE channel_id = $1 ORDER BY at DESC, audit_id DESC LIMIT $2",
    )
    .bind(channel_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
