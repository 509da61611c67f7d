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
//! - [`runner_dm`]: the runner's DM with the grouped (barista-ready) order
//!   list and the **Picked up** / **Delivered** buttons.
//! - [`stats`]: the private answer to `/coffee stats`.
//! - [`home`]: the App Home tab's `home` view.
//! - [`events_api`]: Events API requests (`url_verification`,
//!   `event_callback`).
//!
//! Nothing here reads the database: what needs both (a run's view, who may
//! govern a channel) is in [`crate::app`].

pub mod blocks;
pub mod client;
pub mod events_api;
pub mod home;
pub mod payloads;
pub mod runner_dm;
pub mod signature;
pub mod stats;
