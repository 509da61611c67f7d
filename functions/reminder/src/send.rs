//! Sending due reminders: on each ping tick, and at once for a run closed
//! after its reminder was due.
//!
//! A tick takes every pending reminder due before the next tick, waits for
//! each one's due time (by `ctx.clock`), then sends it. The request stays
//! open meanwhile: in production that is what keeps the pod alive (Knative
//! scales on requests; work after the response may be frozen).
//!
//! Sending one reminder is one transaction: claim the row (`FOR UPDATE SKIP
//! LOCKED`, still `pending`), re-check the run and the channel, then mark it
//! `sent`, write `reminder.sent` and the DM as an effect (DESIGN §5), and
//! commit. Two replicas ticking together, or a tick and a `run.closed`
//! handler, never both get the lock on a pending row, and once the row is
//! `sent` nobody claims it again. No Slack call happens under the lock: the
//! effect worker sends the DM right after the commit, exactly once, and
//! retries it if Slack is down.

use chrono::Duration;
use coffeebuddy_shared::app::run_view;
use coffeebuddy_shared::db::{channels, runs};
use coffeebuddy_shared::domain::reminder;
use coffeebuddy_shared::effects::Effect;
use coffeebuddy_shared::events::{HandleEventError, ReminderSent};
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::blocks;
use futures::StreamExt as _;
use uuid::Uuid;

use crate::store;
use crate::{LATE_TOTAL, LATENESS_SECONDS, SENT_TOTAL, SKIPPED_TOTAL};

/// Reminders one tick takes on at most; a larger backlog (after a long
/// outage) drains over the following ticks, soonest due first.
const TICK_BATCH: i64 = 500;

/// Reminders waited for and sent concurrently within one tick, so that
/// several due in the same second all land on time without one tick holding
/// many database connections.
const CONCURRENT_SENDS: usize = 4;

/// What became of one attempt to send a reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The runner's DM is on its way (an effect, committed).
    Delivered,
    /// Not sent, and never will be (reason counted in the metrics).
    Skipped,
    /// Nothing to do: already settled, gone, or held by another replica.
    NotPending,
}

/// The ping tick: every pending reminder due before the next tick, each
/// sent at its due time. Failures of single reminders are logged and retried
/// by the next tick; the tick as a whole asks for a retry only when the
/// database could not be read at all.
pub(crate) async fn due_reminders(ctx: &Context) -> Result<(), HandleEventError> {
    let now = ctx.clock.now();
    let tick = tick_period(ctx);
    let due = store::pending_due_before(&ctx.db, now + tick, TICK_BATCH).await?;
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

/// Why a claimed reminder will not be sent.
struct Skip {
    /// The `reason` label of the skipped counter.
    reason: &'static str,
    /// What `last_error` records.
    detail: String,
}

impl Skip {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// The run as the reminder shows it, or why the reminder must not go out:
/// re-checked at send time (DESIGN §1.5), since the channel may have turned
/// reminders off, or the run may be gone, since it closed.
async fn sendable_view(
    conn: &mut sqlx::PgConnection,
    claimed: &store::Reminder,
) -> Result<Result<blocks::RunView, Skip>, HandleEventError> {
    let Some(run) = runs::find(&mut *conn, claimed.run_id).await? else {
        return Ok(Err(Skip::new("run_gone", "the run no longer exists")));
    };
    if run.status != runs::RunStatus::Closed {
        return Ok(Err(Skip::new(
            "run_not_closed",
            format!("the run is {}", run.status),
        )));
    }
    let enabled = channels::find(&mut *conn, &claimed.channel_id)
        .await?
        .is_some_and(|c| c.reminders_enabled);
    if !enabled {
        return Ok(Err(Skip::new(
            "disabled",
            "the channel has reminders disabled",
        )));
    }
    match run_view::load(conn, &run).await {
        Ok(view) => Ok(Ok(view)),
        Err(run_view::LoadRunViewError::Malformed(m)) => Ok(Err(Skip::new("invalid_run", m))),
        Err(e) => Err(e.into()),
    }
}

/// Sends the pending reminder of `run_id` now, if it is still pending and
/// nobody else is sending it.
pub(crate) async fn send(ctx: &Context, run_id: Uuid) -> Result<Sent, HandleEventError> {
    let mut tx = ctx.db.begin().await?;
    let Some(claimed) = store::claim(&mut tx, run_id).await? else {
        return Ok(Sent::NotPending);
    };
    let view = match sendable_view(&mut tx, &claimed).await? {
        Ok(view) => view,
        Err(Skip { reason, detail }) => {
            store::mark_skipped(&mut tx, run_id, &detail).await?;
            tx.commit().await?;
            metrics::counter!(SKIPPED_TOTAL, "reason" => reason).increment(1);
            tracing::info!(%run_id, reason, detail, "reminder skipped");
            return Ok(Sent::Skipped);
        }
    };

    let sent_at = ctx.clock.now();
    if !store::mark_sent(&mut tx, run_id, sent_at).await? {
        // Cannot happen while we hold the row lock; refuse to write a second
        // `reminder.sent` rather than trust it.
        return Err(HandleEventError::Retryable(anyhow::anyhow!(
            "reminder {run_id} left pending while claimed"
        )));
    }
    let data = ReminderSent {
        run_id,
        channel_id: claimed.channel_id.clone(),
        runner_id: claimed.runner_id.clone(),
    };
    ctx.record_event(&mut tx, &claimed.channel_id, run_id, &data)
        .await?;
    let dm = Effect::DmReminder {
        run_id,
        channel_id: view.channel_id.clone(),
        user: view.runner.clone().ok_or_else(|| {
            HandleEventError::Malformed(format!("closed run {run_id} has no runner"))
        })?,
    };
    ctx.record_effect(&mut tx, &dm).await?;
    ctx.commit_and_publish(tx).await?;

    let lateness = reminder::lateness(claimed.due_at, claimed.created_at, sent_at);
    let lateness_seconds = lateness.as_seconds_f64();
    metrics::counter!(SENT_TOTAL).increment(1);
    metrics::histogram!(LATENESS_SECONDS).record(lateness_seconds);
    if reminder::is_late(lateness) {
        metrics::counter!(LATE_TOTAL).increment(1);
        tracing::warn!(
            %run_id,
            due_at = %claimed.due_at,
            %sent_at,
            lateness_seconds,
            "reminder sent late (missed while the service or Slack was unavailable)"
        );
    } else {
        tracing::info!(%run_id, due_at = %claimed.due_at, %sent_at, lateness_seconds, "reminder sent");
    }
    Ok(Sent::Delivered)
}
