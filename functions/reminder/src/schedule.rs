//! `run.closed` → the runner's reminder, scheduled once.

use coffeebuddy_shared::db::{channels, runs};
use coffeebuddy_shared::domain::reminder;
use coffeebuddy_shared::events::{HandleEventError, RunClosed};
use coffeebuddy_shared::runtime::Context;

use crate::send;
use crate::{SCHEDULED_TOTAL, store};

/// Schedules the reminder of a closed run: only a run that closed with a
/// runner and has a pickup time, in a channel with reminders enabled. A
/// redelivered event finds the row and inserts nothing. A reminder that is
/// already due (the run closed less than the offset before pickup) is sent
/// right here.
pub(crate) async fn on_run_closed(ctx: &Context, data: RunClosed) -> Result<(), HandleEventError> {
    let run_id = data.run_id;
    if data.cancelled || data.runner_id.is_none() {
        return Ok(()); // nobody to remind
    }
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    // The database, not the event, is the truth: the run may have been reset away.
    let Some(run) = runs::find(&mut tx, run_id).await? else {
        return Ok(());
    };
    let (runs::RunStatus::Closed, Some(runner_id), Some(pickup)) =
        (run.status, run.runner_id.as_deref(), run.pickup_at)
    else {
        tracing::debug!(%run_id, "no reminder: the run has no runner or no pickup time");
        return Ok(());
    };
    let Some(channel) = channels::find(&mut tx, &run.channel_id)
        .await?
        .filter(|c| c.reminders_enabled)
    else {
        tracing::info!(%run_id, channel_id = %run.channel_id, "no reminder: the channel has reminders disabled");
        return Ok(());
    };
    let due_at = reminder::due_at(pickup, channel.reminder_offset_minutes);
    let inserted =
        store::schedule(&mut tx, run_id, &run.channel_id, runner_id, due_at, now).await?;
    tx.commit().await?;
    if inserted {
        metrics::counter!(SCHEDULED_TOTAL).increment(1);
        tracing::info!(%run_id, %due_at, runner = %runner_id, "reminder scheduled");
    }
    if reminder::wait_before_sending(due_at, now).is_zero() {
        // Due already: do not make the runner wait for the next tick.
        let outcome = send::send(ctx, run_id).await?;
        tracing::debug!(%run_id, ?outcome, "reminder due at once");
    }
    Ok(())
}
