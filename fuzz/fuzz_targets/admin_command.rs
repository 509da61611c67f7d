//! `/coffee-admin` text never panics; every command and every refusal
//! renders as a message.
//!
//! Input: the text after `/coffee-admin`.
#![no_main]

use coffeebuddy_shared::domain::admin::parse_admin_command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_admin_command(text) {
        Ok(command) => {
            let _ = command.is_open_to_everyone();
            assert!(!command.to_string().is_empty());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
