//! Governing a channel (DESIGN §1.6): an authorised `/coffee-admin`
//! command applied in the caller's transaction, with its audit row and its
//! `channel.config_changed` event, returning what happened as data.
//!
//! Who may run a command is decided before (the admin function: named
//! channel admins from the database, workspace admins from Slack after the
//! ack); how the outcome is worded is the caller's.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;

use crate::config::ChannelDefaults;
use crate::db::channels::{self, ChannelConfig, ResetCounts};
use crate::domain::admin::{AdminCommand, AuditAction};
use crate::domain::ids::UserId;
use crate::events::{self, ChannelConfigChanged, NewEvent};

/// How long `reset confirm` may follow `reset`, by the same person.
pub const RESET_CONFIRM_WINDOW: Duration = Duration::minutes(5);

/// Who governs which channel, when.
#[derive(Debug, Clone, Copy)]
pub struct Administering<'a> {
    /// The channel.
    pub channel: &'a str,
    /// Its workspace.
    pub team: &'a str,
    /// Who typed the command (already authorised for it).
    pub actor: &'a UserId,
    /// Settings of a channel seen for the first time.
    pub defaults: &'a ChannelDefaults,
    /// Now.
    pub now: DateTime<Utc>,
    /// The CloudEvent source of the writer.
    pub event_source: &'a str,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub enum Administered {
    /// `help`: nothing.
    Help,
    /// `status`: the channel as it is.
    Status {
        /// Its settings.
        config: ChannelConfig,
        /// Its named admins, oldest first.
        admins: Vec<String>,
    },
    /// A setting changed (audited).
    Configured {
        /// The settings after the change.
        config: ChannelConfig,
        /// Its named admins.
        admins: Vec<String>,
    },
    /// `admins add`: whether they were added (false: already one).
    AdminAdded {
        /// Who.
        user: UserId,
        /// Whether anything changed.
        added: bool,
    },
    /// `admins remove`: whether they were removed (false: were not one).
    AdminRemoved {
        /// Who.
        user: UserId,
        /// Whether anything changed.
        removed: bool,
    },
    /// `reset`: waiting for `reset confirm` from the same person.
    ResetAsked,
    /// `reset confirm`: the channel's history is gone (audited).
    ResetDone(ResetCounts),
    /// `reset confirm` with no `reset` of this person's in the window.
    NothingToConfirm,
}

/// Applies `command` for `who` in `conn`'s transaction.
pub async fn administer(
    conn: &mut PgConnection,
    who: &Administering<'_>,
    command: AdminCommand,
) -> Result<Administered, sqlx::Error> {
    let (channel, actor) = (who.channel, who.actor.as_ref());
    Ok(match command {
        AdminCommand::Help => Administered::Help,
        AdminCommand::Status => {
            let config = match channels::find(&mut *conn, channel).await? {
                Some(config) => config,
                None => channels::ensure(&mut *conn, channel, Some(who.team), who.defaults).await?,
            };
            let admins = channels::admins(&mut *conn, channel).await?;
            Administered::Status { config, admins }
        }
        AdminCommand::Configure { action, patch } => {
            let (_, config) =
                channels::apply_patch(&mut *conn, channel, who.defaults, actor, action, &patch)
                    .await?;
            changed(conn, who, action).await?;
            let admins = channels::admins(&mut *conn, channel).await?;
            Administered::Configured { config, admins }
        }
        AdminCommand::AddAdmin(user) => {
            let added =
                channels::add_admin(&mut *conn, channel, who.defaults, actor, user.as_ref())
                    .await?;
            if added {
                changed(conn, who, AuditAction::AdminsAdd).await?;
            }
            Administered::AdminAdded { user, added }
        }
        AdminCommand::RemoveAdmin(user) => {
            let removed = channels::remove_admin(&mut *conn, channel, actor, user.as_ref()).await?;
            if removed {
                changed(conn, who, AuditAction::AdminsRemove).await?;
            }
            Administered::AdminRemoved { user, removed }
        }
        AdminCommand::Reset => {
            sqlx::query(
                "INSERT INTO pending_confirmations (channel_id, action, requested_by, requested_at) VALUES ($1, 'reset', $2, $3)
                 ON CONFLICT (channel_id, action) DO UPDATE SET requested_by = EXCLUDED.requested_by, requested_at = EXCLUDED.requested_at",
            )
            .bind(channel)
            .bind(actor)
            .bind(who.now)
            .execute(&mut *conn)
            .await?;
            Administered::ResetAsked
        }
        AdminCommand::ResetConfirm => {
            // Taking the pending reset and checking it are one statement:
            // two confirmations at once cannot both go ahead.
            let confirmed = sqlx::query(
                "DELETE FROM pending_confirmations
                 WHERE channel_id = $1 AND action = 'reset' AND requested_by = $2 AND requested_at >= $3",
            )
            .bind(channel)
            .bind(actor)
            .bind(who.now - RESET_CONFIRM_WINDOW)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                == 1;
            if confirmed {
                let counts = channels::reset(&mut *conn, channel, actor).await?;
                changed(conn, who, AuditAction::Reset).await?;
                Administered::ResetDone(counts)
            } else {
                Administered::NothingToConfirm
            }
        }
    })
}

/// Writes `channel.config_changed` for an audited change.
async fn changed(
    conn: &mut PgConnection,
    who: &Administering<'_>,
    action: AuditAction,
) -> Result<(), sqlx::Error> {
    let data = ChannelConfigChanged {
        channel_id: who.channel.to_owned(),
        actor: who.actor.to_string(),
        action: action.to_string(),
    };
    events::enqueue(
        conn,
        who.event_source,
        NewEvent::new(who.channel, None, &data),
    )
    .await?;
    Ok(())
}
