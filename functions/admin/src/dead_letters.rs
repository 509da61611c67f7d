//! Dead letters (DESIGN §5 "poison is quarantined"):
//!
//! - `POST /dead-letters`: the KafkaSources' `deadLetterSink`. Knative posts
//!   an event here after giving up on delivering it (its retries spent);
//!   any CloudEvent, binary or structured, is parked in `dead_letters` with
//!   Knative's error extensions, and answered 202. Cluster-local like every
//!   `POST /`.
//! - `GET /admin/api/v1/dead-letters[?limit=N]` (Ory JWT): the newest dead
//!   letters of every source (effects that gave up, outbox events no
//!   consumer would take, sink deliveries), newest first.

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use cloudevents::{AttributesReader as _, Event};
use coffeebuddy_shared::auth::{Operator, OryVerifier};
use coffeebuddy_shared::effects::store::{self, DeadLetter, DeadLetterSource};
use coffeebuddy_shared::events::partition_key;
use coffeebuddy_shared::runtime::Context;
use serde::Deserialize;

/// The operators' listing.
const LIST_PATH: &str = "/admin/api/v1/dead-letters";
/// Rows returned when `limit` is not given, and the most one may ask for.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// Knative's extensions on a dead-lettered event: why the last delivery
/// failed.
const KNATIVE_ERROR_EXTENSIONS: &[&str] =
    &["knativeerrorcode", "knativeerrordata", "knativeerrordest"];

/// `POST /dead-letters`, for every function's event router.
pub(crate) fn intake(ctx: &Context) -> Router {
    Router::new()
        // The KafkaSources' `delivery.deadLetterSink.uri`.
        .route("/dead-letters", post(receive))
        .with_state(ctx.clone())
}

async fn receive(State(ctx): State<Context>, event: Event) -> Response {
    let error = KNATIVE_ERROR_EXTENSIONS
        .iter()
        .filter_map(|name| event.extension(name).map(|value| format!("{name}={value}")))
        .collect::<Vec<_>>()
        .join("; ");
    let letter = DeadLetter {
        source: DeadLetterSource::Sink,
        ref_id: event.id().to_owned(),
        kind: event.ty().to_owned(),
        channel_id: partition_key(&event),
        payload: serde_json::to_value(&event).unwrap_or(serde_json::Value::Null),
        error: if error.is_empty() {
            "delivered to the dead-letter sink".to_owned()
        } else {
            error
        },
        attempts: 0,
    };
    let parked = async {
        let mut conn = ctx.db.acquire().await?;
        store::park(&mut conn, &letter).await
    }
    .await;
    match parked {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => {
            tracing::error!(error = %e, event_id = %letter.ref_id, "cannot park a dead letter; asking for a retry");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

#[derive(Debug, Clone)]
struct ListState {
    ctx: Context,
    verifier: OryVerifier,
}

impl FromRef<ListState> for OryVerifier {
    fn from_ref(state: &ListState) -> Self {
        state.verifier.clone()
    }
}

/// `GET /admin/api/v1/dead-letters` (503 without Ory, like the rest of the
/// operators' API in `local`).
pub(crate) fn api(ctx: &Context) -> Router {
    match ctx.ory.clone() {
        Some(verifier) => Router::new()
            .route(LIST_PATH, get(list))
            .with_state(ListState {
                ctx: ctx.clone(),
                verifier,
            }),
        None => Router::new().route(
            LIST_PATH,
            any(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({ "error": "admin API not configured" })),
                )
            }),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    limit: Option<String>,
}

async fn list(
    Operator(operator): Operator,
    State(state): State<ListState>,
    Query(params): Query<ListParams>,
) -> Response {
    let limit = match params.limit.as_deref().map(str::parse::<i64>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": format!("limit must be a whole number from 1 to {MAX_LIMIT}") })),
            )
                .into_response();
        }
    };
    tracing::info!(operator = %operator.sub, limit, "listing dead letters");
    let rows = async {
        let mut conn = state.ctx.db.acquire().await?;
        store::list_dead_letters(&mut conn, limit).await
    }
    .await;
    match rows {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot list dead letters");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({ "error": "internal error" })),
            )
                .into_response()
        }
    }
}
