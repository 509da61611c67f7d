//! Ory JWT verification for the operators' admin API (DESIGN §1.7).
//!
//! An operator calls `/admin/api/v1/…` with `Authorization: Bearer <JWT>`
//! issued by Ory. [`OryVerifier`] checks the token against Ory's published
//! keys (the JWKS at `ORY_JWKS_URL`):
//!
//! - only RS256 and ES256, and the algorithm comes from the *key* in the
//!   JWKS, never from the token's header: `alg: none` and HS256 (including
//!   the classic trick of an HMAC keyed with the RSA public key) are refused;
//! - `iss` must equal `ORY_ISSUER_URL` exactly, `aud` must contain
//!   `ORY_AUDIENCE`, `exp` is required, `nbf` is honoured, both with a
//!   [`LEEWAY_SECONDS`] allowance for clock skew and both judged by the
//!   injected clock (`Context::clock`), not the system's, and `sub` is
//!   required and non-empty (it becomes the audit trail's actor).
//!
//! The JWKS is fetched lazily and cached. A token whose `kid` is not in the
//! cache triggers a refetch (Ory rotated its keys), at most once per
//! [`DEFAULT_REFETCH_INTERVAL`] so a flood of made-up `kid`s cannot hammer
//! Ory; the first such token after the window fetches, so a genuinely
//! rotated key is accepted at once. The cache is also refreshed after
//! [`DEFAULT_CACHE_TTL`], so a key Ory withdrew stops being accepted. When
//! Ory cannot be reached, the cached keys keep working.
//!
//! [`Operator`] is the axum extractor: any failure is a 401 with
//! `{"error":"unauthorized"}` and `WWW-Authenticate: Bearer`; the reason goes
//! to the logs (never the token), and [`AUTH_REFUSED_TOTAL`] counts it by
//! a low-cardinality reason ([`VerifyTokenError::reason`]).
//!
//! [`OryVerifier::probe`] is the readiness probe. It is *optional*: Ory
//! unreachable makes the service `degraded`, never `unhealthy`, with or
//! without cached keys. The admin function also serves `/coffee-admin` and
//! the retention tick, which do not need Ory; taking the pod out of rotation
//! because the operators' API cannot verify tokens would break those too
//! (and a cold-started pod would never become ready while Ory is down). The
//! probe's `error` says whether cached keys are still serving. It answers
//! from the last fetch and fetches in the background, so no readiness
//! answer ever waits on Ory.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::clock::SharedClock;
use crate::config::OrySettings;
use crate::probe::{Criticality, Probe};

/// Allowance for clock skew between Ory and us when checking `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 30;
/// Minimum time between two JWKS fetches caused by unknown `kid`s or an
/// expired cache.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(5);
/// How long a fetched key set is trusted before it is fetched again.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// The probe's answer until the first fetch of the JWKS has finished.
pub const NOT_FETCHED_YET: &str = "the JWKS is being fetched for the first time";

/// Timeout of one JWKS request (connect included).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest bearer token looked at; Ory's are around 1 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The name of the readiness check.
pub const PROBE_NAME: &str = "ory_jwks";
/// Counter of refused operator tokens, labelled `reason` (one of
/// [`VerifyTokenError::reason`]'s fixed values).
pub const AUTH_REFUSED_TOTAL: &str = "coffeebuddy_auth_refused_total";

/// What a verified operator token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorClaims {
    /// The operator (Ory's subject id); recorded as the audit actor.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// The claims as read before validation: optional here so that a missing
