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

use std::collections::{BTreeMap, BTreeSet};

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

/// The rule's decision with its own inputs, so the "why you" line
/// (DESIGN §1.12) can never disagree with the pick: both come from one
/// computation in [`select_runner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerPick {
    /// Who fetches the coffee.
    pub runner: UserId,
    /// Why them.
    pub why: Explanation,
}

/// The inputs of the rule that decided a pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Runs the runner had served in this channel before this run.
    pub runner_served: i32,
    /// The lowest count among the people who could be picked (those who
    /// ordered, minus the previous runner when they sat out). Always equal
    /// to `runner_served`.
    pub lowest_served: i32,
    /// How many different people ordered.
    pub participants: usize,
    /// How many of them could be picked.
    pub eligible: usize,
    /// How many of those had the lowest count (the runner included).
    pub tied_on_count: usize,
    /// The previous run's runner, when they ordered, did not tick "Happy to
    /// be the runner again", and were not alone, so they sat this one out.
    pub previous_runner_sat_out: Option<UserId>,
    /// What decided among the people with the lowest count.
    pub decided_by: TieBreak,
}

/// The step of the rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// Only one person ordered.
    OnlyParticipant,
    /// One person had fewer runs served than everyone else who could run.
    FewestServed,
    /// Several had the fewest; the runner served least recently (or never).
    LeastRecentlyServed,
    /// Several had the fewest and served equally long ago: the draw seeded
    /// by the run id decided.
    RunIdPick,
}

fn runs(n: i32) -> String {
    if n == 1 {
        "1 run".to_owned()
    } else {
        format!("{n} runs")
    }
}

impl Explanation {
    /// One line for the channel summary (contract: contains "because" and
    /// "served"), e.g. "Why <@U1>: because they had served 1 run here, the
    /// fewest of the 3 people who could run. <@U0> sat out as the last
    /// run's runner." Only our own ids and numbers: safe as mrkdwn.
    pub fn line(&self, runner: &UserId) -> String {
        let served = runs(self.runner_served);
        let mut line = format!("Why {}: because ", runner.mention());
        match self.decided_by {
            TieBreak::OnlyParticipant => line.push_str(&format!(
                "they were the only one who ordered (they had served {served} here before)."
            )),
            TieBreak::FewestServed if self.eligible == 1 => line.push_str(&format!(
                "they were the only one who could run (they had served {served} here before)."
            )),
            TieBreak::FewestServed => line.push_str(&format!(
                "they had served {served} here, the fewest of the {} people who could run.",
                self.eligible
            )),
            TieBreak::LeastRecentlyServed => line.push_str(&format!(
                "they had served {served} here, the fewest (tied with {} more), and served least recently.",
                self.tied_on_count.saturating_sub(1)
            )),
            TieBreak::RunIdPick => line.push_str(&format!(
                "they had served {served} here, the fewest (tied with {} more), and a fair draw seeded by this run broke the tie.",
                self.tied_on_count.saturating_sub(1)
            )),
        }
        if let Some(previous) = &self.previous_runner_sat_out {
            line.push_str(&format!(
                " {} sat out as the last run's runner.",
                previous.mention()
            ));
        }
        line
    }
}

