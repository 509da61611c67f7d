//! `OryVerifier` against the JWKS fake: every token the operators' API must
//! refuse is refused for its own reason (the HTTP tests can only see 401).

use std::time::Duration;

use coffeebuddy_shared::auth::{OryVerifier, VerifyTokenError, verify_offline};
use coffeebuddy_shared::clock::{ManualClock, SystemClock};
use coffeebuddy_shared::config::OrySettings;
use coffeebuddy_test_support::ory::{self, JwksFake, TestKey};
use serde_json::{Value, json};

async fn verifier(keys: &[TestKey]) -> (OryVerifier, JwksFake) {
    let jwks = JwksFake::start(keys).await;
    let settings = OrySettings {
        issuer_url: ory::ISSUER.to_owned(),
        audience: ory::AUDIENCE.to_owned(),
        jwks_url: jwks.jwks_url(),
    };
    (
        OryVerifier::new(&settings, std::sync::Arc::new(SystemClock)),
        jwks,
    )
}

fn edited(edit: impl Fn(&mut Value)) -> Value {
    let mut claims = ory::claims("ops-1");
    edit(&mut claims);
    claims
}

#[tokio::test]
async fn each_bad_token_is_refused_for_its_own_reason() {
    // Arrange
    let (verifier, _jwks) = verifier(&[TestKey::Rsa1, TestKey::Ec1]).await;
    let now = chrono::Utc::now().timestamp();
    let valid = ory::claims("ops-1");
    let rsa = |claims: &Value| ory::mint(TestKey::Rsa1, claims);
    let cases: Vec<(&str, String, VerifyTokenError)> = vec![
        (
            "expired beyond the leeway",
            rsa(&edited(|c| c["exp"] = (now - 60).into())),
            VerifyTokenError::Expired,
        ),
        (
            "not valid yet beyond the leeway",
            rsa(&edited(|c| c["nbf"] = (now + 60).into())),
            VerifyTokenError::NotYetValid,
        ),
        (
            "wrong issuer",
            rsa(&edited(|c| {
                c["iss"] = "https://ory.test.invalid.evil".into()
            })),
            VerifyTokenError::WrongIssuer,
        ),
        (
            "wrong audience",
            rsa(&edited(|c| c["aud"] = json!(["other"]))),
            VerifyTokenError::WrongAudience,
        ),
        (
            "no exp",
            rsa(&edited(|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            VerifyTokenError::MissingClaim("exp".to_owned()),
        ),
        (
            "no aud",
            rsa(&edited(|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            VerifyTokenError::MissingClaim("aud".to_owned()),
        ),
        (
            "blank sub",
            rsa(&edited(|c| c["sub"] = " ".into())),
            VerifyTokenError::MissingClaim("sub".to_owned()),
        ),
        (
            "unknown key",
            ory::mint(TestKey::Wrong, &valid),
            VerifyTokenError::UnknownKey(TestKey::Wrong.kid().to_owned()),
        ),
        (
            "another key under a published kid",
            ory::mint_with_kid(TestKey::Wrong, TestKey::Rsa1.kid(), &valid),
            VerifyTokenError::BadSignature,
        ),
        (
            "ES256 key named by an RS256 token",
            ory::mint_with_kid(TestKey::Rsa1, TestKey::Ec1.kid(), &valid),
            VerifyTokenError::AlgorithmMismatch,
        ),
        (
            "HS256 keyed with the RSA public key",
            ory::hs256_with_public_key(&valid),
            VerifyTokenError::AlgorithmMismatch,
        ),
    ];

    for (case, token, expected) in cases {
        // Act
        let result = verifier.verify(&token).await;

        // Assert
        assert_eq!(result, Err(expected), "{case}");
    }
    assert!(matches!(
        verifier
            .verify(&ory::unsigned(TestKey::Rsa1.kid(), &valid))
            .await,
        Err(VerifyTokenError::Malformed(_))
    ));
    assert!(matches!(
        verifier.verify("a.b.c").await,
        Err(VerifyTokenError::Malformed(_))
    ));
}

#[tokio::test]
async fn a_valid_token_yields_its_subject_and_a_little_clock_skew_is_tolerated() {
    // Arrange
    let (verifier, jwks) = verifier(&[TestKey::Rsa1, TestKey::Ec1]).await;
    let now = chrono::Utc::now().timestamp();
    let skewed = edited(|c| {
        c["exp"] = (now - 5).into();
        c["nbf"] = (now + 5).into();
    });

    // Act
    let rs = verifier
        .verify(&ory::mint(TestKey::Rsa1, &ory::claims("ops-1")))
        .await;
    let es = verifier.verify(&ory::mint(TestKey::Ec1, &skewed)).await;

    // Assert: one fetch served both (the cache works).
    assert_eq!(rs.unwrap().sub, "ops-1");
    assert_eq!(es.unwrap().sub, "ops-1");
    assert_eq!(jwks.fetches(), 1);
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_window() {
    // Arrange
    let (verifier, jwks) = verifier(&[TestKey::Rsa1]).await;
    let verifier = verifier.with_refetch_interval(Duration::from_secs(60));
    let valid = ory::claims("ops-1");
    verifier
        .verify(&ory::mint(TestKey::Rsa1, &valid))
        .await
        .unwrap();

    // Act: concurrent and sequential made-up kids.
    let attempts = (0..20).map(|i| {
        let verifier = verifier.clone();
        let token = ory::mint_with_kid(TestKey::Wrong, &format!("k{i}"), &valid);
        async move { verifier.verify(&token).await }
    });
    let results = futures_join(attempts).await;

    // Assert: all refused; only the first fetch happened.
    assert!(results.iter().all(Result::is_err));
    assert_eq!(jwks.fetches(), 1);
}

async fn futures_join<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_key_ory_withdrew_stops_verifying_once_the_cache_expires() {
    // Arrange
    let (verifier, jwks) = verifier(&[TestKey::Rsa1, TestKey::Ec1]).await;
    let verifier = verifier
        .with_refetch_interval(Duration::ZERO)
        .with_cache_ttl(Duration::ZERO);
    let token = ory::mint(TestKey::Rsa1, &ory::claims("ops-1"));
    assert!(verifier.verify(&token).await.is_ok());

    // Act
    jwks.publish(&[TestKey::Ec1]);
    let result = verifier.verify(&token).await;

    // Assert
    assert_eq!(
        result,
        Err(VerifyTokenError::UnknownKey(TestKey::Rsa1.kid().to_owned()))
    );
}

#[tokio::test]
async fn token_lifetimes_are_judged_by_the_injected_clock_not_the_system_clock() {
    // Arrange: the verifier's clock stands at 2020-01-01; tokens are minted
    // for that time, long expired by the system clock.
    let pinned = chrono::DateTime::from_timestamp(1_577_836_800, 0).unwrap();
    let clock = ManualClock::new(pinned);
    let jwks = JwksFake::start(&[TestKey::Rsa1]).await;
    let settings = OrySettings {
        issuer_url: ory::ISSUER.to_owned(),
        audience: ory::AUDIENCE.to_owned(),
        jwks_url: jwks.jwks_url(),
    };
    let verifier = OryVerifier::new(&settings, std::sync::Arc::new(clock.clone()));
    let at = pinned.timestamp();
    let token = ory::mint(
        TestKey::Rsa1,
        &edited(|c| {
            c["iat"] = at.into();
            c["nbf"] = at.into();
            c["exp"] = (at + 300).into();
        }),
    );

    // Act + Assert: valid at the pinned time, although the system clock
    // says it expired years ago.
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "ops-1");

    // Before nbf (beyond the leeway) by the clock: not valid yet.
    clock.set(pinned - chrono::Duration::seconds(31));
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyTokenError::NotYetValid)
    );

    // Past exp (beyond the leeway) by the clock: expired.
    clock.set(pinned + chrono::Duration::seconds(330));
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyTokenError::Expired)
    );

    // And a token valid by the system clock is expired for a clock ahead.
    clock.set(chrono::Utc::now() + chrono::Duration::hours(1));
    let fresh = ory::mint(TestKey::Rsa1, &ory::claims("ops-1"));
    assert_eq!(
        verifier.verify(&fresh).await,
        Err(VerifyTokenError::Expired)
    );
}

