//! The secrets from Vault (DESIGN §2), read once at start.
//!
//! With `VAULT_ADDR` set, [`resolve`] logs in with Vault's Kubernetes auth
//! method (the projected ServiceAccount JWT from `VAULT_TOKEN_PATH`, role
//! `VAULT_ROLE`, auth mount `VAULT_AUTH_PATH`), reads the KV v2 secret
//! `VAULT_SECRET_PATH` on mount `VAULT_KV_MOUNT` with the client token it
//! got, and takes [`SIGNING_SECRET_KEY`] and [`BOT_TOKEN_KEY`] from it (both
//! required), and [`DATABASE_URL_KEY`] and [`KAFKA_SASL_PASSWORD_KEY`] when
//! it holds them: without them, `DATABASE_URL` and `KAFKA_SASL_PASSWORD` from
//! the environment are the fallback. Without `VAULT_ADDR` the secrets already
//! came from the environment and [`resolve`] changes nothing.
//!
//! # Read once
//! Knative pods are short-lived and need the secrets only to start, so they
//! are read once and the Vault token is dropped right after (never renewed,
//! never stored): rotating a secret means restarting the functions, exactly
//! as with secrets from the environment.
//!
//! # Failures
//! Anything that stops the secrets from being read refuses the start with a
//! [`LoadSecretsError`] naming what failed: the token file, the login, the
//! KV read, or each missing or placeholder key at once. Connection errors and
//! 5xx answers (Vault starting, sealed or in standby) are retried a few times
//! first ([`RetryPolicy`]); 4xx answers are not, since retrying cannot fix a
//! policy. Errors and logs never carry a secret value, the ServiceAccount
//! JWT or the Vault token: only addresses, mounts, paths, roles, key names,
//! HTTP statuses and Vault's own error messages (scrubbed of both tokens).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::config::{Environment, Settings, VaultSettings, is_placeholder};

/// Key of the Slack signing secret in the Vault secret
/// (`SLACK_SIGNING_SECRET` is accepted too).
pub const SIGNING_SECRET_KEY: &str = "slack_signing_secret";
/// Key of the Slack bot token in the Vault secret (`SLACK_BOT_TOKEN` is
/// accepted too).
pub const BOT_TOKEN_KEY: &str = "slack_bot_token";

/// Key of the Postgres URL in the Vault secret (`DATABASE_URL` is accepted
/// too). Optional: without it the `DATABASE_URL` variable is used.
pub const DATABASE_URL_KEY: &str = "database_url";
/// Key of the Kafka SASL password in the Vault secret (`KAFKA_SASL_PASSWORD`
/// is accepted too). Optional: without it the `KAFKA_SASL_PASSWORD` variable
/// is used. Read only where Kafka uses SASL.
pub const KAFKA_SASL_PASSWORD_KEY: &str = "kafka_sasl_password";

/// The environment variables Vault replaces when `VAULT_ADDR` is set.
pub const REPLACED_ENV_VARS: [&str; 2] = ["SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN"];

/// How long [`resolve`] keeps trying while Vault cannot be reached.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per Vault call, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
    /// Timeout of one HTTP request, so a Vault that accepts connections but
    /// never answers cannot hold the start forever.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts, 0.5 s doubling to at most 4 s: about 12 s of waiting,
    /// enough for a Vault pod that starts next to us and well inside
    /// Knative's start-up budget.
    fn default() -> Self {
        Self {
            attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(4),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// One thing wrong with one key of the Vault secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyProblem {
    /// The key (never its value).
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Why the Slack secrets could not be read from Vault. No variant carries a
/// secret value, the ServiceAccount JWT or the Vault token.
#[derive(Debug, thiserror::Error)]
pub enum LoadSecretsError {
    /// `VAULT_TOKEN_PATH` is missing, unreadable or empty.
    #[error("cannot read the Kubernetes ServiceAccount token {} (VAULT_TOKEN_PATH): {reason}", path.display())]
    ReadServiceAccountToken {
        /// The file.
        path: PathBuf,
        /// Why (an I/O error, or "the file is empty").
        reason: String,
    },
    /// The Vault client could not be set up (bad `VAULT_ADDR`, unreadable
    /// `VAULT_CACERT`…).
    #[error("cannot set up the Vault client for {addr}: {reason}")]
    Client {
        /// `VAULT_ADDR`.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Every attempt failed with a connection error or a 5xx answer.
    #[error("Vault at {addr} is unreachable after {attempts} attempts: {reason}")]
    Unreachable {
        /// `VAULT_ADDR`.
        addr: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// Vault refused the Kubernetes login.
    #[error("Vault login failed (Kubernetes auth mount `{mount}`, role `{role}`): {reason}")]
    Login {
        /// `VAULT_AUTH_PATH`.
        mount: String,
        /// `VAULT_ROLE`.
        role: String,
        /// Vault's answer.
        reason: String,
    },
    /// Vault refused to return the secret, or has none at that path.
    #[error("cannot read the KV v2 secret `{path}` on mount `{mount}`: {reason}")]
    ReadSecret {
        /// `VAULT_KV_MOUNT`.
        mount: String,
        /// `VAULT_SECRET_PATH`.
        path: String,
        /// Vault's answer.
        reason: String,
    },
    /// The secret was read, but keys are missing or unusable; every problem
    /// is named at once.
    #[error(
        "the Vault secret `{path}` on mount `{mount}` is unusable: {}",
        Problems(problems)
    )]
    InvalidSecret {
        /// `VAULT_KV_MOUNT`.
        mount: String,
        /// `VAULT_SECRET_PATH`.
        path: String,
        /// One entry per bad key.
        problems: Vec<SecretKeyProblem>,
    },
}

struct Problems<'a>(&'a [SecretKeyProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", p.key, p.reason)?;
        }
        Ok(())
    }
}

