//! Closing a run.
//!
//! `POST /` (CloudEvents): on `run.close_requested`,
//! 1. when the click could not prove the right to close (not the starter,
//!    not a named channel admin), ask Slack whether the person is a
//!    workspace admin, after the ack; refuse privately if not;
//! 2. in one transaction ([`coffeebuddy_shared::app::close::decide`]): lock
//!    the run, pick the runner fairly (DESIGN §1.4), count their run exactly
//!    once, close the run (or cancel it when nobody ordered), write
//!    `run.closed` and the Slack effects: the run message shows the outcome,
//!    the channel gets the summary, the runner a DM with every order, each
//!    other participant a DM naming the runner.
//!
//! The effect worker carries the effects out, each exactly once (DESIGN
//! §5). A redelivered event finds the run closed and changes nothing.

mod close;

use axum::Router;
use coffeebuddy_shared::config::ServiceIdentity;
use coffeebuddy_shared::runtime::{Context, Service};

/// Who this function is, for settings defaults and logs.
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    requires_ory: false,
};

/// This function has no Slack-facing routes.
pub fn slack_router(_ctx: &Context) -> Router {
    Router::new()
}

/// `POST /`: the CloudEvents this function consumes.
pub fn event_router(ctx: &Context) -> Router {
    close::routes(ctx)
}

/// Everything this function serves.
pub fn router(ctx: &Context) -> Router {
    slack_router(ctx).merge(event_router(ctx))
}

/// Builds the function for the shared runtime.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    Ok(Service::new(router(&ctx)))
}
