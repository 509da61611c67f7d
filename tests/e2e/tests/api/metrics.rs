//! `/metrics`: the request histogram, the build info, and no secrets.

use coffeebuddy_shared::runtime::metrics::record_build_info;
use coffeebuddy_test_support::{BOT_TOKEN, SIGNING_SECRET};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use coffeebuddy_test_support::database_url;

use crate::helpers::spawn_local;

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn the_latency_histogram_counts_requests_by_route_and_secrets_never_show(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange
    let pool = PgPoolOptions::new()
        .connect_with(opts.clone())
        .await
        .unwrap();
    let db_url = database_url(&opts);
    let (app, ctx) = spawn_local(pool, &db_url, &[("METRICS_PATH", "/internal/metrics")]).await;
    record_build_info(&ctx.settings.service.name, &ctx.settings.service.version);
    let client = reqwest::Client::new();

    // Act
    for _ in 0..3 {
        client.get(app.url("/health/live")).send().await.unwrap();
    }
    client
        .get(app.url("/no/such/route?token=xoxb-leak"))
        .send()
        .await
        .unwrap();
    let response = client
        .get(app.url("/internal/metrics"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let live_count = text
        .lines()
        .find(|l| {
            l.starts_with("coffeebuddy_http_request_duration_seconds_count")
                && l.contains(r#"route="/health/live""#)
                && l.contains(r#"method="GET""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no histogram series for /health/live in:\n{text}"));
    assert!(live_count.ends_with(" 3"), "{live_count}");
    assert!(
        text.contains("coffeebuddy_http_request_duration_seconds_bucket"),
        "a histogram, not a summary"
    );
    assert!(
        text.contains(r#"route="unmatched""#),
        "unknown paths share one label"
    );
    assert!(
        text.contains(
            r#"coffeebuddy_build_info{service="coffeebuddy-test",version="0.0.0-test"} 1"#
        )
    );
    for secret in [SIGNING_SECRET, BOT_TOKEN, "xoxb-leak", db_url.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked into /metrics");
    }
}

/// The value of the unlabelled series `name`, checking its `# TYPE`.
fn process_metric(text: &str, name: &str, kind: &str) -> f64 {
    assert!(
        text.contains(&format!("# TYPE {name} {kind}\n")),
        "{name} is not a {kind} in:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn the_process_metrics_report_this_process_memory_cpu_fds_and_start(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange
    let pool = PgPoolOptions::new()
        .connect_with(opts.clone())
        .await
        .unwrap();
    let (app, _ctx) = spawn_local(pool, &database_url(&opts), &[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    // Act
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Assert: the test process itself is what they describe.
    let rss = process_metric(&text, "process_resident_memory_bytes", "gauge");
    assert!(
        (1024.0 * 1024.0..4.0 * 1024.0 * 1024.0 * 1024.0).contains(&rss),
        "{rss}"
    );
    let cpu = process_metric(&text, "process_cpu_seconds_total", "counter");
    assert!(cpu.is_finite() && cpu >= 0.0, "{cpu}");
    let open = process_metric(&text, "process_open_fds", "gauge");
    assert!(
        open >= 3.0,
        "stdin, stdout, stderr and sockets at least: {open}"
    );
    let max = process_metric(&text, "process_max_fds", "gauge");
    assert!(max >= open, "{max} < {open}");
    let start = process_metric(&text, "process_start_time_seconds", "gauge");
    assert!(
        start <= now + 1.0 && start > now - 86_400.0,
        "started at {start}, now {now}"
    );
}
