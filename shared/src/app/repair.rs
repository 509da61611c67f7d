//! What the ping tick finishes when no event will (DESIGN §5 "repair on
//! the tick"): a lost or never-delivered event must not leave a channel
//! stuck.
//!
//! - A run left in `closing` for more than [`STUCK_AFTER`] (its
//!   `run.close_requested` was never handled, e.g. a KafkaSource gave up) is
//!   closed here, exactly as close-run would have.
//! - An `open` run without a run message and without an effect to post it
//!   (written before effects existed) gets one.
//!
//! A run whose message effect gave up was already cancelled and its starter
//! told by the worker; effects left for a closed run are rows the worker
//! finishes by itself.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::app::close;
use crate::domain::ids::{ChannelId, UserId};
use crate::effects::{self, Effect};

/// How long a run may sit in `closing`, or open without a message, before
/// the tick steps in. Well above a normal close (milliseconds to seconds).
pub const STUCK_AFTER: Duration = Duration::minutes(1);

/// Runs repaired at most per tick.
const REPAIR_BATCH: i64 = 100;

/// What one repair pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Runs stuck in `closing` that were closed.
    pub closed: usize,
    /// Open runs that got an effect to post their message.
    pub posted: usize,
}

/// One repair pass at `now`, writing events as `event_source`.
pub async fn repair(
    pool: &PgPool,
    now: DateTime<Utc>,
    event_source: &str,
) -> Result<Repaired, sqlx::Error> {
    let mut repaired = Repaired::default();
    let stuck: Vec<Uuid> = sqlx::query_scalar(
        "SELECT run_id FROM runs WHERE status = 'closing' AND close_requested_at < $1 \
         ORDER BY close_requested_at LIMIT $2",
    )
    .bind(now - STUCK_AFTER)
    .bind(REPAIR_BATCH)
    .fetch_all(pool)
    .await?;
    for run_id in stuck {
        let mut tx = pool.begin().await?;
        let outcome = close::decide(&mut tx, now, event_source, run_id).await?;
        tx.commit().await?;
        if outcome != close::Closed::NotClosing {
            tracing::warn!(%run_id, ?outcome, "closed a run that was stuck in closing");
            repaired.closed += 1;
        }
    }
    let unposted: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT r.run_id, r.channel_id, r.initiator_id FROM runs r \
         WHERE r.status = 'open' AND r.message_ts IS NULL AND r.created_at < $1 \
           AND NOT EXISTS (SELECT 1 FROM effects e WHERE e.run_id = r.run_id AND e.kind = 'post_run_message') \
         ORDER BY r.created_at LIMIT $2",
    )
    .bind(now - STUCK_AFTER)
    .bind(REPAIR_BATCH)
    .fetch_all(pool)
    .await?;
    for (run_id, channel, starter) in unposted {
        let (Ok(channel_id), Ok(starter)) = (ChannelId::parse(&channel), UserId::parse(&starter))
        else {
            continue;
        };
        let effect = Effect::PostRunMessage {
            run_id,
            channel_id,
            starter,
            response: None,
        };
        let mut conn = pool.acquire().await?;
        effects::enqueue(&mut conn, now, &effect).await?;
        tracing::warn!(%run_id, "an open run had no run message and nothing to post it; posting it now");
        repaired.posted += 1;
    }
    Ok(repaired)
}
