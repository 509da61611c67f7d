//! How an interaction fails on our side, for every interaction handler.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why an interaction failed on our side.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InteractError {
    /// Not an interaction payload.
    #[error("malformed interaction payload: {0}")]
    BadPayload(String),
    /// Our side failed; the transaction rolled back, nothing changed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for InteractError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

impl IntoResponse for InteractError {
    fn into_response(self) -> Response {
        match self {
            Self::BadPayload(reason) => {
                tracing::warn!(%reason, "refused an interaction payload");
                (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({ "error": "malformed interaction" })),
                )
                    .into_response()
            }
            Self::Unexpected(e) => {
                tracing::error!(error = format!("{e:#}"), "interaction failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}
