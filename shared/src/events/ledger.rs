//! The idempotency ledger (`processed_events`): which consumer has applied
//! which event id. Delivery is at least once (outbox retries, Knative
//! retries, Kafka redelivery after a crash), so a handler records the id in
//! the same transaction as the effect it applies; a redelivery then finds
//! the record and does nothing, and a rolled-back attempt leaves no record.

use sqlx::PgConnection;

/// Records that `consumer` is applying `event_id` and says whether this is
/// the first time. Call it first inside the handler's transaction and skip
/// the work when it returns `false`; the record commits (or rolls back)
/// with the effect. A concurrent duplicate blocks on the row until the
/// first transaction ends, then sees `false` if that one committed.
pub async fn first_delivery(
    conn: &mut PgConnection,
    consumer: &str,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) \
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_first_delivery_is_new_and_a_redelivery_is_not(pool: PgPool) {
        let mut conn = pool.acquire().await.expect("connection");

        assert!(
            first_delivery(&mut conn, "close-run", "e-1")
                .await
                .expect("insert")
        );
        assert!(
            !first_delivery(&mut conn, "close-run", "e-1")
                .await
                .expect("insert")
        );
        // Another consumer handles the same event independently.
        assert!(
            first_delivery(&mut conn, "reminder", "e-1")
                .await
                .expect("insert")
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_rolled_back_handler_leaves_the_event_unprocessed(pool: PgPool) {
        let mut tx = pool.begin().await.expect("begin");
        assert!(
            first_delivery(&mut tx, "close-run", "e-2")
                .await
                .expect("insert")
        );
        tx.rollback().await.expect("rollback");

        let mut conn = pool.acquire().await.expect("connection");
        assert!(
            first_delivery(&mut conn, "close-run", "e-2")
                .await
                .expect("insert")
        );
    }
}
