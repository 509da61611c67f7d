//! Channel governance.
//!
//! - `POST /slack/admin`: `/coffee-admin` (DESIGN §1.6). `help` and
//!   `status` are open to everyone; every other subcommand is for channel
//!   admins and workspace admins/owners, and every change writes its audit
//!   row and `channel.config_changed` event in the same transaction.
//! - `/admin/api/v1/channels/{channel_id}/config` (GET, PUT), `…/audit`,
//!   `…/stats` and `…/runs.csv` (GET): the operators' REST API, for
//!   Ory-issued JWTs only (DESIGN §1.7, §1.13).
//! - `POST /` (CloudEvents): on each ping tick, the daily retention purge.

mod api;
mod command;
mod export;
mod retention;

use axum::Router;
use axum::routing::post;
use coffeebuddy_shared::config::ServiceIdentity;
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{self, HandleEventError};
use coffeebuddy_shared::runtime::{Context, Service};

pub use retention::{PurgeReport, purge_expired};

/// Who this function is, for settings defaults and logs.
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    requires_ory: true,
};

/// The Slack-facing routes (what Kong routes to this function).
pub fn slack_router(ctx: &Context) -> Router {
    Router::new()
        .route("/slack/admin", post(command::handle))
        .with_state(ctx.clone())
}

/// `POST /`: the CloudEvents this function consumes.
pub fn event_router(ctx: &Context) -> Router {
    let ctx = ctx.clone();
    EventRoutes::new("admin")
        .on(events::PING, move |_event| {
            let ctx = ctx.clone();
            async move {
                purge_expired(&ctx)
                    .await
                    .map(|_| ())
                    .map_err(|e| HandleEventError::Retryable(e.into()))
            }
        })
        .into_router()
}

/// The operators' REST API under `/admin/api/v1` (Ory JWTs).
pub fn api_router(ctx: &Context) -> Router {
    api::routes(ctx)
}

/// Everything this function serves.
pub fn router(ctx: &Context) -> Router {
    slack_router(ctx)
        .merge(event_router(ctx))
        .merge(api_router(ctx))
}

/// Builds the function for the shared runtime.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    Ok(Service::new(router(&ctx)).with_probes(api::probes(&ctx)))
}
