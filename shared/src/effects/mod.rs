//! Slack effects as data (DESIGN §5, STYLE rule 18): what a state change
//! wants Slack to show, written as rows in the change's own transaction and
//! carried out later by the effect worker ([`crate::app::worker`]).
//!
//! # Layout
//! - this module: [`Effect`] (every kind, with its payload), its lane and
//!   deadline, and [`enqueue`];
//! - [`store`]: the worker's claims and outcome records, and the
//!   dead-letter table.
//!
//! An effect names *what* to show, never the rendered message: the worker
//! renders it from the current state at send time, so a late or repeated
//! effect can never show an older view.

pub mod store;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::follow_through::Milestone;
use crate::domain::ids::{ChannelId, UserId};

/// How long an effect is retried before it is given up and parked in the
/// dead-letter table (and the people concerned are told where that helps).
/// An hour covers every Slack incident of the last years' status history
/// that did not need a human, and a coffee run is over by then anyway.
pub const EFFECT_DEADLINE: Duration = Duration::hours(1);

/// One thing CoffeeBuddy wants Slack to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// Post the run message (once) and remember its `ts`. If Slack refuses
    /// for good (bot not in the channel), the run is cancelled and its
    /// starter told privately.
    PostRunMessage {
        /// The run.
        run_id: Uuid,
        /// The channel.
        channel_id: ChannelId,
        /// Who typed `/coffee`.
        starter: UserId,
        /// Where the `/coffee` response URL is kept ([`crate::app::responses`]).
        response: Option<Uuid>,
    },
    /// Show the run's current state on its message.
    UpdateRunMessage {
        /// The run.
        run_id: Uuid,
        /// The channel.
        channel_id: ChannelId,
    },
    /// The channel summary of a closed run, continued in its thread when
    /// it does not fit one message.
    PostSummary {
        /// The run.
        run_id: Uuid,
        /// The channel.
        channel_id: ChannelId,
    },
    /// "Cancelled: no orders" in the channel, when the run has no message
    /// to show it on.
    PostCancelled {
        /// The run.
        run_id: Uuid,
        /// The channel.
        channel_id: ChannelId,
    },
    /// The runner's DM with every order (in as many messages as it takes).
    DmRunner {
        /// The run.
        run_id: Uuid,
        /// The channel the run is in.
        channel_id: ChannelId,
        /// The runner.
        user: UserId,
    },
    /// A participant's DM naming the runner.
    DmParticipant {
        /// The run.
        run_id: Uuid,
        /// The channel the run is in.
        channel_id: ChannelId,
        /// The participant.
        user: UserId,
    },
    /// The runner's pickup reminder.
    DmReminder {
        /// The run.
        run_id: Uuid,
        /// The channel the run is in.
        channel_id: ChannelId,
        /// The runner.
        user: UserId,
    },
    /// The channel hears that its coffee was picked up or delivered: a reply
    /// in the summary's thread (in the channel when there is no summary).
    AnnounceMilestone {
        /// The run.
        run_id: Uuid,
        /// The channel.
        channel_id: ChannelId,
        /// Which button the runner pressed first.
        milestone: Milestone,
    },
    /// Publish a person's App Home tab (`views.publish`), rendered at send
    /// time.
    PublishHome {
        /// Whose Home tab.
        user: UserId,
    },
    /// A private answer to one person: through the `response_url` of their
    /// request while it lives, else `chat.postEphemeral`.
    Ephemeral {
        /// Where the person is.
        channel_id: ChannelId,
        /// Who sees it.
        user: UserId,
        /// Our mrkdwn text (user text in it already escaped).
        text: String,
        /// Where the request's response URL is kept, if it had one.
        response: Option<Uuid>,
    },
}

