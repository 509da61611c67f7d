//! The Slack signature check (`X-Slack-Request-Timestamp`,
//! `X-Slack-Signature`, raw body) never panics, and decides exactly: a
//! request passes only with the right MAC over a canonical timestamp within
//! five minutes of now, for every `now`.
//!
//! Input: 8 bytes of `now` (i64, little endian), then
//! `timestamp \n signature \n body`; a missing line is a missing header.
#![no_main]

use coffeebuddy_shared::slack::signature::{sign, verify, MAX_TIMESTAMP_SKEW_SECONDS};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

fuzz_target!(|data: &[u8]| {
    let Some((now, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let now = i64::from_le_bytes(*now);
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let ts = parts.next().map(String::from_utf8_lossy);
    let sig = parts.next().map(String::from_utf8_lossy);
    let body = parts.next().unwrap_or_default();

    // As sent: almost never a valid MAC, so it must be refused unless it is.
    let result = verify(SECRET, ts.as_deref(), sig.as_deref(), body, now);
    if result.is_ok() {
        let ts = ts.as_deref().unwrap_or_default();
        let expected = sign(SECRET, ts, body);
        // Hex digits may come in either case.
        assert!(sig.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&expected)));
    }

    // Correctly signed: the timestamp check alone decides.
    if let Some(ts) = ts.as_deref() {
        let signature = sign(SECRET, ts, body);
        let result = verify(SECRET, Some(ts), Some(&signature), body, now);
        let canonical = ts.parse::<i64>().ok().filter(|t| t.to_string() == ts);
        let expected = canonical.is_some_and(|t| {
            (i128::from(t) - i128::from(now)).abs() <= i128::from(MAX_TIMESTAMP_SKEW_SECONDS)
        });
        assert_eq!(result.is_ok(), expected, "ts {ts:?} now {now}: {result:?}");
    }
});
