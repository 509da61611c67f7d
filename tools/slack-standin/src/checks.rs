//! Slack's argument checks and size limits for Block Kit, as pure functions.
//!
//! Slack refuses what breaks its limits with HTTP 200 and
//! `{"ok": false, "error": …}`, plus a list of what was wrong (JSON
//! pointers into the request). These functions return that error code and
//! the list; [`crate::model`] turns them into Slack's answer. Counting is in
//! characters (Unicode scalar values), as Slack counts.

use serde_json::Value;

/// Most blocks in one message.
pub const MAX_MESSAGE_BLOCKS: usize = 50;
/// Most blocks in one view (modal or App Home).
pub const MAX_VIEW_BLOCKS: usize = 100;
/// Longest `text` of a section block.
pub const MAX_SECTION_TEXT: usize = 3000;
/// Longest text of one section field.
pub const MAX_FIELD_TEXT: usize = 2000;
/// Most fields in one section.
pub const MAX_FIELDS: usize = 10;
/// Longest header text.
pub const MAX_HEADER_TEXT: usize = 150;
/// Most elements in a context block.
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// Most elements in an actions block.
pub const MAX_ACTIONS_ELEMENTS: usize = 25;
/// Longest button label.
pub const MAX_BUTTON_TEXT: usize = 75;
/// Longest button value.
pub const MAX_BUTTON_VALUE: usize = 2000;
/// Longest `block_id` or `action_id`.
pub const MAX_ID: usize = 255;
/// All the text in one message's blocks, added up (Slack's documented
/// "about 12,000 characters", `msg_blocks_too_long` beyond).
pub const MAX_MESSAGE_BLOCKS_TEXT: usize = 12_000;
/// Longest top-level `text` of a message (`msg_too_long` beyond).
pub const MAX_MESSAGE_TEXT: usize = 40_000;
/// Longest modal title.
pub const MAX_VIEW_TITLE: usize = 24;
/// Longest `private_metadata` of a view.
pub const MAX_PRIVATE_METADATA: usize = 3000;
/// Longest `plain_text_input` a view may ask for.
pub const MAX_INPUT_LENGTH: usize = 3000;

/// Where blocks are shown: the limits and the error code differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// A channel, DM or ephemeral message (`invalid_blocks`).
    Message,
    /// A modal or the App Home (`invalid_arguments`).
    View,
}

/// A refusal: Slack's error code and what was wrong, for `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Slack's `error` (`invalid_blocks`, `msg_too_long`…).
    pub error: &'static str,
    /// Human-readable problems, each naming a JSON pointer, as Slack's
    /// `response_metadata.messages` do.
    pub problems: Vec<String>,
}

