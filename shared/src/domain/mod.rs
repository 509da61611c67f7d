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
//! - [`admin`]: `/coffee-admin` and the bounds of every setting.
//! - [`auto_close`]: when a run with a pickup time closes by itself.
//! - [`grouping`]: the barista-ready order list (`3× flat white`).
//! - [`follow_through`]: who may say "picked up" and "delivered".

pub mod admin;
pub mod auto_close;
pub mod command;
pub mod fairness;
pub mod follow_through;
pub mod grouping;
pub mod ids;
pub mod order;
pub mod reminder;
pub mod text;
