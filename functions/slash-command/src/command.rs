//! `POST /slack/commands`: `/coffee [pickup] [note]`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffeebuddy_shared::app::start::{Started, Starting, start_run};
use coffeebuddy_shared::db::{channels, stats};
use coffeebuddy_shared::domain::auto_close::AutoClose;
use coffeebuddy_shared::domain::command::{CoffeeCommand, Pickup, USAGE, parse_coffee_command};
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::blocks::ephemeral;
use coffeebuddy_shared::slack::payloads::SlashCommand;
use coffeebuddy_shared::slack::signature::SignedBody;
use coffeebuddy_shared::slack::stats::stats_answer;

/// Why a command got no run. Every variant is an answer the person sees.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartCoffeeError {
    /// The body is not a slash-command payload (not from Slack as we know it).
    #[error("malformed slash command payload: {0}")]
    BadPayload(String),
    /// Our side failed; the transaction rolled back, nothing changed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoResponse for StartCoffeeError {
    fn into_response(self) -> Response {
        match self {
            Self::BadPayload(reason) => {
                tracing::warn!(%reason, "refused a slash command payload");
                (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({ "error": "malformed slash command" })),
                )
                    .into_response()
            }
            // Slack shows a 500 as a cryptic "dispatch_failed"; a 200 with an
            // ephemeral apology tells the person what happened.
            Self::Unexpected(e) => {
                tracing::error!(error = format!("{e:#}"), "starting a run failed");
                Json(ephemeral(
                    "Sorry, something went wrong on our side and no run was started. Please try again in a moment.",
                ))
                .into_response()
            }
        }
    }
}

fn answer(text: impl AsRef<str>) -> Json<serde_json::Value> {
    Json(ephemeral(text.as_ref()))
}

#[tracing::instrument(name = "slash_command", skip_all, fields(channel_id, user_id))]
pub(crate) async fn handle(
    State(ctx): State<Context>,
    SignedBody(body): SignedBody,
) -> Result<Json<serde_json::Value>, StartCoffeeError> {
    let cmd =
        SlashCommand::from_form(&body).map_err(|e| StartCoffeeError::BadPayload(e.to_string()))?;
    let span = tracing::Span::current();
    span.record("channel_id", cmd.channel_id.as_ref());
    span.record("user_id", cmd.user_id.as_ref());

    let mut tx = ctx.db.begin().await.map_err(anyhow::Error::from)?;
    let channel = channels::ensure(
        &mut tx,
        cmd.channel_id.as_ref(),
        Some(cmd.team_id.as_ref()),
        &ctx.settings.channel_defaults,
    )
    .await
    .map_err(anyhow::Error::from)?;
    if !channel.enabled {
        tracing::info!("refused: channel disabled");
        return Ok(answer(
            "CoffeeBuddy has been disabled by an admin in this channel. A channel admin can turn it back on with `/coffee-admin enable`.",
        ));
    }

    let start = match parse_coffee_command(&cmd.text, ctx.clock.now(), channel.timezone) {
        Ok(CoffeeCommand::Help) => return Ok(answer(USAGE)),
        Ok(CoffeeCommand::Stats) => {
            // Read-only, answered in the ack itself: no run, no event.
            let stats = stats::channel_stats(&mut tx, cmd.channel_id.as_ref())
                .await
                .map_err(anyhow::Error::from)?;
            tx.commit().await.map_err(anyhow::Error::from)?;
            tracing::info!(runs = stats.totals.runs_closed, "answered /coffee stats");
            return Ok(answer(stats_answer(
                &stats,
                channel.retention_days,
                channel.timezone,
            )));
        }
        Ok(CoffeeCommand::Start(start)) => start,
        Err(e) => {
            tracing::info!(reason = %e, "refused: bad /coffee arguments");
            return Ok(answer(format!("{e}\n\n{USAGE}")));
        }
    };

    let starting = Starting {
        channel: &channel,
        team_id: &cmd.team_id,
        starter: &cmd.user_id,
        start: &start,
        response_url: &cmd.response_url,
    };
    let started = start_run(&mut tx, ctx.clock.now(), &ctx.event_source(), &starting)
        .await
        .map_err(anyhow::Error::from)?;
    let (run, auto_close) = match started {
        Started::Open { run, auto_close } => (run, auto_close),
        Started::AlreadyOpen { initiator } => {
            tracing::info!("refused: a run is already open");
            return Ok(answer(format!(
                "There's already a coffee run open in this channel, started by <@{initiator}>. Order from its message, or close it first."
            )));
        }
    };
    ctx.commit_and_publish(tx)
        .await
        .map_err(anyhow::Error::from)?;
    tracing::info!(run_id = %run.run_id, "run started");

    let pickup = start
        .pickup
        .map(|p| format!(" Pickup at *{}*.", p.display_in(channel.timezone)))
        .unwrap_or_default();
    let closes = match auto_close {
        AutoClose::Manual => String::new(),
        AutoClose::BeforePickup { at } => format!(
            " Orders close by themselves at *{}*.",
            Pickup::from_stored(at).display_in(channel.timezone)
        ),
        AutoClose::AtPickup { at } => format!(
            " Orders stay open until pickup (*{}*): too close for this channel's auto-close.",
            Pickup::from_stored(at).display_in(channel.timezone)
        ),
    };
    Ok(answer(format!(
        ":coffee: Coffee run started.{pickup}{closes} The run message with the *Order* button will appear in the channel in a moment."
    )))
}
