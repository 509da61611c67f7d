//! Channel governance: `/coffee-admin` (`POST /slack/admin`), the operators' REST API under `/admin/api/v1`, and daily retention.
//!
//! The library holds the function; `main.rs` only hands it to the shared
//! runtime. Its feature handlers arrive with the issues that build them;
//! until then the function serves the runtime's health and metrics routes.

mod api;

use axum::Router;
use coffeebuddy_shared::config::ServiceIdentity;
use coffeebuddy_shared::runtime::{Context, Service};

/// Who this function is, for settings defaults and logs.
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    requires_ory: true,
};

/// The function's own routes.
pub fn router(ctx: &Context) -> Router {
    Router::new().merge(api::routes(ctx))
}

/// Builds the function for the shared runtime.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    Ok(Service::new(router(&ctx)).with_probes(api::probes(&ctx)))
}
