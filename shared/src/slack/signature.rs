//! Slack request signing, v0 (Slack's "Verifying requests from Slack").
//!
//! Slack sends `X-Slack-Request-Timestamp` and
//! `X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{raw body}"))`.
//! We check the timestamp is within five minutes of now in either direction
//! (a replayed or pre-dated request is refused), then compare the MAC in
//! constant time. The check runs over the raw bytes, before any decoding.
//!
//! [`verify`] is pure (the clock is an argument); [`SignedBody`] is the axum
//! extractor the Slack routes use, answering 401 on any failure.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::clock::SharedClock;

/// Header carrying the request's Unix timestamp.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// Header carrying `v0=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// Largest accepted distance between the request's timestamp and now.
pub const MAX_TIMESTAMP_SKEW_SECONDS: i64 = 60 * 5;

/// Why a request's signature was refused. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifySignatureError {
    /// No timestamp header.
    #[error("missing {TIMESTAMP_HEADER} header")]
    MissingTimestamp,
    /// No signature header.
    #[error("missing {SIGNATURE_HEADER} header")]
    MissingSignature,
    /// The timestamp is not an integer.
    #[error("timestamp is not a Unix time")]
    MalformedTimestamp,
    /// The timestamp is too far from now: a replay, or a wrong clock.
    #[error("timestamp is {skew_seconds} s away from now (limit {MAX_TIMESTAMP_SKEW_SECONDS} s)")]
    OutsideWindow {
        /// Request time minus now, in seconds.
        skew_seconds: i64,
    },
    /// The signature is not `v0=` followed by 64 hex digits.
    #[error("signature is not in the v0=<hex> form")]
    MalformedSignature,
    /// The signature does not match the body.
    #[error("signature does not match the request body")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The `X-Slack-Signature` value Slack would send for `body` at `timestamp`.
/// Used by tests and by the local demo's Slack stand-in.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// The header's Unix time, accepted only in the canonical decimal form Slack
/// sends (what `i64::to_string` prints): no sign but `-`, no leading zeros,
/// no whitespace, no exponent or hex. The MAC covers the header's exact
/// text, so one number has exactly one accepted spelling.
fn parse_timestamp(timestamp: &str) -> Result<i64, VerifySignatureError> {
    timestamp
        .parse::<i64>()
        .ok()
        .filter(|ts| ts.to_string() == timestamp)
        .ok_or(VerifySignatureError::MalformedTimestamp)
}

/// Checks a request's signature headers against its raw body at time `now`
/// (Unix seconds).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), VerifySignatureError> {
    let timestamp = timestamp.ok_or(VerifySignatureError::MissingTimestamp)?;
    let signature = signature.ok_or(VerifySignatureError::MissingSignature)?;
    let ts = parse_timestamp(timestamp)?;
    // `abs_diff` is exact for every pair of i64 (its u64 result cannot
    // overflow), so the window holds even for i64::MIN against i64::MAX;
    // the signed skew is only for the log line and saturates.
    if ts.abs_diff(now) > MAX_TIMESTAMP_SKEW_SECONDS.unsigned_abs() {
        return Err(VerifySignatureError::OutsideWindow {
            skew_seconds: ts.saturating_sub(now),
        });
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .filter(|bytes| bytes.len() == 32)
        .ok_or(VerifySignatureError::MalformedSignature)?;
    // `verify_slice` compares in constant time.
    mac(secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| VerifySignatureError::Mismatch)
}

/// What the [`SignedBody`] extractor needs from application state.
#[derive(Debug, Clone)]
pub struct SlackVerifier {
    secret: SecretString,
    clock: SharedClock,
}

impl SlackVerifier {
    /// A verifier for `secret`, judging timestamps by `clock`.
    pub fn new(secret: SecretString, clock: SharedClock) -> Self {
        Self { secret, clock }
    }

    /// Checks one request.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), VerifySignatureError> {
        verify(
            self.secret.expose_secret().as_bytes(),
            timestamp,
            signature,
            body,
            self.clock.now().timestamp(),
        )
    }
}

/// The raw body of a request whose Slack signature checked out.
#[derive(Debug, Clone)]
pub struct SignedBody(pub Bytes);

/// The 401 answer for a request that failed the check.
#[derive(Debug)]
pub struct SignatureRejection(VerifySignatureError);

impl IntoResponse for SignatureRejection {
    fn into_response(self) -> Response {
        // The reason goes to our logs only: telling a caller *why* helps an attacker.
        tracing::warn!(reason = %self.0, "rejected a Slack request: bad signature");
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({ "error": "invalid Slack signature" })),
        )
            .into_response()
    }
}

