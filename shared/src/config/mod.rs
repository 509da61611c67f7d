//! Settings read once from the environment at start (DESIGN §4).
//!
//! Every function and `local` call [`Settings::from_env`] exactly once. Loading
//! never stops at the first problem: it collects every missing or invalid
//! variable into one [`LoadSettingsError`], so an operator fixes a broken
//! deployment in one round instead of one variable per restart.
//!
//! Secrets are [`SecretString`]s: their `Debug` output is redacted and they
//! have no `Display`, so they cannot end up in logs, errors or `/metrics` by
//! accident. Outside `SERVICE_ENV=dev`, a secret that is empty or still a
//! placeholder (`__REPLACE_WITH_…__`, `changeme`) refuses to start.
//!
//! With `VAULT_ADDR` set, the Slack secrets come from Vault instead and the
//! `SLACK_SIGNING_SECRET`/`SLACK_BOT_TOKEN` variables are ignored (Vault wins
//! whenever it is configured); `DATABASE_URL` and `KAFKA_SASL_PASSWORD`
//! become fallbacks for the secret's `database_url` and
//! `kafka_sasl_password`. The loaded [`Settings`] then have
//! [`Settings::secrets_pending`] set until [`crate::secrets::resolve`] has
//! read them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use tracing_subscriber::EnvFilter;

/// Name of the topic that carries run events when nothing overrides it.
pub const DEFAULT_RUN_EVENTS_TOPIC: &str = "coffeebuddy.run-events.v1";

/// What a binary tells the loader about itself.
#[derive(Debug, Clone, Copy)]
pub struct ServiceIdentity {
    /// Default for `SERVICE_NAME`: the crate name of the binary.
    pub name: &'static str,
    /// Default for `SERVICE_VERSION`: the crate version of the binary.
    pub version: &'static str,
    /// Whether the Ory settings are mandatory (the admin function verifies
    /// operator JWTs and cannot run without them).
    pub requires_ory: bool,
}

/// The deployment stage. Only `dev` tolerates placeholder secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// A developer's machine: placeholder secrets are allowed.
    Dev,
    /// Automated test environments.
    Test,
    /// Production.
    Prod,
}

impl Environment {
    /// The lowercase name used in `SERVICE_ENV`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Test => "test",
            Self::Prod => "prod",
        }
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "dev" => Ok(Self::Dev),
            "test" => Ok(Self::Test),
            "prod" => Ok(Self::Prod),
            _ => Err("expected one of dev, test, prod".to_owned()),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for the cluster's log collector.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            _ => Err("expected json or pretty".to_owned()),
        }
    }
}

/// Who this process is.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// `SERVICE_NAME`: reported in logs, metrics and CloudEvent sources.
    pub name: String,
    /// `SERVICE_ENV`: decides whether placeholder secrets are tolerated.
    pub env: Environment,
    /// `SERVICE_VERSION`: reported by readiness and `coffeebuddy_build_info`.
    pub version: String,
}

/// How logs are written.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `LOG_LEVEL`: an `EnvFilter` directive such as `info` or
    /// `info,sqlx=warn`; validated at load so a typo fails fast.
    pub level: String,
    /// `LOG_FORMAT`.
    pub format: LogFormat,
}

/// Slack credentials and the Web API location.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// `SLACK_SIGNING_SECRET` (or Vault's `slack_signing_secret`): verifies
    /// that requests come from Slack. Empty while
    /// [`Settings::secrets_pending`].
    pub signing_secret: SecretString,
    /// `SLACK_BOT_TOKEN` (or Vault's `slack_bot_token`): authorises our Web
    /// API calls. Empty while [`Settings::secrets_pending`].
    pub bot_token: SecretString,
    /// `SLACK_API_BASE_URL` without a trailing slash; tests point it at the
    /// recording fake.
    pub api_base_url: String,
}

/// Postgres connection settings.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL` (or Vault's `database_url`): a secret, since it
    /// usually carries a password. Empty while [`Settings::secrets_pending`]
    /// when neither has been read yet.
    pub url: SecretString,
    /// `DATABASE_POOL_MIN`: connections kept open while idle (0 suits
    /// scale-to-zero functions).
    pub pool_min: u32,
    /// `DATABASE_POOL_MAX`: upper bound per process; mind Postgres'
    /// `max_connections` times the number of replicas.
    pub pool_max: u32,
}

/// `KAFKA_SECURITY_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaSecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS without SASL.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl KafkaSecurityProtocol {
    /// The librdkafka spelling (`security.protocol`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether SASL credentials are needed.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// Whether the connection is TLS (so the `KAFKA_SSL_*` files apply).
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

impl FromStr for KafkaSecurityProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "plaintext" => Ok(Self::Plaintext),
            "ssl" => Ok(Self::Ssl),
            "sasl_plaintext" => Ok(Self::SaslPlaintext),
            "sasl_ssl" => Ok(Self::SaslSsl),
            _ => Err("expected plaintext, ssl, sasl_plaintext or sasl_ssl".to_owned()),
        }
    }
}

/// `KAFKA_SASL_MECHANISM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaSaslMechanism {
    /// `PLAIN`.
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl KafkaSaslMechanism {
    /// The librdkafka spelling (`sasl.mechanism`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl FromStr for KafkaSaslMechanism {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            _ => Err("expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512".to_owned()),
        }
    }
}

