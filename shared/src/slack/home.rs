//! The App Home (DESIGN §1.14): the `home` view a person sees on
//! CoffeeBuddy's Home tab, published (`views.publish`) when Slack sends
//! `app_home_opened`.
//!
//! It shows their saved usual with an **Edit usual** button (action
//! [`ACTION_EDIT_USUAL`]; it opens [`usual_modal`], the same order text input
//! as the order modal), their runs served per channel, and the open runs in
//! channels where they have ordered before, each with the **Order** button
//! of the run message (same action and value, so it opens the same order
//! modal). [`crate::app::home::home_view`] reads it from the database;
//! [`home`] is the pure builder, within Slack's 100 blocks a view.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::ids::{ChannelId, UserId};
use crate::slack::blocks::{
    ACTION_ORDER, MAX_ORDER_CHARS, MAX_SECTION_CHARS, ORDER_BLOCK, ORDER_INPUT, button, context,
    plain, plural, section, user_text,
};

/// `action_id` of the **Edit usual** button on the Home tab.
pub const ACTION_EDIT_USUAL: &str = "home_edit_usual";
/// `callback_id` of the modal that edits the saved usual.
pub const USUAL_MODAL_CALLBACK: &str = "usual_submit";
/// Slack's limit on blocks in a view.
pub const MAX_VIEW_BLOCKS: usize = 100;
/// Open runs listed (each takes one block).
pub const MAX_OPEN_RUNS: usize = 20;

/// An open run as the Home tab lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeRun {
    /// The run (the Order button's value).
    pub run_id: Uuid,
    /// Its channel.
    pub channel_id: ChannelId,
    /// Who started it.
    pub initiator: UserId,
    /// Pickup, already `HH:MM` in the channel's time zone.
    pub pickup: Option<String>,
    /// The note, raw as typed.
    pub note: Option<String>,
    /// Orders so far.
    pub order_count: usize,
    /// The person's own order, raw as typed.
    pub own_order: Option<String>,
}

/// Everything the Home tab shows one person.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HomeData {
    /// Their saved usual, raw as typed.
    pub usual: Option<String>,
    /// Runs they served, per channel, most first.
    pub served: Vec<(ChannelId, i64)>,
    /// Open runs in channels where they ordered before, newest first.
    pub open_runs: Vec<HomeRun>,
}

fn divider() -> Value {
    json!({ "type": "divider" })
}

fn header(text: &str) -> Value {
    json!({ "type": "header", "text": plain(text) })
}

/// The `home` view (for `views.publish`).
pub fn home(data: &HomeData) -> Value {
    let mut blocks = vec![header("CoffeeBuddy")];
    let usual = match &data.usual {
        Some(usual) => format!("*Your usual:* {}", user_text(usual)),
        None => "*Your usual:* none saved yet. Save one here, or tick \"Save as my usual\" when you order.".to_owned(),
    };
    let mut usual_block = section(&usual);
    usual_block["accessory"] = button("Edit usual", ACTION_EDIT_USUAL, "usual", "primary");
    blocks.push(usual_block);

    blocks.push(divider());
    blocks.push(section("*Runs you served*"));
    if data.served.is_empty() {
        blocks.push(context("None yet: when a run closes, the runner is picked fairly among the people who ordered."));
    } else {
        let mut text = String::new();
        let mut listed = 0;
        for (channel, n) in &data.served {
            let line = format!(
                "• <#{channel}>: {}",
                plural(usize::try_from(*n).unwrap_or(0), "run", "runs")
            );
            if text.chars().count() + line.chars().count() + 40 > MAX_SECTION_CHARS {
                break;
            }
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&line);
            listed += 1;
        }
        let hidden = data.served.len() - listed;
        if hidden > 0 {
            text.push_str(&format!("\n…and {hidden} more channels"));
        }
        blocks.push(section(&text));
    }

    blocks.push(divider());
    blocks.push(section("*Open coffee runs in your channels*"));
    if data.open_runs.is_empty() {
        blocks.push(context("No open run in the channels where you have ordered. Start one with `/coffee` in a channel."));
    }
    // Room left for the "more" line.
    let room = MAX_VIEW_BLOCKS
        .saturating_sub(blocks.len() + 1)
        .min(MAX_OPEN_RUNS);
    for run in data.open_runs.iter().take(room) {
        let mut text = format!(
            "<#{}> · started by {} · {}",
            run.channel_id,
            run.initiator.mention(),
            plural(run.order_count, "order", "orders"),
        );
        if let Some(pickup) = &run.pickup {
            text.push_str(&format!(" · pickup *{}*", user_text(pickup)));
        }
        if let Some(note) = run.note.as_deref().filter(|n| !n.trim().is_empty()) {
            text.push_str(&format!("\n:memo: {}", user_text(note)));
        }
        if let Some(own) = &run.own_order {
            text.push_str(&format!("\nYour order: {}", user_text(own)));
        }
        let label = if run.own_order.is_some() {
            "Change order"
        } else {
            "Order"
        };
        let mut block = section(&text);
        block["accessory"] = button(label, ACTION_ORDER, &run.run_id.to_string(), "primary");
        blocks.push(block);
    }
    let hidden = data.open_runs.len().saturating_sub(room);
    if hidden > 0 {
        blocks.push(context(&format!("…and {hidden} more open runs")));
    }
    json!({ "type": "home", "blocks": blocks })
}

