//! Block Kit builders for every message and modal CoffeeBuddy sends.
//!
//! Builders are pure: a [`RunView`] (what the database knows about a run) in,
//! `serde_json::Value`s out, so the exact JSON is unit-tested here.
//!
//! # Safety of user text (DESIGN §1.8)
//! Orders and notes are shown exactly as typed: inside mrkdwn they go through
//! [`escape_mrkdwn`], elsewhere they are `plain_text`. Only ids we parsed
//! ourselves ([`UserId::mention`], channel links) are written as Slack
//! syntax. The notification `text` of a message (which Slack also reads as
//! mrkdwn) never carries user text. Every mrkdwn object is `verbatim`, so
//! Slack does not auto-link URLs or `#channel` names typed in an order.
//!
//! # Slack limits
//! A message holds at most [`MAX_BLOCKS`] blocks, a section at most
//! [`MAX_SECTION_CHARS`] characters, and all its blocks together about
//! 12,000 characters of text ([`MAX_MESSAGE_CHARS`] keeps a margin; escaping
//! `&`, `<`, `>` can make an order five times longer than typed). Order
//! lists are packed line by line into sections. The run message shows what
//! fits and ends with "…and N more"; the summary and the runner's DMs never
//! drop an order: they continue in further messages ([`summary_pages`],
//! [`reminder_dm_pages`], and the runner's DM in `runner_dm`). Each order and note is first
//! cut to [`MAX_SHOWN_CHARS`] characters (before escaping, so an entity is
//! never split), which guarantees every line fits in one section.

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::ids::{ChannelId, UserId};
use crate::domain::text::{escape_mrkdwn, truncate_chars};

/// `action_id` of the **Order** button; its `value` is the run id.
pub const ACTION_ORDER: &str = "order_open";
/// `action_id` of the **Close run** button; its `value` is the run id.
pub const ACTION_CLOSE: &str = "run_close";
/// `callback_id` of the order modal.
pub const ORDER_MODAL_CALLBACK: &str = "order_submit";
/// `block_id` of the order text input (also the key for modal errors).
pub const ORDER_BLOCK: &str = "order_block";
/// `action_id` of the order text input.
pub const ORDER_INPUT: &str = "order_text";
/// `block_id` of the options checkboxes.
pub const OPTIONS_BLOCK: &str = "options_block";
/// `action_id` of the options checkboxes.
pub const OPTIONS_INPUT: &str = "options";
/// Checkbox value: "Save as my usual".
pub const OPTION_SAVE_USUAL: &str = "save_usual";
/// Checkbox value: "Happy to be the runner again".
pub const OPTION_RUNNER_AGAIN: &str = "runner_again";

/// Slack's limit on blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Slack's limit on a section's text.
pub const MAX_SECTION_CHARS: usize = 3000;
/// Characters of text we put in one message's blocks at most: Slack refuses
/// more than about 12,000 in all (`msg_blocks_too_long`); the margin covers
/// its own counting of entities and emoji.
pub const MAX_MESSAGE_CHARS: usize = 11_000;
/// Slack's limit on a button's or option's text.
pub const MAX_BUTTON_CHARS: usize = 75;
/// Longest order or note shown, in characters, before escaping. Orders are
/// at most 150 characters and notes 140 when accepted; this only guards
/// against rows written by something else.
pub const MAX_SHOWN_CHARS: usize = 300;
/// Longest order text the modal accepts (contract, DESIGN §1.3).
pub const MAX_ORDER_CHARS: usize = 150;
/// How many orders the channel's run message lists; the summary and the
/// runner's DM list them all.
pub const MAX_ORDERS_IN_RUN_MESSAGE: usize = 50;

/// A message ready for `chat.postMessage` or `chat.update`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutgoingMessage {
    /// Notification and accessibility fallback; never contains user text.
    pub text: String,
    /// The Block Kit array.
    pub blocks: Value,
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Taking orders: the buttons are shown.
    Open,
    /// Close requested; the runner is being chosen.
    Closing,
    /// Closed with a runner.
    Closed,
    /// Closed without orders.
    Cancelled,
}

/// One person's active order in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// Who ordered.
    pub user: UserId,
    /// The order, raw as typed.
    pub text: String,
}

