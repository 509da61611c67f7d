//! What Slack posts to our endpoints, after the signature check: an
//! interaction (`payload=<JSON>` form) or a slash command form. Never
//! panics; a submitted order is checked as the modal would check it; no
//! parse error echoes a `response_url`.
//!
//! Input: the raw form body.
#![no_main]

use coffeebuddy_shared::domain::order::OrderText;
use coffeebuddy_shared::domain::text::find_invisible;
use coffeebuddy_shared::slack::payloads::{Interaction, SlashCommand};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Interaction::from_form(data) {
        Ok(Interaction::ViewSubmission(view)) => {
            if let Ok(order) = OrderText::parse(view.order_text.as_deref().unwrap_or_default()) {
                assert_eq!(find_invisible(order.as_ref()), None);
            }
            let _ = format!("{view:?}");
        }
        Ok(Interaction::BlockAction(action)) => {
            let debug = format!("{action:?}");
            assert!(debug.contains("trigger_id: [redacted]"), "{debug}");
        }
        Ok(other) => {
            let _ = format!("{other:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match SlashCommand::from_form(data) {
        Ok(command) => {
            let debug = format!("{command:?}");
            assert!(debug.contains("trigger_id: [redacted]"), "{debug}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
