//! Runs: starting, finding, closing.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::{Decode, PgConnection, Postgres, Type};
use uuid::Uuid;

use crate::domain::ids::{ChannelId, TeamId, UserId};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Taking orders.
    Open,
    /// Close was clicked; the runner is being picked.
    Closing,
    /// Closed with a runner.
    Closed,
    /// Closed without orders.
    Cancelled,
}

impl RunStatus {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closing => "closing",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "closing" => Ok(Self::Closing),
            "closed" => Ok(Self::Closed),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(format!("unknown run status `{other}`")),
        }
    }
}

impl Type<Postgres> for RunStatus {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for RunStatus {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let s = <&str as Decode<Postgres>>::decode(value)?;
        Ok(s.parse()?)
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Run {
    /// Its id (also the value of its buttons).
    pub run_id: Uuid,
    /// The channel it runs in (checked to be a Slack id when read).
    pub channel_id: ChannelId,
    /// The workspace.
    pub team_id: Option<String>,
    /// Who typed `/coffee`.
    pub initiator_id: String,
    /// Where it is in its life.
    pub status: RunStatus,
    /// When the coffee is picked up, if said.
    pub pickup_at: Option<DateTime<Utc>>,
    /// Free text, as typed.
    pub note: Option<String>,
    /// The run message's `ts`, once posted.
    pub message_ts: Option<String>,
    /// Who fetches the coffee, once closed.
    pub runner_id: Option<String>,
    /// Who clicked Close.
    pub close_requested_by: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it closed or was cancelled.
    pub closed_at: Option<DateTime<Utc>>,
    /// When an open run closes itself (DESIGN §1.10), if auto-close was on
    /// when it started.
    pub auto_close_at: Option<DateTime<Utc>>,
    /// Why the runner was picked (DESIGN §1.12), once closed.
    pub runner_why: Option<String>,
}

/// The column list every query of this module selects (a macro so the SQL stays a
/// `&'static str`, as sqlx requires).
macro_rules! run_columns {
    () => {
        "run_id, channel_id, team_id, initiator_id, status, pickup_at, note, message_ts, runner_id, close_requested_by, created_at, closed_at, auto_close_at, runner_why"
    };
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// Its id, chosen by the caller so the event can name it.
    pub run_id: Uuid,
    /// The channel.
    pub channel_id: &'a ChannelId,
    /// The workspace.
    pub team_id: Option<&'a TeamId>,
    /// Who typed `/coffee`.
    pub initiator_id: &'a UserId,
    /// Pickup time, if any.
    pub pickup_at: Option<DateTime<Utc>>,
    /// Note, if any.
    pub note: Option<&'a str>,
    /// When the run closes by itself (`domain::auto_close::auto_close_at`).
    pub auto_close_at: Option<DateTime<Utc>>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartRunError {
    /// The channel already has a run in progress.
    #[error("the channel already has a run in progress")]
    AlreadyOpen(Box<Run>),
    /// The channel's run in progress ended between the insert and the read
    /// of it: trying again starts the run.
    #[error("the channel's run in progress ended while this one started")]
    Raced,
    /// Anything else.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Inserts an open run. The one-open-run-per-channel constraint decides
/// races; the loser gets the winner's run back.
///
/// One round trip when the run starts (no savepoint: a conflict is not an
/// error, so the caller's transaction stays usable), a second read only
/// when the channel already has a run in progress.
pub async fn start(conn: &mut PgConnection, new: &NewRun<'_>) -> Result<Run, StartRunError> {
    let inserted = sqlx::query_as::<_, Run>(concat!(
        "INSERT INTO runs (run_id, channel_id, team_id, initiator_id, pickup_at, note, auto_close_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (channel_id) WHERE status IN ('open', 'closing') DO NOTHING
         RETURNING ",
        run_columns!()
    ))
    .bind(new.run_id)
    .bind(new.channel_id)
    .bind(new.team_id)
    .bind(new.initiator_id)
    .bind(new.pickup_at)
    .bind(new.note)
    .bind(new.auto_close_at)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(run) = inserted {
        return Ok(run);
    }
    match in_progress(conn, new.channel_id.as_ref()).await? {
        Some(existing) => Err(StartRunError::AlreadyOpen(Box::new(existing))),
        // It closed between our insert and this read: let the caller retry.
        None => Err(StartRunError::Raced),
    }
}

/// The channel's run in progress (open or closing), if any.
pub async fn in_progress(
    conn: &mut PgConnection,
    channel_id: &str,
) -> Result<Option<Run>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE channel_id = $1 AND status IN ('open', 'closing')"
    ))
    .bind(channel_id)
    .fetch_optional(conn)
    .await
}

/// A run by id.
pub async fn find(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<Run>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE run_id = $1"
    ))
    .bind(run_id)
    .fetch_optional(conn)
    .await
}

/// A run by id, locked for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<Run>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE run_id = $1 FOR UPDATE"
    ))
    .bind(run_id)
    .fetch_optional(conn)
    .await
}

