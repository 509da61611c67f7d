//! Auto-close on the ping tick (DESIGN §1.10): every open run whose
//! auto-close time falls before the next tick is closed at that time (the
//! tick waits for it, as for reminders: within ±2 s), exactly as if its
//! starter had pressed **Close run**
//! ([`coffeebuddy_shared::app::close::auto_close`]).

use chrono::Duration;
use coffeebuddy_shared::app::close;
use coffeebuddy_shared::db::runs;
use coffeebuddy_shared::domain::reminder;
use coffeebuddy_shared::events::HandleEventError;
use coffeebuddy_shared::runtime::Context;
use futures::StreamExt as _;

/// Runs one tick closes at most; a larger backlog drains over the next ticks.
const TICK_BATCH: i64 = 200;

/// Closes waited for and decided concurrently within one tick.
const CONCURRENT_CLOSES: usize = 4;

/// Closes every open run whose auto-close time falls before the next tick,
/// each at its time. A failed close is logged; the next tick finds it again
/// (still open, and due).
pub(crate) async fn due_closes(ctx: &Context, tick: Duration) -> Result<(), HandleEventError> {
    let now = ctx.clock.now();
    let due = {
        let mut conn = ctx.db.acquire().await?;
        runs::due_auto_close(&mut conn, now + tick, TICK_BATCH).await?
    };
    futures::stream::iter(due)
        .for_each_concurrent(CONCURRENT_CLOSES, |run| async move {
            if let Some(at) = run.auto_close_at
                && let Ok(wait) = reminder::wait_before_sending(at, ctx.clock.now()).to_std()
                && !wait.is_zero()
            {
                tokio::time::sleep(wait).await;
            }
            let closed = async {
                let mut tx = ctx.db.begin().await?;
                let outcome = close::auto_close(&mut tx, ctx.clock.now(), &ctx.event_source(), run.run_id).await?;
                ctx.commit_and_publish(tx).await?;
                Ok::<_, sqlx::Error>(outcome)
            }
            .await;
            match closed {
                Ok(close::Closed::NotClosing) => {}
                Ok(outcome) => tracing::info!(run_id = %run.run_id, ?outcome, "auto-closed a run"),
                Err(e) => tracing::warn!(run_id = %run.run_id, error = %e, "auto-close failed; the next tick retries it"),
            }
        })
        .await;
    Ok(())
}
