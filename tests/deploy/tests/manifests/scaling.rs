//! Scale to zero (issue 11): every function may scale to zero, with the
//! first pod of a revision and the delay before scaling down chosen, and a
//! request timeout that fits the work.

use std::time::Duration;

use crate::code::{self, ksvc_name};
use crate::helpers::{Manifests, str_at};

fn annotation(manifests: &Manifests, function: &str, key: &str) -> String {
    let ksvcs = manifests.ksvcs();
    let ksvc = ksvcs
        .get(&ksvc_name(function))
        .unwrap_or_else(|| panic!("no ksvc for {function}"));
    str_at(&ksvc.value["spec"]["template"]["metadata"]["annotations"][key])
        .unwrap_or_else(|| panic!("{ksvc}: no {key}"))
}

/// A Knative duration such as `15m`, `90s` or `0s`.
fn duration(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[test]
fn every_function_scales_to_zero_and_a_new_revision_still_proves_it_starts() {
    let manifests = Manifests::load();
    for function in code::functions() {
        assert_eq!(
            annotation(&manifests, &function, "autoscaling.knative.dev/min-scale"),
            "0",
            "{function}: scale to zero"
        );
        // One pod at rollout: a revision becomes ready only once it started
        // (settings, secrets, database), so a bad rollout fails at deploy.
        assert_eq!(
            annotation(
                &manifests,
                &function,
                "autoscaling.knative.dev/initial-scale"
            ),
            "1",
            "{function}: initial-scale"
        );
        let delay = annotation(
            &manifests,
            &function,
            "autoscaling.knative.dev/scale-down-delay",
        );
        let delay =
            duration(&delay).unwrap_or_else(|| panic!("{function}: scale-down-delay {delay}"));
        // Knative refuses more than an hour.
        assert!(delay <= Duration::from_secs(3600), "{function}: {delay:?}");
    }
    // The Slack-facing burst (/coffee, then clicks) keeps its replica for a
    // while; event-only functions do not hold idle pods.
    for function in ["slash-command", "interaction"] {
        let delay = annotation(
            &manifests,
            function,
            "autoscaling.knative.dev/scale-down-delay",
        );
        assert!(
            duration(&delay).is_some_and(|d| d >= Duration::from_secs(300)),
            "{function}: a run's clicks should find the replica warm: {delay}"
        );
    }
}

#[test]
fn a_reminder_tick_fits_well_inside_the_reminder_functions_request_timeout() {
    let manifests = Manifests::load();
    let ksvcs = manifests.ksvcs();
    let reminder = ksvcs.get(&ksvc_name("reminder")).expect("reminder ksvc");
    let timeout = reminder.value["spec"]["template"]["spec"]["timeoutSeconds"]
        .as_u64()
        .expect("timeoutSeconds");
    // A tick waits up to one tick period (TICK_SECONDS, 60 = the PingSource
    // period) for due reminders, then works for at most 45 s.
    let identity = coffeebuddy_shared::config::ServiceIdentity {
        name: "tick-check",
        version: "0",
        requires_ory: false,
    };
    let settings = coffeebuddy_shared::config::Settings::from_lookup(identity, &|name| {
        match name {
            "SLACK_SIGNING_SECRET" | "SLACK_BOT_TOKEN" => Some("x"),
            "DATABASE_URL" => Some("postgres://u@db/coffeebuddy"),
            _ => None,
        }
        .map(str::to_owned)
    })
    .expect("defaults");
    let tick_work = 45;
    assert_eq!(timeout, 120, "{reminder}: the documented 120 s");
    assert!(
        timeout >= settings.tick_seconds + tick_work,
        "{reminder}: timeoutSeconds {timeout} < tick wait {} + work {tick_work}",
        settings.tick_seconds
    );
}
