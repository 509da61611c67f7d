//! `POST /slack/interactions`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffeebuddy_shared::app::close::{CloseRequest, request_close};
use coffeebuddy_shared::app::order::{Ordering, Placed, place_order};
use coffeebuddy_shared::app::{responses, run_view};
use coffeebuddy_shared::db::{follow_through, orders, runs};
use coffeebuddy_shared::domain::follow_through::Milestone;
use coffeebuddy_shared::domain::ids::ChannelId;
use coffeebuddy_shared::domain::order::OrderText;
use coffeebuddy_shared::effects::Effect;
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::blocks::{
    self, OPTION_RUNNER_AGAIN, OPTION_SAVE_USUAL, ORDER_BLOCK,
};
use coffeebuddy_shared::slack::payloads::{BlockAction, Interaction, ViewSubmission};
use coffeebuddy_shared::slack::signature::SignedBody;
use coffeebuddy_shared::slack::{home, runner_dm};
use uuid::Uuid;

use crate::error::InteractError;

#[tracing::instrument(name = "interaction", skip_all)]
pub(crate) async fn handle(
    State(ctx): State<Context>,
    SignedBody(body): SignedBody,
) -> Result<Response, InteractError> {
    match Interaction::from_form(&body).map_err(|e| InteractError::BadPayload(e.to_string()))? {
        Interaction::BlockAction(action) if action.action_id == blocks::ACTION_ORDER => {
            open_order_modal(&ctx, action).await
        }
        Interaction::BlockAction(action) if action.action_id == blocks::ACTION_CLOSE => {
            close_run(&ctx, action).await
        }
        Interaction::BlockAction(action) if action.action_id == home::ACTION_EDIT_USUAL => {
            open_usual_modal(&ctx, action).await
        }
        Interaction::BlockAction(action) if action.action_id == runner_dm::ACTION_PICKED_UP => {
            follow_through(&ctx, action, Milestone::PickedUp).await
        }
        Interaction::BlockAction(action) if action.action_id == runner_dm::ACTION_DELIVERED => {
            follow_through(&ctx, action, Milestone::Delivered).await
        }
        Interaction::ViewSubmission(view) if view.callback_id == blocks::ORDER_MODAL_CALLBACK => {
            submit_order(&ctx, view).await
        }
        Interaction::ViewSubmission(view) if view.callback_id == home::USUAL_MODAL_CALLBACK => {
            crate::usual::submit_usual(&ctx, view).await
        }
        other => {
            tracing::debug!(?other, "ignored an interaction we do not handle");
            Ok(StatusCode::OK.into_response())
        }
    }
}

/// Tells the clicker something privately: an effect, written in its own
/// transaction and carried out after the ack (a Slack call must not delay
/// the response Slack is waiting for).
async fn tell(
    ctx: &Context,
    action: &BlockAction,
    channel: Option<ChannelId>,
    text: &str,
) -> Result<(), InteractError> {
    let Some(channel_id) = channel.or_else(|| action.channel_id.clone()) else {
        tracing::warn!(%text, "nowhere to answer a click privately");
        return Ok(());
    };
    let mut tx = ctx.db.begin().await?;
    tell_in(ctx, &mut tx, action, channel_id, text).await?;
    ctx.commit_and_publish(tx).await?;
    Ok(())
}

/// [`tell`] inside the caller's transaction.
async fn tell_in(
    ctx: &Context,
    conn: &mut sqlx::PgConnection,
    action: &BlockAction,
    channel_id: ChannelId,
    text: &str,
) -> Result<(), sqlx::Error> {
    let response = match &action.response_url {
        Some(url) => Some(responses::keep(&mut *conn, url, ctx.clock.now()).await?),
        None => None,
    };
    let effect = Effect::Ephemeral {
        channel_id,
        user: action.user_id.clone(),
        text: text.to_owned(),
        response,
    };
    ctx.record_effect(conn, &effect).await
}

