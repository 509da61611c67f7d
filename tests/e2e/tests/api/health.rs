//! `/health/live` and `/health/ready` against a real Postgres that goes away
//! and comes back.

use std::net::ToSocketAddrs;

use coffeebuddy_test_support::TcpProxy;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use coffeebuddy_test_support::database_url;

use crate::helpers::spawn_local;

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn ready_is_healthy_with_the_database_up(_: PgPoolOptions, opts: PgConnectOptions) {
    // Arrange
    let pool = PgPoolOptions::new()
        .connect_with(opts.clone())
        .await
        .unwrap();
    let (app, _) = spawn_local(pool, &database_url(&opts), &[]).await;

    // Act
    let (status, body) = get_json(&app.url("/health/ready")).await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], "0.0.0-test");
    assert_eq!(body["checks"]["database"]["status"], "healthy");
    assert!(body["checks"]["database"]["latency_ms"].is_u64());
    assert!(body["checks"]["database"]["error"].is_null());
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn ready_turns_unhealthy_while_the_database_is_cut_off_and_recovers_without_restart(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange: the app reaches Postgres only through a proxy we can cut.
    let upstream = (opts.get_host(), opts.get_port())
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let proxy = TcpProxy::start(upstream).await;
    let via_proxy = opts.clone().host("127.0.0.1").port(proxy.addr.port());
    let pool = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect_lazy_with(via_proxy.clone());
    let (app, _) = spawn_local(pool, &database_url(&via_proxy), &[]).await;
    assert_eq!(get_json(&app.url("/health/ready")).await.0, 200);

    // Act: the database goes away.
    proxy.cut();
    let (status, body) = get_json(&app.url("/health/ready")).await;

    // Assert: unhealthy with a reason, but the process is alive.
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["database"]["status"], "unhealthy");
    assert!(body["checks"]["database"]["error"].is_string());
    let (live, live_body) = get_json(&app.url("/health/live")).await;
    assert_eq!((live, live_body["status"].as_str()), (200, Some("healthy")));

    // Act: it comes back.
    proxy.restore();

    // Assert: ready again, same process.
    let (status, body) = get_json(&app.url("/health/ready")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn ready_is_unhealthy_when_the_database_was_never_reachable(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange: a port nothing listens on (bound, then released).
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = opts.clone().host("127.0.0.1").port(closed_port);
    let pool = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy_with(nowhere.clone());
    let (app, _) = spawn_local(pool, &database_url(&nowhere), &[]).await;

    // Act
    let (status, body) = get_json(&app.url("/health/ready")).await;

    // Assert
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    let error = body["checks"]["database"]["error"].as_str().unwrap();
    assert!(!error.contains("postgres://"), "{error}");
}
