//! The stand-in's model of one Slack workspace: conversations and their
//! messages, DMs, ephemerals, views (modals and App Homes), people,
//! `trigger_id`s and response URLs, and the Web API methods CoffeeBuddy
//! calls, answered the way Slack answers them.
//!
//! Everything is synchronous and in memory behind one mutex (never held
//! across an `.await`); [`crate::server`] puts it on HTTP. Every change bumps
//! a version that watchers ([`SlackStandIn::subscribe`]) see, which is how the
//! playground page learns that something happened.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::checks::{self, Refusal};

/// The bot's user id: who CoffeeBuddy's messages are from.
pub const BOT_USER: &str = "U0COFFEEBOT";
/// The bot's bot id.
pub const BOT_ID: &str = "B0COFFEEBOT";
/// The bot's display name.
pub const BOT_NAME: &str = "CoffeeBuddy";
/// The workspace's team id.
pub const TEAM: &str = "T0PLAYGROUND";
/// The app id Slack would put in payloads.
pub const APP_ID: &str = "A0COFFEEBUDDY";
/// How long a `trigger_id` can be exchanged for a view (Slack: 3 s).
pub const TRIGGER_LIFETIME: Duration = Duration::from_secs(3);
/// How often a response URL may be used (Slack: 5 times)…
pub const RESPONSE_URL_USES: u32 = 5;
/// …and for how long (Slack: 30 minutes).
pub const RESPONSE_URL_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// How many modals one person can have stacked (Slack: 3).
pub const MAX_VIEW_STACK: usize = 3;
/// Entries kept in the traffic log.
const LOG_ENTRIES: usize = 300;

/// How forgiving the stand-in is about things tests make up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Accept what a real workspace would not know: unknown `trigger_id`s
    /// (tests make them up), channels and users never added (created on
    /// first use), `chat.update` of a message never posted (answered `ok`,
    /// nothing stored) and response URLs never issued (answered `ok`).
    /// Size limits and argument checks apply either way.
    pub lenient: bool,
    /// Message timestamps `1700000000.000100`, `…000200`, … (stable for
    /// assertions) instead of the wall clock.
    pub sequential_ts: bool,
    /// When set, any other bearer token is answered `invalid_auth`.
    pub bot_token: Option<String>,
}

impl Options {
    /// What tests want: lenient, any token, and wall-clock timestamps as
    /// Slack's (code that reads history back "since" a time relies on them).
    pub fn for_tests() -> Self {
        Self {
            lenient: true,
            sequential_ts: false,
            bot_token: None,
        }
    }

    /// What the playground wants: a real workspace's strictness, wall-clock
    /// timestamps, the configured token only.
    pub fn strict(bot_token: Option<String>) -> Self {
        Self {
            lenient: false,
            sequential_ts: false,
            bot_token,
        }
    }
}

/// A person in the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// `U…` id.
    pub id: String,
    /// Handle (`alice`).
    pub name: String,
    /// Full name (`Alice Martin`).
    pub real_name: String,
    /// Workspace admin (`users.info` → `is_admin`).
    pub is_admin: bool,
}

impl Person {
    /// A person who is not a workspace admin.
    pub fn new(id: &str, name: &str, real_name: &str) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            real_name: real_name.to_owned(),
            is_admin: false,
        }
    }

    /// The same person as a workspace admin.
    pub fn admin(self) -> Self {
        Self {
            is_admin: true,
            ..self
        }
    }
}

/// A Web API request as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct WebRequest<'a> {
    /// The method (`chat.postMessage`).
    pub method: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The raw query string.
    pub query: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// Slack's answer to a Web API call: always HTTP 200.
#[derive(Debug, Clone, PartialEq)]
pub struct WebAnswer {
    /// `{"ok": true, …}` or `{"ok": false, "error": …}`.
    pub body: Value,
    /// Whether Slack refused the call for its arguments or their size
    /// (any `ok: false` other than `not_authed`/`invalid_auth`).
    pub refused: bool,
}

impl WebAnswer {
    fn ok(body: Value) -> Self {
        Self {
            body,
            refused: false,
        }
    }

    fn error(error: &str) -> Self {
        Self {
            body: json!({ "ok": false, "error": error }),
            refused: !matches!(error, "not_authed" | "invalid_auth"),
        }
    }

    fn refusal(r: Refusal) -> Self {
        Self {
            body: json!({
                "ok": false,
                "error": r.error,
                "errors": r.problems,
                "response_metadata": { "messages": r.problems.iter().map(|p| format!("[ERROR] {p}")).collect::<Vec<_>>() },
            }),
            refused: true,
        }
    }

    /// The `error` code, when not ok.
    pub fn error_code(&self) -> Option<&str> {
        self.body.get("error").and_then(Value::as_str)
    }
}

/// The answer to a post to a response URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookAnswer {
    /// HTTP status (200, 400, 404).
    pub status: u16,
    /// Slack's plain-text body (`ok`, `expired_url`, `invalid_blocks`…).
    pub body: String,
    /// Whether it was refused for size or arguments.
    pub refused: bool,
}

/// Where a response URL's posts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookTarget {
    /// The conversation of the command or click.
    pub channel: String,
    /// The person who typed or clicked (ephemerals go to them).
    pub user: String,
    /// The message clicked, for `replace_original`/`delete_original`.
    pub message_ts: Option<String>,
    /// Whether that message is an ephemeral one.
    pub ephemeral: bool,
}

/// One line of the traffic log the playground shows.
#[derive(Debug, Clone)]
struct LogEntry {
    at_ms: u64,
    direction: &'static str,
    what: String,
    outcome: String,
}

#[derive(Debug, Clone)]
struct Message {
    ts: String,
    user: String,
    text: String,
    blocks: Option<Value>,
    thread_ts: Option<String>,
    metadata: Option<Value>,
    edited: bool,
    reply_broadcast: bool,
}

impl Message {
    fn is_bot(&self) -> bool {
        self.user == BOT_USER
    }

    /// As `conversations.history` returns it.
    fn to_json(&self, with_metadata: bool, reply_count: usize) -> Value {
        let mut m =
            json!({ "type": "message", "user": self.user, "text": self.text, "ts": self.ts });
        if self.is_bot() {
            m["bot_id"] = json!(BOT_ID);
            m["app_id"] = json!(APP_ID);
        }
        if let Some(blocks) = &self.blocks {
            m["blocks"] = blocks.clone();
        }
        if let Some(t) = &self.thread_ts {
            m["thread_ts"] = json!(t);
        }
        if reply_count > 0 {
            m["thread_ts"] = json!(self.ts);
            m["reply_count"] = json!(reply_count);
        }
        if with_metadata && let Some(meta) = &self.metadata {
            m["metadata"] = meta.clone();
        }
        if self.edited {
            m["edited"] = json!({ "user": self.user });
        }
        if self.reply_broadcast {
            m["subtype"] = json!("thread_broadcast");
        }
        m
    }

    fn is_reply(&self) -> bool {
        self.thread_ts.as_deref().is_some_and(|t| t != self.ts)
    }
}

#[derive(Debug, Clone)]
struct Conversation {
    id: String,
    name: String,
    im_user: Option<String>,
    bot_member: bool,
    messages: Vec<Message>,
}

impl Conversation {
    fn reply_count(&self, ts: &str) -> usize {
        self.messages
            .iter()
            .filter(|m| m.is_reply() && m.thread_ts.as_deref() == Some(ts))
            .count()
    }
}

#[derive(Debug, Clone)]
struct Ephemeral {
    channel: String,
    user: String,
    ts: String,
    text: String,
    blocks: Option<Value>,
}

#[derive(Debug, Clone)]
struct View {
    id: String,
    user: String,
    body: Value,
    hash: String,
    errors: Option<Value>,
    root_view_id: String,
}

impl View {
    fn to_json(&self) -> Value {
        let mut v = self.body.clone();
        if let Some(map) = v.as_object_mut() {
            map.insert("id".to_owned(), json!(self.id));
            map.insert("team_id".to_owned(), json!(TEAM));
            map.insert("app_id".to_owned(), json!(APP_ID));
            map.insert("bot_id".to_owned(), json!(BOT_ID));
            map.insert("hash".to_owned(), json!(self.hash));
            map.insert("root_view_id".to_owned(), json!(self.root_view_id));
            map.entry("private_metadata").or_insert(json!(""));
            map.entry("callback_id").or_insert(json!(""));
            map.entry("state").or_insert(json!({ "values": {} }));
        }
        v
    }
}