/// Everything the builders need to know about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunView {
    /// The run; button values and the modal's `private_metadata`.
    pub run_id: Uuid,
    /// The channel the run lives in.
    pub channel_id: ChannelId,
    /// Who started it.
    pub initiator: UserId,
    /// Pickup time already formatted (`HH:MM` in the channel's time zone).
    pub pickup: Option<String>,
    /// The note, raw as typed.
    pub note: Option<String>,
    /// Where the run is.
    pub state: RunState,
    /// The chosen runner, once closed.
    pub runner: Option<UserId>,
    /// Active orders, in the order they should be listed.
    pub orders: Vec<OrderLine>,
    /// Why the runner was picked (DESIGN §1.12), one line from the very
    /// decision, once closed.
    pub why: Option<String>,
    /// When orders close by themselves (auto-close, DESIGN §1.10), already
    /// formatted in the channel's time zone.
    pub closes_at: Option<String>,
}

impl RunView {
    /// How many people have an active order.
    fn participant_count(&self) -> usize {
        let mut users: Vec<&UserId> = self.orders.iter().map(|o| &o.user).collect();
        users.sort();
        users.dedup();
        users.len()
    }
}

/// User text made safe for mrkdwn and cut to a showable length.
pub(crate) fn user_text(raw: &str) -> String {
    escape_mrkdwn(&truncate_chars(raw, MAX_SHOWN_CHARS)).into_owned()
}

pub(crate) fn plain(text: &str) -> Value {
    json!({ "type": "plain_text", "text": text, "emoji": true })
}

/// A mrkdwn text object. Always `verbatim`: Slack then leaves the text as
/// we wrote it, so a URL or `#channel` typed inside an order is not turned
/// into a link (our own `<@U…>` and `<#C…>` syntax still renders).
fn mrkdwn(text: &str) -> Value {
    json!({ "type": "mrkdwn", "text": text, "verbatim": true })
}

pub(crate) fn section(text: &str) -> Value {
    json!({ "type": "section", "text": mrkdwn(text) })
}

pub(crate) fn context(text: &str) -> Value {
    json!({ "type": "context", "elements": [mrkdwn(text)] })
}

pub(crate) fn button(text: &str, action_id: &str, value: &str, style: &str) -> Value {
    json!({
        "type": "button",
        "text": plain(&truncate_chars(text, MAX_BUTTON_CHARS)),
        "action_id": action_id,
        "value": value,
        "style": style,
    })
}

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// "Pickup *12:30*" and "Note: …" lines, as present.
fn details(view: &RunView) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(pickup) = &view.pickup {
        lines.push(format!(":clock3: Pickup *{}*", user_text(pickup)));
    }
    if let Some(note) = view.note.as_deref().filter(|n| !n.trim().is_empty()) {
        lines.push(format!(":memo: {}", user_text(note)));
    }
    lines
}

fn order_line(order: &OrderLine) -> String {
    format!("• {}: {}", order.user.mention(), user_text(&order.text))
}

/// Packs `orders` into sections of at most [`MAX_SECTION_CHARS`], using at
/// most `max_blocks` blocks and `max_chars` characters and listing at most
/// `max_orders` orders. Orders left out are counted in a final "…and N more"
/// line.
fn order_sections(
    orders: &[OrderLine],
    max_blocks: usize,
    max_orders: usize,
    max_chars: usize,
) -> Vec<Value> {
    const MORE_RESERVE: usize = 40; // room for "\n…and 12345 more"
    let max_blocks = max_blocks.max(1);
    let max_chars = max_chars.saturating_sub(MORE_RESERVE);
    let mut blocks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    let mut shown = 0;
    for order in orders.iter().take(max_orders) {
        let line = order_line(order);
        let line_chars = line.chars().count();
        if used + line_chars + 1 > max_chars {
            break;
        }
        let needed = current.chars().count() + 1 + line_chars;
        let last_block = blocks.len() + 1 == max_blocks;
        let budget = if last_block {
            MAX_SECTION_CHARS - MORE_RESERVE
        } else {
            MAX_SECTION_CHARS
        };
        if !current.is_empty() && needed > budget {
            if last_block {
                break;
            }
            blocks.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
        used += line_chars + 1;
        shown += 1;
    }
    let hidden = orders.len() - shown;
    if hidden > 0 {
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&format!("…and {hidden} more"));
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks.iter().map(|text| section(text)).collect()
}

/// Every order line packed into sections of at most [`MAX_SECTION_CHARS`].
fn all_order_sections(orders: &[OrderLine]) -> Vec<String> {
    let mut sections: Vec<String> = Vec::new();
    let mut current = String::new();
    for order in orders {
        let line = order_line(order);
        if !current.is_empty()
            && current.chars().count() + 1 + line.chars().count() > MAX_SECTION_CHARS
        {
            sections.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        sections.push(current);
    }
    sections
}

/// Characters of text in `blocks` as Slack counts them toward its limit
/// (every `text` string, nested ones included).
pub fn text_chars(blocks: &Value) -> usize {
    match blocks {
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) if key == "text" => text.chars().count(),
                other => text_chars(other),
            })
            .sum(),
        _ => 0,
    }
}

