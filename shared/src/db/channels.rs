//! Channels and their configuration.

use chrono_tz::Tz;
use sqlx::PgConnection;

use crate::config::ChannelDefaults;
use crate::db::audit;
use crate::domain::admin::{AuditAction, ConfigPatch, ConfigView};
use crate::domain::auto_close::AutoCloseMinutes;

/// A channel's configuration as the functions use it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelConfig {
    /// The Slack channel.
    pub channel_id: String,
    /// Whether `/coffee` works here.
    pub enabled: bool,
    /// Whether runners get a pickup reminder.
    pub reminders_enabled: bool,
    /// Minutes before pickup that the reminder is due (0–60).
    pub reminder_offset_minutes: i32,
    /// Days closed runs are kept (1–3650).
    pub retention_days: i32,
    /// The channel's time zone, for reading and showing pickup times.
    pub timezone: Tz,
    /// Runs with a pickup time close themselves this long before pickup
    /// (DESIGN §1.10); `None` = off.
    pub auto_close_minutes: Option<AutoCloseMinutes>,
}

#[derive(sqlx::FromRow)]
struct ChannelRow {
    channel_id: String,
    enabled: bool,
    reminders_enabled: bool,
    reminder_offset_minutes: i32,
    retention_days: i32,
    timezone: String,
    auto_close_minutes: Option<i32>,
}

impl From<ChannelRow> for ChannelConfig {
    fn from(row: ChannelRow) -> Self {
        // Only validated names are ever written; an unknown one would mean a
        // newer chrono-tz wrote it, and UTC is the safe reading.
        let timezone = row.timezone.parse().unwrap_or_else(|_| {
            tracing::warn!(channel_id = %row.channel_id, timezone = %row.timezone, "unknown time zone in the database; using UTC");
            chrono_tz::UTC
        });
        Self {
            channel_id: row.channel_id,
            enabled: row.enabled,
            reminders_enabled: row.reminders_enabled,
            reminder_offset_minutes: row.reminder_offset_minutes,
            retention_days: row.retention_days,
            timezone,
            // The column's CHECK keeps it within bounds.
            auto_close_minutes: row
                .auto_close_minutes
                .and_then(|m| AutoCloseMinutes::new(i64::from(m))),
        }
    }
}

/// The column list every query of this module selects (a macro so the SQL stays a
/// `&'static str`, as sqlx requires).
macro_rules! channel_columns {
    () => {
        "channel_id, enabled, reminders_enabled, reminder_offset_minutes, retention_days, timezone, auto_close_minutes"
    };
}

/// The channel's configuration, creating the channel with `defaults` the
/// first time CoffeeBuddy sees it.
///
/// One round trip on the ack's path: the insert and the read are one
/// statement. Its snapshot cannot see a row that a concurrent first-ever
/// command in the same channel commits while the insert waits on it; only
/// then (zero rows) does a second read follow.
pub async fn ensure(
    conn: &mut PgConnection,
    channel_id: &str,
    team_id: Option<&str>,
    defaults: &ChannelDefaults,
) -> Result<ChannelConfig, sqlx::Error> {
    let row: Option<ChannelRow> = sqlx::query_as(concat!(
        "WITH inserted AS (
             INSERT INTO channels (channel_id, team_id, reminder_offset_minutes, retention_days, timezone)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (channel_id) DO NOTHING
             RETURNING ",
        channel_columns!(),
        ")
         SELECT ",
        channel_columns!(),
        " FROM inserted
         UNION ALL
         SELECT ",
        channel_columns!(),
        " FROM channels WHERE channel_id = $1
         LIMIT 1"
    ))
    .bind(channel_id)
    .bind(team_id)
    .bind(defaults.reminder_offset_minutes)
    .bind(defaults.retention_days)
    .bind(defaults.timezone.name())
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(row.into()),
        None => find(conn, channel_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound),
    }
}

/// The channel's configuration, if CoffeeBuddy has seen the channel.
pub async fn find(
    conn: &mut PgConnection,
    channel_id: &str,
) -> Result<Option<ChannelConfig>, sqlx::Error> {
    let row: Option<ChannelRow> = sqlx::query_as(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM channels WHERE channel_id = $1"
    ))
    .bind(channel_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Into::into))
}

/// Whether `user_id` was named a channel admin of `channel_id`.
pub async fn is_channel_admin(
    conn: &mut PgConnection,
    channel_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM channel_admins WHERE channel_id = $1 AND user_id = $2)",
    )
    .bind(channel_id)
    .bind(user_id)
    .fetch_one(conn)
    .await
}

impl ChannelConfig {
    /// The configuration as the API shows it and audit rows record it.
    pub fn view(&self) -> ConfigView {
        ConfigView {
            enabled: self.enabled,
            reminders_enabled: self.reminders_enabled,
            reminder_offset_minutes: self.reminder_offset_minutes,
            retention_days: self.retention_days,
            timezone: self.timezone.name().to_owned(),
            auto_close_minutes: self.auto_close_minutes.map(AutoCloseMinutes::get),
        }
    }
}