/// Records the run message's `ts`, unless one is already recorded. Returns
/// whether this call recorded it.
pub async fn set_message_ts(
    conn: &mut PgConnection,
    run_id: Uuid,
    ts: &str,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE runs SET message_ts = $2 WHERE run_id = $1 AND message_ts IS NULL")
            .bind(run_id)
            .bind(ts)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves an open run to `closing`. Exactly one of any number of concurrent
/// callers gets the run back; the others get `None`.
pub async fn request_close(
    conn: &mut PgConnection,
    run_id: Uuid,
    requested_by: &str,
    at: DateTime<Utc>,
) -> Result<Option<Run>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE runs SET status = 'closing', close_requested_by = $2, close_requested_at = $3
         WHERE run_id = $1 AND status = 'open' RETURNING ",
        run_columns!()
    ))
    .bind(run_id)
    .bind(requested_by)
    .bind(at)
    .fetch_optional(conn)
    .await
}

/// Closes a `closing` run with its runner.
pub async fn close(
    conn: &mut PgConnection,
    run_id: Uuid,
    runner_id: &str,
    at: DateTime<Utc>,
) -> Result<Run, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE runs SET status = 'closed', runner_id = $2, closed_at = $3
         WHERE run_id = $1 AND status = 'closing' RETURNING ",
        run_columns!()
    ))
    .bind(run_id)
    .bind(runner_id)
    .bind(at)
    .fetch_one(conn)
    .await
}

/// Closes a `closing` run that had no orders.
pub async fn cancel(
    conn: &mut PgConnection,
    run_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Run, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE runs SET status = 'cancelled', closed_at = $2
         WHERE run_id = $1 AND status = 'closing' RETURNING ",
        run_columns!()
    ))
    .bind(run_id)
    .bind(at)
    .fetch_one(conn)
    .await
}

/// The runner of the channel's most recent closed run that had one, other
/// than `excluding` (DESIGN §1.4 "previous runner").
pub async fn previous_runner(
    conn: &mut PgConnection,
    channel_id: &str,
    excluding: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT runner_id FROM runs
         WHERE channel_id = $1 AND run_id <> $2 AND status = 'closed' AND runner_id IS NOT NULL
         ORDER BY closed_at DESC, created_at DESC LIMIT 1",
    )
    .bind(channel_id)
    .bind(excluding)
    .fetch_optional(conn)
    .await
}

/// Stores the "why you" line of a run's pick (DESIGN §1.12), written in the
/// transaction that closes it, for the summary to show.
pub async fn record_runner_why(
    conn: &mut PgConnection,
    run_id: Uuid,
    line: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE runs SET runner_why = $2 WHERE run_id = $1")
        .bind(run_id)
        .bind(line)
        .execute(conn)
        .await?;
    Ok(())
}

