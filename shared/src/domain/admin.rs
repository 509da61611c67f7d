//! Channel governance rules (DESIGN §1.6, §1.7): the `/coffee-admin`
//! subcommands, and the bounds every configuration change obeys, whether it
//! comes from Slack or from the operators' REST API.

use std::fmt;

use chrono_tz::Tz;
use serde::Serialize;

use crate::domain::auto_close::AutoCloseMinutes;
use crate::domain::ids::{UserId, parse_mention};

/// Reminder offset bounds, minutes before pickup.
pub const REMINDER_OFFSET_MINUTES: std::ops::RangeInclusive<i32> = 0..=60;
/// Retention bounds, days.
pub const RETENTION_DAYS: std::ops::RangeInclusive<i32> = 1..=3650;

/// Why a configuration value or an admin command was refused. The text is
/// shown to the person (ephemeral) or returned in the API's JSON error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAdminError {
    /// Nothing after `/coffee-admin`, or an unknown subcommand.
    #[error("Unknown subcommand `{0}`.")]
    UnknownSubcommand(String),
    /// A subcommand without its argument, or with a wrong one.
    #[error("Usage: `/coffee-admin {0}`.")]
    Usage(&'static str),
    /// A reminder offset outside 0–60.
    #[error("The reminder offset must be a whole number of minutes from 0 to 60.")]
    ReminderOffset,
    /// A retention outside 1–3650.
    #[error("Retention must be a whole number of days from 1 to 3650.")]
    Retention,
    /// Not an IANA time zone name.
    #[error(
        "`{0}` is not a time zone name. Use an IANA name such as `Europe/Berlin` or `America/New_York`."
    )]
    Timezone(String),
    /// An auto-close setting that is neither 1–60 nor `off`.
    #[error("Auto-close must be a whole number of minutes from 1 to 60, or `off`.")]
    AutoClose,
    /// Not a user mention.
    #[error(
        "`{0}` is not a user mention. Type `@` and pick the person, e.g. `/coffee-admin admins add @jane`."
    )]
    Mention(String),
}

/// Makes user text safe to echo inside backticks in an ephemeral answer.
fn echo(s: &str) -> String {
    let short: String = s.chars().take(40).collect();
    crate::domain::text::escape_mrkdwn(&short).replace('`', "'")
}

/// Parses a reminder offset in minutes.
pub fn parse_reminder_offset(value: i64) -> Result<i32, ParseAdminError> {
    i32::try_from(value)
        .ok()
        .filter(|v| REMINDER_OFFSET_MINUTES.contains(v))
        .ok_or(ParseAdminError::ReminderOffset)
}

/// Parses a retention in days.
pub fn parse_retention_days(value: i64) -> Result<i32, ParseAdminError> {
    i32::try_from(value)
        .ok()
        .filter(|v| RETENTION_DAYS.contains(v))
        .ok_or(ParseAdminError::Retention)
}

/// Parses an auto-close setting in minutes before pickup (1–60).
pub fn parse_auto_close_minutes(value: i64) -> Result<AutoCloseMinutes, ParseAdminError> {
    AutoCloseMinutes::new(value).ok_or(ParseAdminError::AutoClose)
}

/// Parses an IANA time zone name.
pub fn parse_timezone(name: &str) -> Result<Tz, ParseAdminError> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| ParseAdminError::Timezone(echo(name)))
}

/// A validated change to a channel's configuration; `None` leaves a field
/// as it is. Built only through the parse functions above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigPatch {
    /// `/coffee` allowed.
    pub enabled: Option<bool>,
    /// Pickup reminders sent.
    pub reminders_enabled: Option<bool>,
    /// Minutes before pickup (0–60).
    pub reminder_offset_minutes: Option<i32>,
    /// Days closed runs are kept (1–3650).
    pub retention_days: Option<i32>,
    /// Time zone for pickup times.
    pub timezone: Option<Tz>,
    /// Auto-close: turned off, or set to N minutes before pickup.
    pub auto_close: Option<AutoCloseSetting>,
}

