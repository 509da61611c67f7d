//! What Slack sends us, parsed into typed values (STYLE rule 5).
//!
//! Slash commands arrive as `application/x-www-form-urlencoded`; interactions
//! as the same encoding with one `payload` field holding JSON. Each is read
//! into a private wire struct mirroring Slack's shape, then converted with
//! `TryFrom` into a type whose ids are parsed ([`ChannelId`], [`UserId`],
//! [`TeamId`]) and whose `response_url` is checked. Call these only on a body
//! whose signature was verified.
//!
//! Errors name the field at fault, never the body: bodies carry
//! `response_url`s and `trigger_id`s, which are short-lived credentials.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;

use crate::domain::ids::{ChannelId, ParseIdError, TeamId, UserId};
use crate::slack::blocks::{OPTIONS_BLOCK, OPTIONS_INPUT, ORDER_BLOCK, ORDER_INPUT};

/// Why a Slack payload could not be read. Never contains the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParsePayloadError {
    /// The body is not a form, or a form field has the wrong shape.
    #[error("the body is not a valid Slack form: {reason}")]
    MalformedForm {
        /// What the form decoder objected to.
        reason: String,
    },
    /// The interaction's `payload` is not the JSON Slack sends.
    #[error("the interaction payload is not valid JSON: {reason}")]
    MalformedJson {
        /// What the JSON decoder objected to (position, not content).
        reason: String,
    },
    /// A field Slack always sends is missing or empty.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// An id field does not hold an id of the expected kind.
    #[error("field `{field}`: {source}")]
    InvalidId {
        /// The field.
        field: &'static str,
        /// Why the value is not an id.
        source: ParseIdError,
    },
    /// `response_url` is not an http(s) URL.
    #[error("field `response_url` is not an http(s) URL")]
    InvalidResponseUrl,
}

/// A URL Slack gave us to answer a command or interaction later (valid for 30
/// minutes, 5 uses). Only http(s) URLs are accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseUrl(String);

impl ResponseUrl {
    /// Accepts an `http://` or `https://` URL with a host and no whitespace.
    pub fn parse(s: &str) -> Result<Self, ParsePayloadError> {
        let s = s.trim();
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or(ParsePayloadError::InvalidResponseUrl)?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParsePayloadError::InvalidResponseUrl);
        }
        Ok(Self(s.to_owned()))
    }
}

impl AsRef<str> for ResponseUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Shows the scheme and host only: the path is the credential (anyone
/// holding it can post into the channel for 30 minutes), and `Debug` output
/// ends up in logs.
impl fmt::Debug for ResponseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        write!(f, "ResponseUrl(\"{scheme}://{host}/[redacted]\")")
    }
}

/// Stands in for a `trigger_id` in `Debug` output: it lets whoever holds it
/// open a modal in the person's name for 3 s, so it stays out of logs.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A slash command (`/coffee`, `/coffee-admin`). `Debug` redacts the
/// `trigger_id` and the `response_url`'s path.
#[derive(Clone, PartialEq, Eq)]
pub struct SlashCommand {
    /// The workspace.
    pub team_id: TeamId,
    /// Where the command was typed.
    pub channel_id: ChannelId,
    /// Who typed it.
    pub user_id: UserId,
    /// The command, with its slash (`/coffee`).
    pub command: String,
    /// Everything after the command, as typed (may be empty).
    pub text: String,
    /// Where delayed answers go.
    pub response_url: ResponseUrl,
    /// Lets us open a modal within 3 s.
    pub trigger_id: String,
}

impl fmt::Debug for SlashCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlashCommand")
            .field("team_id", &self.team_id)
            .field("channel_id", &self.channel_id)
            .field("user_id", &self.user_id)
            .field("command", &self.command)
            .field("text", &self.text)
            .field("response_url", &self.response_url)
            .field("trigger_id", &Redacted)
            .finish()
    }
}

/// The form fields of a slash command, as Slack names them. No `Debug`: it
/// holds the raw `response_url` and `trigger_id`.
#[derive(Deserialize)]
struct SlashCommandForm {
    team_id: Option<String>,
    channel_id: Option<String>,
    user_id: Option<String>,
    command: Option<String>,
    text: Option<String>,
    response_url: Option<String>,
    trigger_id: Option<String>,
}

fn required(value: Option<String>, field: &'static str) -> Result<String, ParsePayloadError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or(ParsePayloadError::MissingField(field))
}

