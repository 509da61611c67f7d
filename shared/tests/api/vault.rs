use std::sync::Arc;
use std::time::Duration;

use coffeebuddy_shared::clock::SystemClock;
use coffeebuddy_shared::config::{LogFormat, LogSettings};
use coffeebuddy_shared::config::{ServiceIdentity, Settings};
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::secrets::{self, LoadSecretsError, RetryPolicy};
use coffeebuddy_shared::telemetry;
use coffeebuddy_test_support::vault_fake::{
    AUTH_MOUNT, CLIENT_TOKEN, JWT, KV_MOUNT, ROLE, SECRET_PATH, TokenFile, VaultCall, VaultFake,
};
use coffeebuddy_test_support::{BOT_TOKEN, LogCapture, SIGNING_SECRET};
use secrecy::ExposeSecret;
use serde_json::json;

const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: "vault-test",
    version: "0.0.0-test",
    requires_ory: false,
};

/// Small backoffs: the failure tests exhaust every attempt.
fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(2),
    }
}

/// Settings from exactly `vars` plus a database URL (never connected to).
fn load(env: &str, vars: &[(&'static str, String)]) -> Settings {
    let mut vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    vars.push(("SERVICE_ENV".into(), env.into()));
    vars.push(("DATABASE_URL".into(), "postgres://cb@127.0.0.1:1/cb".into()));
    Settings::from_lookup(IDENTITY, &move |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .expect("valid settings")
}

/// Settings from exactly `vars` (no database URL added).
fn load_exactly(env: &str, vars: &[(&'static str, String)]) -> Settings {
    let mut vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    vars.push(("SERVICE_ENV".into(), env.into()));
    Settings::from_lookup(IDENTITY, &move |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .expect("valid settings")
}

/// The Vault variables plus Kafka with SASL, and `extra`.
fn with_sasl_kafka(
    fake: &VaultFake,
    token: &TokenFile,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut vars = fake.vars(token);
    vars.extend([
        ("KAFKA_BROKERS", "127.0.0.1:1".to_owned()),
        ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext".to_owned()),
        ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".to_owned()),
        ("KAFKA_SASL_USERNAME", "coffeebuddy".to_owned()),
    ]);
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    vars
}

const VAULT_DATABASE_URL: &str = "postgres://cb:vault-db-password@db.internal/coffeebuddy";
const VAULT_SASL_PASSWORD: &str = "vault-kafka-password";

/// The `VAULT_*` variables with one of them replaced.
fn vars_with(
    fake: &VaultFake,
    token: &TokenFile,
    var: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    let mut vars = fake.vars(token);
    vars.retain(|(k, _)| *k != var);
    vars.push((var, value.to_owned()));
    vars
}

async fn refused(settings: Settings) -> LoadSecretsError {
    let err = secrets::resolve_with(settings, &quick())
        .await
        .expect_err("the secrets are refused");
    let text = format!("{err} {err:?}");
    for secret in [SIGNING_SECRET, BOT_TOKEN, JWT, CLIENT_TOKEN] {
        assert!(!text.contains(secret), "{secret} leaked into: {text}");
    }
    err
}

#[tokio::test]
async fn the_slack_secrets_are_read_with_the_files_jwt_the_role_and_the_login_token() {
    // Arrange: no SLACK_* variable at all.
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    let settings = load("prod", &fake.vars(&token));
    assert!(settings.secrets_pending);

    // Act
    let settings = secrets::resolve_with(settings, &quick()).await.unwrap();

    // Assert
    assert!(!settings.secrets_pending);
    assert_eq!(
        settings.slack.signing_secret.expose_secret(),
        SIGNING_SECRET
    );
    assert_eq!(settings.slack.bot_token.expose_secret(), BOT_TOKEN);
    assert_eq!(
        fake.calls(),
        [
            VaultCall::Login {
                mount: AUTH_MOUNT.into(),
                role: Some(ROLE.into()),
                jwt: Some(JWT.into()),
            },
            VaultCall::Read {
                mount: KV_MOUNT.into(),
                path: SECRET_PATH.into(),
                token: Some(CLIENT_TOKEN.into()),
            },
        ]
    );
}

#[tokio::test]
async fn with_vault_configured_the_slack_variables_are_ignored_and_vault_wins() {
    // Arrange: stale values, even placeholders, left in the environment.
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    let mut vars = fake.vars(&token);
    vars.push((
        "SLACK_SIGNING_SECRET",
        "__REPLACE_WITH_SIGNING_SECRET__".into(),
    ));
    vars.push(("SLACK_BOT_TOKEN", "xoxb-stale-env-token".into()));

    // Act: loading does not judge them; resolving replaces them.
    let settings = load("prod", &vars);
    let settings = secrets::resolve_with(settings, &quick()).await.unwrap();

    // Assert
    assert_eq!(
        settings.slack.signing_secret.expose_secret(),
        SIGNING_SECRET
    );
    assert_eq!(settings.slack.bot_token.expose_secret(), BOT_TOKEN);
}

#[tokio::test]
async fn without_vault_the_environment_secrets_are_kept_as_they_are() {
    let settings = load(
        "prod",
        &[
            ("SLACK_SIGNING_SECRET", "env-signing".into()),
            ("SLACK_BOT_TOKEN", "xoxb-env".into()),
        ],
    );
    assert!(!settings.secrets_pending);

    let settings = secrets::resolve_with(settings, &quick()).await.unwrap();

    assert_eq!(settings.slack.signing_secret.expose_secret(), "env-signing");
    assert_eq!(settings.slack.bot_token.expose_secret(), "xoxb-env");
}

#[tokio::test]
async fn the_runtime_context_refuses_settings_still_waiting_for_vault() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    let settings = load("prod", &fake.vars(&token));
    let pool = sqlx::PgPool::connect_lazy("postgres://cb@127.0.0.1:1/cb").unwrap();

    let err = Context::new(Arc::new(settings), pool, Arc::new(SystemClock)).unwrap_err();

    assert!(
        err.to_string().contains("not been read from Vault"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_role_is_refused_naming_the_role_and_vaults_reason() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();

    let err = refused(load(
        "prod",
        &vars_with(&fake, &token, "VAULT_ROLE", "billing"),
    ))
    .await;

    assert!(matches!(err, LoadSecretsError::Login { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("role `billing`"), "{text}");
    assert!(text.contains("400: invalid role name"), "{text}");
    assert_eq!(fake.calls().len(), 1, "a refusal is not retried");
}

#[tokio::test]
async fn a_jwt_vault_does_not_accept_is_refused_without_echoing_it() {
    let fake = VaultFake::start().await;
    let token = TokenFile::with_contents("eyJ.some-other-serviceaccount.jwt");

    let err = refused(load("prod", &fake.vars(&token))).await;

    let text = err.to_string();
    assert!(matches!(err, LoadSecretsError::Login { .. }), "{err:?}");
    assert!(text.contains("403: permission denied"), "{text}");
    assert!(!text.contains("some-other-serviceaccount"), "{text}");
}

#[tokio::test]
async fn an_unreadable_or_empty_token_file_is_refused_naming_the_file() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    let missing = token.path().with_extension("missing");
    let empty = TokenFile::with_contents("\n");

    for path in [
        missing.display().to_string(),
        empty.path().display().to_string(),
    ] {
        let err = refused(load(
            "prod",
            &vars_with(&fake, &token, "VAULT_TOKEN_PATH", &path),
        ))
        .await;
        let text = err.to_string();
        assert!(
            matches!(err, LoadSecretsError::ReadServiceAccountToken { .. }),
            "{err:?}"
        );
        assert!(
            text.contains(&path) && text.contains("VAULT_TOKEN_PATH"),
            "{text}"
        );
    }
    assert!(fake.calls().is_empty(), "Vault is not asked without a JWT");
}

#[tokio::test]
async fn missing_keys_are_all_named_without_any_value() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    fake.set_secret(json!({ "signing_secret": SIGNING_SECRET }));

    let err = refused(load("prod", &fake.vars(&token))).await;

    let LoadSecretsError::InvalidSecret { problems, .. } = &err else {
        panic!("{err:?}");
    };
    let keys: Vec<_> = problems.iter().map(|p| p.key).collect();
    assert_eq!(keys, ["slack_signing_secret", "slack_bot_token"]);
    let text = err.to_string();
    assert!(
        text.contains(&format!("`{SECRET_PATH}` on mount `{KV_MOUNT}`")),
        "{text}"
    );
    assert!(
        text.contains("is missing (the secret has: signing_secret)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_policy_without_read_is_refused_naming_the_path_to_allow() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    fake.set_forbidden(true);

    let err = refused(load("prod", &fake.vars(&token))).await;

    assert!(
        matches!(err, LoadSecretsError::ReadSecret { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("403: permission denied"), "{text}");
    assert!(
        text.contains(&format!("`{KV_MOUNT}/data/{SECRET_PATH}`")),
        "{text}"
    );
}

#[tokio::test]
async fn a_path_without_a_secret_is_refused_as_not_found() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();

    let err = refused(load(
        "prod",
        &vars_with(&fake, &token, "VAULT_SECRET_PATH", "apps/nothing-here"),
    ))
    .await;

    let text = err.to_string();
    assert!(text.contains("`apps/nothing-here`"), "{text}");
    assert!(text.contains("404"), "{text}");
}

#[tokio::test]
async fn a_vault_that_stays_down_is_retried_a_bounded_number_of_times() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    fake.set_down(true);

    let err = refused(load("prod", &fake.vars(&token))).await;

    assert!(
        matches!(err, LoadSecretsError::Unreachable { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("after 3 attempts"), "{text}");
    assert!(text.contains("503: Vault is sealed"), "{text}");
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test]
async fn an_address_where_nothing_listens_is_refused_as_unreachable() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    let addr = VaultFake::unreachable_addr();

    let err = refused(load("prod", &vars_with(&fake, &token, "VAULT_ADDR", &addr))).await;

    assert!(
        matches!(err, LoadSecretsError::Unreachable { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("Vault at {addr} is unreachable")),
        "{text}"
    );
}

#[tokio::test]
async fn a_vault_that_is_still_starting_is_waited_for() {
    // Arrange: sealed for the first attempts.
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    fake.set_down(true);
    let unseal = {
        let fake = fake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            fake.set_down(false);
        })
    };
    let patient = RetryPolicy {
        attempts: 20,
        ..quick()
    };

    // Act
    let settings = secrets::resolve_with(load("prod", &fake.vars(&token)), &patient)
        .await
        .unwrap();
    unseal.await.unwrap();

    // Assert
    assert_eq!(settings.slack.bot_token.expose_secret(), BOT_TOKEN);
    assert!(fake.calls().len() > 2, "{:?}", fake.calls());
}

#[tokio::test]
async fn a_placeholder_from_vault_is_refused_outside_dev_and_accepted_in_dev() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    fake.set_secret(json!({
        "slack_signing_secret": "__REPLACE_WITH_SIGNING_SECRET__",
        "slack_bot_token": BOT_TOKEN,
    }));

    for env in ["prod", "test"] {
        let err = refused(load(env, &fake.vars(&token))).await;
        let text = err.to_string();
        assert!(
            text.contains("slack_signing_secret is a placeholder"),
            "{env}: {text}"
        );
        assert!(!text.contains("slack_bot_token"), "{env}: {text}");
    }
    let dev = secrets::resolve_with(load("dev", &fake.vars(&token)), &quick())
        .await
        .unwrap();
    assert_eq!(
        dev.slack.signing_secret.expose_secret(),
        "__REPLACE_WITH_SIGNING_SECRET__"
    );
}

#[tokio::test]
async fn no_secret_or_token_reaches_the_logs_even_at_trace_level() {
    // Arrange: every log line of a success and of a refusal.
    let logs = LogCapture::default();
    let subscriber = telemetry::subscriber(
        &LogSettings {
            level: "trace".into(),
            format: LogFormat::Json,
        },
        logs.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let fake = VaultFake::start().await;
    let token = TokenFile::new();

    // Act
    secrets::resolve_with(load("prod", &fake.vars(&token)), &quick())
        .await
        .unwrap();
    fake.set_forbidden(true);
    secrets::resolve_with(load("prod", &fake.vars(&token)), &quick())
        .await
        .unwrap_err();

    // Assert
    let text = logs.contents();
    assert!(text.contains("read the secrets from Vault"), "{text}");
    for secret in [SIGNING_SECRET, BOT_TOKEN, JWT, CLIENT_TOKEN] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the logs:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_database_url_and_sasl_password_in_vault_win_over_the_environment() {
    // Arrange: the secret holds all four keys; the environment has stale
    // fallbacks.
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    fake.set_secret(json!({
        "slack_signing_secret": SIGNING_SECRET,
        "slack_bot_token": BOT_TOKEN,
        "database_url": VAULT_DATABASE_URL,
        "kafka_sasl_password": VAULT_SASL_PASSWORD,
    }));
    let vars = with_sasl_kafka(
        &fake,
        &token,
        &[
            (
                "DATABASE_URL",
                "postgres://cb:stale@db.internal/coffeebuddy",
            ),
            ("KAFKA_SASL_PASSWORD", "stale-kafka-password"),
        ],
    );

    // Act
    let settings = secrets::resolve_with(load_exactly("prod", &vars), &quick())
        .await
        .unwrap();

    // Assert
    assert_eq!(settings.database.url.expose_secret(), VAULT_DATABASE_URL);
    let sasl = settings
        .kafka
        .as_ref()
        .and_then(|k| k.sasl.as_ref())
        .unwrap();
    assert_eq!(sasl.password.expose_secret(), VAULT_SASL_PASSWORD);
    assert_eq!(fake.calls().len(), 2, "one login, one read: read once");
}

#[tokio::test]
async fn without_them_in_vault_the_database_url_and_sasl_password_come_from_the_environment() {
    // Arrange: the secret holds only the Slack keys (the default fake).
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    let vars = with_sasl_kafka(
        &fake,
        &token,
        &[
            ("DATABASE_URL", "postgres://cb:env@db.internal/coffeebuddy"),
            ("KAFKA_SASL_PASSWORD", "env-kafka-password"),
        ],
    );

    // Act
    let settings = secrets::resolve_with(load_exactly("prod", &vars), &quick())
        .await
        .unwrap();

    // Assert
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://cb:env@db.internal/coffeebuddy"
    );
    let sasl = settings
        .kafka
        .as_ref()
        .and_then(|k| k.sasl.as_ref())
        .unwrap();
    assert_eq!(sasl.password.expose_secret(), "env-kafka-password");
    assert_eq!(settings.slack.bot_token.expose_secret(), BOT_TOKEN);
}

#[tokio::test]
async fn a_database_url_or_sasl_password_in_neither_place_is_named_with_every_other_problem() {
    // Arrange: no fallbacks in the environment, a secret without the bot
    // token.
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    fake.set_secret(json!({ "slack_signing_secret": SIGNING_SECRET }));

    // Act
    let err = refused(load_exactly("prod", &with_sasl_kafka(&fake, &token, &[]))).await;

    // Assert
    let LoadSecretsError::InvalidSecret { problems, .. } = &err else {
        panic!("{err:?}");
    };
    let keys: Vec<_> = problems.iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        ["slack_bot_token", "database_url", "kafka_sasl_password"]
    );
    let text = err.to_string();
    assert!(
        text.contains("database_url is missing, and DATABASE_URL is not set either"),
        "{text}"
    );
    assert!(
        text.contains("kafka_sasl_password is missing, and KAFKA_SASL_PASSWORD is not set either"),
        "{text}"
    );
}

#[tokio::test]
async fn a_bad_database_url_in_vault_or_a_placeholder_fallback_is_refused_without_its_value() {
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    fake.set_secret(json!({
        "slack_signing_secret": SIGNING_SECRET,
        "slack_bot_token": BOT_TOKEN,
        "database_url": "mysql://cb:hidden-pw@db/cb",
    }));

    let err = refused(load_exactly("prod", &fake.vars(&token))).await;
    let text = err.to_string();
    assert!(
        text.contains("database_url is not a postgres:// URL"),
        "{text}"
    );
    assert!(!text.contains("hidden-pw"), "{text}");

    // The secret without database_url: the fallback is judged instead.
    fake.set_secret(json!({
        "slack_signing_secret": SIGNING_SECRET,
        "slack_bot_token": BOT_TOKEN,
    }));
    let mut vars = fake.vars(&token);
    vars.push((
        "DATABASE_URL",
        "postgres://cb:__REPLACE_WITH_DB_PASSWORD__@db/cb".into(),
    ));
    let err = refused(load_exactly("prod", &vars)).await;
    let text = err.to_string();
    assert!(
        text.contains("database_url is missing, and DATABASE_URL is a placeholder"),
        "{text}"
    );
}

#[tokio::test]
async fn the_database_url_and_sasl_password_from_vault_never_reach_the_logs() {
    let logs = LogCapture::default();
    let subscriber = telemetry::subscriber(
        &LogSettings {
            level: "trace".into(),
            format: LogFormat::Json,
        },
        logs.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let fake = VaultFake::start().await;
    let token = TokenFile::new();
    fake.set_secret(json!({
        "slack_signing_secret": SIGNING_SECRET,
        "slack_bot_token": BOT_TOKEN,
        "database_url": VAULT_DATABASE_URL,
        "kafka_sasl_password": VAULT_SASL_PASSWORD,
    }));

    secrets::resolve_with(
        load_exactly("prod", &with_sasl_kafka(&fake, &token, &[])),
        &quick(),
    )
    .await
    .unwrap();

    let text = logs.contents();
    assert!(
        text.contains(r#""database_url":"vault""#)
            && text.contains(r#""kafka_sasl_password":"vault""#),
        "the log says where each came from: {text}"
    );
    for secret in ["vault-db-password", VAULT_SASL_PASSWORD] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the logs:\n{text}"
        );
    }
}