#[derive(Debug, Clone)]
struct Trigger {
    user: String,
    issued: Instant,
    used: bool,
}

#[derive(Debug, Clone)]
struct Hook {
    target: HookTarget,
    uses: u32,
    issued: Instant,
}

#[derive(Debug)]
struct Model {
    options: Options,
    people: Vec<Person>,
    conversations: Vec<Conversation>,
    ephemerals: Vec<Ephemeral>,
    views: HashMap<String, View>,
    stacks: HashMap<String, Vec<String>>,
    homes: HashMap<String, String>,
    triggers: HashMap<String, Trigger>,
    hooks: HashMap<String, Hook>,
    ts_counter: u64,
    last_micros: u64,
    id_counter: u64,
    log: VecDeque<LogEntry>,
}

/// The DM conversation id Slack reports for a person: `U0BOB` → `D0BOB`.
pub fn dm_id(user: &str) -> String {
    match user.strip_prefix(['U', 'W']) {
        Some(rest) => format!("D{rest}"),
        None => format!("D{user}"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A Slack `ts` as a comparable (seconds, microseconds) pair; `None` if it
/// is not one.
pub fn parse_ts(ts: &str) -> Option<(u64, u64)> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    if frac.len() > 6 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let micros: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Some((secs, micros))
}

/// A message's `text`, `blocks` and `metadata`.
type Content = (Option<String>, Option<Value>, Option<Value>);

/// The arguments of a call, from the query, a form body or a JSON body.
#[derive(Debug, Default)]
struct Args(Map<String, Value>);

impl Args {
    fn from_request(req: &WebRequest<'_>, json_allowed: bool) -> Self {
        let mut map = Map::new();
        let add_pairs = |raw: &[u8], map: &mut Map<String, Value>| {
            if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw) {
                for (k, v) in pairs {
                    map.insert(k, Value::String(v));
                }
            }
        };
        if let Some(q) = req.query {
            add_pairs(q.as_bytes(), &mut map);
        }
        let ct = req.content_type.unwrap_or_default();
        if ct.starts_with("application/json") {
            if json_allowed
                && let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(req.body)
            {
                map.extend(body);
            }
        } else if !req.body.is_empty() {
            add_pairs(req.body, &mut map);
        }
        Self(map)
    }

    /// A string argument (numbers and booleans as text); blank = absent.
    fn str(&self, k: &str) -> Option<String> {
        match self.0.get(k)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn bool(&self, k: &str) -> bool {
        match self.0.get(k) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.as_str(), "true" | "1"),
            Some(Value::Number(n)) => n.as_u64() == Some(1),
            _ => false,
        }
    }

    /// A JSON argument: given as JSON, or as a string holding JSON (forms).
    fn json(&self, k: &str) -> Result<Option<Value>, ()> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
            Some(v) => Ok(Some(v.clone())),
        }
    }
}

/// The in-memory Slack. Clones share one workspace.
#[derive(Debug, Clone)]
pub struct SlackStandIn {
    model: Arc<Mutex<Model>>,
    changes: Arc<watch::Sender<u64>>,
}

impl SlackStandIn {
    /// An empty workspace with `options`.
    pub fn new(options: Options) -> Self {
        let model = Model {
            options,
            people: Vec::new(),
            conversations: Vec::new(),
            ephemerals: Vec::new(),
            views: HashMap::new(),
            stacks: HashMap::new(),
            homes: HashMap::new(),
            triggers: HashMap::new(),
            hooks: HashMap::new(),
            ts_counter: 0,
            last_micros: 0,
            id_counter: 0,
            log: VecDeque::new(),
        };
        let (tx, _) = watch::channel(0);
        Self {
            model: Arc::new(Mutex::new(model)),
            changes: Arc::new(tx),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        // A panic while holding the lock leaves the data usable for reads.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Wakes on every change (the value is a version counter).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The current version (bumped on every change).
    pub fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Adds a person (or replaces one with the same id).
    pub fn add_person(&self, person: Person) {
        let mut m = self.lock();
        m.people.retain(|p| p.id != person.id);
        m.people.push(person);
        drop(m);
        self.changed();
    }

    /// Adds a channel (`C…`) named `name`; `bot_member` says whether the bot
    /// was invited (else posts are answered `not_in_channel`).
    pub fn add_channel(&self, id: &str, name: &str, bot_member: bool) {
        let mut m = self.lock();
        if let Some(c) = m.conversations.iter_mut().find(|c| c.id == id) {
            c.name = name.to_owned();
            c.bot_member = bot_member;
        } else {
            m.conversations.push(Conversation {
                id: id.to_owned(),
                name: name.to_owned(),
                im_user: None,
                bot_member,
                messages: Vec::new(),
            });
        }
        drop(m);
        self.changed();
    }

    /// The name of a conversation (`coffee`; `directmessage` for a DM), if
    /// it exists (a person's DM always does).
    pub fn conversation_name(&self, id: &str) -> Option<String> {
        let m = self.lock();
        if let Some(c) = m.conversations.iter().find(|c| c.id == id) {
            return Some(if c.im_user.is_some() {
                "directmessage".to_owned()
            } else {
                c.name.clone()
            });
        }
        m.people
            .iter()
            .any(|p| dm_id(&p.id) == id)
            .then(|| "directmessage".to_owned())
    }

    /// Invites the bot to a channel (or removes it).
    pub fn set_bot_member(&self, channel: &str, member: bool) -> bool {
        let mut m = self.lock();
        let found = m
            .conversations
            .iter_mut()
            .find(|c| c.id == channel)
            .map(|c| c.bot_member = member)
            .is_some();
        drop(m);
        self.changed();
        found
    }

    /// Makes `users.info` report `user` as a workspace admin (or not);
    /// adds an unknown user in lenient mode.
    pub fn set_workspace_admin(&self, user: &str, admin: bool) {
        let mut m = self.lock();
        match m.people.iter_mut().find(|p| p.id == user) {
            Some(p) => p.is_admin = admin,
            None => {
                let name = user.to_lowercase();
                m.people.push(Person {
                    is_admin: admin,
                    ..Person::new(user, &name, user)
                });
            }
        }
        drop(m);
        self.changed();
    }

    /// The people, in the order added.
    pub fn people(&self) -> Vec<Person> {
        self.lock().people.clone()
    }

    /// A fresh `trigger_id` for a click or command by `user`: exchangeable
    /// once, for [`TRIGGER_LIFETIME`].
    pub fn issue_trigger_id(&self, user: &str) -> String {
        let mut m = self.lock();
        let n = m.next_id();
        let id = format!("{n}.{}.{}", now_ms(), uuid::Uuid::new_v4().simple());
        m.triggers.insert(
            id.clone(),
            Trigger {
                user: user.to_owned(),
                issued: Instant::now(),
                used: false,
            },
        );
        id
    }

    /// Makes a `trigger_id` older by `by`, as if time had passed (tests).
    pub fn age_trigger_id(&self, id: &str, by: Duration) {
        if let Some(t) = self.lock().triggers.get_mut(id) {
            t.issued = t.issued.checked_sub(by).unwrap_or(t.issued);
        }
    }

    /// A fresh response-URL token whose posts go to `target`; the server
    /// serves it at `/response/{token}`.
    pub fn issue_response_token(&self, target: HookTarget) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.lock().hooks.insert(
            token.clone(),
            Hook {
                target,
                uses: 0,
                issued: Instant::now(),
            },
        );
        token
    }

    /// Adds a line to the traffic log (the playground's own requests).
    pub fn log(
        &self,
        direction: &'static str,
        what: impl Into<String>,
        outcome: impl Into<String>,
    ) {
        self.lock()
            .log_entry(direction, what.into(), outcome.into());
        self.changed();
    }

    /// Answers one Web API call.
    pub fn web_api(&self, req: &WebRequest<'_>) -> WebAnswer {
        // Slack ignores JSON bodies for users.info: only form or query.
        let args = Args::from_request(req, req.method != "users.info");
        let mut m = self.lock();
        let answer = m.dispatch(req, &args);
        let outcome = match answer.error_code() {
            Some(e) => format!("ok: false, {e}"),
            None => "ok".to_owned(),
        };
        let what = describe_call(req.method, &args);
        m.log_entry("bot → Slack", what, outcome);
        drop(m);
        self.changed();
        answer
    }

    /// Answers a post to the response URL `token`.
    pub fn respond(&self, token: &str, body: &[u8]) -> HookAnswer {
        let mut m = self.lock();
        let answer = m.respond(token, body);
        m.log_entry(
            "bot → response_url",
            "response_url".to_owned(),
            format!("{} {}", answer.status, answer.body),
        );
        drop(m);
        self.changed();
        answer
    }

    /// Delivers a slash command's immediate answer (the HTTP response body)
    /// as Slack shows it: like a response-URL post that uses nothing up.
    pub fn deliver_command_answer(&self, target: &HookTarget, body: &Value) -> Result<(), Refusal> {
        let r = self.lock().deliver(target, body, false);
        self.changed();
        r
    }

    /// Posts a person's own message (what they type without a slash).
    pub fn post_as(&self, channel: &str, user: &str, text: &str) -> Result<String, &'static str> {
        let mut m = self.lock();
        let ts = m.next_ts();
        let conv = m
            .conversations
            .iter_mut()
            .find(|c| c.id == channel)
            .ok_or("channel_not_found")?;
        conv.messages.push(Message {
            ts: ts.clone(),
            user: user.to_owned(),
            text: text.to_owned(),
            blocks: None,
            thread_ts: None,
            metadata: None,
            edited: false,
            reply_broadcast: false,
        });
        drop(m);
        self.changed();
        Ok(ts)
    }