/// A new value of a channel's auto-close setting (DESIGN §1.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCloseSetting {
    /// Runs close only by hand (the default).
    Off,
    /// Runs with a pickup time close themselves this long before pickup.
    Before(AutoCloseMinutes),
}

impl AutoCloseSetting {
    /// The minutes, `None` when off (as stored and as the API shows it).
    pub fn minutes(self) -> Option<AutoCloseMinutes> {
        match self {
            Self::Off => None,
            Self::Before(m) => Some(m),
        }
    }
}

impl ConfigPatch {
    /// Whether the patch changes nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A `/coffee-admin` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// `help`.
    Help,
    /// `status`.
    Status,
    /// `enable`, `disable`, `reminders on|off`, `reminder-offset N`,
    /// `retention N`, `timezone NAME`, `auto-close N|off`: a configuration
    /// change, with the audit action name.
    Configure {
        /// What the audit trail calls it.
        action: AuditAction,
        /// The change.
        patch: ConfigPatch,
    },
    /// `admins add <@U…>`.
    AddAdmin(UserId),
    /// `admins remove <@U…>`.
    RemoveAdmin(UserId),
    /// `reset`: asks for confirmation.
    Reset,
    /// `reset confirm`.
    ResetConfirm,
}

impl AdminCommand {
    /// Whether anyone may run it (`help`, `status`), not only admins.
    pub fn is_open_to_everyone(&self) -> bool {
        matches!(self, Self::Help | Self::Status)
    }
}

impl fmt::Display for AdminCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Help => f.write_str("help"),
            Self::Status => f.write_str("status"),
            Self::Configure { action, .. } => f.write_str(action.as_str()),
            Self::AddAdmin(_) => f.write_str("admins add"),
            Self::RemoveAdmin(_) => f.write_str("admins remove"),
            Self::Reset => f.write_str("reset"),
            Self::ResetConfirm => f.write_str("reset confirm"),
        }
    }
}

/// What an audit row says was done (`audit_log.action`, and the `action`
/// of `channel.config_changed`). The names are what operators read and
/// filter on: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// `/coffee-admin enable`.
    Enable,
    /// `/coffee-admin disable`.
    Disable,
    /// `/coffee-admin reminders on`.
    RemindersOn,
    /// `/coffee-admin reminders off`.
    RemindersOff,
    /// `/coffee-admin reminder-offset N`.
    ReminderOffset,
    /// `/coffee-admin retention N`.
    Retention,
    /// `/coffee-admin timezone NAME`.
    Timezone,
    /// `/coffee-admin auto-close N`.
    AutoClose,
    /// `/coffee-admin auto-close off`.
    AutoCloseOff,
    /// `/coffee-admin admins add`.
    AdminsAdd,
    /// `/coffee-admin admins remove`.
    AdminsRemove,
    /// `/coffee-admin reset confirm`.
    Reset,
    /// The daily purge of data older than the retention (actor `system`);
    /// recorded as `retention`, like the setting, since the first release.
    RetentionPurge,
    /// `PUT /admin/api/v1/channels/{id}/config`.
    ApiUpdate,
}

