//! Statistics and export (DESIGN §1.13) and what the App Home shows
//! (§1.14), read from the runs themselves.
//!
//! Everything here counts *finished* runs (closed or cancelled) that are
//! still kept: retention and `reset` apply to statistics as to everything
//! else. (The fairness ledger behind "why you" counts every run since the
//! last `reset`, so after a retention purge a person's "runs served" here
//! can be lower than the count the runner pick uses.)

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// One person's record in a channel.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PersonStats {
    /// The Slack user.
    pub user_id: String,
    /// Closed runs they were the runner of.
    pub runs_served: i64,
    /// Orders in the runs they ran (their own included): cups carried.
    pub cups_carried: i64,
    /// Orders they placed in finished runs.
    pub orders_placed: i64,
    /// When the last run they ordered in or ran finished.
    pub last_run_at: Option<DateTime<Utc>>,
}

/// A channel's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelTotals {
    /// Runs closed with a runner.
    pub runs_closed: i64,
    /// Runs closed without orders.
    pub runs_cancelled: i64,
    /// Orders in finished runs.
    pub orders: i64,
    /// Different people who ordered or ran.
    pub people: i64,
    /// Closed runs whose runner pressed **Delivered**.
    pub runs_delivered: i64,
    /// Mean time from close to **Delivered**, over `runs_delivered`;
    /// `None` when no run was marked delivered.
    pub mean_close_to_delivered_seconds: Option<f64>,
}

/// A channel's statistics: totals, then people, most runs served first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelStats {
    /// The channel.
    pub channel_id: String,
    /// Its totals.
    pub totals: ChannelTotals,
    /// Its people, most runs served first, then most cups carried, most
    /// orders placed, user id.
    pub people: Vec<PersonStats>,
}

#[derive(sqlx::FromRow)]
struct TotalsRow {
    runs_closed: i64,
    runs_cancelled: i64,
    runs_delivered: i64,
    mean_close_to_delivered_seconds: Option<f64>,
}

/// The statistics of `channel_id` (empty for a channel with no finished run).
pub async fn channel_stats(
    conn: &mut PgConnection,
    channel_id: &str,
) -> Result<ChannelStats, sqlx::Error> {
    let people: Vec<PersonStats> = sqlx::query_as(
        "WITH r AS (
            SELECT run_id, runner_id, status, closed_at FROM runs
            WHERE channel_id = $1 AND status IN ('closed', 'cancelled')
         ), served AS (
            SELECT runner_id AS user_id, count(*) AS runs_served, max(closed_at) AS last_ran
            FROM r WHERE status = 'closed' GROUP BY runner_id
         ), carried AS (
            SELECT r.runner_id AS user_id, count(*) AS cups_carried
            FROM r JOIN orders o ON o.run_id = r.run_id AND o.active
            WHERE r.status = 'closed' GROUP BY r.runner_id
         ), placed AS (
            SELECT o.user_id, count(*) AS orders_placed, max(r.closed_at) AS last_ordered
            FROM r JOIN orders o ON o.run_id = r.run_id AND o.active GROUP BY o.user_id
         )
         SELECT u.user_id,
                COALESCE(s.runs_served, 0) AS runs_served,
                COALESCE(c.cups_carried, 0) AS cups_carried,
                COALESCE(p.orders_placed, 0) AS orders_placed,
                GREATEST(s.last_ran, p.last_ordered) AS last_run_at
         FROM (SELECT user_id FROM served UNION SELECT user_id FROM placed) u
         LEFT JOIN served s USING (user_id)
         LEFT JOIN carried c USING (user_id)
         LEFT JOIN placed p USING (user_id)
         ORDER BY runs_served DESC, cups_carried DESC, orders_placed DESC, u.user_id",
    )
    .bind(channel_id)
    .fetch_all(&mut *conn)
    .await?;
    let totals: TotalsRow = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'closed') AS runs_closed,
                count(*) FILTER (WHERE status = 'cancelled') AS runs_cancelled,
                count(*) FILTER (WHERE delivered_at IS NOT NULL) AS runs_delivered,
                (avg(EXTRACT(EPOCH FROM (delivered_at - closed_at)))
                    FILTER (WHERE delivered_at IS NOT NULL))::float8 AS mean_close_to_delivered_seconds
         FROM runs WHERE channel_id = $1 AND status IN ('closed', 'cancelled')",
    )
    .bind(channel_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(ChannelStats {
        channel_id: channel_id.to_owned(),
        totals: ChannelTotals {
            runs_closed: totals.runs_closed,
            runs_cancelled: totals.runs_cancelled,
            orders: people.iter().map(|p| p.orders_placed).sum(),
            people: i64::try_from(people.len()).unwrap_or(i64::MAX),
            runs_delivered: totals.runs_delivered,
            mean_close_to_delivered_seconds: totals.mean_close_to_delivered_seconds,
        },
        people,
    })
}

