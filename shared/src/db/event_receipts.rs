//! The Events API's retry ledger (DESIGN §1.14): Slack event ids already
//! received. Slack redelivers an event it thinks we missed (with
//! `X-Slack-Retry-Num`); recording the id in the transaction that acts on
//! the event makes a retry change nothing twice.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Records that `event_id` (of type `event_type`) arrived. Returns whether
/// this was its first delivery; `false` means a retry, to be ignored.
pub async fn record(
    conn: &mut PgConnection,
    event_id: &str,
    event_type: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO slack_event_receipts (event_id, event_type) VALUES ($1, $2)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(event_type)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Drops receipts older than `before` (Slack retries within minutes; the
/// daily retention pass keeps a week).
pub async fn purge(conn: &mut PgConnection, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM slack_event_receipts WHERE received_at < $1")
            .bind(before)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn an_event_is_first_once_and_a_retry_is_not(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        assert!(record(&mut conn, "Ev1", "app_home_opened").await.unwrap());
        assert!(!record(&mut conn, "Ev1", "app_home_opened").await.unwrap());
        assert!(record(&mut conn, "Ev2", "app_home_opened").await.unwrap());
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_rolled_back_receipt_lets_the_retry_act(pool: PgPool) {
        let mut tx = pool.begin().await.unwrap();
        assert!(record(&mut tx, "Ev1", "app_home_opened").await.unwrap());
        tx.rollback().await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        assert!(record(&mut conn, "Ev1", "app_home_opened").await.unwrap());
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn old_receipts_are_purged(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        record(&mut conn, "Ev1", "x").await.unwrap();
        let later = Utc::now() + chrono::Duration::minutes(1);
        assert_eq!(purge(&mut conn, later).await.unwrap(), 1);
        assert!(record(&mut conn, "Ev1", "x").await.unwrap());
    }
}
