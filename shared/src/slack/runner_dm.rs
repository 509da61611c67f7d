//! The runner's DM with the barista-ready order list (DESIGN §1.11) and the
//! **Picked up** / **Delivered** buttons (§1.9).
//!
//! Identical orders are grouped by [`group_orders`] as `3× flat white —
//! <@U1>, <@U2>, <@U3>` (contract: a count, `×`, the order), most ordered
//! first; then the note and the pickup time; then the buttons, whose
//! `value` is the run id.
//!
//! # Slack limits
//! Nobody's order is dropped: a list too long for one message (50 blocks,
//! 3000 characters a section, [`MAX_MESSAGE_CHARS`] in all) continues in
//! further messages, to be posted in order (e.g. in the first one's
//! thread). The note, pickup and buttons are in the last one. A group with
//! very many people continues on indented lines.

use serde_json::Value;

use crate::domain::grouping::{OrderGroup, group_orders};
use crate::slack::blocks::{
    MAX_BLOCKS, MAX_SECTION_CHARS, OutgoingMessage, RunView, context, follow_through_buttons,
    plural, section, user_text,
};

pub use crate::slack::blocks::{ACTION_DELIVERED, ACTION_PICKED_UP, FOLLOW_THROUGH_BLOCK};
/// Text characters one message may carry (Slack truncates beyond about
/// 12,000; a margin for the header and markup).
pub const MAX_MESSAGE_CHARS: usize = 11_000;
/// Longest run of mentions on one line of a group.
const MAX_PEOPLE_LINE_CHARS: usize = 2_000;

/// The lines of the grouped list: `• 3× flat white — <@U1>, <@U2>`, with
/// continuation lines for a group whose people do not fit on one.
pub fn grouped_lines(groups: &[OrderGroup]) -> Vec<String> {
    let mut lines = Vec::new();
    for group in groups {
        let mut line = format!("• {} — ", group.headline(user_text));
        let mut first_on_line = true;
        for person in &group.people {
            let mention = person.mention();
            if !first_on_line && line.chars().count() + mention.len() + 2 > MAX_PEOPLE_LINE_CHARS {
                line.push(',');
                lines.push(std::mem::take(&mut line));
                line.push_str("    ");
                first_on_line = true;
            }
            if !first_on_line {
                line.push_str(", ");
            }
            line.push_str(&mention);
            first_on_line = false;
        }
        lines.push(line);
    }
    lines
}

