//! The process's one client for calls out over HTTP(S): Slack's Web API and
//! Ory's JWKS.
//!
//! Building a `reqwest` client loads and parses the system's root
//! certificates (`/etc/ssl/certs`: 140-odd files, 3–9 ms on a 2-core
//! machine), and a cold start must not wait for that (README "Cold start").
//! So the client is built once, on first use, and [`warm_after`] builds it
//! on a blocking thread soon after the function is serving, so that the
//! first call out seldom waits for it. One client also means one root store and
//! one connection pool per process, where each caller used to build its own.
//!
//! Callers set their own overall timeout on every request
//! (`RequestBuilder::timeout`); the client only bounds connecting.

use std::sync::OnceLock;
use std::time::Duration;

/// The longest a connection attempt may take, whatever the request's own
/// timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();

/// The shared client, built on the first call (which then takes a few
/// milliseconds; concurrent first calls wait for the one build).
///
/// # Errors
/// Why the client cannot be built: in practice, no root certificate could
/// be loaded (an image without `ca-certificates`). Every call out then
/// fails with this reason, and [`warm_after`] has logged it once at start.
pub fn client() -> Result<&'static reqwest::Client, &'static str> {
    CLIENT.get_or_init(build).as_ref().map_err(String::as_str)
}

/// Builds the client on a blocking thread after `delay`, unless a call out
/// has built it by then, and logs an error if it cannot be built. The
/// runtime calls it once the function is serving, with
/// `runtime::START_SWEEP_DELAY`: the build is then off the path to the
/// first answers.
pub fn warm_after(delay: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if CLIENT.get().is_some() {
            return;
        }
        let built = tokio::task::spawn_blocking(|| client().err()).await;
        if let Ok(Some(reason)) = built {
            tracing::error!(
                error = reason,
                "calls to Slack and Ory will fail: the HTTPS client cannot be built"
            );
        }
    });
}

fn build() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caller_shares_the_one_client() {
        let first = client().expect("the test machine has root certificates");
        let second = client().expect("the test machine has root certificates");
        assert!(std::ptr::eq(first, second));
    }
}
