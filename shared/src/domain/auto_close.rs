//! Auto-close (DESIGN §1.10): a run with a pickup time closes itself `N`
//! minutes before pickup, exactly as if its starter had pressed Close.
//!
//! The time is decided once, when the run starts ([`auto_close_at`]), and
//! shown on the run message; changing the channel's setting later does not
//! move the close time of a run already open.
//!
//! # Too late to close early
//! `/coffee in 5m` in a channel with `auto-close 10` would close before it
//! opened. The rule: a run closes at `pickup − N`, unless that is already
//! past or less than [`MIN_ORDERING_WINDOW`] after the start; then orders
//! close **at pickup** instead. A run never closes before anyone could
//! order, and never later than its pickup (the runner still goes on time:
//! the reminder is unaffected).

use chrono::{DateTime, Duration, Utc};

/// Auto-close bounds, minutes before pickup.
pub const AUTO_CLOSE_MINUTES: std::ops::RangeInclusive<i32> = 1..=60;

/// The shortest time people get to order before a run closes by itself.
pub const MIN_ORDERING_WINDOW: Duration = Duration::minutes(1);

/// A channel's auto-close setting: 1–60 minutes before pickup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AutoCloseMinutes(i32);

impl AutoCloseMinutes {
    /// `minutes` if it is within [`AUTO_CLOSE_MINUTES`].
    pub fn new(minutes: i64) -> Option<Self> {
        i32::try_from(minutes)
            .ok()
            .filter(|m| AUTO_CLOSE_MINUTES.contains(m))
            .map(Self)
    }

    /// The number of minutes.
    pub fn get(self) -> i32 {
        self.0
    }

    /// As a duration.
    pub fn duration(self) -> Duration {
        Duration::minutes(i64::from(self.0))
    }
}

/// When (and whether) a run closes by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoClose {
    /// No pickup time, or auto-close is off: only closed by hand.
    Manual,
    /// Closes `N` minutes before pickup, at `at`.
    BeforePickup {
        /// The close time.
        at: DateTime<Utc>,
    },
    /// `pickup − N` was past or under a minute away at the start, so the
    /// run takes orders until pickup and closes then.
    AtPickup {
        /// The close time (the pickup).
        at: DateTime<Utc>,
    },
}

impl AutoClose {
    /// The close time, if the run closes by itself.
    pub fn at(self) -> Option<DateTime<Utc>> {
        match self {
            Self::Manual => None,
            Self::BeforePickup { at } | Self::AtPickup { at } => Some(at),
        }
    }
}

/// When a run started at `started` with `pickup` closes by itself in a
/// channel whose setting is `minutes` (see the module's rule).
pub fn auto_close_at(
    pickup: Option<DateTime<Utc>>,
    minutes: Option<AutoCloseMinutes>,
    started: DateTime<Utc>,
) -> AutoClose {
    let (Some(pickup), Some(minutes)) = (pickup, minutes) else {
        return AutoClose::Manual;
    };
    let before = pickup - minutes.duration();
    if before - started >= MIN_ORDERING_WINDOW {
        AutoClose::BeforePickup { at: before }
    } else {
        AutoClose::AtPickup { at: pickup }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    fn m(n: i64) -> Option<AutoCloseMinutes> {
        Some(AutoCloseMinutes::new(n).expect("test minutes are in bounds"))
    }

    #[test]
    fn only_one_to_sixty_minutes_is_a_setting() {
        assert_eq!(AutoCloseMinutes::new(1).map(AutoCloseMinutes::get), Some(1));
        assert_eq!(
            AutoCloseMinutes::new(60).map(AutoCloseMinutes::get),
            Some(60)
        );
        for bad in [0, 61, 99, -1, i64::MAX, i64::MIN] {
            assert_eq!(AutoCloseMinutes::new(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_run_without_pickup_or_without_the_setting_closes_only_by_hand() {
        assert_eq!(auto_close_at(None, m(10), t(0)), AutoClose::Manual);
        assert_eq!(auto_close_at(Some(t(30)), None, t(0)), AutoClose::Manual);
        assert_eq!(AutoClose::Manual.at(), None);
    }

    #[test]
    fn a_run_closes_n_minutes_before_pickup() {
        assert_eq!(
            auto_close_at(Some(t(30)), m(10), t(0)),
            AutoClose::BeforePickup { at: t(20) }
        );
    }

    #[test]
    fn exactly_one_minute_of_ordering_is_enough_to_close_before_pickup() {
        assert_eq!(
            auto_close_at(Some(t(11)), m(10), t(0)),
            AutoClose::BeforePickup { at: t(1) }
        );
    }

    #[test]
    fn a_close_time_already_past_or_under_a_minute_away_becomes_the_pickup() {
        // `/coffee in 5m` with auto-close 10: pickup − 10 is five minutes ago.
        assert_eq!(
            auto_close_at(Some(t(5)), m(10), t(0)),
            AutoClose::AtPickup { at: t(5) }
        );
        // pickup − 10 is 30 s after the start: too short to order.
        let started = t(0);
        let pickup = t(10) + Duration::seconds(30);
        assert_eq!(
            auto_close_at(Some(pickup), m(10), started),
            AutoClose::AtPickup { at: pickup }
        );
        // Exactly at the start.
        assert_eq!(
            auto_close_at(Some(t(10)), m(10), t(0)),
            AutoClose::AtPickup { at: t(10) }
        );
    }

    proptest! {
        #[test]
        fn a_run_never_closes_before_a_minute_of_ordering_nor_after_pickup(
            pickup_s in 1..(241 * 60i64),
            minutes in 1..=60i64,
        ) {
            let started = t(0);
            let pickup = started + Duration::seconds(pickup_s);
            let decided = auto_close_at(Some(pickup), m(minutes), started);
            let at = decided.at().expect("a pickup and a setting close by themselves");
            prop_assert!(at <= pickup);
            // Either a full minute of ordering, or the whole time to pickup.
            prop_assert!(at - started >= MIN_ORDERING_WINDOW || at == pickup);
            if let AutoClose::BeforePickup { at } = decided {
                prop_assert_eq!(at, pickup - Duration::minutes(minutes));
            }
        }
    }
}
