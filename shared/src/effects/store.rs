//! The `effects` and `dead_letters` tables: claims with a lease, outcome
//! records fenced by the attempt number, and the dead-letter park.
//!
//! Every write here is one short statement: the worker never holds a
//! transaction, row lock or connection while it talks to Slack.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Effect;
use crate::trace::TraceColumns;

/// Counter of effects parked in the dead-letter table, labelled `kind`.
pub const DEAD_TOTAL: &str = "coffeebuddy_effects_dead_total";
/// Counter of dead letters of every source, labelled `source`.
pub const DEAD_LETTERS_TOTAL: &str = "coffeebuddy_dead_letters_total";

/// Longest error text kept per row.
const MAX_ERROR_CHARS: usize = 500;

/// An effect claimed by this worker until `lease_until`.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its id.
    pub effect_id: Uuid,
    /// What to do (`None`: the stored payload is unreadable, which only a
    /// newer or broken writer can cause; it is parked as dead).
    pub effect: Option<Effect>,
    /// The stored payload, for the dead-letter record.
    pub payload: Value,
    /// The stored kind name.
    pub kind: String,
    /// The channel it is about (none for an App Home).
    pub channel_id: Option<String>,
    /// Attempts including this one: fences the outcome record, so a worker
    /// whose lease expired cannot overwrite the outcome of the next one.
    pub attempts: i32,
    /// Whether an earlier attempt may have reached Slack without us
    /// learning the outcome (timeout, 5xx, or the worker died mid-call).
    pub in_doubt: bool,
    /// What earlier attempts achieved.
    pub progress: Value,
    /// When the effect was written: where a read-back starts.
    pub created_at: DateTime<Utc>,
    /// When the effect is given up.
    pub deadline_at: DateTime<Utc>,
    /// The trace context of the hop that wrote it.
    pub trace: TraceColumns,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    effect_id: Uuid,
    kind: String,
    payload: Value,
    channel_id: Option<String>,
    attempts: i32,
    in_doubt: bool,
    progress: Value,
    created_at: DateTime<Utc>,
    deadline_at: DateTime<Utc>,
    #[sqlx(flatten)]
    trace: TraceColumns,
}

/// Claims up to `limit` effects that are due at `now`: the oldest
/// unfinished effect of each lane, when it is pending and due, or in flight
/// with an expired lease (its worker died: the claim marks it in doubt).
/// A lane whose head is in flight, or backing off, waits; other lanes do
/// not. Concurrent claimers skip each other's rows.
pub async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease: std::time::Duration,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let lease_secs = lease.as_secs_f64();
    let rows: Vec<ClaimedRow> = sqlx::query_as(
        "WITH heads AS ( \
             SELECT DISTINCT ON (lane) effect_id FROM effects \
             WHERE status IN ('pending', 'in_flight') ORDER BY lane, seq \
         ), ready AS ( \
             SELECT e.effect_id FROM effects e JOIN heads h ON h.effect_id = e.effect_id \
             WHERE (e.status = 'pending' AND e.due_at <= $1) \
                OR (e.status = 'in_flight' AND e.lease_until <= $1) \
             ORDER BY e.due_at LIMIT $3 \
             FOR UPDATE OF e SKIP LOCKED \
         ) \
         UPDATE effects e SET status = 'in_flight', \
             lease_until = $1 + make_interval(secs => $2), \
             attempts = e.attempts + 1, \
             in_doubt = e.in_doubt OR e.status = 'in_flight', \
             attempt_started_at = $1 \
         FROM ready WHERE e.effect_id = ready.effect_id \
         RETURNING e.effect_id, e.kind, e.payload, e.channel_id, e.attempts, e.in_doubt, \
                   e.progress, e.created_at, e.deadline_at, \
                   e.traceparent, e.tracestate, e.correlation_id",
    )
    .bind(now)
    .bind(lease_secs)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            effect: serde_json::from_value(r.payload.clone()).ok(),
            effect_id: r.effect_id,
            payload: r.payload,
            kind: r.kind,
            channel_id: r.channel_id,
            attempts: r.attempts,
            in_doubt: r.in_doubt,
            progress: r.progress,
            created_at: r.created_at,
            deadline_at: r.deadline_at,
            trace: r.trace,
        })
        .collect())
}

/// When the next pending effect falls due, if any (the worker sleeps until
/// then, or until woken).
pub async fn next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(CASE WHEN status = 'pending' THEN due_at ELSE lease_until END) \
         FROM effects WHERE status IN ('pending', 'in_flight')",
    )
    .fetch_one(pool)
    .await
}

/// How a finished attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done; `progress` is what it achieved.
    Done,
    /// Slack refused for good; settled.
    Failed(String),
    /// In doubt and impossible to reconcile: never resent.
    Unknown(String),
    /// Try again at `due_at`; `in_doubt` when the attempt may have reached
    /// Slack.
    Retry {
        /// When.
        due_at: DateTime<Utc>,
        /// Whether the next attempt must reconcile first.
        in_doubt: bool,
        /// Why.
        error: String,
    },
}