/// Fills in the secrets from Vault when `settings` are waiting for them
/// ([`Settings::secrets_pending`]), retrying with the default
/// [`RetryPolicy`]; returns `settings` unchanged otherwise.
pub async fn resolve(settings: Settings) -> Result<Settings, LoadSecretsError> {
    resolve_with(settings, &RetryPolicy::default()).await
}

/// [`resolve`] with an explicit retry policy (tests use tiny backoffs).
pub async fn resolve_with(
    mut settings: Settings,
    retry: &RetryPolicy,
) -> Result<Settings, LoadSecretsError> {
    let Some(vault) = settings.vault.as_ref().filter(|_| settings.secrets_pending) else {
        return Ok(settings);
    };
    let env = settings.service.env;
    let data = read_secret(vault, retry).await?;
    let invalid = |problems| LoadSecretsError::InvalidSecret {
        mount: vault.kv_mount.clone(),
        path: vault.secret_path.clone(),
        problems,
    };

    // Every problem of the secret at once, the optional keys' too.
    let slack = slack_secrets(&data, env);
    let mut problems = slack.as_ref().err().cloned().unwrap_or_default();
    let database_url = with_fallback(
        &data,
        Fallback {
            key: DATABASE_URL_KEY,
            alias: "DATABASE_URL",
            env_value: &settings.database.url,
        },
        env,
        |url| {
            crate::config::is_postgres_url(url)
                .then_some(())
                .ok_or("is not a postgres:// URL")
        },
    )
    .map_err(|p| problems.push(p));
    let sasl_password = settings
        .kafka
        .as_ref()
        .and_then(|k| k.sasl.as_ref())
        .map(|sasl| {
            with_fallback(
                &data,
                Fallback {
                    key: KAFKA_SASL_PASSWORD_KEY,
                    alias: "KAFKA_SASL_PASSWORD",
                    env_value: &sasl.password,
                },
                env,
                |_| Ok(()),
            )
            .map_err(|p| problems.push(p))
        });
    let (Ok(slack), Ok((database_url, database_url_from)), true) =
        (slack, database_url, problems.is_empty())
    else {
        return Err(invalid(problems));
    };
    settings.slack.signing_secret = slack.signing_secret;
    settings.slack.bot_token = slack.bot_token;
    settings.database.url = database_url;
    let mut sasl_password_from = None;
    if let (Some(Ok((password, from))), Some(sasl)) = (
        sasl_password,
        settings.kafka.as_mut().and_then(|k| k.sasl.as_mut()),
    ) {
        sasl.password = password;
        sasl_password_from = Some(from);
    }
    settings.secrets_pending = false;
    tracing::info!(
        database_url = database_url_from.as_str(),
        kafka_sasl_password = sasl_password_from.map(Source::as_str),
        "read the secrets from Vault"
    );
    Ok(settings)
}

struct SlackSecrets {
    signing_secret: SecretString,
    bot_token: SecretString,
}

/// Where an optional secret came from (logged, never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Vault,
    Environment,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Vault => "vault",
            Self::Environment => "environment",
        }
    }
}

/// An optional key of the Vault secret and the variable that stands in for
/// it.
struct Fallback<'a> {
    key: &'static str,
    /// The upper-case spelling, accepted in the secret too.
    alias: &'static str,
    /// The variable's value (empty = unset).
    env_value: &'a SecretString,
}