/// A head block and every order, in as many messages as Slack's limits
/// need: the first holds the head and the order count, each further one
/// says "continued (n/m)". Nobody's order is dropped.
fn paged(head: String, view: &RunView, text: String) -> Vec<OutgoingMessage> {
    // Room kept on every page for its "continued" line.
    const CONTINUED_RESERVE: usize = 60;
    let mut first = vec![section(&head)];
    if !view.orders.is_empty() {
        first.push(context(&plural(view.orders.len(), "order", "orders")));
    }
    let mut pages: Vec<Vec<Value>> = Vec::new();
    let mut chars = text_chars(&Value::Array(first.clone()));
    let mut blocks = first;
    for section_text in all_order_sections(&view.orders) {
        let section_chars = section_text.chars().count();
        // Two blocks kept free on every page: its "continued" line and the
        // runner's buttons of a reminder.
        if blocks.len() + 3 > MAX_BLOCKS
            || chars + section_chars + CONTINUED_RESERVE > MAX_MESSAGE_CHARS
        {
            pages.push(std::mem::take(&mut blocks));
            chars = 0;
        }
        chars += section_chars;
        blocks.push(section(&section_text));
    }
    pages.push(blocks);
    let total = pages.len();
    pages
        .into_iter()
        .enumerate()
        .map(|(i, mut blocks)| {
            if i == 0 {
                return OutgoingMessage {
                    text: text.clone(),
                    blocks: Value::Array(blocks),
                };
            }
            blocks.insert(0, context(&format!("_…continued ({}/{total})_", i + 1)));
            OutgoingMessage {
                text: format!("{text} (continued)"),
                blocks: Value::Array(blocks),
            }
        })
        .collect()
}

/// The run's channel message (posted at start, updated on every change).
pub fn run_message(view: &RunView) -> OutgoingMessage {
    let starter = view.initiator.mention();
    let mut head = format!(":coffee: {starter} started a coffee run");
    for line in details(view) {
        head.push('\n');
        head.push_str(&line);
    }
    if let (RunState::Open, Some(at)) = (view.state, &view.closes_at) {
        head.push_str(&format!(
            "\n:hourglass_flowing_sand: Orders close by themselves at *{at}*"
        ));
    }
    let count = view.participant_count();
    let mut blocks = vec![section(&head)];
    let status = match view.state {
        RunState::Open => plural(count, "person has ordered", "people have ordered"),
        RunState::Closing => format!(
            "{} · closing…",
            plural(count, "person ordered", "people ordered")
        ),
        RunState::Closed => match &view.runner {
            Some(runner) => format!(
                "Closed · {} · {} is the runner",
                plural(count, "person ordered", "people ordered"),
                runner.mention()
            ),
            None => format!(
                "Closed · {}",
                plural(count, "person ordered", "people ordered")
            ),
        },
        RunState::Cancelled => "Closed · cancelled: no orders".to_owned(),
    };
    blocks.push(context(&status));
    // Header, status and the actions block stay; the rest is for orders.
    let budget = MAX_BLOCKS - blocks.len() - 1;
    // What the head, status and buttons use, and a margin for the buttons'
    // labels, is not available to the orders.
    let chars_left =
        MAX_MESSAGE_CHARS.saturating_sub(text_chars(&Value::Array(blocks.clone())) + 200);
    blocks.extend(order_sections(
        &view.orders,
        budget,
        MAX_ORDERS_IN_RUN_MESSAGE,
        chars_left,
    ));
    if view.state == RunState::Open {
        let run_id = view.run_id.to_string();
        blocks.push(json!({
            "type": "actions",
            "block_id": "run_actions",
            "elements": [
                button("Order", ACTION_ORDER, &run_id, "primary"),
                button("Close run", ACTION_CLOSE, &run_id, "danger"),
            ],
        }));
    }
    let text = match view.state {
        RunState::Open => format!("{starter} started a coffee run"),
        RunState::Closing => "Coffee run closing…".to_owned(),
        RunState::Closed => "Coffee run closed".to_owned(),
        RunState::Cancelled => "Coffee run cancelled: no orders".to_owned(),
    };
    OutgoingMessage {
        text,
        blocks: Value::Array(blocks),
    }
}

