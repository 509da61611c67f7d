//! A stand-in for the part of Slack CoffeeBuddy uses, and the playground
//! page built on it.
//!
//! - [`model`]: one workspace in memory (channels and messages, DMs,
//!   ephemerals, modals and App Homes, people, `trigger_id`s, response
//!   URLs) and the Web API methods CoffeeBuddy calls, answered as Slack
//!   answers them, size limits ([`checks`]) included.
//! - [`server`]: the same on HTTP, for `SLACK_API_BASE_URL`.
//! - [`playground`]: the browser page `coffeebuddy-local` serves at
//!   `/playground` in dev, which plays Slack for CoffeeBuddy: the person at
//!   the keyboard types commands and clicks buttons, and the page sends them
//!   to the functions as signed requests exactly as Slack does.
//!
//! The tests' recording fake (`coffeebuddy-test-support::slack_fake`), the
//! demo and the benchmark use this same model, with a test-only fault
//! layer on top.

pub mod checks;
pub mod model;
pub mod playground;
pub mod server;

pub use model::{HookTarget, Options, Person, SlackStandIn, WebAnswer, WebRequest, dm_id};
pub use server::StandInServer;
