//! A stand-in for Vault on a real loopback socket: the Kubernetes auth login
//! and KV v2 reads, answered in Vault's own JSON shapes, with every call
//! recorded.
//!
//! Point the app at it with [`VaultFake::vars`] (it writes the
//! ServiceAccount JWT to a [`TokenFile`] for `VAULT_TOKEN_PATH`), then
//! assert on [`VaultFake::calls`]. Switches reproduce what goes wrong in a
//! cluster: [`VaultFake::set_secret`] (missing keys, placeholders),
//! [`VaultFake::set_forbidden`] (a policy without `read`: 403),
//! [`VaultFake::set_down`] (a sealed or starting Vault: 503), and
//! [`VaultFake::unreachable_addr`] (nothing listening). A wrong role is a
//! test configuring another `VAULT_ROLE` than [`ROLE`]: it gets Vault's 400
//! `invalid role name`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{BOT_TOKEN, SIGNING_SECRET};

/// The Kubernetes-auth role the fake knows (`VAULT_ROLE`).
pub const ROLE: &str = "coffeebuddy";
/// The Kubernetes auth mount (`VAULT_AUTH_PATH`).
pub const AUTH_MOUNT: &str = "kubernetes";
/// The KV v2 mount (`VAULT_KV_MOUNT`).
pub const KV_MOUNT: &str = "kv";
/// The secret holding the Slack credentials (`VAULT_SECRET_PATH`), nested on
/// purpose: paths with slashes must work.
pub const SECRET_PATH: &str = "apps/coffeebuddy";
/// The ServiceAccount JWT the fake accepts (and [`TokenFile`] holds).
pub const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.test-serviceaccount-jwt.sig";
/// The client token a successful login returns.
pub const CLIENT_TOKEN: &str = "hvs.test-vault-client-token";

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub enum VaultCall {
    /// `POST /v1/auth/{mount}/login`.
    Login {
        /// The auth mount in the path.
        mount: String,
        /// `role` from the body.
        role: Option<String>,
        /// `jwt` from the body.
        jwt: Option<String>,
    },
    /// `GET /v1/{mount}/data/{path}`.
    Read {
        /// The KV mount in the path.
        mount: String,
        /// The secret path.
        path: String,
        /// The `X-Vault-Token` header.
        token: Option<String>,
    },
}

#[derive(Debug)]
struct FakeState {
    /// `data.data` of the secret at `SECRET_PATH` on `KV_MOUNT`.
    secret: Value,
    forbidden: bool,
    down: bool,
    calls: Vec<VaultCall>,
}

/// The fake Vault server. Clones share state.
#[derive(Debug, Clone)]
pub struct VaultFake {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl VaultFake {
    /// Serves on `127.0.0.1:0`, holding the test Slack secrets
    /// ([`SIGNING_SECRET`], [`BOT_TOKEN`]) under the documented keys.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            secret: json!({
                "slack_signing_secret": SIGNING_SECRET,
                "slack_bot_token": BOT_TOKEN,
            }),
            forbidden: false,
            down: false,
            calls: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/auth/{mount}/login", post(login))
            .route("/v1/{mount}/data/{*path}", get(read))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Vault fake");
        let addr = listener.local_addr().expect("Vault fake address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().expect("Vault fake lock")
    }

    /// The `VAULT_ADDR` to configure.
    pub fn addr(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `VAULT_*` variable for an app using this fake with the JWT in
    /// `token_file`.
    pub fn vars(&self, token_file: &TokenFile) -> Vec<(&'static str, String)> {
        vec![
            ("VAULT_ADDR", self.addr()),
            ("VAULT_ROLE", ROLE.to_owned()),
            ("VAULT_AUTH_PATH", AUTH_MOUNT.to_owned()),
            ("VAULT_TOKEN_PATH", token_file.path().display().to_string()),
            ("VAULT_KV_MOUNT", KV_MOUNT.to_owned()),
            ("VAULT_SECRET_PATH", SECRET_PATH.to_owned()),
        ]
    }

    /// Replaces the secret's key/value data (`data.data` in the answer).
    pub fn set_secret(&self, data: Value) {
        self.lock().secret = data;
    }

    /// While forbidden, KV reads get 403 `permission denied`, as with a
    /// policy that lacks `read` on the path.
    pub fn set_forbidden(&self, forbidden: bool) {
        self.lock().forbidden = forbidden;
    }

    /// While down, every request gets 503 `Vault is sealed` (recorded all
    /// the same).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Every request received, in order.
    pub fn calls(&self) -> Vec<VaultCall> {
        self.lock().calls.clone()
    }

    /// A `VAULT_ADDR` where nothing listens (a port bound and released).
    pub fn unreachable_addr() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        drop(listener);
        format!("http://{addr}")
    }
}

