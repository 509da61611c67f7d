//! The real `coffeebuddy-local` binary as an operator runs it: it refuses a
//! broken environment naming every problem, migrates a fresh database, serves,
//! and on SIGTERM drains and exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const BIN: &str = env!("CARGO_BIN_EXE_coffeebuddy-local");

fn url_for(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("postgres")
    )
}

/// Starts the binary with exactly `env` (nothing inherited) and returns it
/// with a channel of its stdout lines.
fn start(env: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .env_clear()
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start coffeebuddy-local");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Waits for the JSON log line with `message` and returns it.
fn wait_for(
    lines: &mpsc::Receiver<String>,
    message: &str,
    seen: &mut Vec<String>,
) -> serde_json::Value {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no {message:?} log line; got:\n{}", seen.join("\n")));
        seen.push(line.clone());
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
            && json["message"] == message
        {
            return json;
        }
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the process did not exit within 15 s");
}

#[test]
fn a_broken_environment_is_refused_with_every_problem_named() {
    // Act
    let output = Command::new(BIN)
        .env_clear()
        .env("SERVICE_ENV", "prod")
        .env("SLACK_BOT_TOKEN", "__REPLACE_WITH_BOT_TOKEN__")
        .env("TICK_SECONDS", "0")
        .output()
        .unwrap();

    // Assert
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for var in [
        "SLACK_SIGNING_SECRET",
        "SLACK_BOT_TOKEN",
        "DATABASE_URL",
        "TICK_SECONDS",
    ] {
        assert!(stderr.contains(var), "{var} not named in:\n{stderr}");
    }
    assert!(
        !stderr.contains("__REPLACE_WITH_BOT_TOKEN__"),
        "the value itself is not echoed"
    );
}

#[sqlx::test(migrations = false)]
async fn it_migrates_a_fresh_database_serves_and_exits_cleanly_on_sigterm(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange
    let db_url = url_for(&opts);
    let (mut child, lines) = start(&[
        ("SERVICE_ENV", "test"),
        ("SLACK_SIGNING_SECRET", "process-test-secret"),
        ("SLACK_BOT_TOKEN", "xoxb-process-test"),
        ("DATABASE_URL", &db_url),
        ("PORT", "0"),
    ]);
    let mut seen = Vec::new();
    let listening = wait_for(&lines, "listening", &mut seen);
    let port = listening["addr"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();

    // Act: it serves, on a database it migrated itself.
    let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pool = PgPoolOptions::new().connect_with(opts).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('runs', 'audit_log')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();

    // Act: Knative stops the pod.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child);

    // Assert
    assert_eq!(ready["status"], "healthy", "{ready}");
    assert_eq!(tables, 2);
    assert_eq!(status.code(), Some(0), "a drained shutdown exits 0");
    wait_for(
        &lines,
        "SIGTERM received; draining in-flight requests",
        &mut seen,
    );
    wait_for(&lines, "stopped cleanly", &mut seen);
    let logs = seen.join("\n");
    for secret in ["process-test-secret", "xoxb-process-test"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
