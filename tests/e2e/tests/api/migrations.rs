//! The schema: it applies to an empty database, re-applies safely (also when
//! five functions start at once), and its constraints hold the rules that
//! must survive concurrency.

use coffeebuddy_shared::db::{self, MIGRATOR};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

async fn applied(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn migrations_apply_to_an_empty_database_and_again_safely(pool: PgPool) {
    // Act
    db::migrate(&pool).await.expect("first run");
    db::migrate(&pool).await.expect("second run is a no-op");

    // Assert
    assert_eq!(applied(&pool).await, MIGRATOR.iter().count() as i64);
    // Operators' contract: runs name their channel; audit_log exists.
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND (table_name, column_name) IN
           (('runs','channel_id'), ('audit_log','actor'), ('audit_log','action'),
            ('audit_log','before'), ('audit_log','after'), ('audit_log','at'))",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(columns.len(), 6, "{columns:?}");
}

#[sqlx::test(migrations = false)]
async fn the_start_check_sees_a_current_schema_and_every_kind_of_difference(pool: PgPool) {
    // A fresh database: nothing applied, not even the table.
    assert!(!db::schema_is_current(&pool).await.unwrap());

    db::migrate_on_start(&pool, std::time::Duration::from_secs(5))
        .await
        .expect("a fresh database is migrated at start");
    assert_eq!(applied(&pool).await, MIGRATOR.iter().count() as i64);
    assert!(db::schema_is_current(&pool).await.unwrap());
    // Current: the start does nothing but the check, and succeeds.
    db::migrate_on_start(&pool, std::time::Duration::from_secs(5))
        .await
        .expect("a current schema starts");

    // A migration the code does not have yet (a newer release applied it):
    // not current, and the migrator refuses as it always did.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(!db::schema_is_current(&pool).await.unwrap());
    assert!(
        db::migrate_on_start(&pool, std::time::Duration::from_secs(5))
            .await
            .is_err()
    );
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 99990101000000")
        .execute(&pool)
        .await
        .unwrap();
    assert!(db::schema_is_current(&pool).await.unwrap());

    // An applied migration whose file changed since: not current, refused.
    sqlx::query(
        "UPDATE _sqlx_migrations SET checksum = '\\x00'
         WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(!db::schema_is_current(&pool).await.unwrap());
    let err = db::migrate_on_start(&pool, std::time::Duration::from_secs(5))
        .await
        .expect_err("a changed migration is refused");
    assert!(format!("{err:#}").contains("migrat"), "{err:#}");
}

#[sqlx::test(migrations = false)]
async fn five_functions_migrating_at_once_all_succeed(_: PgPoolOptions, opts: PgConnectOptions) {
    // Arrange: five independent pools, as five function pods would have.
    let mut pools = Vec::new();
    for _ in 0..5 {
        pools.push(
            PgPoolOptions::new()
                .max_connections(2)
                .connect_with(opts.clone())
                .await
                .unwrap(),
        );
    }

    // Act
    let runs = pools.iter().map(|p| {
        let p = p.clone();
        tokio::spawn(async move { db::migrate(&p).await })
    });
    let mut results = Vec::new();
    for run in runs {
        results.push(run.await.unwrap());
    }

    // Assert
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(applied(&pools[0]).await, MIGRATOR.iter().count() as i64);
}

async fn channel(pool: &PgPool, id: &str) {
    sqlx::query("INSERT INTO channels (channel_id) VALUES ($1)")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

async fn run(pool: &PgPool, channel: &str, status: &str) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    let closed = matches!(status, "closed" | "cancelled");
    sqlx::query(
        "INSERT INTO runs (run_id, channel_id, initiator_id, status, runner_id, closed_at)
         VALUES ($1, $2, 'U1', $3, $4, CASE WHEN $5 THEN now() END)",
    )
    .bind(id)
    .bind(channel)
    .bind(status)
    .bind((status == "closed").then_some("U1"))
    .bind(closed)
    .execute(pool)
    .await?;
    Ok(id)
}

fn violated_constraint(result: Result<impl std::fmt::Debug, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(e)) => e.constraint().unwrap_or_default().to_owned(),
        other => panic!("expected a constraint violation, got {other:?}"),
    }
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_channel_cannot_have_two_runs_in_progress(pool: PgPool) {
    // Arrange
    channel(&pool, "C1").await;
    channel(&pool, "C2").await;
    let first = run(&pool, "C1", "open").await.unwrap();

    // Act + Assert: a second open run, even a closing one, is refused.
    assert_eq!(
        violated_constraint(run(&pool, "C1", "open").await),
        "runs_one_open_per_channel"
    );
    sqlx::query("UPDATE runs SET status = 'closing' WHERE run_id = $1")
        .bind(first)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        violated_constraint(run(&pool, "C1", "open").await),
        "runs_one_open_per_channel"
    );

    // Another channel is unaffected; closed and cancelled runs do not count.
    run(&pool, "C2", "open").await.unwrap();
    sqlx::query(
        "UPDATE runs SET status = 'closed', runner_id = 'U1', closed_at = now() WHERE run_id = $1",
    )
    .bind(first)
    .execute(&pool)
    .await
    .unwrap();
    run(&pool, "C1", "cancelled").await.unwrap();
    run(&pool, "C1", "open")
        .await
        .expect("a new run after the previous one closed");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_closed_run_must_name_its_runner(pool: PgPool) {
    channel(&pool, "C1").await;
    let result = sqlx::query(
        "INSERT INTO runs (run_id, channel_id, initiator_id, status, closed_at) VALUES ($1, 'C1', 'U1', 'closed', now())",
    )
    .bind(Uuid::new_v4())
    .execute(&pool)
    .await;
    assert_eq!(violated_constraint(result), "runs_closed_has_runner");
}

async fn order(
    pool: &PgPool,
    run: Uuid,
    user: &str,
    text: &str,
    active: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO orders (order_id, run_id, user_id, order_text, active) VALUES ($1, $2, $3, $4, $5)")
        .bind(Uuid::new_v4())
        .bind(run)
        .bind(user)
        .bind(text)
        .bind(active)
        .execute(pool)
        .await
        .map(|_| ())
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_person_has_at_most_one_active_order_per_run(pool: PgPool) {
    // Arrange
    channel(&pool, "C1").await;
    let r = run(&pool, "C1", "open").await.unwrap();
    order(&pool, r, "U1", "flat white", true).await.unwrap();

    // Act + Assert
    assert_eq!(
        violated_constraint(order(&pool, r, "U1", "espresso", true).await),
        "orders_one_active_per_user"
    );
    order(&pool, r, "U1", "old order kept as history", false)
        .await
        .unwrap();
    order(&pool, r, "U2", "espresso", true).await.unwrap();
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn order_text_and_channel_settings_are_bounded(pool: PgPool) {
    channel(&pool, "C1").await;
    let r = run(&pool, "C1", "open").await.unwrap();
    assert_eq!(
        violated_constraint(order(&pool, r, "U1", &"x".repeat(151), true).await),
        "orders_order_text_check"
    );
    assert_eq!(
        violated_constraint(order(&pool, r, "U1", "", true).await),
        "orders_order_text_check"
    );
    order(&pool, r, "U1", &"☕".repeat(150), true)
        .await
        .expect("150 characters, not bytes");

    let too_late =
        sqlx::query("UPDATE channels SET reminder_offset_minutes = 61 WHERE channel_id = 'C1'")
            .execute(&pool)
            .await;
    assert_eq!(
        violated_constraint(too_late),
        "channels_reminder_offset_minutes_check"
    );
    let too_long = sqlx::query("UPDATE channels SET retention_days = 3651 WHERE channel_id = 'C1'")
        .execute(&pool)
        .await;
    assert_eq!(
        violated_constraint(too_long),
        "channels_retention_days_check"
    );
}
