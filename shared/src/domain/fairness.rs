//! Who fetches the coffee (DESIGN §1.4): a fair, reproducible pick among the
//! people with an active order in the run being closed.
//!
//! 1. The runner of the channel's previous run sits this one out, unless they
//!    ticked "Happy to be the runner again" or nobody else ordered.
//! 2. Among the rest, the fewest runs served in this channel wins;
//! 3. then whoever served least long ago (never served counts as longest ago);
//! 4. then a pseudo-random pick seeded by the run id: the smallest
//!    SHA-256(run id bytes ‖ user id bytes). It is fair among equals across
//!    runs, yet the same run always gets the same runner, whatever process,
//!    version or row order computes it, so a retried close cannot change it.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ids::UserId;

/// A participant in the run being closed, with their record in this channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The person.
    pub user_id: UserId,
    /// How many runs they have fetched in this channel; fewest goes first.
    pub runs_served_count: i32,
    /// When they last fetched in this channel; breaks ties in count, so the
    /// longest-rested goes first. `None` (never) is longest of all.
    pub last_served_at: Option<DateTime<Utc>>,
    /// They ticked "Happy to be the runner again" on their order, which lets
    /// them be picked right after they ran the previous run.
    pub runner_again_opt_in: bool,
}

/// Picks the runner among `candidates`, the people with an active order in
/// run `run_id`; `previous_runner` ran the channel's previous run. `None`
/// only when there are no candidates.
///
/// The result does not depend on the order of `candidates`. A person listed
/// more than once (a query bug) is still one person: each of their rows is
/// weighed on its own and any of them can make them eligible or win, so they
/// can never crowd anyone out or break the pick.
pub fn select_runner(
    candidates: &[Candidate],
    previous_runner: Option<&UserId>,
    run_id: Uuid,
) -> Option<UserId> {
    let is_eligible = |c: &&Candidate| Some(&c.user_id) != previous_runner || c.runner_again_opt_in;
    let rank = |c: &&Candidate| {
        (
            c.runs_served_count,
            c.last_served_at,
            tie_break(run_id, &c.user_id),
        )
    };
    // Only the previous runner can be ineligible, so when nobody is eligible
    // they are the only participant, and they go.
    candidates
        .iter()
        .filter(is_eligible)
        .min_by_key(rank)
        .or_else(|| candidates.iter().min_by_key(rank))
        .map(|c| c.user_id.clone())
}