impl AuditAction {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::RemindersOn => "reminders-on",
            Self::RemindersOff => "reminders-off",
            Self::ReminderOffset => "reminder-offset",
            Self::Retention | Self::RetentionPurge => "retention",
            Self::Timezone => "timezone",
            Self::AutoClose => "auto-close",
            Self::AutoCloseOff => "auto-close-off",
            Self::AdminsAdd => "admins-add",
            Self::AdminsRemove => "admins-remove",
            Self::Reset => "reset",
            Self::ApiUpdate => "api-update",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Help text for `/coffee-admin` (mrkdwn).
pub const ADMIN_USAGE: &str = "*`/coffee-admin` — channel settings for CoffeeBuddy*\n\
• `/coffee-admin status` — show this channel's settings (anyone)\n\
• `/coffee-admin enable` / `disable` — allow or block `/coffee` here\n\
• `/coffee-admin reminders on` / `off` — pickup reminders for runners\n\
• `/coffee-admin reminder-offset 5` — remind the runner N minutes before pickup (0–60)\n\
• `/coffee-admin retention 90` — keep closed runs N days (1–3650)\n\
• `/coffee-admin timezone Europe/Berlin` — time zone for pickup times\n\
• `/coffee-admin auto-close 10` / `auto-close off` — runs with a pickup time close themselves N minutes before pickup (1–60); off by default\n\
• `/coffee-admin admins add @jane` / `admins remove @jane` — channel admins\n\
• `/coffee-admin reset`, then `/coffee-admin reset confirm` within 5 minutes — delete this channel's runs, orders, reminders and runner counts (settings and audit stay)\n\
• `/coffee-admin help` — this text\n\
Changes are for channel admins and workspace admins; every change is audited.";

fn number(
    arg: Option<&str>,
    usage: &'static str,
    parse: fn(i64) -> Result<i32, ParseAdminError>,
) -> Result<i32, ParseAdminError> {
    let arg = arg.ok_or(ParseAdminError::Usage(usage))?;
    // A non-number ("five", "99999999999999999999") gets the same answer as
    // an out-of-range one: the message states the bounds.
    parse(arg.parse::<i64>().unwrap_or(i64::MIN))
}

/// Parses the text after `/coffee-admin`.
pub fn parse_admin_command(text: &str) -> Result<AdminCommand, ParseAdminError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let arg = |i: usize| words.get(i).copied();
    let patch = ConfigPatch::default();
    let only = |n: usize, usage: &'static str| {
        if words.len() == n {
            Ok(())
        } else {
            Err(ParseAdminError::Usage(usage))
        }
    };
    match lower.first().map(String::as_str) {
        None | Some("help") => Ok(AdminCommand::Help),
        Some("status") => only(1, "status").map(|()| AdminCommand::Status),
        Some("enable") => only(1, "enable").map(|()| AdminCommand::Configure {
            action: AuditAction::Enable,
            patch: ConfigPatch {
                enabled: Some(true),
                ..patch
            },
        }),
        Some("disable") => only(1, "disable").map(|()| AdminCommand::Configure {
            action: AuditAction::Disable,
            patch: ConfigPatch {
                enabled: Some(false),
                ..patch
            },
        }),
        Some("reminders") => {
            only(2, "reminders on|off")?;
            let on = match lower[1].as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(ParseAdminError::Usage("reminders on|off")),
            };
            Ok(AdminCommand::Configure {
                action: if on {
                    AuditAction::RemindersOn
                } else {
                    AuditAction::RemindersOff
                },
                patch: ConfigPatch {
                    reminders_enabled: Some(on),
                    ..patch
                },
            })
        }
        Some("reminder-offset") => {
            only(2, "reminder-offset <0-60>")?;
            let minutes = number(arg(1), "reminder-offset <0-60>", parse_reminder_offset)?;
            Ok(AdminCommand::Configure {
                action: AuditAction::ReminderOffset,
                patch: ConfigPatch {
                    reminder_offset_minutes: Some(minutes),
                    ..patch
                },
            })
        }
        Some("retention") => {
            only(2, "retention <1-3650>")?;
            let days = number(arg(1), "retention <1-3650>", parse_retention_days)?;
            Ok(AdminCommand::Configure {
                action: AuditAction::Retention,
                patch: ConfigPatch {
                    retention_days: Some(days),
                    ..patch
                },
            })
        }
        Some("timezone") => {
            only(2, "timezone <IANA name>")?;
            let tz = parse_timezone(arg(1).unwrap_or_default())?;
            Ok(AdminCommand::Configure {
                action: AuditAction::Timezone,
                patch: ConfigPatch {
                    timezone: Some(tz),
                    ..patch
                },
            })
        }
        Some("auto-close") => {
            const USAGE: &str = "auto-close <1-60>|off";
            only(2, USAGE)?;
            if lower[1] == "off" {
                return Ok(AdminCommand::Configure {
                    action: AuditAction::AutoCloseOff,
                    patch: ConfigPatch {
                        auto_close: Some(AutoCloseSetting::Off),
                        ..patch
                    },
                });
            }
            // As for the other numbers: junk gets the bounds, not a shrug.
            let minutes = parse_auto_close_minutes(lower[1].parse::<i64>().unwrap_or(i64::MIN))?;
            Ok(AdminCommand::Configure {
                action: AuditAction::AutoClose,
                patch: ConfigPatch {
                    auto_close: Some(AutoCloseSetting::Before(minutes)),
                    ..patch
                },
            })
        }
        Some("admins") => {
            only(3, "admins add|remove <@user>")?;
            let user = arg(2).unwrap_or_default();
            let user = parse_mention(user).ok_or_else(|| ParseAdminError::Mention(echo(user)))?;
            match lower[1].as_str() {
                "add" => Ok(AdminCommand::AddAdmin(user)),
                "remove" => Ok(AdminCommand::RemoveAdmin(user)),
                _ => Err(ParseAdminError::Usage("admins add|remove <@user>")),
            }
        }
        Some("reset") => match lower.get(1).map(String::as_str) {
            None => Ok(AdminCommand::Reset),
            Some("confirm") if words.len() == 2 => Ok(AdminCommand::ResetConfirm),
            _ => Err(ParseAdminError::Usage("reset (then reset confirm)")),
        },
        Some(_) => Err(ParseAdminError::UnknownSubcommand(echo(words[0]))),
    }
}