fn header(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl<S> FromRequest<S> for SignedBody
where
    S: Send + Sync,
    SlackVerifier: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let timestamp = header(req.headers(), TIMESTAMP_HEADER);
        let signature = header(req.headers(), SIGNATURE_HEADER);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        SlackVerifier::from_ref(state)
            .verify(timestamp.as_deref(), signature.as_deref(), &body)
            .map_err(|e| SignatureRejection(e).into_response())?;
        Ok(Self(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's published example ("Verifying requests from Slack").
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW: i64 = 1_531_420_618;

    fn check(
        ts: Option<&str>,
        sig: Option<&str>,
        body: &str,
        now: i64,
    ) -> Result<(), VerifySignatureError> {
        verify(SECRET, ts, sig, body.as_bytes(), now)
    }

    #[test]
    fn slacks_published_example_verifies() {
        assert_eq!(sign(SECRET, TIMESTAMP, BODY.as_bytes()), SIGNATURE);
        assert_eq!(check(Some(TIMESTAMP), Some(SIGNATURE), BODY, NOW), Ok(()));
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let tampered = BODY.replace("roadrunner", "coyote");
        assert_eq!(
            check(Some(TIMESTAMP), Some(SIGNATURE), &tampered, NOW),
            Err(VerifySignatureError::Mismatch)
        );
    }

    #[test]
    fn a_signature_made_with_another_secret_is_refused() {
        let forged = sign(b"not-the-secret", TIMESTAMP, BODY.as_bytes());
        assert_eq!(
            check(Some(TIMESTAMP), Some(&forged), BODY, NOW),
            Err(VerifySignatureError::Mismatch)
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_either_way_are_refused() {
        assert_eq!(
            check(Some(TIMESTAMP), Some(SIGNATURE), BODY, NOW + 300),
            Ok(())
        );
        assert_eq!(
            check(Some(TIMESTAMP), Some(SIGNATURE), BODY, NOW - 300),
            Ok(())
        );
        assert_eq!(
            check(Some(TIMESTAMP), Some(SIGNATURE), BODY, NOW + 301),
            Err(VerifySignatureError::OutsideWindow { skew_seconds: -301 })
        );
        assert_eq!(
            check(Some(TIMESTAMP), Some(SIGNATURE), BODY, NOW - 301),
            Err(VerifySignatureError::OutsideWindow { skew_seconds: 301 })
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        assert_eq!(
            check(None, Some(SIGNATURE), BODY, NOW),
            Err(VerifySignatureError::MissingTimestamp)
        );
        assert_eq!(
            check(Some(TIMESTAMP), None, BODY, NOW),
            Err(VerifySignatureError::MissingSignature)
        );
        assert_eq!(
            check(Some("yesterday"), Some(SIGNATURE), BODY, NOW),
            Err(VerifySignatureError::MalformedTimestamp)
        );
        for bad in [
            "a2114d57",
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=zz",
            "v0=a211",
        ] {
            assert_eq!(
                check(Some(TIMESTAMP), Some(bad), BODY, NOW),
                Err(VerifySignatureError::MalformedSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_huge_timestamp_does_not_overflow() {
        assert!(matches!(
            check(Some("9223372036854775807"), Some(SIGNATURE), BODY, -1_000),
            Err(VerifySignatureError::OutsideWindow { .. })
        ));
    }

    #[test]
    fn the_extreme_timestamps_are_outside_the_window_from_any_now() {
        for now in [i64::MIN, -1, 0, NOW, i64::MAX] {
            for ts in [i64::MIN, i64::MIN + 1, -1, i64::MAX] {
                if ts.abs_diff(now) <= 300 {
                    continue;
                }
                let ts = ts.to_string();
                let sig = sign(SECRET, &ts, BODY.as_bytes());
                assert!(
                    matches!(
                        check(Some(&ts), Some(&sig), BODY, now),
                        Err(VerifySignatureError::OutsideWindow { .. })
                    ),
                    "ts {ts} at now {now}"
                );
            }
        }
    }

    #[test]
    fn hostile_timestamp_spellings_are_refused_even_when_signed() {
        for hostile in [
            "",
            " ",
            "\t",
            " 1531420618",
            "1531420618 ",
            "+1531420618",
            "01531420618",
            "1e10",
            "0x10",
            "1531420618.0",
            "-0",
            "1234567890123456789012345678901234567890",
            "9223372036854775808",
            "-9223372036854775809",
        ] {
            let sig = sign(SECRET, hostile, BODY.as_bytes());
            assert_eq!(
                check(Some(hostile), Some(&sig), BODY, NOW),
                Err(VerifySignatureError::MalformedTimestamp),
                "{hostile:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn the_window_accepts_exactly_the_requests_within_five_minutes(
            ts in proptest::num::i64::ANY,
            now in proptest::num::i64::ANY,
        ) {
            let header = ts.to_string();
            let sig = sign(SECRET, &header, BODY.as_bytes());
            let within = i128::from(ts) - i128::from(now);
            let result = check(Some(&header), Some(&sig), BODY, now);
            proptest::prop_assert_eq!(result.is_ok(), within.abs() <= 300);
        }

        #[test]
        fn timestamps_near_now_are_judged_by_their_distance(
            offset in -1_000i64..1_000,
            now in proptest::num::i64::ANY,
        ) {
            let ts = now.saturating_add(offset);
            let header = ts.to_string();
            let sig = sign(SECRET, &header, BODY.as_bytes());
            let result = check(Some(&header), Some(&sig), BODY, now);
            let distance = (i128::from(ts) - i128::from(now)).abs();
            proptest::prop_assert_eq!(result.is_ok(), distance <= 300);
        }

        #[test]
        fn any_header_strings_never_panic_and_never_pass_unsigned(
            ts in proptest::option::of(".{0,45}"),
            sig in proptest::option::of(".{0,80}"),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            now in proptest::num::i64::ANY,
        ) {
            let result = verify(SECRET, ts.as_deref(), sig.as_deref(), &body, now);
            proptest::prop_assert!(result.is_err());
        }
    }
}
