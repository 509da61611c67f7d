//! A stand-in for Ory: a JWKS server on a real loopback socket and a token
//! minting helper, with the committed test-only keys in `fixtures/`.
//!
//! Point `ORY_JWKS_URL` at [`JwksFake::jwks_url`] (see [`JwksFake::vars`]),
//! then change the published key set while the app runs
//! ([`JwksFake::publish`]) to exercise rotation, or take it down
//! ([`JwksFake::set_down`]) to exercise outages; [`JwksFake::fetches`]
//! counts requests, to check the verifier's cache and throttle.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The issuer every test app expects (`ORY_ISSUER_URL`).
pub const ISSUER: &str = "https://ory.test.invalid";
/// An issuer as Ory writes it, with a trailing slash (`ORY_ISSUER_URL`
/// for the tests that check it is compared as written).
pub const ISSUER_WITH_SLASH: &str = "http://127.0.0.1:4444/";
/// The audience every test app expects (`ORY_AUDIENCE`).
pub const AUDIENCE: &str = "coffeebuddy-admin-api";
/// The JWKS path, as Ory serves it.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// A committed test-only signing key (never used anywhere real).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    /// RS256, kid `test-rsa-1`.
    Rsa1,
    /// RS256, kid `test-rsa-2`: the "rotated in" key.
    Rsa2,
    /// ES256 (P-256), kid `test-ec-1`.
    Ec1,
    /// RS256, kid `test-rsa-wrong`: never published unless a test does so.
    Wrong,
}

impl TestKey {
    /// The key id, as published and as put in token headers.
    pub fn kid(self) -> &'static str {
        match self {
            Self::Rsa1 => "test-rsa-1",
            Self::Rsa2 => "test-rsa-2",
            Self::Ec1 => "test-ec-1",
            Self::Wrong => "test-rsa-wrong",
        }
    }

    /// The signing algorithm.
    pub fn alg(self) -> Algorithm {
        match self {
            Self::Ec1 => Algorithm::ES256,
            _ => Algorithm::RS256,
        }
    }

    /// The private key (PKCS#8 PEM).
    pub fn private_pem(self) -> &'static str {
        match self {
            Self::Rsa1 => include_str!("../fixtures/test-rsa-1.pem"),
            Self::Rsa2 => include_str!("../fixtures/test-rsa-2.pem"),
            Self::Ec1 => include_str!("../fixtures/test-ec-1.pem"),
            Self::Wrong => include_str!("../fixtures/test-rsa-wrong.pem"),
        }
    }

    /// The signing key.
    pub fn encoding_key(self) -> EncodingKey {
        let pem = self.private_pem().as_bytes();
        match self.alg() {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            _ => EncodingKey::from_rsa_pem(pem),
        }
        .expect("test key fixtures are valid PEM")
    }

    /// The public JWK, as Ory publishes it (derived from the private key).
    pub fn jwk(self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key(), self.alg())
            .expect("a public JWK derives from a test key");
        jwk.common.key_id = Some(self.kid().to_owned());
        jwk.common.key_algorithm = Some(KeyAlgorithm::from(self.alg()));
        let mut value = serde_json::to_value(jwk).expect("a JWK serialises");
        value["use"] = "sig".into();
        value
    }
}

/// The public half of [`TestKey::Rsa1`] (PEM), for the HS256 key-confusion
/// attack.
pub const RSA1_PUBLIC_PEM: &str = include_str!("../fixtures/test-rsa-1.pub.pem");

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for operator `sub`: the test issuer and audience, issued
/// now, expiring in five minutes. Tests edit the returned object.
pub fn claims(sub: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "sub": sub,
        "iat": now(),
        "nbf": now(),
        "exp": now() + 300,
        "scp": ["coffeebuddy.admin"],
    })
}

/// A token for `claims`, signed by `key` with its `kid` in the header.
pub fn mint(key: TestKey, claims: &Value) -> String {
    mint_with_kid(key, key.kid(), claims)
}

/// A token signed by `key` but naming `kid` in its header.
pub fn mint_with_kid(key: TestKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(key.alg());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding_key()).expect("a test token signs")
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// An unsigned token (`alg: none`) naming `kid`.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
    format!("{}.{}.", b64_json(&header), b64_json(claims))
}

/// The key-confusion attack: an HS256 token whose HMAC key is the RSA
/// public key a verifier trusts, naming that key's `kid`.
pub fn hs256_with_public_key(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(TestKey::Rsa1.kid().to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(RSA1_PUBLIC_PEM.as_bytes()),
    )
    .expect("an HS256 token signs")
}

#[derive(Debug, Default)]
struct FakeState {
    keys: Vec<TestKey>,
    down: bool,
    fetches: usize,
    /// How long each answer waits.
    delay: Duration,
}

/// The fake JWKS server. Clones share state.
#[derive(Debug, Clone)]
pub struct JwksFake {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl JwksFake {
    /// Serves a JWKS with `keys` on `127.0.0.1:0`.
    pub async fn start(keys: &[TestKey]) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            keys: keys.to_vec(),
            ..FakeState::default()
        }));
        let app = Router::new()
            .route(JWKS_PATH, get(serve_jwks))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the JWKS fake");
        let addr = listener.local_addr().expect("JWKS fake address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("JWKS fake lock")
    }

    /// The `ORY_JWKS_URL` to configure.
    pub fn jwks_url(&self) -> String {
        format!("http://{}{JWKS_PATH}", self.addr)
    }

    /// The three `ORY_*` variables for a test app.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ORY_ISSUER_URL", ISSUER.to_owned()),
            ("ORY_AUDIENCE", AUDIENCE.to_owned()),
            ("ORY_JWKS_URL", self.jwks_url()),
        ]
    }

    /// Replaces the published key set.
    pub fn publish(&self, keys: &[TestKey]) {
        self.lock().keys = keys.to_vec();
    }

    /// While down, every request gets a 503.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Makes every later answer wait `delay` (a slow Ory).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// How many JWKS requests were received (answered or not).
    pub fn fetches(&self) -> usize {
        self.lock().fetches
    }
}

async fn serve_jwks(State(state): State<Arc<Mutex<FakeState>>>) -> Response {
    let (keys, delay) = {
        let mut state = state.lock().expect("JWKS fake lock");
        state.fetches += 1;
        if state.down {
            return (StatusCode::SERVICE_UNAVAILABLE, "ory is down").into_response();
        }
        (state.keys.clone(), state.delay)
    };
    tokio::time::sleep(delay).await;
    let keys: Vec<Value> = keys.into_iter().map(TestKey::jwk).collect();
    axum::Json(json!({ "keys": keys })).into_response()
}