/// The secret's `key` when it holds it (judged like the Slack keys, plus
/// `check`), else the variable's value (judged the same way). The variable is
/// named in the problem when it is the one at fault.
fn with_fallback(
    data: &HashMap<String, Value>,
    fallback: Fallback<'_>,
    env: Environment,
    check: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<(SecretString, Source), SecretKeyProblem> {
    let Fallback {
        key,
        alias,
        env_value,
    } = fallback;
    let problem = |reason: String| SecretKeyProblem { key, reason };
    let judge = |value: &str| -> Result<(), String> {
        if env != Environment::Dev && is_placeholder(value) {
            return Err(
                "is a placeholder; store the real secret (placeholders are accepted \
                        only with SERVICE_ENV=dev)"
                    .to_owned(),
            );
        }
        check(value).map_err(str::to_owned)
    };
    match data.get(key).or_else(|| data.get(alias)) {
        Some(value) => {
            let value = value
                .as_str()
                .ok_or_else(|| problem("is not a string".to_owned()))?;
            if value.trim().is_empty() {
                return Err(problem("is empty".to_owned()));
            }
            judge(value).map_err(problem)?;
            tracing::debug!(key, "taken from the Vault secret");
            Ok((SecretString::from(value.to_owned()), Source::Vault))
        }
        None => {
            let value = env_value.expose_secret();
            if value.trim().is_empty() {
                return Err(problem(format!(
                    "is missing, and {alias} is not set either (one of them must hold it)"
                )));
            }
            judge(value).map_err(|reason| problem(format!("is missing, and {alias} {reason}")))?;
            Ok((env_value.clone(), Source::Environment))
        }
    }
}

/// Logs in and reads the secret's key/value data.
#[tracing::instrument(
    name = "vault",
    skip_all,
    fields(addr = %vault.addr, auth_mount = %vault.auth_path, role = %vault.role,
           kv_mount = %vault.kv_mount, secret_path = %vault.secret_path)
)]
async fn read_secret(
    vault: &VaultSettings,
    retry: &RetryPolicy,
) -> Result<HashMap<String, Value>, LoadSecretsError> {
    tracing::info!("reading the secrets from Vault");
    let jwt = read_jwt(vault).await?;
    let mut client = client(vault, retry)?;
    // What must never appear in an error: the JWT now, the client token too
    // once we have it.
    let mut scrub = Scrub(vec![jwt.clone()]);

    let auth = with_retry(vault, retry, &scrub, || {
        vaultrs::auth::kubernetes::login(
            &client,
            &vault.auth_path,
            &vault.role,
            jwt.expose_secret(),
        )
    })
    .await
    .map_err(|e| match e {
        Attempt::GaveUp(e) => e,
        Attempt::Refused(e) => LoadSecretsError::Login {
            mount: vault.auth_path.clone(),
            role: vault.role.clone(),
            reason: login_hint(&e, &scrub.describe(&e)),
        },
    })?;
    let token = SecretString::from(auth.client_token);
    scrub.0.push(token.clone());
    client.set_token(token.expose_secret());

    let data: HashMap<String, Value> = with_retry(vault, retry, &scrub, || {
        vaultrs::kv2::read(&client, &vault.kv_mount, &vault.secret_path)
    })
    .await
    .map_err(|e| match e {
        Attempt::GaveUp(e) => e,
        Attempt::Refused(e) => LoadSecretsError::ReadSecret {
            mount: vault.kv_mount.clone(),
            path: vault.secret_path.clone(),
            reason: read_hint(&e, vault, &scrub.describe(&e)),
        },
    })?;
    Ok(data)
}

async fn read_jwt(vault: &VaultSettings) -> Result<SecretString, LoadSecretsError> {
    let refuse = |reason: String| LoadSecretsError::ReadServiceAccountToken {
        path: vault.token_path.clone(),
        reason,
    };
    let jwt = tokio::fs::read_to_string(&vault.token_path)
        .await
        .map_err(|e| refuse(e.to_string()))?;
    let jwt = jwt.trim();
    if jwt.is_empty() {
        return Err(refuse("the file is empty".to_owned()));
    }
    Ok(SecretString::from(jwt.to_owned()))
}

fn client(vault: &VaultSettings, retry: &RetryPolicy) -> Result<VaultClient, LoadSecretsError> {
    let refuse = |reason: String| LoadSecretsError::Client {
        addr: vault.addr.clone(),
        reason,
    };
    // vaultrs panics on an address it cannot parse: check first (the config
    // check makes this unreachable in practice).
    reqwest::Url::parse(&vault.addr).map_err(|e| refuse(format!("invalid address: {e}")))?;
    let settings = VaultClientSettingsBuilder::default()
        .address(&vault.addr)
        // Explicitly empty: never pick up a VAULT_TOKEN from the environment.
        .token("")
        .timeout(Some(retry.request_timeout))
        .build()
        .map_err(|e| refuse(e.to_string()))?;
    VaultClient::new(settings).map_err(|e| refuse(e.to_string()))
}