/// The modal that edits the saved usual: the same order text input as the
/// order modal (block [`ORDER_BLOCK`], action [`ORDER_INPUT`], 150
/// characters, required), pre-filled with the current usual.
pub fn usual_modal(current: Option<&str>) -> Value {
    let mut input = json!({
        "type": "plain_text_input",
        "action_id": ORDER_INPUT,
        "max_length": MAX_ORDER_CHARS,
        "placeholder": plain("e.g. flat white, oat milk"),
    });
    if let Some(current) = current.filter(|c| !c.is_empty()) {
        input["initial_value"] = json!(crate::domain::text::truncate_chars(
            current,
            MAX_ORDER_CHARS
        ));
    }
    json!({
        "type": "modal",
        "callback_id": USUAL_MODAL_CALLBACK,
        "title": plain("Your usual"),
        "submit": plain("Save"),
        "close": plain("Cancel"),
        "blocks": [
            context("Your usual pre-fills the order form in every channel."),
            {
                "type": "input",
                "block_id": ORDER_BLOCK,
                "optional": false,
                "label": plain("Your usual order"),
                "element": input,
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("valid user id")
    }

    fn channel(id: &str) -> ChannelId {
        ChannelId::parse(id).expect("valid channel id")
    }

    fn open_run(n: u128, own: Option<&str>) -> HomeRun {
        HomeRun {
            run_id: Uuid::from_u128(n),
            channel_id: channel("C0COFFEE"),
            initiator: user("U0START"),
            pickup: Some("10:30".to_owned()),
            note: Some("Blue Bottle <!here>".to_owned()),
            order_count: 3,
            own_order: own.map(str::to_owned),
        }
    }

    fn blocks(view: &Value) -> &Vec<Value> {
        view["blocks"].as_array().expect("blocks")
    }

    #[test]
    fn the_home_shows_the_usual_with_an_edit_button_served_counts_and_open_runs() {
        let view = home(&HomeData {
            usual: Some("flat white <@U999>".to_owned()),
            served: vec![(channel("C0COFFEE"), 3), (channel("C0TEA"), 1)],
            open_runs: vec![open_run(1, None), open_run(2, Some("latte"))],
        });
        assert_eq!(view["type"], "home");
        let text = view.to_string();
        assert!(
            text.contains("*Your usual:* flat white &lt;@U999&gt;"),
            "{text}"
        );
        let usual = &blocks(&view)[1];
        assert_eq!(usual["accessory"]["action_id"], ACTION_EDIT_USUAL);
        assert_eq!(usual["accessory"]["text"]["text"], "Edit usual");
        assert!(
            text.contains("• <#C0COFFEE>: 3 runs\\n• <#C0TEA>: 1 run"),
            "{text}"
        );
        assert!(text.contains("<#C0COFFEE> · started by <@U0START> · 3 orders · pickup *10:30*"));
        assert!(text.contains("Blue Bottle &lt;!here&gt;") && !text.contains("<!here>"));
        let order_buttons: Vec<&Value> = blocks(&view)
            .iter()
            .filter(|b| b["accessory"]["action_id"] == ACTION_ORDER)
            .collect();
        assert_eq!(order_buttons.len(), 2);
        assert_eq!(
            order_buttons[0]["accessory"]["value"],
            Uuid::from_u128(1).to_string()
        );
        assert_eq!(
            order_buttons[1]["accessory"]["text"]["text"],
            "Change order"
        );
        assert!(text.contains("Your order: latte"));
    }

    #[test]
    fn a_newcomer_sees_what_to_do() {
        let text = home(&HomeData::default()).to_string();
        assert!(text.contains("none saved yet"));
        assert!(text.contains("None yet"));
        assert!(text.contains("Start one with `/coffee`"));
    }

    #[test]
    fn the_view_stays_within_slacks_100_blocks() {
        let view = home(&HomeData {
            usual: None,
            served: (0..500)
                .map(|i| (channel(&format!("C{i:06}")), 1))
                .collect(),
            open_runs: (0..300).map(|i| open_run(i, None)).collect(),
        });
        assert!(blocks(&view).len() <= MAX_VIEW_BLOCKS);
        let text = view.to_string();
        assert!(text.contains("more open runs"));
        assert!(text.contains("more channels"));
        for b in blocks(&view) {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= MAX_SECTION_CHARS);
            }
        }
    }

    #[test]
    fn the_usual_modal_uses_the_order_text_input_prefilled() {
        let modal = usual_modal(Some("flat white"));
        assert_eq!(modal["callback_id"], USUAL_MODAL_CALLBACK);
        let input = &modal["blocks"][1];
        assert_eq!(input["block_id"], ORDER_BLOCK);
        assert_eq!(input["element"]["action_id"], ORDER_INPUT);
        assert_eq!(input["element"]["type"], "plain_text_input");
        assert_eq!(input["element"]["max_length"], MAX_ORDER_CHARS);
        assert_eq!(input["element"]["initial_value"], "flat white");
        assert!(
            usual_modal(None)["blocks"][1]["element"]
                .get("initial_value")
                .is_none()
        );
    }
}
