//! Our CloudEvents (DESIGN §3): the event types and their typed payloads,
//! the transactional outbox that publishes them, the sinks they are
//! published to, and the `POST /` intake every function serves.
//!
//! # Layout
//! - this module: event type names, typed `data` payloads, [`NewEvent`]
//!   (what a handler writes to the outbox) and [`decode_data`].
//! - [`outbox`]: [`enqueue`] inside the caller's transaction, and the
//!   [`Outbox`] relay that publishes committed rows in order.
//! - [`sink`]: where the relay delivers: the [`EventSink`] trait and the
//!   in-process fan-out ([`InProcessSink`]) that `local` uses.
//! - [`kafka`]: the Kafka sink (binary mode, `ce_*` headers), the header
//!   codec, a consumer loop for `local` and the readiness probe.
//! - [`intake`]: [`EventRoutes`], the `POST /` router that accepts binary
//!   and structured HTTP CloudEvents and dispatches them by type.
//! - [`ledger`]: [`first_delivery`], the idempotency ledger handlers consult
//!   because delivery is at least once.
//!
//! Every event we publish carries the CloudEvents distributed-tracing
//! extension (`traceparent`, and `tracestate` when upstream sent one) and
//! `correlationid`: [`set_trace`] writes them, [`next_hop_of`] reads them
//! back on intake ([`crate::trace`]).
//!
//! Payloads are snake_case JSON. Every run event carries `run_id` and
//! `channel_id`; the channel id is also the partition key (Kafka key), so a
//! channel's events stay in order end to end.

pub mod intake;
pub mod kafka;
pub mod ledger;
pub mod outbox;
pub mod sink;

use std::future::Future;
use std::pin::Pin;

use cloudevents::{AttributesReader as _, Data, Event};

use crate::trace::{self, TraceContext};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use intake::{EventRoutes, HandleEventError, HandlerFn};
pub use kafka::{
    ConfigureKafkaError, DecodeKafkaEventError, KafkaSink, consume, event_from_kafka,
    kafka_headers, kafka_probe,
};
pub use ledger::first_delivery;
pub use outbox::{Outbox, OutboxRow, PublishError, enqueue, published_event, to_cloudevent};
pub use sink::{
    DeliverError, EncodeEventError, EventSink, InProcessSink, to_http_binary, to_http_structured,
};

/// A boxed, sendable future: what [`EventSink::deliver`] and event handlers
/// return, so they can be stored as trait objects without `async_trait`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A run was started (`/coffee`); the slash-command function posts the run
/// message.
pub const RUN_CREATED: &str = "com.coffeebuddy.run.created.v1";
/// Someone placed their first order in a run.
pub const ORDER_PLACED: &str = "com.coffeebuddy.order.placed.v1";
/// Someone edited their order in a run.
pub const ORDER_UPDATED: &str = "com.coffeebuddy.order.updated.v1";
/// Someone allowed to clicked **Close run**; close-run picks the runner.
pub const RUN_CLOSE_REQUESTED: &str = "com.coffeebuddy.run.close_requested.v1";
/// A run was closed (with a runner) or cancelled (no orders).
pub const RUN_CLOSED: &str = "com.coffeebuddy.run.closed.v1";
/// The runner's pickup reminder was sent.
pub const REMINDER_SENT: &str = "com.coffeebuddy.reminder.sent.v1";
/// A channel's configuration changed (`/coffee-admin` or the admin API).
pub const CHANNEL_CONFIG_CHANGED: &str = "com.coffeebuddy.channel.config_changed.v1";
/// A `/coffee-admin` change by someone who may be a workspace admin, which
/// only Slack can tell: the admin function checks after the ack and applies
/// it (or refuses) privately.
pub const ADMIN_COMMAND_REQUESTED: &str = "com.coffeebuddy.admin.command_requested.v1";
/// A Knative PingSource tick (and `local`'s built-in ticker).
pub const PING: &str = "dev.knative.sources.ping";

