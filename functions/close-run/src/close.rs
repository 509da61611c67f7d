//! `run.close_requested` → runner, summary, DMs.

use axum::Router;
use coffeebuddy_shared::db::{effects, orders, runs};
use coffeebuddy_shared::domain::fairness::{Candidate, select_runner};
use coffeebuddy_shared::domain::ids::{ChannelId, UserId};
use coffeebuddy_shared::events::intake::EventRoutes;
use coffeebuddy_shared::events::{
    self, HandleEventError, RunCloseRequested, RunClosed, decode_data,
};
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::blocks::{self, OutgoingMessage, RunView};
use coffeebuddy_shared::slack::run_view;
use uuid::Uuid;

pub(crate) fn routes(ctx: &Context) -> Router {
    let ctx = ctx.clone();
    EventRoutes::new("close-run")
        .on(events::RUN_CLOSE_REQUESTED, move |event| {
            let ctx = ctx.clone();
            async move {
                let data: RunCloseRequested = decode_data(&event)?;
                close(&ctx, data.run_id).await?;
                announce(&ctx, data.run_id).await
            }
        })
        .into_router()
}

/// Step 1: decide the outcome, exactly once.
async fn close(ctx: &Context, run_id: Uuid) -> Result<(), HandleEventError> {
    let mut tx = ctx.db.begin().await?;
    let Some(run) = runs::lock(&mut tx, run_id).await? else {
        return Ok(()); // reset away before we got to it
    };
    if run.status != runs::RunStatus::Closing {
        return Ok(()); // already decided by an earlier delivery
    }
    let now = ctx.clock.now();
    let standings = orders::standings(&mut tx, run_id, &run.channel_id).await?;
    let candidates: Vec<Candidate> = standings
        .iter()
        .filter_map(|s| {
            Some(Candidate {
                user_id: UserId::parse(&s.user_id).ok()?,
                runs_served_count: s.runs_served_count,
                last_served_at: s.last_served_at,
                runner_again_opt_in: s.runner_opt_in,
            })
        })
        .collect();
    let previous = runs::previous_runner(&mut tx, &run.channel_id, run_id)
        .await?
        .and_then(|p| UserId::parse(&p).ok());
    let closed = match select_runner(&candidates, previous.as_ref(), run_id) {
        Some(pick) => {
            let runner = &pick.runner;
            orders::record_served(&mut tx, &run.channel_id, runner.as_ref(), now).await?;
            runs::record_runner_why(&mut tx, run_id, &pick.why.line(runner)).await?;
            runs::close(&mut tx, run_id, runner.as_ref(), now).await?
        }
        None => runs::cancel(&mut tx, run_id, now).await?,
    };
    let data = RunClosed {
        run_id,
        channel_id: closed.channel_id.clone(),
        runner_id: closed.runner_id.clone(),
        cancelled: closed.status == runs::RunStatus::Cancelled,
    };
    ctx.record_event(
        &mut tx,
        events::RUN_CLOSED,
        &closed.channel_id,
        run_id,
        &data,
    )
    .await?;
    ctx.commit_and_publish(tx).await?;
    tracing::info!(%run_id, runner = ?closed.runner_id, participants = candidates.len(), previous_runner = ?previous, "run closed");
    Ok(())
}

/// One Slack effect of a closed run.
enum Effect {
    /// Show the outcome on the run message.
    UpdateRunMessage { channel: ChannelId, ts: String },
    /// A new message in the channel or a DM (channel = user id).
    Post {
        to: String,
        message: OutgoingMessage,
    },
}

fn planned_effects(run: &runs::Run, view: &RunView) -> Vec<(String, Effect)> {
    let mut planned = Vec::new();
    if let Some(ts) = &run.message_ts {
        planned.push((
            "run_message".to_owned(),
            Effect::UpdateRunMessage {
                channel: view.channel_id.clone(),
                ts: ts.clone(),
            },
        ));
    }
    match &view.runner {
        None => {
            // Nobody ordered. Without a run message to update, say it in a new one.
            if run.message_ts.is_none() {
                planned.push((
                    "cancelled".to_owned(),
                    Effect::Post {
                        to: run.channel_id.clone(),
                        message: blocks::cancelled_message(view),
                    },
                ));
            }
        }
        Some(runner) => {
            planned.push((
                "summary".to_owned(),
                Effect::Post {
                    to: run.channel_id.clone(),
                    message: blocks::summary_message(view),
                },
            ));
            planned.push((
                format!("dm:{runner}"),
                Effect::Post {
                    to: runner.to_string(),
                    message: blocks::runner_dm(view),
                },
            ));
            for order in view.orders.iter().filter(|o| &o.user != runner) {
                planned.push((
                    format!("dm:{}", order.user),
                    Effect::Post {
                        to: order.user.to_string(),
                        message: blocks::participant_dm(view, &order.user),
                    },
                ));
            }
        }
    }
    planned
}

/// Step 2: every Slack effect of the outcome, each at most once.
async fn announce(ctx: &Context, run_id: Uuid) -> Result<(), HandleEventError> {
    // The lock lives as long as this transaction; the ledger writes go
    // through the pool so each effect is recorded the moment it happened,
    // even if a later one fails.
    let mut lock = ctx.db.begin().await?;
    effects::lock_run_effects(&mut lock, run_id).await?;
    let mut conn = ctx.db.acquire().await?;
    let Some(run) = runs::find(&mut conn, run_id).await? else {
        return Ok(());
    };
    if !matches!(
        run.status,
        runs::RunStatus::Closed | runs::RunStatus::Cancelled
    ) {
        return Ok(());
    }
    let view = run_view::load(&mut conn, &run).await?;
    for (key, effect) in planned_effects(&run, &view) {
        if effects::done(&mut conn, run_id, &key).await? {
            continue;
        }
        let outcome = match &effect {
            Effect::UpdateRunMessage { channel, ts } => {
                ctx.slack
                    .update_message(channel, ts, &blocks::run_message(&view))
                    .await
            }
            Effect::Post { to, message } => ctx.slack.post_message(to, message).await.map(|_| ()),
        };
        match outcome {
            Ok(()) => effects::record(&mut conn, run_id, &key).await?,
            Err(e) if e.is_retryable() => {
                // Stop here; the redelivery resumes with what is missing.
                return Err(HandleEventError::Retryable(anyhow::anyhow!(
                    "Slack effect {key}: {e}"
                )));
            }
            Err(e) => {
                // Retrying `user_not_found` forever helps nobody: record it
                // as settled and say so in the logs.
                tracing::error!(%run_id, effect = %key, error = %e, "Slack effect failed permanently");
                effects::record(&mut conn, run_id, &key).await?;
            }
        }
    }
    lock.commit().await?;
    Ok(())
}
