//! `POST /`: on `run.created`, post the run message and remember its `ts`.

use axum::Router;
use coffeebuddy_shared::db::{effects, runs};
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{self, HandleEventError, RunCreated, decode_data};
use coffeebuddy_shared::runtime::Context;
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
        Err(e) => run_view::on_slack_error(e, "posting the run message"),
    }
}
