//! Orders, saved usuals, and the fairness ledger.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// An active order.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Order {
    /// Who ordered.
    pub user_id: String,
    /// What, as typed.
    pub order_text: String,
    /// "Happy to be the runner again", as ticked for this run.
    pub runner_opt_in: bool,
}

/// Whether a submission created the person's order or changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderChange {
    /// First order of this person in this run.
    Placed,
    /// An edit of their active order.
    Updated,
}

/// Creates or replaces `user_id`'s one active order in `run_id`. The
/// partial unique index decides concurrent submissions.
pub async fn upsert(
    conn: &mut PgConnection,
    run_id: Uuid,
    user_id: &str,
    text: &str,
    runner_opt_in: bool,
) -> Result<OrderChange, sqlx::Error> {
    // xmax = 0 only for a freshly inserted row version.
    let inserted: bool = sqlx::query_scalar(
        "INSERT INTO orders (order_id, run_id, user_id, order_text, runner_opt_in)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (run_id, user_id) WHERE active
         DO UPDATE SET order_text = EXCLUDED.order_text, runner_opt_in = EXCLUDED.runner_opt_in, updated_at = now()
         RETURNING (xmax = 0)",
    )
    .bind(Uuid::new_v4())
    .bind(run_id)
    .bind(user_id)
    .bind(text)
    .bind(runner_opt_in)
    .fetch_one(conn)
    .await?;
    Ok(if inserted {
        OrderChange::Placed
    } else {
        OrderChange::Updated
    })
}

/// `user_id`'s active order in `run_id`.
pub async fn active_for(
    conn: &mut PgConnection,
    run_id: Uuid,
    user_id: &str,
) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as("SELECT user_id, order_text, runner_opt_in FROM orders WHERE run_id = $1 AND user_id = $2 AND active")
        .bind(run_id)
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

/// Every active order of a run, first placed first.
pub async fn active(conn: &mut PgConnection, run_id: Uuid) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, order_text, runner_opt_in FROM orders WHERE run_id = $1 AND active ORDER BY created_at, order_id",
    )
    .bind(run_id)
    .fetch_all(conn)
    .await
}

/// A person's saved usual order and their last runner opt-in answer.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Preferences {
    /// The saved usual, if any.
    pub usual_order: Option<String>,
    /// Last answer to "Happy to be the runner again".
    pub runner_opt_in: bool,
}

/// `user_id`'s preferences, if any were saved.
pub async fn preferences(
    conn: &mut PgConnection,
    user_id: &str,
) -> Result<Option<Preferences>, sqlx::Error> {
    sqlx::query_as("SELECT usual_order, runner_opt_in FROM user_preferences WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

/// Records the opt-in answer and, when `usual` is given, the saved usual.
pub async fn save_preferences(
    conn: &mut PgConnection,
    user_id: &str,
    usual: Option<&str>,
    runner_opt_in: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO user_preferences (user_id, usual_order, runner_opt_in) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET
           usual_order = COALESCE(EXCLUDED.usual_order, user_preferences.usual_order),
           runner_opt_in = EXCLUDED.runner_opt_in,
           updated_at = now()",
    )
    .bind(user_id)
    .bind(usual)
    .bind(runner_opt_in)
    .execute(conn)
    .await?;
    Ok(())
}

/// A participant's standing in the channel's fairness ledger.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Standing {
    /// The participant.
    pub user_id: String,
    /// Times they were the runner in this channel.
    pub runs_served_count: i32,
    /// When they last were.
    pub last_served_at: Option<DateTime<Utc>>,
    /// Whether they ticked "Happy to be the runner again" in this run.
    pub runner_opt_in: bool,
}

/// The participants of a run (people with an active order) with their
/// standing in the channel.
pub async fn standings(
    conn: &mut PgConnection,
    run_id: Uuid,
    channel_id: &str,
) -> Result<Vec<Standing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.user_id, COALESCE(s.runs_served_count, 0) AS runs_served_count, s.last_served_at, o.runner_opt_in
         FROM orders o
         LEFT JOIN channel_user_stats s ON s.channel_id = $2 AND s.user_id = o.user_id
         WHERE o.run_id = $1 AND o.active
         ORDER BY o.created_at, o.order_id",
    )
    .bind(run_id)
    .bind(channel_id)
    .fetch_all(conn)
    .await
}

/// Counts one more run served by `user_id` in `channel_id`.
pub async fn record_served(
    conn: &mut PgConnection,
    channel_id: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO channel_user_stats (channel_id, user_id, runs_served_count, last_served_at) VALUES ($1, $2, 1, $3)
         ON CONFLICT (channel_id, user_id) DO UPDATE SET
           runs_served_count = channel_user_stats.runs_served_count + 1, last_served_at = EXCLUDED.last_served_at",
    )
    .bind(channel_id)
    .bind(user_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}
