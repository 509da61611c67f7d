//! AWS Lambda: the same function, served through the Lambda Runtime API
//! instead of a socket (cargo feature `lambda`).
//!
//! [`super::run`] switches here when [`RUNTIME_API_VAR`] is set, which Lambda
//! does for every function it starts. Everything before serving is the same
//! as on Knative (settings, Vault, the schema check, the router with health
//! and metrics); only the transport differs: `lambda_http` polls the Runtime
//! API for the next invocation, turns the API Gateway (REST or HTTP API),
//! Function URL or ALB event into an `http::Request`, passes it to the very
//! router a Knative pod serves, and posts the answer back. So `POST
//! /slack/commands` checks Slack's signature over the exact body bytes, and
//! `POST /` takes CloudEvents, unchanged.
//!
//! Lambda starts a process without `PORT` and freezes it between
//! invocations; nothing else changes. Background work (the outbox relay)
//! runs only while an invocation does, which is why the ping schedule's
//! outbox sweep matters more there (see the README's "AWS Lambda").

use anyhow::Context as _;
use axum::Router;

/// Set by Lambda to the `host:port` of the Runtime API; its presence is what
/// makes a `lambda` build serve through Lambda.
pub const RUNTIME_API_VAR: &str = "AWS_LAMBDA_RUNTIME_API";

/// The variables `lambda_runtime` reads at start (and panics without);
/// checked first so a half-configured environment is a clear error.
const REQUIRED_VARS: [&str; 3] = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Whether this process was started by Lambda.
pub fn is_lambda() -> bool {
    std::env::var_os(RUNTIME_API_VAR).is_some()
}

/// Serves `app` through the Lambda Runtime API until the runtime stops
/// (Lambda ends the process; the loop itself only returns on a Runtime API
/// failure).
pub async fn serve(app: Router) -> anyhow::Result<()> {
    let missing: Vec<&str> = REQUIRED_VARS
        .into_iter()
        .filter(|var| std::env::var_os(var).is_none())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{RUNTIME_API_VAR} is set but {} {} not (Lambda sets them; set them when \
         running the Runtime Interface Emulator by hand)",
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" }
    );
    std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .context("AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not a number of MB")?;
    tracing::info!(
        runtime_api = std::env::var(RUNTIME_API_VAR).unwrap_or_default(),
        "serving through the AWS Lambda Runtime API"
    );
    lambda_http::run(app)
        .await
        .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}
