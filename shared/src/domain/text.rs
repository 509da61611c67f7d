//! Showing what people typed exactly as they typed it (DESIGN §1.8): user
//! text placed in mrkdwn is escaped so `<!channel>` pings nobody and
//! `<@U123>` fakes no mention; long text is cut to Slack's limits with an
//! ellipsis instead of being rejected by the API.
//!
//! [`find_invisible`] finds the characters that make text look other than it
//! is: bidirectional controls that reorder what follows (so one person's
//! order can spoof another's line), zero-width and other invisible format
//! characters (two orders that look the same but differ), and runs of
//! variation selectors or tag characters that hide data. Orders and notes
//! that contain one are refused, with a message naming it. Emoji sequences
//! keep working: a zero-width joiner between two emoji (👩‍💻, 🏳️‍🌈), one
//! variation selector after a character (❤️), and the tag sequence of a
//! subdivision flag (Scotland, Wales).

use std::borrow::Cow;

/// Escapes the three characters Slack's mrkdwn treats as control syntax.
pub fn escape_mrkdwn(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Cuts `s` to at most `max` characters (not bytes), ending with `…` when
/// anything was cut.
pub fn truncate_chars(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().count() <= max {
        return Cow::Borrowed(s);
    }
    let keep = max.saturating_sub(1);
    let mut out: String = s.chars().take(keep).collect();
    out.push('…');
    Cow::Owned(out)
}

/// The Unicode format characters (general category Cf, Unicode 15.1), plus
/// line and paragraph separators and characters that render as nothing
/// (Hangul fillers, the combining grapheme joiner, Khmer inherent vowels,
/// the braille blank).
const INVISIBLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),   // soft hyphen
    (0x034F, 0x034F),   // combining grapheme joiner
    (0x0600, 0x0605),   // Arabic number signs
    (0x061C, 0x061C),   // Arabic letter mark (bidi)
    (0x06DD, 0x06DD),   // Arabic end of ayah
    (0x070F, 0x070F),   // Syriac abbreviation mark
    (0x0890, 0x0891),   // Arabic pound and piastre marks above
    (0x08E2, 0x08E2),   // Arabic disputed end of ayah
    (0x115F, 0x1160),   // Hangul fillers
    (0x17B4, 0x17B5),   // Khmer inherent vowels
    (0x180E, 0x180E),   // Mongolian vowel separator
    (0x200B, 0x200F),   // zero-width space, ZWNJ, ZWJ, LRM, RLM
    (0x2028, 0x202E),   // line/paragraph separators, bidi embeddings and overrides
    (0x2060, 0x2064),   // word joiner, invisible operators
    (0x2066, 0x206F),   // bidi isolates, deprecated format characters
    (0x2800, 0x2800),   // braille pattern blank
    (0x3164, 0x3164),   // Hangul filler
    (0xFEFF, 0xFEFF),   // zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),   // halfwidth Hangul filler
    (0xFFF9, 0xFFFB),   // interlinear annotation
    (0x110BD, 0x110BD), // Kaithi number sign
    (0x110CD, 0x110CD), // Kaithi number sign above
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol format controls
    (0xE0001, 0xE0001), // language tag
    (0xE0020, 0xE007F), // tag characters
];

const ZWJ: char = '\u{200D}';
const ZWNJ: char = '\u{200C}';
const TAG_CANCEL: char = '\u{E007F}';
const BLACK_FLAG: char = '\u{1F3F4}';

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let c = u32::from(c);
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

fn is_invisible(c: char) -> bool {
    in_ranges(c, INVISIBLE)
}

/// Variation selectors (VS1–VS16, the supplement, Mongolian FVS1–4).
fn is_variation_selector(c: char) -> bool {
    in_ranges(
        c,
        &[
            (0xFE00, 0xFE0F),
            (0xE0100, 0xE01EF),
            (0x180B, 0x180D),
            (0x180F, 0x180F),
        ],
    )
}

