//! Slack interactions: the **Order** button and modal, order submissions,
//! and the **Close run** button.
//!
//! - `POST /slack/interactions`: verify the signature, then
//!   - Order → open the order modal at once (Slack's `trigger_id` expires
//!     after 3 s), pre-filled with the person's current order, else their
//!     saved usual;
//!   - modal submission → validate, then in one transaction save the one
//!     active order (and the usual, if asked) with its `order.*` event;
//!   - "Edit usual" modal submission (App Home) → validate, save the usual;
//!   - Close run → check who may close, then in one transaction move the run
//!     from open to closing with its `run.close_requested` event. Exactly
//!     one of any number of concurrent clicks wins.
//! - `POST /slack/events`: Slack's Events API (signed; `url_verification`;
//!   `event_callback` deduplicated by `event_id`; `app_home_opened` asks
//!   for the person's Home tab to be published).
//! - `POST /` (CloudEvents): on `order.placed`/`order.updated`, re-render
//!   the run message (participants and orders).

mod actions;
mod error;
mod events;
mod slack_events;
mod usual;

use axum::Router;
use axum::routing::post;
use coffeebuddy_shared::config::ServiceIdentity;
use coffeebuddy_shared::runtime::{Context, Service};

/// Who this function is, for settings defaults and logs.
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    requires_ory: false,
};

/// The Slack-facing routes (what Kong routes to this function).
pub fn slack_router(ctx: &Context) -> Router {
    Router::new()
        .route("/slack/interactions", post(actions::handle))
        .route("/slack/events", post(slack_events::handle))
        .with_state(ctx.clone())
}

/// `POST /`: the CloudEvents this function consumes.
pub fn event_router(ctx: &Context) -> Router {
    events::routes(ctx)
}

/// Everything this function serves.
pub fn router(ctx: &Context) -> Router {
    slack_router(ctx).merge(event_router(ctx))
}

/// Builds the function for the shared runtime.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    Ok(Service::new(router(&ctx)))
}