/// Every event type CoffeeBuddy itself emits.
pub const ALL_TYPES: &[&str] = &[
    RUN_CREATED,
    ORDER_PLACED,
    ORDER_UPDATED,
    RUN_CLOSE_REQUESTED,
    RUN_CLOSED,
    REMINDER_SENT,
    CHANNEL_CONFIG_CHANGED,
    ADMIN_COMMAND_REQUESTED,
];

/// The CloudEvents partitioning extension: the Kafka key (our channel id).
pub const PARTITION_KEY_EXTENSION: &str = "partitionkey";

/// The `datacontenttype` of every event we emit.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The `data` of one event type. The type comes with the payload, so no
/// event can be written with another type's data.
pub trait EventData: Serialize {
    /// The CloudEvent `type` this is the data of.
    const TYPE: &'static str;
}

macro_rules! event_data {
    ($($data:ty => $ty:expr),* $(,)?) => {
        $(impl EventData for $data {
            const TYPE: &'static str = $ty;
        })*
    };
}

event_data! {
    RunCreated => RUN_CREATED,
    OrderPlaced => ORDER_PLACED,
    OrderUpdated => ORDER_UPDATED,
    RunCloseRequested => RUN_CLOSE_REQUESTED,
    RunClosed => RUN_CLOSED,
    ReminderSent => REMINDER_SENT,
    ChannelConfigChanged => CHANNEL_CONFIG_CHANGED,
    AdminCommandRequested => ADMIN_COMMAND_REQUESTED,
}

/// Data of [`RUN_CREATED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCreated {
    /// The new run.
    pub run_id: Uuid,
    /// Its Slack channel.
    pub channel_id: String,
}

/// Data of [`ORDER_PLACED`] and [`ORDER_UPDATED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderChanged {
    /// The run the order belongs to.
    pub run_id: Uuid,
    /// The run's Slack channel.
    pub channel_id: String,
    /// Who placed or edited the order.
    pub user_id: String,
}

/// Data of [`ORDER_PLACED`]: a person's first order in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderPlaced(pub OrderChanged);

/// Data of [`ORDER_UPDATED`]: a person changed their order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderUpdated(pub OrderChanged);

/// Data of [`RUN_CLOSE_REQUESTED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCloseRequested {
    /// The run to close.
    pub run_id: Uuid,
    /// The run's Slack channel.
    pub channel_id: String,
    /// Who clicked **Close run**.
    pub requested_by: String,
    /// Whether the click already proved the right to close (the starter or
    /// a named channel admin: the run is then `closing`). When `false`, the
    /// run is still open and close-run asks Slack whether the person is a
    /// workspace admin first: that check never delays the click's ack.
    /// Absent (true) in events written before it existed.
    #[serde(default = "authorized_by_default")]
    pub authorized: bool,
    /// Where the click's response URL is kept, for a private answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Uuid>,
}

fn authorized_by_default() -> bool {
    true
}

/// Data of [`RUN_CLOSED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunClosed {
    /// The closed run.
    pub run_id: Uuid,
    /// The run's Slack channel.
    pub channel_id: String,
    /// The runner picked, absent when the run was cancelled.
    pub runner_id: Option<String>,
    /// Whether the run closed with no orders.
    pub cancelled: bool,
}

/// Data of [`REMINDER_SENT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderSent {
    /// The run the reminder was for.
    pub run_id: Uuid,
    /// The run's Slack channel.
    pub channel_id: String,
    /// Who was reminded.
    pub runner_id: String,
}

/// Data of [`CHANNEL_CONFIG_CHANGED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelConfigChanged {
    /// The channel whose configuration changed.
    pub channel_id: String,
    /// A Slack user id, an operator's JWT `sub`, or `system`.
    pub actor: String,
    /// The audit action, e.g. `disable` or `reminder-offset`.
    pub action: String,
}

/// Data of [`ADMIN_COMMAND_REQUESTED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminCommandRequested {
    /// Where it was typed.
    pub channel_id: String,
    /// The workspace.
    pub team_id: String,
    /// Who typed it.
    pub user_id: String,
    /// The subcommand text, as typed.
    pub text: String,
    /// Where the command's response URL is kept, for the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Uuid>,
}