/// SASL credentials, present only for the `sasl_*` protocols.
#[derive(Debug, Clone)]
pub struct KafkaSasl {
    /// `KAFKA_SASL_MECHANISM`.
    pub mechanism: KafkaSaslMechanism,
    /// `KAFKA_SASL_USERNAME`.
    pub username: String,
    /// `KAFKA_SASL_PASSWORD` (or Vault's `kafka_sasl_password`). Empty while
    /// [`Settings::secrets_pending`] when it is to come from Vault.
    pub password: SecretString,
}

/// TLS files for the `ssl` and `sasl_ssl` protocols, each checked at load to
/// be a readable file. All optional: without a CA file librdkafka trusts the
/// system's CA store; the client certificate and key are for brokers that
/// want mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct KafkaTls {
    /// `KAFKA_SSL_CA_LOCATION` (librdkafka `ssl.ca.location`): PEM bundle of
    /// the CAs that signed the brokers' certificates.
    pub ca_location: Option<PathBuf>,
    /// `KAFKA_SSL_CERTIFICATE_LOCATION` (`ssl.certificate.location`): our
    /// client certificate (PEM), for mTLS.
    pub certificate_location: Option<PathBuf>,
    /// `KAFKA_SSL_KEY_LOCATION` (`ssl.key.location`): the client
    /// certificate's private key (PEM).
    pub key_location: Option<PathBuf>,
    /// `KAFKA_SSL_KEY_PASSWORD` (`ssl.key.password`): the key's passphrase,
    /// when it is encrypted.
    pub key_password: Option<SecretString>,
}

/// Kafka settings; absent when `KAFKA_BROKERS` is unset.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BROKERS`: comma-separated `host:port` list.
    pub brokers: String,
    /// `KAFKA_CLIENT_ID`: defaults to the service name so broker logs say
    /// which function connected.
    pub client_id: String,
    /// `KAFKA_SECURITY_PROTOCOL`.
    pub security_protocol: KafkaSecurityProtocol,
    /// SASL credentials when the protocol needs them.
    pub sasl: Option<KafkaSasl>,
    /// TLS files; only with `ssl`/`sasl_ssl` (always empty otherwise).
    pub tls: KafkaTls,
    /// `KAFKA_TOPIC_RUN_EVENTS`.
    pub topic_run_events: String,
}

/// Vault settings; absent when `VAULT_ADDR` is unset (secrets then come from
/// the environment). [`crate::secrets`] reads the Slack secrets with them,
/// once, at start.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// `VAULT_ADDR`.
    pub addr: String,
    /// `VAULT_ROLE`: the Kubernetes-auth role bound to our ServiceAccount.
    pub role: String,
    /// `VAULT_AUTH_PATH`: mount of the Kubernetes auth method.
    pub auth_path: String,
    /// `VAULT_TOKEN_PATH`: the projected ServiceAccount token.
    pub token_path: PathBuf,
    /// `VAULT_KV_MOUNT`: the KV v2 mount.
    pub kv_mount: String,
    /// `VAULT_SECRET_PATH`: the secret holding the Slack credentials.
    pub secret_path: String,
}

/// Ory settings for the operators' admin API.
#[derive(Debug, Clone)]
pub struct OrySettings {
    /// `ORY_ISSUER_URL`: the exact `iss` a token must carry, kept as the
    /// operator wrote it (a trailing `/` included).
    pub issuer_url: String,
    /// `ORY_AUDIENCE`: a value the token's `aud` must contain.
    pub audience: String,
    /// `ORY_JWKS_URL`: where the signing keys are published.
    pub jwks_url: String,
}

/// Configuration given to channels the first time CoffeeBuddy sees them.
#[derive(Debug, Clone)]
pub struct ChannelDefaults {
    /// `CHANNEL_DEFAULT_REMINDER_MINUTES` (0–60).
    pub reminder_offset_minutes: i32,
    /// `CHANNEL_DEFAULT_RETENTION_DAYS` (1–3650).
    pub retention_days: i32,
    /// `CHANNEL_DEFAULT_TIMEZONE`: an IANA name.
    pub timezone: chrono_tz::Tz,
}

/// Everything a CoffeeBuddy process is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORT`: listen port (0 binds an ephemeral port, useful in tests).
    pub port: u16,
    /// Identity.
    pub service: ServiceSettings,
    /// Logging.
    pub log: LogSettings,
    /// Slack.
    pub slack: SlackSettings,
    /// Postgres.
    pub database: DatabaseSettings,
    /// Kafka, when configured.
    pub kafka: Option<KafkaSettings>,
    /// Vault, when configured.
    pub vault: Option<VaultSettings>,
    /// Whether the secrets still have to be read from Vault (the Slack
    /// secrets in [`Settings::slack`], and the database URL and SASL
    /// password, which fall back to their variables): true straight after
    /// loading with `VAULT_ADDR` set, false once [`crate::secrets::resolve`]
    /// has filled them in (and always false without Vault). [`crate::runtime::Context::new`] refuses pending
    /// settings, so empty secrets can never verify a request or call Slack.
    pub secrets_pending: bool,
    /// Ory, when configured (always for the admin function).
    pub ory: Option<OrySettings>,
    /// Defaults for new channels.
    pub channel_defaults: ChannelDefaults,
    /// `METRICS_PATH`.
    pub metrics_path: String,
    /// `TICK_SECONDS`: period of the ping tick. `local`'s built-in ticker
    /// fires at it; the reminder function looks this far ahead on each tick
    /// (so it must match the PingSource period in production).
    pub tick_seconds: u64,
}

