//! `POST /`: on `run.created`, post the run message and remember its `ts`.

use axum::Router;
use coffeebuddy_shared::db::{effects, runs};
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{self, HandleEventError, RunCreated, decode_data};
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::client::SlackApiError;
use coffeebuddy_shared::slack::payloads::ResponseUrl;
use coffeebuddy_shared::slack::{blocks, run_view};

pub(crate) fn routes(ctx: &Context) -> Router {
    let ctx = ctx.clone();
    EventRoutes::new("slash-command")
        .on(events::RUN_CREATED, move |event| {
            let ctx = ctx.clone();
            async move { post_run_message(&ctx, decode_data(&event)?).await }
        })
        .into_router()
}

/// Posts the run message once, even when the event arrives twice at once:
/// the per-run lock serialises deliveries and `message_ts` says it is done.
async fn post_run_message(ctx: &Context, data: RunCreated) -> Result<(), HandleEventError> {
    let mut tx = ctx.db.begin().await?;
    effects::lock_run_effects(&mut tx, data.run_id).await?;
    let Some(run) = runs::find(&mut tx, data.run_id).await? else {
        // Deleted by a reset before we got to it: nothing to announce.
        return Ok(());
    };
    if run.message_ts.is_some() {
        return Ok(());
    }
    let view = run_view::load(&mut tx, &run).await?;
    match ctx
        .slack
        .post_message(&run.channel_id, &blocks::run_message(&view))
        .await
    {
        Ok(posted) => {
            runs::set_message_ts(&mut tx, run.run_id, &posted.ts).await?;
            tx.commit().await?;
            tracing::info!(run_id = %run.run_id, ts = %posted.ts, "run message posted");
            Ok(())
        }
        Err(e) if e.is_retryable() => run_view::on_slack_error(e, "posting the run message"),
        Err(e) => {
            // The message can never be posted (typically `not_in_channel`):
            // an open run nobody can see or close would block the channel, so
            // cancel it and tell the initiator how to fix it.
            tracing::error!(run_id = %run.run_id, error = %e, "cannot post the run message; cancelling the run");
            sqlx::query(
                "UPDATE runs SET status = 'cancelled', closed_at = now() WHERE run_id = $1 AND status = 'open'",
            )
            .bind(run.run_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tell_initiator(ctx, data.response_url.as_deref(), &e).await;
            Ok(())
        }
    }
}

/// Explains privately to whoever typed `/coffee` why their run vanished.
async fn tell_initiator(ctx: &Context, response_url: Option<&str>, error: &SlackApiError) {
    let Some(url) = response_url.and_then(|u| ResponseUrl::parse(u).ok()) else {
        return;
    };
    let text = match error {
        SlackApiError::Api { error, .. } if error == "not_in_channel" || error == "channel_not_found" => {
            "I can't post in this channel, so your coffee run was cancelled. Invite me with `/invite @CoffeeBuddy` and type `/coffee` again.".to_owned()
        }
        _ => "Your coffee run was cancelled because its message could not be posted in this channel. Please try `/coffee` again; if it keeps failing, ask your Slack admin to check CoffeeBuddy's permissions.".to_owned(),
    };
    if let Err(e) = ctx.slack.respond(&url, &blocks::ephemeral(&text)).await {
        tracing::warn!(error = %e, "could not tell the initiator about the cancelled run");
    }
}
