//! Following one request across functions: the W3C trace context
//! (`traceparent`, `tracestate`) and our correlation id, carried from the
//! Slack request to every event and Slack effect it causes, and onto every
//! log line written on its behalf.
//!
//! # How it travels
//! - The HTTP middleware ([`crate::runtime::observe`]) starts a context for
//!   each request: the caller's `traceparent` when it is valid (Kong's
//!   OpenTelemetry plugin sends one), else a fresh trace; the correlation id
//!   from `X-Correlation-ID`/`X-Request-ID`, else a fresh one.
//! - The context is the *current* one for the rest of the request's task
//!   ([`scope`], a `tokio` task-local), so the many call sites that write
//!   outbox rows and effect rows keep their signatures: [`enqueue`] and
//!   [`crate::effects::enqueue`] read [`current`] and store it with the row
//!   ([`TraceColumns`]).
//!
//!   [`enqueue`]: crate::events::outbox::enqueue
//! - The outbox relay publishes each event as a new hop of its trace (same
//!   trace id, new span id) with the CloudEvents distributed-tracing
//!   extension (`traceparent`, `tracestate`) and `correlationid`; the `POST /`
//!   intake restores it ([`crate::events::intake`]). The effect worker
//!   restores an effect's context the same way before it talks to Slack.
//! - The log formatter ([`crate::telemetry`]) writes `trace_id`, `span_id`
//!   and `correlation_id` on every line logged within a context.
//!
//! Everything from outside is validated strictly: a malformed `traceparent`
//! is replaced by a fresh trace (and its `tracestate` dropped), a malformed
//! `tracestate` is dropped, an odd correlation id is replaced.

use std::fmt;
use std::future::Future;

use uuid::Uuid;

/// The HTTP header (and CloudEvent extension) of the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";
/// The HTTP header (and CloudEvent extension) of the W3C trace state.
pub const TRACESTATE: &str = "tracestate";
/// The CloudEvent extension carrying our correlation id (CloudEvents
/// extension names are lowercase letters and digits only).
pub const CORRELATION_ID_EXTENSION: &str = "correlationid";

/// Longest accepted correlation id.
pub const MAX_CORRELATION_ID_LEN: usize = 128;
/// Longest accepted `tracestate` (W3C: at least 512 must be propagated).
pub const MAX_TRACESTATE_LEN: usize = 512;
/// Most list members of a `tracestate` (W3C).
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// The only `traceparent` version we read and write.
const VERSION: &str = "00";
/// Flags of a trace we start: "sampled" (our logs record it).
const SAMPLED: u8 = 0x01;

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseTraceParentError {
    /// Not `version-traceid-parentid-flags` with 2, 32, 16 and 2 characters.
    #[error("a traceparent is 55 characters: 00-<32 hex>-<16 hex>-<2 hex>")]
    Shape,
    /// A version other than `00`.
    #[error("unsupported traceparent version {0:?}")]
    Version(String),
    /// A character that is not lowercase hex.
    #[error("a traceparent is lowercase hex")]
    NotHex,
    /// The trace id is all zeros.
    #[error("the trace id is all zeros")]
    ZeroTraceId,
    /// The parent id is all zeros.
    #[error("the parent id is all zeros")]
    ZeroParentId,
}

/// A W3C `traceparent` (version 00): the trace, the span that caused this
/// hop, and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], ParseTraceParentError> {
    // `hex` accepts uppercase; W3C version 00 does not.
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ParseTraceParentError::NotHex);
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| ParseTraceParentError::NotHex)?;
    Ok(out)
}

/// `N` random bytes, never all zero.
fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let mut out = [0u8; N];
        let random = Uuid::new_v4().as_u128().to_le_bytes();
        out.copy_from_slice(&random[..N]);
        if out.iter().any(|&b| b != 0) {
            return out;
        }
    }
}

impl TraceParent {
    /// Parses a version-00 `traceparent`, strictly: exactly
    /// `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, neither id all zeros.
    pub fn parse(value: &str) -> Result<Self, ParseTraceParentError> {
        let parts: Vec<&str> = value.split('-').collect();
        let [version, trace_id, parent_id, flags] = parts.as_slice() else {
            return Err(ParseTraceParentError::Shape);
        };
        if version.len() != 2 || trace_id.len() != 32 || parent_id.len() != 16 || flags.len() != 2 {
            return Err(ParseTraceParentError::Shape);
        }
        if *version != VERSION {
            return Err(ParseTraceParentError::Version((*version).to_owned()));
        }
        let trace_id = decode_hex::<16>(trace_id)?;
        let parent_id = decode_hex::<8>(parent_id)?;
        let [flags] = decode_hex::<1>(flags)?;
        if trace_id == [0; 16] {
            return Err(ParseTraceParentError::ZeroTraceId);
        }
        if parent_id == [0; 8] {
            return Err(ParseTraceParentError::ZeroParentId);
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The first hop of a new trace: random trace and span ids, sampled.
    pub fn root() -> Self {
        Self {
            trace_id: random_nonzero(),
            parent_id: random_nonzero(),
            flags: SAMPLED,
        }
    }

    /// The next hop of the same trace: same trace id and flags, a new span
    /// id (this hop's, and the parent of whatever it causes).
    pub fn child(&self) -> Self {
        Self {
            parent_id: random_nonzero(),
            ..*self
        }
    }

    /// The trace id, 32 lowercase hex characters.
    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The span id of this hop, 16 lowercase hex characters.
    pub fn span_id(&self) -> String {
        hex::encode(self.parent_id)
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION}-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            self.flags
        )
    }
}