/// One thing wrong with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    /// The variable's name.
    pub var: &'static str,
    /// What is wrong with it (never its value, which may be a secret).
    pub reason: String,
}

/// Every problem found while loading [`Settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSettingsError {
    /// All problems, in the order the variables are documented.
    pub problems: Vec<SettingProblem>,
}

impl LoadSettingsError {
    /// The names of the offending variables.
    pub fn vars(&self) -> Vec<&'static str> {
        self.problems.iter().map(|p| p.var).collect()
    }
}

impl fmt::Display for LoadSettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str("):")?;
        for p in &self.problems {
            write!(f, "\n  {}: {}", p.var, p.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadSettingsError {}

/// Whether `url` names Postgres (`postgres://` or `postgresql://`).
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether a secret value is a template left unreplaced (or empty).
pub(crate) fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    let lower = v.to_ascii_lowercase();
    v.is_empty()
        || v.contains("__REPLACE_WITH")
        || matches!(lower.as_str(), "changeme" | "change-me" | "change_me")
}

/// Reads variables through `lookup` and records problems as it goes.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<SettingProblem>,
}

impl Reader<'_> {
    fn problem(&mut self, var: &'static str, reason: impl Into<String>) {
        self.problems.push(SettingProblem {
            var,
            reason: reason.into(),
        });
    }

    /// The value, with blank values treated as unset (Kubernetes ConfigMaps
    /// often carry empty keys).
    fn raw(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    fn required(&mut self, var: &'static str) -> Option<String> {
        let value = self.raw(var);
        if value.is_none() {
            self.problem(var, "is required but not set");
        }
        value
    }

    fn parsed<T: FromStr>(&mut self, var: &'static str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.raw(var) {
            None => default,
            Some(v) => match v.trim().parse() {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.problem(var, format!("invalid: {e}"));
                    default
                }
            },
        }
    }

    fn bounded(&mut self, var: &'static str, default: i64, min: i64, max: i64) -> i64 {
        let value: i64 = self.parsed(var, default);
        if !(min..=max).contains(&value) {
            self.problem(var, format!("must be between {min} and {max}"));
            return default;
        }
        value
    }

    /// An http(s) URL with a host, without trailing slashes. Parsed in full
    /// here because some clients (vaultrs) panic on what they cannot parse.
    fn url(&mut self, var: &'static str, value: String) -> String {
        let trimmed = value.trim().trim_end_matches('/');
        if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
            self.problem(var, "must be an http:// or https:// URL");
        } else if !reqwest::Url::parse(trimmed)
            .is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()))
        {
            self.problem(
                var,
                "is not a valid URL with a host, e.g. https://host:port",
            );
        }
        trimmed.to_owned()
    }

    fn secret(&mut self, var: &'static str, env: Option<Environment>) -> Option<SecretString> {
        let value = self.required(var)?;
        // An unknown SERVICE_ENV is already a problem; judge secrets strictly then.
        if env != Some(Environment::Dev) && is_placeholder(&value) {
            self.problem(
                var,
                "is a placeholder; set the real secret (placeholders are accepted only with SERVICE_ENV=dev)",
            );
        }
        Some(SecretString::from(value))
    }
}

impl Settings {
    /// Loads settings from the process environment.
    pub fn from_env(identity: ServiceIdentity) -> Result<Self, LoadSettingsError> {
        Self::from_lookup(identity, &|name| std::env::var(name).ok())
    }

    /// Loads settings from any variable source; tests pass a map instead of
    /// mutating the process environment.
    pub fn from_lookup(
        identity: ServiceIdentity,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, LoadSettingsError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
        };

        let port = r.bounded("PORT", 8080, 0, i64::from(u16::MAX)) as u16;
        let name = r
            .raw("SERVICE_NAME")
            .unwrap_or_else(|| identity.name.to_owned());
        let env = match r.raw("SERVICE_ENV") {
            None => Some(Environment::Dev),
            Some(v) => match v.parse() {
                Ok(env) => Some(env),
                Err(e) => {
                    r.problem("SERVICE_ENV", format!("invalid: {e}"));
                    None
                }
            },
        };
        let version = r
            .raw("SERVICE_VERSION")
            .unwrap_or_else(|| identity.version.to_owned());

        let level = r.raw("LOG_LEVEL").unwrap_or_else(|| "info".to_owned());
        if let Err(e) = EnvFilter::try_new(&level) {
            r.problem("LOG_LEVEL", format!("invalid filter directive: {e}"));
        }
        let format = r.parsed("LOG_FORMAT", LogFormat::Json);

        // With Vault configured the Slack secrets come from Vault only: the
        // variables are neither required nor read, so a stale or placeholder
        // value left in a ConfigMap cannot shadow Vault or block a start.
        let secrets_pending = r.raw("VAULT_ADDR").is_some();
        let (signing_secret, bot_token) = if secrets_pending {
            let pending = || Some(SecretString::from(String::new()));
            (pending(), pending())
        } else {
            (
                r.secret("SLACK_SIGNING_SECRET", env),
                r.secret("SLACK_BOT_TOKEN", env),
            )
        };
        let api_base_url = match r.raw("SLACK_API_BASE_URL") {
            Some(v) => r.url("SLACK_API_BASE_URL", v),
            None => "https://slack.com/api".to_owned(),
        };

