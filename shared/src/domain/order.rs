//! What a person orders in a run (DESIGN §1.3): free text, one line, at most
//! [`MAX_ORDER_CHARS`] characters. It is kept exactly as typed apart from
//! trimming its ends, and escaped only when shown (DESIGN §1.8). Text that
//! would look other than it is (bidi controls, zero-width and other
//! invisible characters; [`find_invisible`]) is refused, so one order
//! cannot spoof another's line.

use serde::{Deserialize, Serialize};

use super::text::{code_point, find_invisible};

/// The longest order, in characters (not bytes); also the modal input's
/// `max_length`.
pub const MAX_ORDER_CHARS: usize = 150;

/// An order's text: trimmed, 1 to [`MAX_ORDER_CHARS`] characters, no control
/// characters (so no line breaks or tabs), no invisible or text-direction
/// characters (emoji sequences with joiners are fine). `<!channel>` and friends are kept
/// as typed: escape the text when showing it in mrkdwn.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderText(String);

impl OrderText {
    /// Checks what was typed in the order modal; surrounding whitespace is
    /// dropped, nothing inside is changed.
    pub fn parse(s: &str) -> Result<OrderText, ParseOrderError> {
        let s = s.trim();
        let chars = s.chars().count();
        if chars == 0 {
            Err(ParseOrderError::Empty)
        } else if chars > MAX_ORDER_CHARS {
            Err(ParseOrderError::TooLong { chars })
        } else if s.chars().any(char::is_control) {
            Err(ParseOrderError::ControlCharacter)
        } else if let Some(c) = find_invisible(s) {
            Err(ParseOrderError::InvisibleCharacter {
                code_point: code_point(c),
            })
        } else {
            Ok(OrderText(s.to_owned()))
        }
    }
}