/// How a channel's configuration reads in the API and in audit rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigView {
    /// `/coffee` allowed.
    pub enabled: bool,
    /// Pickup reminders sent.
    pub reminders_enabled: bool,
    /// Minutes before pickup.
    pub reminder_offset_minutes: i32,
    /// Days closed runs are kept.
    pub retention_days: i32,
    /// IANA time zone name.
    pub timezone: String,
    /// Minutes before pickup that runs close themselves; `null` = off.
    pub auto_close_minutes: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(text: &str) -> ConfigPatch {
        match parse_admin_command(text) {
            Ok(AdminCommand::Configure { patch, .. }) => patch,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn every_subcommand_parses() {
        assert_eq!(parse_admin_command(""), Ok(AdminCommand::Help));
        assert_eq!(parse_admin_command("help"), Ok(AdminCommand::Help));
        assert_eq!(parse_admin_command("STATUS"), Ok(AdminCommand::Status));
        assert_eq!(configure("enable").enabled, Some(true));
        assert_eq!(configure("disable").enabled, Some(false));
        assert_eq!(configure("reminders on").reminders_enabled, Some(true));
        assert_eq!(configure("reminders OFF").reminders_enabled, Some(false));
        assert_eq!(
            configure("reminder-offset 0").reminder_offset_minutes,
            Some(0)
        );
        assert_eq!(
            configure("reminder-offset 60").reminder_offset_minutes,
            Some(60)
        );
        assert_eq!(configure("retention 1").retention_days, Some(1));
        assert_eq!(configure("retention 3650").retention_days, Some(3650));
        assert_eq!(
            configure("timezone Europe/Berlin").timezone,
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(
            configure("auto-close 1").auto_close,
            Some(AutoCloseSetting::Before(AutoCloseMinutes::new(1).unwrap()))
        );
        assert_eq!(
            configure("Auto-Close 60").auto_close,
            Some(AutoCloseSetting::Before(AutoCloseMinutes::new(60).unwrap()))
        );
        assert_eq!(
            configure("auto-close OFF").auto_close,
            Some(AutoCloseSetting::Off)
        );
        assert_eq!(
            parse_admin_command("admins add <@U123|jane>"),
            Ok(AdminCommand::AddAdmin(UserId::parse("U123").unwrap()))
        );
        assert_eq!(
            parse_admin_command("admins remove <@W42>"),
            Ok(AdminCommand::RemoveAdmin(UserId::parse("W42").unwrap()))
        );
        assert_eq!(parse_admin_command("reset"), Ok(AdminCommand::Reset));
        assert_eq!(
            parse_admin_command("reset confirm"),
            Ok(AdminCommand::ResetConfirm)
        );
    }

    #[test]
    fn out_of_bounds_and_malformed_arguments_are_refused_with_a_reason() {
        assert_eq!(
            parse_admin_command("reminder-offset 61"),
            Err(ParseAdminError::ReminderOffset)
        );
        assert_eq!(
            parse_admin_command("reminder-offset -1"),
            Err(ParseAdminError::ReminderOffset)
        );
        assert_eq!(
            parse_admin_command("reminder-offset five"),
            Err(ParseAdminError::ReminderOffset)
        );
        assert_eq!(
            parse_admin_command("retention 0"),
            Err(ParseAdminError::Retention)
        );
        assert_eq!(
            parse_admin_command("retention 3651"),
            Err(ParseAdminError::Retention)
        );
        assert_eq!(
            parse_admin_command("retention 99999999999999999999"),
            Err(ParseAdminError::Retention)
        );
        assert!(matches!(
            parse_admin_command("timezone Mars/Olympus"),
            Err(ParseAdminError::Timezone(_))
        ));
        assert!(matches!(
            parse_admin_command("admins add jane"),
            Err(ParseAdminError::Mention(_))
        ));
        assert!(matches!(
            parse_admin_command("admins add U123"),
            Err(ParseAdminError::Mention(_))
        ));
        assert!(matches!(
            parse_admin_command("admins promote <@U1>"),
            Err(ParseAdminError::Usage(_))
        ));
        assert!(matches!(
            parse_admin_command("reminders maybe"),
            Err(ParseAdminError::Usage(_))
        ));
        assert!(matches!(
            parse_admin_command("reminder-offset"),
            Err(ParseAdminError::Usage(_))
        ));
        assert!(matches!(
            parse_admin_command("enable now"),
            Err(ParseAdminError::Usage(_))
        ));
        assert!(matches!(
            parse_admin_command("reset everything"),
            Err(ParseAdminError::Usage(_))
        ));
        assert!(matches!(
            parse_admin_command("explode"),
            Err(ParseAdminError::UnknownSubcommand(_))
        ));
    }

    #[test]
    fn auto_close_outside_one_to_sixty_or_junk_is_refused_and_the_usage_names_it() {
        for bad in [
            "auto-close 0",
            "auto-close 61",
            "auto-close 99",
            "auto-close -5",
            "auto-close ten",
            "auto-close 10m",
            "auto-close 99999999999999999999",
        ] {
            assert_eq!(
                parse_admin_command(bad),
                Err(ParseAdminError::AutoClose),
                "{bad}"
            );
        }
        for bad in ["auto-close", "auto-close 10 now"] {
            assert_eq!(
                parse_admin_command(bad),
                Err(ParseAdminError::Usage("auto-close <1-60>|off")),
                "{bad}"
            );
        }
        assert!(ParseAdminError::AutoClose.to_string().contains("1 to 60"));
        assert!(ADMIN_USAGE.contains("`/coffee-admin auto-close 10` / `auto-close off`"));
    }

    #[test]
    fn echoed_input_cannot_ping_or_break_formatting() {
        let err = parse_admin_command("<!channel>").unwrap_err().to_string();
        assert!(
            err.contains("&lt;!channel&gt;") && !err.contains("<!channel>"),
            "{err}"
        );
        let err = parse_admin_command("timezone `x`").unwrap_err().to_string();
        assert!(!err.contains("``"), "{err}");
    }

    #[test]
    fn only_help_and_status_are_open_to_everyone() {
        assert!(AdminCommand::Help.is_open_to_everyone());
        assert!(AdminCommand::Status.is_open_to_everyone());
        assert!(!AdminCommand::Reset.is_open_to_everyone());
        assert!(
            !parse_admin_command("disable")
                .unwrap()
                .is_open_to_everyone()
        );
    }
}
