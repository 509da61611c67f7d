//! Showing what people typed exactly as they typed it (DESIGN §1.8): user
//! text placed in mrkdwn is escaped so `<!channel>` pings nobody and
//! `<@U123>` fakes no mention; long text is cut to Slack's limits with an
//! ellipsis instead of being rejected by the API.

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

#[cfg(test)]
mod tests {
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
}