fn clip(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

/// Records `outcome` of attempt `attempts` of `effect_id` with `progress`,
/// in the caller's transaction (so side effects of the outcome, such as the
/// run message's `ts`, commit with it). Returns `false` when the claim was
/// lost (lease expired and someone else claimed it): then nothing is written.
pub async fn record(
    conn: &mut PgConnection,
    claimed: &Claimed,
    now: DateTime<Utc>,
    progress: &Value,
    outcome: &Outcome,
) -> Result<bool, sqlx::Error> {
    let (status, due_at, in_doubt, error) = match outcome {
        Outcome::Done => ("done", None, false, None),
        Outcome::Failed(e) => ("failed", None, false, Some(clip(e))),
        Outcome::Unknown(e) => ("unknown", None, true, Some(clip(e))),
        Outcome::Retry {
            due_at,
            in_doubt,
            error,
        } => ("pending", Some(*due_at), *in_doubt, Some(clip(error))),
    };
    let finished = (status != "pending").then_some(now);
    let updated = sqlx::query(
        "UPDATE effects SET status = $3, due_at = COALESCE($4, due_at), in_doubt = $5, \
             last_error = $6, progress = $7, finished_at = $8, \
             lease_until = CASE WHEN $3 = 'pending' THEN NULL ELSE lease_until END \
         WHERE effect_id = $1 AND attempts = $2 AND status = 'in_flight'",
    )
    .bind(claimed.effect_id)
    .bind(claimed.attempts)
    .bind(status)
    .bind(due_at)
    .bind(in_doubt)
    .bind(error)
    .bind(progress)
    .bind(finished)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Saves what the current attempt achieved so far (a page posted), so a
/// crash right after does not repeat it. Fenced like [`record`].
pub async fn save_progress(
    pool: &PgPool,
    claimed: &Claimed,
    progress: &Value,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE effects SET progress = $3 \
         WHERE effect_id = $1 AND attempts = $2 AND status = 'in_flight'",
    )
    .bind(claimed.effect_id)
    .bind(claimed.attempts)
    .bind(progress)
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Parks a claimed effect as dead, with a dead-letter row, in the caller's
/// transaction. Fenced like [`record`].
pub async fn bury(
    conn: &mut PgConnection,
    claimed: &Claimed,
    now: DateTime<Utc>,
    progress: &Value,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE effects SET status = 'dead', last_error = $3, progress = $4, finished_at = $5 \
         WHERE effect_id = $1 AND attempts = $2 AND status = 'in_flight'",
    )
    .bind(claimed.effect_id)
    .bind(claimed.attempts)
    .bind(clip(error))
    .bind(progress)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    let letter = DeadLetter {
        source: DeadLetterSource::Effect,
        ref_id: claimed.effect_id.to_string(),
        kind: claimed.kind.clone(),
        channel_id: claimed.channel_id.clone(),
        payload: claimed.payload.clone(),
        error: error.to_owned(),
        attempts: claimed.attempts,
    };
    park(conn, &letter).await?;
    metrics::counter!(DEAD_TOTAL, "kind" => claimed.kind.clone()).increment(1);
    Ok(true)
}

/// Where a dead letter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterSource {
    /// A Slack effect that could not be carried out.
    Effect,
    /// An outbox event no consumer would take.
    Outbox,
    /// An event a Knative dead-letter sink delivered (`POST /dead-letters`).
    Sink,
}

impl DeadLetterSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Effect => "effect",
            Self::Outbox => "outbox",
            Self::Sink => "sink",
        }
    }
}

/// Something that can never succeed, parked for operators.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    /// Where it came from.
    pub source: DeadLetterSource,
    /// The effect id, outbox event id or CloudEvent id.
    pub ref_id: String,
    /// The effect kind or event type.
    pub kind: String,
    /// The channel, when known.
    pub channel_id: Option<String>,
    /// The effect payload or the event.
    pub payload: Value,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: i32,
}

/// Writes a dead letter (once per source and id), counts it and logs it.
pub async fn park(conn: &mut PgConnection, letter: &DeadLetter) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO dead_letters (source, ref_id, kind, channel_id, payload, error, attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (source, ref_id) DO NOTHING",
    )
    .bind(letter.source.as_str())
    .bind(&letter.ref_id)
    .bind(&letter.kind)
    .bind(&letter.channel_id)
    .bind(&letter.payload)
    .bind(clip(&letter.error))
    .bind(letter.attempts)
    .execute(conn)
    .await?;
    if inserted.rows_affected() == 1 {
        metrics::counter!(DEAD_LETTERS_TOTAL, "source" => letter.source.as_str()).increment(1);
        tracing::error!(
            source = letter.source.as_str(),
            ref_id = %letter.ref_id,
            kind = %letter.kind,
            channel_id = letter.channel_id.as_deref().unwrap_or(""),
            attempts = letter.attempts,
            error = %letter.error,
            "parked in the dead-letter table"
        );
    }
    Ok(())
}

/// A dead letter as the operators' API lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct DeadLetterRow {
    /// Row id.
    pub dead_letter_id: i64,
    /// `effect`, `outbox` or `sink`.
    pub source: String,
    /// The effect id, outbox event id or CloudEvent id.
    pub ref_id: String,
    /// The effect kind or event type.
    pub kind: String,
    /// The channel, when known.
    pub channel_id: Option<String>,
    /// The effect payload or the event.
    pub payload: Value,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: i32,
    /// When it was parked.
    pub created_at: DateTime<Utc>,
}

/// The newest `limit` dead letters, newest first.
pub async fn list_dead_letters(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<DeadLetterRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT dead_letter_id, source, ref_id, kind, channel_id, payload, error, attempts, created_at \
         FROM dead_letters ORDER BY created_at DESC, dead_letter_id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}
