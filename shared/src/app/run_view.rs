//! The Block Kit view of a run, read from the database. Shared by every
//! function that renders or announces a run, and by the effect worker.

use sqlx::PgConnection;

use crate::db::{channels, orders, runs};
use crate::domain::command::Pickup;
use crate::domain::ids::UserId;
use crate::events::HandleEventError;
use crate::slack::blocks::{OrderLine, RunState, RunView};

/// Why a run's view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LoadRunViewError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored id is not a Slack id (only a broken writer can cause it).
    #[error("{0}")]
    Malformed(String),
}

impl From<LoadRunViewError> for HandleEventError {
    fn from(e: LoadRunViewError) -> Self {
        match e {
            LoadRunViewError::Database(e) => e.into(),
            LoadRunViewError::Malformed(m) => Self::Malformed(m),
        }
    }
}

/// Builds the view of `run` with its current active orders, pickup shown in
/// the channel's time zone.
pub async fn load(conn: &mut PgConnection, run: &runs::Run) -> Result<RunView, LoadRunViewError> {
    let tz = channels::find(&mut *conn, run.channel_id.as_ref())
        .await?
        .map_or(chrono_tz::UTC, |c| c.timezone);
    let orders = orders::active(&mut *conn, run.run_id).await?;
    let malformed =
        |what: &str| LoadRunViewError::Malformed(format!("stored {what} is not a Slack id"));
    Ok(RunView {
        why: run.runner_why.clone(),
        closes_at: run
            .auto_close_at
            .map(|at| Pickup::from_stored(at).display_in(tz)),
        run_id: run.run_id,
        channel_id: run.channel_id.clone(),
        initiator: UserId::parse(&run.initiator_id).map_err(|_| malformed("initiator"))?,
        pickup: run
            .pickup_at
            .map(|at| Pickup::from_stored(at).display_in(tz)),
        note: run.note.clone(),
        state: match run.status {
            runs::RunStatus::Open => RunState::Open,
            runs::RunStatus::Closing => RunState::Closing,
            runs::RunStatus::Closed => RunState::Closed,
            runs::RunStatus::Cancelled => RunState::Cancelled,
        },
        runner: run.runner_id.as_deref().and_then(|r| UserId::parse(r).ok()),
        orders: orders
            .into_iter()
            .filter_map(|o| {
                Some(OrderLine {
                    user: UserId::parse(&o.user_id).ok()?,
                    text: o.order_text,
                })
            })
            .collect(),
    })
}
