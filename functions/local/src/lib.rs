//! All CoffeeBuddy functions in one process, on one port: what Kong and
//! Knative do together in production, for a laptop and for end-to-end tests.
//!
//! It serves the Slack paths (and `/admin/api`) of every function, health
//! and metrics once. In-process event fan-out and the ping ticker arrive
//! with the events (issue 3).

use axum::Router;
use coffeebuddy_shared::config::ServiceIdentity;
use coffeebuddy_shared::runtime::{Context, Service};

/// Who this process is. Ory is optional here: a developer's laptop has none.
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    requires_ory: false,
};

/// Every function's routes on one router.
pub fn router(ctx: &Context) -> Router {
    Router::new()
        .merge(coffeebuddy_slash_command::router(ctx))
        .merge(coffeebuddy_interaction::router(ctx))
        .merge(coffeebuddy_close_run::router(ctx))
        .merge(coffeebuddy_reminder::router(ctx))
        .merge(coffeebuddy_admin::router(ctx))
}

/// Builds the all-in-one service for the shared runtime.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    Ok(Service::new(router(&ctx)))
}
