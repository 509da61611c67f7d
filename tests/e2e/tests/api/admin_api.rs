//! The operators' REST API (DESIGN §1.7) as an operator meets it: real HTTP
//! to `local`, real Postgres, Ory's JWKS faked by `coffeebuddy_test_support::ory`.

use std::time::Duration;

use coffeebuddy_shared::runtime::Context;
use coffeebuddy_test_support::ory::{self, JwksFake, TestKey};
use coffeebuddy_test_support::slack_fake::SlackFake;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::CoffeeApp;

pub(crate) const CHANNEL: &str = "C0OPS";
pub(crate) const OPERATOR: &str = "ory-operator-7f3a";

/// `local` with Ory configured against a JWKS fake, and an HTTP client.
pub(crate) struct OpsApp {
    pub(crate) app: CoffeeApp,
    pub(crate) jwks: JwksFake,
    client: reqwest::Client,
}

impl OpsApp {
    /// Starts with `keys` published, the default channel settings plus
    /// `extra`, and a verifier whose refetch throttle is `refetch` and cache
    /// lifetime `ttl`.
    pub(crate) async fn start_with(
        pool: PgPool,
        keys: &[TestKey],
        extra: &[(&str, &str)],
        refetch: Duration,
        ttl: Duration,
    ) -> Self {
        let jwks = JwksFake::start(keys).await;
        let vars = jwks.vars();
        let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        let app =
            CoffeeApp::start_customized(pool, SlackFake::start().await, &all, |ctx| Context {
                ory: ctx
                    .ory
                    .as_ref()
                    .map(|v| v.with_refetch_interval(refetch).with_cache_ttl(ttl)),
                ..ctx
            })
            .await;
        Self {
            app,
            jwks,
            client: reqwest::Client::new(),
        }
    }

    pub(crate) async fn start(pool: PgPool) -> Self {
        Self::start_with(
            pool,
            &[TestKey::Rsa1, TestKey::Ec1],
            &[],
            Duration::from_secs(5),
            Duration::from_secs(300),
        )
        .await
    }

    /// Sends `method path` with `authorization` (as given) and `body`;
    /// returns (status, headers, JSON body or Null).
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.request(method, self.app.server.url(path));
        if let Some(auth) = authorization {
            request = request.header("authorization", auth);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", operator_token());
        let (status, _, body) = self
            .send(reqwest::Method::GET, path, Some(&auth), None)
            .await;
        (status, body)
    }

    pub(crate) async fn put(&self, path: &str, body: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", operator_token());
        let (status, _, body) = self
            .send(reqwest::Method::PUT, path, Some(&auth), Some(body))
            .await;
        (status, body)
    }

    pub(crate) async fn audit_rows(&self, channel: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE channel_id = $1")
            .bind(channel)
            .fetch_one(&self.app.ctx.db)
            .await
            .unwrap()
    }

    async fn config_events(&self, channel: &str) -> Vec<Value> {
        sqlx::query_scalar(
            "SELECT payload FROM outbox WHERE event_type = $1 AND partition_key = $2 ORDER BY created_at",
        )
        .bind(coffeebuddy_shared::events::CHANNEL_CONFIG_CHANGED)
        .bind(channel)
        .fetch_all(&self.app.ctx.db)
        .await
        .unwrap()
    }

    async fn channel_exists(&self, channel: &str) -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM channels WHERE channel_id = $1)")
            .bind(channel)
            .fetch_one(&self.app.ctx.db)
            .await
            .unwrap()
    }
}

/// A valid RS256 token for [`OPERATOR`].
pub(crate) fn operator_token() -> String {
    ory::mint(TestKey::Rsa1, &ory::claims(OPERATOR))
}

fn config_path(channel: &str) -> String {
    format!("/admin/api/v1/channels/{channel}/config")
}

