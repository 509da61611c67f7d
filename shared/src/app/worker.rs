//! The effect worker (DESIGN §5): claims due effects, renders each from the
//! current state, calls Slack holding no database connection, lock or
//! transaction, and records the outcome in a short transaction.
//!
//! # Outcomes
//! Every Slack failure is classified ([`Failure`]):
//! - **not done** (429, connection refused, `ratelimited`): retried at
//!   `Retry-After`, or with capped exponential backoff;
//! - **in doubt** (timeout after sending, 5xx, `internal_error`, or a worker
//!   that died mid-call, seen as an expired lease): never sent blindly again.
//!   Every post carries its effect key in message `metadata`; the next
//!   attempt first reads the conversation back (`conversations.history`
//!   with `include_all_metadata`) and only posts if the message is not
//!   there. Without the history scopes the outcome is recorded as
//!   `unknown` and the post is not repeated (at most once beats twice).
//!   Updates re-render the current state, so they are simply retried;
//!   ephemerals cannot be read back and are settled as `unknown`;
//! - **permanent** (`channel_not_found`, `not_in_channel`…): settled as
//!   `failed`; a run message that can never be posted cancels its run and
//!   tells the starter privately.
//!
//! An effect still failing [`EFFECT_DEADLINE`](crate::effects::EFFECT_DEADLINE)
//! after it was written is parked in `dead_letters` (same telling for a
//! run message).
//!
//! # Scheduling
//! Work is parallel across lanes (conversations), at most
//! [`WorkerPolicy::concurrency`] calls at once per process, and in order
//! within a lane. The worker runs in the background of every process, woken
//! right after a commit that wrote effects, and sleeps until the next due
//! effect; the ping tick also drains it, so one pinged function finishes
//! anyone's effects while the others are scaled to zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::app::{home, responses, run_view};
use crate::clock::SharedClock;
use crate::db::runs;
use crate::domain::ids::{ChannelId, UserId};
use crate::effects::store::{self, Claimed, Outcome};
use crate::effects::{self, Effect};
use crate::events::{self, NewEvent, RunClosed};
use crate::slack::blocks::{self, OutgoingMessage, RunView};
use crate::slack::client::{Failure, PostOptions, RetryPolicy, SlackApiError, SlackClient};
use crate::slack::runner_dm;

/// Counter of finished effect attempts, labelled `kind` and `outcome`
/// (`done`, `retry`, `failed`, `unknown`, `dead`).
pub const EFFECTS_TOTAL: &str = "coffeebuddy_effects_total";
/// Histogram of seconds from an effect being written to being done.
pub const EFFECT_DELAY_SECONDS: &str = "coffeebuddy_effect_delay_seconds";

/// Slack error codes that mean a read-back can never work for us (missing
/// scope, not a member): the in-doubt post is settled as `unknown`.
const READ_BACK_IMPOSSIBLE: &[&str] = &[
    "missing_scope",
    "not_allowed_token_type",
    "not_in_channel",
    "channel_not_found",
    "no_permission",
];

/// How the worker paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerPolicy {
    /// How long a claim lasts: longer than any attempt (a paged post makes
    /// one call per page, each bounded by the client timeout).
    pub lease: Duration,
    /// Slack calls in flight at once per process.
    pub concurrency: usize,
    /// The first retry's wait; doubled for each further attempt.
    pub base_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long an in-doubt post waits before its read-back, so that a
    /// request Slack was still working on has finished.
    pub in_doubt_wait: Duration,
    /// Timeout of each Slack call.
    pub call_timeout: Duration,
    /// The longest the background loop sleeps without looking.
    pub idle_poll: Duration,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            concurrency: 16,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            in_doubt_wait: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            idle_poll: Duration::from_secs(30),
        }
    }
}

impl WorkerPolicy {
    /// The wait after failed attempt number `attempts` (1-based), with up
    /// to 20 % jitter so that many effects failing together do not retry in
    /// lockstep.
    fn backoff(&self, attempts: i32) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        let wait = self
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max_backoff);
        let jitter = (Uuid::new_v4().as_u128() % 200) as u32; // 0..200 ‰
        wait.saturating_add(wait.saturating_mul(jitter) / 1000)
    }
}

