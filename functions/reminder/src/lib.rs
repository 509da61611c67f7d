//! Pickup reminders and the outbox sweep.
//!
//! `POST /` (CloudEvents):
//! - on `run.closed`, schedule the runner's reminder at `pickup − offset`
//!   (the channel's offset), once per run, if the run closed with a runner
//!   and a pickup time in a channel with reminders enabled; a reminder
//!   already due is sent at once (DESIGN §1.5);
//! - on each ping tick (`dev.knative.sources.ping`, every minute from a
//!   PingSource; `local` has its own ticker every `TICK_SECONDS`):
//!   1. republish outbox events that were committed but not yet published —
//!      Kafka being down delays events, never loses them;
//!   2. send every pending reminder due before the next tick, each at its
//!      due time, so reminders land within seconds although ticks are a
//!      minute apart, and close every run whose auto-close falls due before
//!      the next tick, at its time;
//!   3. repair runs no event will finish, and carry out the Slack effects
//!      left (anyone's). The tick period is read from `TICK_SECONDS` (default
//!      60, PingSource's schedule); set it to the PingSource period.
//!
//! Each reminder goes out at most once: it is claimed under a row lock and
//! marked `sent` together with its `reminder.sent` event. The channel
//! setting is checked again at send time; a reminder missed while
//! everything was down goes out on the first tick after recovery and is
//! counted as late.

mod auto_close;
mod schedule;
mod send;

use axum::Router;
use coffeebuddy_shared::app::repair;
use coffeebuddy_shared::config::ServiceIdentity;
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{self, HandleEventError, RunClosed, decode_data};
use coffeebuddy_shared::runtime::{Context, Service};

/// Who this function is, for settings defaults and logs.
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    requires_ory: false,
};

/// Counter of reminders scheduled (one per qualifying closed run).
pub const SCHEDULED_TOTAL: &str = "coffeebuddy_reminders_scheduled_total";
/// Counter of reminders sent to runners.
pub const SENT_TOTAL: &str = "coffeebuddy_reminders_sent_total";
/// Counter of reminders that will never be sent, labelled `reason`:
/// `disabled` (the channel turned reminders off), `run_gone`,
/// `run_not_closed`, `invalid_run`, `slack_error` (Slack refused for good).
pub const SKIPPED_TOTAL: &str = "coffeebuddy_reminders_skipped_total";
/// Counter of reminders sent more than a minute (the required accuracy)
/// after they could first have gone out.
pub const LATE_TOTAL: &str = "coffeebuddy_reminders_late_total";
/// Histogram of how late each sent reminder was, in seconds (≥ 0): sent
/// time minus due time, or minus scheduling time for a run closed after its
/// reminder was due.
pub const LATENESS_SECONDS: &str = "coffeebuddy_reminder_lateness_seconds";

/// This function has no Slack-facing routes.
pub fn slack_router(_ctx: &Context) -> Router {
    Router::new()
}

/// `POST /`: the CloudEvents this function consumes.
pub fn event_router(ctx: &Context) -> Router {
    let on_closed = ctx.clone();
    let on_ping = ctx.clone();
    EventRoutes::new("reminder")
        .on(events::RUN_CLOSED, move |event| {
            let ctx = on_closed.clone();
            async move {
                let data: RunClosed = decode_data(&event)?;
                schedule::on_run_closed(&ctx, data).await
            }
        })
        .on(events::PING, move |_event| {
            let ctx = on_ping.clone();
            async move { tick(&ctx).await }
        })
        .into_router()
}

/// How long a tick works on Slack effects after the reminders, at most:
/// the tick answers within `TICK_SECONDS` (waiting for reminders due before
/// the next tick) plus this, well inside the service's request timeout
/// (`timeoutSeconds` in `knative/service-reminder.yaml`).
pub const TICK_EFFECTS_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// One ping tick: the outbox sweep, the repair of runs no event will finish
/// (DESIGN §5), the due reminders, then every Slack effect left (anyone's:
/// the other functions may be scaled to zero). A failed sweep or repair
/// does not hold reminders back; it is reported after them.
async fn tick(ctx: &Context) -> Result<(), HandleEventError> {
    let swept = ctx.outbox.publish_pending().await;
    match &swept {
        Ok(published) if *published > 0 => {
            tracing::info!(published, "outbox sweep republished events");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "outbox sweep failed; sending due reminders anyway"),
    }
    let repaired = repair::repair(&ctx.db, ctx.clock.now(), &ctx.event_source()).await;
    if let Err(e) = &repaired {
        tracing::warn!(error = %e, "repair pass failed; the next tick retries it");
    }
    // Reminders and auto-closes due before the next tick, each at its time.
    let (reminded, closed) = tokio::join!(
        send::due_reminders(ctx),
        auto_close::due_closes(ctx, send::tick_period(ctx))
    );
    reminded?;
    closed?;
    ctx.effects.drain(TICK_EFFECTS_BUDGET).await?;
    repaired?;
    swept
        .map(|_| ())
        .map_err(|e| HandleEventError::Retryable(anyhow::anyhow!("outbox sweep: {e}")))
}

/// Everything this function serves.
pub fn router(ctx: &Context) -> Router {
    slack_router(ctx).merge(event_router(ctx))
}

/// Builds the function for the shared runtime.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    Ok(Service::new(router(&ctx)))
}