        // With Vault, the secret's `database_url` wins and DATABASE_URL is
        // only the fallback: it is neither required nor judged for
        // placeholders here, but once [`crate::secrets::resolve`] knows which
        // of the two is used. A malformed fallback is still named now.
        let database_url = if secrets_pending {
            let url = r.raw("DATABASE_URL").unwrap_or_default();
            if !url.is_empty() && !is_postgres_url(&url) {
                r.problem("DATABASE_URL", "must be a postgres:// URL");
            }
            Some(SecretString::from(url))
        } else {
            let url = r.secret("DATABASE_URL", env);
            if url
                .as_ref()
                .is_some_and(|u| !is_postgres_url(u.expose_secret()))
            {
                r.problem("DATABASE_URL", "must be a postgres:// URL");
            }
            url
        };
        let pool_min = r.bounded("DATABASE_POOL_MIN", 0, 0, 1000) as u32;
        let pool_max = r.bounded("DATABASE_POOL_MAX", 10, 1, 1000) as u32;
        if pool_min > pool_max {
            r.problem("DATABASE_POOL_MIN", "must not exceed DATABASE_POOL_MAX");
        }

        let kafka = Self::kafka(&mut r, &name, env, secrets_pending);
        let vault = Self::vault(&mut r);
        let ory = Self::ory(&mut r, identity.requires_ory);

        let reminder_offset_minutes =
            r.bounded("CHANNEL_DEFAULT_REMINDER_MINUTES", 5, 0, 60) as i32;
        let retention_days = r.bounded("CHANNEL_DEFAULT_RETENTION_DAYS", 90, 1, 3650) as i32;
        let timezone = r.parsed("CHANNEL_DEFAULT_TIMEZONE", chrono_tz::UTC);

        let metrics_path = r
            .raw("METRICS_PATH")
            .unwrap_or_else(|| "/metrics".to_owned());
        if !metrics_path.starts_with('/')
            || metrics_path.starts_with("/health/")
            || metrics_path == "/"
        {
            r.problem(
                "METRICS_PATH",
                "must start with '/' and not be '/' or under /health/",
            );
        }
        let tick_seconds = r.bounded("TICK_SECONDS", 60, 1, 3600) as u64;

