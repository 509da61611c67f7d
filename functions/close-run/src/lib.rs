//! Closing a run: on `run.close_requested`, picks the runner fairly, posts the summary and sends the DMs.
//!
//! The library holds the function; `main.rs` only hands it to the shared
//! runtime. Its feature handlers arrive with the issues that build them;
//! until then the function serves the runtime's health and metrics routes.

use axum::Router;
use coffeebuddy_shared::config::ServiceIdentity;
use coffeebuddy_shared::runtime::{Context, Service};

/// Who this function is, for settings defaults and logs.
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    requires_ory: false,
};

/// The function's own routes.
pub fn router(_ctx: &Context) -> Router {
    Router::new()
}

/// Builds the function for the shared runtime.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    Ok(Service::new(router(&ctx)))
}