/// How a Vault call ended when it did not succeed.
enum Attempt {
    /// Vault answered, and retrying will not change the answer.
    Refused(ClientError),
    /// Every attempt hit a transient failure.
    GaveUp(LoadSecretsError),
}

async fn with_retry<T, F, Fut>(
    vault: &VaultSettings,
    retry: &RetryPolicy,
    scrub: &Scrub,
    mut call: F,
) -> Result<T, Attempt>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let attempts = retry.attempts.max(1);
    let mut backoff = retry.initial_backoff;
    let mut attempt = 1;
    loop {
        let e = match call().await {
            Ok(value) => return Ok(value),
            Err(e) if !is_transient(&e) => return Err(Attempt::Refused(e)),
            Err(e) => e,
        };
        let reason = scrub.describe(&e);
        if attempt >= attempts {
            return Err(Attempt::GaveUp(LoadSecretsError::Unreachable {
                addr: vault.addr.clone(),
                attempts,
                reason,
            }));
        }
        tracing::warn!(
            attempt,
            retry_in_ms = backoff.as_millis() as u64,
            error = %reason,
            "Vault not reachable yet; retrying"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(retry.max_backoff);
        attempt += 1;
    }
}

/// Connection failures, timeouts and 5xx answers: what a starting, sealed or
/// standby Vault produces, and what a later attempt can fix.
fn is_transient(e: &ClientError) -> bool {
    use rustify::errors::ClientError as Http;
    match e {
        ClientError::APIError { code, .. } => *code >= 500,
        ClientError::RestClientError { source } => match source {
            Http::RequestError { .. } => true,
            Http::ServerResponseError { code, .. } => *code >= 500,
            _ => false,
        },
        _ => false,
    }
}

/// The secrets an error must never contain, with the one way errors from
/// vaultrs are turned into text here.
struct Scrub(Vec<SecretString>);

impl Scrub {
    /// A one-line description of a vaultrs error, built only from parts that
    /// cannot hold a secret value (bodies of successful answers, which do, are
    /// never included), with both tokens scrubbed from what remains.
    fn describe(&self, e: &ClientError) -> String {
        use rustify::errors::ClientError as Http;
        let text = match e {
            ClientError::APIError { code, errors } if errors.is_empty() => {
                format!("Vault answered {code}")
            }
            ClientError::APIError { code, errors } => {
                format!("Vault answered {code}: {}", errors.join("; "))
            }
            ClientError::RestClientError { source } => match source {
                // The chain names the URL and the socket error: no secrets.
                Http::RequestError { source, .. } => format!("{source:#}"),
                Http::ServerResponseError { code, .. } => format!("Vault answered {code}"),
                // Parse errors hold the answer's body: name the failure only.
                other => other.to_string(),
            },
            other => other.to_string(),
        };
        self.0.iter().fold(text, |text, secret| {
            let secret = secret.expose_secret();
            if secret.is_empty() {
                text
            } else {
                text.replace(secret, "[redacted]")
            }
        })
    }
}

fn api_code(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => Some(*code),
        _ => None,
    }
}

fn login_hint(e: &ClientError, reason: &str) -> String {
    match api_code(e) {
        Some(400 | 403) => format!(
            "{reason} (check that the role exists on this auth mount and is bound to this \
             pod's ServiceAccount and namespace)"
        ),
        _ => reason.to_owned(),
    }
}

fn read_hint(e: &ClientError, vault: &VaultSettings, reason: &str) -> String {
    match api_code(e) {
        Some(403) => format!(
            "{reason} (the role's policy must allow `read` on `{}/data/{}`)",
            vault.kv_mount, vault.secret_path
        ),
        Some(404) => format!("{reason} (no secret at this path, or not a KV v2 mount)"),
        _ => reason.to_owned(),
    }
}