/// Picks the runner among `candidates`, the people with an active order in
/// run `run_id`; `previous_runner` ran the channel's previous run. `None`
/// only when there are no candidates. The pick comes with its explanation.
///
/// The result does not depend on the order of `candidates`. A person listed
/// more than once (a query bug) is still one person: each of their rows is
/// weighed on its own and any of them can make them eligible or win, so they
/// can never crowd anyone out or break the pick.
pub fn select_runner(
    candidates: &[Candidate],
    previous_runner: Option<&UserId>,
    run_id: Uuid,
) -> Option<RunnerPick> {
    let is_eligible = |c: &&Candidate| Some(&c.user_id) != previous_runner || c.runner_again_opt_in;
    let rank = |c: &Candidate| {
        (
            c.runs_served_count,
            c.last_served_at,
            tie_break(run_id, &c.user_id),
        )
    };
    // Only the previous runner can be ineligible, so when nobody is eligible
    // they are the only participant, and they go.
    let mut pool: Vec<&Candidate> = candidates.iter().filter(is_eligible).collect();
    if pool.is_empty() {
        pool = candidates.iter().collect();
    }
    let winner = pool.iter().copied().min_by_key(|c| rank(c))?;
    // Each person's best row in the pool, for the explanation's counts.
    let mut best: BTreeMap<&UserId, &Candidate> = BTreeMap::new();
    for &c in &pool {
        let slot = best.entry(&c.user_id).or_insert(c);
        if rank(c) < rank(slot) {
            *slot = c;
        }
    }
    let participants = candidates
        .iter()
        .map(|c| &c.user_id)
        .collect::<BTreeSet<_>>()
        .len();
    let fewest = winner.runs_served_count;
    let tied: Vec<&&Candidate> = best
        .values()
        .filter(|c| c.runs_served_count == fewest)
        .collect();
    let least_recent = tied
        .iter()
        .filter(|c| c.last_served_at == winner.last_served_at)
        .count();
    let decided_by = if participants == 1 {
        TieBreak::OnlyParticipant
    } else if tied.len() == 1 {
        TieBreak::FewestServed
    } else if least_recent == 1 {
        TieBreak::LeastRecentlyServed
    } else {
        TieBreak::RunIdPick
    };
    let previous_runner_sat_out = previous_runner
        .filter(|p| candidates.iter().any(|c| &c.user_id == *p) && !best.contains_key(p))
        .cloned();
    Some(RunnerPick {
        runner: winner.user_id.clone(),
        why: Explanation {
            runner_served: winner.runs_served_count,
            lowest_served: fewest,
            participants,
            eligible: best.len(),
            tied_on_count: tied.len(),
            previous_runner_sat_out,
            decided_by,
        },
    })
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

    /// The runner alone, for the tests of the rule itself.
    fn pick(cs: &[Candidate], prev: Option<&UserId>, run_id: Uuid) -> Option<UserId> {
        select_runner(cs, prev, run_id).map(|p| p.runner)
    }

    fn why(cs: &[Candidate], prev: Option<&UserId>, run_id: Uuid) -> Explanation {
        select_runner(cs, prev, run_id)
            .expect("someone ordered")
            .why
    }

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
        assert_eq!(pick(&[], None, run(1)), None);
        assert_eq!(pick(&[], Some(&user("U1")), run(1)), None);
    }

    #[test]
    fn the_fewest_runs_served_wins() {
        let mut a = fresh("UA");
        a.runs_served_count = 3;
        let mut b = fresh("UB");
        b.runs_served_count = 1;
        b.last_served_at = Some(at(0));
        assert_eq!(pick(&[a, b], None, run(7)), Some(user("UB")));
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
        assert_eq!(pick(&both, None, run(1)), Some(user("UB")));

        let mut never = fresh("UC");
        never.runs_served_count = 2;
        assert_eq!(
            pick(&[recent, older, never], None, run(1)),
            Some(user("UC"))
        );
    }

    #[test]
    fn the_previous_runner_sits_out_even_with_the_fewest_runs() {
        let prev = fresh("UP");
        let mut other = fresh("UO");
        other.runs_served_count = 9;
        assert_eq!(
            pick(&[prev, other], Some(&user("UP")), run(1)),
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
            pick(&[other, prev], Some(&user("UP")), run(1)),
            Some(user("UP"))
        );
    }

    #[test]
    fn the_previous_runner_alone_runs_again() {
        let mut prev = fresh("UP");
        prev.runs_served_count = 5;
        assert_eq!(
            pick(&[prev.clone()], Some(&user("UP")), run(1)),
            Some(user("UP"))
        );
        // Listed twice by mistake, still alone.
        assert_eq!(
            pick(&[prev.clone(), prev], Some(&user("UP")), run(1)),
            Some(user("UP"))
        );
    }

    #[test]
    fn a_person_listed_twice_is_still_one_person() {
        let a = fresh("UA");
        let b = fresh("UB");
        let once = pick(&[a.clone(), b.clone()], None, run(3));
        let twice = pick(&[a.clone(), b.clone(), a.clone(), a], None, run(3));
        assert_eq!(once, twice);
    }

    #[test]
    fn four_consecutive_runs_with_the_same_three_people_rotate_and_never_repeat_immediately() {
        let mut people = vec![fresh("UANN"), fresh("UBOB"), fresh("UCAT")];
        let mut previous: Option<UserId> = None;
        let mut runners = Vec::new();
        for n in 0..4 {
            let runner =
                pick(&people, previous.as_ref(), run(1000 + n)).expect("three people ordered");
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
            let runner = pick(&people, None, run(n)).expect("people ordered");
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
        assert_eq!(pick(&people, None, run_id), Some(user("UBOB")));
        assert_eq!(
            tie_break(run_id, &user("UANN")).to_vec(),
            Sha256::digest([run_id.as_bytes().as_slice(), b"UANN"].concat()).to_vec()
        );
    }

    #[test]
    fn the_only_participant_is_explained_as_such() {
        let mut a = fresh("UA");
        a.runs_served_count = 4;
        let w = why(&[a], None, run(1));
        assert_eq!(w.decided_by, TieBreak::OnlyParticipant);
        assert_eq!(
            w.line(&user("UA")),
            "Why <@UA>: because they were the only one who ordered (they had served 4 runs here before)."
        );
    }

    #[test]
    fn the_fewest_served_is_explained_with_the_counts_and_who_sat_out() {
        let prev = fresh("UP");
        let mut b = fresh("UB");
        b.runs_served_count = 1;
        let mut c = fresh("UC");
        c.runs_served_count = 2;
        let mut d = fresh("UD");
        d.runs_served_count = 3;
        let pick = select_runner(&[prev, b, c, d], Some(&user("UP")), run(1)).unwrap();
        assert_eq!(pick.runner, user("UB"));
        assert_eq!(pick.why.decided_by, TieBreak::FewestServed);
        assert_eq!(pick.why.previous_runner_sat_out, Some(user("UP")));
        assert_eq!(
            pick.why.line(&pick.runner),
            "Why <@UB>: because they had served 1 run here, the fewest of the 3 people who could run. <@UP> sat out as the last run's runner."
        );
    }

    #[test]
    fn the_last_one_standing_after_the_previous_runner_sat_out_is_explained() {
        let pick = select_runner(&[fresh("UP"), fresh("UB")], Some(&user("UP")), run(1)).unwrap();
        assert_eq!(
            pick.why.line(&pick.runner),
            "Why <@UB>: because they were the only one who could run (they had served 0 runs here before). <@UP> sat out as the last run's runner."
        );
    }

    #[test]
    fn a_tie_on_count_names_the_tie_break_that_decided() {
        let mut recent = fresh("UA");
        recent.runs_served_count = 2;
        recent.last_served_at = Some(at(100));
        let mut older = fresh("UB");
        older.runs_served_count = 2;
        older.last_served_at = Some(at(10));
        let w = why(&[recent, older], None, run(1));
        assert_eq!(w.decided_by, TieBreak::LeastRecentlyServed);
        assert!(
            w.line(&user("UB"))
                .contains("tied with 1 more), and served least recently"),
            "{}",
            w.line(&user("UB"))
        );

        let w = why(&[fresh("UA"), fresh("UB"), fresh("UC")], None, run(1));
        assert_eq!(w.decided_by, TieBreak::RunIdPick);
        assert_eq!(w.tied_on_count, 3);
        assert!(
            w.line(&user("UA"))
                .contains("a fair draw seeded by this run")
        );
    }

    #[test]
    fn a_previous_runner_who_opted_in_did_not_sit_out() {
        let mut prev = fresh("UP");
        prev.runner_again_opt_in = true;
        let mut other = fresh("UO");
        other.runs_served_count = 1;
        let w = why(&[prev, other], Some(&user("UP")), run(1));
        assert_eq!(w.previous_runner_sat_out, None);
        assert!(!w.line(&user("UP")).contains("sat out"));
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
        // One row per person, as the standings query gives them (one active
        // order per person per run).
        proptest::collection::vec(row, 0..8).prop_map(|mut rows| {
            let mut seen = std::collections::BTreeSet::new();
            rows.retain(|c| seen.insert(c.user_id.clone()));
            rows
        })
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
            match pick(&cs, prev.as_ref(), run(id)) {
                None => prop_assert!(cs.is_empty()),
                Some(r) => prop_assert!(cs.iter().any(|c| c.user_id == r)),
            }
        }

        #[test]
        fn the_previous_runner_is_picked_only_if_opted_in_or_alone(cs in candidates(), prev in previous(), id in any::<u128>()) {
            let runner = pick(&cs, prev.as_ref(), run(id));
            if let Some(prev) = prev.filter(|p| runner.as_ref() == Some(p)) {
                let opted_in = cs.iter().any(|c| c.user_id == prev && c.runner_again_opt_in);
                let alone = cs.iter().all(|c| c.user_id == prev);
                prop_assert!(opted_in || alone);
            }
        }

        #[test]
        fn the_runner_has_the_fewest_runs_among_the_eligible(cs in candidates(), prev in previous(), id in any::<u128>()) {
            if let Some(runner) = pick(&cs, prev.as_ref(), run(id)) {
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
            if let Some(runner) = pick(&cs, prev.as_ref(), run(id)) {
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
            let first = pick(&cs, prev.as_ref(), run(id));
            prop_assert_eq!(&first, &pick(&cs, prev.as_ref(), run(id)));
            prop_assert_eq!(&first, &pick(&shuffled, prev.as_ref(), run(id)));
        }
        #[test]
        fn the_explanation_agrees_with_the_decision(cs in candidates(), prev in previous(), id in any::<u128>()) {
            let Some(pick) = select_runner(&cs, prev.as_ref(), run(id)) else {
                prop_assert!(cs.is_empty());
                return Ok(());
            };
            let w = &pick.why;
            let eligible = eligible(&cs, prev.as_ref());
            let fewest = eligible.iter().map(|c| c.runs_served_count).min();
            // The stated lowest is the minimum over the eligible, and the runner's.
            prop_assert_eq!(Some(w.lowest_served), fewest);
            prop_assert_eq!(w.runner_served, w.lowest_served);
            prop_assert!(eligible.iter().any(|c| c.user_id == pick.runner && c.runs_served_count == w.runner_served));
            let people: BTreeSet<_> = cs.iter().map(|c| &c.user_id).collect();
            prop_assert_eq!(w.participants, people.len());
            let eligible_people: BTreeSet<_> = eligible.iter().map(|c| &c.user_id).collect();
            prop_assert_eq!(w.eligible, eligible_people.len());
            // "Previous runner sat out" iff they ordered, did not opt in, and were not alone.
            let sat_out = prev.as_ref().is_some_and(|p| {
                cs.iter().any(|c| &c.user_id == p)
                    && !cs.iter().any(|c| &c.user_id == p && c.runner_again_opt_in)
                    && people.len() > 1
            });
            prop_assert_eq!(w.previous_runner_sat_out.is_some(), sat_out);
            prop_assert_eq!(w.previous_runner_sat_out.as_ref(), if sat_out { prev.as_ref() } else { None });
            // The tie-break named is the one that decided.
            let tied: BTreeSet<_> = eligible.iter().filter(|c| Some(c.runs_served_count) == fewest).map(|c| &c.user_id).collect();
            prop_assert_eq!(w.tied_on_count, tied.len());
            let expected = if people.len() == 1 {
                TieBreak::OnlyParticipant
            } else if tied.len() == 1 {
                TieBreak::FewestServed
            } else {
                // Each tied person's best (most rested) row.
                let best_last = |u: &UserId| eligible.iter().filter(|c| &c.user_id == u && Some(c.runs_served_count) == fewest).map(|c| c.last_served_at).min();
                let runners = best_last(&pick.runner);
                let same = tied.iter().filter(|u| best_last(u) == runners).count();
                if same == 1 { TieBreak::LeastRecentlyServed } else { TieBreak::RunIdPick }
            };
            prop_assert_eq!(w.decided_by, expected);
            // The line says "because" and "served", names the runner, and the one who sat out.
            let line = w.line(&pick.runner);
            prop_assert!(line.contains("because") && line.contains("served"), "{}", line);
            prop_assert!(line.contains(&pick.runner.mention()));
            prop_assert_eq!(line.contains("sat out"), sat_out);
        }
    }
}
