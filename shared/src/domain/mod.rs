//! Pure domain rules: no I/O, no clock, no randomness of their own. Handlers
//! parse wire payloads into these types and call these functions; everything
//! here is unit-tested in place.
//!
//! - [`ids`]: Slack ids as distinct types, and user mentions.
//! - [`text`]: showing user text safely in Slack (mrkdwn escaping, truncation).
//! - [`command`]: reading `/coffee [pickup] [note]`, pickup times and notes.
//! - [`order`]: checking the text of an order.
//! - [`fairness`]: choosing who fetches the coffee when a run closes.
//! - [`reminder`]: when the runner's pickup reminder is due and how late it was.

pub mod admin;
pub mod command;
pub mod fairness;
pub mod ids;
pub mod order;
pub mod reminder;
pub mod text;
