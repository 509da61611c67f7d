//! `run.closed` → the runner's reminder, scheduled once.

use coffeebuddy_shared::app::remind::{Scheduled, schedule_reminder};
use coffeebuddy_shared::domain::reminder;
use coffeebuddy_shared::events::{HandleEventError, RunClosed};
use coffeebuddy_shared::runtime::Context;

use crate::SCHEDULED_TOTAL;
use crate::send;

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
    let scheduled = schedule_reminder(&mut tx, now, run_id).await?;
    tx.commit().await?;
    let due_at = match scheduled {
        Scheduled::NotNeeded(why) => {
            tracing::info!(%run_id, why, "no reminder");
            return Ok(());
        }
        Scheduled::Due {
            due_at,
            inserted,
            runner,
        } => {
            if inserted {
                metrics::counter!(SCHEDULED_TOTAL).increment(1);
                tracing::info!(%run_id, %due_at, %runner, "reminder scheduled");
            }
            due_at
        }
    };
    if reminder::wait_before_sending(due_at, now).is_zero() {
        // Due already: do not make the runner wait for the next tick.
        let outcome = send::send(ctx, run_id).await?;
        tracing::debug!(%run_id, ?outcome, "reminder due at once");
    }
    Ok(())
}
