//! The `reminders` table, written and read by the reminder use cases
//! ([`crate::app::remind`]); a channel reset deletes rows by cascade from
//! `runs`.
//!
//! The `status` column is what makes a reminder go out at most once: a row
//! leaves `pending` exactly once, to `sent` (in the transaction that holds
//! the row lock across the Slack call) or to `skipped`.

use crate::trace::TraceColumns;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Longest `last_error` stored on a row.
const MAX_ERROR_CHARS: usize = 1000;

/// A pending reminder, as claimed for sending.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Reminder {
    /// The run.
    pub run_id: Uuid,
    /// Its channel.
    pub channel_id: String,
    /// Who is reminded.
    pub runner_id: String,
    /// When the reminder is due.
    pub due_at: DateTime<Utc>,
    /// When it was scheduled (by the function's clock): it cannot be late
    /// before it existed.
    pub created_at: DateTime<Utc>,
    /// Attempts so far.
    pub attempts: i32,
}

/// A pending reminder a tick will wait for.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Due {
    /// The run.
    pub run_id: Uuid,
    /// When the reminder is due.
    pub due_at: DateTime<Utc>,
    /// The trace of the close that scheduled it.
    #[sqlx(flatten)]
    pub trace: TraceColumns,
}

/// Inserts the pending reminder for `run_id`, unless it already has one
/// (a redelivered `run.closed`). Returns whether this call inserted it.
pub async fn schedule(
    conn: &mut PgConnection,
    run_id: Uuid,
    channel_id: &str,
    runner_id: &str,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    // With the trace of the close that scheduled it, for the tick to send
    // it in.
    let trace = TraceColumns::current();
    let inserted = sqlx::query(
        "INSERT INTO reminders (run_id, channel_id, runner_id, due_at, created_at,
             traceparent, tracestate, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (run_id) DO NOTHING",
    )
    .bind(run_id)
    .bind(channel_id)
    .bind(runner_id)
    .bind(due_at)
    .bind(now)
    .bind(trace.traceparent)
    .bind(trace.tracestate)
    .bind(trace.correlation_id)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Pending reminders due before `before`, soonest first, at most `limit`.
/// Not locked: each is claimed with [`claim`] when its time comes.
pub async fn pending_due_before(
    pool: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, due_at, traceparent, tracestate, correlation_id FROM reminders
         WHERE status = 'pending' AND due_at < $1
         ORDER BY due_at, run_id
         LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Locks the reminder of `run_id` for the rest of the transaction if it is
/// still pending and nobody else holds it. `None` means there is nothing to
/// do here: it was sent or skipped already, is being sent by another
/// replica right now (`SKIP LOCKED`), or is gone with its run.
pub async fn claim(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<Reminder>, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, channel_id, runner_id, due_at, created_at, attempts FROM reminders
         WHERE run_id = $1 AND status = 'pending'
         FOR UPDATE SKIP LOCKED",
    )
    .bind(run_id)
    .fetch_optional(conn)
    .await
}

/// Marks a claimed reminder sent at `at`. Returns whether the row moved
/// from `pending` (always, while the claim's lock is held).
pub async fn mark_sent(
    conn: &mut PgConnection,
    run_id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE reminders SET status = 'sent', sent_at = $2, attempts = attempts + 1
         WHERE run_id = $1 AND status = 'pending'",
    )
    .bind(run_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a claimed reminder skipped, keeping `reason` in `last_error`.
pub async fn mark_skipped(
    conn: &mut PgConnection,
    run_id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reminders SET status = 'skipped', last_error = $2
         WHERE run_id = $1 AND status = 'pending'",
    )
    .bind(run_id)
    .bind(truncate(reason))
    .execute(conn)
    .await?;
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}
