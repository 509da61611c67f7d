//! Slack `response_url`s, kept in `slack_responses` for their 30-minute
//! life and only read by the effect worker when it answers the person: a
//! response URL is a credential to post into the conversation, so it never
//! travels in events or logs.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::slack::payloads::ResponseUrl;

/// How long Slack accepts posts to a response URL.
pub const RESPONSE_URL_LIFE: Duration = Duration::minutes(30);

/// Keeps `url` until it expires and returns the id effects refer to it by.
pub async fn keep(
    conn: &mut PgConnection,
    url: &ResponseUrl,
    now: DateTime<Utc>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO slack_responses (request_id, response_url, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(url.as_ref())
    .bind(now + RESPONSE_URL_LIFE)
    .execute(conn)
    .await?;
    Ok(id)
}

/// The response URL kept as `id`, unless it has expired (or is gone).
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<ResponseUrl>, sqlx::Error> {
    let url: Option<String> = sqlx::query_scalar(
        "SELECT response_url FROM slack_responses WHERE request_id = $1 AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(url.and_then(|u| ResponseUrl::parse(&u).ok()))
}

/// Drops expired response URLs (the retention pass calls it).
pub async fn trim_expired(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM slack_responses WHERE expires_at <= $1")
            .bind(now)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}