/// Characters that are emoji (or commonly shown as emoji): the pictographic
/// blocks and the few older symbols in emoji sequences.
fn is_emoji(c: char) -> bool {
    in_ranges(
        c,
        &[
            (0x00A9, 0x00A9),
            (0x00AE, 0x00AE),
            (0x203C, 0x203C),
            (0x2049, 0x2049),
            (0x2122, 0x2122),
            (0x2139, 0x2139),
            (0x2190, 0x21FF),
            (0x2300, 0x23FF),
            (0x24C2, 0x24C2),
            (0x25A0, 0x27BF),
            (0x2900, 0x297F),
            (0x2B00, 0x2BFF),
            (0x3030, 0x3030),
            (0x303D, 0x303D),
            (0x3297, 0x3297),
            (0x3299, 0x3299),
            (0x1F000, 0x1FAFF),
        ],
    )
}

/// What may stand before a joiner in an emoji sequence: an emoji, or the
/// variation selector, skin tone (an emoji itself) or keycap after one.
fn ends_emoji(c: char) -> bool {
    is_emoji(c) || c == '\u{FE0F}' || c == '\u{20E3}'
}

/// Scripts that need the zero-width non-joiner between letters (Persian,
/// Arabic, the Indic scripts).
fn joins_letters(c: char) -> bool {
    in_ranges(
        c,
        &[
            (0x0600, 0x06FF),
            (0x0750, 0x077F),
            (0x0900, 0x0DFF),
            (0xFB50, 0xFDFF),
            (0xFE70, 0xFEFC),
        ],
    )
}

/// The tag letters and digits of a subdivision flag (`gbsct`).
fn is_flag_tag(c: char) -> bool {
    in_ranges(c, &[(0xE0030, 0xE0039), (0xE0061, 0xE007A)])
}

/// The first character of `s` that is invisible or reorders text, outside
/// the emoji sequences that need one (see the module docs). `None` when
/// `s` shows exactly what it contains.
pub fn find_invisible(s: &str) -> Option<char> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        if c == BLACK_FLAG {
            // 🏴 + 2–6 tag letters/digits + cancel tag: a subdivision flag.
            let tags = chars[i + 1..]
                .iter()
                .take_while(|&&t| is_flag_tag(t))
                .count();
            if (2..=6).contains(&tags) && chars.get(i + 1 + tags) == Some(&TAG_CANCEL) {
                i += tags + 2;
                continue;
            }
        } else if is_variation_selector(c) {
            // One selector after a visible character; a run of them (or one
            // at the start, or after a format character) hides data.
            if prev.is_none_or(|p| is_variation_selector(p) || is_invisible(p)) {
                return Some(c);
            }
        } else if c == ZWJ {
            if !(prev.is_some_and(ends_emoji) && next.is_some_and(is_emoji)) {
                return Some(c);
            }
        } else if c == ZWNJ {
            if !(prev.is_some_and(joins_letters) && next.is_some_and(joins_letters)) {
                return Some(c);
            }
        } else if is_invisible(c) {
            return Some(c);
        }
        i += 1;
    }
    None
}

