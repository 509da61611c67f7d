//! `/coffee [pickup] [note]` text never panics, every refusal renders as a
//! message, and what is accepted keeps its promises: a pickup strictly
//! later than now, a note within its limits with nothing invisible in it.
//!
//! Input: 8 bytes of `now` (Unix seconds, little endian, kept within
//! chrono's range), 1 byte choosing the channel's time zone, then the text.
#![no_main]

use chrono::DateTime;
use chrono_tz::Tz;
use coffeebuddy_shared::domain::command::{parse_coffee_command, CoffeeCommand, MAX_NOTE_CHARS};
use coffeebuddy_shared::domain::text::find_invisible;
use libfuzzer_sys::fuzz_target;

const ZONES: [Tz; 6] = [
    chrono_tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::Europe::Berlin,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Pacific::Chatham,
    chrono_tz::Australia::Lord_Howe,
];

fuzz_target!(|data: &[u8]| {
    let Some((now, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((&zone, text)) = rest.split_first() else {
        return;
    };
    // 1970 to about 2100: the range a Slack request can carry.
    let now = i64::from_le_bytes(*now).rem_euclid(4_102_444_800);
    let Some(now) = DateTime::from_timestamp(now, 0) else {
        return;
    };
    let tz = ZONES[usize::from(zone) % ZONES.len()];
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    match parse_coffee_command(text, now, tz) {
        Ok(CoffeeCommand::Start(start)) => {
            if let Some(pickup) = &start.pickup {
                assert!(pickup.at() > now, "{text:?}");
                let _ = pickup.display_in(tz);
            }
            if let Some(note) = &start.note {
                let note = note.as_ref();
                assert!(!note.is_empty() && note.chars().count() <= MAX_NOTE_CHARS);
                assert!(!note.chars().any(char::is_control), "{note:?}");
                assert_eq!(find_invisible(note), None, "{note:?}");
            }
        }
        Ok(_) => {}
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
