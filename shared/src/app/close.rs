//! Closing a run (DESIGN §1.4): the fair pick, the outcome, its
//! `run.closed` event and every Slack effect it causes, decided in the
//! caller's transaction — so a close is all or nothing, and exactly once.
//!
//! Called by the close-run function on `run.close_requested`, and by the
//! ping tick's repair for a run left in `closing`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::responses;
use crate::db::{channels, orders, runs};
use crate::domain::fairness::{Candidate, select_runner};
use crate::domain::ids::{ChannelId, UserId};
use crate::effects::{self, Effect};
use crate::events::{self, NewEvent, RunCloseRequested, RunClosed};
use crate::slack::payloads::ResponseUrl;

/// What a **Close run** click decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseRequest {
    /// The run does not exist (any more).
    Gone,
    /// The run is already closing or closed: nothing to do.
    NotOpen {
        /// Its channel, to tell the person there.
        channel_id: ChannelId,
    },
    /// `run.close_requested` is written. `authorized`: the click proved the
    /// right to close and the run is `closing`; otherwise close-run asks
    /// Slack whether the person is a workspace admin, after the ack.
    Requested {
        /// Whether the click already proved the right to close.
        authorized: bool,
    },
}

/// Whether a click closes at once, without asking Slack (pure): the
/// starter and the channel's named admins may; anyone else may only be a
/// workspace admin, which only Slack knows.
pub fn closes_at_once(starter: &str, user: &UserId, named_admin: bool) -> bool {
    starter == user.as_ref() || named_admin
}

/// A **Close run** click by `user` on `run_id`, in `conn`'s transaction:
/// locks the run, and if it is open, moves it to `closing` when the click
/// proves the right to close, and writes `run.close_requested` (with the
/// click's response URL kept for a private answer). Never calls Slack.
pub async fn request_close(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    event_source: &str,
    run_id: Uuid,
    user: &UserId,
    response_url: Option<&ResponseUrl>,
) -> Result<CloseRequest, sqlx::Error> {
    let Some(run) = runs::lock(&mut *conn, run_id).await? else {
        return Ok(CloseRequest::Gone);
    };
    let channel_id = run.channel_id.clone();
    if run.status != runs::RunStatus::Open {
        return Ok(CloseRequest::NotOpen { channel_id });
    }
    let named_admin = run.initiator_id != user.as_ref()
        && channels::is_channel_admin(&mut *conn, run.channel_id.as_ref(), user.as_ref()).await?;
    let authorized = closes_at_once(&run.initiator_id, user, named_admin);
    if authorized {
        // Cannot miss: the run is locked and open.
        runs::request_close(&mut *conn, run_id, user.as_ref(), now).await?;
    }
    let response = match response_url {
        Some(url) => Some(responses::keep(&mut *conn, url, now).await?),
        None => None,
    };
    let data = RunCloseRequested {
        run_id,
        channel_id: run.channel_id.to_string(),
        requested_by: user.to_string(),
        authorized,
        response,
    };
    let event = NewEvent::new(&run.channel_id, Some(run_id.to_string()), &data);
    events::enqueue(&mut *conn, event_source, event).await?;
    Ok(CloseRequest::Requested { authorized })
}

/// What closing a run decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Closed with this runner, among this many participants.
    WithRunner {
        /// The runner.
        runner: UserId,
        /// People with an active order.
        participants: usize,
    },
    /// Nobody ordered: cancelled.
    Cancelled,
    /// Nothing to do: the run is gone, or not `closing` (already decided).
    NotClosing,
}

/// The Slack effects of a closed run (pure): the run message shows the
/// outcome; with a runner, the channel gets the summary, the runner a DM
/// with every order and each other participant a DM naming the runner;
/// without one, a "cancelled" note (shown only if there is no run message
/// to show it on, which the worker decides at send time).
pub fn close_effects(
    run_id: Uuid,
    channel_id: &ChannelId,
    runner: Option<&UserId>,
    participants: &[UserId],
) -> Vec<Effect> {
    let channel_id = channel_id.clone();
    let mut planned = vec![Effect::UpdateRunMessage {
        run_id,
        channel_id: channel_id.clone(),
    }];
    let Some(runner) = runner else {
        planned.push(Effect::PostCancelled { run_id, channel_id });
        return planned;
    };
    planned.push(Effect::PostSummary {
        run_id,
        channel_id: channel_id.clone(),
    });
    planned.push(Effect::DmRunner {
        run_id,
        channel_id: channel_id.clone(),
        user: runner.clone(),
    });
    let mut others: Vec<&UserId> = participants.iter().filter(|u| *u != runner).collect();
    others.sort();
    others.dedup();
    planned.extend(others.into_iter().map(|user| Effect::DmParticipant {
        run_id,
        channel_id: channel_id.clone(),
        user: user.clone(),
    }));
    planned
}

