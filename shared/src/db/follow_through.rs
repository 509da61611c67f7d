//! A press of **Picked up** or **Delivered** (DESIGN §1.9) as one step for
//! the interaction handler: lock the run, check the presser is its runner
//! (`domain::follow_through::authorize`), record the first press. The caller
//! runs it in the transaction that also decides the press's Slack effects
//! (the thread message on [`Pressed::First`], the private refusal).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::runs::{self, RunStatus};
use crate::domain::follow_through::{Milestone, RefuseFollowThrough, authorize};
use crate::domain::ids::UserId;

/// What a permitted press did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressed {
    /// The first press of this button: tell the channel.
    First,
    /// Pressed before: nothing changes, nobody is told again.
    Again,
}

/// Why a press changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PressError {
    /// The run is gone (reset or retention).
    #[error("This coffee run no longer exists.")]
    RunGone,
    /// Not the runner, or no runner; the text is for the presser.
    #[error(transparent)]
    Refused(#[from] RefuseFollowThrough),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Handles `presser` pressing `milestone` on run `run_id` at `at`.
pub async fn press(
    conn: &mut PgConnection,
    run_id: Uuid,
    presser: &UserId,
    milestone: Milestone,
    at: DateTime<Utc>,
) -> Result<Pressed, PressError> {
    let run = runs::lock(&mut *conn, run_id)
        .await?
        .ok_or(PressError::RunGone)?;
    let runner = match run.status {
        RunStatus::Closed => run.runner_id.as_deref().and_then(|r| UserId::parse(r).ok()),
        RunStatus::Open | RunStatus::Closing | RunStatus::Cancelled => None,
    };
    authorize(runner.as_ref(), presser, milestone)?;
    let first = match milestone {
        Milestone::PickedUp => runs::mark_picked_up(conn, run_id, at).await?,
        Milestone::Delivered => runs::mark_delivered(conn, run_id, at).await?,
    };
    Ok(if first {
        Pressed::First
    } else {
        Pressed::Again
    })
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("valid user id")
    }

    async fn closed_run(pool: &PgPool) -> Uuid {
        sqlx::query("INSERT INTO channels (channel_id) VALUES ('C1')")
            .execute(pool)
            .await
            .unwrap();
        let run_id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO runs (run_id, channel_id, initiator_id, status, runner_id, closed_at)
             VALUES ($1, 'C1', 'U0START', 'closed', 'URUN', now())",
        )
        .bind(run_id)
        .execute(pool)
        .await
        .unwrap();
        run_id
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_runners_first_press_counts_and_a_second_changes_nothing(pool: PgPool) {
        let run_id = closed_run(&pool).await;
        let mut tx = pool.begin().await.unwrap();
        let now = Utc::now();
        for milestone in [Milestone::PickedUp, Milestone::Delivered] {
            assert_eq!(
                press(&mut tx, run_id, &user("URUN"), milestone, now)
                    .await
                    .unwrap(),
                Pressed::First
            );
            assert_eq!(
                press(&mut tx, run_id, &user("URUN"), milestone, now)
                    .await
                    .unwrap(),
                Pressed::Again
            );
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn someone_else_pressing_delivered_is_refused_and_nothing_is_recorded(pool: PgPool) {
        let run_id = closed_run(&pool).await;
        let mut conn = pool.acquire().await.unwrap();

        let err = press(
            &mut conn,
            run_id,
            &user("UOTHER"),
            Milestone::Delivered,
            Utc::now(),
        )
        .await
        .expect_err("not the runner");

        assert_eq!(
            err.to_string(),
            "Only <@URUN> (this run's runner) can mark the coffee as delivered."
        );
        let state = runs::follow_through(&mut conn, run_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.delivered_at, None);
        assert!(matches!(
            press(
                &mut conn,
                Uuid::new_v4(),
                &user("URUN"),
                Milestone::PickedUp,
                Utc::now()
            )
            .await,
            Err(PressError::RunGone)
        ));
    }
}
