//! Placing or changing an order (DESIGN §1.2–1.3): the order, the person's
//! saved preferences, `order.placed` or `order.updated`, and a refresh of
//! the run message, decided in the caller's transaction.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::{orders, runs};
use crate::domain::ids::UserId;
use crate::domain::order::OrderText;
use crate::effects::{self, Effect};
use crate::events::{self, NewEvent, OrderChanged, OrderPlaced, OrderUpdated};

/// One person's order as submitted from the modal.
#[derive(Debug, Clone, Copy)]
pub struct Ordering<'a> {
    /// The run it is for.
    pub run_id: Uuid,
    /// Who orders.
    pub user: &'a UserId,
    /// What, as typed (checked).
    pub text: &'a OrderText,
    /// Also save it as their usual.
    pub save_usual: bool,
    /// Willing to run again soon (DESIGN §1.4's opt-in).
    pub runner_again: bool,
}

/// What placing decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Saved: their first order in the run, or a change of it.
    Saved(orders::OrderChange),
    /// The run is not open any more (or is gone): nothing was saved.
    RunNotOpen,
}

/// Saves `ordering` in `conn`'s transaction if its run is still open. The
/// run is locked first, so a close cannot slip in between the check and
/// the insert. `event_source` is the CloudEvent source of the writer.
pub async fn place_order(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    event_source: &str,
    ordering: &Ordering<'_>,
) -> Result<Placed, sqlx::Error> {
    let (run_id, user) = (ordering.run_id, ordering.user.as_ref());
    let run = match runs::lock(&mut *conn, run_id).await? {
        Some(run) if run.status == runs::RunStatus::Open => run,
        _ => return Ok(Placed::RunNotOpen),
    };
    let text = ordering.text.as_ref();
    let change = orders::upsert(&mut *conn, run_id, user, text, ordering.runner_again).await?;
    let usual = ordering.save_usual.then_some(text);
    orders::save_preferences(&mut *conn, user, usual, ordering.runner_again).await?;
    let data = OrderChanged {
        run_id,
        channel_id: run.channel_id.to_string(),
        user_id: user.to_owned(),
    };
    let subject = Some(run_id.to_string());
    let event = match change {
        orders::OrderChange::Placed => NewEvent::new(&run.channel_id, subject, &OrderPlaced(data)),
        orders::OrderChange::Updated => {
            NewEvent::new(&run.channel_id, subject, &OrderUpdated(data))
        }
    };
    events::enqueue(&mut *conn, event_source, event).await?;
    let refresh = Effect::UpdateRunMessage {
        run_id,
        channel_id: run.channel_id,
    };
    effects::enqueue(&mut *conn, now, &refresh).await?;
    Ok(Placed::Saved(change))
}
