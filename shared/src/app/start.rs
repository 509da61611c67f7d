//! Starting a run (DESIGN §1.1): the run, its `run.created` event and the
//! run message as an effect, decided in the caller's transaction.
//!
//! This is on Slack's 3 s ack path, so it is kept lean: five statements
//! (run, event, response URL, effect, and the channel's read by the caller)
//! between `BEGIN` and `COMMIT`, none of them waiting on Slack.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::channels::ChannelConfig;
use crate::db::runs::{self, NewRun, Run, StartRunError};
use crate::domain::auto_close::{AutoClose, auto_close_at};
use crate::domain::command::StartRun;
use crate::domain::ids::{ChannelId, TeamId, UserId};
use crate::effects::{self, Effect};
use crate::events::{self, NewEvent, RunCreated};
use crate::slack::payloads::ResponseUrl;

use super::responses;

/// Who starts which run where.
#[derive(Debug)]
pub struct Starting<'a> {
    /// The channel, as read (or created) in the same transaction.
    pub channel: &'a ChannelConfig,
    /// The workspace.
    pub team_id: &'a TeamId,
    /// Who typed `/coffee`.
    pub starter: &'a UserId,
    /// The parsed arguments.
    pub start: &'a StartRun,
    /// Where the starter hears about a run message that cannot be posted.
    pub response_url: &'a ResponseUrl,
}

/// What starting decided.
#[derive(Debug)]
pub enum Started {
    /// The run is open; its run message is on its way.
    Open {
        /// The new run.
        run: Box<Run>,
        /// Whether and when it closes by itself, decided once, now, so the
        /// time shown never moves (DESIGN §1.10).
        auto_close: AutoClose,
    },
    /// The channel already has a run in progress, started by this person.
    AlreadyOpen {
        /// Who started the run in progress.
        initiator: String,
    },
}

/// Starts a run in `starting.channel` within `conn`'s transaction: the run,
/// `run.created` (from `event_source`) and the run message effect commit
/// together or not at all. A run that ended between the conflicting insert
/// and the read of it is retried once.
pub async fn start_run(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    event_source: &str,
    starting: &Starting<'_>,
) -> Result<Started, sqlx::Error> {
    let channel_id = ChannelId::parse(&starting.channel.channel_id)
        .map_err(|e| sqlx::Error::Decode(format!("stored channel id: {e}").into()))?;
    let pickup_at = starting.start.pickup.as_ref().map(|p| p.at());
    let auto_close = auto_close_at(pickup_at, starting.channel.auto_close_minutes, now);
    let new = NewRun {
        run_id: Uuid::new_v4(),
        channel_id: &channel_id,
        team_id: Some(starting.team_id),
        initiator_id: starting.starter,
        pickup_at,
        note: starting.start.note.as_ref().map(AsRef::as_ref),
        auto_close_at: auto_close.at(),
    };
    let mut raced = false;
    let run = loop {
        match runs::start(conn, &new).await {
            Ok(run) => break run,
            Err(StartRunError::AlreadyOpen(existing)) => {
                return Ok(Started::AlreadyOpen {
                    initiator: existing.initiator_id,
                });
            }
            Err(StartRunError::Raced) if !raced => raced = true,
            Err(StartRunError::Raced) => {
                return Err(sqlx::Error::Protocol(
                    "the channel's runs kept changing while starting one".into(),
                ));
            }
            Err(StartRunError::Database(e)) => return Err(e),
        }
    };
    let created = RunCreated {
        run_id: run.run_id,
        channel_id: run.channel_id.to_string(),
    };
    let event = NewEvent::new(&run.channel_id, Some(run.run_id.to_string()), &created);
    events::enqueue(conn, event_source, event).await?;
    // The response URL stays with us, for telling the starter if the run
    // message cannot be posted.
    let response = responses::keep(conn, starting.response_url, now).await?;
    let post = Effect::PostRunMessage {
        run_id: run.run_id,
        channel_id,
        starter: starting.starter.clone(),
        response: Some(response),
    };
    effects::enqueue(conn, now, &post).await?;
    Ok(Started::Open {
        run: Box::new(run),
        auto_close,
    })
}
