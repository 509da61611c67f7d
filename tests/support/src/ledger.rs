//! Checks "nothing lost, nothing twice" (DESIGN §5) after the fact, from
//! both sides: what the database says CoffeeBuddy decided to post (the
//! `effects` table) against what the Slack fake now holds.
//!
//! Every post carries its effect key (`<effect id>:<page>`) in message
//! metadata, so each posting effect can be found in its conversation: a
//! done post must be there, each of its pages exactly once, and nothing
//! may be there twice.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::driver::effect_key;
use crate::slack_fake::SlackFake;

/// Effect kinds that post a message (the others update, publish or answer
/// privately, and cannot be doubled in a conversation).
pub const POSTING_KINDS: [&str; 7] = [
    "post_run_message",
    "post_summary",
    "post_cancelled",
    "dm_runner",
    "dm_participant",
    "dm_reminder",
    "announce_milestone",
];

/// What the audit found.
#[derive(Debug, Clone, Default)]
pub struct PostAudit {
    /// Every effect by `(kind, status)`, with its count.
    pub effects: BTreeMap<(String, String), i64>,
    /// Posting effects the database records as done.
    pub posts_done: usize,
    /// Their pages found in Slack (a long list takes several).
    pub pages_found: usize,
    /// Done posting effects with no message in their conversation.
    pub missing: Vec<Uuid>,
    /// Effect keys found in more than one message, with how many.
    pub doubled: Vec<(String, usize)>,
    /// Messages in the audited conversations carrying an effect key the
    /// database does not record as done (posted although not recorded).
    pub unrecorded: Vec<String>,
}

impl PostAudit {
    /// Effects not `done` (pending, in flight, failed, unknown, dead).
    pub fn not_done(&self) -> i64 {
        self.effects
            .iter()
            .filter(|((_, status), _)| status != "done")
            .map(|(_, n)| n)
            .sum()
    }

    /// Whether every effect is done, every post landed and none twice.
    pub fn is_exact(&self) -> bool {
        self.not_done() == 0
            && self.missing.is_empty()
            && self.doubled.is_empty()
            && self.unrecorded.is_empty()
    }
}

impl fmt::Display for PostAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "effects by kind and status:")?;
        for ((kind, status), n) in &self.effects {
            writeln!(f, "  {kind:<20} {status:<10} {n}")?;
        }
        writeln!(
            f,
            "posts done {}, pages found in Slack {}, missing {}, doubled {}, unrecorded {}",
            self.posts_done,
            self.pages_found,
            self.missing.len(),
            self.doubled.len(),
            self.unrecorded.len()
        )?;
        for id in self.missing.iter().take(10) {
            writeln!(f, "  missing: {id}")?;
        }
        for (key, n) in self.doubled.iter().take(10) {
            writeln!(f, "  doubled: {key} ×{n}")?;
        }
        for key in self.unrecorded.iter().take(10) {
            writeln!(f, "  unrecorded: {key}")?;
        }
        Ok(())
    }
}

/// Where an effect posts: `Channel(C…)` or `Dm(U…)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Conversation {
    Channel(String),
    Dm(String),
}

fn conversation(kind: &str, payload: &Value, channel: Option<&str>) -> Option<Conversation> {
    if kind.starts_with("dm_") {
        return payload["user"]
            .as_str()
            .map(|u| Conversation::Dm(u.to_owned()));
    }
    channel
        .or_else(|| payload["channel_id"].as_str())
        .map(|c| Conversation::Channel(c.to_owned()))
}

/// Audits every effect in `db` against what `slack` holds.
pub async fn audit_posts(db: &PgPool, slack: &SlackFake) -> Result<PostAudit, sqlx::Error> {
    let mut audit = PostAudit::default();
    let counts: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT kind, status, count(*) FROM effects GROUP BY kind, status")
            .fetch_all(db)
            .await?;
    for (kind, status, n) in counts {
        audit.effects.insert((kind, status), n);
    }
    let kinds: Vec<String> = POSTING_KINDS.iter().map(|k| (*k).to_owned()).collect();
    let posts: Vec<(Uuid, String, String, Value, Option<String>)> = sqlx::query_as(
        "SELECT effect_id, kind, status, payload, channel_id FROM effects WHERE kind = ANY($1)",
    )
    .bind(&kinds)
    .fetch_all(db)
    .await?;
    let mut by_conversation: BTreeMap<Conversation, Vec<(Uuid, String)>> = BTreeMap::new();
    for (effect_id, kind, status, payload, channel) in posts {
        if let Some(conv) = conversation(&kind, &payload, channel.as_deref()) {
            by_conversation
                .entry(conv)
                .or_default()
                .push((effect_id, status));
        }
    }
    for (conv, effects) in by_conversation {
        let messages = match &conv {
            Conversation::Channel(c) => slack.messages(c),
            Conversation::Dm(u) => slack.dm_messages(u),
        };
        let mut keys: HashMap<String, usize> = HashMap::new();
        for message in &messages {
            if let Some(key) = effect_key(message) {
                *keys.entry(key.to_owned()).or_default() += 1;
            }
        }
        let done: HashMap<String, ()> = effects
            .iter()
            .filter(|(_, status)| status == "done")
            .map(|(id, _)| (id.to_string(), ()))
            .collect();
        for (effect_id, status) in &effects {
            if status != "done" {
                continue;
            }
            audit.posts_done += 1;
            let prefix = format!("{effect_id}:");
            let pages = keys.keys().filter(|k| k.starts_with(&prefix)).count();
            if pages == 0 {
                audit.missing.push(*effect_id);
            }
            audit.pages_found += pages;
        }
        for (key, n) in keys {
            if n > 1 {
                audit.doubled.push((key.clone(), n));
            }
            let id = key.split(':').next().unwrap_or_default();
            if !done.contains_key(id) {
                audit.unrecorded.push(key);
            }
        }
    }
    audit.doubled.sort();
    audit.unrecorded.sort();
    Ok(audit)
}