fn id<T>(
    value: Option<String>,
    field: &'static str,
    parse: fn(&str) -> Result<T, ParseIdError>,
) -> Result<T, ParsePayloadError> {
    let value = required(value, field)?;
    parse(&value).map_err(|source| ParsePayloadError::InvalidId { field, source })
}

fn optional_id<T>(
    value: Option<String>,
    field: &'static str,
    parse: fn(&str) -> Result<T, ParseIdError>,
) -> Result<Option<T>, ParsePayloadError> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => parse(&v)
            .map(Some)
            .map_err(|source| ParsePayloadError::InvalidId { field, source }),
    }
}

impl TryFrom<SlashCommandForm> for SlashCommand {
    type Error = ParsePayloadError;

    fn try_from(form: SlashCommandForm) -> Result<Self, Self::Error> {
        Ok(Self {
            team_id: id(form.team_id, "team_id", TeamId::parse)?,
            channel_id: id(form.channel_id, "channel_id", ChannelId::parse)?,
            user_id: id(form.user_id, "user_id", UserId::parse)?,
            command: required(form.command, "command")?,
            text: form.text.unwrap_or_default(),
            response_url: ResponseUrl::parse(&required(form.response_url, "response_url")?)?,
            trigger_id: required(form.trigger_id, "trigger_id")?,
        })
    }
}

impl SlashCommand {
    /// Reads a slash command from its form-encoded body.
    pub fn from_form(body: &[u8]) -> Result<Self, ParsePayloadError> {
        let form: SlashCommandForm =
            serde_urlencoded::from_bytes(body).map_err(|e| ParsePayloadError::MalformedForm {
                reason: e.to_string(),
            })?;
        form.try_into()
    }
}

/// A click on one of our buttons. `Debug` redacts the `trigger_id` and the
/// `response_url`'s path.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockAction {
    /// The workspace (absent for some org-wide installs).
    pub team_id: Option<TeamId>,
    /// Who clicked.
    pub user_id: UserId,
    /// The channel of the message clicked (absent for clicks inside modals).
    pub channel_id: Option<ChannelId>,
    /// Lets us open a modal within 3 s.
    pub trigger_id: String,
    /// Where an ephemeral answer to the clicker goes.
    pub response_url: Option<ResponseUrl>,
    /// Which button (`ACTION_ORDER`, `ACTION_CLOSE`).
    pub action_id: String,
    /// The button's value: the run id.
    pub value: Option<String>,
    /// The `ts` of the message holding the button.
    pub message_ts: Option<String>,
}

impl fmt::Debug for BlockAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockAction")
            .field("team_id", &self.team_id)
            .field("user_id", &self.user_id)
            .field("channel_id", &self.channel_id)
            .field("trigger_id", &Redacted)
            .field("response_url", &self.response_url)
            .field("action_id", &self.action_id)
            .field("value", &self.value)
            .field("message_ts", &self.message_ts)
            .finish()
    }
}

/// A submitted modal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSubmission {
    /// The workspace (absent for some org-wide installs).
    pub team_id: Option<TeamId>,
    /// Who submitted.
    pub user_id: UserId,
    /// Which modal (`ORDER_MODAL_CALLBACK`).
    pub callback_id: String,
    /// What we stored in the modal: the run id.
    pub private_metadata: String,
    /// The order text input's value; `None` when the input was left empty.
    pub order_text: Option<String>,
    /// Values of the ticked options (`OPTION_SAVE_USUAL`,
    /// `OPTION_RUNNER_AGAIN`).
    pub options: Vec<String>,
}

/// Anything Slack posts to the interactions endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// A button click (`block_actions`).
    BlockAction(BlockAction),
    /// A modal submission (`view_submission`).
    ViewSubmission(ViewSubmission),
    /// Any other type (`view_closed`, `shortcut`…), to be acknowledged and
    /// ignored.
    Other {
        /// Slack's `type`.
        kind: String,
    },
}