/// The "why you" line of a closed run, if one was recorded.
pub async fn runner_why(
    conn: &mut PgConnection,
    run_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT runner_why FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

/// Stores when an open run closes by itself (DESIGN §1.10), as decided by
/// `domain::auto_close::auto_close_at` when it started; `None` clears it.
pub async fn set_auto_close_at(
    conn: &mut PgConnection,
    run_id: Uuid,
    at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE runs SET auto_close_at = $2 WHERE run_id = $1 AND status = 'open'")
        .bind(run_id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Open runs whose auto-close time has come by `now`, oldest due first, at
/// most `limit` (the tick closes them as if their starter pressed Close).
pub async fn due_auto_close(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Run>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE status = 'open' AND auto_close_at <= $1 ORDER BY auto_close_at LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A closed run's follow-through (DESIGN §1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct FollowThrough {
    /// The runner's first **Picked up**.
    pub picked_up_at: Option<DateTime<Utc>>,
    /// The runner's first **Delivered**.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A run's follow-through, if the run exists.
pub async fn follow_through(
    conn: &mut PgConnection,
    run_id: Uuid,
) -> Result<Option<FollowThrough>, sqlx::Error> {
    sqlx::query_as("SELECT picked_up_at, delivered_at FROM runs WHERE run_id = $1")
        .bind(run_id)
        .fetch_optional(conn)
        .await
}

/// Records the runner's **Picked up** at `at` on a closed run, unless it was
/// recorded before. Returns whether this press was the first (and so the
/// one to tell the channel about). Check who pressed first
/// (`domain::follow_through::authorize`).
pub async fn mark_picked_up(
    conn: &mut PgConnection,
    run_id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE runs SET picked_up_at = $2
         WHERE run_id = $1 AND status = 'closed' AND picked_up_at IS NULL",
    )
    .bind(run_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the runner's **Delivered** at `at` on a closed run, unless it was
/// recorded before; delivered implies picked up, so a missing pickup time
/// is filled in too. Returns whether this press was the first.
pub async fn mark_delivered(
    conn: &mut PgConnection,
    run_id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE runs SET delivered_at = $2, picked_up_at = COALESCE(picked_up_at, $2)
         WHERE run_id = $1 AND status = 'closed' AND delivered_at IS NULL",
    )
    .bind(run_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, DurationRound};
    use sqlx::PgPool;

    use super::*;

    async fn run_with(pool: &PgPool, status: &str) -> Uuid {
        sqlx::query("INSERT INTO channels (channel_id) VALUES ('C1') ON CONFLICT DO NOTHING")
            .execute(pool)
            .await
            .unwrap();
        let run_id = Uuid::new_v4();
        let closed = status != "open";
        sqlx::query(
            "INSERT INTO runs (run_id, channel_id, initiator_id, status, runner_id, closed_at)
             VALUES ($1, 'C1', 'U0START', $2, $3, $4)",
        )
        .bind(run_id)
        .bind(status)
        .bind((status == "closed").then_some("URUN"))
        .bind(closed.then(Utc::now))
        .execute(pool)
        .await
        .unwrap();
        run_id
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn slack_ids_go_in_and_come_out_typed_and_a_malformed_stored_one_is_refused(
        pool: PgPool,
    ) {
        let mut conn = pool.acquire().await.unwrap();
        let channel = ChannelId::parse("C0TYPED").unwrap();
        let (team, starter) = (
            TeamId::parse("T0TEAM").unwrap(),
            UserId::parse("U0ANN").unwrap(),
        );
        sqlx::query("INSERT INTO channels (channel_id) VALUES ($1)")
            .bind(&channel)
            .execute(&mut *conn)
            .await
            .unwrap();
        let new = NewRun {
            run_id: Uuid::new_v4(),
            channel_id: &channel,
            team_id: Some(&team),
            initiator_id: &starter,
            pickup_at: None,
            note: None,
            auto_close_at: None,
        };
        start(&mut conn, &new).await.unwrap();

        let (read_channel, read_starter): (ChannelId, UserId) =
            sqlx::query_as("SELECT channel_id, initiator_id FROM runs WHERE run_id = $1")
                .bind(new.run_id)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!((read_channel, read_starter), (channel, starter));

        sqlx::query("UPDATE runs SET initiator_id = 'robert''); DROP TABLE runs;--'")
            .execute(&mut *conn)
            .await
            .unwrap();
        let tampered: Result<UserId, _> = sqlx::query_scalar("SELECT initiator_id FROM runs")
            .fetch_one(&mut *conn)
            .await;
        assert!(
            matches!(tampered, Err(sqlx::Error::ColumnDecode { .. })),
            "{tampered:?}"
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn only_the_first_picked_up_and_delivered_presses_are_recorded(pool: PgPool) {
        let run_id = run_with(&pool, "closed").await;
        let mut conn = pool.acquire().await.unwrap();
        let t0 = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();

        assert!(mark_picked_up(&mut conn, run_id, t0).await.unwrap());
        assert!(
            !mark_picked_up(&mut conn, run_id, t0 + Duration::minutes(1))
                .await
                .unwrap()
        );
        assert!(
            mark_delivered(&mut conn, run_id, t0 + Duration::minutes(5))
                .await
                .unwrap()
        );
        assert!(
            !mark_delivered(&mut conn, run_id, t0 + Duration::minutes(9))
                .await
                .unwrap()
        );

        let state = follow_through(&mut conn, run_id).await.unwrap().unwrap();
        assert_eq!(state.picked_up_at, Some(t0));
        assert_eq!(state.delivered_at, Some(t0 + Duration::minutes(5)));
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn delivered_without_picked_up_fills_in_the_pickup(pool: PgPool) {
        let run_id = run_with(&pool, "closed").await;
        let mut conn = pool.acquire().await.unwrap();
        let t0 = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
        assert!(mark_delivered(&mut conn, run_id, t0).await.unwrap());
        let state = follow_through(&mut conn, run_id).await.unwrap().unwrap();
        assert_eq!(state.picked_up_at, Some(t0));
        // And a late Picked up changes nothing.
        assert!(
            !mark_picked_up(&mut conn, run_id, t0 + Duration::minutes(1))
                .await
                .unwrap()
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn runs_that_are_not_closed_cannot_be_marked(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        for status in ["open", "cancelled"] {
            let run_id = run_with(&pool, status).await;
            assert!(
                !mark_picked_up(&mut conn, run_id, Utc::now()).await.unwrap(),
                "{status}"
            );
            assert!(
                !mark_delivered(&mut conn, run_id, Utc::now()).await.unwrap(),
                "{status}"
            );
            if status == "open" {
                // Open runs close themselves only through auto_close_at.
                set_auto_close_at(&mut conn, run_id, Some(Utc::now() - Duration::seconds(1)))
                    .await
                    .unwrap();
                let due = due_auto_close(&mut conn, Utc::now(), 10).await.unwrap();
                assert_eq!(
                    due.iter().map(|r| r.run_id).collect::<Vec<_>>(),
                    vec![run_id]
                );
            }
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_why_line_is_kept_with_the_run(pool: PgPool) {
        let run_id = run_with(&pool, "closed").await;
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(runner_why(&mut conn, run_id).await.unwrap(), None);
        record_runner_why(&mut conn, run_id, "Why <@URUN>: because …")
            .await
            .unwrap();
        assert_eq!(
            runner_why(&mut conn, run_id).await.unwrap().as_deref(),
            Some("Why <@URUN>: because …")
        );
    }
}
