//! The `/coffee` slash command.
//!
//! - `POST /slack/commands`: verify the signature, parse the command, and in
//!   one transaction start the run and write its `run.created` event; then
//!   ack with an ephemeral answer. Everything slow happens after the ack.
//! - `POST /` (CloudEvents): on `run.created`, post the run message with its
//!   **Order** and **Close run** buttons and remember its `ts`.

mod command;
mod events;

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
        .route("/slack/commands", post(command::handle))
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