#[derive(Debug, Deserialize)]
struct IdWire {
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ActionWire {
    action_id: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageWire {
    ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ContainerWire {
    message_ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OptionWire {
    value: String,
}

#[derive(Debug, Deserialize)]
struct StateValueWire {
    value: Option<String>,
    selected_options: Option<Vec<OptionWire>>,
}

#[derive(Debug, Deserialize)]
struct StateWire {
    #[serde(default)]
    values: HashMap<String, HashMap<String, StateValueWire>>,
}

#[derive(Debug, Deserialize)]
struct ViewWire {
    callback_id: Option<String>,
    private_metadata: Option<String>,
    state: Option<StateWire>,
}

/// The JSON in an interaction's `payload` field, as far as we read it. No
/// `Debug`: it holds the raw `response_url` and `trigger_id`.
#[derive(Deserialize)]
struct InteractionWire {
    #[serde(rename = "type")]
    kind: Option<String>,
    team: Option<IdWire>,
    user: Option<IdWire>,
    channel: Option<IdWire>,
    trigger_id: Option<String>,
    response_url: Option<String>,
    #[serde(default)]
    actions: Vec<ActionWire>,
    message: Option<MessageWire>,
    container: Option<ContainerWire>,
    view: Option<ViewWire>,
}

/// No `Debug`: the payload holds the raw `response_url` and `trigger_id`.
#[derive(Deserialize)]
struct InteractionForm {
    payload: Option<String>,
}

impl TryFrom<InteractionWire> for Interaction {
    type Error = ParsePayloadError;

    fn try_from(wire: InteractionWire) -> Result<Self, Self::Error> {
        let kind = required(wire.kind, "type")?;
        let team_id = optional_id(wire.team.and_then(|t| t.id), "team.id", TeamId::parse)?;
        match kind.as_str() {
            "block_actions" => {
                let action = wire
                    .actions
                    .into_iter()
                    .next()
                    .ok_or(ParsePayloadError::MissingField("actions"))?;
                let response_url = match wire.response_url.filter(|u| !u.is_empty()) {
                    Some(url) => Some(ResponseUrl::parse(&url)?),
                    None => None,
                };
                Ok(Self::BlockAction(BlockAction {
                    team_id,
                    user_id: id(wire.user.and_then(|u| u.id), "user.id", UserId::parse)?,
                    channel_id: optional_id(
                        wire.channel.and_then(|c| c.id),
                        "channel.id",
                        ChannelId::parse,
                    )?,
                    trigger_id: required(wire.trigger_id, "trigger_id")?,
                    response_url,
                    action_id: required(action.action_id, "actions[0].action_id")?,
                    value: action.value,
                    message_ts: wire
                        .message
                        .and_then(|m| m.ts)
                        .or_else(|| wire.container.and_then(|c| c.message_ts)),
                }))
            }
            "view_submission" => {
                let view = wire.view.ok_or(ParsePayloadError::MissingField("view"))?;
                let mut values = view.state.map(|s| s.values).unwrap_or_default();
                let mut take = |block: &str, action: &str| {
                    values
                        .get_mut(block)
                        .and_then(|actions| actions.remove(action))
                };
                let order_text = take(ORDER_BLOCK, ORDER_INPUT).and_then(|v| v.value);
                let options = take(OPTIONS_BLOCK, OPTIONS_INPUT)
                    .and_then(|v| v.selected_options)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| o.value)
                    .collect();
                Ok(Self::ViewSubmission(ViewSubmission {
                    team_id,
                    user_id: id(wire.user.and_then(|u| u.id), "user.id", UserId::parse)?,
                    callback_id: required(view.callback_id, "view.callback_id")?,
                    private_metadata: view.private_metadata.unwrap_or_default(),
                    order_text,
                    options,
                }))
            }
            _ => Ok(Self::Other { kind }),
        }
    }
}

impl Interaction {
    /// Reads an interaction from its form-encoded body (`payload=<JSON>`).
    pub fn from_form(body: &[u8]) -> Result<Self, ParsePayloadError> {
        let form: InteractionForm =
            serde_urlencoded::from_bytes(body).map_err(|e| ParsePayloadError::MalformedForm {
                reason: e.to_string(),
            })?;
        let payload = required(form.payload, "payload")?;
        let wire: InteractionWire =
            serde_json::from_str(&payload).map_err(|e| ParsePayloadError::MalformedJson {
                // serde_json's messages name a position and an expectation;
                // `classify` + position avoids echoing any payload content.
                reason: format!(
                    "{:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })?;
        wire.try_into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::blocks::{
        ACTION_CLOSE, ACTION_ORDER, OPTION_RUNNER_AGAIN, OPTION_SAVE_USUAL,
    };

    const SLASH_COMMAND: &str = include_str!("fixtures/slash_command.form");
    const BLOCK_ACTION_ORDER: &str = include_str!("fixtures/block_actions_order.json");
    const BLOCK_ACTION_CLOSE: &str = include_str!("fixtures/block_actions_close.json");
    const VIEW_SUBMISSION: &str = include_str!("fixtures/view_submission.json");
    const VIEW_SUBMISSION_NO_OPTIONS: &str =
        include_str!("fixtures/view_submission_no_options.json");

    /// An interaction body exactly as Slack posts it.
    fn form(json: &str) -> Vec<u8> {
        serde_urlencoded::to_string([("payload", json)])
            .expect("encodable")
            .into_bytes()
    }

    #[test]
    fn a_slash_command_form_parses_into_typed_ids() {
        let cmd = SlashCommand::from_form(SLASH_COMMAND.trim().as_bytes()).expect("parses");
        assert_eq!(cmd.team_id.as_ref(), "T0001COFFEE");
        assert_eq!(cmd.channel_id.as_ref(), "C0COFFEE1");
        assert_eq!(cmd.user_id.as_ref(), "U0ALICE1");
        assert_eq!(cmd.command, "/coffee");
        assert_eq!(cmd.text, "12:30 Blue Bottle & <friends>");
        assert_eq!(
            cmd.response_url.as_ref(),
            "https://hooks.slack.com/commands/T0001COFFEE/1234567890/abcdefABCDEF123"
        );
        assert_eq!(cmd.trigger_id, "13345224609.738474920.8088930838d88f008e0");
    }

    #[test]
    fn debug_output_never_shows_a_response_url_path_or_a_trigger_id() {
        let cmd = SlashCommand::from_form(SLASH_COMMAND.trim().as_bytes()).expect("parses");
        let Interaction::BlockAction(action) =
            Interaction::from_form(&form(BLOCK_ACTION_ORDER)).expect("parses")
        else {
            panic!("a block action");
        };
        let interaction = Interaction::BlockAction(action.clone());
        for debug in [
            format!("{cmd:?}"),
            format!("{cmd:#?}"),
            format!("{action:?}"),
            format!("{interaction:?}"),
            format!("{:?}", cmd.response_url),
        ] {
            assert!(!debug.contains(&cmd.trigger_id), "{debug}");
            assert!(!debug.contains(&action.trigger_id), "{debug}");
            assert!(!debug.contains("abcdefABCDEF123"), "{debug}");
            assert!(!debug.contains("/commands/"), "{debug}");
            if let Some(url) = &action.response_url {
                assert!(!debug.contains(url.as_ref()), "{debug}");
            }
            assert!(debug.contains("[redacted]"), "{debug}");
        }
        // What is not a credential stays visible for debugging.
        let debug = format!("{cmd:?}");
        assert!(debug.contains("C0COFFEE1") && debug.contains("hooks.slack.com"));
    }

    #[test]
    fn a_slash_command_without_text_has_empty_text() {
        let body = SLASH_COMMAND
            .trim()
            .replace("&text=12%3A30+Blue+Bottle+%26+%3Cfriends%3E", "");
        let cmd = SlashCommand::from_form(body.as_bytes()).expect("parses");
        assert_eq!(cmd.text, "");
    }

    #[test]
    fn a_slash_command_with_a_bad_or_missing_id_is_refused_without_echoing_the_body() {
        let body = SLASH_COMMAND
            .trim()
            .replace("user_id=U0ALICE1", "user_id=alice");
        let err = SlashCommand::from_form(body.as_bytes()).expect_err("bad id");
        assert!(matches!(
            err,
            ParsePayloadError::InvalidId {
                field: "user_id",
                ..
            }
        ));
        assert!(!err.to_string().contains("hooks.slack.com"));

        let body = SLASH_COMMAND.trim().replace("channel_id=C0COFFEE1&", "");
        assert_eq!(
            SlashCommand::from_form(body.as_bytes()),
            Err(ParsePayloadError::MissingField("channel_id"))
        );
    }

    #[test]
    fn a_response_url_must_be_http_or_https() {
        assert!(ResponseUrl::parse("https://hooks.slack.com/actions/T1/2/x").is_ok());
        assert!(ResponseUrl::parse("http://127.0.0.1:4000/response/a").is_ok());
        for bad in [
            "",
            "ftp://x/y",
            "https://",
            "hooks.slack.com/x",
            "https://a b/c",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                ResponseUrl::parse(bad),
                Err(ParsePayloadError::InvalidResponseUrl),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_click_on_order_parses_into_a_block_action() {
        let Interaction::BlockAction(action) =
            Interaction::from_form(&form(BLOCK_ACTION_ORDER)).expect("parses")
        else {
            panic!("not a block action");
        };
        assert_eq!(
            action.team_id.as_ref().map(AsRef::as_ref),
            Some("T0001COFFEE")
        );
        assert_eq!(action.user_id.as_ref(), "U0BOB0001");
        assert_eq!(
            action.channel_id.as_ref().map(AsRef::as_ref),
            Some("C0COFFEE1")
        );
        assert_eq!(
            action.trigger_id,
            "701933029591.98403428544.ee2c1e6a4b7f0b4d3a8f"
        );
        assert_eq!(action.action_id, ACTION_ORDER);
        assert_eq!(
            action.value.as_deref(),
            Some("0b6e1f5c-3c1a-4c8e-9d55-2f4f1a6f9b11")
        );
        assert_eq!(action.message_ts.as_deref(), Some("1700000000.000100"));
        assert_eq!(
            action.response_url.as_ref().map(AsRef::as_ref),
            Some("https://hooks.slack.com/actions/T0001COFFEE/7019/xyzXYZ")
        );
    }

    #[test]
    fn a_click_on_close_run_parses_into_a_block_action() {
        let Interaction::BlockAction(action) =
            Interaction::from_form(&form(BLOCK_ACTION_CLOSE)).expect("parses")
        else {
            panic!("not a block action");
        };
        assert_eq!(action.action_id, ACTION_CLOSE);
        assert_eq!(action.user_id.as_ref(), "U0ALICE1");
        assert_eq!(
            action.value.as_deref(),
            Some("0b6e1f5c-3c1a-4c8e-9d55-2f4f1a6f9b11")
        );
        assert_eq!(action.message_ts.as_deref(), Some("1700000000.000100"));
    }

    #[test]
    fn a_submitted_order_modal_carries_text_and_ticked_options() {
        let Interaction::ViewSubmission(sub) =
            Interaction::from_form(&form(VIEW_SUBMISSION)).expect("parses")
        else {
            panic!("not a view submission");
        };
        assert_eq!(sub.user_id.as_ref(), "U0BOB0001");
        assert_eq!(sub.team_id.as_ref().map(AsRef::as_ref), Some("T0001COFFEE"));
        assert_eq!(sub.callback_id, "order_submit");
        assert_eq!(sub.private_metadata, "0b6e1f5c-3c1a-4c8e-9d55-2f4f1a6f9b11");
        assert_eq!(
            sub.order_text.as_deref(),
            Some("Flat white <@U123> & <!channel>")
        );
        assert_eq!(sub.options, [OPTION_SAVE_USUAL, OPTION_RUNNER_AGAIN]);
    }

    #[test]
    fn a_submitted_order_modal_without_ticks_has_no_options() {
        let Interaction::ViewSubmission(sub) =
            Interaction::from_form(&form(VIEW_SUBMISSION_NO_OPTIONS)).expect("parses")
        else {
            panic!("not a view submission");
        };
        assert_eq!(sub.order_text.as_deref(), Some("tea"));
        assert!(sub.options.is_empty());
    }

    #[test]
    fn other_interaction_types_are_passed_through_by_kind() {
        let json = r#"{"type":"view_closed","user":{"id":"U0BOB0001"},"view":{}}"#;
        assert_eq!(
            Interaction::from_form(&form(json)),
            Ok(Interaction::Other {
                kind: "view_closed".to_owned()
            })
        );
    }

    #[test]
    fn a_broken_interaction_payload_is_refused_without_echoing_it() {
        let err = Interaction::from_form(&form(r#"{"type":"block_actions","secret-ish":"#))
            .expect_err("broken JSON");
        assert!(matches!(err, ParsePayloadError::MalformedJson { .. }));
        assert!(!err.to_string().contains("secret-ish"));

        assert_eq!(
            Interaction::from_form(b"nothing=here"),
            Err(ParsePayloadError::MissingField("payload"))
        );
        let no_actions =
            r#"{"type":"block_actions","user":{"id":"U1"},"trigger_id":"t","actions":[]}"#;
        assert_eq!(
            Interaction::from_form(&form(no_actions)),
            Err(ParsePayloadError::MissingField("actions"))
        );
    }
}
