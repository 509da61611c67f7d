//! Reading the text of `/coffee [pickup] [note]` (DESIGN §1.1).
//!
//! The pickup is either a time of day, `HH:MM` (24h, `H:MM` too) in the
//! channel's time zone and strictly later today, or a delay, `in N m` /
//! `in Nm` (`min`, `mins`, `minute`, `minutes` too) with N from 1 to 240.
//! Everything after the pickup is the note, kept exactly as typed apart from
//! trimming its ends.
//!
//! A first word that starts with a digit, or is `in`, must be a valid pickup:
//! `/coffee 10 Blue Bottle` is refused rather than quietly starting a run
//! with no pickup and the note "10 Blue Bottle". Every refusal's `Display`
//! is a sentence for the person who typed it, saying what to type instead;
//! it is shown as an ephemeral Slack message, so the bits of input it echoes
//! are escaped for mrkdwn.

use std::fmt;

use chrono::{DateTime, Duration, DurationRound, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::text::{code_point, escape_mrkdwn, find_invisible, truncate_chars};

/// The longest note, in characters (not bytes).
pub const MAX_NOTE_CHARS: usize = 140;

/// The delays `in N m` accepts, in minutes.
const DELAY_MINUTES: std::ops::RangeInclusive<u32> = 1..=240;

/// Usage of `/coffee`, in mrkdwn, for `/coffee help` and next to refusals.
pub const USAGE: &str = "\
*Start a coffee run:* `/coffee [pickup] [note]`
• `/coffee` starts a run with no pickup time.
• `/coffee 10:30 Blue Bottle` starts a run with pickup at 10:30 (24h, this channel's time zone) and the note \"Blue Bottle\".
• `/coffee in 15m` starts a run with pickup in 15 minutes (1–240 minutes).
• `/coffee in 20 m Blue Bottle` starts a run with pickup in 20 minutes and a note.
• `/coffee stats` shows this channel's coffee stats, privately (it never starts a run).
• `/coffee help` shows this help.
A note can be up to 140 characters.";

/// What a `/coffee` invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoffeeCommand {
    /// `/coffee help`: show [`USAGE`].
    Help,
    /// `/coffee stats`: this channel's statistics, privately; never a run.
    Stats,
    /// Start a run in the channel.
    Start(StartRun),
}

/// The arguments of a new run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRun {
    /// When the runner picks the coffee up, if the initiator said.
    pub pickup: Option<Pickup>,
    /// Free text for everyone, e.g. which café; shown exactly as typed.
    pub note: Option<Note>,
}

/// A run's pickup instant. Only [`parse_coffee_command`] makes new ones,
/// which guarantees they were in the future when typed; [`Pickup::from_stored`]
/// rebuilds one that was checked before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pickup(DateTime<Utc>);

impl Pickup {
    /// The pickup instant.
    pub fn at(&self) -> DateTime<Utc> {
        self.0
    }

    /// Rebuilds a pickup read back from storage or an event; it was checked
    /// when the run was started, and may well be in the past by now.
    pub fn from_stored(at: DateTime<Utc>) -> Self {
        Self(at)
    }

    /// The pickup as people in `tz` read it, `HH:MM` (24h), rounded to the
    /// nearest minute: `in 15m` typed at 10:00:40 shows as `10:16`.
    pub fn display_in(&self, tz: Tz) -> String {
        // Rounding the UTC instant is the same as rounding local time: every
        // offset in use today is a whole number of minutes.
        let rounded = self
            .0
            .duration_round(Duration::minutes(1))
            .unwrap_or(self.0);
        rounded.with_timezone(&tz).format("%H:%M").to_string()
    }
}

/// A run's note: trimmed, 1 to [`MAX_NOTE_CHARS`] characters, on one line
/// (no control characters), with no invisible or text-direction characters
/// ([`find_invisible`]; emoji sequences are fine). Everything else is kept exactly as typed,
/// `<!channel>` included: escape it when showing it in mrkdwn.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Note(String);