impl Refusal {
    /// A refusal with one problem.
    pub fn new(error: &'static str, problem: impl Into<String>) -> Self {
        Self {
            error,
            problems: vec![problem.into()],
        }
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn text_of(v: &Value) -> Option<&str> {
    v.get("text").and_then(Value::as_str)
}

/// Every string held in a text object (`{"type": "mrkdwn"|"plain_text",
/// "text": …}`) anywhere under `v`, added up in characters.
pub fn block_text_chars(v: &Value) -> usize {
    match v {
        Value::Object(map) => {
            let own = match (map.get("type").and_then(Value::as_str), map.get("text")) {
                (Some("mrkdwn" | "plain_text"), Some(Value::String(t))) => chars(t),
                _ => 0,
            };
            // Strings count only inside text objects (above); recursing into
            // one yields 0.
            map.values()
                .map(block_text_chars)
                .fold(own, usize::saturating_add)
        }
        Value::Array(items) => items
            .iter()
            .map(block_text_chars)
            .fold(0, usize::saturating_add),
        _ => 0,
    }
}

/// Checks a message's top-level `text` and `blocks` (either may be absent,
/// not both).
pub fn check_message(text: Option<&str>, blocks: Option<&Value>) -> Result<(), Refusal> {
    let has_blocks = blocks.is_some_and(|b| b.as_array().is_some_and(|a| !a.is_empty()));
    if text.is_none_or(|t| t.is_empty()) && !has_blocks {
        return Err(Refusal::new(
            "no_text",
            "a message needs `text` or `blocks`",
        ));
    }
    if let Some(text) = text
        && chars(text) > MAX_MESSAGE_TEXT
    {
        return Err(Refusal::new(
            "msg_too_long",
            format!(
                "`text` is {} characters, more than {MAX_MESSAGE_TEXT}",
                chars(text)
            ),
        ));
    }
    if let Some(blocks) = blocks {
        check_blocks(blocks, Surface::Message)?;
        let total = block_text_chars(blocks);
        if total > MAX_MESSAGE_BLOCKS_TEXT {
            return Err(Refusal::new(
                "msg_blocks_too_long",
                format!(
                    "the blocks hold {total} characters of text, more than {MAX_MESSAGE_BLOCKS_TEXT}"
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a view (`views.open`/`update`/`push`: `modal`; `views.publish`:
/// `home`).
pub fn check_view(view: &Value, expected_type: &str) -> Result<(), Refusal> {
    let bad = |problem: String| Refusal::new("invalid_arguments", problem);
    if !view.is_object() {
        return Err(bad("`view` must be a JSON object".to_owned()));
    }
    match view.get("type").and_then(Value::as_str) {
        Some(t) if t == expected_type => {}
        other => {
            return Err(bad(format!(
                "`view.type` must be `{expected_type}`, not {other:?} [json-pointer:/view/type]"
            )));
        }
    }
    if expected_type == "modal" {
        match view.get("title").and_then(text_of) {
            None => {
                return Err(bad(
                    "a modal needs a `title` [json-pointer:/view/title]".to_owned()
                ));
            }
            Some(t) if chars(t) > MAX_VIEW_TITLE => {
                return Err(bad(format!(
                    "must be less than {} characters [json-pointer:/view/title/text]",
                    MAX_VIEW_TITLE + 1
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(meta) = view.get("private_metadata").and_then(Value::as_str)
        && chars(meta) > MAX_PRIVATE_METADATA
    {
        return Err(bad(format!(
            "must be less than {} characters [json-pointer:/view/private_metadata]",
            MAX_PRIVATE_METADATA + 1
        )));
    }
    let Some(blocks) = view.get("blocks") else {
        return Err(bad(
            "a view needs `blocks` [json-pointer:/view/blocks]".to_owned()
        ));
    };
    check_blocks(blocks, Surface::View)?;
    let has_input = blocks.as_array().is_some_and(|a| {
        a.iter()
            .any(|b| b.get("type").and_then(Value::as_str) == Some("input"))
    });
    if expected_type == "modal" && has_input && view.get("submit").and_then(text_of).is_none() {
        return Err(bad(
            "a modal with input blocks needs a `submit` [json-pointer:/view/submit]".to_owned(),
        ));
    }
    Ok(())
}

/// Checks a `blocks` array for `surface`.
pub fn check_blocks(blocks: &Value, surface: Surface) -> Result<(), Refusal> {
    let (error, max, root) = match surface {
        Surface::Message => ("invalid_blocks", MAX_MESSAGE_BLOCKS, "/blocks"),
        Surface::View => ("invalid_arguments", MAX_VIEW_BLOCKS, "/view/blocks"),
    };
    let Some(list) = blocks.as_array() else {
        return Err(Refusal::new(
            error,
            format!("`blocks` must be an array [json-pointer:{root}]"),
        ));
    };
    if list.len() > max {
        return Err(Refusal::new(
            error,
            format!("no more than {max} items allowed [json-pointer:{root}]"),
        ));
    }
    let mut problems = Vec::new();
    let mut block_ids = std::collections::HashSet::new();
    for (i, block) in list.iter().enumerate() {
        let at = format!("{root}/{i}");
        check_block(block, &at, surface, &mut problems);
        if let Some(id) = block.get("block_id").and_then(Value::as_str) {
            if chars(id) > MAX_ID {
                problems.push(format!(
                    "must be less than {} characters [json-pointer:{at}/block_id]",
                    MAX_ID + 1
                ));
            }
            if !block_ids.insert(id.to_owned()) {
                problems.push(format!(
                    "duplicate block_id `{id}` [json-pointer:{at}/block_id]"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refusal { error, problems })
    }
}

fn check_text_object(v: Option<&Value>, at: &str, max: usize, problems: &mut Vec<String>) {
    match v {
        Some(obj) => match (obj.get("type").and_then(Value::as_str), text_of(obj)) {
            (Some("mrkdwn" | "plain_text"), Some(t)) => {
                if chars(t) > max {
                    problems.push(format!(
                        "must be less than {} characters [json-pointer:{at}/text]",
                        max + 1
                    ));
                }
            }
            _ => problems.push(format!(
                "must be a text object with `type` and `text` [json-pointer:{at}]"
            )),
        },
        None => problems.push(format!("is required [json-pointer:{at}]")),
    }
}

fn check_element(el: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(id) = el.get("action_id").and_then(Value::as_str)
        && chars(id) > MAX_ID
    {
        problems.push(format!(
            "must be less than {} characters [json-pointer:{at}/action_id]",
            MAX_ID + 1
        ));
    }
    match el.get("type").and_then(Value::as_str) {
        Some("button") => {
            check_text_object(
                el.get("text"),
                &format!("{at}/text"),
                MAX_BUTTON_TEXT,
                problems,
            );
            if let Some(value) = el.get("value").and_then(Value::as_str)
                && chars(value) > MAX_BUTTON_VALUE
            {
                problems.push(format!(
                    "must be less than {} characters [json-pointer:{at}/value]",
                    MAX_BUTTON_VALUE + 1
                ));
            }
        }
        Some("plain_text_input") => {
            let max = el.get("max_length").and_then(Value::as_u64);
            if max.is_some_and(|m| m as usize > MAX_INPUT_LENGTH || m == 0) {
                problems.push(format!(
                    "must be between 1 and {MAX_INPUT_LENGTH} [json-pointer:{at}/max_length]"
                ));
            }
            if let (Some(max), Some(initial)) =
                (max, el.get("initial_value").and_then(Value::as_str))
                && chars(initial) as u64 > max
            {
                problems.push(format!(
                    "must be no longer than max_length [json-pointer:{at}/initial_value]"
                ));
            }
        }
        Some(
            "checkboxes"
            | "radio_buttons"
            | "static_select"
            | "overflow"
            | "users_select"
            | "conversations_select"
            | "channels_select"
            | "datepicker"
            | "timepicker"
            | "image"
            | "number_input"
            | "multi_static_select",
        ) => {}
        other => problems.push(format!(
            "unsupported element type {other:?} [json-pointer:{at}/type]"
        )),
    }
}

fn check_block(block: &Value, at: &str, surface: Surface, problems: &mut Vec<String>) {
    let kind = block.get("type").and_then(Value::as_str);
    match kind {
        Some("section") => {
            let fields = block.get("fields").and_then(Value::as_array);
            if block.get("text").is_none() && fields.is_none() {
                problems.push(format!(
                    "a section needs `text` or `fields` [json-pointer:{at}]"
                ));
            }
            if block.get("text").is_some() {
                check_text_object(
                    block.get("text"),
                    &format!("{at}/text"),
                    MAX_SECTION_TEXT,
                    problems,
                );
            }
            if let Some(fields) = fields {
                if fields.len() > MAX_FIELDS {
                    problems.push(format!(
                        "no more than {MAX_FIELDS} items allowed [json-pointer:{at}/fields]"
                    ));
                }
                for (j, f) in fields.iter().enumerate() {
                    check_text_object(
                        Some(f),
                        &format!("{at}/fields/{j}"),
                        MAX_FIELD_TEXT,
                        problems,
                    );
                }
            }
            if let Some(accessory) = block.get("accessory") {
                check_element(accessory, &format!("{at}/accessory"), problems);
            }
        }
        Some("header") => {
            check_text_object(
                block.get("text"),
                &format!("{at}/text"),
                MAX_HEADER_TEXT,
                problems,
            );
        }
        Some("context") => match block.get("elements").and_then(Value::as_array) {
            Some(els) if !els.is_empty() && els.len() <= MAX_CONTEXT_ELEMENTS => {
                for (j, el) in els.iter().enumerate() {
                    if el.get("type").and_then(Value::as_str) != Some("image") {
                        check_text_object(
                            Some(el),
                            &format!("{at}/elements/{j}"),
                            MAX_SECTION_TEXT,
                            problems,
                        );
                    }
                }
            }
            _ => problems.push(format!(
                "must have 1 to {MAX_CONTEXT_ELEMENTS} elements [json-pointer:{at}/elements]"
            )),
        },
        Some("actions") => match block.get("elements").and_then(Value::as_array) {
            Some(els) if !els.is_empty() && els.len() <= MAX_ACTIONS_ELEMENTS => {
                for (j, el) in els.iter().enumerate() {
                    check_element(el, &format!("{at}/elements/{j}"), problems);
                }
            }
            _ => problems.push(format!(
                "must have 1 to {MAX_ACTIONS_ELEMENTS} elements [json-pointer:{at}/elements]"
            )),
        },
        Some("divider" | "image" | "rich_text" | "file" | "video" | "markdown") => {}
        Some("input") if surface == Surface::View => {
            check_text_object(
                block.get("label"),
                &format!("{at}/label"),
                MAX_FIELD_TEXT,
                problems,
            );
            match block.get("element") {
                Some(el) => check_element(el, &format!("{at}/element"), problems),
                None => problems.push(format!("is required [json-pointer:{at}/element]")),
            }
        }
        other => problems.push(format!(
            "unsupported block type {other:?} [json-pointer:{at}/type]"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn section(text: &str) -> Value {
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
    }

    #[test]
    fn a_message_of_fifty_blocks_passes_and_fifty_one_is_invalid_blocks() {
        let fifty: Vec<Value> = (0..50).map(|_| section("x")).collect();
        assert_eq!(
            check_message(Some("t"), Some(&Value::Array(fifty.clone()))),
            Ok(())
        );
        let mut fifty_one = fifty;
        fifty_one.push(section("x"));
        let err = check_message(Some("t"), Some(&Value::Array(fifty_one))).expect_err("refused");
        assert_eq!(err.error, "invalid_blocks");
    }

    #[test]
    fn a_section_over_3000_characters_is_invalid_blocks_counting_characters_not_bytes() {
        let ok = "é".repeat(3000);
        assert_eq!(check_message(None, Some(&json!([section(&ok)]))), Ok(()));
        let err =
            check_message(None, Some(&json!([section(&"a".repeat(3001))]))).expect_err("refused");
        assert_eq!(err.error, "invalid_blocks");
        assert!(
            err.problems[0].contains("/blocks/0/text"),
            "{:?}",
            err.problems
        );
    }

    #[test]
    fn more_than_12000_characters_of_block_text_is_msg_blocks_too_long() {
        let blocks: Vec<Value> = (0..5).map(|_| section(&"a".repeat(2500))).collect();
        let err = check_message(None, Some(&Value::Array(blocks))).expect_err("refused");
        assert_eq!(err.error, "msg_blocks_too_long");
        let blocks: Vec<Value> = (0..4).map(|_| section(&"a".repeat(3000))).collect();
        assert_eq!(check_message(None, Some(&Value::Array(blocks))), Ok(()));
    }

    #[test]
    fn top_level_text_over_40000_characters_is_msg_too_long_and_a_message_needs_something() {
        assert_eq!(
            check_message(Some(&"a".repeat(40_001)), None)
                .expect_err("long")
                .error,
            "msg_too_long"
        );
        assert_eq!(check_message(Some(&"a".repeat(40_000)), None), Ok(()));
        assert_eq!(
            check_message(None, None).expect_err("empty").error,
            "no_text"
        );
        assert_eq!(
            check_message(Some(""), Some(&json!([])))
                .expect_err("empty")
                .error,
            "no_text"
        );
    }

    #[test]
    fn unknown_block_types_duplicate_block_ids_and_long_buttons_are_refused() {
        let err = check_message(None, Some(&json!([{ "type": "sectoin" }]))).expect_err("typo");
        assert_eq!(err.error, "invalid_blocks");
        let dup = json!([
            { "type": "divider", "block_id": "a" },
            { "type": "divider", "block_id": "a" }
        ]);
        assert_eq!(
            check_message(None, Some(&dup)).expect_err("dup").error,
            "invalid_blocks"
        );
        let button = json!([{ "type": "actions", "elements": [
            { "type": "button", "action_id": "b", "text": { "type": "plain_text", "text": "x".repeat(76) } }
        ] }]);
        assert_eq!(
            check_message(None, Some(&button)).expect_err("label").error,
            "invalid_blocks"
        );
    }

    #[test]
    fn a_view_of_more_than_100_blocks_is_invalid_arguments() {
        let view = |n: usize| {
            json!({
                "type": "modal",
                "title": { "type": "plain_text", "text": "Order" },
                "blocks": (0..n).map(|_| json!({ "type": "divider" })).collect::<Vec<_>>(),
            })
        };
        assert_eq!(check_view(&view(100), "modal"), Ok(()));
        assert_eq!(
            check_view(&view(101), "modal").expect_err("big").error,
            "invalid_arguments"
        );
        assert_eq!(
            check_view(&view(1), "home").expect_err("type").error,
            "invalid_arguments"
        );
    }

    #[test]
    fn a_modal_input_whose_initial_value_exceeds_its_max_length_is_refused() {
        let view = json!({
            "type": "modal",
            "title": { "type": "plain_text", "text": "Order" },
            "submit": { "type": "plain_text", "text": "Go" },
            "blocks": [{ "type": "input", "block_id": "b", "label": { "type": "plain_text", "text": "L" },
                "element": { "type": "plain_text_input", "action_id": "a", "max_length": 3, "initial_value": "abcd" } }],
        });
        assert_eq!(
            check_view(&view, "modal").expect_err("initial").error,
            "invalid_arguments"
        );
    }
}
