//! Slack's Events API requests (`POST /slack/events`, DESIGN §1.14), parsed
//! from their JSON body after the signature check.
//!
//! - `url_verification`: Slack checks the request URL; answer its
//!   `challenge`.
//! - `event_callback`: one event, identified by `event_id` (the same on
//!   Slack's retries, which also carry `X-Slack-Retry-Num`). We act on
//!   `app_home_opened` for the Home tab; other events are acknowledged and
//!   ignored.

use serde::Deserialize;

use crate::domain::ids::UserId;

/// Header Slack adds to a retried delivery (1, 2, 3).
pub const RETRY_NUM_HEADER: &str = "x-slack-retry-num";
/// Header naming why Slack retried (`http_timeout`, `http_error`…).
pub const RETRY_REASON_HEADER: &str = "x-slack-retry-reason";

/// An Events API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsApiRequest {
    /// Slack checking the request URL.
    UrlVerification {
        /// To be echoed back.
        challenge: String,
    },
    /// One event.
    EventCallback {
        /// Slack's id of the event, unique per workspace event, kept on retries.
        event_id: String,
        /// The event.
        event: SlackEvent,
    },
    /// A request type we do not handle (e.g. `app_rate_limited`).
    Other {
        /// Its `type`.
        kind: String,
    },
}

/// The inner event of an `event_callback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackEvent {
    /// Someone opened CoffeeBuddy's App Home.
    AppHomeOpened {
        /// Who.
        user: UserId,
        /// Which tab: `home` or `messages`.
        tab: String,
    },
    /// An event we do not act on.
    Other {
        /// Its `type`.
        kind: String,
    },
}

impl SlackEvent {
    /// The event's `type`, for the receipt and logs.
    pub fn kind(&self) -> &str {
        match self {
            Self::AppHomeOpened { .. } => "app_home_opened",
            Self::Other { kind } => kind,
        }
    }
}

/// Why a body is not an Events API request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseEventsApiError {
    /// Not JSON, or not the shape Slack documents.
    #[error("not an Events API request: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct Outer {
    #[serde(rename = "type")]
    kind: String,
    challenge: Option<String>,
    event_id: Option<String>,
    event: Option<Inner>,
}

#[derive(Deserialize)]
struct Inner {
    #[serde(rename = "type")]
    kind: String,
    user: Option<String>,
    tab: Option<String>,
}

