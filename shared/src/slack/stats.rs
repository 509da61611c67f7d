//! The private answer to `/coffee stats` (DESIGN §1.13), built from
//! [`ChannelStats`]: the channel's totals, then one line per person, most
//! runs served first. Only ids and numbers we produced: safe as mrkdwn.

use chrono_tz::Tz;

use crate::db::stats::ChannelStats;
use crate::slack::blocks::MAX_SECTION_CHARS;

/// People listed in the answer; the operators' API has everyone.
pub const MAX_PEOPLE_SHOWN: usize = 25;

fn count(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A duration for people: `45 s`, `12 min`, `1 h 05 min`.
pub fn human_duration(seconds: f64) -> String {
    // Rounded to whole seconds; a negative mean (a clock step) reads as 0.
    let s = if seconds.is_finite() && seconds > 0.0 {
        seconds.round().min(1e12) as i64
    } else {
        0
    };
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", (s + 30) / 60)
    } else {
        let minutes = (s + 30) / 60;
        format!("{} h {:02} min", minutes / 60, minutes % 60)
    }
}

/// The `/coffee stats` answer (mrkdwn) for a channel whose closed runs are
/// kept `retention_days` days, dates shown in `tz`.
pub fn stats_answer(stats: &ChannelStats, retention_days: i32, tz: Tz) -> String {
    let t = &stats.totals;
    if t.runs_closed == 0 && t.runs_cancelled == 0 {
        return format!(
            "*Coffee stats for this channel*\nNo coffee run has finished here yet (runs are kept for {retention_days} days), so there is nothing to count. Start one with `/coffee`."
        );
    }
    let mut out = format!(
        "*Coffee stats for this channel* (finished runs of the last {retention_days} days)\n{} · {} · {} · {}",
        count(t.runs_closed, "run closed", "runs closed"),
        count(t.runs_cancelled, "cancelled", "cancelled"),
        count(t.orders, "cup", "cups"),
        count(t.people, "person", "people"),
    );
    match t.mean_close_to_delivered_seconds {
        Some(mean) => out.push_str(&format!(
            "\nClose → delivered: {} on average ({} marked delivered)",
            human_duration(mean),
            count(t.runs_delivered, "run", "runs"),
        )),
        None => out.push_str("\nClose → delivered: no run marked delivered yet"),
    }
    let mut shown = 0;
    for p in stats.people.iter().take(MAX_PEOPLE_SHOWN) {
        let last = p
            .last_run_at
            .map(|at| at.with_timezone(&tz).format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "—".to_owned());
        let line = format!(
            "\n• <@{}>: served {} · carried {} · ordered {} · last run {last}",
            p.user_id,
            count(p.runs_served, "run", "runs"),
            count(p.cups_carried, "cup", "cups"),
            count(p.orders_placed, "time", "times"),
        );
        // Room for the "…and N more" line.
        if out.chars().count() + line.chars().count() > MAX_SECTION_CHARS - 40 {
            break;
        }
        out.push_str(&line);
        shown += 1;
    }
    let hidden = stats.people.len() - shown;
    if hidden > 0 {
        out.push_str(&format!("\n…and {hidden} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::db::stats::{ChannelTotals, PersonStats};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("RFC 3339")
            .with_timezone(&Utc)
    }

    fn person(id: &str, served: i64, cups: i64, orders: i64) -> PersonStats {
        PersonStats {
            user_id: id.to_owned(),
            runs_served: served,
            cups_carried: cups,
            orders_placed: orders,
            last_run_at: Some(at("2026-11-30T23:30:00Z")),
        }
    }

    fn stats(people: Vec<PersonStats>, mean: Option<f64>) -> ChannelStats {
        ChannelStats {
            channel_id: "C0COFFEE".to_owned(),
            totals: ChannelTotals {
                runs_closed: 3,
                runs_cancelled: 1,
                orders: people.iter().map(|p| p.orders_placed).sum(),
                people: people.len() as i64,
                runs_delivered: 2,
                mean_close_to_delivered_seconds: mean,
            },
            people,
        }
    }

    #[test]
    fn a_channel_without_finished_runs_gets_a_clear_answer() {
        let mut empty = stats(vec![], None);
        empty.totals.runs_closed = 0;
        empty.totals.runs_cancelled = 0;
        let text = stats_answer(&empty, 90, chrono_tz::UTC);
        assert!(
            text.contains("No coffee run has finished here yet"),
            "{text}"
        );
        assert!(text.contains("90 days"));
    }

    #[test]
    fn the_answer_has_totals_mean_delivery_and_one_line_per_person() {
        let text = stats_answer(
            &stats(
                vec![person("UA", 2, 7, 3), person("UB", 1, 1, 1)],
                Some(754.0),
            ),
            90,
            chrono_tz::Europe::Berlin,
        );
        assert!(
            text.contains("3 runs closed · 1 cancelled · 4 cups · 2 people"),
            "{text}"
        );
        assert!(
            text.contains("Close → delivered: 13 min on average (2 runs marked delivered)"),
            "{text}"
        );
        // 23:30 UTC is the next day in Berlin.
        assert!(
            text.contains(
                "• <@UA>: served 2 runs · carried 7 cups · ordered 3 times · last run 2026-12-01"
            ),
            "{text}"
        );
        assert!(text.find("<@UA>") < text.find("<@UB>"));
        assert!(text.contains("served 1 run · carried 1 cup · ordered 1 time"));
    }

    #[test]
    fn many_people_fit_one_answer_and_the_rest_are_counted() {
        let people = (0..100)
            .map(|i| person(&format!("U{i:04}"), 1, 1, 1))
            .collect();
        let text = stats_answer(&stats(people, None), 90, chrono_tz::UTC);
        assert!(text.chars().count() <= MAX_SECTION_CHARS);
        assert!(text.contains("…and 75 more"), "{text}");
        assert!(text.contains("no run marked delivered yet"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(44.6), "45 s");
        assert_eq!(human_duration(-3.0), "0 s");
        assert_eq!(human_duration(f64::NAN), "0 s");
        assert_eq!(human_duration(60.0), "1 min");
        assert_eq!(human_duration(3899.0), "1 h 05 min");
    }
}
