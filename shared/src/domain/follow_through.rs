//! Runner follow-through (DESIGN §1.9): who may press **Picked up** and
//! **Delivered** (contract labels), and what a press may change.
//!
//! Only the runner of a closed run may press them; anyone else (and any
//! press on a run that is not closed) gets a private refusal whose text is
//! [`RefuseFollowThrough`]'s `Display`. Only the first press of each counts;
//! the database keeps the time of that press (`db::runs::mark_*`).

use std::fmt;

use super::ids::UserId;

/// One of the runner's two buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    /// **Picked up**: the runner has the coffee.
    PickedUp,
    /// **Delivered**: the coffee reached the people who ordered it.
    Delivered,
}

impl Milestone {
    /// The button's label (contract).
    pub fn label(self) -> &'static str {
        match self {
            Self::PickedUp => "Picked up",
            Self::Delivered => "Delivered",
        }
    }
}

impl fmt::Display for Milestone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a press was refused; the text is shown privately to whoever pressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefuseFollowThrough {
    /// Someone other than the runner pressed.
    #[error("Only {} (this run's runner) can mark the coffee as {}.", .runner.mention(), .milestone.label().to_lowercase())]
    NotTheRunner {
        /// The run's runner.
        runner: UserId,
        /// What was pressed.
        milestone: Milestone,
    },
    /// The run has no runner: still open or closing, or cancelled.
    #[error("This coffee run has no runner, so there is nothing to mark.")]
    NoRunner,
}

/// Whether `presser` may press `milestone` on a run whose runner is
/// `runner` (`None` while the run is not closed with a runner).
pub fn authorize(
    runner: Option<&UserId>,
    presser: &UserId,
    milestone: Milestone,
) -> Result<(), RefuseFollowThrough> {
    match runner {
        None => Err(RefuseFollowThrough::NoRunner),
        Some(runner) if runner == presser => Ok(()),
        Some(runner) => Err(RefuseFollowThrough::NotTheRunner {
            runner: runner.clone(),
            milestone,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("test ids are Slack-shaped")
    }

    #[test]
    fn the_runner_may_press_both_buttons() {
        for m in [Milestone::PickedUp, Milestone::Delivered] {
            assert_eq!(authorize(Some(&user("URUN")), &user("URUN"), m), Ok(()));
        }
    }

    #[test]
    fn anyone_else_is_refused_and_told_who_the_runner_is() {
        let err = authorize(Some(&user("URUN")), &user("UOTHER"), Milestone::Delivered)
            .expect_err("not the runner");
        assert_eq!(
            err.to_string(),
            "Only <@URUN> (this run's runner) can mark the coffee as delivered."
        );
    }

    #[test]
    fn a_run_without_a_runner_cannot_be_marked() {
        assert_eq!(
            authorize(None, &user("URUN"), Milestone::PickedUp),
            Err(RefuseFollowThrough::NoRunner)
        );
    }

    #[test]
    fn the_labels_are_the_contract() {
        assert_eq!(Milestone::PickedUp.label(), "Picked up");
        assert_eq!(Milestone::Delivered.label(), "Delivered");
    }
}