/// Parses the raw body of `POST /slack/events`.
pub fn parse_events_request(body: &[u8]) -> Result<EventsApiRequest, ParseEventsApiError> {
    let malformed = |what: &str| ParseEventsApiError::Malformed(what.to_owned());
    let outer: Outer =
        serde_json::from_slice(body).map_err(|e| ParseEventsApiError::Malformed(e.to_string()))?;
    match outer.kind.as_str() {
        "url_verification" => Ok(EventsApiRequest::UrlVerification {
            challenge: outer
                .challenge
                .ok_or_else(|| malformed("url_verification without challenge"))?,
        }),
        "event_callback" => {
            let event_id = outer
                .event_id
                .filter(|id| !id.is_empty() && id.len() <= 255)
                .ok_or_else(|| malformed("event_callback without event_id"))?;
            let inner = outer
                .event
                .ok_or_else(|| malformed("event_callback without event"))?;
            let event = match inner.kind.as_str() {
                "app_home_opened" => SlackEvent::AppHomeOpened {
                    user: inner
                        .user
                        .as_deref()
                        .and_then(|u| UserId::parse(u).ok())
                        .ok_or_else(|| malformed("app_home_opened without a user"))?,
                    tab: inner.tab.unwrap_or_else(|| "home".to_owned()),
                },
                _ => SlackEvent::Other { kind: inner.kind },
            };
            Ok(EventsApiRequest::EventCallback { event_id, event })
        }
        _ => Ok(EventsApiRequest::Other { kind: outer.kind }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prop_assert_eq;

    #[test]
    fn url_verification_carries_its_challenge() {
        let body = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        assert_eq!(
            parse_events_request(body),
            Ok(EventsApiRequest::UrlVerification {
                challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".to_owned()
            })
        );
    }

    #[test]
    fn app_home_opened_names_the_person_and_tab() {
        let body = br#"{"type":"event_callback","team_id":"T1","event_id":"Ev01","event_time":1,
            "event":{"type":"app_home_opened","user":"U061F7AUR","channel":"D0LAN2Q65","tab":"home","event_ts":"1.2"}}"#;
        assert_eq!(
            parse_events_request(body),
            Ok(EventsApiRequest::EventCallback {
                event_id: "Ev01".to_owned(),
                event: SlackEvent::AppHomeOpened {
                    user: UserId::parse("U061F7AUR").unwrap(),
                    tab: "home".to_owned()
                }
            })
        );
    }

    #[test]
    fn other_events_and_types_are_recognised_but_not_acted_on() {
        let body = br#"{"type":"event_callback","event_id":"Ev02","event":{"type":"message","user":"U1"}}"#;
        assert!(matches!(
            parse_events_request(body),
            Ok(EventsApiRequest::EventCallback {
                event: SlackEvent::Other { .. },
                ..
            })
        ));
        assert_eq!(
            parse_events_request(br#"{"type":"app_rate_limited","minute_rate_limited":1}"#),
            Ok(EventsApiRequest::Other {
                kind: "app_rate_limited".to_owned()
            })
        );
    }

    /// The properties `fuzz/fuzz_targets/events_api.rs` checks, in the
    /// normal suite: anything accepted is what Slack documents, and a
    /// challenge echoed back reads back the same.
    fn check_accepted(body: &[u8]) {
        match parse_events_request(body) {
            Ok(EventsApiRequest::UrlVerification { challenge }) => {
                let answer =
                    serde_json::json!({ "type": "url_verification", "challenge": challenge });
                assert_eq!(
                    parse_events_request(answer.to_string().as_bytes()),
                    Ok(EventsApiRequest::UrlVerification { challenge })
                );
            }
            Ok(EventsApiRequest::EventCallback { event_id, event }) => {
                assert!(
                    !event_id.is_empty() && event_id.len() <= 255,
                    "{event_id:?}"
                );
                match event {
                    SlackEvent::AppHomeOpened { user, .. } => {
                        assert_eq!(UserId::parse(user.as_ref()), Ok(user.clone()));
                    }
                    SlackEvent::Other { kind } => assert_ne!(kind, "app_home_opened"),
                }
            }
            Ok(EventsApiRequest::Other { kind }) => {
                assert!(
                    kind != "url_verification" && kind != "event_callback",
                    "{kind}"
                );
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }

    /// The fuzz target's seeds (`fuzz/seeds/events_api`).
    const SEEDS: [&str; 7] = [
        include_str!("../../../fuzz/seeds/events_api/seed-url-verification"),
        include_str!("../../../fuzz/seeds/events_api/seed-app-home-opened"),
        include_str!("../../../fuzz/seeds/events_api/seed-app-home-messages-tab"),
        include_str!("../../../fuzz/seeds/events_api/seed-other-event"),
        include_str!("../../../fuzz/seeds/events_api/seed-app-rate-limited"),
        include_str!("../../../fuzz/seeds/events_api/seed-empty-event-id"),
        include_str!("../../../fuzz/seeds/events_api/seed-escaped-challenge"),
    ];

    #[test]
    fn every_seed_of_the_fuzz_target_holds_its_properties() {
        for seed in SEEDS {
            check_accepted(seed.as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_parsed_or_refused_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            check_accepted(&body);
        }

        #[test]
        fn a_seed_with_a_byte_changed_or_cut_holds_its_properties(
            seed in 0..SEEDS.len(),
            at in 0usize..400,
            byte in proptest::num::u8::ANY,
            cut in proptest::bool::ANY,
        ) {
            let mut body = SEEDS[seed].as_bytes().to_vec();
            let at = at % body.len().max(1);
            if cut {
                body.truncate(at);
            } else if let Some(b) = body.get_mut(at) {
                *b = byte;
            }
            check_accepted(&body);
        }

        #[test]
        fn any_challenge_and_event_id_round_trip_or_are_refused(
            challenge in ".{0,80}",
            event_id in ".{0,300}",
            user in "[UW][A-Z0-9]{0,40}",
        ) {
            let verification = serde_json::json!({ "type": "url_verification", "challenge": challenge });
            prop_assert_eq!(
                parse_events_request(verification.to_string().as_bytes()),
                Ok(EventsApiRequest::UrlVerification { challenge: challenge.clone() })
            );
            let callback = serde_json::json!({
                "type": "event_callback",
                "event_id": event_id,
                "event": { "type": "app_home_opened", "user": user, "tab": "home" }
            });
            let parsed = parse_events_request(callback.to_string().as_bytes());
            let valid = !event_id.is_empty() && event_id.len() <= 255 && UserId::parse(&user).is_ok();
            prop_assert_eq!(parsed.is_ok(), valid, "{:?}", parsed);
            check_accepted(callback.to_string().as_bytes());
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for body in [
            &b"not json"[..],
            br#"{"type":"url_verification"}"#,
            br#"{"type":"event_callback","event":{"type":"app_home_opened","user":"U1"}}"#,
            br#"{"type":"event_callback","event_id":"Ev1"}"#,
            br#"{"type":"event_callback","event_id":"Ev1","event":{"type":"app_home_opened","user":"not-a-user"}}"#,
        ] {
            assert!(parse_events_request(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