impl Note {
    /// Checks a note; surrounding whitespace is dropped, nothing inside is
    /// changed.
    pub fn parse(s: &str) -> Result<Note, ParseCoffeeError> {
        let s = s.trim();
        let chars = s.chars().count();
        if chars == 0 {
            Err(ParseCoffeeError::NoteEmpty)
        } else if chars > MAX_NOTE_CHARS {
            Err(ParseCoffeeError::NoteTooLong { chars })
        } else if s.chars().any(char::is_control) {
            Err(ParseCoffeeError::NoteControlCharacter)
        } else if let Some(c) = find_invisible(s) {
            Err(ParseCoffeeError::NoteInvisibleCharacter {
                code_point: code_point(c),
            })
        } else {
            Ok(Note(s.to_owned()))
        }
    }
}

impl AsRef<str> for Note {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Note {
    type Error = ParseCoffeeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Note> for String {
    fn from(note: Note) -> String {
        note.0
    }
}

/// Why `/coffee` text was refused. `Display` is a user-facing sentence that
/// says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseCoffeeError {
    /// The first word starts with a digit but is not `HH:MM` within 00:00–23:59.
    #[error(
        "`{}` is not a time of day. Use HH:MM (24h, e.g. `09:30`) or `in N m` (1–240 minutes).",
        Shown(.input)
    )]
    NotATime {
        /// The word as typed.
        input: String,
    },
    /// The time of day is not later than now, today, in the channel's zone.
    #[error(
        "`{}` has already passed today ({}). Pick a later time, or use `in N m` (1–240 minutes, e.g. `in 15m`).",
        .time.format("%H:%M"),
        .tz.name()
    )]
    PickupPassed {
        /// The local time asked for.
        time: NaiveTime,
        /// The channel's time zone.
        tz: Tz,
    },
    /// The time of day falls in a daylight-saving gap today.
    #[error(
        "`{}` does not exist today in {} (the clocks change). Pick another time, or use `in N m` (1–240 minutes, e.g. `in 15m`).",
        .time.format("%H:%M"),
        .tz.name()
    )]
    NonexistentTime {
        /// The local time asked for.
        time: NaiveTime,
        /// The channel's time zone.
        tz: Tz,
    },
    /// `in` with nothing after it.
    #[error("`in` needs a number of minutes, e.g. `in 15m` (1–240 minutes).")]
    MissingDelay,
    /// `in` followed by something that is not `N m`.
    #[error(
        "`{}` is not a delay. Use `in N m` with N from 1 to 240 (e.g. `in 15m` or `in 20 min`), or HH:MM (24h, e.g. `09:30`).",
        Shown(.input)
    )]
    NotADelay {
        /// What was typed, from `in` to the unit that was expected.
        input: String,
    },
    /// `in N m` with N outside 1–240.
    #[error(
        "`in {}m` is out of range: the delay must be 1–240 minutes, e.g. `in 15m`. For later, use HH:MM (24h, e.g. `14:30`).",
        Shown(.minutes)
    )]
    DelayOutOfRange {
        /// The number as typed (it may not fit any integer type).
        minutes: String,
    },
    /// A note that is empty after trimming (only from [`Note::parse`]:
    /// `/coffee` with no note simply has none).
    #[error("The note is empty. Type a note, e.g. `/coffee 10:30 Blue Bottle`, or leave it out.")]
    NoteEmpty,
    /// A note over [`MAX_NOTE_CHARS`] characters.
    #[error(
        "Notes can be at most 140 characters (this one has {chars}). Shorten it, e.g. `/coffee 10:30 Blue Bottle`."
    )]
    NoteTooLong {
        /// The note's length in characters, after trimming.
        chars: usize,
    },
    /// A note with a line break, tab or other control character inside.
    #[error(
        "Notes can't contain line breaks or control characters. Put the note on one line, e.g. `/coffee 10:30 Blue Bottle`."
    )]
    NoteControlCharacter,
    /// A note with a bidi control, zero-width or other invisible character,
    /// which could make it look like something else.
    #[error(
        "Notes can't contain invisible or text-direction characters (found {code_point}). Retype the note, e.g. `/coffee 10:30 Blue Bottle`."
    )]
    NoteInvisibleCharacter {
        /// The first such character, as `U+XXXX`.
        code_point: String,
    },
}