/// Takes both Slack secrets from the secret's data, naming every missing,
/// non-string, empty or (outside dev) placeholder key at once.
fn slack_secrets(
    data: &HashMap<String, Value>,
    env: Environment,
) -> Result<SlackSecrets, Vec<SecretKeyProblem>> {
    let mut problems = Vec::new();
    let mut take = |key: &'static str, alias: &str| -> Option<SecretString> {
        let mut problem = |reason: String| {
            problems.push(SecretKeyProblem { key, reason });
            None
        };
        let Some(value) = data.get(key).or_else(|| data.get(alias)) else {
            let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
            keys.sort_unstable();
            return problem(format!(
                "is missing (the secret has: {})",
                if keys.is_empty() {
                    "no keys".to_owned()
                } else {
                    keys.join(", ")
                }
            ));
        };
        let Some(value) = value.as_str() else {
            return problem("is not a string".to_owned());
        };
        if value.trim().is_empty() {
            return problem("is empty".to_owned());
        }
        if env != Environment::Dev && is_placeholder(value) {
            return problem(
                "is a placeholder; store the real secret (placeholders are accepted only with \
                 SERVICE_ENV=dev)"
                    .to_owned(),
            );
        }
        Some(SecretString::from(value.to_owned()))
    };
    let signing_secret = take(SIGNING_SECRET_KEY, "SLACK_SIGNING_SECRET");
    let bot_token = take(BOT_TOKEN_KEY, "SLACK_BOT_TOKEN");
    match (signing_secret, bot_token) {
        (Some(signing_secret), Some(bot_token)) => Ok(SlackSecrets {
            signing_secret,
            bot_token,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(value: Value) -> HashMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn both_keys_are_taken_and_the_upper_case_names_are_accepted_too() {
        let s = slack_secrets(
            &data(json!({"slack_signing_secret": "sig", "SLACK_BOT_TOKEN": "xoxb-1"})),
            Environment::Prod,
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(s.signing_secret.expose_secret(), "sig");
        assert_eq!(s.bot_token.expose_secret(), "xoxb-1");
    }

    #[test]
    fn the_lower_case_key_wins_over_its_upper_case_alias() {
        let s = slack_secrets(
            &data(json!({
                "slack_signing_secret": "lower", "SLACK_SIGNING_SECRET": "upper",
                "slack_bot_token": "xoxb-1"
            })),
            Environment::Prod,
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(s.signing_secret.expose_secret(), "lower");
    }

    #[test]
    fn every_bad_key_is_named_at_once_without_its_value() {
        let problems = slack_secrets(
            &data(json!({"slack_signing_secret": 42, "other": "xoxb-hidden"})),
            Environment::Prod,
        )
        .err()
        .unwrap();
        let keys: Vec<_> = problems.iter().map(|p| p.key).collect();
        assert_eq!(keys, [SIGNING_SECRET_KEY, BOT_TOKEN_KEY]);
        assert_eq!(problems[0].reason, "is not a string");
        let text = format!("{problems:?}");
        assert!(
            text.contains("the secret has: other, slack_signing_secret"),
            "{text}"
        );
        assert!(
            !text.contains("xoxb-hidden") && !text.contains("42"),
            "{text}"
        );
    }

    #[test]
    fn a_placeholder_is_refused_outside_dev_and_accepted_in_dev() {
        let placeholders = data(json!({
            "slack_signing_secret": "__REPLACE_WITH_SIGNING_SECRET__",
            "slack_bot_token": "changeme"
        }));
        for env in [Environment::Prod, Environment::Test] {
            let problems = slack_secrets(&placeholders, env).err().unwrap();
            assert_eq!(problems.len(), 2, "{env:?}");
            assert!(problems.iter().all(|p| p.reason.contains("placeholder")));
        }
        assert!(slack_secrets(&placeholders, Environment::Dev).is_ok());
    }

    #[test]
    fn an_empty_value_is_refused_even_in_dev() {
        let problems = slack_secrets(
            &data(json!({"slack_signing_secret": " ", "slack_bot_token": "xoxb-1"})),
            Environment::Dev,
        )
        .err()
        .unwrap();
        assert_eq!(problems[0].reason, "is empty");
    }

    #[test]
    fn descriptions_scrub_both_tokens() {
        let scrub = Scrub(vec![
            SecretString::from("jwt-abc"),
            SecretString::from("hvs.tok"),
        ]);
        let e = ClientError::APIError {
            code: 403,
            errors: vec!["bad token jwt-abc or hvs.tok".to_owned()],
        };
        assert_eq!(
            scrub.describe(&e),
            "Vault answered 403: bad token [redacted] or [redacted]"
        );
    }

    #[test]
    fn only_connection_errors_and_5xx_answers_are_retried() {
        let api = |code| ClientError::APIError {
            code,
            errors: vec![],
        };
        assert!(is_transient(&api(503)));
        assert!(!is_transient(&api(403)));
        assert!(!is_transient(&api(400)));
        assert!(!is_transient(&ClientError::ResponseDataEmptyError));
    }
}