/// `U+202E`: how a refusal names a character the person cannot see.
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn slack_control_syntax_is_neutralised() {
        assert_eq!(
            escape_mrkdwn("<!channel> & <@U123>"),
            "&lt;!channel&gt; &amp; &lt;@U123&gt;"
        );
        assert_eq!(
            escape_mrkdwn("&amp;"),
            "&amp;amp;",
            "already-escaped text stays as typed"
        );
    }

    #[test]
    fn plain_text_is_left_alone() {
        assert!(matches!(
            escape_mrkdwn("flat white *extra hot*"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn truncation_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate_chars("☕☕☕", 3), "☕☕☕");
        assert_eq!(truncate_chars("☕☕☕☕", 3), "☕☕…");
        assert_eq!(truncate_chars("abc", 0), "…");
    }

    #[test]
    fn bidi_controls_are_found_wherever_they_are() {
        let bidi = [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ];
        for c in bidi {
            for text in [
                format!("{c}latte"),
                format!("lat{c}te"),
                format!("latte{c}"),
            ] {
                assert_eq!(find_invisible(&text), Some(c), "{text:?}");
            }
        }
    }

    #[test]
    fn zero_width_and_other_invisible_characters_are_found() {
        for c in [
            '\u{200B}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{180E}',
            '\u{3164}',
            '\u{115F}',
            '\u{2028}',
            '\u{2029}',
            '\u{E0041}',
            '\u{E0001}',
            '\u{034F}',
            '\u{2800}',
        ] {
            assert_eq!(find_invisible(&format!("flat{c}white")), Some(c), "{c:?}");
        }
        // A joiner or non-joiner between ordinary letters.
        assert_eq!(find_invisible("fla\u{200D}t"), Some(ZWJ));
        assert_eq!(find_invisible("fla\u{200C}t"), Some(ZWNJ));
        assert_eq!(
            find_invisible("\u{200D}☕"),
            Some(ZWJ),
            "a joiner with nothing before it"
        );
        assert_eq!(
            find_invisible("☕\u{200D}"),
            Some(ZWJ),
            "a joiner with nothing after it"
        );
    }

    #[test]
    fn emoji_sequences_flags_and_single_variation_selectors_are_kept() {
        for ok in [
            "👩‍💻 needs 🇯🇵 matcha",
            "🏳️‍🌈 oat latte",
            "❤️‍🔥 espresso",
            "👨‍👩‍👧‍👦 four cocoas",
            "🧑🏽‍🚀 flat white",
            "🏴‍☠️ black coffee",
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} and \u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F} tea",
            "1️⃣ sugar ☕️",
            "می‌خواهم قهوه",
            "\u{845B}\u{E0100}\u{57CE} tea",
        ] {
            assert_eq!(find_invisible(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn hidden_data_in_variation_selectors_or_tags_is_found() {
        // Data smuggled as a run of selectors after one visible character.
        assert_eq!(find_invisible("a\u{FE0F}\u{FE01}"), Some('\u{FE01}'));
        assert_eq!(find_invisible("\u{FE0F}latte"), Some('\u{FE0F}'));
        assert_eq!(
            find_invisible("😀\u{E0100}\u{E0101}\u{E0102}"),
            Some('\u{E0101}')
        );
        // Tags outside a flag, or a flag's tags without their cancel tag.
        assert_eq!(find_invisible("latte\u{E0068}\u{E0069}"), Some('\u{E0068}'));
        assert_eq!(
            find_invisible("🏴\u{E0067}\u{E0062}\u{E0065}"),
            Some('\u{E0067}')
        );
    }

    #[test]
    fn code_points_are_named_the_unicode_way() {
        assert_eq!(code_point('\u{202E}'), "U+202E");
        assert_eq!(code_point('\u{AD}'), "U+00AD");
        assert_eq!(code_point('\u{E007F}'), "U+E007F");
    }

    proptest! {
        #[test]
        fn any_text_with_a_bidi_control_inside_is_flagged(
            before in "\\PC{0,20}",
            after in "\\PC{0,20}",
            c in proptest::sample::select(vec![
                '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}',
                '\u{2067}', '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
            ]),
        ) {
            let text = format!("{before}{c}{after}");
            prop_assert!(find_invisible(&text).is_some(), "{:?}", text);
        }

        #[test]
        fn emoji_sequences_between_ordinary_words_pass(
            before in "[a-zA-Z0-9 ,.]{0,20}",
            after in "[a-zA-Z0-9 ,.]{0,20}",
            emoji in proptest::sample::select(vec![
                "👩‍💻", "🏳️‍🌈", "❤️‍🔥", "👨‍👩‍👧", "🧑🏽‍🚀", "☕️", "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            ]),
        ) {
            let text = format!("{before}{emoji}{after}");
            prop_assert_eq!(find_invisible(&text), None, "{:?}", text);
        }

        #[test]
        fn the_check_never_panics_and_what_passes_has_no_stray_format_character(s in "\\PC{0,40}|[\\s\\S]{0,40}") {
            if find_invisible(&s).is_none() {
                let chars: Vec<char> = s.chars().collect();
                for (i, &c) in chars.iter().enumerate() {
                    if c == ZWJ {
                        prop_assert!(i > 0 && i + 1 < chars.len(), "a joiner at an end of {s:?}");
                    }
                    let bidi = in_ranges(c, &[(0x202A, 0x202E), (0x2066, 0x2069), (0x200E, 0x200F), (0x061C, 0x061C)]);
                    prop_assert!(!bidi, "{s:?}");
                    prop_assert!(c != '\u{200B}' && c != '\u{FEFF}', "{s:?}");
                }
            }
        }
    }
}