impl AsRef<str> for OrderText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrderText {
    type Error = ParseOrderError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<OrderText> for String {
    fn from(order: OrderText) -> String {
        order.0
    }
}

/// Why an order's text was refused. `Display` is a sentence shown under the
/// modal's input (`response_action: errors`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseOrderError {
    /// Nothing but whitespace.
    #[error("Please type your order.")]
    Empty,
    /// Over [`MAX_ORDER_CHARS`] characters after trimming.
    #[error("Orders can be at most 150 characters (this one has {chars}).")]
    TooLong {
        /// The order's length in characters, after trimming.
        chars: usize,
    },
    /// A line break, tab or other control character inside.
    #[error("Orders can't contain line breaks or control characters.")]
    ControlCharacter,
    /// A bidi control, zero-width or other invisible character, which
    /// could make the order look like something else.
    #[error(
        "Orders can't contain invisible or text-direction characters (found {code_point}). Retype the order, or paste it as plain text."
    )]
    InvisibleCharacter {
        /// The first such character, as `U+XXXX`.
        code_point: String,
    },
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_order_is_trimmed_and_otherwise_kept_as_typed() {
        let order = OrderText::parse("  oat  flat white, <!channel> & *extra* hot \n").unwrap();
        assert_eq!(order.as_ref(), "oat  flat white, <!channel> & *extra* hot");
    }

    #[test]
    fn an_empty_or_blank_order_is_refused() {
        for blank in ["", "   ", "\n\t ", "\u{3000}"] {
            assert_eq!(
                OrderText::parse(blank),
                Err(ParseOrderError::Empty),
                "{blank:?}"
            );
        }
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        let ok = "☕".repeat(MAX_ORDER_CHARS);
        assert!(ok.len() > MAX_ORDER_CHARS);
        assert_eq!(OrderText::parse(&ok).unwrap().as_ref(), ok);
        assert_eq!(
            OrderText::parse(&"抹".repeat(163)),
            Err(ParseOrderError::TooLong { chars: 163 })
        );
        assert_eq!(
            OrderText::parse(&format!("  {}  ", "a".repeat(150))).map(|o| o.as_ref().len()),
            Ok(150),
            "surrounding spaces do not count"
        );
    }

    #[test]
    fn emoji_sequences_are_allowed_even_with_joiners() {
        assert!(OrderText::parse("👩🏽‍💻 needs 🇯🇵 matcha").is_ok());
    }

    #[test]
    fn line_breaks_tabs_and_other_control_characters_are_refused() {
        for bad in [
            "latte\nlarge",
            "latte\tlarge",
            "latte\r\nlarge",
            "a\u{0}",
            "a\u{1b}[31m",
            "a\u{85}b",
        ] {
            assert_eq!(
                OrderText::parse(bad),
                Err(ParseOrderError::ControlCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bidi_overrides_and_zero_width_characters_are_refused_with_their_code_point() {
        for (bad, code) in [
            ("\u{202E}etal tihw talf", "U+202E"),
            ("latte \u{2066}for Bob\u{2069}", "U+2066"),
            ("flat\u{200B}white", "U+200B"),
            ("\u{FEFF}latte", "U+FEFF"),
            ("lat\u{200D}te", "U+200D"),
            ("tea\u{E0068}\u{E0069}", "U+E0068"),
        ] {
            assert_eq!(
                OrderText::parse(bad),
                Err(ParseOrderError::InvisibleCharacter {
                    code_point: code.to_owned()
                }),
                "{bad:?}"
            );
        }
        assert_eq!(
            ParseOrderError::InvisibleCharacter {
                code_point: "U+202E".to_owned()
            }
            .to_string(),
            "Orders can't contain invisible or text-direction characters (found U+202E). Retype the order, or paste it as plain text."
        );
    }

    #[test]
    fn two_orders_that_look_the_same_cannot_both_be_accepted() {
        let plain = OrderText::parse("flat white").unwrap();
        let lookalike = OrderText::parse("flat\u{200B} white");
        assert!(lookalike.is_err());
        assert_eq!(plain.as_ref(), "flat white");
    }

    #[test]
    fn refusals_read_as_sentences() {
        assert_eq!(
            ParseOrderError::Empty.to_string(),
            "Please type your order."
        );
        assert_eq!(
            ParseOrderError::TooLong { chars: 163 }.to_string(),
            "Orders can be at most 150 characters (this one has 163)."
        );
        assert_eq!(
            ParseOrderError::ControlCharacter.to_string(),
            "Orders can't contain line breaks or control characters."
        );
        assert!(
            ParseOrderError::TooLong { chars: 1 }
                .to_string()
                .contains(&MAX_ORDER_CHARS.to_string())
        );
    }

    #[test]
    fn serde_checks_orders_on_the_way_in() {
        let order: OrderText = serde_json::from_str("\"flat white\"").unwrap();
        assert_eq!(serde_json::to_string(&order).unwrap(), "\"flat white\"");
        assert!(serde_json::from_str::<OrderText>("\"  \"").is_err());
    }

    proptest! {
        #[test]
        fn any_accepted_order_is_short_single_line_and_its_trimmed_input(s in "\\PC{0,3}[\\s\\S]{0,170}") {
            if let Ok(order) = OrderText::parse(&s) {
                let text = order.as_ref();
                prop_assert!((1..=MAX_ORDER_CHARS).contains(&text.chars().count()));
                prop_assert!(!text.chars().any(char::is_control));
                prop_assert_eq!(text, s.trim());
            }
        }

        #[test]
        fn accepted_orders_carry_no_bidi_control(s in "[\\s\\S]{0,60}") {
            if let Ok(order) = OrderText::parse(&s) {
                prop_assert_eq!(find_invisible(order.as_ref()), None);
                let has_bidi = order.as_ref().chars().any(|c| matches!(
                    c,
                    '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
                ));
                prop_assert!(!has_bidi, "{:?}", order);
            }
        }

        #[test]
        fn orders_with_emoji_joiner_sequences_are_accepted(
            before in "[a-z ]{0,30}",
            emoji in proptest::sample::select(vec!["👩‍💻", "🏳️‍🌈", "❤️‍🔥", "👨‍👩‍👧", "☕️"]),
        ) {
            let text = format!("x {before}{emoji}");
            prop_assert!(OrderText::parse(&text).is_ok(), "{:?}", text);
        }

        #[test]
        // Printable: no control, format, separator or invisible character
        // (the fillers and selectors `find_invisible` refuses out of place).
        fn printable_text_within_the_limit_is_always_accepted(s in "[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}\u{115F}\u{1160}\u{3164}\u{FFA0}\u{2800}\u{034F}\u{17B4}\u{17B5}\u{180B}-\u{180F}\u{FE00}-\u{FE0F}\u{E0100}-\u{E01EF}\\s][^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}\u{115F}\u{1160}\u{3164}\u{FFA0}\u{2800}\u{034F}\u{17B4}\u{17B5}\u{180B}-\u{180F}\u{FE00}-\u{FE0F}\u{E0100}-\u{E01EF}]{0,148}") {
            let order = OrderText::parse(&s);
            prop_assert!(order.is_ok(), "{:?}", order);
        }

        #[test]
        fn parsing_an_accepted_order_again_changes_nothing(s in "[\\s\\S]{0,160}") {
            if let Ok(order) = OrderText::parse(&s) {
                prop_assert_eq!(OrderText::parse(order.as_ref()), Ok(order.clone()));
            }
        }
    }
}