    /// A channel's (or DM's) messages, oldest first, thread replies
    /// included, after every update, each as `conversations.history`
    /// returns it (with `metadata`).
    pub fn messages(&self, channel: &str) -> Vec<Value> {
        let m = self.lock();
        let Some(conv) = m.conversations.iter().find(|c| c.id == channel) else {
            return Vec::new();
        };
        conv.messages
            .iter()
            .map(|msg| msg.to_json(true, conv.reply_count(&msg.ts)))
            .collect()
    }

    /// The messages of `user`'s DM with the bot (see [`Self::messages`]).
    pub fn dm_messages(&self, user: &str) -> Vec<Value> {
        self.messages(&dm_id(user))
    }

    /// The ephemerals `user` was shown in `channel`, oldest first.
    pub fn ephemerals(&self, channel: &str, user: &str) -> Vec<Value> {
        self.lock()
            .ephemerals
            .iter()
            .filter(|e| e.channel == channel && e.user == user)
            .map(|e| json!({ "ts": e.ts, "text": e.text, "blocks": e.blocks }))
            .collect()
    }

    /// The view on top of `user`'s modal stack, with any inline errors.
    pub fn open_modal(&self, user: &str) -> Option<Value> {
        let m = self.lock();
        let id = m.stacks.get(user)?.last()?;
        let view = m.views.get(id)?;
        let mut v = view.to_json();
        if let Some(errors) = &view.errors {
            v["errors"] = errors.clone();
        }
        Some(v)
    }

    /// `user`'s App Home, once published.
    pub fn home(&self, user: &str) -> Option<Value> {
        let m = self.lock();
        m.homes
            .get(user)
            .and_then(|id| m.views.get(id))
            .map(View::to_json)
    }

    /// A message or ephemeral as the stand-in holds it (for building a click
    /// payload): `{ts, text, blocks, user, ephemeral}`.
    pub fn find_message(&self, channel: &str, ts: &str, viewer: &str) -> Option<Value> {
        let m = self.lock();
        if let Some(msg) = m
            .conversations
            .iter()
            .find(|c| c.id == channel)
            .and_then(|c| c.messages.iter().find(|msg| msg.ts == ts))
        {
            let mut v = msg.to_json(false, 0);
            v["ephemeral"] = json!(false);
            return Some(v);
        }
        m.ephemerals
            .iter()
            .find(|e| e.channel == channel && e.ts == ts && e.user == viewer)
            .map(|e| json!({ "type": "message", "ts": e.ts, "text": e.text, "blocks": e.blocks, "user": BOT_USER, "ephemeral": true }))
    }

    /// A stored view by id, as Slack would send it back in a payload.
    pub fn view(&self, id: &str) -> Option<(String, Value)> {
        let m = self.lock();
        m.views.get(id).map(|v| (v.user.clone(), v.to_json()))
    }

    /// Applies CoffeeBuddy's answer to a `view_submission` of `view_id`:
    /// none or empty closes the view; `response_action` `errors` shows them
    /// inline; `update` replaces it; `push` stacks a new one; `clear` closes
    /// every view. An answer Slack would not accept is reported and leaves
    /// the view open.
    pub fn apply_submission_answer(
        &self,
        user: &str,
        view_id: &str,
        answer: Option<&Value>,
    ) -> Result<(), String> {
        let mut m = self.lock();
        let result = m.apply_submission_answer(user, view_id, answer);
        drop(m);
        self.changed();
        result
    }

    /// Closes `view_id` (the person pressed Cancel or ×). Returns whether the
    /// app asked to hear about it (`notify_on_close`).
    pub fn close_view(&self, user: &str, view_id: &str) -> bool {
        let mut m = self.lock();
        let notify = m
            .views
            .get(view_id)
            .is_some_and(|v| v.body.get("notify_on_close") == Some(&json!(true)));
        if let Some(stack) = m.stacks.get_mut(user) {
            stack.retain(|id| id != view_id);
        }
        drop(m);
        self.changed();
        notify
    }

    /// Everything the playground page shows `viewer`, as JSON.
    pub fn snapshot(&self, viewer: &str) -> Value {
        let version = self.version();
        let m = self.lock();
        let render = |conv: &Conversation| -> Value {
            let mut items: Vec<(String, Value)> = Vec::new();
            for msg in conv.messages.iter().filter(|msg| !msg.is_reply()) {
                let mut v = msg.to_json(false, 0);
                let replies: Vec<Value> = conv
                    .messages
                    .iter()
                    .filter(|r| r.is_reply() && r.thread_ts.as_deref() == Some(msg.ts.as_str()))
                    .map(|r| r.to_json(false, 0))
                    .collect();
                v["replies"] = Value::Array(replies);
                items.push((msg.ts.clone(), v));
            }
            for e in m
                .ephemerals
                .iter()
                .filter(|e| e.channel == conv.id && e.user == viewer)
            {
                items.push((
                    e.ts.clone(),
                    json!({ "type": "message", "ts": e.ts, "user": BOT_USER, "bot_id": BOT_ID, "text": e.text, "blocks": e.blocks, "ephemeral": true, "replies": [] }),
                ));
            }
            items.sort_by_key(|(ts, _)| parse_ts(ts).unwrap_or_default());
            json!({
                "id": conv.id,
                "name": conv.name,
                "bot_member": conv.bot_member,
                "messages": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            })
        };
        let channels: Vec<Value> = m
            .conversations
            .iter()
            .filter(|c| c.im_user.is_none())
            .map(render)
            .collect();
        let dm_id = dm_id(viewer);
        let dm = m.conversations.iter().find(|c| c.id == dm_id).map_or_else(
            || json!({ "id": dm_id, "name": BOT_NAME, "bot_member": true, "messages": [] }),
            render,
        );
        let modal = m
            .stacks
            .get(viewer)
            .and_then(|s| s.last())
            .and_then(|id| m.views.get(id))
            .map(|view| {
                let mut v = view.to_json();
                if let Some(errors) = &view.errors {
                    v["errors"] = errors.clone();
                }
                v
            });
        let home = m
            .homes
            .get(viewer)
            .and_then(|id| m.views.get(id))
            .map(View::to_json);
        let people: Vec<Value> = m
            .people
            .iter()
            .map(|p| json!({ "id": p.id, "name": p.name, "real_name": p.real_name, "is_admin": p.is_admin }))
            .collect();
        let log: Vec<Value> = m
            .log
            .iter()
            .rev()
            .take(80)
            .map(|e| json!({ "at_ms": e.at_ms, "direction": e.direction, "what": e.what, "outcome": e.outcome }))
            .collect();
        json!({
            "version": version,
            "me": viewer,
            "team": TEAM,
            "bot": { "id": BOT_USER, "name": BOT_NAME },
            "people": people,
            "channels": channels,
            "dm": dm,
            "modal": modal,
            "home": home,
            "log": log,
        })
    }
}

