//! Slack plumbing shared by the functions.
//!
//! - [`signature`]: request signing (v0 HMAC-SHA256) as a pure check and an
//!   axum extractor that every Slack route takes before decoding anything.
//! - [`payloads`]: slash commands and interactions (button clicks, modal
//!   submissions) parsed from Slack's form bodies into typed values.
//! - [`blocks`]: Block Kit builders for the run message, the order modal, the
//!   summary, the DMs and the immediate answers; user text is always escaped.
//! - [`client`]: the Web API client (`chat.postMessage`, `chat.update`,
//!   `views.open`, `users.info`, `response_url`s) with retries that honour
//!   `Retry-After`.
//!
//! Nothing here reads the database: what needs both (a run's view, who may
//! govern a channel) is in [`crate::app`].

pub mod blocks;
pub mod client;
pub mod payloads;
pub mod signature;