/// The last tie-break: a digest of the run and the person, uniform enough to
/// spread picks among equals and stable forever (no `Hash`/`RandomState`).
fn tie_break(run_id: Uuid, user_id: &UserId) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(run_id.as_bytes());
    hasher.update(user_id.as_ref().as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("test ids are Slack-shaped")
    }

    fn fresh(id: &str) -> Candidate {
        Candidate {
            user_id: user(id),
            runs_served_count: 0,
            last_served_at: None,
            runner_again_opt_in: false,
        }
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    fn run(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn nobody_ordered_so_nobody_runs() {
        assert_eq!(select_runner(&[], None, run(1)), None);
        assert_eq!(select_runner(&[], Some(&user("U1")), run(1)), None);
    }

    #[test]
    fn the_fewest_runs_served_wins() {
        let mut a = fresh("UA");
        a.runs_served_count = 3;
        let mut b = fresh("UB");
        b.runs_served_count = 1;
        b.last_served_at = Some(at(0));
        assert_eq!(select_runner(&[a, b], None, run(7)), Some(user("UB")));
    }

    #[test]
    fn equal_counts_go_to_whoever_served_least_recently_and_never_beats_ever() {
        let mut recent = fresh("UA");
        recent.runs_served_count = 2;
        recent.last_served_at = Some(at(100));
        let mut older = fresh("UB");
        older.runs_served_count = 2;
        older.last_served_at = Some(at(10));
        let both = [recent.clone(), older.clone()];
        assert_eq!(select_runner(&both, None, run(1)), Some(user("UB")));

        let mut never = fresh("UC");
        never.runs_served_count = 2;
        assert_eq!(
            select_runner(&[recent, older, never], None, run(1)),
            Some(user("UC"))
        );
    }

    #[test]
    fn the_previous_runner_sits_out_even_with_the_fewest_runs() {
        let prev = fresh("UP");
        let mut other = fresh("UO");
        other.runs_served_count = 9;
        assert_eq!(
            select_runner(&[prev, other], Some(&user("UP")), run(1)),
            Some(user("UO"))
        );
    }

    #[test]
    fn the_previous_runner_who_opted_in_competes_as_usual() {
        let mut prev = fresh("UP");
        prev.runner_again_opt_in = true;
        let mut other = fresh("UO");
        other.runs_served_count = 1;
        assert_eq!(
            select_runner(&[other, prev], Some(&user("UP")), run(1)),
            Some(user("UP"))
        );
    }

    #[test]
    fn the_previous_runner_alone_runs_again() {
        let mut prev = fresh("UP");
        prev.runs_served_count = 5;
        assert_eq!(
            select_runner(&[prev.clone()], Some(&user("UP")), run(1)),
            Some(user("UP"))
        );
        // Listed twice by mistake, still alone.
        assert_eq!(
            select_runner(&[prev.clone(), prev], Some(&user("UP")), run(1)),
            Some(user("UP"))
        );
    }

    #[test]
    fn a_person_listed_twice_is_still_one_person() {
        let a = fresh("UA");
        let b = fresh("UB");
        let once = select_runner(&[a.clone(), b.clone()], None, run(3));
        let twice = select_runner(&[a.clone(), b.clone(), a.clone(), a], None, run(3));
        assert_eq!(once, twice);
    }

    #[test]
    fn four_consecutive_runs_with_the_same_three_people_rotate_and_never_repeat_immediately() {
        let mut people = vec![fresh("UANN"), fresh("UBOB"), fresh("UCAT")];
        let mut previous: Option<UserId> = None;
        let mut runners = Vec::new();
        for n in 0..4 {
            let runner = select_runner(&people, previous.as_ref(), run(1000 + n))
                .expect("three people ordered");
            // What closing a run records: one more run served, just now.
            let served = people
                .iter_mut()
                .find(|p| p.user_id == runner)
                .expect("the runner is a participant");
            served.runs_served_count += 1;
            served.last_served_at = Some(at(i64::try_from(n).unwrap() * 60));
            assert_ne!(Some(&runner), previous.as_ref(), "run {n} repeated");
            previous = Some(runner.clone());
            runners.push(runner);
        }
        let first_three: BTreeSet<_> = runners[..3].iter().collect();
        assert_eq!(
            first_three.len(),
            3,
            "everyone runs once first: {runners:?}"
        );
        assert_eq!(runners[3], runners[0], "then the longest-rested goes again");
    }

    #[test]
    fn different_runs_spread_the_pick_among_equals() {
        let people = [fresh("UANN"), fresh("UBOB"), fresh("UCAT")];
        let mut picks: BTreeMap<UserId, u32> = BTreeMap::new();
        for n in 0..200 {
            let runner = select_runner(&people, None, run(n)).expect("people ordered");
            *picks.entry(runner).or_default() += 1;
        }
        assert_eq!(picks.len(), 3, "{picks:?}");
        assert!(picks.values().all(|&n| n >= 30), "{picks:?}");
    }

    #[test]
    fn the_tie_break_is_pinned_across_versions() {
        // Worked out independently (SHA-256 of the 16 uuid bytes then the id's
        // ASCII). If this changes, a retried close of an existing run could
        // pick a different runner than the first attempt: keep the digest.
        let people = [fresh("UANN"), fresh("UBOB"), fresh("UCAT")];
        let run_id = Uuid::parse_str("6f1c2a3e-9b7d-4c1e-8f0a-123456789abc").unwrap();
        assert_eq!(select_runner(&people, None, run_id), Some(user("UBOB")));
        assert_eq!(
            tie_break(run_id, &user("UANN")).to_vec(),
            Sha256::digest([run_id.as_bytes().as_slice(), b"UANN"].concat()).to_vec()
        );
    }

    /// Up to eight rows drawn from five people (so duplicates happen), with
    /// small counts and times so that ties are common.
    fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
        let row = (
            0..5u8,
            0..3i32,
            proptest::option::of(0..4i64),
            any::<bool>(),
        )
            .prop_map(|(who, count, last, opt_in)| Candidate {
                user_id: user(&format!("U{who}")),
                runs_served_count: count,
                last_served_at: last.map(at),
                runner_again_opt_in: opt_in,
            });
        proptest::collection::vec(row, 0..8)
    }

    fn previous() -> impl Strategy<Value = Option<UserId>> {
        proptest::option::of((0..6u8).prop_map(|who| user(&format!("U{who}"))))
    }

    /// The rows that may be picked, straight from the rules.
    fn eligible<'a>(cs: &'a [Candidate], prev: Option<&UserId>) -> Vec<&'a Candidate> {
        let people: BTreeSet<_> = cs.iter().map(|c| &c.user_id).collect();
        cs.iter()
            .filter(|c| Some(&c.user_id) != prev || c.runner_again_opt_in || people.len() == 1)
            .collect()
    }

    proptest! {
        #[test]
        fn the_runner_is_always_a_participant(cs in candidates(), prev in previous(), id in any::<u128>()) {
            match select_runner(&cs, prev.as_ref(), run(id)) {
                None => prop_assert!(cs.is_empty()),
                Some(r) => prop_assert!(cs.iter().any(|c| c.user_id == r)),
            }
        }

        #[test]
        fn the_previous_runner_is_picked_only_if_opted_in_or_alone(cs in candidates(), prev in previous(), id in any::<u128>()) {
            let runner = select_runner(&cs, prev.as_ref(), run(id));
            if let Some(prev) = prev.filter(|p| runner.as_ref() == Some(p)) {
                let opted_in = cs.iter().any(|c| c.user_id == prev && c.runner_again_opt_in);
                let alone = cs.iter().all(|c| c.user_id == prev);
                prop_assert!(opted_in || alone);
            }
        }

        #[test]
        fn the_runner_has_the_fewest_runs_among_the_eligible(cs in candidates(), prev in previous(), id in any::<u128>()) {
            if let Some(runner) = select_runner(&cs, prev.as_ref(), run(id)) {
                let eligible = eligible(&cs, prev.as_ref());
                let fewest = eligible.iter().map(|c| c.runs_served_count).min();
                let runners_fewest = eligible
                    .iter()
                    .filter(|c| c.user_id == runner)
                    .map(|c| c.runs_served_count)
                    .min();
                prop_assert_eq!(runners_fewest, fewest);
            }
        }

        #[test]
        fn among_the_fewest_the_runner_served_least_recently(cs in candidates(), prev in previous(), id in any::<u128>()) {
            if let Some(runner) = select_runner(&cs, prev.as_ref(), run(id)) {
                let eligible = eligible(&cs, prev.as_ref());
                let best = eligible.iter().map(|c| (c.runs_served_count, c.last_served_at)).min();
                let runners_best = eligible
                    .iter()
                    .filter(|c| c.user_id == runner)
                    .map(|c| (c.runs_served_count, c.last_served_at))
                    .min();
                prop_assert_eq!(runners_best, best);
            }
        }

        #[test]
        fn the_pick_depends_on_the_run_not_on_the_row_order(
            (cs, shuffled) in candidates().prop_flat_map(|cs| (Just(cs.clone()), Just(cs).prop_shuffle())),
            prev in previous(),
            id in any::<u128>(),
        ) {
            let first = select_runner(&cs, prev.as_ref(), run(id));
            prop_assert_eq!(&first, &select_runner(&cs, prev.as_ref(), run(id)));
            prop_assert_eq!(&first, &select_runner(&shuffled, prev.as_ref(), run(id)));
        }
    }
}