fn run_id_of(value: Option<&str>) -> Option<Uuid> {
    value.and_then(|v| Uuid::parse_str(v).ok())
}

async fn open_order_modal(ctx: &Context, action: BlockAction) -> Result<Response, InteractError> {
    let Some(run_id) = run_id_of(action.value.as_deref()) else {
        tracing::warn!("Order button without a run id");
        return Ok(StatusCode::OK.into_response());
    };
    let mut conn = ctx.db.acquire().await?;
    let run = match runs::find(&mut conn, run_id).await? {
        Some(run) if run.status == runs::RunStatus::Open => run,
        Some(run) => {
            drop(conn);
            tell(
                ctx,
                &action,
                Some(run.channel_id.clone()),
                "This coffee run is closed; orders can no longer be placed or changed.",
            )
            .await?;
            return Ok(StatusCode::OK.into_response());
        }
        None => {
            drop(conn);
            tell(ctx, &action, None, "This coffee run no longer exists.").await?;
            return Ok(StatusCode::OK.into_response());
        }
    };
    let user = action.user_id.as_ref();
    let current = orders::active_for(&mut conn, run_id, user).await?;
    let prefs = orders::preferences(&mut conn, user).await?;
    let (prefill, runner_again) = match (&current, &prefs) {
        (Some(order), _) => (Some(order.order_text.clone()), order.runner_opt_in),
        (None, Some(p)) => (p.usual_order.clone(), false),
        (None, None) => (None, false),
    };
    let view = run_view::load(&mut conn, &run)
        .await
        .map_err(|e| InteractError::Unexpected(e.into()))?;
    drop(conn);
    let modal = blocks::order_modal(&view, prefill.as_deref(), false, runner_again);
    if let Err(e) = ctx.slack.open_view(&action.trigger_id, &modal).await {
        // The trigger id is single-use and expires in 3 s: there is nothing
        // to retry. Tell the person so they can click again.
        tracing::warn!(error = %e, "views.open failed");
        tell(
            ctx,
            &action,
            Some(run.channel_id.clone()),
            "Sorry, the order form could not be opened. Please click *Order* again.",
        )
        .await?;
    }
    Ok(StatusCode::OK.into_response())
}

async fn submit_order(ctx: &Context, view: ViewSubmission) -> Result<Response, InteractError> {
    let refuse =
        |message: String| Ok(Json(blocks::modal_errors(&[(ORDER_BLOCK, message)])).into_response());
    let Some(run_id) = run_id_of(Some(&view.private_metadata)) else {
        return refuse(
            "This order form is out of date. Please close it and click *Order* again.".to_owned(),
        );
    };
    let text = match OrderText::parse(view.order_text.as_deref().unwrap_or_default()) {
        Ok(text) => text,
        Err(e) => {
            tracing::info!(reason = %e, "refused an order");
            return refuse(e.to_string());
        }
    };
    let ordering = Ordering {
        run_id,
        user: &view.user_id,
        text: &text,
        save_usual: view.options.iter().any(|o| o == OPTION_SAVE_USUAL),
        runner_again: view.options.iter().any(|o| o == OPTION_RUNNER_AGAIN),
    };
    let mut tx = ctx.db.begin().await?;
    let change = match place_order(&mut tx, ctx.clock.now(), &ctx.event_source(), &ordering).await?
    {
        Placed::Saved(change) => change,
        Placed::RunNotOpen => {
            return refuse("This coffee run has closed, so your order was not saved.".to_owned());
        }
    };
    ctx.commit_and_publish(tx).await?;
    let user = view.user_id.as_ref();
    tracing::info!(%run_id, user_id = user, ?change, "order saved");
    // An empty 200 closes the modal.
    Ok(StatusCode::OK.into_response())
}

