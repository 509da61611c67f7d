//! The CloudEvent intake's decoding, as `POST /` does it: headers and body
//! to an event (binary mode with `ce-*` headers, structured mode with
//! `application/cloudevents+json`), then its data to each payload type we
//! consume. Never panics.
//!
//! Input: header lines `name: value` up to an empty line, then the body.
#![no_main]

use coffeebuddy_shared::events::{
    decode_data, partition_key, ChannelConfigChanged, OrderChanged, ReminderSent, RunCloseRequested,
    RunClosed, RunCreated,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = split_head(data);
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let Ok(event) = cloudevents::binding::http::to_event(&headers, body.to_vec()) else {
        return;
    };
    let _ = partition_key(&event);
    let _ = decode_data::<RunCreated>(&event).map_err(|e| e.to_string());
    let _ = decode_data::<OrderChanged>(&event).map_err(|e| e.to_string());
    let _ = decode_data::<RunCloseRequested>(&event).map_err(|e| e.to_string());
    let _ = decode_data::<RunClosed>(&event).map_err(|e| e.to_string());
    let _ = decode_data::<ReminderSent>(&event).map_err(|e| e.to_string());
    let _ = decode_data::<ChannelConfigChanged>(&event).map_err(|e| e.to_string());
});