/// The order modal (`views.open`), pre-filled with `prefill` and the
/// checkboxes that are set.
pub fn order_modal(
    view: &RunView,
    prefill: Option<&str>,
    save_usual: bool,
    runner_again: bool,
) -> Value {
    let mut about = format!("Coffee run started by {}", view.initiator.mention());
    for line in details(view) {
        about.push('\n');
        about.push_str(&line);
    }
    let mut input = json!({
        "type": "plain_text_input",
        "action_id": ORDER_INPUT,
        "max_length": MAX_ORDER_CHARS,
        "placeholder": plain("e.g. flat white, oat milk"),
    });
    if let Some(prefill) = prefill.filter(|p| !p.is_empty()) {
        // Slack refuses an initial value longer than max_length.
        input["initial_value"] = json!(truncate_chars(prefill, MAX_ORDER_CHARS));
    }
    let option = |text: &str, value: &str| json!({ "text": plain(text), "value": value });
    let options = [
        (option("Save as my usual", OPTION_SAVE_USUAL), save_usual),
        (
            option("Happy to be the runner again", OPTION_RUNNER_AGAIN),
            runner_again,
        ),
    ];
    let mut checkboxes = json!({
        "type": "checkboxes",
        "action_id": OPTIONS_INPUT,
        "options": options.iter().map(|(o, _)| o.clone()).collect::<Vec<_>>(),
    });
    let initial: Vec<Value> = options
        .iter()
        .filter(|(_, set)| *set)
        .map(|(o, _)| o.clone())
        .collect();
    // Slack refuses an empty `initial_options` array.
    if !initial.is_empty() {
        checkboxes["initial_options"] = Value::Array(initial);
    }
    json!({
        "type": "modal",
        "callback_id": ORDER_MODAL_CALLBACK,
        "private_metadata": view.run_id.to_string(),
        "title": plain("Coffee order"),
        "submit": plain("Order"),
        "close": plain("Cancel"),
        "blocks": [
            context(&about),
            {
                "type": "input",
                "block_id": ORDER_BLOCK,
                "optional": false,
                "label": plain("Your order"),
                "element": input,
            },
            {
                "type": "input",
                "block_id": OPTIONS_BLOCK,
                "optional": true,
                "label": plain("Options"),
                "element": checkboxes,
            },
        ],
    })
}

/// A message whose order list must be complete: `head` first, then every
/// order over as many sections as needed.
fn runner_phrase(view: &RunView) -> String {
    view.runner
        .as_ref()
        .map_or_else(|| "Nobody".to_owned(), UserId::mention)
}

/// The channel summary posted when a run closes: the runner, pickup, note and
/// every order.
pub fn summary_pages(view: &RunView) -> Vec<OutgoingMessage> {
    let runner = runner_phrase(view);
    let mut head = format!(
        ":coffee: Coffee run closed: {runner} is getting the coffee (started by {})",
        view.initiator.mention()
    );
    for line in details(view) {
        head.push('\n');
        head.push_str(&line);
    }
    if let Some(why) = &view.why {
        // Our own text around ids we parsed: no user text to escape.
        head.push_str(&format!("\n:scales: _{why}_"));
    }
    paged(
        head,
        view,
        format!("Coffee run closed: {runner} is the runner"),
    )
}

/// The first message of [`summary_pages`] (all of it for runs that fit one).
pub fn summary_message(view: &RunView) -> OutgoingMessage {
    let mut pages = summary_pages(view);
    // `paged` always returns at least the head page.
    if pages.is_empty() {
        return OutgoingMessage {
            text: String::new(),
            blocks: Value::Array(Vec::new()),
        };
    }
    pages.swap_remove(0)
}

/// The channel message for a run closed without orders.
pub fn cancelled_message(view: &RunView) -> OutgoingMessage {
    let head = format!(
        ":coffee: The coffee run started by {} was cancelled: no orders",
        view.initiator.mention()
    );
    OutgoingMessage {
        text: "Coffee run cancelled: no orders".to_owned(),
        blocks: json!([section(&head)]),
    }
}

/// The DM to a participant who is not the runner: who is getting the coffee,
/// their own order and the pickup time.
pub fn participant_dm(view: &RunView, user: &UserId) -> OutgoingMessage {
    let runner = runner_phrase(view);
    let mut lines = vec![format!(
        ":coffee: {runner} is getting the coffee from the run in <#{}>",
        view.channel_id
    )];
    let mine: Vec<&OrderLine> = view.orders.iter().filter(|o| &o.user == user).collect();
    if mine.is_empty() {
        lines.push("You have no order in this run.".to_owned());
    }
    for order in mine {
        lines.push(format!("Your order: {}", user_text(&order.text)));
    }
    if let Some(pickup) = &view.pickup {
        lines.push(format!(":clock3: Pickup *{}*", user_text(pickup)));
    }
    OutgoingMessage {
        text: format!("{runner} is getting the coffee"),
        blocks: json!([section(&lines.join("\n"))]),
    }
}

