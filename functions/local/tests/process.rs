//! The real `coffeebuddy-local` binary as an operator runs it: it refuses a
//! broken environment naming every problem, migrates a fresh database, serves,
//! and on SIGTERM drains and exits 0; with `VAULT_*` set it takes the Slack
//! secrets from Vault (the Vault fake) and refuses to start when it cannot.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use coffeebuddy_test_support::database_url;
use coffeebuddy_test_support::vault_fake::{TokenFile, VaultCall, VaultFake};
use coffeebuddy_test_support::{BOT_TOKEN, SIGNING_SECRET, slack};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const BIN: &str = env!("CARGO_BIN_EXE_coffeebuddy-local");

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

/// The Vault fake on a runtime of its own: the test thread blocks while it
/// waits for log lines, and the fake must keep answering meanwhile.
fn vault_in_background() -> VaultFake {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the Vault fake");
        runtime.block_on(async {
            tx.send(VaultFake::start().await)
                .expect("hand the fake over");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("the Vault fake starts")
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
    let db_url = database_url(&opts);
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

#[sqlx::test(migrations = false)]
async fn with_vault_it_starts_without_slack_variables_and_verifies_with_vaults_secret(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Arrange: VAULT_* pointing at the fake, no SLACK_* at all.
    let db_url = database_url(&opts);
    let vault = vault_in_background();
    let token = TokenFile::new();
    let mut env: Vec<(&str, String)> = vault.vars(&token);
    env.extend([
        ("SERVICE_ENV", "test".to_owned()),
        ("DATABASE_URL", db_url),
        ("PORT", "0".to_owned()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut child, lines) = start(&env);
    let mut seen = Vec::new();
    let listening = wait_for(&lines, "listening", &mut seen);
    let base = format!(
        "http://127.0.0.1:{}",
        listening["addr"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
    );

    // Act
    let ready = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    let ready_status = ready.status().as_u16();
    let body = serde_urlencoded::to_string([
        ("team_id", "T0TEAM"),
        ("channel_id", "C0VAULT"),
        ("user_id", "U0ALICE"),
        ("command", "/coffee"),
        ("text", "help"),
        ("response_url", "http://127.0.0.1:9/unused"),
        ("trigger_id", "1.2.3"),
    ])
    .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{base}/slack/commands");
    let with_vaults_secret = slack::signed_form(&client, &url, SIGNING_SECRET, slack::now(), &body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let with_another_secret =
        slack::signed_form(&client, &url, "not-the-vault-secret", slack::now(), &body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child);

    // Assert
    assert_eq!(ready_status, 200);
    assert_eq!(with_vaults_secret, 200, "signed with the secret from Vault");
    assert_eq!(with_another_secret, 401);
    assert!(
        matches!(
            vault.calls().as_slice(),
            [VaultCall::Login { .. }, VaultCall::Read { .. }]
        ),
        "{:?}",
        vault.calls()
    );
    assert_eq!(status.code(), Some(0));
    wait_for(&lines, "stopped cleanly", &mut seen);
    let logs = seen.join("\n");
    assert!(logs.contains("read the secrets from Vault"), "{logs}");
    for secret in [
        SIGNING_SECRET,
        BOT_TOKEN,
        coffeebuddy_test_support::vault_fake::JWT,
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

#[test]
fn with_vault_refusing_the_read_it_refuses_to_start_naming_the_cause() {
    // Arrange: a policy without `read` on the secret.
    let vault = vault_in_background();
    vault.set_forbidden(true);
    let token = TokenFile::new();
    let mut env: Vec<(&str, String)> = vault.vars(&token);
    env.extend([
        ("SERVICE_ENV", "prod".to_owned()),
        ("DATABASE_URL", "postgres://cb@127.0.0.1:1/cb".to_owned()),
        ("SLACK_BOT_TOKEN", "xoxb-ignored-env-token".to_owned()),
    ]);

    // Act
    let output = Command::new(BIN)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();

    // Assert
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let fatal = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "fatal error")
        .unwrap_or_else(|| panic!("no fatal error line in:\n{stdout}"));
    let error = fatal["error"].as_str().unwrap();
    assert!(
        error.contains("cannot load the secrets from Vault"),
        "{error}"
    );
    assert!(error.contains("403: permission denied"), "{error}");
    assert!(error.contains("kv/data/apps/coffeebuddy"), "{error}");
    assert!(
        stdout.contains("SLACK_BOT_TOKEN") && stdout.contains("ignored"),
        "{stdout}"
    );
    for secret in [
        "xoxb-ignored-env-token",
        coffeebuddy_test_support::vault_fake::JWT,
        coffeebuddy_test_support::vault_fake::CLIENT_TOKEN,
    ] {
        assert!(!stdout.contains(secret), "{secret} leaked:\n{stdout}");
    }
}