/// Decides the close of `run_id` if it is `closing`: locks the run, picks
/// the runner among the participants, counts their run once, closes (or
/// cancels) the run and writes `run.closed` and the effects, all in `conn`'s
/// transaction. `event_source` is the CloudEvent source of the writer.
pub async fn decide(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    event_source: &str,
    run_id: Uuid,
) -> Result<Closed, sqlx::Error> {
    let Some(run) = runs::lock(&mut *conn, run_id).await? else {
        return Ok(Closed::NotClosing); // reset away before we got to it
    };
    if run.status != runs::RunStatus::Closing {
        return Ok(Closed::NotClosing); // already decided by an earlier delivery
    }
    let channel_id = run.channel_id.clone();
    let standings = orders::standings(&mut *conn, run_id, run.channel_id.as_ref()).await?;
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
    let previous = runs::previous_runner(&mut *conn, run.channel_id.as_ref(), run_id)
        .await?
        .and_then(|p| UserId::parse(&p).ok());
    let pick = select_runner(&candidates, previous.as_ref(), run_id);
    let closed = match &pick {
        Some(pick) => {
            let runner = &pick.runner;
            orders::record_served(&mut *conn, run.channel_id.as_ref(), runner.as_ref(), now)
                .await?;
            // "Why you" comes from the very decision (DESIGN §1.12).
            runs::record_runner_why(&mut *conn, run_id, &pick.why.line(runner)).await?;
            runs::close(&mut *conn, run_id, runner.as_ref(), now).await?
        }
        None => runs::cancel(&mut *conn, run_id, now).await?,
    };
    let runner = pick.map(|p| p.runner);
    let data = RunClosed {
        run_id,
        channel_id: closed.channel_id.to_string(),
        runner_id: closed.runner_id.clone(),
        cancelled: closed.status == runs::RunStatus::Cancelled,
    };
    let event = NewEvent::new(&closed.channel_id, Some(run_id.to_string()), &data);
    events::enqueue(&mut *conn, event_source, event).await?;
    let participants: Vec<UserId> = candidates.iter().map(|c| c.user_id.clone()).collect();
    for effect in close_effects(run_id, &channel_id, runner.as_ref(), &participants) {
        effects::enqueue(&mut *conn, now, &effect).await?;
    }
    tracing::info!(%run_id, runner = ?runner, participants = candidates.len(), previous_runner = ?previous, "run closed");
    Ok(match runner {
        Some(runner) => Closed::WithRunner {
            runner,
            participants: candidates.len(),
        },
        None => Closed::Cancelled,
    })
}

/// Auto-close (DESIGN §1.10): closes `run_id` exactly as if its starter had
/// pressed **Close run**, if it is still open: moves it to `closing` and
/// decides it in the caller's transaction.
pub async fn auto_close(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    event_source: &str,
    run_id: Uuid,
) -> Result<Closed, sqlx::Error> {
    let Some(run) = runs::lock(&mut *conn, run_id).await? else {
        return Ok(Closed::NotClosing);
    };
    if run.status != runs::RunStatus::Open {
        return Ok(Closed::NotClosing);
    }
    runs::request_close(&mut *conn, run_id, &run.initiator_id, now).await?;
    decide(conn, now, event_source, run_id).await
}

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn only_the_starter_and_named_admins_close_without_asking_slack() {
        let (ann, bob) = (
            UserId::parse("U0ANN").unwrap(),
            UserId::parse("U0BOB").unwrap(),
        );
        assert!(closes_at_once("U0ANN", &ann, false), "the starter");
        assert!(closes_at_once("U0ANN", &bob, true), "a named channel admin");
        assert!(
            !closes_at_once("U0ANN", &bob, false),
            "anyone else: Slack decides"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("user id")
    }

    #[test]
    fn a_close_with_a_runner_updates_the_message_posts_the_summary_and_dms_everyone_once() {
        let channel = ChannelId::parse("C0CHAN").expect("channel");
        let (ann, bob, cy) = (user("U0ANN"), user("U0BOB"), user("U0CY"));
        let planned = close_effects(
            Uuid::nil(),
            &channel,
            Some(&bob),
            &[ann.clone(), bob.clone(), cy.clone(), ann.clone()],
        );
        let kinds: Vec<&str> = planned.iter().map(Effect::kind).collect();
        assert_eq!(
            kinds,
            [
                "update_run_message",
                "post_summary",
                "dm_runner",
                "dm_participant",
                "dm_participant"
            ]
        );
        let dm_users: Vec<&UserId> = planned
            .iter()
            .filter_map(|e| match e {
                Effect::DmParticipant { user, .. } => Some(user),
                _ => None,
            })
            .collect();
        assert_eq!(dm_users, [&ann, &cy], "the runner is not told twice");
    }

    #[test]
    fn a_cancelled_close_sends_no_dms() {
        let channel = ChannelId::parse("C0CHAN").expect("channel");
        let planned = close_effects(Uuid::nil(), &channel, None, &[]);
        let kinds: Vec<&str> = planned.iter().map(Effect::kind).collect();
        assert_eq!(kinds, ["update_run_message", "post_cancelled"]);
    }
}
