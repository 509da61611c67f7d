//! `POST /slack/admin`: `/coffee-admin <subcommand>`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloudevents::{AttributesReader as _, Event};
use coffeebuddy_shared::app::administer::{Administered, Administering, administer};
use coffeebuddy_shared::app::responses;
use coffeebuddy_shared::db::channels::{self, ChannelConfig};
use coffeebuddy_shared::domain::admin::{ADMIN_USAGE, AdminCommand, parse_admin_command};
use coffeebuddy_shared::domain::ids::{ChannelId, UserId};
use coffeebuddy_shared::effects::Effect;
use coffeebuddy_shared::events::{
    AdminCommandRequested, HandleEventError, decode_data, first_delivery,
};
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::blocks::ephemeral;
use coffeebuddy_shared::slack::payloads::SlashCommand;
use coffeebuddy_shared::slack::signature::SignedBody;

/// Why an admin command failed on our side.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdministerError {
    /// Not a slash-command payload.
    #[error("malformed slash command payload: {0}")]
    BadPayload(String),
    /// Our side failed; the transaction rolled back, nothing changed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AdministerError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

impl IntoResponse for AdministerError {
    fn into_response(self) -> Response {
        match self {
            Self::BadPayload(reason) => {
                tracing::warn!(%reason, "refused an admin command payload");
                (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({ "error": "malformed slash command" })),
                )
                    .into_response()
            }
            Self::Unexpected(e) => {
                tracing::error!(error = format!("{e:#}"), "admin command failed");
                Json(ephemeral("Sorry, something went wrong on our side and nothing was changed. Please try again."))
                    .into_response()
            }
        }
    }
}

