//! Reminders and the outbox sweep.
//!
//! `POST /` (CloudEvents): on each ping tick (`dev.knative.sources.ping`,
//! every minute from a PingSource; `local` has its own ticker), republish
//! outbox events that were committed but not yet published — Kafka being
//! down delays events, never loses them. Scheduling and sending pickup
//! reminders arrive with issue 4.

use axum::Router;
use coffeebuddy_shared::config::ServiceIdentity;
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{self, HandleEventError};
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
    let ctx = ctx.clone();
    EventRoutes::new("reminder")
        .on(events::PING, move |_event| {
            let ctx = ctx.clone();
            async move {
                let published = ctx.outbox.publish_pending().await.map_err(|e| {
                    HandleEventError::Retryable(anyhow::anyhow!("outbox sweep: {e}"))
                })?;
                if published > 0 {
                    tracing::info!(published, "outbox sweep republished events");
                }
                Ok(())
            }
        })
        .into_router()
}

/// Everything this function serves.
pub fn router(ctx: &Context) -> Router {
    slack_router(ctx).merge(event_router(ctx))
}

/// Builds the function for the shared runtime.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    Ok(Service::new(router(&ctx)))
}