/// **Close run**. The starter and named channel admins are known from the
/// database: their click moves the run to `closing` at once. Anyone else
/// may still be a workspace admin, which only Slack can say: the click is
/// passed on unauthorised and close-run asks Slack after the ack (DESIGN
/// §5: the ack never waits on the Web API), answering privately.
async fn close_run(ctx: &Context, action: BlockAction) -> Result<Response, InteractError> {
    let Some(run_id) = run_id_of(action.value.as_deref()) else {
        tracing::warn!("Close button without a run id");
        return Ok(StatusCode::OK.into_response());
    };
    let user = &action.user_id;
    let mut tx = ctx.db.begin().await?;
    let requested = request_close(
        &mut tx,
        ctx.clock.now(),
        &ctx.event_source(),
        run_id,
        user,
        action.response_url.as_ref(),
    )
    .await?;
    let authorized = match requested {
        CloseRequest::Gone => {
            drop(tx);
            tell(ctx, &action, None, "This coffee run no longer exists.").await?;
            return Ok(StatusCode::OK.into_response());
        }
        CloseRequest::NotOpen { channel_id } => {
            tell_in(
                ctx,
                &mut tx,
                &action,
                channel_id,
                "This coffee run is already closed (or closing).",
            )
            .await?;
            ctx.commit_and_publish(tx).await?;
            return Ok(StatusCode::OK.into_response());
        }
        CloseRequest::Requested { authorized } => authorized,
    };
    ctx.commit_and_publish(tx).await?;
    tracing::info!(%run_id, closed_by = %user, authorized, "close requested");
    Ok(StatusCode::OK.into_response())
}

/// **Picked up** / **Delivered** (DESIGN §1.9): only the runner may press;
/// the first press of each tells the channel (an effect, in the summary's
/// thread) and records its time; pressing again changes nothing; anyone
/// else is refused privately.
async fn follow_through(
    ctx: &Context,
    action: BlockAction,
    milestone: Milestone,
) -> Result<Response, InteractError> {
    let Some(run_id) = run_id_of(action.value.as_deref()) else {
        tracing::warn!("follow-through button without a run id");
        return Ok(StatusCode::OK.into_response());
    };
    let mut tx = ctx.db.begin().await?;
    let pressed =
        follow_through::press(&mut tx, run_id, &action.user_id, milestone, ctx.clock.now()).await;
    match pressed {
        Ok(follow_through::Pressed::First) => {
            let channel: Option<String> =
                sqlx::query_scalar("SELECT channel_id FROM runs WHERE run_id = $1")
                    .bind(run_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(channel_id) = channel.and_then(|c| ChannelId::parse(&c).ok()) {
                let announce = Effect::AnnounceMilestone {
                    run_id,
                    channel_id,
                    milestone,
                };
                ctx.record_effect(&mut tx, &announce).await?;
            }
            ctx.commit_and_publish(tx).await?;
            tracing::info!(%run_id, %milestone, "runner follow-through");
        }
        Ok(follow_through::Pressed::Again) => {
            tx.commit().await?;
            tracing::debug!(%run_id, %milestone, "pressed again; nothing changes");
        }
        Err(follow_through::PressError::Database(e)) => return Err(e.into()),
        Err(refusal) => {
            drop(tx);
            tracing::info!(%run_id, user_id = %action.user_id, reason = %refusal, "refused a follow-through press");
            tell(ctx, &action, None, &refusal.to_string()).await?;
        }
    }
    Ok(StatusCode::OK.into_response())
}

/// **Edit usual** on the App Home: the usual modal, pre-filled (a
/// `views.open`, which must use the click's fresh `trigger_id`).
async fn open_usual_modal(ctx: &Context, action: BlockAction) -> Result<Response, InteractError> {
    let current = {
        let mut conn = ctx.db.acquire().await?;
        orders::preferences(&mut conn, action.user_id.as_ref())
            .await?
            .and_then(|p| p.usual_order)
    };
    let modal = home::usual_modal(current.as_deref());
    if let Err(e) = ctx.slack.open_view(&action.trigger_id, &modal).await {
        // Nowhere to answer from the Home tab; the person clicks again.
        tracing::warn!(error = %e, "views.open of the usual modal failed");
    }
    Ok(StatusCode::OK.into_response())
}