/// Echoes a piece of the input inside an inline-code span of a refusal:
/// shortened, with mrkdwn control characters escaped and backticks (which
/// would end the span) replaced.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = truncate_chars(self.0, 32).replace('`', "'");
        f.write_str(&escape_mrkdwn(&cut))
    }
}

/// Parses the text of `/coffee` typed at `now` in a channel whose time zone
/// is `tz`.
///
/// `help` alone (any case) asks for help and `stats` alone for the
/// channel's statistics (`stats please` is a note, as `help me choose` is);
/// empty text starts a run with no
/// pickup and no note. `in` is matched in any case too, because phones
/// capitalise the first word.
pub fn parse_coffee_command(
    text: &str,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<CoffeeCommand, ParseCoffeeError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("help") {
        return Ok(CoffeeCommand::Help);
    }
    if text.eq_ignore_ascii_case("stats") {
        return Ok(CoffeeCommand::Stats);
    }
    let (first, rest) = split_first_word(text);
    let (pickup, note) = if first.starts_with(|c: char| c.is_ascii_digit()) {
        (Some(parse_time_of_day(first, now, tz)?), rest)
    } else if first.eq_ignore_ascii_case("in") {
        let (minutes, note) = parse_delay(rest)?;
        (Some(Pickup(now + Duration::minutes(minutes.into()))), note)
    } else {
        (None, text)
    };
    let note = if note.is_empty() {
        None
    } else {
        Some(Note::parse(note)?)
    };
    Ok(CoffeeCommand::Start(StartRun { pickup, note }))
}

/// Splits trimmed text at its first whitespace: `("10:30", "Blue Bottle")`.
/// The rest has its leading whitespace removed and is otherwise untouched.
fn split_first_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// `HH:MM` or `H:MM`, strictly later than `now` today in `tz`.
fn parse_time_of_day(word: &str, now: DateTime<Utc>, tz: Tz) -> Result<Pickup, ParseCoffeeError> {
    let not_a_time = || ParseCoffeeError::NotATime {
        input: word.to_owned(),
    };
    let (h, m) = word.split_once(':').ok_or_else(not_a_time)?;
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return Err(not_a_time());
    }
    let (h, m) = (
        h.parse().map_err(|_| not_a_time())?,
        m.parse().map_err(|_| not_a_time())?,
    );
    let time = NaiveTime::from_hms_opt(h, m, 0).ok_or_else(not_a_time)?;
    let today = now.with_timezone(&tz).date_naive();
    // An ambiguous local time (the hour repeated when clocks go back) means
    // its first occurrence.
    let at = tz
        .from_local_datetime(&today.and_time(time))
        .earliest()
        .ok_or(ParseCoffeeError::NonexistentTime { time, tz })?
        .with_timezone(&Utc);
    if at <= now {
        return Err(ParseCoffeeError::PickupPassed { time, tz });
    }
    Ok(Pickup(at))
}

/// What follows `in`: `N m`, `Nm`, `N min`… Returns the minutes and the rest
/// of the text (the note).
fn parse_delay(after_in: &str) -> Result<(u32, &str), ParseCoffeeError> {
    let (word, after_word) = split_first_word(after_in);
    if word.is_empty() {
        return Err(ParseCoffeeError::MissingDelay);
    }
    let split = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (number, unit, note, typed) = if split == word.len() {
        // `in 20 m Blue Bottle`: the unit is the next word.
        let (unit, note) = split_first_word(after_word);
        let typed = format!("in {word} {unit}");
        (word, unit, note, typed)
    } else {
        let (number, unit) = word.split_at(split);
        (number, unit, after_word, format!("in {word}"))
    };
    let is_minutes = ["m", "min", "mins", "minute", "minutes"]
        .iter()
        .any(|u| unit.eq_ignore_ascii_case(u));
    if number.is_empty() || !is_minutes {
        return Err(ParseCoffeeError::NotADelay {
            input: typed.trim_end().to_owned(),
        });
    }
    let minutes = number
        .parse::<u32>()
        .ok()
        .filter(|n| DELAY_MINUTES.contains(n))
        .ok_or_else(|| ParseCoffeeError::DelayOutOfRange {
            minutes: number.to_owned(),
        })?;
    Ok((minutes, note))
}

