//! Sending due reminders: on each ping tick, and at once for a run closed
//! after its reminder was due.
//!
//! A tick takes every pending reminder due before the next tick, waits for
//! each one's due time (by `ctx.clock`), then sends it. The request stays
//! open meanwhile: in production that is what keeps the pod alive (Knative
//! scales on requests; work after the response may be frozen).
//!
//! Sending one is [`coffeebuddy_shared::app::remind::send_reminder`], in
//! one transaction; this module counts and logs what it decided.

use chrono::Duration;
use coffeebuddy_shared::app::remind::{RemindError, Reminded, send_reminder};
use coffeebuddy_shared::db::reminders;
use coffeebuddy_shared::domain::reminder;
use coffeebuddy_shared::events::HandleEventError;
use coffeebuddy_shared::runtime::Context;
use futures::StreamExt as _;
use uuid::Uuid;

use crate::{LATE_TOTAL, LATENESS_SECONDS, SENT_TOTAL, SKIPPED_TOTAL};

/// Reminders one tick takes on at most; a larger backlog (after a long
/// outage) drains over the following ticks, soonest due first.
const TICK_BATCH: i64 = 500;

/// Reminders waited for and sent concurrently within one tick, so that
/// several due in the same second all land on time without one tick holding
/// many database connections.
const CONCURRENT_SENDS: usize = 4;

/// The ping tick: every pending reminder due before the next tick, each
/// sent at its due time. Failures of single reminders are logged and retried
/// by the next tick; the tick as a whole asks for a retry only when the
/// database could not be read at all.
pub(crate) async fn due_reminders(ctx: &Context) -> Result<(), HandleEventError> {
    let now = ctx.clock.now();
    let tick = tick_period(ctx);
    let due = reminders::pending_due_before(&ctx.db, now + tick, TICK_BATCH).await?;
    if due.is_empty() {
        return Ok(());
    }
    tracing::debug!(count = due.len(), "reminders due before the next tick");
    futures::stream::iter(due)
        .for_each_concurrent(CONCURRENT_SENDS, |d| {
            // Sent as a hop of the close that scheduled it.
            let context = d.trace.next_hop();
            coffeebuddy_shared::trace::scope(context, async move {
                let wait = reminder::wait_before_sending(d.due_at, ctx.clock.now());
                if let Ok(wait) = wait.to_std()
                    && !wait.is_zero()
                {
                    tokio::time::sleep(wait).await;
                }
                if let Err(e) = send(ctx, d.run_id).await {
                    tracing::warn!(run_id = %d.run_id, error = %e, "reminder not sent; the next tick retries it");
                }
            })
        })
        .await;
    Ok(())
}

/// The tick period, also how far ahead a tick looks.
pub(crate) fn tick_period(ctx: &Context) -> Duration {
    Duration::seconds(i64::try_from(ctx.settings.tick_seconds).unwrap_or(i64::MAX / 1000))
}

/// Sends the pending reminder of `run_id` now, if it is still pending and
/// nobody else is sending it; counts and logs the outcome.
pub(crate) async fn send(ctx: &Context, run_id: Uuid) -> Result<Reminded, HandleEventError> {
    let mut tx = ctx.db.begin().await?;
    let reminded = send_reminder(&mut tx, ctx.clock.now(), &ctx.event_source(), run_id)
        .await
        .map_err(|e| match e {
            RemindError::Database(e) => HandleEventError::from(e),
            RemindError::Malformed(m) => HandleEventError::Malformed(m),
        })?;
    match &reminded {
        Reminded::NotPending => return Ok(reminded),
        Reminded::Skipped { reason, detail } => {
            tx.commit().await?;
            metrics::counter!(SKIPPED_TOTAL, "reason" => *reason).increment(1);
            tracing::info!(%run_id, reason, detail, "reminder skipped");
            return Ok(reminded);
        }
        Reminded::Sent { .. } => ctx.commit_and_publish(tx).await?,
    }
    if let Reminded::Sent {
        due_at,
        created_at,
        sent_at,
    } = &reminded
    {
        let lateness = reminder::lateness(*due_at, *created_at, *sent_at);
        let lateness_seconds = lateness.as_seconds_f64();
        metrics::counter!(SENT_TOTAL).increment(1);
        metrics::histogram!(LATENESS_SECONDS).record(lateness_seconds);
        if reminder::is_late(lateness) {
            metrics::counter!(LATE_TOTAL).increment(1);
            tracing::warn!(
                %run_id,
                %due_at,
                %sent_at,
                lateness_seconds,
                "reminder sent late (missed while the service or Slack was unavailable)"
            );
        } else {
            tracing::info!(%run_id, %due_at, %sent_at, lateness_seconds, "reminder sent");
        }
    }
    Ok(reminded)
}
