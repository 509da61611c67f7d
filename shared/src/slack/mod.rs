//! Slack plumbing shared by the functions.
//!
//! - [`signature`]: request signing (v0 HMAC-SHA256) as a pure check and an
//!   axum extractor that every Slack route takes before decoding anything.

pub mod signature;