fn answer(text: impl AsRef<str>) -> Json<serde_json::Value> {
    Json(ephemeral(text.as_ref()))
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn describe(config: &ChannelConfig, admins: &[String]) -> String {
    let admins = if admins.is_empty() {
        "none named (workspace admins can name some)".to_owned()
    } else {
        admins
            .iter()
            .map(|a| format!("<@{a}>"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let auto_close = match config.auto_close_minutes {
        Some(m) => format!("{} min before pickup (runs with a pickup time)", m.get()),
        None => "off (runs close by hand)".to_owned(),
    };
    format!(
        "*CoffeeBuddy in this channel*\n• `/coffee`: {}\n• Reminders: {}, {} min before pickup\n• Auto-close: {auto_close}\n• Retention: {} days\n• Time zone: {}\n• Channel admins: {admins}",
        if config.enabled {
            "enabled"
        } else {
            "disabled"
        },
        on_off(config.reminders_enabled),
        config.reminder_offset_minutes,
        config.retention_days,
        config.timezone.name(),
    )
}

#[tracing::instrument(
    name = "coffee_admin",
    skip_all,
    fields(channel_id, user_id, subcommand)
)]
pub(crate) async fn handle(
    State(ctx): State<Context>,
    SignedBody(body): SignedBody,
) -> Result<Json<serde_json::Value>, AdministerError> {
    let cmd =
        SlashCommand::from_form(&body).map_err(|e| AdministerError::BadPayload(e.to_string()))?;
    let span = tracing::Span::current();
    span.record("channel_id", cmd.channel_id.as_ref());
    span.record("user_id", cmd.user_id.as_ref());
    let command = match parse_admin_command(&cmd.text) {
        Ok(command) => command,
        Err(e) => return Ok(answer(format!("{e}\n\n{ADMIN_USAGE}"))),
    };
    span.record("subcommand", command.to_string());
    let channel = cmd.channel_id.as_ref();
    let actor = &cmd.user_id;

    let mut tx = ctx.db.begin().await?;
    if !command.is_open_to_everyone()
        && !channels::is_channel_admin(&mut tx, channel, actor.as_ref()).await?
    {
        match ctx.workspace_admins.cached(actor) {
            Some(true) => {}
            Some(false) => return Ok(answer(REFUSAL)),
            None => {
                // Only Slack knows whether this person is a workspace admin,
                // and the ack must not wait for it (DESIGN §5): pass the
                // command on, and answer privately once Slack has told us.
                let response = responses::keep(&mut tx, &cmd.response_url, ctx.clock.now()).await?;
                let data = AdminCommandRequested {
                    channel_id: channel.to_owned(),
                    team_id: cmd.team_id.to_string(),
                    user_id: actor.to_string(),
                    text: cmd.text.clone(),
                    response: Some(response),
                };
                ctx.record_channel_event(&mut tx, channel, &data).await?;
                ctx.commit_and_publish(tx).await?;
                tracing::info!(subcommand = %command, "checking workspace-admin rights after the ack");
                return Ok(answer(
                    "Checking that you may change CoffeeBuddy here… the answer will appear in a moment.",
                ));
            }
        }
    }
    let reply = execute(&ctx, &mut tx, channel, cmd.team_id.as_ref(), actor, command).await?;
    ctx.commit_and_publish(tx).await?;
    tracing::info!("admin command done");
    Ok(answer(reply))
}

/// Refusal for people who are neither channel nor workspace admins.
const REFUSAL: &str = "Only channel admins and workspace admins can change CoffeeBuddy here. `/coffee-admin status` shows who the channel admins are.";

/// The consumer name in the idempotency ledger.
const CONSUMER: &str = "admin";

/// `admin.command_requested`: asks Slack whether the person is a workspace
/// admin (cached 60 s), then applies the command or refuses, answering
/// privately. A redelivered event changes and answers nothing twice.
pub(crate) async fn on_command_requested(
    ctx: &Context,
    event: &Event,
) -> Result<(), HandleEventError> {
    let data: AdminCommandRequested = decode_data(event)?;
    let (Ok(channel_id), Ok(actor)) = (
        ChannelId::parse(&data.channel_id),
        UserId::parse(&data.user_id),
    ) else {
        return Err(HandleEventError::Malformed(
            "channel_id or user_id is not a Slack id".to_owned(),
        ));
    };
    let command = parse_admin_command(&data.text)
        .map_err(|e| HandleEventError::Malformed(format!("not an admin command: {e}")))?;
    let admin = ctx.workspace_admins.verdict(&ctx.slack, &actor).await?;
    let mut tx = ctx.db.begin().await?;
    if !first_delivery(&mut tx, CONSUMER, event.id()).await? {
        return Ok(());
    }
    let reply = match admin {
        Some(true) => execute(ctx, &mut tx, channel_id.as_ref(), &data.team_id, &actor, command)
            .await
            .map_err(|e| HandleEventError::Retryable(anyhow::anyhow!("{e}")))?,
        Some(false) => {
            tracing::warn!(subcommand = %command, user_id = %actor, "refused: not a channel or workspace admin");
            REFUSAL.to_owned()
        }
        None => "Sorry, your permissions could not be checked right now, so nothing was changed. Please try again in a moment.".to_owned(),
    };
    let tell = Effect::Ephemeral {
        channel_id,
        user: actor,
        text: reply,
        response: data.response,
    };
    ctx.record_effect(&mut tx, &tell).await?;
    ctx.commit_and_publish(tx).await?;
    Ok(())
}

/// Applies an authorised `command` in `tx` (audited, with its events) and
/// returns the answer for the person.
async fn execute(
    ctx: &Context,
    tx: &mut sqlx::PgConnection,
    channel: &str,
    team: &str,
    actor: &UserId,
    command: AdminCommand,
) -> Result<String, AdministerError> {
    let who = Administering {
        channel,
        team,
        actor,
        defaults: &ctx.settings.channel_defaults,
        now: ctx.clock.now(),
        event_source: &ctx.event_source(),
    };
    Ok(reply(&administer(tx, &who, command).await?))
}

/// What the person is told.
fn reply(outcome: &Administered) -> String {
    match outcome {
        Administered::Help => ADMIN_USAGE.to_owned(),
        Administered::Status { config, admins } => describe(config, admins),
        Administered::Configured { config, admins } => {
            format!("Done.\n{}", describe(config, admins))
        }
        Administered::AdminAdded { user, added: true } => {
            format!("{} is now a channel admin.", user.mention())
        }
        Administered::AdminAdded { user, added: false } => {
            format!("{} already is a channel admin.", user.mention())
        }
        Administered::AdminRemoved {
            user,
            removed: true,
        } => format!("{} is no longer a channel admin.", user.mention()),
        Administered::AdminRemoved {
            user,
            removed: false,
        } => format!("{} was not a channel admin.", user.mention()),
        Administered::ResetAsked => "This deletes *all* of this channel's coffee runs, orders, reminders and runner counts (settings and the audit trail stay). To go ahead, type `/coffee-admin reset confirm` within 5 minutes.".to_owned(),
        Administered::ResetDone(counts) => format!(
            "Reset done: deleted {} run(s) and {} runner count(s). Fairness starts afresh.",
            counts.runs, counts.served_counts
        ),
        Administered::NothingToConfirm => "There is no reset of yours waiting to be confirmed here. Type `/coffee-admin reset` first; the confirmation must come from the same person within 5 minutes.".to_owned(),
    }
}