/// one is reported by the validation (`MissingClaim`) rather than as JSON.
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// Why a token was refused. Logged, never shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyTokenError {
    /// No `Authorization` header.
    #[error("no Authorization header")]
    MissingHeader,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("the Authorization header is not a Bearer token")]
    NotBearer,
    /// Not a JWT at all (shape, base64, JSON), or an algorithm we never
    /// accept in its header (`none`…).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names no key.
    #[error("the token has no kid")]
    MissingKeyId,
    /// No usable key with this id in the JWKS (even after a refetch, or the
    /// refetch was throttled).
    #[error("no usable key with kid {0:?} in the JWKS")]
    UnknownKey(String),
    /// The JWKS could not be fetched and no keys are cached.
    #[error("the JWKS is unavailable and no keys are cached")]
    KeysUnavailable,
    /// The header's `alg` differs from the algorithm of the key it names.
    #[error("the token's algorithm does not match its key's")]
    AlgorithmMismatch,
    /// The signature does not verify with the named key.
    #[error("invalid signature")]
    BadSignature,
    /// `exp` is past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not `ORY_ISSUER_URL`.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain `ORY_AUDIENCE`.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is missing or empty.
    #[error("missing claim {0}")]
    MissingClaim(String),
    /// A claim has the wrong type.
    #[error("invalid claim: {0}")]
    InvalidClaim(String),
}

impl VerifyTokenError {
    /// The `reason` label of [`AUTH_REFUSED_TOTAL`]: a fixed word per kind
    /// of refusal, never a value taken from the token.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::NotBearer => "not_bearer",
            Self::Malformed(_) => "malformed",
            Self::MissingKeyId => "missing_kid",
            Self::UnknownKey(_) => "unknown_key",
            Self::KeysUnavailable => "keys_unavailable",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) | Self::InvalidClaim(_) => "invalid_claims",
        }
    }
}

impl From<jsonwebtoken::errors::Error> for VerifyTokenError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => Self::BadSignature,
            K::ExpiredSignature => Self::Expired,
            K::ImmatureSignature => Self::NotYetValid,
            K::InvalidIssuer => Self::WrongIssuer,
            K::InvalidAudience => Self::WrongAudience,
            K::InvalidAlgorithm => Self::AlgorithmMismatch,
            K::MissingRequiredClaim(c) => Self::MissingClaim(c.clone()),
            K::InvalidClaimFormat(c) => Self::InvalidClaim(c.clone()),
            _ => Self::Malformed(e.to_string()),
        }
    }
}

/// A key from the JWKS we are willing to verify with, and its algorithm.
#[derive(Clone)]
struct VerifyKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// The algorithm a JWK may verify, or why we skip it. Only RSA keys for
/// RS256 and P-256 keys for ES256; a key's declared `alg` must agree.
fn usable_algorithm(jwk: &Jwk) -> Result<Algorithm, &'static str> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key");
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::EllipticCurve(_) => return Err("an EC key on another curve"),
        _ => return Err("not an RSA or EC key"),
    };
    match jwk.common.key_algorithm {
        None => Ok(by_type),
        Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => Ok(by_type),
        Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => Ok(by_type),
        Some(_) => Err("an algorithm other than RS256/ES256"),
    }
}

/// Parses a JWKS document into the usable keys by `kid`, skipping (and
/// logging) keys we do not accept, so one odd key cannot lock everyone out.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, VerifyKey>, String> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = HashMap::new();
    for value in raw.keys {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable JWKS key");
                continue;
            }
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            tracing::warn!("skipping a JWKS key without kid");
            continue;
        };
        let alg = match usable_algorithm(&jwk) {
            Ok(alg) => alg,
            Err(why) => {
                tracing::debug!(kid = %kid, why, "skipping a JWKS key");
                continue;
            }
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => {
                keys.insert(kid, VerifyKey { alg, key });
            }
            Err(e) => tracing::warn!(kid = %kid, error = %e, "skipping an invalid JWKS key"),
        }
    }
    Ok(keys)
}

/// The `kid` a token's header names, after the size and shape checks that
/// come before any key lookup.
fn key_id(token: &str) -> Result<String, VerifyTokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(VerifyTokenError::Malformed("token too long".to_owned()));
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| VerifyTokenError::Malformed(e.to_string()))?;
    header.kid.ok_or(VerifyTokenError::MissingKeyId)
}

