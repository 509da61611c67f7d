//! The barista-ready order list (DESIGN §1.11): identical orders grouped as
//! `3× flat white` (contract: a count, `×`, the order), each with who
//! ordered it, so the runner can read the list out at the counter.
//!
//! Two orders are the same when they match ignoring case and surrounding or
//! repeated whitespace (`Flat  White ` = `flat white`). A group shows the
//! spelling typed first (trimmed, otherwise exactly as typed). Groups are
//! listed most ordered first, then in the order they were first ordered; the
//! people of a group in the order they ordered. Every order of the input is
//! in exactly one group: nobody is dropped.

use std::collections::HashMap;

use super::ids::UserId;

/// Identical orders and who placed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderGroup {
    /// The order as first typed (trimmed); raw user text, escape it to show it.
    pub text: String,
    /// Who ordered it, in the order they ordered; one entry per order, so
    /// `people.len()` is the group's count.
    pub people: Vec<UserId>,
}

impl OrderGroup {
    /// How many orders the group holds.
    pub fn count(&self) -> usize {
        self.people.len()
    }

    /// `3× flat white` (contract), with the order text as given by `show`
    /// (e.g. an mrkdwn escape).
    pub fn headline(&self, show: impl Fn(&str) -> String) -> String {
        format!("{}× {}", self.count(), show(&self.text))
    }
}

/// What makes two orders the same: lowercase, words separated by one space.
pub fn order_key(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Groups `orders` (who, what), given first ordered first.
pub fn group_orders<'a>(
    orders: impl IntoIterator<Item = (&'a UserId, &'a str)>,
) -> Vec<OrderGroup> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<OrderGroup> = Vec::new();
    for (user, text) in orders {
        let slot = *index.entry(order_key(text)).or_insert_with(|| {
            groups.push(OrderGroup {
                text: text.trim().to_owned(),
                people: Vec::new(),
            });
            groups.len() - 1
        });
        groups[slot].people.push(user.clone());
    }
    // A stable sort keeps first-ordered-first among equal counts.
    groups.sort_by_key(|g| std::cmp::Reverse(g.count()));
    groups
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("test ids are Slack-shaped")
    }

    fn group(orders: &[(&str, &str)]) -> Vec<OrderGroup> {
        let owned: Vec<(UserId, String)> = orders
            .iter()
            .map(|(u, t)| (user(u), (*t).to_owned()))
            .collect();
        group_orders(owned.iter().map(|(u, t)| (u, t.as_str())))
    }

    #[test]
    fn identical_orders_ignoring_case_and_spaces_are_one_line_with_everyone_who_ordered() {
        let groups = group(&[
            ("UA", "flat white"),
            ("UB", "Latte"),
            ("UC", "  Flat   White "),
            ("UD", "FLAT WHITE"),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].headline(str::to_owned), "3× flat white");
        assert_eq!(groups[0].people, vec![user("UA"), user("UC"), user("UD")]);
        assert_eq!(groups[1].headline(str::to_owned), "1× Latte");
    }

    #[test]
    fn the_first_typed_spelling_is_kept_trimmed() {
        let groups = group(&[("UA", "  Oat Flat White"), ("UB", "oat flat white")]);
        assert_eq!(groups[0].text, "Oat Flat White");
    }

    #[test]
    fn most_ordered_goes_first_then_first_ordered() {
        let groups = group(&[
            ("UA", "tea"),
            ("UB", "mocha"),
            ("UC", "latte"),
            ("UD", "latte"),
            ("UE", "mocha"),
        ]);
        let texts: Vec<&str> = groups.iter().map(|g| g.text.as_str()).collect();
        assert_eq!(texts, ["mocha", "latte", "tea"]);
    }

    #[test]
    fn different_orders_are_not_merged() {
        let groups = group(&[("UA", "flat white"), ("UB", "flat white, oat")]);
        assert_eq!(groups.len(), 2);
    }

    #[test]
    fn no_orders_no_groups() {
        assert!(group(&[]).is_empty());
    }

    fn orders() -> impl Strategy<Value = Vec<(UserId, String)>> {
        let text = prop::sample::select(vec![
            "flat white",
            "Flat White",
            " flat  white ",
            "latte",
            "LATTE",
            "tea",
            "<!channel>",
            "cortado",
        ]);
        proptest::collection::vec(
            (0..6u8, text).prop_map(|(who, t)| (user(&format!("U{who}")), t.to_owned())),
            0..30,
        )
    }

    proptest! {
        #[test]
        fn grouping_keeps_every_order_and_every_person(orders in orders()) {
            let groups = group_orders(orders.iter().map(|(u, t)| (u, t.as_str())));
            let total: usize = groups.iter().map(OrderGroup::count).sum();
            prop_assert_eq!(total, orders.len());
            let mut before: BTreeMap<(UserId, String), usize> = BTreeMap::new();
            for (u, t) in &orders {
                *before.entry((u.clone(), order_key(t))).or_default() += 1;
            }
            let mut after: BTreeMap<(UserId, String), usize> = BTreeMap::new();
            for g in &groups {
                for u in &g.people {
                    *after.entry((u.clone(), order_key(&g.text))).or_default() += 1;
                }
            }
            prop_assert_eq!(before, after);
        }

        #[test]
        fn groups_are_distinct_and_sorted_by_count(orders in orders()) {
            let groups = group_orders(orders.iter().map(|(u, t)| (u, t.as_str())));
            let keys: std::collections::BTreeSet<String> = groups.iter().map(|g| order_key(&g.text)).collect();
            prop_assert_eq!(keys.len(), groups.len());
            prop_assert!(groups.windows(2).all(|w| w[0].count() >= w[1].count()));
        }
    }
}