/// One finished run, as the CSV export lists it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ExportedRun {
    /// The run.
    pub run_id: Uuid,
    /// `closed` or `cancelled`.
    pub status: String,
    /// Who typed `/coffee`.
    pub initiator_id: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Its pickup time, if any.
    pub pickup_at: Option<DateTime<Utc>>,
    /// When it closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Its runner (none when cancelled).
    pub runner_id: Option<String>,
    /// Its note, raw as typed.
    pub note: Option<String>,
    /// How many orders it had.
    pub order_count: i64,
    /// Its orders, `U123: flat white; U456: latte`, first placed first; raw
    /// as typed.
    pub orders: String,
    /// The runner's first **Picked up**.
    pub picked_up_at: Option<DateTime<Utc>>,
    /// The runner's first **Delivered**.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Every finished run of `channel_id`, oldest first.
pub async fn exported_runs(
    conn: &mut PgConnection,
    channel_id: &str,
) -> Result<Vec<ExportedRun>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.run_id, r.status, r.initiator_id, r.created_at, r.pickup_at, r.closed_at,
                r.runner_id, r.note, r.picked_up_at, r.delivered_at,
                count(o.order_id) AS order_count,
                COALESCE(string_agg(o.user_id || ': ' || o.order_text, '; ' ORDER BY o.created_at, o.order_id), '') AS orders
         FROM runs r
         LEFT JOIN orders o ON o.run_id = r.run_id AND o.active
         WHERE r.channel_id = $1 AND r.status IN ('closed', 'cancelled')
         GROUP BY r.run_id
         ORDER BY r.closed_at, r.created_at, r.run_id",
    )
    .bind(channel_id)
    .fetch_all(conn)
    .await
}

/// Runs a person served, per channel, most first (for the App Home).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServedIn {
    /// The channel.
    pub channel_id: String,
    /// Closed runs they ran there.
    pub runs_served: i64,
}

/// `user_id`'s runs served per channel, most first.
pub async fn served_by_channel(
    conn: &mut PgConnection,
    user_id: &str,
) -> Result<Vec<ServedIn>, sqlx::Error> {
    sqlx::query_as(
        "SELECT channel_id, count(*) AS runs_served FROM runs
         WHERE runner_id = $1 AND status = 'closed'
         GROUP BY channel_id ORDER BY runs_served DESC, channel_id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// An open run in a channel where a person has ordered before.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OpenRunFor {
    /// The run.
    pub run_id: Uuid,
    /// Its channel.
    pub channel_id: String,
    /// Who started it.
    pub initiator_id: String,
    /// Its pickup time, if any.
    pub pickup_at: Option<DateTime<Utc>>,
    /// The channel's time zone (IANA name), to show the pickup.
    pub timezone: String,
    /// Its note, raw as typed.
    pub note: Option<String>,
    /// Orders so far.
    pub order_count: i64,
    /// The person's own order in it, if any.
    pub own_order: Option<String>,
}

/// Open runs in channels where `user_id` has ordered before (in any run
/// still kept), newest first, at most `limit`.
pub async fn open_runs_for(
    conn: &mut PgConnection,
    user_id: &str,
    limit: i64,
) -> Result<Vec<OpenRunFor>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.run_id, r.channel_id, r.initiator_id, r.pickup_at, c.timezone, r.note,
                (SELECT count(*) FROM orders o WHERE o.run_id = r.run_id AND o.active) AS order_count,
                (SELECT o.order_text FROM orders o WHERE o.run_id = r.run_id AND o.user_id = $1 AND o.active) AS own_order
         FROM runs r JOIN channels c ON c.channel_id = r.channel_id
         WHERE r.status = 'open' AND c.enabled
           AND r.channel_id IN (
               SELECT DISTINCT r2.channel_id FROM runs r2
               JOIN orders o2 ON o2.run_id = r2.run_id
               WHERE o2.user_id = $1)
         ORDER BY r.created_at DESC, r.run_id LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