/// The runner's pickup reminder DM (DESIGN §1.5): "Reminder: pickup at
/// HH:MM", then the note and the full order list, as in [`runner_dm`].
pub fn reminder_dm_pages(view: &RunView) -> Vec<OutgoingMessage> {
    // The pickup is our own `HH:MM` rendering, not user text, so it may
    // appear in the notification text.
    let headline = match &view.pickup {
        Some(pickup) => format!("Reminder: pickup at {pickup}"),
        None => "Reminder: coffee pickup".to_owned(),
    };
    let mut head = format!(
        ":alarm_clock: *{}* — you're the runner for the coffee run in <#{}>",
        escape_mrkdwn(&headline),
        view.channel_id
    );
    if let Some(note) = view.note.as_deref().filter(|n| !n.trim().is_empty()) {
        head.push_str(&format!("\n:memo: {}", user_text(note)));
    }
    let mut pages = paged(head, view, headline);
    // The runner's buttons under the last page (`paged` keeps a block and
    // some characters free on every page).
    if let Some(Value::Array(blocks)) = pages.last_mut().map(|p| &mut p.blocks) {
        blocks.push(follow_through_buttons(view.run_id));
    }
    pages
}

/// The first message of [`reminder_dm_pages`] (all of it for runs that fit one).
pub fn reminder_dm(view: &RunView) -> OutgoingMessage {
    let mut pages = reminder_dm_pages(view);
    // `paged` always returns at least the head page.
    if pages.is_empty() {
        return OutgoingMessage {
            text: String::new(),
            blocks: Value::Array(Vec::new()),
        };
    }
    pages.swap_remove(0)
}

/// `action_id` of the **Picked up** button; its `value` is the run id.
pub const ACTION_PICKED_UP: &str = "run_picked_up";
/// `action_id` of the **Delivered** button; its `value` is the run id.
pub const ACTION_DELIVERED: &str = "run_delivered";
/// `block_id` of the follow-through buttons.
pub const FOLLOW_THROUGH_BLOCK: &str = "follow_through";

/// The **Picked up** and **Delivered** buttons (contract labels) of run
/// `run_id`, for the runner's DM and their reminder DM.
pub fn follow_through_buttons(run_id: Uuid) -> Value {
    let run_id = run_id.to_string();
    json!({
        "type": "actions",
        "block_id": FOLLOW_THROUGH_BLOCK,
        "elements": [
            button("Picked up", ACTION_PICKED_UP, &run_id, "primary"),
            button("Delivered", ACTION_DELIVERED, &run_id, "primary"),
        ],
    })
}

/// The channel's news that the runner pressed **Picked up** or **Delivered**
/// (DESIGN §1.9), posted in the summary's thread.
pub fn milestone_message(
    view: &RunView,
    milestone: crate::domain::follow_through::Milestone,
) -> OutgoingMessage {
    use crate::domain::follow_through::Milestone;
    let runner = runner_phrase(view);
    let (text, line) = match milestone {
        Milestone::PickedUp => (
            "The coffee was picked up".to_owned(),
            format!(":runner: {runner} picked up the coffee and is on the way."),
        ),
        Milestone::Delivered => (
            "The coffee is delivered".to_owned(),
            format!(":coffee: The coffee is delivered. Thank you, {runner}, for the run!"),
        ),
    };
    OutgoingMessage {
        text,
        blocks: json!([section(&line)]),
    }
}

/// An ephemeral answer to a slash command or `response_url`. `text` is ours
/// and read as mrkdwn: escape any user text in it first.
pub fn ephemeral(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "text": text })
}

