//! `POST /slack/events`: Slack's Events API (DESIGN §1.14).
//!
//! Signed like every Slack route ([`SignedBody`]: 401 otherwise, nothing
//! changes). `url_verification` is answered with its `challenge`. An
//! `event_callback` is recorded by its `event_id` in
//! `slack_event_receipts`, in the transaction that acts on it, so Slack's
//! retries (`X-Slack-Retry-Num`) change nothing twice. The answer is 200 at
//! once for every event, handled, duplicate or ignored; no Slack call is made
//! before it. Only a failure of our own database answers 500, so that Slack
//! retries (the retry finds no receipt, because nothing was committed).
//!
//! `app_home_opened` (tab `home`) asks for the person's `home` view
//! (`app::home::home_view`) to be published: an effect (DESIGN §5),
//! performed after the ack by the effect worker.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use coffeebuddy_shared::db::event_receipts;
use coffeebuddy_shared::effects::Effect;
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::events_api::{
    EventsApiRequest, RETRY_NUM_HEADER, RETRY_REASON_HEADER, SlackEvent, parse_events_request,
};
use coffeebuddy_shared::slack::signature::SignedBody;

/// What happened to one event delivery (logged, and a test hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// First delivery, acted on.
    First,
    /// A retry of an event already received: nothing done.
    Duplicate,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tracing::instrument(
    name = "slack_event",
    skip_all,
    fields(event_id, event_type, retry_num)
)]
pub(crate) async fn handle(
    State(ctx): State<Context>,
    headers: HeaderMap,
    SignedBody(body): SignedBody,
) -> Response {
    let request = match parse_events_request(&body) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "refused an Events API request");
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": "malformed Events API request" })),
            )
                .into_response();
        }
    };
    match request {
        EventsApiRequest::UrlVerification { challenge } => {
            tracing::info!("answered Slack's url_verification");
            Json(serde_json::json!({ "challenge": challenge })).into_response()
        }
        EventsApiRequest::Other { kind } => {
            tracing::info!(%kind, "ignored an Events API request type we do not handle");
            StatusCode::OK.into_response()
        }
        EventsApiRequest::EventCallback { event_id, event } => {
            let span = tracing::Span::current();
            span.record("event_id", event_id.as_str());
            span.record("event_type", event.kind());
            if let Some(n) = header(&headers, RETRY_NUM_HEADER) {
                span.record("retry_num", n);
                tracing::info!(
                    reason = header(&headers, RETRY_REASON_HEADER).unwrap_or_default(),
                    "Slack retried an event"
                );
            }
            match receive(&ctx, &event_id, &event).await {
                Ok(outcome) => {
                    tracing::info!(?outcome, "Events API event received");
                    StatusCode::OK.into_response()
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not record an Events API event; Slack will retry");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    }
}

/// Records the event and acts on it in one transaction.
async fn receive(
    ctx: &Context,
    event_id: &str,
    event: &SlackEvent,
) -> Result<Received, sqlx::Error> {
    let mut tx = ctx.db.begin().await?;
    if !event_receipts::record(&mut tx, event_id, event.kind()).await? {
        return Ok(Received::Duplicate);
    }
    match event {
        SlackEvent::AppHomeOpened { user, tab } if tab == "home" => {
            // The `views.publish` is an effect (DESIGN §5): the worker
            // renders the view at send time, after the ack.
            let publish = Effect::PublishHome { user: user.clone() };
            ctx.record_effect(&mut tx, &publish).await?;
            tracing::info!(user_id = %user, "App Home opened: home view to publish");
        }
        SlackEvent::AppHomeOpened { .. } | SlackEvent::Other { .. } => {}
    }
    ctx.commit_and_publish(tx).await?;
    Ok(Received::First)
}
