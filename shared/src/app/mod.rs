//! The application core: what the functions do, independent of how a
//! request reached them (Slack, a CloudEvent, the operators' API, a tick).
//!
//! # Layout
//! - [`run_view`]: a run's view read from the database.
//! - [`administer`]: an authorised `/coffee-admin` command applied, with
//!   its audit row and event, its outcome as data.
//! - [`authz`]: who may govern a channel (channel admins, workspace admins).
//! - [`start`]: starting a run: the run, its event and its run message,
//!   decided in one transaction on the ack's path.
//! - [`order`]: placing or changing an order, with its event and the run
//!   message's refresh.
//! - [`close`]: closing a run: the fair pick, the outcome and its effects,
//!   decided in one transaction.
//! - [`remind`]: the runner's pickup reminder, scheduled and sent once.
//! - [`home`]: a person's App Home tab, read from the database.
//! - [`responses`]: Slack `response_url`s kept for their 30-minute life by
//!   the function that answers with them.
//! - [`worker`]: the effect worker that carries out [`crate::effects`].
//! - [`repair`]: what the ping tick finishes when no event will.

pub mod administer;
pub mod authz;
pub mod close;
pub mod home;
pub mod order;
pub mod remind;
pub mod repair;
pub mod responses;
pub mod run_view;
pub mod start;
pub mod worker;