#[cfg(test)]
mod tests {
    use chrono_tz::{America, Asia, Pacific};

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test instants are RFC 3339")
            .with_timezone(&Utc)
    }

    fn start(pickup: Option<&str>, note: Option<&str>) -> CoffeeCommand {
        CoffeeCommand::Start(StartRun {
            pickup: pickup.map(|at| Pickup(utc(at))),
            note: note.map(|n| Note(n.to_owned())),
        })
    }

    fn time(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").expect("test times are HH:MM")
    }

    #[test]
    fn valid_texts_parse_to_the_expected_command() {
        // Mostly 2025-06-02 10:00 in New York (EDT, UTC-4).
        let cases: &[(&str, &str, Tz, CoffeeCommand)] = &[
            (
                "",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(None, None),
            ),
            (
                "   ",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(None, None),
            ),
            (
                "help",
                "2025-06-02T14:00:00Z",
                America::New_York,
                CoffeeCommand::Help,
            ),
            (
                " HeLp ",
                "2025-06-02T14:00:00Z",
                America::New_York,
                CoffeeCommand::Help,
            ),
            (
                " Stats ",
                "2025-06-02T14:00:00Z",
                America::New_York,
                CoffeeCommand::Stats,
            ),
            (
                "help me choose",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(None, Some("help me choose")),
            ),
            (
                "Blue Bottle",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(None, Some("Blue Bottle")),
            ),
            (
                "10:30 Blue Bottle",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(Some("2025-06-02T14:30:00Z"), Some("Blue Bottle")),
            ),
            (
                "10:01",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(Some("2025-06-02T14:01:00Z"), None),
            ),
            (
                "9:45",
                "2025-06-02T13:00:00Z",
                America::New_York,
                start(Some("2025-06-02T13:45:00Z"), None),
            ),
            // Kolkata is UTC+5:30: 09:30 local.
            (
                "9:45 chai",
                "2025-06-02T04:00:00Z",
                Asia::Kolkata,
                start(Some("2025-06-02T04:15:00Z"), Some("chai")),
            ),
            // Chatham is UTC+12:45 in June: 12:45 local.
            (
                "13:00",
                "2025-06-02T00:00:00Z",
                Pacific::Chatham,
                start(Some("2025-06-02T00:15:00Z"), None),
            ),
            // One minute before midnight, one minute ahead.
            (
                "23:59",
                "2025-06-03T03:58:00Z",
                America::New_York,
                start(Some("2025-06-03T03:59:00Z"), None),
            ),
            (
                "in 15m",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(Some("2025-06-02T14:15:00Z"), None),
            ),
            (
                "in 1m",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(Some("2025-06-02T14:01:00Z"), None),
            ),
            (
                "in 240 minutes",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(Some("2025-06-02T18:00:00Z"), None),
            ),
            (
                "in 20 m Blue Bottle",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(Some("2025-06-02T14:20:00Z"), Some("Blue Bottle")),
            ),
            (
                "In 5 MIN  Blue   Bottle ",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(Some("2025-06-02T14:05:00Z"), Some("Blue   Bottle")),
            ),
            (
                "in 10mins",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(Some("2025-06-02T14:10:00Z"), None),
            ),
            (
                "in 3 minute",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(Some("2025-06-02T14:03:00Z"), None),
            ),
            // `in N m` keeps the seconds of now: exactly N minutes later.
            (
                "in 1m",
                "2025-06-02T14:00:40Z",
                America::New_York,
                start(Some("2025-06-02T14:01:40Z"), None),
            ),
            // `in` glued to the number is not the `in` keyword: it is a note.
            (
                "in15m",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(None, Some("in15m")),
            ),
            (
                "10:30 ☕ 東京 ブルーボトル 🙏🏽",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(
                    Some("2025-06-02T14:30:00Z"),
                    Some("☕ 東京 ブルーボトル 🙏🏽"),
                ),
            ),
            (
                "<!channel> & <@U123>",
                "2025-06-02T14:00:00Z",
                America::New_York,
                start(None, Some("<!channel> & <@U123>")),
            ),
        ];
        for (text, now, tz, expected) in cases {
            assert_eq!(
                parse_coffee_command(text, utc(now), *tz).as_ref(),
                Ok(expected),
                "{text:?} at {now} in {tz}"
            );
        }
    }

    #[test]
    fn invalid_texts_are_refused_for_the_right_reason() {
        use ParseCoffeeError as E;
        let now = utc("2025-06-02T14:00:00Z"); // 10:00 in New York
        let tz = America::New_York;
        let not_a_time = |s: &str| E::NotATime {
            input: s.to_owned(),
        };
        let passed = |s: &str| E::PickupPassed { time: time(s), tz };
        let cases: Vec<(&str, ParseCoffeeError)> = vec![
            ("10 Blue Bottle", not_a_time("10")),
            ("25:00", not_a_time("25:00")),
            ("24:00", not_a_time("24:00")),
            ("10:60", not_a_time("10:60")),
            ("10:3", not_a_time("10:3")),
            ("010:30", not_a_time("010:30")),
            ("1030", not_a_time("1030")),
            ("10:30pm", not_a_time("10:30pm")),
            ("15m", not_a_time("15m")),
            ("2nd floor", not_a_time("2nd")),
            ("9:59", passed("09:59")),
            ("10:00", passed("10:00")),
            ("00:00", passed("00:00")),
            ("in", E::MissingDelay),
            ("IN   ", E::MissingDelay),
            (
                "in five",
                E::NotADelay {
                    input: "in five".to_owned(),
                },
            ),
            (
                "in 15",
                E::NotADelay {
                    input: "in 15".to_owned(),
                },
            ),
            (
                "in 15 Blue Bottle",
                E::NotADelay {
                    input: "in 15 Blue".to_owned(),
                },
            ),
            (
                "in 2h",
                E::NotADelay {
                    input: "in 2h".to_owned(),
                },
            ),
            (
                "in -5m",
                E::NotADelay {
                    input: "in -5m".to_owned(),
                },
            ),
            (
                "in m",
                E::NotADelay {
                    input: "in m".to_owned(),
                },
            ),
            (
                "in 0m",
                E::DelayOutOfRange {
                    minutes: "0".to_owned(),
                },
            ),
            (
                "in 241m",
                E::DelayOutOfRange {
                    minutes: "241".to_owned(),
                },
            ),
            (
                "in 99999999999999999999 m",
                E::DelayOutOfRange {
                    minutes: "99999999999999999999".to_owned(),
                },
            ),
            ("Blue\nBottle", E::NoteControlCharacter),
            ("10:30 Blue\tBottle", E::NoteControlCharacter),
            ("in 5m \u{7}", E::NoteControlCharacter),
            (
                "10:30 Blue \u{202E}elttoB",
                E::NoteInvisibleCharacter {
                    code_point: "U+202E".to_owned(),
                },
            ),
            (
                "\u{2067}10:30 Blue Bottle",
                E::NoteInvisibleCharacter {
                    code_point: "U+2067".to_owned(),
                },
            ),
            (
                "in 5m Blue\u{200B}Bottle",
                E::NoteInvisibleCharacter {
                    code_point: "U+200B".to_owned(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_coffee_command(text, now, tz),
                Err(expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_time_after_midnight_is_not_today_so_it_has_passed() {
        // 23:50 on 2 June in New York.
        let now = utc("2025-06-03T03:50:00Z");
        assert_eq!(
            parse_coffee_command("00:05", now, America::New_York),
            Err(ParseCoffeeError::PickupPassed {
                time: time("00:05"),
                tz: America::New_York
            })
        );
        // 23:58 local: 23:59 is still ahead.
        let now = utc("2025-06-03T03:58:00Z");
        assert!(parse_coffee_command("23:59", now, America::New_York).is_ok());
    }

    #[test]
    fn the_same_text_means_different_instants_in_different_zones() {
        let now = utc("2025-06-02T00:00:00Z");
        let at = |tz| match parse_coffee_command("21:00", now, tz) {
            Ok(CoffeeCommand::Start(StartRun {
                pickup: Some(p), ..
            })) => p.at(),
            other => panic!("{other:?}"),
        };
        // Still 1 June in New York (20:00), already 2 June in Kolkata and Chatham.
        assert_eq!(at(America::New_York), utc("2025-06-02T01:00:00Z"));
        assert_eq!(at(Asia::Kolkata), utc("2025-06-02T15:30:00Z"));
        assert_eq!(at(Pacific::Chatham), utc("2025-06-02T08:15:00Z"));
    }

    #[test]
    fn a_time_skipped_by_a_daylight_saving_change_is_refused() {
        // 9 March 2025, New York springs forward at 02:00 → 03:00. Now 00:00 EST.
        let now = utc("2025-03-09T05:00:00Z");
        assert_eq!(
            parse_coffee_command("2:30", now, America::New_York),
            Err(ParseCoffeeError::NonexistentTime {
                time: time("02:30"),
                tz: America::New_York
            })
        );
        assert_eq!(
            parse_coffee_command("03:00", now, America::New_York),
            Ok(start(Some("2025-03-09T07:00:00Z"), None))
        );
    }

    #[test]
    fn a_time_repeated_by_a_daylight_saving_change_means_its_first_occurrence() {
        // 2 November 2025, New York falls back at 02:00 → 01:00. Now 00:00 EDT.
        let now = utc("2025-11-02T04:00:00Z");
        assert_eq!(
            parse_coffee_command("01:30", now, America::New_York),
            Ok(start(Some("2025-11-02T05:30:00Z"), None))
        );
        // At 01:45 EDT the first 01:30 has passed, even though a second one
        // is coming: the rule is the earlier instant, and it is refused.
        let now = utc("2025-11-02T05:45:00Z");
        assert!(matches!(
            parse_coffee_command("01:30", now, America::New_York),
            Err(ParseCoffeeError::PickupPassed { .. })
        ));
    }

    #[test]
    fn a_note_of_exactly_140_characters_is_kept_and_141_is_refused() {
        let now = utc("2025-06-02T14:00:00Z");
        let tz = America::New_York;
        let ok = "☕".repeat(MAX_NOTE_CHARS);
        assert_eq!(ok.len(), 3 * MAX_NOTE_CHARS, "bytes are not characters");
        assert_eq!(
            parse_coffee_command(&format!("10:30 {ok}"), now, tz),
            Ok(start(Some("2025-06-02T14:30:00Z"), Some(&ok)))
        );
        let emoji_with_joiners = "👩🏽‍💻".repeat(MAX_NOTE_CHARS / 4);
        assert!(parse_coffee_command(&emoji_with_joiners, now, tz).is_ok());
        let long = "字".repeat(MAX_NOTE_CHARS + 1);
        assert_eq!(
            parse_coffee_command(&long, now, tz),
            Err(ParseCoffeeError::NoteTooLong { chars: 141 })
        );
        assert_eq!(
            parse_coffee_command(&format!("in 5m {long}"), now, tz),
            Err(ParseCoffeeError::NoteTooLong { chars: 141 })
        );
    }

    #[test]
    fn a_note_with_an_emoji_sequence_or_variation_selector_is_kept() {
        let note = Note::parse("🏳️‍🌈 party ☕️ at 👩‍💻 desk").unwrap();
        assert_eq!(note.as_ref(), "🏳️‍🌈 party ☕️ at 👩‍💻 desk");
        assert!(
            ParseCoffeeError::NoteInvisibleCharacter {
                code_point: "U+200F".to_owned()
            }
            .to_string()
            .contains("U+200F")
        );
    }

    proptest::proptest! {
        #[test]
        fn no_accepted_note_carries_a_bidi_control_or_zero_width_space(
            s in "[\\s\\S]{0,60}"
        ) {
            if let Ok(note) = Note::parse(&s) {
                let has_bidi = note.as_ref().chars().any(|c| matches!(
                    c,
                    '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
                ));
                proptest::prop_assert!(!has_bidi, "{:?}", note);
            }
        }
    }

    #[test]
    fn note_parse_trims_but_keeps_the_inside_as_typed() {
        let note = Note::parse("  Blue   Bottle, *2nd* floor  ").unwrap();
        assert_eq!(note.as_ref(), "Blue   Bottle, *2nd* floor");
        assert_eq!(Note::parse(" \n "), Err(ParseCoffeeError::NoteEmpty));
    }

    #[test]
    fn refusals_say_what_to_type_instead() {
        let now = utc("2025-06-02T14:00:00Z");
        let tz = America::New_York;
        let message = |text: &str| parse_coffee_command(text, now, tz).unwrap_err().to_string();
        assert_eq!(
            message("25:00"),
            "`25:00` is not a time of day. Use HH:MM (24h, e.g. `09:30`) or `in N m` (1–240 minutes)."
        );
        assert_eq!(
            message("9:00"),
            "`09:00` has already passed today (America/New_York). Pick a later time, or use `in N m` (1–240 minutes, e.g. `in 15m`)."
        );
        assert!(message("in 241m").starts_with("`in 241m` is out of range"));
        assert!(message("in five").contains("`in 15m`"));
        assert!(message(&"x".repeat(141)).contains("this one has 141"));
    }

    #[test]
    fn refusals_escape_the_input_they_echo() {
        let now = utc("2025-06-02T14:00:00Z");
        let message = parse_coffee_command("1<!channel>`x`", now, America::New_York)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("`1&lt;!channel&gt;'x'` is not"),
            "{message}"
        );
        let message = parse_coffee_command(&format!("9{}", "9".repeat(100)), now, chrono_tz::UTC)
            .unwrap_err()
            .to_string();
        assert!(message.chars().count() < 150, "{message}");
    }

    #[test]
    fn pickups_display_in_the_channel_zone_rounded_to_the_minute() {
        let p = |s| Pickup::from_stored(utc(s));
        assert_eq!(
            p("2025-06-02T14:01:29Z").display_in(America::New_York),
            "10:01"
        );
        assert_eq!(
            p("2025-06-02T14:01:30Z").display_in(America::New_York),
            "10:02"
        );
        assert_eq!(p("2025-06-02T14:59:45Z").display_in(Asia::Kolkata), "20:30");
        assert_eq!(
            p("2025-06-02T03:59:59Z").display_in(America::New_York),
            "00:00"
        );
        assert_eq!(
            p("2025-06-02T00:15:00Z").display_in(Pacific::Chatham),
            "13:00"
        );
    }

    #[test]
    fn usage_lists_every_form_and_the_note_limit() {
        for form in [
            "`/coffee`",
            "`/coffee 10:30 Blue Bottle`",
            "`/coffee in 15m`",
            "`/coffee in 20 m Blue Bottle`",
            "`/coffee help`",
            "`/coffee stats`",
        ] {
            assert!(USAGE.contains(form), "{form}");
        }
        assert!(USAGE.contains(&MAX_NOTE_CHARS.to_string()));
    }

    #[test]
    fn notes_round_trip_through_serde_and_are_checked_on_the_way_in() {
        let note = Note::parse("Blue Bottle").unwrap();
        let json = serde_json::to_string(&note).unwrap();
        assert_eq!(json, "\"Blue Bottle\"");
        assert_eq!(serde_json::from_str::<Note>(&json).unwrap(), note);
        assert!(serde_json::from_str::<Note>("\"a\\nb\"").is_err());
        let pickup = Pickup::from_stored(utc("2025-06-02T14:00:00Z"));
        let json = serde_json::to_string(&pickup).unwrap();
        assert_eq!(serde_json::from_str::<Pickup>(&json).unwrap(), pickup);
    }
}