fn audit_path(channel: &str) -> String {
    format!("/admin/api/v1/channels/{channel}/audit")
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_channel_never_seen_reads_as_its_defaults_without_being_created(pool: PgPool) {
    // Arrange
    let ops = OpsApp::start_with(
        pool,
        &[TestKey::Rsa1],
        &[
            ("CHANNEL_DEFAULT_REMINDER_MINUTES", "7"),
            ("CHANNEL_DEFAULT_RETENTION_DAYS", "30"),
            ("CHANNEL_DEFAULT_TIMEZONE", "Europe/Berlin"),
        ],
        Duration::from_secs(5),
        Duration::from_secs(300),
    )
    .await;

    // Act
    let (status, body) = ops.get(&config_path(CHANNEL)).await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "enabled": true,
            "reminders_enabled": true,
            "reminder_offset_minutes": 7,
            "retention_days": 30,
            "timezone": "Europe/Berlin",
            "auto_close_minutes": null
        })
    );
    assert!(!ops.channel_exists(CHANNEL).await);
    let (status, body) = ops.get(&audit_path(CHANNEL)).await;
    assert_eq!((status, body), (200, json!([])));
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_put_changes_only_the_given_fields_and_is_audited_with_an_event(pool: PgPool) {
    // Arrange
    let ops = OpsApp::start(pool).await;

    // Act
    let (status, body) = ops
        .put(
            &config_path(CHANNEL),
            r#"{"reminder_offset_minutes": 12, "timezone": "America/New_York"}"#,
        )
        .await;

    // Assert: the answer and a later GET show the change, the rest is default.
    let expected = json!({
        "enabled": true,
        "reminders_enabled": true,
        "reminder_offset_minutes": 12,
        "retention_days": 90,
        "timezone": "America/New_York",
        "auto_close_minutes": null
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, expected);
    assert_eq!(
        ops.get(&config_path(CHANNEL)).await,
        (200, expected.clone())
    );

    // Assert: one audit row, the operator's sub as actor, before and after.
    let (status, audit) = ops.get(&audit_path(CHANNEL)).await;
    assert_eq!(status, 200, "{audit}");
    let rows = audit.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{audit}");
    assert_eq!(rows[0]["actor"], OPERATOR);
    assert_eq!(rows[0]["action"], "api-update");
    assert_eq!(rows[0]["before"]["reminder_offset_minutes"], 5);
    assert_eq!(rows[0]["before"]["timezone"], "UTC");
    assert_eq!(rows[0]["after"], expected);
    assert!(rows[0]["at"].is_string());

    // Assert: the event is in the outbox, written with the change.
    let events = ops.config_events(CHANNEL).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0],
        json!({ "channel_id": CHANNEL, "actor": OPERATOR, "action": "api-update" })
    );
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn every_put_writes_one_audit_row_and_the_trail_reads_newest_first(pool: PgPool) {
    // Arrange
    let ops = OpsApp::start(pool).await;

    // Act
    for body in [
        r#"{"enabled": false}"#,
        r#"{"retention_days": 365}"#,
        r#"{"reminders_enabled": false, "enabled": true}"#,
    ] {
        let (status, answer) = ops.put(&config_path(CHANNEL), body).await;
        assert_eq!(status, 200, "{body}: {answer}");
    }

    // Assert
    assert_eq!(ops.audit_rows(CHANNEL).await, 3);
    assert_eq!(ops.config_events(CHANNEL).await.len(), 3);
    let (_, audit) = ops.get(&audit_path(CHANNEL)).await;
    let rows = audit.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["after"]["reminders_enabled"], false);
    assert_eq!(rows[1]["after"]["retention_days"], 365);
    assert_eq!(rows[2]["after"]["enabled"], false);
    // Each row's before is the previous change's after.
    assert_eq!(rows[0]["before"], rows[1]["after"]);
    assert_eq!(rows[1]["before"], rows[2]["after"]);

    let (status, limited) = ops.get(&format!("{}?limit=1", audit_path(CHANNEL))).await;
    assert_eq!(status, 200);
    assert_eq!(limited.as_array().unwrap().as_slice(), &rows[..1]);
    let (status, body) = ops.get(&format!("{}?limit=0", audit_path(CHANNEL))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"));
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn an_empty_put_answers_the_current_config_and_audits_nothing(pool: PgPool) {
    // Arrange
    let ops = OpsApp::start(pool).await;

    // Act
    let (status, body) = ops.put(&config_path(CHANNEL), "{}").await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reminder_offset_minutes"], 5);
    assert_eq!(ops.audit_rows(CHANNEL).await, 0);
    assert!(ops.config_events(CHANNEL).await.is_empty());
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn invalid_puts_are_refused_with_a_json_error_and_change_nothing(pool: PgPool) {
    // Arrange: a channel with a known configuration.
    let ops = OpsApp::start(pool).await;
    let (status, before) = ops
        .put(&config_path(CHANNEL), r#"{"reminder_offset_minutes": 10}"#)
        .await;
    assert_eq!(status, 200);

    for (body, mentions) in [
        (r#"{"reminder_offset_minutes": 61}"#, "0 to 60"),
        (r#"{"reminder_offset_minutes": -1}"#, "0 to 60"),
        (r#"{"retention_days": 0}"#, "1 to 3650"),
        (r#"{"retention_days": 3651}"#, "1 to 3650"),
        (r#"{"timezone": "Mars/Olympus"}"#, "time zone"),
        (r#"{"enabled": false, "colour": "blue"}"#, "unknown field"),
        (r#"{"enabled": "no"}"#, "true or false"),
        (r#"{"reminder_offset_minutes": "5"}"#, "0 to 60"),
        (r#"{"enabled": false"#, "JSON"),
        (r#"["enabled"]"#, "JSON object"),
    ] {
        // Act
        let (status, answer) = ops.put(&config_path(CHANNEL), body).await;

        // Assert
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(mentions), "{body}: {answer}");
    }
    assert_eq!(ops.audit_rows(CHANNEL).await, 1);
    assert_eq!(ops.config_events(CHANNEL).await.len(), 1);
    assert_eq!(ops.get(&config_path(CHANNEL)).await, (200, before));
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn an_invalid_channel_id_is_a_400_on_every_route(pool: PgPool) {
    // Arrange
    let ops = OpsApp::start(pool).await;

    for bad in ["general", "c0lower", "U0USER", "C0%20X"] {
        // Act
        let get = ops.get(&config_path(bad)).await;
        let put = ops.put(&config_path(bad), r#"{"enabled": false}"#).await;
        let audit = ops.get(&audit_path(bad)).await;

        // Assert
        for (status, body) in [get, put, audit] {
            assert_eq!(status, 400, "{bad}: {body}");
            assert!(body["error"].is_string(), "{bad}: {body}");
        }
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&ops.app.ctx.db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn without_ory_settings_local_answers_503_not_configured(pool: PgPool) {
    // Arrange: `local` without ORY_* (a developer's laptop).
    let app = CoffeeApp::start(pool).await;
    let client = reqwest::Client::new();
    let token = ory::mint(TestKey::Rsa1, &ory::claims(OPERATOR));

    for (method, path) in [
        (reqwest::Method::GET, config_path(CHANNEL)),
        (reqwest::Method::PUT, config_path(CHANNEL)),
        (reqwest::Method::GET, audit_path(CHANNEL)),
    ] {
        // Act
        let response = client
            .request(method, app.server.url(&path))
            .bearer_auth(&token)
            .body("{}")
            .send()
            .await
            .unwrap();

        // Assert
        assert_eq!(response.status().as_u16(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "error": "admin API not configured" }));
    }
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn unknown_paths_and_methods_under_the_api_answer_json_404_and_405(pool: PgPool) {
    // Arrange
    let ops = OpsApp::start(pool).await;
    let auth = format!("Bearer {}", operator_token());

    // Act + Assert: paths that are not resources, with or without a token.
    for path in [
        "/admin/api/v1".to_owned(),
        "/admin/api/v1/".to_owned(),
        "/admin/api/v1/nope".to_owned(),
        "/admin/api/v1/channels".to_owned(),
        format!("/admin/api/v1/channels/{CHANNEL}"),
        format!("/admin/api/v1/channels/{CHANNEL}/config/extra"),
    ] {
        for authorization in [Some(auth.as_str()), None] {
            let (status, headers, body) = ops
                .send(reqwest::Method::GET, &path, authorization, None)
                .await;
            assert_eq!(status, 404, "{path}");
            assert_eq!(body, json!({ "error": "not found" }), "{path}");
            assert_eq!(
                headers["content-type"], "application/json",
                "{path}: a JSON body"
            );
        }
    }

    // Methods a resource does not have: 405 with Allow, in JSON.
    for (method, path, allow) in [
        (
            reqwest::Method::DELETE,
            config_path(CHANNEL),
            "GET, HEAD, PUT",
        ),
        (
            reqwest::Method::POST,
            config_path(CHANNEL),
            "GET, HEAD, PUT",
        ),
        (reqwest::Method::PUT, audit_path(CHANNEL), "GET, HEAD"),
        (reqwest::Method::DELETE, audit_path(CHANNEL), "GET, HEAD"),
    ] {
        let (status, headers, body) = ops
            .send(method.clone(), &path, Some(&auth), Some("{}"))
            .await;
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(
            body,
            json!({ "error": "method not allowed" }),
            "{method} {path}"
        );
        assert_eq!(headers["allow"], allow, "{method} {path}");
    }
    assert_eq!(ops.audit_rows(CHANNEL).await, 0);
}