/// What earlier attempts of a post achieved (`effects.progress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    /// The `ts` of every page posted, in order.
    #[serde(default)]
    posted: Vec<String>,
    /// The conversation Slack reported (the `D…` id of a DM).
    #[serde(default)]
    conversation: Option<String>,
}

/// One attempt's result, before it is recorded.
#[derive(Debug)]
struct Attempt {
    outcome: Outcome,
    progress: Value,
    /// The claim was lost meanwhile (lease expired, someone else took it):
    /// record nothing.
    lost: bool,
    /// The run message's `ts`, when this attempt posted it.
    run_message_ts: Option<String>,
    /// The Slack error behind a permanent failure, for telling people.
    permanent: Option<SlackApiError>,
}

impl Attempt {
    fn done(progress: Value) -> Self {
        Self {
            outcome: Outcome::Done,
            progress,
            lost: false,
            run_message_ts: None,
            permanent: None,
        }
    }

    fn with_outcome(outcome: Outcome, progress: Value) -> Self {
        Self {
            outcome,
            ..Self::done(progress)
        }
    }
}

/// Carries out effects. Cheap to clone: clones share the wake-up signal.
#[derive(Clone)]
pub struct EffectWorker {
    db: PgPool,
    slack: SlackClient,
    clock: SharedClock,
    wake: Arc<Notify>,
    policy: WorkerPolicy,
    event_source: Arc<str>,
}