/// Applies `patch` to the channel (creating it with `defaults` first if
/// needed) and writes the audit row, all in the caller's transaction. The
/// row is locked, so concurrent changes serialise and each audit row's
/// `before` is exactly the previous row's `after`. Returns (before, after).
pub async fn apply_patch(
    conn: &mut PgConnection,
    channel_id: &str,
    defaults: &ChannelDefaults,
    actor: &str,
    action: AuditAction,
    patch: &ConfigPatch,
) -> Result<(ChannelConfig, ChannelConfig), sqlx::Error> {
    ensure(&mut *conn, channel_id, None, defaults).await?;
    let before: ChannelConfig = sqlx::query_as::<_, ChannelRow>(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM channels WHERE channel_id = $1 FOR NO KEY UPDATE"
    ))
    .bind(channel_id)
    .fetch_one(&mut *conn)
    .await?
    .into();
    let after: ChannelConfig = sqlx::query_as::<_, ChannelRow>(concat!(
        "UPDATE channels SET
           enabled = COALESCE($2, enabled),
           reminders_enabled = COALESCE($3, reminders_enabled),
           reminder_offset_minutes = COALESCE($4, reminder_offset_minutes),
           retention_days = COALESCE($5, retention_days),
           timezone = COALESCE($6, timezone),
           auto_close_minutes = CASE WHEN $7 THEN $8 ELSE auto_close_minutes END,
           updated_at = now()
         WHERE channel_id = $1 RETURNING ",
        channel_columns!()
    ))
    .bind(channel_id)
    .bind(patch.enabled)
    .bind(patch.reminders_enabled)
    .bind(patch.reminder_offset_minutes)
    .bind(patch.retention_days)
    .bind(patch.timezone.map(|tz| tz.name()))
    .bind(patch.auto_close.is_some())
    .bind(
        patch
            .auto_close
            .and_then(|setting| setting.minutes())
            .map(AutoCloseMinutes::get),
    )
    .fetch_one(&mut *conn)
    .await?
    .into();
    audit::record(
        conn,
        channel_id,
        actor,
        action,
        serde_json::to_value(before.view()).ok(),
        serde_json::to_value(after.view()).ok(),
    )
    .await?;
    Ok((before, after))
}

/// The channel's named admins, oldest first.
pub async fn admins(conn: &mut PgConnection, channel_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM channel_admins WHERE channel_id = $1 ORDER BY added_at, user_id",
    )
    .bind(channel_id)
    .fetch_all(conn)
    .await
}

/// Names `user_id` a channel admin (audited). Returns false if they already were.
pub async fn add_admin(
    conn: &mut PgConnection,
    channel_id: &str,
    defaults: &ChannelDefaults,
    actor: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    ensure(&mut *conn, channel_id, None, defaults).await?;
    let before = admins(&mut *conn, channel_id).await?;
    let added = sqlx::query("INSERT INTO channel_admins (channel_id, user_id, added_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(channel_id)
        .bind(user_id)
        .bind(actor)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if added {
        let after = admins(&mut *conn, channel_id).await?;
        audit::record(
            conn,
            channel_id,
            actor,
            AuditAction::AdminsAdd,
            Some(serde_json::json!({ "admins": before })),
            Some(serde_json::json!({ "admins": after })),
        )
        .await?;
    }
    Ok(added)
}

/// Removes `user_id` from the channel admins (audited). Returns false if
/// they were not one.
pub async fn remove_admin(
    conn: &mut PgConnection,
    channel_id: &str,
    actor: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let before = admins(&mut *conn, channel_id).await?;
    let removed = sqlx::query("DELETE FROM channel_admins WHERE channel_id = $1 AND user_id = $2")
        .bind(channel_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if removed {
        let after = admins(&mut *conn, channel_id).await?;
        audit::record(
            conn,
            channel_id,
            actor,
            AuditAction::AdminsRemove,
            Some(serde_json::json!({ "admins": before })),
            Some(serde_json::json!({ "admins": after })),
        )
        .await?;
    }
    Ok(removed)
}

/// What a reset deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ResetCounts {
    /// Runs (their orders, reminders and effect records go with them).
    pub runs: u64,
    /// Runner counts.
    pub served_counts: u64,
}

/// Deletes the channel's runs (with their orders, reminders and effect
/// ledger, by cascade) and its runner counts; configuration, admins and the
/// audit trail stay. Audited. Call inside one transaction.
pub async fn reset(
    conn: &mut PgConnection,
    channel_id: &str,
    actor: &str,
) -> Result<ResetCounts, sqlx::Error> {
    // Lock the channel so a concurrent /coffee cannot slip a run in half-way.
    sqlx::query("SELECT 1 FROM channels WHERE channel_id = $1 FOR UPDATE")
        .bind(channel_id)
        .execute(&mut *conn)
        .await?;
    let runs = sqlx::query("DELETE FROM runs WHERE channel_id = $1")
        .bind(channel_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let served_counts = sqlx::query("DELETE FROM channel_user_stats WHERE channel_id = $1")
        .bind(channel_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let counts = ResetCounts {
        runs,
        served_counts,
    };
    audit::record(
        conn,
        channel_id,
        actor,
        AuditAction::Reset,
        serde_json::to_value(counts).ok(),
        None,
    )
    .await?;
    Ok(counts)
}
