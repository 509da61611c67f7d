//! `run.close_requested` → runner, summary, DMs.

use axum::Router;
use cloudevents::{AttributesReader as _, Event};
use coffeebuddy_shared::app::close;
use coffeebuddy_shared::db::runs;
use coffeebuddy_shared::domain::ids::{ChannelId, UserId};
use coffeebuddy_shared::effects::Effect;
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{
    self, HandleEventError, RunCloseRequested, decode_data, first_delivery,
};
use coffeebuddy_shared::runtime::Context;

/// The consumer name in the idempotency ledger.
const CONSUMER: &str = "close-run";

pub(crate) fn routes(ctx: &Context) -> Router {
    let ctx = ctx.clone();
    EventRoutes::new(CONSUMER)
        .on(events::RUN_CLOSE_REQUESTED, move |event| {
            let ctx = ctx.clone();
            async move { on_close_requested(&ctx, &event).await }
        })
        .into_router()
}

async fn on_close_requested(ctx: &Context, event: &Event) -> Result<(), HandleEventError> {
    let data: RunCloseRequested = decode_data(event)?;
    let mut tx = if data.authorized {
        ctx.db.begin().await?
    } else {
        // Slack is asked before any transaction begins: no connection is
        // held while it answers.
        let (user, channel_id) = who_asked(&data)?;
        let admin = ctx.workspace_admins.verdict(&ctx.slack, &user).await?;
        let mut tx = ctx.db.begin().await?;
        if !authorize(ctx, &mut tx, event, &data, user, channel_id, admin).await? {
            ctx.commit_and_publish(tx).await?;
            return Ok(());
        }
        tx
    };
    let outcome = close::decide(&mut tx, ctx.clock.now(), &ctx.event_source(), data.run_id).await?;
    ctx.commit_and_publish(tx).await?;
    tracing::debug!(run_id = %data.run_id, ?outcome, "close handled");
    Ok(())
}

/// Who clicked, and where.
fn who_asked(data: &RunCloseRequested) -> Result<(UserId, ChannelId), HandleEventError> {
    match (
        UserId::parse(&data.requested_by),
        ChannelId::parse(&data.channel_id),
    ) {
        (Ok(user), Ok(channel_id)) => Ok((user, channel_id)),
        _ => Err(HandleEventError::Malformed(
            "requested_by or channel_id is not a Slack id".to_owned(),
        )),
    }
}

/// A click by someone who is neither the starter nor a named channel admin,
/// once Slack said whether they are a workspace admin (`admin`; `None`:
/// Slack could not say): moves the run to `closing`, or tells them
/// privately why not. Returns whether the close goes ahead. A redelivered
/// event answers nobody twice.
async fn authorize(
    ctx: &Context,
    tx: &mut sqlx::PgConnection,
    event: &Event,
    data: &RunCloseRequested,
    user: UserId,
    channel_id: ChannelId,
    admin: Option<bool>,
) -> Result<bool, HandleEventError> {
    if !first_delivery(tx, CONSUMER, event.id()).await? {
        return Ok(false);
    }
    let Some(run) = runs::lock(&mut *tx, data.run_id).await? else {
        return Ok(false);
    };
    let refusal = match admin {
        Some(true) if run.status == runs::RunStatus::Open => {
            runs::request_close(&mut *tx, data.run_id, user.as_ref(), ctx.clock.now()).await?;
            tracing::info!(run_id = %data.run_id, closed_by = %user, "close by a workspace admin");
            return Ok(true);
        }
        Some(true) => "This coffee run is already closed (or closing).".to_owned(),
        Some(false) => {
            tracing::info!(user_id = %user, run_id = %data.run_id, "refused: not allowed to close");
            format!(
                "Only <@{}> (who started this run) or a channel admin can close it.",
                run.initiator_id
            )
        }
        None => {
            "Sorry, your permissions could not be checked right now. Please try again in a moment."
                .to_owned()
        }
    };
    let tell = Effect::Ephemeral {
        channel_id,
        user,
        text: refusal,
        response: data.response,
    };
    ctx.record_effect(tx, &tell).await?;
    Ok(false)
}
