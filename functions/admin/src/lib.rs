//! Channel governance.
//!
//! - `POST /slack/admin`: `/coffee-admin` (DESIGN §1.6). `help` and
//!   `status` are open to everyone; every other subcommand is for channel
//!   admins and workspace admins/owners, and every change writes its audit
//!   row and `channel.config_changed` event in the same transaction.
//! - `/admin/api/v1/channels/{channel_id}/config` (GET, PUT), `…/audit`,
//!   `…/stats` and `…/runs.csv` (GET): the operators' REST API, for
//!   Ory-issued JWTs only (DESIGN §1.7, §1.13);
//!   `GET /admin/api/v1/dead-letters`: what was parked as undeliverable.
//! - `POST /` (CloudEvents): on each ping tick, the daily retention purge;
//!   on `admin.command_requested`, a `/coffee-admin` change by someone only
//!   Slack can vouch for (workspace admin), checked after the ack.
//! - `POST /dead-letters`: the KafkaSources' dead-letter sink.

mod api;
mod command;
mod dead_letters;
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
    let on_command = ctx.clone();
    let ctx = ctx.clone();
    EventRoutes::new("admin")
        .on(events::ADMIN_COMMAND_REQUESTED, move |event| {
            let ctx = on_command.clone();
            async move { command::on_command_requested(&ctx, &event).await }
        })
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
    api::routes(ctx).merge(dead_letters::api(ctx))
}

/// `POST /dead-letters`: where Knative's dead-letter sink parks events.
pub fn dead_letter_router(ctx: &Context) -> Router {
    dead_letters::intake(ctx)
}

/// Everything this function serves.
pub fn router(ctx: &Context) -> Router {
    slack_router(ctx)
        .merge(event_router(ctx))
        .merge(api_router(ctx))
        .merge(dead_letter_router(ctx))
}

/// Builds the function for the shared runtime.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    Ok(Service::new(router(&ctx)).with_probes(api::probes(&ctx)))
}
