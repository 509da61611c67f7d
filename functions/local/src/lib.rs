//! All CoffeeBuddy functions in one process, on one port: what Kong and
//! Knative do together in production, for a laptop and for end-to-end tests.
//!
//! - Serves the Slack paths of every function and the operators' admin API
//!   (answering 503 there without `ORY_*`), plus health and metrics once.
//! - Fans every event out to the `POST /` router of every function, as one
//!   KafkaSource per function would: straight from the outbox without
//!   `KAFKA_BROKERS`, or through Kafka (publish, then consume with group
//!   `coffeebuddy-local`) with it.
//! - Stands in for PingSource with a ticker every `TICK_SECONDS`.
//! - Answers `POST /` like the functions together would (an event from
//!   outside is fanned out to every consumer), and `POST /dead-letters`.
//! - In dev without a real Slack, serves the playground ([`playground`]).

pub mod playground;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use cloudevents::{AttributesReader as _, EventBuilder, EventBuilderV10};
use coffeebuddy_shared::config::ServiceIdentity;
use coffeebuddy_shared::effects::store::{self, DeadLetter, DeadLetterSource};
use coffeebuddy_shared::events::sink::{EventSink, InProcessSink};
use coffeebuddy_shared::events::{self, BoxFuture, DeliverError, kafka};
use coffeebuddy_shared::runtime::{Context, Service};

/// Who this process is. Ory is optional here: a developer's laptop has none.
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    requires_ory: false,
};

/// The consumer group `local` reads run events with, when Kafka is used.
pub const KAFKA_GROUP_ID: &str = "coffeebuddy-local";

/// Every function's Slack-facing routes on one router, plus the dead-letter
/// intake.
pub fn slack_router(ctx: &Context) -> Router {
    Router::new()
        .merge(coffeebuddy_admin::dead_letter_router(ctx))
        .merge(coffeebuddy_slash_command::slack_router(ctx))
        .merge(coffeebuddy_interaction::slack_router(ctx))
        .merge(coffeebuddy_close_run::slack_router(ctx))
        .merge(coffeebuddy_reminder::slack_router(ctx))
        .merge(coffeebuddy_admin::slack_router(ctx))
        .merge(coffeebuddy_admin::api_router(ctx))
}

/// Every function's `POST /` router: the event consumers.
pub fn event_routers(ctx: &Context) -> Vec<Router> {
    vec![
        coffeebuddy_slash_command::event_router(ctx),
        coffeebuddy_interaction::event_router(ctx),
        coffeebuddy_close_run::event_router(ctx),
        coffeebuddy_reminder::event_router(ctx),
        coffeebuddy_admin::event_router(ctx),
    ]
}

/// A ping event, as PingSource sends it.
pub fn ping_event() -> cloudevents::Event {
    EventBuilderV10::new()
        .id(uuid::Uuid::new_v4().to_string())
        .source("/coffeebuddy/local/ticker")
        .ty(events::PING)
        .time(chrono::Utc::now())
        .build()
        .expect("a ping event has every required attribute")
}

/// Delivers a ping to every consumer every `period`.
pub fn spawn_ticker(delivery: InProcessSink, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await; // the first tick is immediate; start one period in
        loop {
            interval.tick().await;
            if let Err(e) = delivery.deliver(&ping_event()).await {
                tracing::warn!(error = %e, "a ping tick was not handled; the next one will retry");
            }
        }
    })
}

/// `POST /` on `local`: an event posted from outside (a ping, a replayed
/// event) is fanned out to every function's `POST /`, as the KafkaSources
/// would: 202 when every consumer handled or ignored it, 400 when one
/// refused it as malformed, 503 when a retry can help.
fn event_intake(delivery: InProcessSink) -> Router {
    Router::new().route(
        "/",
        post(move |event: cloudevents::Event| {
            let delivery = delivery.clone();
            async move {
                match delivery.deliver(&event).await {
                    Ok(()) => StatusCode::ACCEPTED,
                    Err(e) if e.is_permanent() => {
                        tracing::warn!(error = %e, event_id = event.id(), "an event posted to local was refused");
                        StatusCode::BAD_REQUEST
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, event_id = event.id(), "an event posted to local could not be handled now");
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }
        }),
    )
}

/// Parks an event that a consumer refused as malformed, so the Kafka
/// consumer can move past it.
async fn park_poison(ctx: &Context, event: &cloudevents::Event, error: &DeliverError) {
    let letter = DeadLetter {
        source: DeadLetterSource::Sink,
        ref_id: event.id().to_owned(),
        kind: event.ty().to_owned(),
        channel_id: events::partition_key(event),
        payload: serde_json::to_value(event).unwrap_or_default(),
        error: error.to_string(),
        attempts: 1,
    };
    let parked = async {
        let mut conn = ctx.db.acquire().await?;
        store::park(&mut conn, &letter).await
    }
    .await;
    if let Err(e) = parked {
        tracing::error!(error = %e, event_id = %letter.ref_id, "cannot park a poison event");
    }
}

/// Builds the all-in-one service.
pub fn service(ctx: Context) -> anyhow::Result<Service> {
    let (ctx, playground) = playground::attach(ctx)?;
    // Without Kafka the outbox already delivers to this sink; with Kafka the
    // consumer below does.
    let delivery = ctx.in_process.clone().unwrap_or_default();
    for router in event_routers(&ctx) {
        delivery.add_target(router);
    }
    let mut service = Service::new(
        slack_router(&ctx)
            .merge(event_intake(delivery.clone()))
            .merge(playground),
    )
    .with_effect_worker(ctx.effects.clone());
    if let Some(verifier) = &ctx.ory {
        service = service.with_probe(verifier.probe());
    }
    if let Some(settings) = ctx.settings.kafka.clone() {
        let consumer = delivery.clone();
        let poison_ctx = ctx.clone();
        tokio::spawn(async move {
            let deliver =
                move |event: cloudevents::Event| -> BoxFuture<'static, Result<(), DeliverError>> {
                    let consumer = consumer.clone();
                    let ctx = poison_ctx.clone();
                    Box::pin(async move {
                        let delivered = consumer.deliver(&event).await;
                        if let Err(e) = &delivered
                            && e.is_permanent()
                        {
                            park_poison(&ctx, &event, e).await;
                        }
                        delivered
                    })
                };
            // Runs until the process stops; Kafka outages are retried inside.
            if let Err(e) = kafka::consume(
                &settings,
                KAFKA_GROUP_ID,
                deliver,
                std::future::pending::<()>(),
            )
            .await
            {
                tracing::error!(error = %e, "the Kafka consumer cannot run; events will not be delivered");
            }
        });
    }
    spawn_ticker(delivery, Duration::from_secs(ctx.settings.tick_seconds));
    Ok(service)
}
