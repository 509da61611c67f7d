//! Pickup reminders (DESIGN §1.5): when the runner's reminder is due, which
//! reminders a tick takes on, how long to wait before sending one, and how
//! late a sent one was. Time is always an argument.
//!
//! A reminder is due at `pickup − offset`. Ticks arrive every `tick` (a
//! minute from PingSource), so a tick takes every pending reminder due before
//! the next tick and waits for each one's due time: that is what makes a
//! reminder land within seconds of its due time rather than within a minute.
//! A reminder cannot be sent before it exists, so its lateness counts from
//! the later of its due time and the moment it was scheduled: a run closed
//! after its due time is reminded at once, and that is on time.

use chrono::{DateTime, Duration, Utc};

/// How late a reminder may be sent and still count as on time: DESIGN §1.5's
/// required accuracy. Later sends (e.g. after an outage) are logged and
/// counted as late.
pub const LATE_AFTER: Duration = Duration::seconds(60);

/// When the reminder for a pickup at `pickup` is due, `offset_minutes`
/// before it (the channel's reminder offset, 0–60).
pub fn due_at(pickup: DateTime<Utc>, offset_minutes: i32) -> DateTime<Utc> {
    pickup - Duration::minutes(i64::from(offset_minutes))
}

/// Whether a tick at `now` takes on a reminder due at `due`: it is due
/// before the next tick, `tick` from now. Overdue reminders are always taken.
pub fn due_within(due: DateTime<Utc>, now: DateTime<Utc>, tick: Duration) -> bool {
    due < now + tick
}

/// The earliest instant a reminder can be sent: its due time, or the moment
/// it was scheduled if that came later (a run closed after its due time).
pub fn sendable_at(due: DateTime<Utc>, scheduled_at: DateTime<Utc>) -> DateTime<Utc> {
    due.max(scheduled_at)
}

/// How long to wait at `now` before sending a reminder due at `due`: the
/// time left, or zero once it is due (overdue ones go out at once).
pub fn wait_before_sending(due: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (due - now).max(Duration::zero())
}

/// How late a reminder sent at `sent_at` was: the time past the earliest
/// moment it could have gone out, never negative (a send a little before
/// its due time, from a clock that moved, counts as on time).
pub fn lateness(
    due: DateTime<Utc>,
    scheduled_at: DateTime<Utc>,
    sent_at: DateTime<Utc>,
) -> Duration {
    (sent_at - sendable_at(due, scheduled_at)).max(Duration::zero())
}

/// Whether a reminder sent with this [`lateness`] missed the required
/// accuracy (more than [`LATE_AFTER`]).
pub fn is_late(lateness: Duration) -> bool {
    lateness > LATE_AFTER
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("an RFC 3339 instant")
    }

    #[test]
    fn a_reminder_is_due_the_channel_offset_before_pickup() {
        let pickup = utc("2026-03-02T12:30:00Z");
        assert_eq!(due_at(pickup, 5), utc("2026-03-02T12:25:00Z"));
        assert_eq!(due_at(pickup, 60), utc("2026-03-02T11:30:00Z"));
    }

    #[test]
    fn an_offset_of_zero_reminds_at_pickup_to_the_second() {
        let pickup = utc("2026-03-02T12:30:17.250Z");
        assert_eq!(due_at(pickup, 0), pickup);
    }

    #[test]
    fn a_tick_takes_reminders_due_before_the_next_tick_and_overdue_ones() {
        let now = utc("2026-03-02T12:00:00Z");
        let minute = Duration::seconds(60);
        assert!(due_within(utc("2026-03-02T12:00:59Z"), now, minute));
        assert!(due_within(now, now, minute));
        assert!(due_within(utc("2026-03-01T08:00:00Z"), now, minute));
        assert!(!due_within(utc("2026-03-02T12:01:00Z"), now, minute));
        assert!(!due_within(utc("2026-03-02T13:00:00Z"), now, minute));
    }

    #[test]
    fn a_reminder_not_yet_due_waits_exactly_until_its_due_time() {
        let due = utc("2026-03-02T12:00:30Z");
        assert_eq!(
            wait_before_sending(due, utc("2026-03-02T12:00:00Z")),
            Duration::seconds(30)
        );
    }

    #[test]
    fn a_due_or_overdue_reminder_is_sent_without_waiting() {
        let due = utc("2026-03-02T12:00:00Z");
        assert_eq!(wait_before_sending(due, due), Duration::zero());
        assert_eq!(
            wait_before_sending(due, utc("2026-03-02T14:00:00Z")),
            Duration::zero()
        );
    }

    #[test]
    fn a_reminder_within_the_required_accuracy_is_on_time() {
        let due = utc("2026-03-02T12:00:00Z");
        let scheduled = utc("2026-03-02T11:00:00Z");
        assert!(!is_late(lateness(due, scheduled, due)));
        assert!(!is_late(lateness(due, scheduled, due + LATE_AFTER)));
    }

    #[test]
    fn a_reminder_missed_during_an_outage_is_late() {
        let due = utc("2026-03-02T12:00:00Z");
        let scheduled = utc("2026-03-02T11:00:00Z");
        let sent = utc("2026-03-02T12:10:00Z");
        assert_eq!(lateness(due, scheduled, sent), Duration::minutes(10));
        assert!(is_late(lateness(due, scheduled, sent)));
    }

    #[test]
    fn a_run_closed_after_its_due_time_is_reminded_at_once_and_not_late() {
        let due = utc("2026-03-02T12:00:00Z");
        let closed = utc("2026-03-02T12:03:00Z");
        assert_eq!(wait_before_sending(due, closed), Duration::zero());
        assert_eq!(lateness(due, closed, closed), Duration::zero());
        assert!(!is_late(lateness(due, closed, closed)));
        assert_eq!(
            lateness(due, closed, closed + Duration::seconds(2)),
            Duration::seconds(2)
        );
    }

    #[test]
    fn lateness_counts_from_the_due_time_and_is_never_negative() {
        let due = utc("2026-03-02T12:00:00Z");
        let scheduled = utc("2026-03-02T11:00:00Z");
        assert_eq!(
            lateness(due, scheduled, utc("2026-03-02T12:00:01.500Z")),
            Duration::milliseconds(1500)
        );
        assert_eq!(
            lateness(due, scheduled, utc("2026-03-02T11:59:59Z")),
            Duration::zero()
        );
    }
}
