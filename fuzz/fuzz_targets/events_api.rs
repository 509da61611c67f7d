//! The Events API body (`POST /slack/events`, after the signature check),
//! parsed as the handler does. Never panics; what it accepts is what Slack
//! documents: a `url_verification` carries its challenge (and echoing it
//! back as JSON reads back the same challenge), an `event_callback` has a
//! non-empty `event_id` of at most 255 bytes and, for `app_home_opened`, a
//! well-formed user id.
//!
//! Input: the raw body.
#![no_main]

use coffeebuddy_shared::domain::ids::UserId;
use coffeebuddy_shared::slack::events_api::{parse_events_request, EventsApiRequest, SlackEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_events_request(data) {
        Ok(EventsApiRequest::UrlVerification { challenge }) => {
            // The handler answers `{"challenge": …}`; Slack must read back
            // exactly what it sent.
            let answer = serde_json::json!({ "type": "url_verification", "challenge": challenge });
            let again = parse_events_request(answer.to_string().as_bytes());
            assert_eq!(again, Ok(EventsApiRequest::UrlVerification { challenge }));
        }
        Ok(EventsApiRequest::EventCallback { event_id, event }) => {
            assert!(!event_id.is_empty() && event_id.len() <= 255, "{event_id:?}");
            match &event {
                SlackEvent::AppHomeOpened { user, tab } => {
                    assert!(UserId::parse(user.as_ref()).is_ok_and(|again| &again == user));
                    let _ = tab.len();
                }
                SlackEvent::Other { kind } => assert_ne!(kind, "app_home_opened"),
            }
            let _ = format!("{event:?} {}", event.kind());
        }
        Ok(EventsApiRequest::Other { kind }) => {
            assert!(kind != "url_verification" && kind != "event_callback", "{kind}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
