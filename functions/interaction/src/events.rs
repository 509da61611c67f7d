//! `POST /`: on `order.placed`/`order.updated`, make sure the run message
//! shows the order.
//!
//! The refresh is an effect written with the order (DESIGN §5), rendered
//! from the current state at send time; this delivery only wakes the effect
//! worker. A late or repeated event can never roll the message back.

use axum::Router;
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{self, OrderChanged, decode_data};
use coffeebuddy_shared::runtime::Context;

pub(crate) fn routes(ctx: &Context) -> Router {
    let (placed, updated) = (ctx.clone(), ctx.clone());
    EventRoutes::new("interaction")
        .on(events::ORDER_PLACED, move |event| {
            let ctx = placed.clone();
            async move {
                let _: OrderChanged = decode_data(&event)?;
                ctx.effects.notify();
                Ok(())
            }
        })
        .on(events::ORDER_UPDATED, move |event| {
            let ctx = updated.clone();
            async move {
                let _: OrderChanged = decode_data(&event)?;
                ctx.effects.notify();
                Ok(())
            }
        })
        .into_router()
}