        match (env, signing_secret, bot_token, database_url) {
            (Some(env), Some(signing_secret), Some(bot_token), Some(url))
                if r.problems.is_empty() =>
            {
                Ok(Self {
                    port,
                    service: ServiceSettings { name, env, version },
                    log: LogSettings { level, format },
                    slack: SlackSettings {
                        signing_secret,
                        bot_token,
                        api_base_url,
                    },
                    database: DatabaseSettings {
                        url,
                        pool_min,
                        pool_max,
                    },
                    kafka,
                    vault,
                    secrets_pending,
                    ory,
                    channel_defaults: ChannelDefaults {
                        reminder_offset_minutes,
                        retention_days,
                        timezone,
                    },
                    metrics_path,
                    tick_seconds,
                })
            }
            _ => Err(LoadSettingsError {
                problems: r.problems,
            }),
        }
    }

    fn kafka(
        r: &mut Reader<'_>,
        service_name: &str,
        env: Option<Environment>,
        vault: bool,
    ) -> Option<KafkaSettings> {
        let brokers = r.raw("KAFKA_BROKERS")?;
        let client_id = r
            .raw("KAFKA_CLIENT_ID")
            .unwrap_or_else(|| service_name.to_owned());
        let security_protocol =
            r.parsed("KAFKA_SECURITY_PROTOCOL", KafkaSecurityProtocol::Plaintext);
        let sasl = if security_protocol.uses_sasl() {
            let mechanism = match r.raw("KAFKA_SASL_MECHANISM") {
                Some(m) => match m.parse() {
                    Ok(m) => Some(m),
                    Err(e) => {
                        r.problem("KAFKA_SASL_MECHANISM", format!("invalid: {e}"));
                        None
                    }
                },
                None => {
                    r.problem(
                        "KAFKA_SASL_MECHANISM",
                        "is required when KAFKA_SECURITY_PROTOCOL uses SASL",
                    );
                    None
                }
            };
            let username = r.required("KAFKA_SASL_USERNAME");
            // As with DATABASE_URL: with Vault, the secret's
            // `kafka_sasl_password` wins and this is only the fallback.
            let password = if vault {
                Some(SecretString::from(
                    r.raw("KAFKA_SASL_PASSWORD").unwrap_or_default(),
                ))
            } else {
                r.secret("KAFKA_SASL_PASSWORD", env)
            };
            match (mechanism, username, password) {
                (Some(mechanism), Some(username), Some(password)) => Some(KafkaSasl {
                    mechanism,
                    username,
                    password,
                }),
                _ => None,
            }
        } else {
            None
        };
        let tls = Self::kafka_tls(r, security_protocol, env);
        let topic_run_events = r
            .raw("KAFKA_TOPIC_RUN_EVENTS")
            .unwrap_or_else(|| DEFAULT_RUN_EVENTS_TOPIC.to_owned());
        Some(KafkaSettings {
            brokers,
            client_id,
            security_protocol,
            sasl,
            tls,
            topic_run_events,
        })
    }

    /// The `KAFKA_SSL_*` files: each must be a readable file, the client
    /// certificate and key go together, and none of them means anything
    /// without TLS (set there, they would silently do nothing, so they are
    /// refused).
    fn kafka_tls(
        r: &mut Reader<'_>,
        protocol: KafkaSecurityProtocol,
        env: Option<Environment>,
    ) -> KafkaTls {
        const FILES: [&str; 3] = [
            "KAFKA_SSL_CA_LOCATION",
            "KAFKA_SSL_CERTIFICATE_LOCATION",
            "KAFKA_SSL_KEY_LOCATION",
        ];
        const PASSWORD: &str = "KAFKA_SSL_KEY_PASSWORD";
        if !protocol.uses_tls() {
            for var in FILES.into_iter().chain([PASSWORD]) {
                if r.raw(var).is_some() {
                    r.problem(
                        var,
                        "is only used with KAFKA_SECURITY_PROTOCOL ssl or sasl_ssl",
                    );
                }
            }
            return KafkaTls::default();
        }
        let mut file = |var: &'static str| {
            let path = PathBuf::from(r.raw(var)?.trim());
            match std::fs::File::open(&path).and_then(|f| f.metadata()) {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => r.problem(var, format!("{} is not a file", path.display())),
                Err(e) => r.problem(var, format!("cannot read {}: {e}", path.display())),
            }
            Some(path)
        };
        let ca_location = file(FILES[0]);
        let certificate_location = file(FILES[1]);
        let key_location = file(FILES[2]);
        match (&certificate_location, &key_location) {
            (Some(_), None) => r.problem(
                "KAFKA_SSL_KEY_LOCATION",
                "is required with KAFKA_SSL_CERTIFICATE_LOCATION (mutual TLS needs both)",
            ),
            (None, Some(_)) => r.problem(
                "KAFKA_SSL_CERTIFICATE_LOCATION",
                "is required with KAFKA_SSL_KEY_LOCATION (mutual TLS needs both)",
            ),
            _ => {}
        }
        let key_password = if r.raw(PASSWORD).is_none() {
            None
        } else if key_location.is_none() {
            r.problem(PASSWORD, "is only used with KAFKA_SSL_KEY_LOCATION");
            None
        } else {
            r.secret(PASSWORD, env)
        };
        KafkaTls {
            ca_location,
            certificate_location,
            key_location,
            key_password,
        }
    }

    fn vault(r: &mut Reader<'_>) -> Option<VaultSettings> {
        let raw = r.raw("VAULT_ADDR")?;
        let addr = r.url("VAULT_ADDR", raw);
        let role = r.required("VAULT_ROLE").unwrap_or_default();
        Some(VaultSettings {
            addr,
            role,
            auth_path: r
                .raw("VAULT_AUTH_PATH")
                .unwrap_or_else(|| "kubernetes".to_owned()),
            token_path: r
                .raw("VAULT_TOKEN_PATH")
                .unwrap_or_else(|| "/var/run/secrets/kubernetes.io/serviceaccount/token".to_owned())
                .into(),
            kv_mount: r
                .raw("VAULT_KV_MOUNT")
                .unwrap_or_else(|| "secret".to_owned()),
            secret_path: r
                .raw("VAULT_SECRET_PATH")
                .unwrap_or_else(|| "coffeebuddy".to_owned()),
        })
    }

    fn ory(r: &mut Reader<'_>, required: bool) -> Option<OrySettings> {
        const VARS: [&str; 3] = ["ORY_ISSUER_URL", "ORY_AUDIENCE", "ORY_JWKS_URL"];
        let any_set = VARS.iter().any(|v| r.raw(v).is_some());
        if !required && !any_set {
            return None;
        }
        // Either all three or, for functions that do not need Ory, none: a
        // half-configured verifier would be a silent security hole.
        // The issuer is compared with the token's `iss` byte for byte, so
        // it is validated as a URL but kept as written (only surrounding
        // whitespace goes): Ory's issuers usually end with `/`, and trimming
        // it would refuse every valid token.
        let issuer_url = r.required("ORY_ISSUER_URL").map(|v| {
            r.url("ORY_ISSUER_URL", v.clone());
            v.trim().to_owned()
        });
        let audience = r.required("ORY_AUDIENCE");
        let jwks_url = r.required("ORY_JWKS_URL").map(|v| r.url("ORY_JWKS_URL", v));
        Some(OrySettings {
            issuer_url: issuer_url?,
            audience: audience?,
            jwks_url: jwks_url?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const IDENTITY: ServiceIdentity = ServiceIdentity {
        name: "slash-command",
        version: "1.2.3",
        requires_ory: false,
    };

    fn load(
        vars: &[(&str, &str)],
        identity: ServiceIdentity,
    ) -> Result<Settings, LoadSettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(identity, &move |name| map.get(name).cloned())
    }

    const MINIMAL: [(&str, &str); 3] = [
        ("SLACK_SIGNING_SECRET", "s3cr3t-signing"),
        ("SLACK_BOT_TOKEN", "xoxb-real-token"),
        ("DATABASE_URL", "postgres://cb:pw@db/coffeebuddy"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars = MINIMAL.to_vec();
        vars.extend_from_slice(extra);
        vars
    }

    #[test]
    fn an_empty_environment_names_every_required_variable_at_once() {
        let err = load(&[], IDENTITY).unwrap_err();
        assert_eq!(
            err.vars(),
            ["SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "DATABASE_URL"]
        );
        let text = err.to_string();
        assert!(text.contains("3 problems"), "{text}");
    }

    #[test]
    fn the_admin_function_also_requires_every_ory_variable() {
        let admin = ServiceIdentity {
            requires_ory: true,
            ..IDENTITY
        };
        let err = load(&[], admin).unwrap_err();
        assert_eq!(
            err.vars(),
            [
                "SLACK_SIGNING_SECRET",
                "SLACK_BOT_TOKEN",
                "DATABASE_URL",
                "ORY_ISSUER_URL",
                "ORY_AUDIENCE",
                "ORY_JWKS_URL"
            ]
        );
    }

    #[test]
    fn a_minimal_environment_gets_the_documented_defaults() {
        let s = load(&MINIMAL, IDENTITY).unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.service.name, "slash-command");
        assert_eq!(s.service.version, "1.2.3");
        assert_eq!(s.service.env, Environment::Dev);
        assert_eq!(s.log.level, "info");
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.slack.api_base_url, "https://slack.com/api");
        assert_eq!((s.database.pool_min, s.database.pool_max), (0, 10));
        assert!(s.kafka.is_none() && s.vault.is_none() && s.ory.is_none());
        assert_eq!(s.channel_defaults.reminder_offset_minutes, 5);
        assert_eq!(s.channel_defaults.retention_days, 90);
        assert_eq!(s.channel_defaults.timezone, chrono_tz::UTC);
        assert_eq!(s.metrics_path, "/metrics");
        assert_eq!(s.tick_seconds, 60);
    }

    #[test]
    fn a_placeholder_secret_is_refused_outside_dev() {
        for env in ["prod", "test"] {
            let err = load(
                &[
                    ("SERVICE_ENV", env),
                    ("SLACK_SIGNING_SECRET", "__REPLACE_WITH_SIGNING_SECRET__"),
                    ("SLACK_BOT_TOKEN", "changeme"),
                    (
                        "DATABASE_URL",
                        "postgres://cb:__REPLACE_WITH_DB_PASSWORD__@db/cb",
                    ),
                ],
                IDENTITY,
            )
            .unwrap_err();
            assert_eq!(
                err.vars(),
                ["SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "DATABASE_URL"],
                "{env}"
            );
            assert!(err.to_string().contains("placeholder"));
        }
    }

    #[test]
    fn a_placeholder_secret_is_accepted_in_dev() {
        let s = load(
            &[
                ("SERVICE_ENV", "dev"),
                ("SLACK_SIGNING_SECRET", "__REPLACE_WITH_SIGNING_SECRET__"),
                ("SLACK_BOT_TOKEN", "__REPLACE_WITH_BOT_TOKEN__"),
                ("DATABASE_URL", "postgres://localhost/cb"),
            ],
            IDENTITY,
        );
        assert!(s.is_ok());
    }

    #[test]
    fn secrets_never_appear_in_debug_output_or_errors() {
        let s = load(
            &with(&[
                ("KAFKA_BROKERS", "k:9092"),
                ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
                ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                ("KAFKA_SASL_USERNAME", "cb"),
                ("KAFKA_SASL_PASSWORD", "kafka-pass-xyz"),
            ]),
            IDENTITY,
        )
        .unwrap();
        let debug = format!("{s:?}");
        for secret in [
            "s3cr3t-signing",
            "xoxb-real-token",
            "cb:pw",
            "kafka-pass-xyz",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }

        let err = load(
            &[
                ("SERVICE_ENV", "prod"),
                ("SLACK_SIGNING_SECRET", "__REPLACE_WITH_x__"),
                ("SLACK_BOT_TOKEN", "xoxb-real-token"),
                ("DATABASE_URL", "mysql://cb:pw@db"),
            ],
            IDENTITY,
        )
        .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("xoxb-real-token") && !text.contains("cb:pw"),
            "{text}"
        );
    }

    #[test]
    fn every_invalid_value_is_reported_together() {
        let err = load(
            &with(&[
                ("PORT", "eighty"),
                ("SERVICE_ENV", "staging"),
                ("LOG_LEVEL", "info,[[["),
                ("LOG_FORMAT", "xml"),
                ("SLACK_API_BASE_URL", "slack.com/api"),
                ("DATABASE_POOL_MIN", "20"),
                ("DATABASE_POOL_MAX", "5"),
                ("CHANNEL_DEFAULT_REMINDER_MINUTES", "61"),
                ("CHANNEL_DEFAULT_RETENTION_DAYS", "0"),
                ("CHANNEL_DEFAULT_TIMEZONE", "Mars/Olympus"),
                ("METRICS_PATH", "metrics"),
                ("TICK_SECONDS", "0"),
            ]),
            IDENTITY,
        )
        .unwrap_err();
        assert_eq!(
            err.vars(),
            [
                "PORT",
                "SERVICE_ENV",
                "LOG_LEVEL",
                "LOG_FORMAT",
                "SLACK_API_BASE_URL",
                "DATABASE_POOL_MIN",
                "CHANNEL_DEFAULT_REMINDER_MINUTES",
                "CHANNEL_DEFAULT_RETENTION_DAYS",
                "CHANNEL_DEFAULT_TIMEZONE",
                "METRICS_PATH",
                "TICK_SECONDS"
            ]
        );
    }

    #[test]
    fn kafka_with_sasl_needs_mechanism_and_credentials() {
        let err = load(
            &with(&[
                ("KAFKA_BROKERS", "k1:9092,k2:9092"),
                ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ]),
            IDENTITY,
        )
        .unwrap_err();
        assert_eq!(
            err.vars(),
            [
                "KAFKA_SASL_MECHANISM",
                "KAFKA_SASL_USERNAME",
                "KAFKA_SASL_PASSWORD"
            ]
        );
    }

    #[test]
    fn kafka_defaults_to_plaintext_the_service_name_and_the_run_events_topic() {
        let s = load(&with(&[("KAFKA_BROKERS", "127.0.0.1:9092")]), IDENTITY).unwrap();
        let k = s.kafka.unwrap();
        assert_eq!(k.client_id, "slash-command");
        assert_eq!(k.security_protocol, KafkaSecurityProtocol::Plaintext);
        assert!(k.sasl.is_none());
        assert_eq!(k.topic_run_events, DEFAULT_RUN_EVENTS_TOPIC);
    }

    /// A file in the temp directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(contents: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("coffeebuddy-config-test-{}", uuid::Uuid::new_v4()));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }

        fn path(&self) -> &'static str {
            // Tests hold the file for their whole body; leaking the string
            // keeps `with` simple.
            Box::leak(self.0.display().to_string().into_boxed_str())
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn kafka_tls_files_are_taken_when_readable() {
        let (ca, cert, key) = (
            TempFile::new("ca"),
            TempFile::new("cert"),
            TempFile::new("key"),
        );
        let s = load(
            &with(&[
                ("KAFKA_BROKERS", "k:9093"),
                ("KAFKA_SECURITY_PROTOCOL", "ssl"),
                ("KAFKA_SSL_CA_LOCATION", ca.path()),
                ("KAFKA_SSL_CERTIFICATE_LOCATION", cert.path()),
                ("KAFKA_SSL_KEY_LOCATION", key.path()),
                ("KAFKA_SSL_KEY_PASSWORD", "key-pass-xyz"),
            ]),
            IDENTITY,
        )
        .unwrap();
        let tls = s.kafka.as_ref().unwrap().tls.clone();
        assert_eq!(tls.ca_location, Some(ca.0.clone()));
        assert_eq!(tls.certificate_location, Some(cert.0.clone()));
        assert_eq!(tls.key_location, Some(key.0.clone()));
        assert_eq!(
            tls.key_password
                .as_ref()
                .map(|p| p.expose_secret().to_owned()),
            Some("key-pass-xyz".to_owned())
        );
        assert!(!format!("{s:?}").contains("key-pass-xyz"));
    }

    #[test]
    fn a_missing_kafka_tls_file_or_half_a_client_certificate_is_refused() {
        let cert = TempFile::new("cert");
        let dir = std::env::temp_dir().display().to_string();
        let err = load(
            &with(&[
                ("KAFKA_BROKERS", "k:9093"),
                ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
                ("KAFKA_SASL_MECHANISM", "PLAIN"),
                ("KAFKA_SASL_USERNAME", "cb"),
                ("KAFKA_SASL_PASSWORD", "pw"),
                ("KAFKA_SSL_CA_LOCATION", "/no/such/ca.pem"),
                ("KAFKA_SSL_CERTIFICATE_LOCATION", cert.path()),
                ("KAFKA_SSL_KEY_PASSWORD", "pw2"),
            ]),
            IDENTITY,
        )
        .unwrap_err();
        assert_eq!(
            err.vars(),
            [
                "KAFKA_SSL_CA_LOCATION",
                "KAFKA_SSL_KEY_LOCATION",
                "KAFKA_SSL_KEY_PASSWORD"
            ]
        );
        assert!(
            err.to_string().contains("cannot read /no/such/ca.pem"),
            "{err}"
        );

        let err = load(
            &with(&[
                ("KAFKA_BROKERS", "k:9093"),
                ("KAFKA_SECURITY_PROTOCOL", "ssl"),
                ("KAFKA_SSL_CA_LOCATION", Box::leak(dir.into_boxed_str())),
            ]),
            IDENTITY,
        )
        .unwrap_err();
        assert!(err.to_string().contains("is not a file"), "{err}");
    }

    #[test]
    fn kafka_tls_files_without_tls_are_refused_rather_than_ignored() {
        let ca = TempFile::new("ca");
        let err = load(
            &with(&[
                ("KAFKA_BROKERS", "k:9092"),
                ("KAFKA_SSL_CA_LOCATION", ca.path()),
            ]),
            IDENTITY,
        )
        .unwrap_err();
        assert_eq!(err.vars(), ["KAFKA_SSL_CA_LOCATION"]);
        assert!(err.to_string().contains("ssl or sasl_ssl"), "{err}");
    }

    #[test]
    fn with_vault_the_database_url_and_sasl_password_may_come_from_vault_instead() {
        let s = load(
            &[
                ("SERVICE_ENV", "prod"),
                ("VAULT_ADDR", "https://vault:8200"),
                ("VAULT_ROLE", "coffeebuddy"),
                ("KAFKA_BROKERS", "k:9093"),
                ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
                ("KAFKA_SASL_MECHANISM", "PLAIN"),
                ("KAFKA_SASL_USERNAME", "cb"),
            ],
            IDENTITY,
        )
        .unwrap();
        assert!(s.secrets_pending);
        assert!(s.database.url.expose_secret().is_empty());

        let err = load(
            &[
                ("SERVICE_ENV", "prod"),
                ("VAULT_ADDR", "https://vault:8200"),
                ("VAULT_ROLE", "coffeebuddy"),
                ("DATABASE_URL", "mysql://db"),
            ],
            IDENTITY,
        )
        .unwrap_err();
        assert_eq!(
            err.vars(),
            ["DATABASE_URL"],
            "a malformed fallback is named"
        );
    }

    #[test]
    fn the_ory_issuer_is_kept_exactly_as_written_for_the_iss_comparison() {
        let s = load(
            &with(&[
                ("ORY_ISSUER_URL", " http://127.0.0.1:4444/ "),
                ("ORY_AUDIENCE", "coffeebuddy-admin"),
                (
                    "ORY_JWKS_URL",
                    "http://127.0.0.1:4444/.well-known/jwks.json/",
                ),
            ]),
            IDENTITY,
        )
        .unwrap();
        let ory = s.ory.unwrap();
        assert_eq!(ory.issuer_url, "http://127.0.0.1:4444/");
        assert_eq!(ory.jwks_url, "http://127.0.0.1:4444/.well-known/jwks.json");

        let err = load(
            &with(&[
                ("ORY_ISSUER_URL", "ory.internal/"),
                ("ORY_AUDIENCE", "coffeebuddy-admin"),
                ("ORY_JWKS_URL", "https://ory.internal/jwks"),
            ]),
            IDENTITY,
        )
        .unwrap_err();
        assert_eq!(err.vars(), ["ORY_ISSUER_URL"]);
    }

    #[test]
    fn half_an_ory_configuration_is_refused_even_where_ory_is_optional() {
        let err = load(
            &with(&[("ORY_ISSUER_URL", "https://ory.internal")]),
            IDENTITY,
        )
        .unwrap_err();
        assert_eq!(err.vars(), ["ORY_AUDIENCE", "ORY_JWKS_URL"]);
    }

    #[test]
    fn vault_needs_a_role_and_fills_in_kubernetes_defaults() {
        let err = load(&with(&[("VAULT_ADDR", "https://vault:8200")]), IDENTITY).unwrap_err();
        assert_eq!(err.vars(), ["VAULT_ROLE"]);

        let s = load(
            &with(&[
                ("VAULT_ADDR", "https://vault:8200/"),
                ("VAULT_ROLE", "coffeebuddy"),
            ]),
            IDENTITY,
        )
        .unwrap();
        let v = s.vault.unwrap();
        assert_eq!(v.addr, "https://vault:8200");
        assert_eq!(v.auth_path, "kubernetes");
        assert_eq!(v.kv_mount, "secret");
        assert_eq!(v.secret_path, "coffeebuddy");
    }

    #[test]
    fn with_vault_the_slack_variables_are_not_required_and_secrets_are_pending() {
        let s = load(
            &[
                ("SERVICE_ENV", "prod"),
                ("DATABASE_URL", "postgres://cb:pw@db/coffeebuddy"),
                ("VAULT_ADDR", "https://vault:8200"),
                ("VAULT_ROLE", "coffeebuddy"),
            ],
            IDENTITY,
        )
        .unwrap();
        assert!(s.secrets_pending);
        assert!(s.slack.signing_secret.expose_secret().is_empty());

        let without_vault = load(&MINIMAL, IDENTITY).unwrap();
        assert!(!without_vault.secrets_pending);
    }

    #[test]
    fn with_vault_slack_variables_left_in_the_environment_are_not_judged() {
        let s = load(
            &[
                ("SERVICE_ENV", "prod"),
                ("SLACK_SIGNING_SECRET", "__REPLACE_WITH_SIGNING_SECRET__"),
                ("SLACK_BOT_TOKEN", "xoxb-stale"),
                ("DATABASE_URL", "postgres://cb:pw@db/coffeebuddy"),
                ("VAULT_ADDR", "https://vault:8200"),
                ("VAULT_ROLE", "coffeebuddy"),
            ],
            IDENTITY,
        )
        .unwrap();
        assert!(s.secrets_pending, "Vault replaces them");
    }

    #[test]
    fn with_vault_other_problems_are_still_named_together() {
        let err = load(
            &[
                ("SERVICE_ENV", "prod"),
                ("VAULT_ADDR", "http://"),
                ("TICK_SECONDS", "0"),
            ],
            IDENTITY,
        )
        .unwrap_err();
        assert_eq!(err.vars(), ["VAULT_ADDR", "VAULT_ROLE", "TICK_SECONDS"]);
    }

    #[test]
    fn a_url_without_a_host_is_refused() {
        for bad in ["http://", "https:///", "https://vault:99999"] {
            let err = load(&with(&[("SLACK_API_BASE_URL", bad)]), IDENTITY).unwrap_err();
            assert_eq!(err.vars(), ["SLACK_API_BASE_URL"], "{bad}");
        }
    }

    #[test]
    fn blank_values_count_as_unset() {
        let s = load(&with(&[("PORT", ""), ("KAFKA_BROKERS", "  ")]), IDENTITY).unwrap();
        assert_eq!(s.port, 8080);
        assert!(s.kafka.is_none());
    }

    #[test]
    fn channel_defaults_and_ports_within_bounds_are_taken() {
        let s = load(
            &with(&[
                ("PORT", "0"),
                ("CHANNEL_DEFAULT_REMINDER_MINUTES", "0"),
                ("CHANNEL_DEFAULT_RETENTION_DAYS", "3650"),
                ("CHANNEL_DEFAULT_TIMEZONE", "Europe/Berlin"),
                ("SLACK_API_BASE_URL", "http://127.0.0.1:9999/api/"),
            ]),
            IDENTITY,
        )
        .unwrap();
        assert_eq!(s.port, 0);
        assert_eq!(s.channel_defaults.reminder_offset_minutes, 0);
        assert_eq!(s.channel_defaults.retention_days, 3650);
        assert_eq!(s.channel_defaults.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(s.slack.api_base_url, "http://127.0.0.1:9999/api");
    }
}