/// Packs lines into sections of at most [`MAX_SECTION_CHARS`].
fn sections(lines: &[String]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut current = String::new();
    for line in lines {
        let needed = current.chars().count() + 1 + line.chars().count();
        if !current.is_empty() && needed > MAX_SECTION_CHARS {
            let chars = current.chars().count();
            out.push((std::mem::take(&mut current), chars));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        let chars = current.chars().count();
        out.push((current, chars));
    }
    out
}

/// The runner's DM: one message, or several when the list is too long for
/// one (post them in order). Always at least one.
pub fn runner_dm_messages(view: &RunView) -> Vec<OutgoingMessage> {
    let groups = group_orders(view.orders.iter().map(|o| (&o.user, o.text.as_str())));
    let head = format!(
        ":runner: You're the runner for the coffee run in <#{}>",
        view.channel_id
    );
    let summary = format!(
        "{} · {}",
        plural(view.orders.len(), "order", "orders"),
        plural(groups.len(), "different drink", "different drinks"),
    );
    let mut tail_lines = Vec::new();
    if let Some(note) = view.note.as_deref().filter(|n| !n.trim().is_empty()) {
        tail_lines.push(format!(":memo: {}", user_text(note)));
    }
    if let Some(pickup) = &view.pickup {
        tail_lines.push(format!(":clock3: Pickup *{}*", user_text(pickup)));
    }
    let buttons = follow_through_buttons(view.run_id);
    // Room kept in the last message for the tail and the buttons.
    let tail_chars: usize = tail_lines
        .iter()
        .map(|l| l.chars().count() + 1)
        .sum::<usize>()
        + 40;

    let mut messages: Vec<Vec<Value>> = vec![vec![section(&head), context(&summary)]];
    let mut chars = head.chars().count() + summary.chars().count();
    for (text, len) in sections(&grouped_lines(&groups)) {
        let blocks = messages.last().map_or(0, Vec::len);
        // Two blocks kept free for the tail and the buttons.
        if blocks + 3 > MAX_BLOCKS || chars + len + tail_chars > MAX_MESSAGE_CHARS {
            messages.push(vec![context(&format!(
                "(continued) orders for the coffee run in <#{}>",
                view.channel_id
            ))]);
            chars = 60;
        }
        chars += len;
        if let Some(last) = messages.last_mut() {
            last.push(section(&text));
        }
    }
    if let Some(last) = messages.last_mut() {
        if !tail_lines.is_empty() {
            last.push(section(&tail_lines.join("\n")));
        }
        last.push(buttons);
    }
    messages
        .into_iter()
        .enumerate()
        .map(|(i, blocks)| OutgoingMessage {
            text: if i == 0 {
                "You're the coffee runner".to_owned()
            } else {
                "More orders for your coffee run".to_owned()
            },
            blocks: Value::Array(blocks),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::ids::{ChannelId, UserId};
    use crate::slack::blocks::{OrderLine, RunState};

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("valid user id")
    }

    fn view(orders: Vec<(&str, &str)>) -> RunView {
        RunView {
            why: None,
            closes_at: None,
            run_id: Uuid::from_u128(0x42),
            channel_id: ChannelId::parse("C0COFFEE").expect("valid channel id"),
            initiator: user("U0START"),
            pickup: Some("12:30".to_owned()),
            note: Some("Blue Bottle <!here>".to_owned()),
            state: RunState::Closed,
            runner: Some(user("URUN")),
            orders: orders
                .into_iter()
                .map(|(u, t)| OrderLine {
                    user: user(u),
                    text: t.to_owned(),
                })
                .collect(),
        }
    }

    fn text_of(message: &OutgoingMessage) -> String {
        message.blocks.to_string()
    }

    #[test]
    fn the_dm_groups_identical_orders_with_who_ordered_then_note_pickup_and_buttons() {
        let messages = runner_dm_messages(&view(vec![
            ("UA", "flat white"),
            ("UB", "Latte"),
            ("UC", "Flat  White"),
            ("UD", "FLAT WHITE "),
        ]));
        assert_eq!(messages.len(), 1);
        let blocks = messages[0].blocks.as_array().expect("blocks");
        let all = text_of(&messages[0]);
        assert!(all.contains("3× flat white — <@UA>, <@UC>, <@UD>"), "{all}");
        assert!(all.contains("1× Latte — <@UB>"), "{all}");
        assert!(all.find("3× flat white") < all.find("1× Latte"));
        // The note is escaped and comes after the list, with the pickup.
        assert!(all.contains("Blue Bottle &lt;!here&gt;") && !all.contains("<!here>"));
        assert!(all.find("1× Latte") < all.find("Pickup *12:30*"));
        let actions = blocks.last().expect("a last block");
        assert_eq!(actions["type"], "actions");
        assert_eq!(actions["elements"][0]["text"]["text"], "Picked up");
        assert_eq!(actions["elements"][0]["action_id"], ACTION_PICKED_UP);
        assert_eq!(actions["elements"][1]["text"]["text"], "Delivered");
        assert_eq!(
            actions["elements"][1]["value"],
            Uuid::from_u128(0x42).to_string()
        );
        assert!(all.contains("4 orders · 2 different drinks"), "{all}");
    }

    #[test]
    fn user_text_in_orders_is_escaped() {
        let all = text_of(&runner_dm_messages(&view(vec![("UA", "<@U999> & <!channel>")]))[0]);
        assert!(
            all.contains("1× &lt;@U999&gt; &amp; &lt;!channel&gt;"),
            "{all}"
        );
    }

    #[test]
    fn a_huge_run_splits_across_messages_within_slack_limits_and_drops_nobody() {
        // 600 people, 300 different long orders and one order 300 people share.
        let ids: Vec<String> = (0..600).map(|i| format!("U{i:05}")).collect();
        let texts: Vec<String> = (0..300)
            .map(|i| format!("{i} {}", "x".repeat(140)))
            .collect();
        let orders: Vec<(&str, &str)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    id.as_str(),
                    if i < 300 {
                        texts[i].as_str()
                    } else {
                        "flat white"
                    },
                )
            })
            .collect();
        let messages = runner_dm_messages(&view(orders));
        assert!(messages.len() > 1);
        let mut all = String::new();
        for m in &messages {
            let blocks = m.blocks.as_array().expect("blocks");
            assert!(blocks.len() <= MAX_BLOCKS);
            let mut chars = 0;
            for b in blocks {
                if let Some(t) = b["text"]["text"].as_str() {
                    assert!(t.chars().count() <= MAX_SECTION_CHARS);
                    chars += t.chars().count();
                }
            }
            assert!(chars <= 12_000, "{chars}");
            all.push_str(&text_of(m));
        }
        for id in &ids {
            assert!(all.contains(&format!("<@{id}>")), "{id} dropped");
        }
        assert!(all.contains("300× flat white"));
        // 300 people on one drink continue on indented lines.
        assert!(
            all.contains("\\n    <@U") || all.contains("\"    <@U"),
            "no continuation line"
        );
        let last = messages
            .last()
            .expect("messages")
            .blocks
            .as_array()
            .expect("blocks");
        assert_eq!(last.last().expect("a block")["type"], "actions");
    }

    #[test]
    fn the_runner_dm_has_every_order_pickup_and_note_escaped_and_verbatim() {
        let messages = runner_dm_messages(&view(vec![("U1", "latte"), ("U2", "<b>mocha</b>")]));
        let tree = Value::Array(
            messages
                .iter()
                .flat_map(|m| m.blocks.as_array().cloned().unwrap_or_default())
                .collect(),
        );
        let text = tree.to_string();
        assert!(text.contains("You're the runner"), "{text}");
        assert!(text.contains("<#C0COFFEE>"));
        assert!(text.contains("1× latte — <@U1>"), "{text}");
        assert!(
            text.contains("1× &lt;b&gt;mocha&lt;/b&gt; — <@U2>"),
            "{text}"
        );
        assert!(text.contains("Pickup *12:30*"));
        assert!(text.contains("Blue Bottle &lt;!here&gt;"));
        // Every mrkdwn object is verbatim: no auto-linking inside orders.
        for block in tree.as_array().into_iter().flatten() {
            for object in [&block["text"]]
                .into_iter()
                .chain(block["elements"].as_array().into_iter().flatten())
            {
                if object["type"] == "mrkdwn" {
                    assert_eq!(object["verbatim"], true, "{object}");
                }
            }
        }
    }
}