#[test]
fn the_offline_check_takes_the_same_decisions_as_the_verifier() {
    // Arrange: a JWKS document as Ory publishes it.
    let jwks = json!({ "keys": [TestKey::Rsa1.jwk(), TestKey::Ec1.jwk()] }).to_string();
    let now = chrono::Utc::now().timestamp();
    let check =
        |token: &str| verify_offline(token, jwks.as_bytes(), ory::ISSUER, ory::AUDIENCE, now);

    // Act + Assert
    assert_eq!(
        check(&ory::mint(TestKey::Ec1, &ory::claims("ops-1")))
            .unwrap()
            .sub,
        "ops-1"
    );
    assert_eq!(
        check(&ory::mint(TestKey::Wrong, &ory::claims("ops-1"))),
        Err(VerifyTokenError::UnknownKey(
            TestKey::Wrong.kid().to_owned()
        ))
    );
    assert_eq!(
        check(&ory::hs256_with_public_key(&ory::claims("ops-1"))),
        Err(VerifyTokenError::AlgorithmMismatch)
    );
    assert_eq!(
        check(&ory::mint(
            TestKey::Rsa1,
            &edited(|c| c["exp"] = (now - 60).into())
        )),
        Err(VerifyTokenError::Expired)
    );
    assert_eq!(
        verify_offline(
            &ory::mint(TestKey::Rsa1, &ory::claims("ops-1")),
            b"<html>",
            ory::ISSUER,
            ory::AUDIENCE,
            now
        ),
        Err(VerifyTokenError::KeysUnavailable)
    );
}