/// An event a handler wants published, written to the outbox with
/// [`enqueue`] in the same transaction as the state change that causes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// One of the type constants in this module.
    pub event_type: &'static str,
    /// The CloudEvent `subject`, usually the run id.
    pub subject: Option<String>,
    /// The Kafka key: the channel id, so a channel's events stay ordered.
    pub partition_key: String,
    /// The CloudEvent `data` (JSON).
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event carrying `data` serialised to JSON, of `data`'s type.
    ///
    /// Our payload types serialise infallibly (plain structs of strings,
    /// ids and booleans); should a future type fail, the event carries JSON
    /// `null`, which every consumer rejects as malformed and logs, rather
    /// than this constructor panicking inside a request handler.
    pub fn new<T: EventData>(
        partition_key: impl Into<String>,
        subject: Option<String>,
        data: &T,
    ) -> Self {
        let event_type = T::TYPE;
        let data = serde_json::to_value(data).unwrap_or_else(|e| {
            tracing::error!(error = %e, event_type, "cannot serialise event data");
            serde_json::Value::Null
        });
        Self {
            event_type,
            subject,
            partition_key: partition_key.into(),
            data,
        }
    }
}

/// The typed `data` of `event`. Missing data, data that is not JSON, or JSON
/// of the wrong shape is [`HandleEventError::Malformed`]: retrying cannot fix
/// it.
pub fn decode_data<T: DeserializeOwned>(event: &Event) -> Result<T, HandleEventError> {
    let malformed = |reason: String| {
        HandleEventError::Malformed(format!("event {} ({}): {reason}", event.id(), event.ty()))
    };
    let parsed = match event.data() {
        None => return Err(malformed("has no data".to_owned())),
        Some(Data::Json(value)) => T::deserialize(value),
        Some(Data::Binary(bytes)) => serde_json::from_slice(bytes),
        Some(Data::String(text)) => serde_json::from_str(text),
    };
    parsed.map_err(|e| malformed(format!("invalid data: {e}")))
}

/// The partition key (channel id) an event carries, if any.
pub fn partition_key(event: &Event) -> Option<String> {
    event
        .extension(PARTITION_KEY_EXTENSION)
        .map(ToString::to_string)
}

/// Puts `context` on `event`: the distributed-tracing extension
/// (`traceparent`, `tracestate`) and `correlationid`.
pub fn set_trace(event: &mut Event, context: &TraceContext) {
    event.set_extension(trace::TRACEPARENT, context.traceparent.to_string());
    match &context.tracestate {
        Some(state) => event.set_extension(trace::TRACESTATE, state.as_ref()),
        None => {
            event.remove_extension(trace::TRACESTATE);
        }
    }
    event.set_extension(
        trace::CORRELATION_ID_EXTENSION,
        context.correlation_id.clone(),
    );
}

