//! The App Home's **Edit usual** modal (DESIGN §1.14): its submission saves
//! the person's usual, checked exactly like an order (1–150 characters, one
//! line), without touching their "Happy to be the runner again" answer.
//! Database only: the answer is the HTTP response (errors on the input, or
//! an empty 200 that closes the modal).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffeebuddy_shared::db::orders;
use coffeebuddy_shared::domain::order::OrderText;
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::blocks::{self, ORDER_BLOCK};
use coffeebuddy_shared::slack::payloads::ViewSubmission;

use crate::error::InteractError;

pub(crate) async fn submit_usual(
    ctx: &Context,
    view: ViewSubmission,
) -> Result<Response, InteractError> {
    let text = match OrderText::parse(view.order_text.as_deref().unwrap_or_default()) {
        Ok(text) => text,
        Err(e) => {
            tracing::info!(reason = %e, "refused a usual");
            return Ok(Json(blocks::modal_errors(&[(ORDER_BLOCK, e.to_string())])).into_response());
        }
    };
    let user = view.user_id.as_ref();
    let mut tx = ctx.db.begin().await?;
    let runner_again = orders::preferences(&mut tx, user)
        .await?
        .is_some_and(|p| p.runner_opt_in);
    orders::save_preferences(&mut tx, user, Some(text.as_ref()), runner_again).await?;
    tx.commit().await?;
    tracing::info!(user_id = user, "usual saved from the App Home");
    // The Home tab shows the new usual the next time it is opened.
    Ok(StatusCode::OK.into_response())
}
