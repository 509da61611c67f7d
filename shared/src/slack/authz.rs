//! Who may govern a channel: its named channel admins, and Slack workspace
//! admins and owners (from `users.info`). Shared by Close run and
//! `/coffee-admin`.

use sqlx::PgConnection;

use crate::db::channels;
use crate::domain::ids::UserId;
use crate::slack::client::{SlackApiError, SlackClient};

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
    channel_id: &str,
    user: &UserId,
) -> Result<bool, CheckAdminError> {
    if channels::is_channel_admin(conn, channel_id, user.as_ref()).await? {
        return Ok(true);
    }
    Ok(slack.users_info(user).await?.is_workspace_admin())
}
