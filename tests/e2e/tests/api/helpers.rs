//! Helpers for this test binary; cross-crate ones live in `coffeebuddy-test-support`.

use std::sync::Arc;

use coffeebuddy_shared::clock::SystemClock;
use coffeebuddy_shared::runtime::{self, Context};
use coffeebuddy_test_support::{TestServer, spawn};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

/// The `postgres://` URL for connect options (the test database's name,
/// user and address; the throwaway server trusts loopback, so no password).
pub(crate) fn url_for(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("postgres")
    )
}

/// Spawns the all-in-one `local` service exactly as `runtime::run` builds it,
/// on `pool`, with test settings (plus `extra` variables).
pub(crate) async fn spawn_local(
    pool: PgPool,
    database_url: &str,
    extra: &[(&str, &str)],
) -> (TestServer, Context) {
    let ctx = Context {
        settings: Arc::new(coffeebuddy_test_support::settings(database_url, extra)),
        db: pool,
        clock: Arc::new(SystemClock),
    };
    let service = coffeebuddy_local::service(ctx.clone()).expect("local service builds");
    let server = spawn(runtime::assemble(&ctx, service)).await;
    (server, ctx)
}
