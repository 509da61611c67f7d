//! Who may govern a channel: its named channel admins, and Slack workspace
//! admins and owners (from `users.info`). Shared by Close run and
//! `/coffee-admin`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgConnection;

use crate::db::channels;
use crate::domain::ids::UserId;
use crate::slack::client::{SlackApiError, SlackClient};

/// How long a `users.info` answer about workspace-admin rights is trusted.
/// Short: a demoted admin loses rights within a minute, and a burst of
/// clicks or commands costs one Slack call.
pub const WORKSPACE_ADMIN_TTL: Duration = Duration::from_secs(60);

/// A per-process cache of who is a workspace admin or owner.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceAdmins {
    seen: Arc<Mutex<HashMap<UserId, (bool, Instant)>>>,
}

impl WorkspaceAdmins {
    /// Whether `user` is a workspace admin or owner, asking Slack at most
    /// once per [`WORKSPACE_ADMIN_TTL`].
    pub async fn check(&self, slack: &SlackClient, user: &UserId) -> Result<bool, SlackApiError> {
        let now = Instant::now();
        if let Some((admin, at)) = self.lock().get(user)
            && now.duration_since(*at) < WORKSPACE_ADMIN_TTL
        {
            return Ok(*admin);
        }
        let admin = slack.users_info(user).await?.is_workspace_admin();
        let mut seen = self.lock();
        seen.retain(|_, (_, at)| now.duration_since(*at) < WORKSPACE_ADMIN_TTL);
        seen.insert(user.clone(), (admin, now));
        Ok(admin)
    }

    /// Whether `user` is a workspace admin, for an event handler after the
    /// ack: `Some(answer)`; `None` when Slack refused for good (the person is
    /// told their rights could not be checked); a retryable failure asks the
    /// platform to redeliver the event.
    pub async fn verdict(
        &self,
        slack: &SlackClient,
        user: &UserId,
    ) -> Result<Option<bool>, crate::events::HandleEventError> {
        match self.check(slack, user).await {
            Ok(admin) => Ok(Some(admin)),
            Err(e) if e.is_retryable() => Err(crate::events::HandleEventError::Retryable(
                anyhow::anyhow!("checking workspace-admin rights: {e}"),
            )),
            Err(e) => {
                tracing::warn!(user_id = %user, error = %e, "could not check admin rights");
                Ok(None)
            }
        }
    }

    /// What the cache knows about `user`, if it is fresh: lets a caller
    /// that must not wait on Slack (an ack) decide without asking it.
    pub fn cached(&self, user: &UserId) -> Option<bool> {
        let now = Instant::now();
        self.lock()
            .get(user)
            .filter(|(_, at)| now.duration_since(*at) < WORKSPACE_ADMIN_TTL)
            .map(|(admin, _)| *admin)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (bool, Instant)>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a permission check could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum CheckAdminError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Slack could not tell us whether the person is a workspace admin.
    #[error("cannot look the user up in Slack: {0}")]
    Slack(#[from] SlackApiError),
}

/// Whether `user` administers `channel_id`: a named channel admin, or a
/// workspace admin or owner. The database is asked first, so Slack is only
/// called for people who are not named admins.
pub async fn is_channel_admin(
    conn: &mut PgConnection,
    slack: &SlackClient,
    workspace_admins: &WorkspaceAdmins,
    channel_id: &str,
    user: &UserId,
) -> Result<bool, CheckAdminError> {
    if channels::is_channel_admin(conn, channel_id, user.as_ref()).await? {
        return Ok(true);
    }
    Ok(workspace_admins.check(slack, user).await?)
}
