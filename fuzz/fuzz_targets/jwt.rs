//! The operators' token check without the network: the `Authorization`
//! header, the token's header and claims, and the JWKS document Ory
//! publishes. Never panics; anything accepted names its operator.
//!
//! Input: the `Authorization` header value, a newline, the JWKS document.
#![no_main]

use coffeebuddy_shared::auth::{bearer_token, verify_offline};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://ory.test.invalid";
const AUDIENCE: &str = "coffeebuddy-admin-api";

fuzz_target!(|data: &[u8]| {
    let (authorization, jwks) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(value) = HeaderValue::from_bytes(authorization) else {
        return;
    };
    let Ok(token) = bearer_token(Some(&value)) else {
        return;
    };
    // The seeds' tokens are valid from 2026-11 on for a few years.
    if let Ok(claims) = verify_offline(token, jwks, ISSUER, AUDIENCE, 1_800_000_000) {
        assert!(!claims.sub.trim().is_empty());
    }
});
