//! `POST /`: on `order.placed`/`order.updated`, re-render the run message.

use axum::Router;
use coffeebuddy_shared::db::runs;
use coffeebuddy_shared::domain::ids::ChannelId;
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{self, HandleEventError, OrderChanged, decode_data};
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::{blocks, run_view};

pub(crate) fn routes(ctx: &Context) -> Router {
    let (placed, updated) = (ctx.clone(), ctx.clone());
    EventRoutes::new("interaction")
        .on(events::ORDER_PLACED, move |event| {
            let ctx = placed.clone();
            async move { refresh_run_message(&ctx, decode_data(&event)?).await }
        })
        .on(events::ORDER_UPDATED, move |event| {
            let ctx = updated.clone();
            async move { refresh_run_message(&ctx, decode_data(&event)?).await }
        })
        .into_router()
}

/// Renders the run as it is now (not as the event says): a late or repeated
/// event can never roll the message back to an older state.
async fn refresh_run_message(ctx: &Context, data: OrderChanged) -> Result<(), HandleEventError> {
    let mut conn = ctx.db.acquire().await?;
    let Some(run) = runs::find(&mut conn, data.run_id).await? else {
        return Ok(());
    };
    let Some(ts) = run.message_ts.clone() else {
        // The run message is not posted yet; it will show this order when it
        // is. Retry so the count is right even if that post already raced by.
        return Err(HandleEventError::Retryable(anyhow::anyhow!(
            "run message not posted yet"
        )));
    };
    let view = run_view::load(&mut conn, &run).await?;
    drop(conn);
    let channel = ChannelId::parse(&run.channel_id).map_err(|_| {
        HandleEventError::Malformed("stored channel id is not a Slack id".to_owned())
    })?;
    match ctx
        .slack
        .update_message(&channel, &ts, &blocks::run_message(&view))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => run_view::on_slack_error(e, "updating the run message"),
    }
}
