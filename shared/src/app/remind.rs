//! The runner's pickup reminder (DESIGN §1.5): scheduled once when a run
//! closes with a runner and a pickup time, sent once at its due time.
//!
//! Sending is one transaction (the caller's): claim the row (`FOR UPDATE
//! SKIP LOCKED`, still `pending`), re-check the run and the channel, then
//! mark it `sent`, write `reminder.sent` and the DM as an effect (DESIGN
//! §5). Two replicas ticking together, or a tick and a `run.closed`
//! handler, never both get the lock on a pending row, and once the row is
//! `sent` nobody claims it again. No Slack call happens here: the effect
//! worker sends the DM after the commit, exactly once.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::run_view;
use crate::db::{channels, reminders, runs};
use crate::domain::reminder;
use crate::effects::{self, Effect};
use crate::events::{self, NewEvent, ReminderSent};

/// What scheduling decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduled {
    /// No reminder for this run, and why (for the log).
    NotNeeded(&'static str),
    /// The run's reminder, due at `due_at`; `inserted` is false when an
    /// earlier delivery of the same close already scheduled it.
    Due {
        /// When it is due.
        due_at: DateTime<Utc>,
        /// Whether this call wrote it.
        inserted: bool,
        /// Who will be reminded.
        runner: String,
    },
}

/// Schedules the reminder of the closed run `run_id`, in `conn`'s
/// transaction: only a run that closed with a runner and has a pickup time,
/// in a channel with reminders enabled. The database, not the event, is the
/// truth: the run may have been reset away.
pub async fn schedule_reminder(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    run_id: Uuid,
) -> Result<Scheduled, sqlx::Error> {
    let Some(run) = runs::find(&mut *conn, run_id).await? else {
        return Ok(Scheduled::NotNeeded("the run no longer exists"));
    };
    let (runs::RunStatus::Closed, Some(runner), Some(pickup)) =
        (run.status, run.runner_id.clone(), run.pickup_at)
    else {
        return Ok(Scheduled::NotNeeded(
            "the run has no runner or no pickup time",
        ));
    };
    let Some(channel) = channels::find(&mut *conn, run.channel_id.as_ref())
        .await?
        .filter(|c| c.reminders_enabled)
    else {
        return Ok(Scheduled::NotNeeded("the channel has reminders disabled"));
    };
    let due_at = reminder::due_at(pickup, channel.reminder_offset_minutes);
    let inserted = reminders::schedule(
        &mut *conn,
        run_id,
        run.channel_id.as_ref(),
        &runner,
        due_at,
        now,
    )
    .await?;
    Ok(Scheduled::Due {
        due_at,
        inserted,
        runner,
    })
}

/// What became of one attempt to send a reminder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reminded {
    /// The runner's DM is decided (an effect, with `reminder.sent`).
    Sent {
        /// When it was due.
        due_at: DateTime<Utc>,
        /// When it was scheduled: it cannot be late before it existed.
        created_at: DateTime<Utc>,
        /// When it was sent.
        sent_at: DateTime<Utc>,
    },
    /// Not sent, and never will be: the row is `skipped`.
    Skipped {
        /// The `reason` label of the skipped counter.
        reason: &'static str,
        /// What `last_error` records.
        detail: String,
    },
    /// Nothing to do: already settled, gone, or held by another replica.
    NotPending,
}

/// Why a reminder could not be decided; the transaction must roll back.
#[derive(Debug, thiserror::Error)]
pub enum RemindError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored run breaks an invariant (retrying cannot fix it).
    #[error("{0}")]
    Malformed(String),
}

/// Sends the pending reminder of `run_id` at `now`, in `conn`'s transaction,
/// if it is still pending and nobody else is sending it. Re-checked at send
/// time (DESIGN §1.5): the channel may have turned reminders off, or the
/// run may be gone, since it closed.
pub async fn send_reminder(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    event_source: &str,
    run_id: Uuid,
) -> Result<Reminded, RemindError> {
    let Some(claimed) = reminders::claim(&mut *conn, run_id).await? else {
        return Ok(Reminded::NotPending);
    };
    let view = match sendable_view(&mut *conn, &claimed).await? {
        Ok(view) => view,
        Err((reason, detail)) => {
            reminders::mark_skipped(&mut *conn, run_id, &detail).await?;
            return Ok(Reminded::Skipped { reason, detail });
        }
    };
    let user = view
        .runner
        .clone()
        .ok_or_else(|| RemindError::Malformed(format!("closed run {run_id} has no runner")))?;
    if !reminders::mark_sent(&mut *conn, run_id, now).await? {
        // Cannot happen while we hold the row lock; refuse to write a second
        // `reminder.sent` rather than trust it.
        return Err(RemindError::Database(sqlx::Error::Protocol(format!(
            "reminder {run_id} left pending while claimed"
        ))));
    }
    let data = ReminderSent {
        run_id,
        channel_id: claimed.channel_id.clone(),
        runner_id: claimed.runner_id.clone(),
    };
    let event = NewEvent::new(&claimed.channel_id, Some(run_id.to_string()), &data);
    events::enqueue(&mut *conn, event_source, event).await?;
    let dm = Effect::DmReminder {
        run_id,
        channel_id: view.channel_id.clone(),
        user,
    };
    effects::enqueue(&mut *conn, now, &dm).await?;
    Ok(Reminded::Sent {
        due_at: claimed.due_at,
        created_at: claimed.created_at,
        sent_at: now,
    })
}

/// The run as the reminder shows it, or why the reminder must not go out
/// (`reason` label, detail).
async fn sendable_view(
    conn: &mut PgConnection,
    claimed: &reminders::Reminder,
) -> Result<Result<crate::slack::blocks::RunView, (&'static str, String)>, RemindError> {
    let Some(run) = runs::find(&mut *conn, claimed.run_id).await? else {
        return Ok(Err(("run_gone", "the run no longer exists".to_owned())));
    };
    if run.status != runs::RunStatus::Closed {
        return Ok(Err((
            "run_not_closed",
            format!("the run is {}", run.status),
        )));
    }
    let enabled = channels::find(&mut *conn, &claimed.channel_id)
        .await?
        .is_some_and(|c| c.reminders_enabled);
    if !enabled {
        return Ok(Err((
            "disabled",
            "the channel has reminders disabled".to_owned(),
        )));
    }
    match run_view::load(conn, &run).await {
        Ok(view) => Ok(Ok(view)),
        Err(run_view::LoadRunViewError::Malformed(m)) => Ok(Err(("invalid_run", m))),
        Err(run_view::LoadRunViewError::Database(e)) => Err(e.into()),
    }
}