/// The context of handling `event`: the next hop of the trace it carries
/// (validated like an HTTP `traceparent`), or a new trace when it carries
/// none (PingSource's ticks) or an invalid one.
pub fn next_hop_of(event: &Event) -> TraceContext {
    let extension = |name: &str| event.extension(name).map(ToString::to_string);
    TraceContext::continue_from(
        extension(trace::TRACEPARENT).as_deref(),
        extension(trace::TRACESTATE).as_deref(),
        extension(trace::CORRELATION_ID_EXTENSION).as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use cloudevents::{EventBuilder as _, EventBuilderV10};

    use super::*;

    fn event_with(data: Option<Data>) -> Event {
        let mut event = EventBuilderV10::new()
            .id("e-1")
            .source("/test")
            .ty(RUN_CREATED)
            .build()
            .expect("valid event");
        if let Some(data) = data {
            event.set_data(JSON_CONTENT_TYPE, data);
        }
        event
    }

    #[test]
    fn every_payload_type_writes_its_own_known_event_type_and_the_same_json() {
        let order = OrderChanged {
            run_id: Uuid::nil(),
            channel_id: "C1".to_owned(),
            user_id: "U1".to_owned(),
        };
        let placed = NewEvent::new("C1", None, &OrderPlaced(order.clone()));
        let updated = NewEvent::new("C1", None, &OrderUpdated(order.clone()));
        assert_eq!(
            (placed.event_type, updated.event_type),
            (ORDER_PLACED, ORDER_UPDATED)
        );
        // The wrappers change the type, never the data consumers decode.
        let plain = serde_json::to_value(&order).expect("json");
        assert_eq!((&placed.data, &updated.data), (&plain, &plain));
        let written = [
            RunCreated::TYPE,
            OrderPlaced::TYPE,
            OrderUpdated::TYPE,
            RunCloseRequested::TYPE,
            RunClosed::TYPE,
            ReminderSent::TYPE,
            ChannelConfigChanged::TYPE,
            AdminCommandRequested::TYPE,
        ];
        for ty in written {
            assert!(ALL_TYPES.contains(&ty), "{ty} is not a known type");
        }
        let distinct: std::collections::HashSet<_> = written.iter().collect();
        assert_eq!(
            distinct.len(),
            written.len(),
            "one payload type per event type"
        );
    }

    #[test]
    fn a_payload_survives_new_event_and_decode_data() {
        let payload = RunClosed {
            run_id: Uuid::new_v4(),
            channel_id: "C1".to_owned(),
            runner_id: Some("U1".to_owned()),
            cancelled: false,
        };
        let new = NewEvent::new("C1", Some(payload.run_id.to_string()), &payload);
        assert_eq!(new.event_type, RUN_CLOSED);
        assert_eq!(new.data["runner_id"], "U1");
        assert_eq!(new.partition_key, "C1");

        for data in [
            Data::Json(new.data.clone()),
            Data::Binary(serde_json::to_vec(&new.data).expect("json")),
            Data::String(new.data.to_string()),
        ] {
            let decoded: RunClosed = decode_data(&event_with(Some(data))).expect("decodes");
            assert_eq!(decoded, payload);
        }
    }

    #[test]
    fn the_trace_put_on_an_event_comes_back_as_its_next_hop_in_both_http_modes() {
        let context = TraceContext::continue_from(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("congo=t61rcWkgMzE"),
            Some("kong-42"),
        );
        let mut event = event_with(None);
        set_trace(&mut event, &context);

        let (headers, body) = to_http_binary(&event).expect("binary");
        assert_eq!(
            headers["ce-traceparent"],
            context.traceparent.to_string().as_str()
        );
        let binary = cloudevents::binding::http::to_event(&headers, body).expect("decodes");
        let structured: Event =
            serde_json::from_slice(&to_http_structured(&event).expect("structured")).expect("json");
        for received in [binary, structured] {
            let hop = next_hop_of(&received);
            assert_eq!(hop.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(hop.traceparent, context.traceparent, "a new span id");
            assert_eq!(hop.tracestate, context.tracestate);
            assert_eq!(hop.correlation_id, "kong-42");
        }

        let untraced = next_hop_of(&event_with(None));
        assert_ne!(
            untraced.trace_id(),
            context.trace_id(),
            "a trace of its own"
        );
    }

    #[test]
    fn missing_or_misshapen_data_is_malformed() {
        let missing = decode_data::<RunCreated>(&event_with(None));
        assert!(matches!(missing, Err(HandleEventError::Malformed(m)) if m.contains("no data")));

        let wrong = event_with(Some(Data::Json(serde_json::json!({ "run_id": "nope" }))));
        assert!(matches!(
            decode_data::<RunCreated>(&wrong),
            Err(HandleEventError::Malformed(_))
        ));

        let not_json = event_with(Some(Data::Binary(b"{not json".to_vec())));
        assert!(matches!(
            decode_data::<RunCreated>(&not_json),
            Err(HandleEventError::Malformed(_))
        ));
    }
}
