//! Requests signed exactly as Slack signs them.

use coffeebuddy_shared::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

/// Sends `body` (form-encoded, as Slack does) to `url`, signed with `secret`
/// at Unix time `timestamp`.
pub fn signed_form(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    timestamp: i64,
    body: &str,
) -> reqwest::RequestBuilder {
    let ts = timestamp.to_string();
    client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(TIMESTAMP_HEADER, &ts)
        .header(
            SIGNATURE_HEADER,
            sign(secret.as_bytes(), &ts, body.as_bytes()),
        )
        .body(body.to_owned())
}

/// The current Unix time, for signing.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
