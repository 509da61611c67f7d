//! Channels and their configuration.

use chrono_tz::Tz;
use sqlx::PgConnection;

use crate::config::ChannelDefaults;

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
}

#[derive(sqlx::FromRow)]
struct ChannelRow {
    channel_id: String,
    enabled: bool,
    reminders_enabled: bool,
    reminder_offset_minutes: i32,
    retention_days: i32,
    timezone: String,
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
        }
    }
}

/// The column list every query of this module selects (a macro so the SQL stays a
/// `&'static str`, as sqlx requires).
macro_rules! channel_columns {
    () => {
        "channel_id, enabled, reminders_enabled, reminder_offset_minutes, retention_days, timezone"
    };
}

/// The channel's configuration, creating the channel with `defaults` the
/// first time CoffeeBuddy sees it.
pub async fn ensure(
    conn: &mut PgConnection,
    channel_id: &str,
    team_id: Option<&str>,
    defaults: &ChannelDefaults,
) -> Result<ChannelConfig, sqlx::Error> {
    sqlx::query(
        "INSERT INTO channels (channel_id, team_id, reminder_offset_minutes, retention_days, timezone)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (channel_id) DO NOTHING",
    )
    .bind(channel_id)
    .bind(team_id)
    .bind(defaults.reminder_offset_minutes)
    .bind(defaults.retention_days)
    .bind(defaults.timezone.name())
    .execute(&mut *conn)
    .await?;
    let row: ChannelRow = sqlx::query_as(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM channels WHERE channel_id = $1"
    ))
    .bind(channel_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.into())
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