fn vault_error(status: StatusCode, errors: &[&str]) -> Response {
    (status, axum::Json(json!({ "errors": errors }))).into_response()
}

/// The envelope every Vault answer shares.
fn envelope(data: Value, auth: Value) -> Value {
    json!({
        "request_id": "00000000-0000-0000-0000-000000000000",
        "lease_id": "",
        "lease_duration": 0,
        "renewable": false,
        "data": data,
        "auth": auth,
        "warnings": null,
        "wrap_info": null,
    })
}

async fn login(
    State(state): State<Arc<Mutex<FakeState>>>,
    UrlPath(mount): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let role = body["role"].as_str().map(str::to_owned);
    let jwt = body["jwt"].as_str().map(str::to_owned);
    let mut state = state.lock().expect("Vault fake lock");
    state.calls.push(VaultCall::Login {
        mount: mount.clone(),
        role: role.clone(),
        jwt: jwt.clone(),
    });
    if state.down {
        return vault_error(StatusCode::SERVICE_UNAVAILABLE, &["Vault is sealed"]);
    }
    if mount != AUTH_MOUNT {
        return vault_error(
            StatusCode::NOT_FOUND,
            &[&format!(
                "no handler for route \"auth/{mount}/login\". route entry not found."
            )],
        );
    }
    if role.as_deref() != Some(ROLE) {
        return vault_error(
            StatusCode::BAD_REQUEST,
            &[&format!(
                "invalid role name \"{}\"",
                role.unwrap_or_default()
            )],
        );
    }
    if jwt.as_deref() != Some(JWT) {
        return vault_error(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    axum::Json(envelope(
        Value::Null,
        json!({
            "client_token": CLIENT_TOKEN,
            "accessor": "test-accessor",
            "policies": ["default", "coffeebuddy"],
            "token_policies": ["default", "coffeebuddy"],
            "metadata": { "role": ROLE, "service_account_name": "coffeebuddy" },
            "lease_duration": 3600,
            "renewable": true,
            "entity_id": "test-entity",
            "token_type": "service",
            "orphan": true,
        }),
    ))
    .into_response()
}

async fn read(
    State(state): State<Arc<Mutex<FakeState>>>,
    UrlPath((mount, path)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let token = headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut state = state.lock().expect("Vault fake lock");
    state.calls.push(VaultCall::Read {
        mount: mount.clone(),
        path: path.clone(),
        token: token.clone(),
    });
    if state.down {
        return vault_error(StatusCode::SERVICE_UNAVAILABLE, &["Vault is sealed"]);
    }
    if token.as_deref() != Some(CLIENT_TOKEN) || state.forbidden {
        return vault_error(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    if mount != KV_MOUNT || path != SECRET_PATH {
        // Vault's answer for a path with no secret: 404 and no messages.
        return vault_error(StatusCode::NOT_FOUND, &[]);
    }
    axum::Json(envelope(
        json!({
            "data": state.secret,
            "metadata": {
                "created_time": "2026-11-23T10:00:00.000000Z",
                "custom_metadata": null,
                "deletion_time": "",
                "destroyed": false,
                "version": 3,
            },
        }),
        Value::Null,
    ))
    .into_response()
}

/// A ServiceAccount token file in the temp directory, removed on drop.
#[derive(Debug)]
pub struct TokenFile(PathBuf);

impl TokenFile {
    /// A file holding [`JWT`] (with a trailing newline, as a mounted file
    /// may have).
    pub fn new() -> Self {
        Self::with_contents(&format!("{JWT}\n"))
    }

    /// A file holding `contents`.
    pub fn with_contents(contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("coffeebuddy-sa-token-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).expect("write the token file");
        Self(path)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TokenFile {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