/// A `view_submission` answer that shows `errors` under their input blocks
/// and keeps the modal open.
pub fn modal_errors(errors: &[(&str, String)]) -> Value {
    let map: serde_json::Map<String, Value> = errors
        .iter()
        .map(|(block, message)| ((*block).to_owned(), Value::String(message.clone())))
        .collect();
    json!({ "response_action": "errors", "errors": map })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("valid user id")
    }

    fn order(id: &str, text: &str) -> OrderLine {
        OrderLine {
            user: user(id),
            text: text.to_owned(),
        }
    }

    fn view(state: RunState, orders: Vec<OrderLine>) -> RunView {
        RunView {
            why: None,
            closes_at: None,
            run_id: Uuid::from_u128(0x1234),
            channel_id: ChannelId::parse("C0COFFEE").expect("valid channel id"),
            initiator: user("U0START"),
            pickup: Some("12:30".to_owned()),
            note: Some("Blue Bottle <!here>".to_owned()),
            state,
            runner: None,
            orders,
        }
    }

    fn blocks(msg: &OutgoingMessage) -> &Vec<Value> {
        msg.blocks.as_array().expect("blocks is an array")
    }

    /// Every mrkdwn and plain text string in a block tree.
    fn texts(value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        match value {
            Value::Object(map) => {
                if let Some(Value::String(t)) = map.get("text") {
                    out.push(t.clone());
                }
                for v in map.values() {
                    out.extend(texts(v));
                }
            }
            Value::Array(items) => items.iter().for_each(|v| out.extend(texts(v))),
            _ => {}
        }
        out
    }

    fn all_text(value: &Value) -> String {
        texts(value).join("\n")
    }

    fn buttons(msg: &OutgoingMessage) -> Vec<Value> {
        blocks(msg)
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Every mrkdwn text object in a block tree.
    fn mrkdwn_objects(value: &Value) -> Vec<Value> {
        match value {
            Value::Object(map) if map.get("type") == Some(&json!("mrkdwn")) => vec![value.clone()],
            Value::Object(map) => map.values().flat_map(mrkdwn_objects).collect(),
            Value::Array(items) => items.iter().flat_map(mrkdwn_objects).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn every_mrkdwn_object_is_verbatim_so_urls_and_channels_in_orders_stay_text() {
        let orders = vec![
            order("U1", "https://evil.example/latte #general"),
            order("U2", "flat white"),
        ];
        let mut v = view(RunState::Open, orders);
        v.note = Some("see www.example.com #random".to_owned());
        let mut closed = v.clone();
        closed.state = RunState::Closed;
        closed.runner = Some(user("U2"));
        let trees = [
            run_message(&v).blocks,
            run_message(&closed).blocks,
            summary_message(&closed).blocks,
            cancelled_message(&v).blocks,
            participant_dm(&closed, &user("U1")).blocks,
            reminder_dm(&closed).blocks,
            order_modal(&v, Some("usual"), true, false),
        ];
        for tree in &trees {
            let objects = mrkdwn_objects(tree);
            assert!(!objects.is_empty(), "{tree}");
            for object in objects {
                assert_eq!(object["verbatim"], json!(true), "{object}");
            }
        }
        assert!(all_text(&trees[0]).contains("https://evil.example/latte #general"));
    }

    #[test]
    fn an_open_run_has_exactly_the_order_and_close_run_buttons() {
        let msg = run_message(&view(RunState::Open, vec![order("U1", "latte")]));
        let buttons = buttons(&msg);
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0]["text"]["text"], "Order");
        assert_eq!(buttons[0]["action_id"], ACTION_ORDER);
        assert_eq!(buttons[0]["value"], Uuid::from_u128(0x1234).to_string());
        assert_eq!(buttons[1]["text"]["text"], "Close run");
        assert_eq!(buttons[1]["action_id"], ACTION_CLOSE);
        assert_eq!(buttons[1]["style"], "danger");
        assert_eq!(buttons[1]["value"], Uuid::from_u128(0x1234).to_string());
    }

    #[test]
    fn the_run_message_names_the_initiator_pickup_note_count_and_orders() {
        let msg = run_message(&view(
            RunState::Open,
            vec![order("U1", "flat white"), order("U2", "tea")],
        ));
        let text = all_text(&msg.blocks);
        assert!(text.contains("<@U0START> started a coffee run"), "{text}");
        assert!(text.contains("Pickup *12:30*"), "{text}");
        assert!(text.contains("Blue Bottle &lt;!here&gt;"), "{text}");
        assert!(text.contains("2 people have ordered"), "{text}");
        assert!(text.contains("• <@U1>: flat white\n• <@U2>: tea"), "{text}");
        assert!(
            !msg.text.contains("Blue Bottle"),
            "no user text in the fallback"
        );
    }

    #[test]
    fn mentions_and_broadcasts_typed_in_an_order_are_escaped() {
        let msg = run_message(&view(
            RunState::Open,
            vec![order("U1", "<!channel> for <@U123> & co")],
        ));
        let text = all_text(&msg.blocks);
        assert!(
            text.contains("&lt;!channel&gt; for &lt;@U123&gt; &amp; co"),
            "{text}"
        );
        assert!(!text.contains("<!channel>"));
        assert!(!text.contains("<@U123>"));
    }

    #[test]
    fn buttons_disappear_once_the_run_is_no_longer_open() {
        let closing = run_message(&view(RunState::Closing, vec![order("U1", "latte")]));
        assert!(buttons(&closing).is_empty());
        assert!(all_text(&closing.blocks).contains("closing…"));

        let mut closed_view = view(RunState::Closed, vec![order("U1", "latte")]);
        closed_view.runner = Some(user("U1"));
        let closed = run_message(&closed_view);
        assert!(buttons(&closed).is_empty());
        assert!(all_text(&closed.blocks).contains("<@U1> is the runner"));

        let cancelled = run_message(&view(RunState::Cancelled, vec![]));
        assert!(buttons(&cancelled).is_empty());
        assert!(all_text(&cancelled.blocks).contains("cancelled: no orders"));
    }

    fn many_orders(n: usize) -> Vec<OrderLine> {
        (0..n)
            .map(|i| order(&format!("U{i:08}"), &format!("large oat flat white #{i}")))
            .collect()
    }

    #[test]
    fn two_hundred_orders_fit_the_run_message_with_and_n_more() {
        let msg = run_message(&view(RunState::Open, many_orders(200)));
        assert!(blocks(&msg).len() <= MAX_BLOCKS);
        let text = all_text(&msg.blocks);
        assert!(text.contains("…and 150 more"), "{text}");
        assert!(text.contains("200 people have ordered"));
        assert_eq!(buttons(&msg).len(), 2, "buttons survive truncation");
    }

    #[test]
    fn every_section_stays_within_slacks_limit() {
        // Worst case: long orders made entirely of characters that escape.
        let orders: Vec<OrderLine> = (0..200)
            .map(|i| order(&format!("U{i:08}"), &"&".repeat(150)))
            .collect();
        for msg in [
            run_message(&view(RunState::Open, orders.clone())),
            summary_message(&view(RunState::Closed, orders)),
        ] {
            assert!(blocks(&msg).len() <= MAX_BLOCKS);
            for block in blocks(&msg) {
                if let Some(t) = block["text"]["text"].as_str() {
                    assert!(t.chars().count() <= MAX_SECTION_CHARS, "{}", t.len());
                }
            }
        }
    }

    #[test]
    fn the_summary_lists_every_order_over_several_blocks() {
        let mut v = view(RunState::Closed, many_orders(200));
        v.runner = Some(user("U00000007"));
        let msg = summary_message(&v);
        assert!(blocks(&msg).len() <= MAX_BLOCKS);
        let text = all_text(&msg.blocks);
        assert!(
            text.contains("<@U00000007> is getting the coffee"),
            "{text}"
        );
        assert!(text.contains("Pickup *12:30*"));
        assert!(text.contains("Blue Bottle &lt;!here&gt;"));
        for i in 0..200 {
            assert!(
                text.contains(&format!("<@U{i:08}>: large oat flat white #{i}\n"))
                    || text.ends_with(&format!("<@U{i:08}>: large oat flat white #{i}"))
            );
        }
        assert!(!text.contains("more"));
        let sections = blocks(&msg)
            .iter()
            .filter(|b| b["type"] == "section")
            .count();
        assert!(sections > 2, "the list was split");
    }

    #[test]
    fn a_cancelled_run_says_so() {
        let msg = cancelled_message(&view(RunState::Cancelled, vec![]));
        assert!(all_text(&msg.blocks).contains("cancelled: no orders"));
        assert!(msg.text.contains("cancelled: no orders"));
    }

    #[test]
    fn a_participant_dm_names_the_runner_and_only_their_own_order() {
        let mut v = view(
            RunState::Closed,
            vec![order("U1", "latte"), order("U2", "mocha & cake")],
        );
        v.runner = Some(user("U1"));
        let msg = participant_dm(&v, &user("U2"));
        let text = all_text(&msg.blocks);
        assert!(text.contains("<@U1> is getting the coffee"), "{text}");
        assert!(text.contains("Your order: mocha &amp; cake"), "{text}");
        assert!(!text.contains("latte"));
        assert!(text.contains("Pickup *12:30*"));
    }

    #[test]
    fn the_reminder_dm_has_the_pickup_time_note_and_every_order_escaped() {
        let mut v = view(
            RunState::Closed,
            vec![order("U1", "latte"), order("U2", "<!channel> mocha & cake")],
        );
        v.runner = Some(user("U1"));
        let msg = reminder_dm(&v);
        assert_eq!(msg.text, "Reminder: pickup at 12:30");
        let text = all_text(&msg.blocks);
        assert!(text.contains("*Reminder: pickup at 12:30*"), "{text}");
        assert!(text.contains("<#C0COFFEE>"), "{text}");
        assert!(text.contains("Blue Bottle &lt;!here&gt;"), "{text}");
        assert!(
            text.contains("• <@U1>: latte\n• <@U2>: &lt;!channel&gt; mocha &amp; cake"),
            "{text}"
        );
        assert!(!text.contains("<!channel>") && !text.contains("<!here>"));
    }

    #[test]
    fn a_reminder_dm_lists_two_hundred_orders_within_slacks_limits() {
        let mut v = view(RunState::Closed, many_orders(200));
        v.runner = Some(user("U00000001"));
        let msg = reminder_dm(&v);
        assert!(blocks(&msg).len() <= MAX_BLOCKS);
        let text = all_text(&msg.blocks);
        assert!(text.contains("large oat flat white #199"));
        assert!(!text.contains("more"), "the runner gets every order");
    }

    #[test]
    fn the_order_modal_matches_the_contract() {
        let modal = order_modal(
            &view(RunState::Open, vec![]),
            Some("flat white"),
            true,
            false,
        );
        assert_eq!(modal["type"], "modal");
        assert_eq!(modal["callback_id"], ORDER_MODAL_CALLBACK);
        assert_eq!(
            modal["private_metadata"],
            Uuid::from_u128(0x1234).to_string()
        );
        assert_eq!(modal["title"]["text"], "Coffee order");
        assert_eq!(modal["submit"]["text"], "Order");
        let input = modal["blocks"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["block_id"] == ORDER_BLOCK))
            .expect("order block");
        assert_eq!(input["type"], "input");
        assert_eq!(input["optional"], false);
        assert_eq!(input["element"]["type"], "plain_text_input");
        assert_eq!(input["element"]["action_id"], ORDER_INPUT);
        assert_eq!(input["element"]["max_length"], 150);
        assert_eq!(input["element"]["initial_value"], "flat white");
        let options = modal["blocks"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["block_id"] == OPTIONS_BLOCK))
            .expect("options block");
        assert_eq!(options["optional"], true);
        assert_eq!(options["element"]["type"], "checkboxes");
        assert_eq!(options["element"]["action_id"], OPTIONS_INPUT);
        let labels: Vec<&Value> = options["element"]["options"]
            .as_array()
            .expect("options")
            .iter()
            .map(|o| &o["text"]["text"])
            .collect();
        assert_eq!(labels, ["Save as my usual", "Happy to be the runner again"]);
        let initial = options["element"]["initial_options"]
            .as_array()
            .expect("initial");
        assert_eq!(initial.len(), 1);
        assert_eq!(initial[0]["value"], OPTION_SAVE_USUAL);
    }

    #[test]
    fn an_empty_modal_has_no_initial_value_or_initial_options() {
        let modal = order_modal(&view(RunState::Open, vec![]), None, false, false);
        let blocks = modal["blocks"].as_array().expect("blocks");
        assert!(
            blocks
                .iter()
                .all(|b| b["element"].get("initial_value").is_none())
        );
        assert!(
            blocks
                .iter()
                .all(|b| b["element"].get("initial_options").is_none())
        );

        let both = order_modal(&view(RunState::Open, vec![]), Some(""), true, true);
        let options = &both["blocks"][2]["element"]["initial_options"];
        assert_eq!(options.as_array().map(Vec::len), Some(2));
        assert!(both["blocks"][1]["element"].get("initial_value").is_none());
    }

    #[test]
    fn an_over_long_prefill_is_cut_to_the_input_limit() {
        let long = "x".repeat(200);
        let modal = order_modal(&view(RunState::Open, vec![]), Some(&long), false, false);
        let value = modal["blocks"][1]["element"]["initial_value"]
            .as_str()
            .expect("initial value");
        assert_eq!(value.chars().count(), MAX_ORDER_CHARS);
    }

    #[test]
    fn ephemeral_and_modal_error_answers_have_slacks_shape() {
        assert_eq!(
            ephemeral("Usage: `/coffee`"),
            json!({ "response_type": "ephemeral", "text": "Usage: `/coffee`" })
        );
        assert_eq!(
            modal_errors(&[(ORDER_BLOCK, "Too long".to_owned())]),
            json!({ "response_action": "errors", "errors": { "order_block": "Too long" } })
        );
    }
}
