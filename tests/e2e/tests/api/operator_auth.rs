//! Ory JWTs on the operators' API (DESIGN §1.7): which tokens get in, which
//! get a 401, key rotation, and a JWKS outage. Real HTTP to `local`, the
//! JWKS served by the recording fake.

use std::time::Duration;

use coffeebuddy_test_support::ory::{self, TestKey};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::admin_api::{CHANNEL, OPERATOR, OpsApp};

fn config_path() -> String {
    format!("/admin/api/v1/channels/{CHANNEL}/config")
}

/// GET the config with `authorization`; (status, WWW-Authenticate, body).
async fn get_with(ops: &OpsApp, authorization: Option<&str>) -> (u16, Option<String>, Value) {
    let (status, headers, body) = ops
        .send(Method::GET, &config_path(), authorization, None)
        .await;
    let challenge = headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, challenge, body)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// One readiness answer: (HTTP status, body).
async fn readiness(ops: &OpsApp) -> (u16, Value) {
    let response = reqwest::get(ops.app.server.url("/health/ready"))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Asks for readiness until the JWKS check is `status` (each answer starts
/// the next background fetch, so it follows Ory within a probe or two);
/// the last answer.
async fn readiness_once_jwks_is(ops: &OpsApp, status: &str) -> Value {
    let (_, ready) = ops
        .app
        .readiness_until(&format!("the JWKS check {status}"), |ready| {
            ready["checks"]["ory_jwks"]["status"] == status
        })
        .await;
    ready
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn valid_rs256_and_es256_tokens_are_accepted(pool: PgPool) {
    // Arrange
    let ops = OpsApp::start(pool).await;

    for key in [TestKey::Rsa1, TestKey::Ec1] {
        // Act
        let token = ory::mint(key, &ory::claims(OPERATOR));
        let (status, _, body) = get_with(&ops, Some(&bearer(&token))).await;

        // Assert
        assert_eq!(status, 200, "{key:?}: {body}");
        assert_eq!(body["timezone"], "UTC");
    }
    // A single-string `aud` that is ours is accepted too.
    let mut claims = ory::claims(OPERATOR);
    claims["aud"] = ory::AUDIENCE.into();
    let token = ory::mint(TestKey::Ec1, &claims);
    assert_eq!(get_with(&ops, Some(&bearer(&token))).await.0, 200);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn every_bad_or_missing_token_gets_the_same_401_and_changes_nothing(pool: PgPool) {
    // Arrange
    let ops = OpsApp::start(pool).await;
    let now = chrono::Utc::now().timestamp();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut claims = ory::claims(OPERATOR);
        edit(&mut claims);
        claims
    };
    let valid = ory::claims(OPERATOR);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("Basic credentials", Some("Basic b3BzOnB3".to_owned())),
        ("garbage", Some(bearer("not-a-jwt"))),
        (
            "expired",
            Some(bearer(&ory::mint(
                TestKey::Rsa1,
                &with(&|c| {
                    c["iat"] = (now - 600).into();
                    c["nbf"] = (now - 600).into();
                    c["exp"] = (now - 120).into();
                }),
            ))),
        ),
        (
            "not yet valid",
            Some(bearer(&ory::mint(
                TestKey::Rsa1,
                &with(&|c| c["nbf"] = (now + 120).into()),
            ))),
        ),
        (
            "no exp",
            Some(bearer(&ory::mint(
                TestKey::Rsa1,
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ))),
        ),
        (
            "wrong issuer",
            Some(bearer(&ory::mint(
                TestKey::Rsa1,
                &with(&|c| c["iss"] = "https://evil.example".into()),
            ))),
        ),
        (
            "issuer with a trailing slash",
            Some(bearer(&ory::mint(
                TestKey::Rsa1,
                &with(&|c| c["iss"] = format!("{}/", ory::ISSUER).into()),
            ))),
        ),
        (
            "wrong audience",
            Some(bearer(&ory::mint(
                TestKey::Rsa1,
                &with(&|c| c["aud"] = json!(["another-api"])),
            ))),
        ),
        (
            "no sub",
            Some(bearer(&ory::mint(
                TestKey::Rsa1,
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }),
            ))),
        ),
        (
            "empty sub",
            Some(bearer(&ory::mint(
                TestKey::Rsa1,
                &with(&|c| c["sub"] = "".into()),
            ))),
        ),
        (
            "signed by a key not in the JWKS",
            Some(bearer(&ory::mint(TestKey::Wrong, &valid))),
        ),
        (
            "signed by another key under a published kid",
            Some(bearer(&ory::mint_with_kid(
                TestKey::Wrong,
                TestKey::Rsa1.kid(),
                &valid,
            ))),
        ),
        (
            "alg none",
            Some(bearer(&ory::unsigned(TestKey::Rsa1.kid(), &valid))),
        ),
        (
            "HS256 keyed with the RSA public key",
            Some(bearer(&ory::hs256_with_public_key(&valid))),
        ),
    ];

    for (case, authorization) in &cases {
        // Act: a GET, and a PUT that would change something.
        let (status, challenge, body) = get_with(&ops, authorization.as_deref()).await;
        let (put_status, _, put_body) = ops
            .send(
                Method::PUT,
                &config_path(),
                authorization.as_deref(),
                Some(r#"{"enabled": false}"#),
            )
            .await;

        // Assert: the same answer for every reason, no hint why.
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(body, json!({ "error": "unauthorized" }), "{case}");
        assert!(
            challenge
                .as_deref()
                .unwrap_or_default()
                .starts_with("Bearer"),
            "{case}: {challenge:?}"
        );
        assert_eq!((put_status, put_body), (401, body), "{case}");
    }
    assert_eq!(ops.audit_rows(CHANNEL).await, 0);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn a_rotated_key_is_accepted_after_a_throttled_refetch(pool: PgPool) {
    // Arrange: the verifier has cached a set with only test-rsa-1.
    let throttle = Duration::from_millis(800);
    let ops = OpsApp::start_with(
        pool,
        &[TestKey::Rsa1],
        &[],
        throttle,
        Duration::from_secs(300),
    )
    .await;
    let old = ory::mint(TestKey::Rsa1, &ory::claims(OPERATOR));
    assert_eq!(get_with(&ops, Some(&bearer(&old))).await.0, 200);
    assert_eq!(ops.jwks.fetches(), 1);

    // Act: Ory rotates in a new key, and tokens signed with it arrive at
    // once, along with a flood of made-up kids.
    ops.jwks.publish(&[TestKey::Rsa1, TestKey::Rsa2]);
    let new = ory::mint(TestKey::Rsa2, &ory::claims(OPERATOR));
    let mut early = Vec::new();
    for i in 0..10 {
        let bogus = ory::mint_with_kid(TestKey::Wrong, &format!("bogus-{i}"), &ory::claims("x"));
        early.push(get_with(&ops, Some(&bearer(&bogus))).await.0);
    }
    early.push(get_with(&ops, Some(&bearer(&new))).await.0);
    let fetches_in_window = ops.jwks.fetches();

    // Act: after the throttle window.
    tokio::time::sleep(throttle + Duration::from_millis(200)).await;
    let (status, _, body) = get_with(&ops, Some(&bearer(&new))).await;

    // Assert: at most one fetch in the window (the first unknown kid's, if
    // the window had passed), none per request; the new key works on the
    // first request after the window; the old key still works.
    assert!(early.iter().take(10).all(|s| *s == 401), "{early:?}");
    assert!(fetches_in_window <= 2, "{fetches_in_window} fetches");
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_with(&ops, Some(&bearer(&old))).await.0, 200);
    assert_eq!(ops.jwks.fetches(), fetches_in_window + 1);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn with_the_jwks_down_cached_keys_still_verify_and_readiness_is_degraded(pool: PgPool) {
    // Arrange: no throttle and no cache lifetime, so every request tries to
    // refetch — the harshest case for an outage.
    let ops = OpsApp::start_with(
        pool,
        &[TestKey::Rsa1, TestKey::Ec1],
        &[],
        Duration::ZERO,
        Duration::ZERO,
    )
    .await;
    let token = ory::mint(TestKey::Ec1, &ory::claims(OPERATOR));
    assert_eq!(get_with(&ops, Some(&bearer(&token))).await.0, 200);
    let (_, ready) = readiness(&ops).await;
    assert_eq!(ready["status"], "healthy", "{ready}");
    assert_eq!(ready["checks"]["ory_jwks"]["status"], "healthy");

    // Act: Ory goes down.
    ops.jwks.set_down(true);
    let fetches = ops.jwks.fetches();
    let (status, _, body) = get_with(&ops, Some(&bearer(&token))).await;
    let (put_status, put_body) = ops
        .put(
            &format!("/admin/api/v1/channels/{CHANNEL}/config"),
            r#"{"enabled": false}"#,
        )
        .await;
    // The requests' own fetches failed, and readiness reports the last one.
    let (ready_status, ready) = readiness(&ops).await;

    // Assert: requests verify with the cached keys (after trying Ory), and
    // readiness stays 200 but degraded, saying so.
    assert!(ops.jwks.fetches() > fetches);
    assert_eq!(status, 200, "{body}");
    assert_eq!(put_status, 200, "{put_body}");
    assert_eq!(ready_status, 200, "{ready}");
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["ory_jwks"]["status"], "degraded");
    let error = ready["checks"]["ory_jwks"]["error"].as_str().unwrap();
    assert!(error.contains("cached"), "{error}");
    assert!(!error.contains("127.0.0.1"), "{error}");

    // Act: Ory comes back.
    ops.jwks.set_down(false);
    let ready = readiness_once_jwks_is(&ops, "healthy").await;

    // Assert
    assert_eq!(ready["status"], "healthy", "{ready}");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn readiness_never_waits_on_a_slow_ory_and_turns_healthy_once_the_keys_arrive(pool: PgPool) {
    // Arrange: Ory answers only after far longer than a JWKS fetch may take
    // (2 s), and nothing has fetched the keys yet, as at a cold start.
    let ops = OpsApp::start(pool).await;
    ops.jwks.set_delay(Duration::from_secs(60));

    // Act
    let (first_status, first) = readiness(&ops).await;

    // Assert: the answer did not wait for the fetch (it would have ended in
    // "JWKS unreachable: timed out"): it says the first fetch is under way,
    // and that fetch reached Ory.
    assert_eq!(first_status, 200, "{first}");
    assert_eq!(first["status"], "degraded", "{first}");
    assert_eq!(first["checks"]["database"]["status"], "healthy", "{first}");
    assert_eq!(
        first["checks"]["ory_jwks"]["error"],
        coffeebuddy_shared::auth::NOT_FETCHED_YET,
        "{first}"
    );
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    while ops.jwks.fetches() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no fetch started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Act: Ory speeds up again (the slow fetch times out, and a later
    // probe starts the next one once the throttle allows).
    ops.jwks.set_delay(Duration::ZERO);
    let ready = readiness_once_jwks_is(&ops, "healthy").await;

    // Assert
    assert_eq!(ready["status"], "healthy", "{ready}");
    let token = ory::mint(TestKey::Rsa1, &ory::claims(OPERATOR));
    assert_eq!(get_with(&ops, Some(&bearer(&token))).await.0, 200);
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn with_the_jwks_down_from_the_start_tokens_are_refused_and_readiness_is_degraded(
    pool: PgPool,
) {
    // Arrange
    let ops = OpsApp::start(pool).await;
    ops.jwks.set_down(true);

    // Act
    let token = ory::mint(TestKey::Rsa1, &ory::claims(OPERATOR));
    let (status, _, body) = get_with(&ops, Some(&bearer(&token))).await;
    let (ready_status, ready) = readiness(&ops).await;

    // Assert
    assert_eq!(status, 401, "{body}");
    assert_eq!(body, json!({ "error": "unauthorized" }));
    assert_eq!(ready_status, 200, "{ready}");
    assert_eq!(ready["status"], "degraded", "{ready}");
    let error = ready["checks"]["ory_jwks"]["error"].as_str().unwrap();
    assert!(error.contains("no keys cached"), "{error}");
}

#[sqlx::test(migrator = "coffeebuddy_shared::db::MIGRATOR")]
async fn an_issuer_url_ending_in_a_slash_accepts_the_tokens_ory_issues_with_it(pool: PgPool) {
    // Arrange: ORY_ISSUER_URL as Ory writes it, with a trailing slash.
    let ops = OpsApp::start_with(
        pool,
        &[TestKey::Rsa1],
        &[("ORY_ISSUER_URL", ory::ISSUER_WITH_SLASH)],
        Duration::from_secs(5),
        Duration::from_secs(300),
    )
    .await;
    let mut claims = ory::claims(OPERATOR);
    claims["iss"] = ory::ISSUER_WITH_SLASH.into();
    let mut without_slash = claims.clone();
    without_slash["iss"] = ory::ISSUER_WITH_SLASH.trim_end_matches('/').into();

    // Act
    let (status, _, body) = get_with(&ops, Some(&bearer(&ory::mint(TestKey::Rsa1, &claims)))).await;
    let (refused, _, _) = get_with(
        &ops,
        Some(&bearer(&ory::mint(TestKey::Rsa1, &without_slash))),
    )
    .await;

    // Assert: the exact issuer gets in; another spelling is still refused,
    // and the refusal is counted by reason.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["timezone"], "UTC");
    assert_eq!(refused, 401);
    let metrics = reqwest::get(ops.app.server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("coffeebuddy_auth_refused_total{reason=\"wrong_issuer\"}")),
        "{metrics}"
    );
}