impl std::str::FromStr for TraceParent {
    type Err = ParseTraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A W3C `tracestate` we pass on unchanged: at most 512 characters and 32
/// `key=value` members, keys and values as W3C allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceState(String);

fn valid_tracestate_key(key: &str) -> bool {
    let ok_char = |b: u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@');
    !key.is_empty()
        && key.len() <= 256
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && key.bytes().all(ok_char)
        && key.bytes().filter(|&b| b == b'@').count() <= 1
}

fn valid_tracestate_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !value.ends_with(' ')
}

impl TraceState {
    /// A valid `tracestate`, or `None`.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() > MAX_TRACESTATE_LEN {
            return None;
        }
        let members: Vec<&str> = value
            .split(',')
            .map(|m| m.trim_matches([' ', '\t']))
            .filter(|m| !m.is_empty())
            .collect();
        if members.is_empty() || members.len() > MAX_TRACESTATE_MEMBERS {
            return None;
        }
        let valid = members.iter().all(|m| {
            m.split_once('=')
                .is_some_and(|(k, v)| valid_tracestate_key(k) && valid_tracestate_value(v))
        });
        valid.then(|| Self(members.join(",")))
    }
}

impl AsRef<str> for TraceState {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A caller-supplied correlation id is used only if it is short and plain
/// (`[A-Za-z0-9-_.:]`, 1–128 characters), so it cannot forge log structure
/// or bloat every line.
pub fn parse_correlation_id(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= MAX_CORRELATION_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(value)
}

/// What one hop of a request knows about where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// This hop: the trace id shared by the whole request, and this hop's
    /// span id (the parent of what it causes).
    pub traceparent: TraceParent,
    /// Vendor data from upstream, passed on unchanged.
    pub tracestate: Option<TraceState>,
    /// The Slack request's correlation id (Kong's, or ours).
    pub correlation_id: String,
}

impl TraceContext {
    /// The context of a hop caused by what the caller sent: a child of a
    /// valid `traceparent` (keeping a valid `tracestate`), else a new trace;
    /// the caller's correlation id when plain, else a new UUID.
    pub fn continue_from(
        traceparent: Option<&str>,
        tracestate: Option<&str>,
        correlation_id: Option<&str>,
    ) -> Self {
        let parent = traceparent.and_then(|v| TraceParent::parse(v.trim()).ok());
        let (traceparent, tracestate) = match parent {
            Some(parent) => (parent.child(), tracestate.and_then(TraceState::parse)),
            None => (TraceParent::root(), None),
        };
        let correlation_id = correlation_id
            .and_then(parse_correlation_id)
            .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
        Self {
            traceparent,
            tracestate,
            correlation_id,
        }
    }

    /// The next hop: same trace, state and correlation id, a new span id.
    pub fn child(&self) -> Self {
        Self {
            traceparent: self.traceparent.child(),
            ..self.clone()
        }
    }

    /// The trace id, the key to follow a request with.
    pub fn trace_id(&self) -> String {
        self.traceparent.trace_id()
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The context of the request, event or effect this task is working for,
/// if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `future` with `context` as the [`current`] one.
pub fn scope<F: Future>(context: TraceContext, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(context, future)
}

/// A context as stored with an outbox or effect row (all `NULL` for rows
/// written outside any request, or before these columns existed).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct TraceColumns {
    /// `traceparent` of the hop that wrote the row.
    pub traceparent: Option<String>,
    /// Its `tracestate`.
    pub tracestate: Option<String>,
    /// Its correlation id.
    pub correlation_id: Option<String>,
}

impl TraceColumns {
    /// The [`current`] context as columns.
    pub fn current() -> Self {
        current().map(|c| Self::from(&c)).unwrap_or_default()
    }