/// Every check on a token once its key is known, at `now` (Unix seconds).
fn check_token(
    token: &str,
    key: &VerifyKey,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<OperatorClaims, VerifyTokenError> {
    // The algorithm is the key's; `decode` refuses a header that names
    // another one (HS256 with the RSA public key as secret, say). `exp` and
    // `nbf` are checked below against our clock: the library's own check
    // reads the system clock.
    let mut validation = Validation::new(key.alg);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    let claims = jsonwebtoken::decode::<RawClaims>(token, &key.key, &validation)?.claims;
    let Some(exp) = claims.exp else {
        return Err(VerifyTokenError::MissingClaim("exp".to_owned()));
    };
    check_lifetime(exp, claims.nbf, now)?;
    match claims.sub {
        Some(sub) if !sub.trim().is_empty() => Ok(OperatorClaims { sub, exp }),
        _ => Err(VerifyTokenError::MissingClaim("sub".to_owned())),
    }
}

/// [`OryVerifier::verify`] without the network or the cache: `token`
/// checked against the keys of the JWKS document `jwks` at `now` (Unix
/// seconds). The same code path, for the fuzz targets and for diagnosing a
/// token offline. A JWKS that cannot be read is [`VerifyTokenError::KeysUnavailable`].
pub fn verify_offline(
    token: &str,
    jwks: &[u8],
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<OperatorClaims, VerifyTokenError> {
    let kid = key_id(token)?;
    let keys = parse_jwks(jwks).map_err(|_| VerifyTokenError::KeysUnavailable)?;
    let key = keys
        .get(&kid)
        .ok_or_else(|| VerifyTokenError::UnknownKey(kid.chars().take(64).collect()))?;
    check_token(token, key, issuer, audience, now)
}

/// Whether a token with `exp` and `nbf` (seconds since the epoch) is valid
/// at `now`, allowing [`LEEWAY_SECONDS`] either way. Exact for every input:
/// the comparison is in i128, so no value from a token can overflow it.
fn check_lifetime(exp: u64, nbf: Option<u64>, now: i64) -> Result<(), VerifyTokenError> {
    let now = i128::from(now);
    let leeway = i128::from(LEEWAY_SECONDS);
    // Expired once `now - leeway >= exp`, as jsonwebtoken judges it.
    if now - leeway >= i128::from(exp) {
        return Err(VerifyTokenError::Expired);
    }
    if nbf.is_some_and(|nbf| now + leeway < i128::from(nbf)) {
        return Err(VerifyTokenError::NotYetValid);
    }
    Ok(())
}

/// The bearer token of an `Authorization` header value: `Bearer <token>`
/// (scheme in any case), one token, nothing else.
pub fn bearer_token(value: Option<&HeaderValue>) -> Result<&str, VerifyTokenError> {
    let value = value.ok_or(VerifyTokenError::MissingHeader)?;
    let value = value.to_str().map_err(|_| VerifyTokenError::NotBearer)?;
    let (scheme, token) = value.split_once(' ').ok_or(VerifyTokenError::NotBearer)?;
    let token = token.trim();
    // The scheme is case-insensitive (RFC 7235 §2.1).
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(VerifyTokenError::NotBearer);
    }
    Ok(token)
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, VerifyKey>,
    /// Why the last finished fetch failed; `None` after a success (or
    /// before any fetch finished: see `fetched_at`).
    last_error: Option<String>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last started (successful or not): the throttle.
    attempted_at: Option<Instant>,
}

struct Inner {
    issuer: String,
    audience: String,
    jwks_url: String,
    refetch_interval: Duration,
    cache_ttl: Duration,
    timeout: Duration,
    cache: RwLock<KeyCache>,
    /// Judges `exp` and `nbf`: `Context::clock`, so tests can pin it.
    clock: SharedClock,
    /// One fetch at a time from the request path: concurrent requests with
    /// the same new `kid` wait for one fetch instead of each making one.
    fetching: tokio::sync::Mutex<()>,
}

/// Verifies Ory-issued operator JWTs. Clones share the key cache.
#[derive(Clone)]
pub struct OryVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for OryVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.cached_key_count();
        f.debug_struct("OryVerifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks_url", &self.inner.jwks_url)
            .field("refetch_interval", &self.inner.refetch_interval)
            .field("cache_ttl", &self.inner.cache_ttl)
            .field("cached_keys", &cached)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl OryVerifier {
    /// A verifier for `settings` judging token lifetimes by `clock`, with
    /// the default throttle, cache lifetime and fetch timeout. Nothing is
    /// fetched until it is needed.
    pub fn new(settings: &OrySettings, clock: SharedClock) -> Self {
        Self::build(
            settings,
            clock,
            DEFAULT_REFETCH_INTERVAL,
            DEFAULT_CACHE_TTL,
            DEFAULT_FETCH_TIMEOUT,
        )
    }

    fn build(
        settings: &OrySettings,
        clock: SharedClock,
        refetch_interval: Duration,
        cache_ttl: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer: settings.issuer_url.clone(),
                audience: settings.audience.clone(),
                jwks_url: settings.jwks_url.clone(),
                refetch_interval,
                cache_ttl,
                timeout,
                cache: RwLock::new(KeyCache::default()),
                clock,
                fetching: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A fresh verifier (empty cache) with another minimum time between
    /// fetches; tests shorten it to exercise rotation and the throttle.
    pub fn with_refetch_interval(&self, interval: Duration) -> Self {
        Self::build(
            &self.settings(),
            Arc::clone(&self.inner.clock),
            interval,
            self.inner.cache_ttl,
            self.inner.timeout,
        )
    }

    /// A fresh verifier (empty cache) with another cache lifetime.
    pub fn with_cache_ttl(&self, ttl: Duration) -> Self {
        Self::build(
            &self.settings(),
            Arc::clone(&self.inner.clock),
            self.inner.refetch_interval,
            ttl,
            self.inner.timeout,
        )
    }

    fn settings(&self) -> OrySettings {
        OrySettings {
            issuer_url: self.inner.issuer.clone(),
            audience: self.inner.audience.clone(),
            jwks_url: self.inner.jwks_url.clone(),
        }
    }

    /// How many keys are cached (for the probe and diagnostics).
    pub fn cached_key_count(&self) -> usize {
        self.inner.cache.read().map(|c| c.keys.len()).unwrap_or(0)
    }

    /// Verifies a bearer token (without the `Bearer ` prefix).
    pub async fn verify(&self, token: &str) -> Result<OperatorClaims, VerifyTokenError> {
        let kid = key_id(token)?;
        let key = self.key_for(&kid).await?;
        let now = self.inner.clock.now().timestamp();
        check_token(token, &key, &self.inner.issuer, &self.inner.audience, now)
    }

    /// The key named `kid`, refetching the JWKS when it is unknown or the
    /// cache is old, within the throttle.
    async fn key_for(&self, kid: &str) -> Result<VerifyKey, VerifyTokenError> {
        let (cached, fresh, _) = self.lookup(kid);
        if let Some(key) = cached
            && fresh
        {
            return Ok(key);
        }
        self.refetch_if_allowed().await;
        // A successful refetch replaced the cache (a withdrawn key is gone);
        // a failed or throttled one left it as it was (keys keep working
        // through an Ory outage).
        match self.lookup(kid) {
            (Some(key), _, _) => Ok(key),
            (None, _, false) => Err(VerifyTokenError::KeysUnavailable),
            (None, _, true) => Err(VerifyTokenError::UnknownKey(kid.chars().take(64).collect())),
        }
    }

    /// (the key, whether the cache is within its lifetime, whether any key
    /// is cached).
    fn lookup(&self, kid: &str) -> (Option<VerifyKey>, bool, bool) {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = cache
            .fetched_at
            .is_some_and(|t| t.elapsed() < self.inner.cache_ttl);
        (cache.keys.get(kid).cloned(), fresh, !cache.keys.is_empty())
    }

    fn throttled(&self) -> bool {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .attempted_at
            .is_some_and(|t| t.elapsed() < self.inner.refetch_interval)
    }

    async fn refetch_if_allowed(&self) {
        if self.throttled() {
            return;
        }
        let _one_at_a_time = self.inner.fetching.lock().await;
        // Whoever held the lock before us may just have fetched.
        if self.throttled() {
            return;
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "cannot fetch Ory's JWKS; using the cached keys, if any");
        }
    }

    /// Fetches the JWKS now (no throttle) and replaces the cached keys on
    /// success. On failure the cached keys stay. Returns the number of
    /// usable keys.
    pub async fn refresh(&self) -> Result<usize, String> {
        self.mark_attempt();
        let fetched = self.fetch().await;
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match fetched {
            Ok(keys) => {
                let count = keys.len();
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                cache.last_error = None;
                Ok(count)
            }
            Err(e) => {
                cache.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// What the last finished fetch found, as the probe reports it.
    fn last_fetch(&self) -> Result<(), String> {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (&cache.last_error, cache.keys.len()) {
            (None, _) if cache.fetched_at.is_some() => Ok(()),
            (None, _) => Err(NOT_FETCHED_YET.to_owned()),
            (Some(e), 0) => Err(format!(
                "{e}; no keys cached: operator tokens are refused until it is back"
            )),
            (Some(e), n) => Err(format!("{e}; verifying with {n} cached keys")),
        }
    }

    fn mark_attempt(&self) {
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.attempted_at = Some(Instant::now());
    }

    async fn fetch(&self) -> Result<HashMap<String, VerifyKey>, String> {
        // `without_url`: the URL is configuration, not a secret, but it has
        // no business in a readiness answer anyone on the network can read.
        let response = crate::http_client::client()?
            .get(&self.inner.jwks_url)
            .timeout(self.inner.timeout)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("JWKS unreachable: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("JWKS answered HTTP {}", response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err("JWKS document too large".to_owned());
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("JWKS unreadable: {}", e.without_url()))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("JWKS document too large".to_owned());
        }
        let keys = parse_jwks(&body)?;
        if keys.is_empty() {
            return Err("the JWKS has no RS256 or ES256 key".to_owned());
        }
        Ok(keys)
    }

    /// The readiness probe ([`PROBE_NAME`], optional). It never waits on
    /// Ory: it reports what the last fetch of the JWKS found, and starts the
    /// next fetch in the background once the throttle allows (every
    /// refetch interval at most). Last fetch fine: healthy. Failed:
    /// degraded, saying whether cached keys still verify tokens or every
    /// token is refused. None finished yet (just started): degraded,
    /// [`NOT_FETCHED_YET`].
    ///
    /// Waiting would put Ory on the path of every readiness answer, the
    /// first one of a cold start included: a slow Ory would then hold the
    /// Slack request that woke the admin function (which needs no Ory) for
    /// up to the fetch timeout, against Slack's 3 s.
    pub fn probe(&self) -> Probe {
        let verifier = self.clone();
        Probe::new(PROBE_NAME, Criticality::Optional, move || {
            let verifier = verifier.clone();
            async move {
                let report = verifier.last_fetch();
                if !verifier.throttled() {
                    tokio::spawn(async move { verifier.refetch_if_allowed().await });
                }
                report
            }
        })
    }
}

/// An operator whose bearer token verified: the extractor for every
/// `/admin/api/v1` handler. Needs an [`OryVerifier`] in the router state.
#[derive(Debug, Clone)]
pub struct Operator(pub OperatorClaims);

/// The 401 answer for a request without a valid operator token.
#[derive(Debug)]
pub struct Unauthorized(pub VerifyTokenError);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        // The reason goes to our logs only: telling a caller *why* helps an
        // attacker. The token itself is never logged.
        tracing::warn!(reason = %self.0, "refused an admin API request: no valid operator token");
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"coffeebuddy-admin\""),
            )],
            axum::Json(serde_json::json!({ "error": "unauthorized" })),
        )
            .into_response()
    }
}

impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    OryVerifier: FromRef<S>,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verified = match bearer_token(parts.headers.get(header::AUTHORIZATION)) {
            Ok(token) => OryVerifier::from_ref(state).verify(token).await,
            Err(e) => Err(e),
        };
        verified.map(Self).map_err(|e| {
            metrics::counter!(AUTH_REFUSED_TOTAL, "reason" => e.reason()).increment(1);
            Unauthorized(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn only_a_bearer_header_with_one_token_is_read() {
        assert_eq!(
            bearer_token(Some(&value("Bearer abc.def.ghi"))),
            Ok("abc.def.ghi")
        );
        assert_eq!(bearer_token(Some(&value("bearer abc"))), Ok("abc"));
        assert_eq!(bearer_token(None), Err(VerifyTokenError::MissingHeader));
        for bad in [
            "Basic dXNlcjpwdw==",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "abc",
        ] {
            assert_eq!(
                bearer_token(Some(&value(bad))),
                Err(VerifyTokenError::NotBearer),
                "{bad}"
            );
        }
    }

    fn jwk(json: serde_json::Value) -> Jwk {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_algorithm_comes_from_the_key_and_only_rs256_and_es256_are_usable() {
        let rsa = serde_json::json!({ "kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB" });
        assert_eq!(usable_algorithm(&jwk(rsa.clone())), Ok(Algorithm::RS256));
        let mut rs512 = rsa.clone();
        rs512["alg"] = "RS512".into();
        assert!(usable_algorithm(&jwk(rs512)).is_err());
        let mut es256_on_rsa = rsa.clone();
        es256_on_rsa["alg"] = "ES256".into();
        assert!(usable_algorithm(&jwk(es256_on_rsa)).is_err());
        let mut enc = rsa;
        enc["use"] = "enc".into();
        assert!(usable_algorithm(&jwk(enc)).is_err());

        let ec = serde_json::json!({ "kty": "EC", "crv": "P-256", "kid": "e", "x": "AA", "y": "AA", "alg": "ES256" });
        assert_eq!(usable_algorithm(&jwk(ec)), Ok(Algorithm::ES256));
        let p384 =
            serde_json::json!({ "kty": "EC", "crv": "P-384", "kid": "e", "x": "AA", "y": "AA" });
        assert!(usable_algorithm(&jwk(p384)).is_err());
        let hmac = serde_json::json!({ "kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256" });
        assert!(usable_algorithm(&jwk(hmac)).is_err());
    }

    #[test]
    fn token_lifetimes_are_judged_with_the_leeway_and_never_overflow() {
        let now = 1_700_000_000;
        assert_eq!(check_lifetime(now as u64 + 1, None, now), Ok(()));
        assert_eq!(check_lifetime(now as u64 - 29, None, now), Ok(()));
        assert_eq!(
            check_lifetime(now as u64 - 30, None, now),
            Err(VerifyTokenError::Expired)
        );
        assert_eq!(
            check_lifetime(now as u64 + 60, Some(now as u64 + 30), now),
            Ok(())
        );
        assert_eq!(
            check_lifetime(now as u64 + 60, Some(now as u64 + 31), now),
            Err(VerifyTokenError::NotYetValid)
        );
        assert_eq!(check_lifetime(u64::MAX, Some(0), i64::MAX), Ok(()));
        assert_eq!(
            check_lifetime(0, None, i64::MIN),
            Ok(()),
            "a clock before the epoch is still judged exactly"
        );
        assert_eq!(
            check_lifetime(u64::MAX, Some(u64::MAX), i64::MIN),
            Err(VerifyTokenError::NotYetValid)
        );
    }

    #[test]
    fn every_refusal_has_a_fixed_low_cardinality_reason() {
        let reasons = [
            VerifyTokenError::Malformed("anything a token says".to_owned()).reason(),
            VerifyTokenError::UnknownKey("kid-from-the-token".to_owned()).reason(),
            VerifyTokenError::MissingClaim("x".to_owned()).reason(),
            VerifyTokenError::InvalidClaim("y".to_owned()).reason(),
        ];
        assert_eq!(
            reasons,
            [
                "malformed",
                "unknown_key",
                "invalid_claims",
                "invalid_claims"
            ]
        );
    }

    #[test]
    fn a_jwks_with_odd_keys_keeps_the_good_ones() {
        let body = serde_json::json!({ "keys": [
            { "kty": "oct", "kid": "h", "k": "c2VjcmV0" },
            { "kty": "RSA", "n": "AQAB", "e": "AQAB" },
            { "kty": "weird", "kid": "w" },
            { "kty": "RSA", "kid": "good", "alg": "RS256", "use": "sig", "n": "sXchY2Nz", "e": "AQAB" }
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["good"]);
        assert!(parse_jwks(b"<html>").is_err());
    }
}
