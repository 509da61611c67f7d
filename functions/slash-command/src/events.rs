//! `POST /`: on `run.created`, make sure the run message goes out.
//!
//! The message itself is an effect written with the run (DESIGN §5); this
//! delivery only wakes the effect worker, so a run whose event arrives at a
//! replica that did not start it is still posted promptly. Redeliveries
//! change nothing: the effect is posted once, whoever wakes the worker.

use axum::Router;
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{self, RunCreated, decode_data};
use coffeebuddy_shared::runtime::Context;

pub(crate) fn routes(ctx: &Context) -> Router {
    let ctx = ctx.clone();
    EventRoutes::new("slash-command")
        .on(events::RUN_CREATED, move |event| {
            let ctx = ctx.clone();
            async move {
                let _: RunCreated = decode_data(&event)?;
                ctx.effects.notify();
                Ok(())
            }
        })
        .into_router()
}