    /// The context of the next hop after the row's writer (a fresh trace
    /// when the row has none or it is unreadable).
    pub fn next_hop(&self) -> TraceContext {
        TraceContext::continue_from(
            self.traceparent.as_deref(),
            self.tracestate.as_deref(),
            self.correlation_id.as_deref(),
        )
    }
}

impl From<&TraceContext> for TraceColumns {
    fn from(c: &TraceContext) -> Self {
        Self {
            traceparent: Some(c.traceparent.to_string()),
            tracestate: c.tracestate.as_ref().map(|s| s.0.clone()),
            correlation_id: Some(c.correlation_id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_example_parses_and_formats_back_unchanged() {
        let parent = TraceParent::parse(VALID).expect("valid");
        assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.span_id(), "00f067aa0ba902b7");
        assert_eq!(parent.flags(), 1);
        assert_eq!(parent.to_string(), VALID);
    }

    #[test]
    fn malformed_traceparents_are_refused_with_the_reason() {
        use ParseTraceParentError::*;
        let cases = [
            ("", Shape),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                Shape,
            ),
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Shape,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version("01".to_owned()),
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version("ff".to_owned()),
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                NotHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                NotHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                NotHex,
            ),
            (
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                NotHex,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ZeroParentId,
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(TraceParent::parse(value), Err(expected), "{value:?}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span() {
        let parent = TraceParent::parse(VALID).expect("valid");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_eq!(child.flags(), parent.flags());
        assert_ne!(child.span_id(), parent.span_id());
        assert_ne!(
            TraceParent::root().trace_id(),
            TraceParent::root().trace_id()
        );
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace_and_drops_its_state() {
        let context = TraceContext::continue_from(
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("vendor=abc"),
            Some("\"}{\"injected\":true"),
        );
        assert_ne!(context.trace_id(), "0".repeat(32));
        assert_eq!(context.tracestate, None);
        assert_eq!(context.correlation_id.len(), 36, "a fresh UUID");

        let kept = TraceContext::continue_from(Some(VALID), Some("vendor=abc"), Some("kong-1"));
        assert_eq!(kept.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(kept.traceparent.span_id(), "00f067aa0ba902b7", "a new hop");
        assert_eq!(
            kept.tracestate.as_ref().map(AsRef::as_ref),
            Some("vendor=abc")
        );
        assert_eq!(kept.correlation_id, "kong-1");
    }

    #[test]
    fn tracestate_is_kept_only_when_it_is_a_valid_member_list() {
        for ok in [
            "congo=t61rcWkgMzE",
            "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE",
            "tenant@vendor=x y",
        ] {
            assert!(TraceState::parse(ok).is_some(), "{ok:?}");
        }
        let too_long = format!("a={}", "b".repeat(MAX_TRACESTATE_LEN));
        for bad in [
            "",
            "novalue",
            "Upper=x",
            "k=v=w",
            "k=\u{e9}",
            "k=x\ny",
            too_long.as_str(),
        ] {
            assert_eq!(TraceState::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn plain_correlation_ids_are_accepted_and_odd_ones_are_not() {
        assert_eq!(parse_correlation_id("abc-123_x.y:z"), Some("abc-123_x.y:z"));
        assert_eq!(parse_correlation_id(""), None);
        assert_eq!(parse_correlation_id("a b"), None);
        assert_eq!(parse_correlation_id("{\"x\":1}"), None);
        assert_eq!(parse_correlation_id(&"a".repeat(129)), None);
    }

    #[tokio::test]
    async fn the_current_context_is_the_scopes_and_only_inside_it() {
        let context = TraceContext::continue_from(Some(VALID), None, Some("c-1"));
        assert_eq!(current(), None);
        let inside = scope(context.clone(), async { current() }).await;
        assert_eq!(inside, Some(context.clone()));
        assert_eq!(TraceColumns::current(), TraceColumns::default());
        let columns = scope(context.clone(), async { TraceColumns::current() }).await;
        let next = columns.next_hop();
        assert_eq!(next.trace_id(), context.trace_id());
        assert_ne!(next.traceparent, context.traceparent);
        assert_eq!(next.correlation_id, "c-1");
    }

    proptest! {
        #[test]
        fn every_valid_traceparent_round_trips_and_its_children_keep_the_trace(
            trace_id in prop::array::uniform16(any::<u8>()).prop_filter("not zero", |t| *t != [0; 16]),
            parent_id in prop::array::uniform8(any::<u8>()).prop_filter("not zero", |p| *p != [0; 8]),
            flags in any::<u8>(),
        ) {
            let text = format!("00-{}-{}-{flags:02x}", hex::encode(trace_id), hex::encode(parent_id));
            let parsed = TraceParent::parse(&text).expect("valid");
            prop_assert_eq!(parsed.to_string(), text.clone());
            let child = parsed.child();
            prop_assert_eq!(child.trace_id(), hex::encode(trace_id));
            prop_assert_eq!(TraceParent::parse(&child.to_string()), Ok(child));
        }

        #[test]
        fn arbitrary_text_never_panics_and_what_parses_formats_back(text in "\\PC{0,70}") {
            if let Ok(parsed) = TraceParent::parse(&text) {
                prop_assert_eq!(parsed.to_string(), text);
            }
        }
    }
}