/// A one-line description of a call for the traffic log (no tokens).
fn describe_call(method: &str, args: &Args) -> String {
    let mut parts = vec![method.to_owned()];
    for key in [
        "channel",
        "user",
        "user_id",
        "users",
        "ts",
        "thread_ts",
        "view_id",
    ] {
        if let Some(v) = args.str(key) {
            parts.push(format!("{key}={v}"));
        }
    }
    parts.join(" ")
}

impl Model {
    fn next_id(&mut self) -> u64 {
        self.id_counter = self.id_counter.saturating_add(1);
        self.id_counter
    }

    /// A fresh message `ts`, strictly increasing.
    fn next_ts(&mut self) -> String {
        if self.options.sequential_ts {
            self.ts_counter = self.ts_counter.saturating_add(1);
            let n = self.ts_counter;
            return format!("{}.{:06}", 1_700_000_000 + n / 10_000, (n % 10_000) * 100);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let micros = now.max(self.last_micros.saturating_add(1));
        self.last_micros = micros;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    fn log_entry(&mut self, direction: &'static str, what: String, outcome: String) {
        if self.log.len() >= LOG_ENTRIES {
            self.log.pop_front();
        }
        self.log.push_back(LogEntry {
            at_ms: now_ms(),
            direction,
            what,
            outcome,
        });
    }

    fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    fn user_known(&self, id: &str) -> bool {
        id == BOT_USER || self.person(id).is_some() || self.options.lenient
    }

    /// The conversation a `channel` argument names: a `D…`/`C…`/`G…` id, or
    /// a user id for their DM (opened on first use).
    fn conversation_index(
        &mut self,
        channel: &str,
        allow_user: bool,
    ) -> Result<usize, &'static str> {
        let looks_like_user = channel.starts_with(['U', 'W']);
        let id = if looks_like_user {
            if !allow_user {
                return Err("channel_not_found");
            }
            if !self.user_known(channel) {
                return Err("channel_not_found");
            }
            dm_id(channel)
        } else {
            channel.to_owned()
        };
        if let Some(i) = self.conversations.iter().position(|c| c.id == id) {
            return Ok(i);
        }
        // A DM of a known person exists as soon as someone writes to it.
        let im_user = if looks_like_user {
            Some(channel.to_owned())
        } else if let Some(rest) = id.strip_prefix('D') {
            let user = format!("U{rest}");
            self.user_known(&user).then_some(user)
        } else {
            None
        };
        if im_user.is_none() && !(self.options.lenient && id.starts_with(['C', 'G', 'D'])) {
            return Err("channel_not_found");
        }
        self.conversations.push(Conversation {
            name: id.clone(),
            id,
            im_user,
            bot_member: true,
            messages: Vec::new(),
        });
        Ok(self.conversations.len() - 1)
    }

    fn authorize(&self, req: &WebRequest<'_>, args: &Args) -> Result<(), WebAnswer> {
        let token = req
            .authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned)
            .or_else(|| args.str("token"));
        match (token, &self.options.bot_token) {
            (None, _) => Err(WebAnswer::error("not_authed")),
            (Some(t), Some(expected)) if &t != expected => Err(WebAnswer::error("invalid_auth")),
            _ => Ok(()),
        }
    }