/// The kind names as stored in `effects.kind` (the serde tag).
impl Effect {
    /// The stored kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PostRunMessage { .. } => "post_run_message",
            Self::UpdateRunMessage { .. } => "update_run_message",
            Self::PostSummary { .. } => "post_summary",
            Self::PostCancelled { .. } => "post_cancelled",
            Self::DmRunner { .. } => "dm_runner",
            Self::DmParticipant { .. } => "dm_participant",
            Self::DmReminder { .. } => "dm_reminder",
            Self::AnnounceMilestone { .. } => "announce_milestone",
            Self::PublishHome { .. } => "publish_home",
            Self::Ephemeral { .. } => "ephemeral",
        }
    }

    /// The conversation the effect writes into: effects of one lane are
    /// carried out one at a time, in order; lanes run in parallel.
    pub fn lane(&self) -> String {
        match self {
            Self::PostRunMessage { channel_id, .. }
            | Self::UpdateRunMessage { channel_id, .. }
            | Self::PostSummary { channel_id, .. }
            | Self::PostCancelled { channel_id, .. }
            | Self::AnnounceMilestone { channel_id, .. } => channel_id.to_string(),
            Self::PublishHome { user } => format!("home:{user}"),
            Self::DmRunner { user, .. }
            | Self::DmParticipant { user, .. }
            | Self::DmReminder { user, .. } => format!("dm:{user}"),
            Self::Ephemeral {
                channel_id, user, ..
            } => format!("eph:{channel_id}:{user}"),
        }
    }

    /// The channel the effect is about (none for an App Home).
    pub fn channel_id(&self) -> Option<&ChannelId> {
        match self {
            Self::PostRunMessage { channel_id, .. }
            | Self::UpdateRunMessage { channel_id, .. }
            | Self::PostSummary { channel_id, .. }
            | Self::PostCancelled { channel_id, .. }
            | Self::DmRunner { channel_id, .. }
            | Self::DmParticipant { channel_id, .. }
            | Self::DmReminder { channel_id, .. }
            | Self::AnnounceMilestone { channel_id, .. }
            | Self::Ephemeral { channel_id, .. } => Some(channel_id),
            Self::PublishHome { .. } => None,
        }
    }

    /// The run the effect is about, if any.
    pub fn run_id(&self) -> Option<Uuid> {
        match self {
            Self::PostRunMessage { run_id, .. }
            | Self::UpdateRunMessage { run_id, .. }
            | Self::PostSummary { run_id, .. }
            | Self::PostCancelled { run_id, .. }
            | Self::DmRunner { run_id, .. }
            | Self::DmParticipant { run_id, .. }
            | Self::DmReminder { run_id, .. }
            | Self::AnnounceMilestone { run_id, .. } => Some(*run_id),
            Self::Ephemeral { .. } | Self::PublishHome { .. } => None,
        }
    }

    /// Whether sending it twice would show people something twice. Updates
    /// re-render the current state, so repeating one is harmless; every
    /// post must be reconciled before it is sent again.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Self::UpdateRunMessage { .. } | Self::PublishHome { .. }
        )
    }
}

/// Writes `effect` inside the caller's transaction, due at `now`: it
/// commits (or not) with the state change that causes it. A refresh of a
/// run message already waiting is not queued twice (it renders the state at
/// send time anyway). Returns the effect id (`None` when merged into a
/// waiting refresh). The row carries the current trace context, if any
/// ([`crate::trace`]): the worker carries the effect out inside it.
pub async fn enqueue(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    effect: &Effect,
) -> Result<Option<Uuid>, sqlx::Error> {
    enqueue_at(conn, now, now, effect).await
}

/// [`enqueue`], due at `due_at` instead of now (reminders are written when
/// due, so this is for retries and tests).
pub async fn enqueue_at(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    due_at: DateTime<Utc>,
    effect: &Effect,
) -> Result<Option<Uuid>, sqlx::Error> {
    let payload = serde_json::to_value(effect)
        .map_err(|e| sqlx::Error::Encode(format!("effect payload: {e}").into()))?;
    let trace = crate::trace::TraceColumns::current();
    sqlx::query_scalar(
        "INSERT INTO effects (effect_id, lane, channel_id, run_id, kind, payload, due_at, deadline_at, created_at, \
             traceparent, tracestate, correlation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT DO NOTHING RETURNING effect_id",
    )
    .bind(Uuid::new_v4())
    .bind(effect.lane())
    .bind(effect.channel_id())
    .bind(effect.run_id())
    .bind(effect.kind())
    .bind(payload)
    .bind(due_at)
    .bind(now + EFFECT_DEADLINE)
    .bind(now)
    .bind(trace.traceparent)
    .bind(trace.tracestate)
    .bind(trace.correlation_id)
    .fetch_optional(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (ChannelId, UserId) {
        (
            ChannelId::parse("C0CHAN").expect("channel id"),
            UserId::parse("U0ANN").expect("user id"),
        )
    }

    #[test]
    fn an_effect_round_trips_through_its_stored_json_and_kind() {
        let (channel_id, user) = ids();
        let effect = Effect::DmRunner {
            run_id: Uuid::nil(),
            channel_id,
            user,
        };
        let json = serde_json::to_value(&effect).expect("serialise");
        assert_eq!(json["kind"], effect.kind());
        let back: Effect = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, effect);
    }

    #[test]
    fn channel_messages_share_the_channel_lane_and_dms_get_one_per_person() {
        let (channel_id, user) = ids();
        let run_id = Uuid::nil();
        let update = Effect::UpdateRunMessage {
            run_id,
            channel_id: channel_id.clone(),
        };
        let summary = Effect::PostSummary {
            run_id,
            channel_id: channel_id.clone(),
        };
        let dm = Effect::DmParticipant {
            run_id,
            channel_id: channel_id.clone(),
            user: user.clone(),
        };
        let reminder = Effect::DmReminder {
            run_id,
            channel_id,
            user,
        };
        assert_eq!(update.lane(), summary.lane());
        assert_eq!(update.lane(), "C0CHAN");
        assert_eq!(dm.lane(), "dm:U0ANN");
        assert_eq!(dm.lane(), reminder.lane());
        assert!(update.is_idempotent());
        assert!(!summary.is_idempotent() && !dm.is_idempotent());
    }
}