impl std::fmt::Debug for EffectWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EffectWorker")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl EffectWorker {
    /// A worker calling Slack with `slack` (one attempt per call: the
    /// worker does its own retries), writing events as `event_source`.
    pub fn new(db: PgPool, slack: &SlackClient, clock: SharedClock, event_source: &str) -> Self {
        Self::with_policy(db, slack, clock, event_source, WorkerPolicy::default())
    }

    /// [`new`](Self::new) with another pace (tests use short waits).
    pub fn with_policy(
        db: PgPool,
        slack: &SlackClient,
        clock: SharedClock,
        event_source: &str,
        policy: WorkerPolicy,
    ) -> Self {
        let slack = slack.clone().with_retry_policy(RetryPolicy {
            max_attempts: 1,
            timeout: policy.call_timeout,
            ..RetryPolicy::default()
        });
        Self {
            db,
            slack,
            clock,
            wake: Arc::new(Notify::new()),
            policy,
            event_source: Arc::from(event_source),
        }
    }

    /// Wakes the background loop: call after committing effects.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Carries out due effects until none is left, or `budget` has passed
    /// (then it stops claiming and waits for the calls in flight). Returns
    /// how many attempts finished.
    pub async fn drain(&self, budget: Duration) -> Result<usize, sqlx::Error> {
        let started = Instant::now();
        let mut running: JoinSet<()> = JoinSet::new();
        let mut finished = 0;
        loop {
            let free = self.policy.concurrency.saturating_sub(running.len());
            if free > 0 && started.elapsed() < budget {
                let claimed = store::claim(
                    &self.db,
                    self.clock.now(),
                    self.policy.lease,
                    i64::try_from(free).unwrap_or(i64::MAX),
                )
                .await?;
                for effect in claimed {
                    let this = self.clone();
                    running.spawn(async move { this.perform(effect).await });
                }
            }
            if running.join_next().await.is_none() {
                return Ok(finished);
            }
            finished += 1;
        }
    }

    /// Starts the background loop: a first drain after `first_pass_after`
    /// (or at the first [`notify`](Self::notify), if sooner), then one on
    /// every notify and when the next effect falls due (at least every
    /// [`WorkerPolicy::idle_poll`]). Runs until the handle is aborted.
    ///
    /// As with the outbox relay, the delay only postpones the pass for what
    /// an earlier process left: effects a handler writes wake it at once.
    pub fn spawn(&self, first_pass_after: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = this.wake.notified() => {}
                () = tokio::time::sleep(first_pass_after) => {}
            }
            this.background().await;
        })
    }

    async fn background(self) {
        loop {
            let this = self.clone();
            // Its own task, so a panic is contained to one pass.
            let pass = tokio::spawn(async move { this.drain(this.policy.idle_poll).await }).await;
            let mut wait = self.policy.idle_poll;
            match pass {
                Ok(Ok(_)) => {
                    if let Ok(Some(next)) = store::next_due(&self.db).await {
                        let until = (next - self.clock.now()).to_std().unwrap_or_default();
                        wait = until.clamp(Duration::from_millis(20), self.policy.idle_poll);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the effect worker cannot reach the database; retrying");
                    wait = Duration::from_secs(1);
                }
                Err(e) => {
                    tracing::error!(error = %e, "an effect worker pass panicked");
                    wait = Duration::from_secs(1);
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn perform(self, claimed: Claimed) {
        // Inside the trace of the request that wrote the effect (a new hop
        // of it): the log lines, and any event or effect the outcome writes.
        let context = claimed.trace.next_hop();
        crate::trace::scope(context, async move {
            if let Err(e) = self.try_perform(&claimed).await {
                // The claim stays in flight; when its lease expires the next
                // claim treats it as in doubt, so nothing is lost or doubled.
                tracing::warn!(effect_id = %claimed.effect_id, kind = %claimed.kind, error = %e, "could not record an effect's outcome");
            }
        })
        .await;
    }

    #[tracing::instrument(name = "effect", skip_all, fields(effect_id = %claimed.effect_id, kind = %claimed.kind, channel_id = claimed.channel_id.as_deref().unwrap_or(""), attempt = claimed.attempts))]
    async fn try_perform(&self, claimed: &Claimed) -> Result<(), sqlx::Error> {
        let Some(effect) = claimed.effect.clone() else {
            return self
                .give_up(
                    claimed,
                    None,
                    &claimed.progress,
                    "the stored effect is unreadable",
                )
                .await;
        };
        if self.clock.now() >= claimed.deadline_at {
            return self
                .give_up(
                    claimed,
                    Some(&effect),
                    &claimed.progress,
                    "the deadline passed",
                )
                .await;
        }
        let attempt = self.execute(claimed, &effect).await?;
        if attempt.lost {
            tracing::warn!(
                "lost the claim on an effect (lease expired); leaving it to its new owner"
            );
            return Ok(());
        }
        let now = self.clock.now();
        if let Outcome::Retry { due_at, error, .. } = &attempt.outcome
            && *due_at >= claimed.deadline_at
        {
            let why = format!("still failing at the deadline: {error}");
            return self
                .give_up(claimed, Some(&effect), &attempt.progress, &why)
                .await;
        }
        let mut tx = self.db.begin().await?;
        let mut wrote_effects = false;
        match (&effect, &attempt.outcome) {
            (Effect::PostRunMessage { run_id, .. }, Outcome::Done) => {
                if let Some(ts) = &attempt.run_message_ts {
                    runs::set_message_ts(&mut tx, *run_id, ts).await?;
                }
            }
            (Effect::PostRunMessage { .. }, Outcome::Failed(_)) => {
                wrote_effects = self
                    .abandon_run(&mut tx, &effect, attempt.permanent.as_ref())
                    .await?;
            }
            _ => {}
        }
        if !store::record(&mut tx, claimed, now, &attempt.progress, &attempt.outcome).await? {
            tracing::warn!("lost the claim on an effect before recording it");
            return Ok(());
        }
        tx.commit().await?;
        if wrote_effects {
            self.notify();
        }
        let label = match &attempt.outcome {
            Outcome::Done => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Unknown(_) => "unknown",
            Outcome::Retry { .. } => "retry",
        };
        metrics::counter!(EFFECTS_TOTAL, "kind" => claimed.kind.clone(), "outcome" => label)
            .increment(1);
        match &attempt.outcome {
            Outcome::Done => {
                let delay = (now - claimed.created_at).as_seconds_f64().max(0.0);
                metrics::histogram!(EFFECT_DELAY_SECONDS).record(delay);
                tracing::info!(delay_seconds = delay, "effect done");
            }
            Outcome::Retry {
                due_at,
                in_doubt,
                error,
            } => {
                tracing::warn!(%due_at, in_doubt, %error, "Slack effect failed; will retry");
            }
            Outcome::Failed(error) => {
                tracing::error!(%error, "Slack refused an effect for good; not retrying");
            }
            Outcome::Unknown(error) => {
                tracing::warn!(%error, "an effect's outcome is unknown; not repeating it");
            }
        }
        Ok(())
    }

    /// Parks the effect as dead and tells the people concerned where that
    /// helps (a run message never posted: the run is cancelled and its
    /// starter told).
    async fn give_up(
        &self,
        claimed: &Claimed,
        effect: Option<&Effect>,
        progress: &Value,
        why: &str,
    ) -> Result<(), sqlx::Error> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let mut wrote_effects = false;
        if let Some(effect @ Effect::PostRunMessage { .. }) = effect {
            wrote_effects = self.abandon_run(&mut tx, effect, None).await?;
        }
        if !store::bury(&mut tx, claimed, now, progress, why).await? {
            return Ok(());
        }
        tx.commit().await?;
        metrics::counter!(EFFECTS_TOTAL, "kind" => claimed.kind.clone(), "outcome" => "dead")
            .increment(1);
        if wrote_effects {
            self.notify();
        }
        Ok(())
    }

    /// A run whose message can never be posted: cancel it (an open run
    /// nobody can see would block the channel), write its `run.closed`, and
    /// tell the starter privately how to fix it.
    async fn abandon_run(
        &self,
        conn: &mut sqlx::PgConnection,
        effect: &Effect,
        error: Option<&SlackApiError>,
    ) -> Result<bool, sqlx::Error> {
        let Effect::PostRunMessage {
            run_id,
            channel_id,
            starter,
            response,
        } = effect
        else {
            return Ok(false);
        };
        let now = self.clock.now();
        let cancelled: Option<String> = sqlx::query_scalar(
            "UPDATE runs SET status = 'cancelled', closed_at = $2, runner_id = NULL \
             WHERE run_id = $1 AND status IN ('open', 'closing') RETURNING channel_id",
        )
        .bind(run_id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        if cancelled.is_none() {
            return Ok(false);
        }
        let data = RunClosed {
            run_id: *run_id,
            channel_id: channel_id.to_string(),
            runner_id: None,
            cancelled: true,
        };
        let event = NewEvent::new(channel_id.as_ref(), Some(run_id.to_string()), &data);
        events::enqueue(&mut *conn, &self.event_source, event).await?;
        let text = match error {
            Some(SlackApiError::Api { error, .. })
                if error == "not_in_channel" || error == "channel_not_found" =>
            {
                "I can't post in this channel, so your coffee run was cancelled. Invite me with `/invite @CoffeeBuddy` and type `/coffee` again."
            }
            Some(_) => {
                "Your coffee run was cancelled because its message could not be posted in this channel. Please try `/coffee` again; if it keeps failing, ask your Slack admin to check CoffeeBuddy's permissions."
            }
            None => {
                "Your coffee run was cancelled because Slack kept refusing to show its message. Please try `/coffee` again."
            }
        };
        let tell = Effect::Ephemeral {
            channel_id: channel_id.clone(),
            user: starter.clone(),
            text: text.to_owned(),
            response: *response,
        };
        effects::enqueue(&mut *conn, now, &tell).await?;
        tracing::error!(%run_id, error = ?error.map(ToString::to_string), "the run message cannot be posted; the run is cancelled");
        Ok(true)
    }

    /// Loads a run and its view; `None` when the run is gone.
    async fn load(&self, run_id: Uuid) -> Result<Option<(runs::Run, RunView)>, sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        let Some(run) = runs::find(&mut conn, run_id).await? else {
            return Ok(None);
        };
        match run_view::load(&mut conn, &run).await {
            Ok(view) => Ok(Some((run, view))),
            Err(run_view::LoadRunViewError::Database(e)) => Err(e),
            // A row our own code could not have written: nothing to show.
            Err(_) => Ok(None),
        }
    }

    async fn execute(&self, claimed: &Claimed, effect: &Effect) -> Result<Attempt, sqlx::Error> {
        let nothing = || Ok(Attempt::done(claimed.progress.clone()));
        match effect {
            Effect::PostRunMessage {
                run_id, channel_id, ..
            } => {
                let Some((run, view)) = self.load(*run_id).await? else {
                    return nothing();
                };
                if run.message_ts.is_some() {
                    return nothing();
                }
                let mut attempt = self
                    .post_pages(
                        claimed,
                        channel_id.as_ref(),
                        None,
                        &[blocks::run_message(&view)],
                        Thread::None,
                    )
                    .await?;
                if attempt.outcome == Outcome::Done {
                    attempt.run_message_ts = progress_of(&attempt.progress).posted.first().cloned();
                }
                Ok(attempt)
            }
            Effect::UpdateRunMessage { run_id, channel_id } => {
                let Some((run, view)) = self.load(*run_id).await? else {
                    return nothing();
                };
                // In lane order the post came first: no `ts` now means it
                // was never posted, and there is nothing to update.
                let Some(ts) = run.message_ts else {
                    return nothing();
                };
                let result = self
                    .slack
                    .update_message(channel_id, &ts, &blocks::run_message(&view))
                    .await;
                Ok(self.settle_idempotent(claimed, result.map(drop)))
            }
            Effect::PostSummary { run_id, channel_id } => {
                let Some((_, view)) = self.load(*run_id).await? else {
                    return nothing();
                };
                self.post_pages(
                    claimed,
                    channel_id.as_ref(),
                    None,
                    &blocks::summary_pages(&view),
                    Thread::UnderFirst,
                )
                .await
            }
            Effect::PostCancelled { run_id, channel_id } => {
                let Some((run, view)) = self.load(*run_id).await? else {
                    return nothing();
                };
                if run.message_ts.is_some() {
                    return nothing(); // the run message shows it
                }
                self.post_pages(
                    claimed,
                    channel_id.as_ref(),
                    None,
                    &[blocks::cancelled_message(&view)],
                    Thread::None,
                )
                .await
            }
            Effect::DmRunner { run_id, user, .. } => {
                self.dm(claimed, *run_id, user, |view| {
                    runner_dm::runner_dm_messages(view)
                })
                .await
            }
            Effect::DmParticipant { run_id, user, .. } => {
                self.dm(claimed, *run_id, user, |view| {
                    vec![blocks::participant_dm(view, user)]
                })
                .await
            }
            Effect::DmReminder { run_id, user, .. } => {
                self.dm(claimed, *run_id, user, |view| {
                    blocks::reminder_dm_pages(view)
                })
                .await
            }
            Effect::AnnounceMilestone {
                run_id,
                channel_id,
                milestone,
            } => {
                let Some((_, view)) = self.load(*run_id).await? else {
                    return nothing();
                };
                // In the summary's thread; in the channel if there is none.
                let summary: Option<String> = sqlx::query_scalar(
                    "SELECT progress -> 'posted' ->> 0 FROM effects \
                     WHERE run_id = $1 AND kind = 'post_summary' AND status = 'done'",
                )
                .bind(run_id)
                .fetch_optional(&self.db)
                .await?
                .flatten();
                let thread = summary.map_or(Thread::None, Thread::Under);
                let message = blocks::milestone_message(&view, *milestone);
                self.post_pages(claimed, channel_id.as_ref(), None, &[message], thread)
                    .await
            }
            Effect::PublishHome { user } => {
                let view = {
                    let mut conn = self.db.acquire().await?;
                    home::home_view(&mut conn, user).await?
                };
                let result = self.slack.publish_view(user, &view).await;
                Ok(self.settle_idempotent(claimed, result))
            }
            Effect::Ephemeral {
                channel_id,
                user,
                text,
                response,
            } => {
                self.answer(claimed, channel_id, user, text, *response)
                    .await
            }
        }
    }

    /// A DM to `user` about run `run_id`, rendered by `render` from the
    /// run's current view (nothing when the run is gone).
    async fn dm(
        &self,
        claimed: &Claimed,
        run_id: Uuid,
        user: &UserId,
        render: impl FnOnce(&RunView) -> Vec<OutgoingMessage>,
    ) -> Result<Attempt, sqlx::Error> {
        let Some((_, view)) = self.load(run_id).await? else {
            return Ok(Attempt::done(claimed.progress.clone()));
        };
        self.post_pages(
            claimed,
            user.as_ref(),
            Some(user),
            &render(&view),
            Thread::None,
        )
        .await
    }

    /// A private answer: the request's response URL while it lives, else
    /// `chat.postEphemeral`. Ephemerals cannot be read back, so one whose
    /// outcome is in doubt is not repeated.
    async fn answer(
        &self,
        claimed: &Claimed,
        channel_id: &ChannelId,
        user: &UserId,
        text: &str,
        response: Option<Uuid>,
    ) -> Result<Attempt, sqlx::Error> {
        let progress = claimed.progress.clone();
        if claimed.in_doubt {
            return Ok(Attempt::with_outcome(
                Outcome::Unknown(
                    "an earlier attempt may have shown it; ephemerals cannot be read back"
                        .to_owned(),
                ),
                progress,
            ));
        }
        let url = match response {
            Some(id) => {
                let mut conn = self.db.acquire().await?;
                responses::find(&mut conn, id, self.clock.now()).await?
            }
            None => None,
        };
        let result = match url {
            Some(url) => self.slack.respond(&url, &blocks::ephemeral(text)).await,
            None => {
                self.slack
                    .post_ephemeral(channel_id.as_ref(), user, text)
                    .await
            }
        };
        let outcome = match result {
            Ok(()) => Outcome::Done,
            Err(e) => match e.classify() {
                Failure::NotDone { retry_after } => self.retry(claimed, retry_after, false, &e),
                Failure::InDoubt => Outcome::Unknown(format!("{e}; not repeated")),
                Failure::Permanent => Outcome::Failed(e.to_string()),
            },
        };
        Ok(Attempt::with_outcome(outcome, progress))
    }

    /// The outcome of a call that is safe to repeat (an update).
    fn settle_idempotent(&self, claimed: &Claimed, result: Result<(), SlackApiError>) -> Attempt {
        let outcome = match result {
            Ok(()) => Outcome::Done,
            Err(e) => match e.classify() {
                Failure::NotDone { retry_after } => self.retry(claimed, retry_after, false, &e),
                Failure::InDoubt => self.retry(claimed, None, false, &e),
                Failure::Permanent => Outcome::Failed(e.to_string()),
            },
        };
        Attempt::with_outcome(outcome, claimed.progress.clone())
    }

    fn retry(
        &self,
        claimed: &Claimed,
        retry_after: Option<Duration>,
        in_doubt: bool,
        error: &SlackApiError,
    ) -> Outcome {
        let mut wait = retry_after.unwrap_or_else(|| self.policy.backoff(claimed.attempts));
        if in_doubt {
            wait = wait.max(self.policy.in_doubt_wait);
        }
        let due_at = self.clock.now()
            + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(300));
        Outcome::Retry {
            due_at,
            in_doubt,
            error: error.to_string(),
        }
    }

    /// Posts `pages` to `target` (a channel, or a user id for a DM: then
    /// `dm_user`), threaded as `thread` says. Continues after the pages
    /// earlier attempts posted, and reads back before repeating one whose
    /// outcome is in doubt.
    async fn post_pages(
        &self,
        claimed: &Claimed,
        target: &str,
        dm_user: Option<&UserId>,
        pages: &[OutgoingMessage],
        thread: Thread,
    ) -> Result<Attempt, sqlx::Error> {
        let mut progress = progress_of(&claimed.progress);
        let mut in_doubt = claimed.in_doubt;
        while progress.posted.len() < pages.len() {
            let page = progress.posted.len();
            let key = format!("{}:{page}", claimed.effect_id);
            if in_doubt {
                match self
                    .read_back(claimed, target, dm_user, &mut progress, &key)
                    .await
                {
                    Ok(Some(ts)) => {
                        tracing::info!(
                            page,
                            "an in-doubt post was found in Slack; not posting it again"
                        );
                        progress.posted.push(ts);
                        in_doubt = false;
                        if !store::save_progress(&self.db, claimed, &to_json(&progress)).await? {
                            return Ok(lost(progress));
                        }
                        continue;
                    }
                    Ok(None) => in_doubt = false,
                    Err(ReadBack::Impossible(e)) => {
                        return Ok(Attempt::with_outcome(
                            Outcome::Unknown(format!(
                                "cannot read the conversation back ({e}); not posting again"
                            )),
                            to_json(&progress),
                        ));
                    }
                    Err(ReadBack::Failed(e)) => {
                        let outcome = self.retry(claimed, None, true, &e);
                        return Ok(Attempt::with_outcome(outcome, to_json(&progress)));
                    }
                }
            }
            let options = PostOptions {
                thread_ts: match &thread {
                    Thread::None => None,
                    Thread::UnderFirst if page > 0 => progress.posted.first().cloned(),
                    Thread::UnderFirst => None,
                    Thread::Under(ts) => Some(ts.clone()),
                },
                effect_key: Some(key),
            };
            let Some(message) = pages.get(page) else {
                break;
            };
            match self
                .slack
                .post_message_with(target, message, &options)
                .await
            {
                Ok(posted) => {
                    progress.posted.push(posted.ts);
                    progress.conversation.get_or_insert(posted.channel);
                    if !store::save_progress(&self.db, claimed, &to_json(&progress)).await? {
                        return Ok(lost(progress));
                    }
                }
                Err(e) => {
                    let (outcome, permanent) = match e.classify() {
                        Failure::NotDone { retry_after } => {
                            (self.retry(claimed, retry_after, false, &e), None)
                        }
                        Failure::InDoubt => (self.retry(claimed, None, true, &e), None),
                        Failure::Permanent => (Outcome::Failed(e.to_string()), Some(e)),
                    };
                    return Ok(Attempt {
                        permanent,
                        ..Attempt::with_outcome(outcome, to_json(&progress))
                    });
                }
            }
        }
        Ok(Attempt::done(to_json(&progress)))
    }

    /// Looks for the post with effect key `key` in the conversation, from a
    /// little before the effect was written.
    async fn read_back(
        &self,
        claimed: &Claimed,
        target: &str,
        dm_user: Option<&UserId>,
        progress: &mut Progress,
        key: &str,
    ) -> Result<Option<String>, ReadBack> {
        let conversation = match (&progress.conversation, dm_user) {
            (Some(conversation), _) => conversation.clone(),
            (None, Some(user)) => {
                let dm = self.slack.open_dm(user).await.map_err(ReadBack::from)?;
                progress.conversation = Some(dm.clone());
                dm
            }
            (None, None) => target.to_owned(),
        };
        let oldest = slack_ts(claimed.created_at - chrono::Duration::seconds(10));
        self.slack
            .find_posted(&conversation, &oldest, key)
            .await
            .map_err(ReadBack::from)
    }
}

/// Where the pages of a post go.
#[derive(Debug, Clone)]
enum Thread {
    /// Each page in the conversation itself.
    None,
    /// The first page in the conversation, the others in its thread.
    UnderFirst,
    /// Every page in the thread of this message.
    Under(String),
}

/// Why a read-back did not answer.
enum ReadBack {
    /// It can never work here (no history scope, not a member).
    Impossible(SlackApiError),
    /// It may work later.
    Failed(SlackApiError),
}

impl From<SlackApiError> for ReadBack {
    fn from(e: SlackApiError) -> Self {
        match &e {
            SlackApiError::Api { error, .. } if READ_BACK_IMPOSSIBLE.contains(&error.as_str()) => {
                Self::Impossible(e)
            }
            _ => Self::Failed(e),
        }
    }
}

fn progress_of(value: &Value) -> Progress {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

fn to_json(progress: &Progress) -> Value {
    serde_json::to_value(progress).unwrap_or(Value::Null)
}

fn lost(progress: Progress) -> Attempt {
    Attempt {
        lost: true,
        ..Attempt::done(to_json(&progress))
    }
}

/// A time as a Slack message `ts` (`seconds.micros`).
fn slack_ts(at: DateTime<Utc>) -> String {
    format!("{}.{:06}", at.timestamp(), at.timestamp_subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let policy = WorkerPolicy::default();
        let first = policy.backoff(1);
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1200));
        let third = policy.backoff(3);
        assert!(third >= Duration::from_secs(4) && third <= Duration::from_millis(4800));
        let late = policy.backoff(40);
        assert!(late >= Duration::from_secs(300) && late <= Duration::from_secs(360));
    }

    #[test]
    fn a_time_becomes_a_slack_ts() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_000).expect("time");
        assert_eq!(slack_ts(at), "1700000000.123456");
    }

    #[test]
    fn progress_reads_what_earlier_attempts_stored_and_tolerates_nothing() {
        let stored = serde_json::json!({ "posted": ["1.1", "1.2"], "conversation": "D1" });
        let progress = progress_of(&stored);
        assert_eq!(progress.posted, ["1.1", "1.2"]);
        assert_eq!(progress.conversation.as_deref(), Some("D1"));
        assert_eq!(progress_of(&serde_json::json!({})), Progress::default());
    }
}