    fn dispatch(&mut self, req: &WebRequest<'_>, args: &Args) -> WebAnswer {
        if let Err(answer) = self.authorize(req, args) {
            return answer;
        }
        match req.method {
            "chat.postMessage" => self.post_message(args),
            "chat.update" => self.update_message(args),
            "chat.postEphemeral" => self.post_ephemeral(args),
            "chat.delete" => self.delete_message(args),
            "views.open" => self.open_view(args, false),
            "views.push" => self.open_view(args, true),
            "views.update" => self.update_view(args),
            "views.publish" => self.publish_view(args),
            "users.info" => self.users_info(args),
            "conversations.open" => self.conversations_open(args),
            "conversations.history" => self.history(args),
            "conversations.replies" => self.replies(args),
            "auth.test" => WebAnswer::ok(
                json!({ "ok": true, "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "user": "coffeebuddy" }),
            ),
            _ => WebAnswer::error("unknown_method"),
        }
    }

    /// `text`, `blocks` and `metadata` of a message call, checked.
    fn message_content(args: &Args) -> Result<Content, WebAnswer> {
        let text = args.str("text");
        let blocks = args
            .json("blocks")
            .map_err(|()| WebAnswer::error("invalid_blocks_format"))?;
        checks::check_message(text.as_deref(), blocks.as_ref()).map_err(WebAnswer::refusal)?;
        let metadata = args
            .json("metadata")
            .map_err(|()| WebAnswer::error("invalid_metadata_format"))?;
        if let Some(meta) = &metadata {
            let well_formed = meta
                .get("event_type")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty())
                && meta.get("event_payload").is_some_and(Value::is_object);
            if !well_formed {
                return Err(WebAnswer::error("invalid_metadata_format"));
            }
        }
        Ok((text, blocks, metadata))
    }

    fn post_message(&mut self, args: &Args) -> WebAnswer {
        let Some(channel) = args.str("channel") else {
            return WebAnswer::error("channel_not_found");
        };
        let (text, blocks, metadata) = match Self::message_content(args) {
            Ok(content) => content,
            Err(answer) => return answer,
        };
        let i = match self.conversation_index(&channel, true) {
            Ok(i) => i,
            Err(e) => return WebAnswer::error(e),
        };
        if !self.conversations[i].bot_member {
            return WebAnswer::error("not_in_channel");
        }
        let ts = self.next_ts();
        let thread_ts = args.str("thread_ts");
        let conv = &mut self.conversations[i];
        // A reply to a reply joins the parent's thread, as in Slack.
        let thread_ts = thread_ts.map(|t| {
            conv.messages
                .iter()
                .find(|m| m.ts == t)
                .and_then(|m| m.thread_ts.clone())
                .unwrap_or(t)
        });
        if let Some(t) = &thread_ts
            && !self.options.lenient
            && !conv.messages.iter().any(|m| &m.ts == t)
        {
            return WebAnswer::error("thread_not_found");
        }
        let msg = Message {
            ts: ts.clone(),
            user: BOT_USER.to_owned(),
            text: text.unwrap_or_default(),
            blocks,
            thread_ts,
            metadata,
            edited: false,
            reply_broadcast: args.bool("reply_broadcast"),
        };
        let shown = msg.to_json(true, 0);
        conv.messages.push(msg);
        WebAnswer::ok(json!({ "ok": true, "channel": conv.id, "ts": ts, "message": shown }))
    }

    fn update_message(&mut self, args: &Args) -> WebAnswer {
        let (Some(channel), Some(ts)) = (args.str("channel"), args.str("ts")) else {
            return WebAnswer::error(if args.str("channel").is_none() {
                "channel_not_found"
            } else {
                "message_not_found"
            });
        };
        let (text, blocks, metadata) = match Self::message_content(args) {
            Ok(content) => content,
            Err(answer) => return answer,
        };
        let lenient = self.options.lenient;
        let i = match self.conversation_index(&channel, lenient) {
            Ok(i) => i,
            Err(e) => return WebAnswer::error(e),
        };
        let conv = &mut self.conversations[i];
        let Some(msg) = conv.messages.iter_mut().find(|m| m.ts == ts) else {
            if lenient {
                return WebAnswer::ok(
                    json!({ "ok": true, "channel": conv.id, "ts": ts, "text": text }),
                );
            }
            return WebAnswer::error("message_not_found");
        };
        if !msg.is_bot() {
            return WebAnswer::error("cant_update_message");
        }
        if let Some(text) = &text {
            msg.text.clone_from(text);
        }
        if blocks.is_some() {
            msg.blocks = blocks;
        }
        if metadata.is_some() {
            msg.metadata = metadata;
        }
        msg.edited = true;
        let shown = msg.to_json(true, 0);
        WebAnswer::ok(
            json!({ "ok": true, "channel": conv.id, "ts": ts, "text": msg.text, "message": shown }),
        )
    }

    fn delete_message(&mut self, args: &Args) -> WebAnswer {
        let (Some(channel), Some(ts)) = (args.str("channel"), args.str("ts")) else {
            return WebAnswer::error("message_not_found");
        };
        let Some(conv) = self.conversations.iter_mut().find(|c| c.id == channel) else {
            return WebAnswer::error("channel_not_found");
        };
        let before = conv.messages.len();
        conv.messages.retain(|m| m.ts != ts);
        if conv.messages.len() == before {
            return WebAnswer::error("message_not_found");
        }
        WebAnswer::ok(json!({ "ok": true, "channel": channel, "ts": ts }))
    }

    fn post_ephemeral(&mut self, args: &Args) -> WebAnswer {
        let Some(channel) = args.str("channel") else {
            return WebAnswer::error("channel_not_found");
        };
        let Some(user) = args.str("user").filter(|u| self.user_known(u)) else {
            return WebAnswer::error("user_not_found");
        };
        let (text, blocks, _) = match Self::message_content(args) {
            Ok(content) => content,
            Err(answer) => return answer,
        };
        let i = match self.conversation_index(&channel, true) {
            Ok(i) => i,
            Err(e) => return WebAnswer::error(e),
        };
        if !self.conversations[i].bot_member {
            return WebAnswer::error("not_in_channel");
        }
        let channel = self.conversations[i].id.clone();
        let ts = self.next_ts();
        self.ephemerals.push(Ephemeral {
            channel,
            user,
            ts: ts.clone(),
            text: text.unwrap_or_default(),
            blocks,
        });
        WebAnswer::ok(json!({ "ok": true, "message_ts": ts }))
    }

    /// Exchanges a `trigger_id`: whose it is, or Slack's error.
    fn exchange_trigger(&mut self, trigger_id: Option<String>) -> Result<String, WebAnswer> {
        let Some(trigger_id) = trigger_id else {
            return Err(WebAnswer::refusal(Refusal::new(
                "invalid_arguments",
                "missing required field: trigger_id",
            )));
        };
        match self.triggers.get_mut(&trigger_id) {
            Some(t) if t.used => Err(WebAnswer::error("exchanged_trigger_id")),
            Some(t) if t.issued.elapsed() > TRIGGER_LIFETIME => {
                Err(WebAnswer::error("expired_trigger_id"))
            }
            Some(t) => {
                t.used = true;
                Ok(t.user.clone())
            }
            None if self.options.lenient => Ok(String::new()),
            None => Err(WebAnswer::error("invalid_trigger_id")),
        }
    }

    fn new_view(&mut self, user: &str, body: Value, root: Option<String>) -> View {
        let n = self.next_id();
        let id = format!("V{n:08}");
        View {
            root_view_id: root.unwrap_or_else(|| id.clone()),
            id,
            user: user.to_owned(),
            body,
            hash: format!("{}.{n}", now_ms()),
            errors: None,
        }
    }

    fn view_arg(args: &Args) -> Result<Value, WebAnswer> {
        match args.json("view") {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(WebAnswer::refusal(Refusal::new(
                "invalid_arguments",
                "missing required field: view",
            ))),
            Err(()) => Err(WebAnswer::refusal(Refusal::new(
                "invalid_arguments",
                "`view` is not valid JSON",
            ))),
        }
    }

    fn open_view(&mut self, args: &Args, push: bool) -> WebAnswer {
        let view = match Self::view_arg(args) {
            Ok(v) => v,
            Err(a) => return a,
        };
        if let Err(r) = checks::check_view(&view, "modal") {
            return WebAnswer::refusal(r);
        }
        let user = match self.exchange_trigger(args.str("trigger_id")) {
            Ok(user) => user,
            Err(a) => return a,
        };
        let stack_len = self.stacks.get(&user).map_or(0, Vec::len);
        if push && stack_len >= MAX_VIEW_STACK {
            return WebAnswer::error("push_limit_reached");
        }
        let root = if push {
            self.stacks.get(&user).and_then(|s| s.first().cloned())
        } else {
            None
        };
        let view = self.new_view(&user, view, root);
        let shown = view.to_json();
        let stack = self.stacks.entry(user).or_default();
        if !push {
            stack.clear();
        }
        stack.push(view.id.clone());
        self.views.insert(view.id.clone(), view);
        WebAnswer::ok(json!({ "ok": true, "view": shown }))
    }

    fn update_view(&mut self, args: &Args) -> WebAnswer {
        let view = match Self::view_arg(args) {
            Ok(v) => v,
            Err(a) => return a,
        };
        let id = match (args.str("view_id"), args.str("external_id")) {
            (Some(id), _) => Some(id),
            (None, Some(ext)) => self
                .views
                .values()
                .find(|v| v.body.get("external_id").and_then(Value::as_str) == Some(ext.as_str()))
                .map(|v| v.id.clone()),
            (None, None) => {
                return WebAnswer::refusal(Refusal::new(
                    "invalid_arguments",
                    "view_id or external_id is required",
                ));
            }
        };
        let Some(existing) = id.and_then(|id| self.views.get_mut(&id)) else {
            return WebAnswer::error("not_found");
        };
        let kind = existing
            .body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("modal")
            .to_owned();
        if let Err(r) = checks::check_view(&view, &kind) {
            return WebAnswer::refusal(r);
        }
        if let Some(hash) = args.str("hash")
            && hash != existing.hash
        {
            return WebAnswer::error("hash_conflict");
        }
        existing.body = view;
        existing.errors = None;
        existing.hash = format!("{}.u", now_ms());
        let shown = existing.to_json();
        WebAnswer::ok(json!({ "ok": true, "view": shown }))
    }

    fn publish_view(&mut self, args: &Args) -> WebAnswer {
        let Some(user) = args.str("user_id") else {
            return WebAnswer::refusal(Refusal::new(
                "invalid_arguments",
                "missing required field: user_id",
            ));
        };
        if !self.user_known(&user) {
            return WebAnswer::error("user_not_found");
        }
        let view = match Self::view_arg(args) {
            Ok(v) => v,
            Err(a) => return a,
        };
        if let Err(r) = checks::check_view(&view, "home") {
            return WebAnswer::refusal(r);
        }
        if let Some(existing) = self.homes.get(&user).and_then(|id| self.views.get(id))
            && let Some(hash) = args.str("hash")
            && hash != existing.hash
        {
            return WebAnswer::error("hash_conflict");
        }
        let view = match self.homes.get(&user).cloned() {
            Some(id) => {
                let n = self.next_id();
                let Some(existing) = self.views.get_mut(&id) else {
                    return WebAnswer::error("internal_error");
                };
                existing.body = view;
                existing.hash = format!("{}.{n}", now_ms());
                existing.clone()
            }
            None => {
                let v = self.new_view(&user, view, None);
                self.homes.insert(user, v.id.clone());
                self.views.insert(v.id.clone(), v.clone());
                v
            }
        };
        WebAnswer::ok(json!({ "ok": true, "view": view.to_json() }))
    }

    fn users_info(&mut self, args: &Args) -> WebAnswer {
        let Some(user) = args.str("user") else {
            return WebAnswer::error("user_not_found");
        };
        let person = match self.person(&user) {
            Some(p) => p.clone(),
            None if self.options.lenient => Person::new(&user, &user.to_lowercase(), &user),
            None => return WebAnswer::error("user_not_found"),
        };
        WebAnswer::ok(json!({ "ok": true, "user": {
            "id": person.id,
            "team_id": TEAM,
            "name": person.name,
            "real_name": person.real_name,
            "deleted": false,
            "is_admin": person.is_admin,
            "is_owner": false,
            "is_primary_owner": false,
            "is_bot": false,
            "tz": "UTC",
            "profile": { "display_name": person.name, "real_name": person.real_name },
        } }))
    }

    fn conversations_open(&mut self, args: &Args) -> WebAnswer {
        if let Some(channel) = args.str("channel") {
            return match self.conversation_index(&channel, false) {
                Ok(i) => WebAnswer::ok(
                    json!({ "ok": true, "channel": { "id": self.conversations[i].id } }),
                ),
                Err(e) => WebAnswer::error(e),
            };
        }
        let Some(users) = args.str("users") else {
            return WebAnswer::error("users_list_not_supplied");
        };
        let users: Vec<&str> = users
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        match users.as_slice() {
            [user] => match self.conversation_index(user, true) {
                Ok(i) => WebAnswer::ok(
                    json!({ "ok": true, "channel": { "id": self.conversations[i].id } }),
                ),
                Err(_) => WebAnswer::error("user_not_found"),
            },
            [] => WebAnswer::error("users_list_not_supplied"),
            _ => WebAnswer::error("not_enough_users"),
        }
    }

    fn readable_conversation(&mut self, args: &Args) -> Result<usize, WebAnswer> {
        let Some(channel) = args.str("channel") else {
            return Err(WebAnswer::error("channel_not_found"));
        };
        if channel.starts_with(['U', 'W']) {
            return Err(WebAnswer::error("channel_not_found"));
        }
        let i = self
            .conversation_index(&channel, false)
            .map_err(WebAnswer::error)?;
        if !self.conversations[i].bot_member {
            return Err(WebAnswer::error("not_in_channel"));
        }
        Ok(i)
    }

    fn history(&mut self, args: &Args) -> WebAnswer {
        let i = match self.readable_conversation(args) {
            Ok(i) => i,
            Err(a) => return a,
        };
        let bound = |k: &str| -> Result<Option<(u64, u64)>, WebAnswer> {
            match args.str(k) {
                None => Ok(None),
                Some(v) => parse_ts(&v)
                    .map(Some)
                    .ok_or_else(|| WebAnswer::error("invalid_ts_oldest")),
            }
        };
        let (oldest, latest) = match (bound("oldest"), bound("latest")) {
            (Ok(o), Ok(l)) => (o, l),
            (Err(a), _) | (_, Err(a)) => return a,
        };
        let inclusive = args.bool("inclusive");
        let limit = args
            .str("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .unwrap_or(100)
            .min(999);
        let with_metadata = args.bool("include_all_metadata");
        let conv = &self.conversations[i];
        let mut matching: Vec<&Message> = conv
            .messages
            .iter()
            .filter(|m| !m.is_reply() || m.reply_broadcast)
            .filter(|m| {
                let Some(ts) = parse_ts(&m.ts) else {
                    return false;
                };
                let after = oldest.is_none_or(|o| if inclusive { ts >= o } else { ts > o });
                let before = latest.is_none_or(|l| if inclusive { ts <= l } else { ts < l });
                after && before
            })
            .collect();
        matching.reverse(); // newest first, as Slack answers
        let has_more = matching.len() > limit;
        let messages: Vec<Value> = matching
            .into_iter()
            .take(limit)
            .map(|m| m.to_json(with_metadata, conv.reply_count(&m.ts)))
            .collect();
        WebAnswer::ok(
            json!({ "ok": true, "messages": messages, "has_more": has_more, "pin_count": 0 }),
        )
    }

    fn replies(&mut self, args: &Args) -> WebAnswer {
        let i = match self.readable_conversation(args) {
            Ok(i) => i,
            Err(a) => return a,
        };
        let Some(ts) = args.str("ts") else {
            return WebAnswer::error("thread_not_found");
        };
        let with_metadata = args.bool("include_all_metadata");
        let conv = &self.conversations[i];
        let Some(parent) = conv.messages.iter().find(|m| m.ts == ts) else {
            return WebAnswer::error("thread_not_found");
        };
        let mut messages = vec![parent.to_json(with_metadata, conv.reply_count(&parent.ts))];
        messages.extend(
            conv.messages
                .iter()
                .filter(|m| m.is_reply() && m.thread_ts.as_deref() == Some(ts.as_str()))
                .map(|m| m.to_json(with_metadata, 0)),
        );
        WebAnswer::ok(json!({ "ok": true, "messages": messages, "has_more": false }))
    }

    fn respond(&mut self, token: &str, body: &[u8]) -> HookAnswer {
        let answer = |status: u16, body: &str, refused: bool| HookAnswer {
            status,
            body: body.to_owned(),
            refused,
        };
        let Some(hook) = self.hooks.get(token).cloned() else {
            return if self.options.lenient {
                answer(200, "ok", false)
            } else {
                answer(404, "expired_url", false)
            };
        };
        if hook.issued.elapsed() > RESPONSE_URL_LIFETIME {
            return answer(404, "expired_url", false);
        }
        if hook.uses >= RESPONSE_URL_USES {
            return answer(404, "used_url", false);
        }
        let Ok(payload) = serde_json::from_slice::<Value>(body) else {
            return answer(400, "invalid_payload", true);
        };
        if let Some(h) = self.hooks.get_mut(token) {
            h.uses = h.uses.saturating_add(1);
        }
        match self.deliver(&hook.target, &payload, true) {
            Ok(()) => answer(200, "ok", false),
            Err(r) => answer(400, r.error, true),
        }
    }

    /// Shows a response (`response_url` post or a command's immediate
    /// answer) as Slack does.
    fn deliver(
        &mut self,
        target: &HookTarget,
        payload: &Value,
        may_replace: bool,
    ) -> Result<(), Refusal> {
        let flag = |k: &str| {
            matches!(payload.get(k), Some(Value::Bool(true)))
                || payload.get(k).and_then(Value::as_str) == Some("true")
        };
        if may_replace && flag("delete_original") {
            if let Some(ts) = &target.message_ts {
                if target.ephemeral {
                    self.ephemerals
                        .retain(|e| !(&e.ts == ts && e.user == target.user));
                } else if let Some(conv) = self
                    .conversations
                    .iter_mut()
                    .find(|c| c.id == target.channel)
                {
                    conv.messages.retain(|m| &m.ts != ts);
                }
            }
            return Ok(());
        }
        let text = payload
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let blocks = payload.get("blocks").cloned().filter(|b| !b.is_null());
        checks::check_message(text.as_deref(), blocks.as_ref())?;
        if may_replace
            && flag("replace_original")
            && let Some(ts) = &target.message_ts
        {
            if target.ephemeral {
                if let Some(e) = self
                    .ephemerals
                    .iter_mut()
                    .find(|e| &e.ts == ts && e.user == target.user)
                {
                    e.text = text.unwrap_or_default();
                    e.blocks = blocks;
                }
            } else if let Some(m) = self
                .conversations
                .iter_mut()
                .find(|c| c.id == target.channel)
                .and_then(|c| c.messages.iter_mut().find(|m| &m.ts == ts))
            {
                m.text = text.unwrap_or_default();
                m.blocks = blocks;
                m.edited = true;
            }
            return Ok(());
        }
        let ts = self.next_ts();
        if payload.get("response_type").and_then(Value::as_str) == Some("in_channel") {
            let thread_ts = payload
                .get("thread_ts")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(conv) = self
                .conversations
                .iter_mut()
                .find(|c| c.id == target.channel)
            {
                conv.messages.push(Message {
                    ts,
                    user: BOT_USER.to_owned(),
                    text: text.unwrap_or_default(),
                    blocks,
                    thread_ts,
                    metadata: None,
                    edited: false,
                    reply_broadcast: false,
                });
            }
        } else {
            self.ephemerals.push(Ephemeral {
                channel: target.channel.clone(),
                user: target.user.clone(),
                ts,
                text: text.unwrap_or_default(),
                blocks,
            });
        }
        Ok(())
    }

    fn apply_submission_answer(
        &mut self,
        user: &str,
        view_id: &str,
        answer: Option<&Value>,
    ) -> Result<(), String> {
        let stack = self.stacks.entry(user.to_owned()).or_default();
        let action = answer
            .and_then(|a| a.get("response_action"))
            .and_then(Value::as_str);
        match (answer, action) {
            (None | Some(Value::Null), _) => {
                stack.retain(|id| id != view_id);
                Ok(())
            }
            (Some(a), _) if a.as_object().is_some_and(Map::is_empty) => {
                stack.retain(|id| id != view_id);
                Ok(())
            }
            (Some(a), Some("errors")) => {
                let errors = a
                    .get("errors")
                    .filter(|e| e.as_object().is_some_and(|m| !m.is_empty()));
                let Some(errors) = errors.cloned() else {
                    return Err("`response_action: errors` without any errors".to_owned());
                };
                let view = self.views.get_mut(view_id).ok_or("the view is gone")?;
                // Slack accepts errors only for input blocks of this view.
                let inputs: Vec<&str> = view
                    .body
                    .get("blocks")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("input"))
                    .filter_map(|b| b.get("block_id").and_then(Value::as_str))
                    .collect();
                if let Some(bad) = errors
                    .as_object()
                    .and_then(|m| m.keys().find(|k| !inputs.contains(&k.as_str())))
                {
                    return Err(format!(
                        "errors name `{bad}`, which is not an input block of this view"
                    ));
                }
                view.errors = Some(errors);
                Ok(())
            }
            (Some(a), Some("update")) => {
                let new = a.get("view").cloned().ok_or("`update` without a view")?;
                checks::check_view(&new, "modal")
                    .map_err(|r| format!("{}: {}", r.error, r.problems.join("; ")))?;
                let view = self.views.get_mut(view_id).ok_or("the view is gone")?;
                view.body = new;
                view.errors = None;
                Ok(())
            }
            (Some(a), Some("push")) => {
                let new = a.get("view").cloned().ok_or("`push` without a view")?;
                checks::check_view(&new, "modal")
                    .map_err(|r| format!("{}: {}", r.error, r.problems.join("; ")))?;
                if self.stacks.get(user).map_or(0, Vec::len) >= MAX_VIEW_STACK {
                    return Err("push_limit_reached".to_owned());
                }
                let root = self.stacks.get(user).and_then(|s| s.first().cloned());
                let view = self.new_view(user, new, root);
                self.stacks
                    .entry(user.to_owned())
                    .or_default()
                    .push(view.id.clone());
                self.views.insert(view.id.clone(), view);
                Ok(())
            }
            (Some(_), Some("clear")) => {
                stack.clear();
                Ok(())
            }
            (Some(other), _) => Err(format!(
                "Slack cannot read this answer to a view submission: {other}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_call(slack: &SlackStandIn, method: &str, body: Value) -> WebAnswer {
        let body = body.to_string();
        slack.web_api(&WebRequest {
            method,
            authorization: Some("Bearer xoxb-test"),
            content_type: Some("application/json; charset=utf-8"),
            query: None,
            body: body.as_bytes(),
        })
    }

    fn form_call(slack: &SlackStandIn, method: &str, form: &[(&str, &str)]) -> WebAnswer {
        let body = serde_urlencoded::to_string(form).expect("form");
        slack.web_api(&WebRequest {
            method,
            authorization: Some("Bearer xoxb-test"),
            content_type: Some("application/x-www-form-urlencoded"),
            query: None,
            body: body.as_bytes(),
        })
    }

    fn workspace() -> SlackStandIn {
        let slack = SlackStandIn::new(Options::strict(None));
        slack.add_person(Person::new("U0ALICE", "alice", "Alice"));
        slack.add_person(Person::new("U0BOB", "bob", "Bob").admin());
        slack.add_channel("C0COFFEE", "coffee", true);
        slack.add_channel("C0RANDOM", "random", false);
        slack
    }

    fn section(text: &str) -> Value {
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
    }

    fn modal() -> Value {
        json!({ "type": "modal", "title": { "type": "plain_text", "text": "Order" }, "blocks": [section("hi")] })
    }

    #[test]
    fn a_posted_message_is_stored_and_an_update_changes_it_in_place() {
        let slack = workspace();
        let posted = json_call(
            &slack,
            "chat.postMessage",
            json!({ "channel": "C0COFFEE", "text": "v1", "blocks": [section("one")] }),
        );
        assert_eq!(posted.body["ok"], true, "{:?}", posted.body);
        let ts = posted.body["ts"].as_str().expect("ts").to_owned();
        let updated = json_call(
            &slack,
            "chat.update",
            json!({ "channel": "C0COFFEE", "ts": ts, "text": "v2", "blocks": [section("two")] }),
        );
        assert_eq!(updated.body["ok"], true);
        let messages = slack.messages("C0COFFEE");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["text"], "v2");
        assert_eq!(messages[0]["blocks"][0]["text"]["text"], "two");
    }

    #[test]
    fn a_dm_to_a_user_id_lands_in_their_d_conversation_and_is_reported_as_such() {
        let slack = workspace();
        let posted = json_call(
            &slack,
            "chat.postMessage",
            json!({ "channel": "U0BOB", "text": "psst" }),
        );
        assert_eq!(posted.body["channel"], "D0BOB");
        assert_eq!(slack.dm_messages("U0BOB")[0]["text"], "psst");
        let opened = form_call(&slack, "conversations.open", &[("users", "U0BOB")]);
        assert_eq!(opened.body["channel"]["id"], "D0BOB");
    }

    #[test]
    fn oversized_messages_are_refused_like_slack_and_store_nothing() {
        let slack = workspace();
        let blocks: Vec<Value> = (0..51).map(|_| section("x")).collect();
        let too_many = json_call(
            &slack,
            "chat.postMessage",
            json!({ "channel": "C0COFFEE", "blocks": blocks }),
        );
        assert_eq!(too_many.error_code(), Some("invalid_blocks"));
        assert!(too_many.refused);
        let long = json_call(
            &slack,
            "chat.postMessage",
            json!({ "channel": "C0COFFEE", "text": "a".repeat(40_001) }),
        );
        assert_eq!(long.error_code(), Some("msg_too_long"));
        let total: Vec<Value> = (0..5).map(|_| section(&"a".repeat(2600))).collect();
        let too_much = json_call(
            &slack,
            "chat.postMessage",
            json!({ "channel": "C0COFFEE", "blocks": total }),
        );
        assert_eq!(too_much.error_code(), Some("msg_blocks_too_long"));
        assert!(slack.messages("C0COFFEE").is_empty());
    }

    #[test]
    fn missing_or_unknown_channels_and_channels_without_the_bot_are_refused() {
        let slack = workspace();
        assert_eq!(
            json_call(&slack, "chat.postMessage", json!({ "text": "x" })).error_code(),
            Some("channel_not_found")
        );
        assert_eq!(
            json_call(
                &slack,
                "chat.postMessage",
                json!({ "channel": "C0NOPE", "text": "x" })
            )
            .error_code(),
            Some("channel_not_found")
        );
        assert_eq!(
            json_call(
                &slack,
                "chat.postMessage",
                json!({ "channel": "C0RANDOM", "text": "x" })
            )
            .error_code(),
            Some("not_in_channel")
        );
        assert_eq!(
            json_call(
                &slack,
                "chat.update",
                json!({ "channel": "C0COFFEE", "ts": "1.2", "text": "x" })
            )
            .error_code(),
            Some("message_not_found")
        );
    }

    #[test]
    fn a_call_without_a_token_is_not_authed_and_a_wrong_token_is_invalid_auth() {
        let slack = SlackStandIn::new(Options::strict(Some("xoxb-right".to_owned())));
        let none = slack.web_api(&WebRequest {
            method: "auth.test",
            authorization: None,
            content_type: None,
            query: None,
            body: b"",
        });
        assert_eq!(none.error_code(), Some("not_authed"));
        assert!(!none.refused);
        let wrong = json_call(&slack, "auth.test", json!({}));
        assert_eq!(wrong.error_code(), Some("invalid_auth"));
    }

    #[test]
    fn users_info_reads_the_user_from_a_form_or_the_query_but_not_from_json() {
        let slack = workspace();
        assert_eq!(
            json_call(&slack, "users.info", json!({ "user": "U0BOB" })).error_code(),
            Some("user_not_found")
        );
        let form = form_call(&slack, "users.info", &[("user", "U0BOB")]);
        assert_eq!(form.body["user"]["is_admin"], true);
        let query = slack.web_api(&WebRequest {
            method: "users.info",
            authorization: Some("Bearer t"),
            content_type: None,
            query: Some("user=U0ALICE"),
            body: b"",
        });
        assert_eq!(query.body["user"]["is_admin"], false);
        assert_eq!(
            form_call(&slack, "users.info", &[("user", "U0NOBODY")]).error_code(),
            Some("user_not_found")
        );
    }

    #[test]
    fn a_trigger_id_opens_one_modal_within_three_seconds_and_never_twice() {
        let slack = workspace();
        let trigger = slack.issue_trigger_id("U0ALICE");
        let opened = json_call(
            &slack,
            "views.open",
            json!({ "trigger_id": trigger, "view": modal() }),
        );
        assert_eq!(opened.body["ok"], true, "{:?}", opened.body);
        assert!(slack.open_modal("U0ALICE").is_some());
        assert_eq!(
            json_call(
                &slack,
                "views.open",
                json!({ "trigger_id": trigger, "view": modal() })
            )
            .error_code(),
            Some("exchanged_trigger_id")
        );

        let late = slack.issue_trigger_id("U0ALICE");
        slack.age_trigger_id(&late, Duration::from_millis(3100));
        assert_eq!(
            json_call(
                &slack,
                "views.open",
                json!({ "trigger_id": late, "view": modal() })
            )
            .error_code(),
            Some("expired_trigger_id")
        );
        assert_eq!(
            json_call(
                &slack,
                "views.open",
                json!({ "trigger_id": "made-up", "view": modal() })
            )
            .error_code(),
            Some("invalid_trigger_id")
        );
    }

    #[test]
    fn a_lenient_stand_in_accepts_made_up_trigger_ids_and_unknown_channels() {
        let slack = SlackStandIn::new(Options::for_tests());
        assert_eq!(
            json_call(
                &slack,
                "views.open",
                json!({ "trigger_id": "made-up", "view": modal() })
            )
            .body["ok"],
            true
        );
        let posted = json_call(
            &slack,
            "chat.postMessage",
            json!({ "channel": "C0ANY", "text": "x" }),
        );
        let ts = posted.body["ts"].as_str().and_then(parse_ts).expect("a ts");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        assert!(ts.0.abs_diff(now) < 60, "a wall-clock ts: {ts:?}");
        assert_eq!(
            json_call(
                &slack,
                "chat.update",
                json!({ "channel": "C0ANY", "ts": "9.9", "text": "x" })
            )
            .body["ok"],
            true
        );
    }

    #[test]
    fn a_view_of_more_than_100_blocks_is_invalid_arguments() {
        let slack = workspace();
        let blocks: Vec<Value> = (0..101).map(|_| json!({ "type": "divider" })).collect();
        let view = json!({ "type": "home", "blocks": blocks });
        assert_eq!(
            json_call(
                &slack,
                "views.publish",
                json!({ "user_id": "U0ALICE", "view": view })
            )
            .error_code(),
            Some("invalid_arguments")
        );
        let home = json!({ "type": "home", "blocks": [section("Your usual: tea")] });
        assert_eq!(
            json_call(
                &slack,
                "views.publish",
                json!({ "user_id": "U0ALICE", "view": home })
            )
            .body["ok"],
            true
        );
        assert_eq!(
            slack.home("U0ALICE").expect("home")["blocks"][0]["text"]["text"],
            "Your usual: tea"
        );
    }

    #[test]
    fn history_filters_by_oldest_and_latest_newest_first_and_returns_metadata_only_when_asked() {
        let slack = workspace();
        let meta = json!({ "event_type": "coffee_run", "event_payload": { "run_id": "r1" } });
        let mut ts = Vec::new();
        for i in 0..4 {
            let a = json_call(
                &slack,
                "chat.postMessage",
                json!({ "channel": "C0COFFEE", "text": format!("m{i}"), "metadata": meta }),
            );
            ts.push(a.body["ts"].as_str().expect("ts").to_owned());
        }
        let h = form_call(
            &slack,
            "conversations.history",
            &[
                ("channel", "C0COFFEE"),
                ("oldest", &ts[0]),
                ("latest", &ts[3]),
                ("include_all_metadata", "true"),
            ],
        );
        let texts: Vec<&str> = h.body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["text"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(texts, ["m2", "m1"]);
        assert_eq!(h.body["messages"][0]["metadata"], meta);
        let limited = json_call(
            &slack,
            "conversations.history",
            json!({ "channel": "C0COFFEE", "limit": 1 }),
        );
        assert_eq!(limited.body["messages"][0]["text"], "m3");
        assert_eq!(limited.body["has_more"], true);
        assert!(limited.body["messages"][0].get("metadata").is_none());
    }

    #[test]
    fn thread_replies_stay_out_of_history_but_count_on_their_parent() {
        let slack = workspace();
        let parent = json_call(
            &slack,
            "chat.postMessage",
            json!({ "channel": "C0COFFEE", "text": "run" }),
        );
        let ts = parent.body["ts"].as_str().expect("ts").to_owned();
        json_call(
            &slack,
            "chat.postMessage",
            json!({ "channel": "C0COFFEE", "text": "picked up", "thread_ts": ts }),
        );
        let h = json_call(
            &slack,
            "conversations.history",
            json!({ "channel": "C0COFFEE" }),
        );
        assert_eq!(h.body["messages"].as_array().map(Vec::len), Some(1));
        assert_eq!(h.body["messages"][0]["reply_count"], 1);
        assert_eq!(slack.messages("C0COFFEE")[1]["thread_ts"], ts);
    }

    #[test]
    fn ephemerals_are_kept_per_channel_and_person() {
        let slack = workspace();
        let a = json_call(
            &slack,
            "chat.postEphemeral",
            json!({ "channel": "C0COFFEE", "user": "U0ALICE", "text": "only you" }),
        );
        assert_eq!(a.body["ok"], true);
        assert_eq!(slack.ephemerals("C0COFFEE", "U0ALICE").len(), 1);
        assert!(slack.ephemerals("C0COFFEE", "U0BOB").is_empty());
    }

    #[test]
    fn a_response_url_shows_an_ephemeral_replaces_the_original_and_wears_out_after_five_uses() {
        let slack = workspace();
        let token = slack.issue_response_token(HookTarget {
            channel: "C0COFFEE".into(),
            user: "U0ALICE".into(),
            message_ts: None,
            ephemeral: false,
        });
        assert_eq!(slack.respond(&token, br#"{"text":"hello"}"#).status, 200);
        assert_eq!(slack.ephemerals("C0COFFEE", "U0ALICE")[0]["text"], "hello");
        for _ in 0..4 {
            assert_eq!(slack.respond(&token, br#"{"text":"again"}"#).status, 200);
        }
        let worn = slack.respond(&token, br#"{"text":"sixth"}"#);
        assert_eq!((worn.status, worn.body.as_str()), (404, "used_url"));
        assert_eq!(
            slack.respond("never-issued", br#"{"text":"x"}"#).status,
            404
        );

        let posted = json_call(
            &slack,
            "chat.postMessage",
            json!({ "channel": "C0COFFEE", "text": "old" }),
        );
        let ts = posted.body["ts"].as_str().expect("ts").to_owned();
        let token = slack.issue_response_token(HookTarget {
            channel: "C0COFFEE".into(),
            user: "U0ALICE".into(),
            message_ts: Some(ts),
            ephemeral: false,
        });
        slack.respond(&token, br#"{"replace_original":true,"text":"new"}"#);
        assert_eq!(slack.messages("C0COFFEE")[0]["text"], "new");
    }

    #[test]
    fn a_submission_answered_with_errors_keeps_the_modal_open_and_an_empty_answer_closes_it() {
        let slack = workspace();
        let trigger = slack.issue_trigger_id("U0ALICE");
        let view = json!({ "type": "modal", "title": { "type": "plain_text", "text": "Order" }, "submit": { "type": "plain_text", "text": "Go" },
            "blocks": [{ "type": "input", "block_id": "order_block", "label": { "type": "plain_text", "text": "Order" }, "element": { "type": "plain_text_input", "action_id": "t" } }] });
        let opened = json_call(
            &slack,
            "views.open",
            json!({ "trigger_id": trigger, "view": view }),
        );
        let id = opened.body["view"]["id"].as_str().expect("id").to_owned();
        let errors =
            json!({ "response_action": "errors", "errors": { "order_block": "Too long" } });
        slack
            .apply_submission_answer("U0ALICE", &id, Some(&errors))
            .expect("accepted");
        assert_eq!(
            slack.open_modal("U0ALICE").expect("open")["errors"]["order_block"],
            "Too long"
        );
        let wrong = json!({ "response_action": "errors", "errors": { "nope": "x" } });
        assert!(
            slack
                .apply_submission_answer("U0ALICE", &id, Some(&wrong))
                .is_err()
        );
        slack
            .apply_submission_answer("U0ALICE", &id, None)
            .expect("closed");
        assert!(slack.open_modal("U0ALICE").is_none());
    }

    #[test]
    fn slack_timestamps_compare_as_numbers() {
        assert!(parse_ts("1700000000.000100") < parse_ts("1700000000.0002"));
        assert_eq!(parse_ts("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(parse_ts("abc"), None);
    }
}
