//! The playground (`/playground`, DESIGN §6): mounted only in dev when no
//! real Slack is configured (`SERVICE_ENV=dev` and no `SLACK_API_BASE_URL`).
//! Then the Slack stand-in runs in this process on its own loopback port and
//! the functions' Slack client is pointed at it over HTTP; anywhere else,
//! `/playground` answers 404 saying why. The five function binaries never
//! mount it: only `coffeebuddy-local` calls [`attach`].

use std::sync::Arc;

use axum::Router;
use coffeebuddy_shared::config::Environment;
use coffeebuddy_shared::runtime::Context;
use coffeebuddy_shared::slack::client::SlackClient;
use coffeebuddy_slack_standin::playground::{FunctionsAddress, Playground, refusal_router};
use secrecy::ExposeSecret;

/// Whether the playground may run: `Err` says why not.
pub fn allowed(env: Environment, slack_api_base_url_given: bool) -> Result<(), &'static str> {
    match (env, slack_api_base_url_given) {
        (Environment::Dev, false) => Ok(()),
        (Environment::Dev, true) => {
            Err("SLACK_API_BASE_URL is set, so CoffeeBuddy talks to that Slack")
        }
        (Environment::Test | Environment::Prod, _) => Err("SERVICE_ENV is not dev"),
    }
}

/// Starts the playground when [`allowed`], pointing `ctx`'s Slack client at
/// its stand-in, and returns the routes to serve (the page, or the refusal).
pub fn attach(mut ctx: Context) -> anyhow::Result<(Context, Router)> {
    let given = std::env::var("SLACK_API_BASE_URL").is_ok_and(|v| !v.trim().is_empty());
    if let Err(reason) = allowed(ctx.settings.service.env, given) {
        return Ok((ctx, refusal_router(reason)));
    }
    // With PORT=0 the port is known only once the runtime listens; the page's
    // requests then go back to the port the browser used.
    let functions = match ctx.settings.port {
        0 => FunctionsAddress::SameAsPage,
        port => FunctionsAddress::Port(port),
    };
    let playground = Playground::start(
        ctx.settings.slack.bot_token.expose_secret(),
        ctx.settings.slack.signing_secret.clone(),
        functions,
    )?;
    let mut settings = (*ctx.settings).clone();
    settings.slack.api_base_url = playground.slack_api_base_url();
    ctx.settings = Arc::new(settings);
    let slack = SlackClient::new(&ctx.settings.slack);
    let ctx = ctx.with_slack_client(slack);
    tracing::info!(
        slack_stand_in = %playground.slack_api_base_url(),
        "no real Slack configured: the playground is on /playground (open http://127.0.0.1:{}/playground)",
        ctx.settings.port
    );
    Ok((ctx, playground.router()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_playground_runs_only_in_dev_without_a_slack_base_url() {
        assert_eq!(allowed(Environment::Dev, false), Ok(()));
        assert!(allowed(Environment::Dev, true).is_err());
        assert!(allowed(Environment::Test, false).is_err());
        assert!(allowed(Environment::Prod, false).is_err());
    }
}
