//! The transactional outbox (DESIGN §3).
//!
//! A handler writes its state change and the events it causes in one
//! transaction ([`enqueue`] with `&mut *tx`), commits, then calls
//! [`Outbox::notify`]. The relay ([`Outbox::spawn_relay`]) wakes up, claims
//! the unpublished rows oldest first and hands each to the [`EventSink`]
//! (Kafka in production, in-process delivery in `local`). A row is marked
//! published only after the sink accepted it, so delivery is at least once;
//! consumers deduplicate by event id ([`super::first_delivery`]).
//!
//! Ordering: one pass at a time across every process sharing the database
//! (a transaction-scoped advisory lock), rows claimed in `created_at` order
//! and grouped by partition key (the channel). Channels are delivered in
//! parallel, each channel's events in order: a failed delivery stops its
//! channel's group and backs that event off (`next_attempt_at`), and later
//! events of the same channel wait behind it, while other channels go on.
//! `FOR UPDATE SKIP LOCKED` on the claim keeps two publishers off the same
//! rows even if the lock were ever bypassed.
//!
//! Tracing: each row stores the trace context of the hop that wrote it
//! ([`crate::trace::current`]), and the relay publishes it as the next hop
//! of that trace ([`published_event`]), delivering inside it so its own log
//! lines carry the trace id.
//!
//! Poison: an event a consumer refuses as malformed (HTTP 4xx in process),
//! one that cannot be encoded, or one still refused after
//! [`MAX_DELIVERY_ATTEMPTS`] by a consumer, is parked in `dead_letters`
//! and marked published, so it never blocks what comes after it. A sink
//! that is down (Kafka unreachable) is not poison: its events wait.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloudevents::{AttributesWriter as _, Event};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tracing::Instrument as _;
use uuid::Uuid;

use super::sink::{DeliverError, EventSink};
use super::{JSON_CONTENT_TYPE, NewEvent, PARTITION_KEY_EXTENSION, set_trace};
use crate::trace::{self, TraceColumns, TraceContext};

/// Rows claimed per transaction. Delivery happens while the rows are
/// locked, so a batch is kept small enough to finish well within any
/// statement or idle timeout even at the sink's slowest.
pub const BATCH_SIZE: i64 = 100;

/// How often the relay publishes even without a [`Outbox::notify`]: picks up
/// rows whose notify was lost (a crash between commit and notify, another
/// replica's leftovers) and retries after failures.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Longest pause between relay attempts while the sink keeps failing.
pub const MAX_RELAY_BACKOFF: Duration = Duration::from_secs(30);

/// Counter of events the outbox published.
pub const PUBLISHED_TOTAL: &str = "coffeebuddy_outbox_published_total";
/// Counter of failed deliveries from the outbox.
pub const PUBLISH_FAILURES_TOTAL: &str = "coffeebuddy_outbox_publish_failures_total";

/// Deliveries a consumer may refuse (answer non-2xx) before the event is
/// parked as poison. With the backoff capped at [`MAX_EVENT_BACKOFF`], about
/// 45 minutes of refusals.
pub const MAX_DELIVERY_ATTEMPTS: i32 = 50;

/// Longest wait before one event's next delivery attempt.
pub const MAX_EVENT_BACKOFF: Duration = Duration::from_secs(60);

/// Longest `last_error` stored on a row.
const MAX_ERROR_CHARS: usize = 1000;

/// Key of the advisory lock that makes publishing passes one at a time
/// (an arbitrary constant: "CBoutbox" in ASCII).
const PUBLISH_LOCK_KEY: i64 = 0x4342_6f75_7462_6f78;

/// Writes `event` to the outbox and returns its event id. Call it with the
/// caller's open transaction (`&mut *tx`) so the event commits (or rolls
/// back) with the state change that caused it. `source` is the CloudEvent
/// `source`, e.g. `/coffeebuddy/slash-command`. The row carries the current
/// trace context, if any ([`crate::trace`]).
pub async fn enqueue(
    conn: &mut PgConnection,
    source: &str,
    event: NewEvent,
) -> Result<Uuid, sqlx::Error> {
    let event_id = Uuid::new_v4();
    // clock_timestamp(), not the column default now(): now() is the start of
    // the transaction, so several events enqueued by one handler would tie
    // and lose their order.
    let trace = TraceColumns::current();
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, source, subject, partition_key, payload, created_at, \
             traceparent, tracestate, correlation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(), $7, $8, $9)",
    )
    .bind(event_id)
    .bind(event.event_type)
    .bind(source)
    .bind(event.subject)
    .bind(event.partition_key)
    .bind(sqlx::types::Json(event.data))
    .bind(trace.traceparent)
    .bind(trace.tracestate)
    .bind(trace.correlation_id)
    .execute(conn)
    .await?;
    Ok(event_id)
}

/// One row of the `outbox` table.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxRow {
    /// The CloudEvent `id`.
    pub event_id: Uuid,
    /// The CloudEvent `type`.
    pub event_type: String,
    /// The CloudEvent `source`.
    pub source: String,
    /// The CloudEvent `subject`.
    pub subject: Option<String>,
    /// The Kafka key and `partitionkey` extension: the channel id.
    pub partition_key: String,
    /// The CloudEvent `data`.
    pub payload: serde_json::Value,
    /// The CloudEvent `time`, and the publishing order.
    pub created_at: DateTime<Utc>,
    /// Failed delivery attempts so far.
    pub attempts: i32,
    /// The trace context of the hop that wrote it.
    #[sqlx(flatten)]
    pub trace: TraceColumns,
}

/// The CloudEvent for an outbox row: `id` = event id, `source`, `type`,
/// `subject`, `time` = creation time, `datacontenttype` JSON, `data` = the
/// payload, and the partitioning extension `partitionkey` = channel id.
/// The trace context is the relay's to add ([`published_event`]).
pub fn to_cloudevent(row: &OutboxRow) -> Event {
    // Built with the setters rather than `EventBuilderV10`: the builder
    // validates (and fails on) an empty source, and a row that is already
    // committed must still be publishable; consumers judge it.
    let mut event = Event::default();
    event.set_id(row.event_id.to_string());
    event.set_source(row.source.clone());
    event.set_type(row.event_type.clone());
    event.set_subject(row.subject.clone());
    event.set_time(Some(row.created_at));
    event.set_data(JSON_CONTENT_TYPE, row.payload.clone());
    event.set_extension(PARTITION_KEY_EXTENSION, row.partition_key.clone());
    event
}

/// The CloudEvent the relay publishes for `row`, and the context it is
/// published in: the next hop of the writer's trace (same trace id and
/// correlation id, a new span id), carried by the distributed-tracing
/// extension (`traceparent`, `tracestate`) and `correlationid`. A row
/// written outside any request starts a trace of its own.
pub fn published_event(row: &OutboxRow) -> (Event, TraceContext) {
    let hop = row.trace.next_hop();
    let mut event = to_cloudevent(row);
    set_trace(&mut event, &hop);
    (event, hop)
}

/// Why a publishing pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The database failed; nothing from the current batch was marked.
    #[error("outbox database error")]
    Database(#[from] sqlx::Error),
    /// The sink refused an event; the row keeps `published_at` null and
    /// records the attempt, and later rows wait for it.
    #[error("cannot deliver event {event_id} ({published} published before it)")]
    Deliver {
        /// The event that failed.
        event_id: Uuid,
        /// Events this pass published before the failure.
        published: usize,
        /// What the sink said.
        #[source]
        source: DeliverError,
    },
}

/// Outcome of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Published this many rows; nothing is left.
    Done(usize),
    /// Another pass holds the publishing lock; it will see our rows.
    Busy,
}

/// What delivering one channel's events of a batch achieved.
#[derive(Default)]
struct GroupOutcome<'a> {
    delivered: Vec<Uuid>,
    poisoned: Vec<(&'a OutboxRow, DeliverError)>,
    failure: Option<(&'a OutboxRow, DeliverError)>,
}

/// Whether a failed delivery marks the event as poison: refused as
/// malformed, unencodable, or refused too often. A sink that is down is
/// never poison.
fn is_poison(error: &DeliverError, attempts: i32) -> bool {
    error.is_permanent()
        || (matches!(error, DeliverError::Rejected { .. })
            && attempts.saturating_add(1) >= MAX_DELIVERY_ATTEMPTS)
}

/// The wait before an event's attempt number `attempts + 1`: half a second,
/// doubled per failure, capped at [`MAX_EVENT_BACKOFF`].
fn event_backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    Duration::from_millis(500)
        .saturating_mul(2u32.saturating_pow(exp))
        .min(MAX_EVENT_BACKOFF)
}

/// Publishes committed outbox rows to a sink. Cheap to clone: clones share
/// the pool, the sink and the wake-up signal.
#[derive(Clone)]
pub struct Outbox {
    pool: PgPool,
    sink: Arc<dyn EventSink>,
    wake: Arc<Notify>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox publishing from `pool` to `sink`.
    pub fn new(pool: PgPool, sink: Arc<dyn EventSink>) -> Self {
        Self {
            pool,
            sink,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the relay. Call right after committing a transaction that
    /// enqueued events; a wake-up while the relay is busy is remembered.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Publishes every unpublished row that is due, oldest first, channels
    /// in parallel, and returns how many were published. A failed delivery
    /// records `attempts`, `last_error` and its backoff on that row, and
    /// later events of the same channel wait behind it. Fails only when
    /// nothing at all could be delivered (the sink is down). Returns `Ok(0)`
    /// at once when another pass (in this or another process) is already
    /// publishing.
    pub async fn publish_pending(&self) -> Result<usize, PublishError> {
        match self.pass().await? {
            Pass::Done(n) => Ok(n),
            Pass::Busy => Ok(0),
        }
    }

    async fn pass(&self) -> Result<Pass, PublishError> {
        let mut published = 0;
        loop {
            let (batch, n) = self.publish_batch(published).await?;
            published += n;
            match batch {
                Batch::Busy => {
                    return Ok(if published == 0 {
                        Pass::Busy
                    } else {
                        Pass::Done(published)
                    });
                }
                Batch::Drained => return Ok(Pass::Done(published)),
                Batch::More => {}
            }
        }
    }

    /// Claims and delivers one batch in one transaction. `before` is what
    /// this pass published in earlier batches, for the error report.
    async fn publish_batch(&self, before: usize) -> Result<(Batch, usize), PublishError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(PUBLISH_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok((Batch::Busy, 0));
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT event_id, event_type, source, subject, partition_key, payload, created_at, attempts, \
                    traceparent, tracestate, correlation_id \
             FROM outbox o WHERE published_at IS NULL \
               AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
               AND NOT EXISTS ( \
                   SELECT 1 FROM outbox w WHERE w.partition_key = o.partition_key \
                     AND w.published_at IS NULL AND w.next_attempt_at > now() \
                     AND (w.created_at, w.event_id) < (o.created_at, o.event_id)) \
             ORDER BY created_at, event_id \
             LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(BATCH_SIZE)
        .fetch_all(&mut *tx)
        .await?;
        let claimed = rows.len();

        // One group per channel, each in order; groups in parallel.
        let mut groups: Vec<Vec<&OutboxRow>> = Vec::new();
        let mut group_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for row in &rows {
            let i = *group_of
                .entry(row.partition_key.as_str())
                .or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
            groups[i].push(row);
        }
        let sink = &self.sink;
        let outcomes = futures::future::join_all(groups.iter().map(|group| async move {
            let mut outcome = GroupOutcome::default();
            for row in group {
                let (event, hop) = published_event(row);
                let span = tracing::info_span!(
                    "publish",
                    event_id = %row.event_id,
                    event_type = %row.event_type,
                    trace_id = %hop.trace_id(),
                );
                let delivered = trace::scope(hop, sink.deliver(&event).instrument(span)).await;
                match delivered {
                    Ok(()) => outcome.delivered.push(row.event_id),
                    Err(e) if is_poison(&e, row.attempts) => outcome.poisoned.push((*row, e)),
                    Err(e) => {
                        outcome.failure = Some((*row, e));
                        break;
                    }
                }
            }
            outcome
        }))
        .await;

        let mut delivered = Vec::new();
        let mut first_failure = None;
        for outcome in outcomes {
            delivered.extend(outcome.delivered);
            for (row, e) in outcome.poisoned {
                let message: String = format!("{e:#}").chars().take(MAX_ERROR_CHARS).collect();
                let letter = crate::effects::store::DeadLetter {
                    source: crate::effects::store::DeadLetterSource::Outbox,
                    ref_id: row.event_id.to_string(),
                    kind: row.event_type.clone(),
                    channel_id: Some(row.partition_key.clone()),
                    payload: row.payload.clone(),
                    error: message.clone(),
                    attempts: row.attempts.saturating_add(1),
                };
                crate::effects::store::park(&mut tx, &letter).await?;
                sqlx::query(
                    "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = $2 WHERE event_id = $1",
                )
                .bind(row.event_id)
                .bind(format!("dead letter: {message}"))
                .execute(&mut *tx)
                .await?;
            }
            if let Some((row, e)) = outcome.failure {
                let message: String = format!("{e:#}").chars().take(MAX_ERROR_CHARS).collect();
                let wait = event_backoff(row.attempts.saturating_add(1));
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2, \
                     next_attempt_at = now() + make_interval(secs => $3) WHERE event_id = $1",
                )
                .bind(row.event_id)
                .bind(message)
                .bind(wait.as_secs_f64())
                .execute(&mut *tx)
                .await?;
                metrics::counter!(PUBLISH_FAILURES_TOTAL).increment(1);
                first_failure.get_or_insert((row.event_id, e));
            }
        }
        if !delivered.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE event_id = ANY($1)")
                .bind(&delivered)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;

        let n = delivered.len();
        if n > 0 {
            metrics::counter!(PUBLISHED_TOTAL).increment(n as u64);
        }
        // Every group failed: the sink itself is down; let the relay back
        // off as a whole. Otherwise the failed events back off on their own.
        if let Some((event_id, source)) = first_failure
            && n == 0
        {
            return Err(PublishError::Deliver {
                event_id,
                published: before,
                source,
            });
        }
        let batch = if i64::try_from(claimed).unwrap_or(i64::MAX) < BATCH_SIZE {
            Batch::Drained
        } else {
            Batch::More
        };
        Ok((batch, n))
    }

    /// Starts the background relay: a first pass after `first_sweep_after`
    /// (or at the first [`notify`](Self::notify), if sooner), then one on
    /// every notify and every [`SWEEP_INTERVAL`] anyway. Failures are logged
    /// and retried with exponential backoff up to [`MAX_RELAY_BACKOFF`]. The
    /// loop runs until the handle is aborted; a panicking sink is contained
    /// to the pass it happened in.
    ///
    /// The first pass picks up what an earlier process left; a function
    /// just woken from zero delays it so that the request that woke it
    /// comes first (`runtime::START_SWEEP_DELAY`), while the events that
    /// request commits still go at once.
    pub fn spawn_relay(&self, first_sweep_after: Duration) -> tokio::task::JoinHandle<()> {
        let outbox = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = outbox.wake.notified() => {}
                () = tokio::time::sleep(first_sweep_after) => {}
            }
            outbox.relay().await;
        })
    }

    async fn relay(self) {
        let mut backoff = Duration::from_millis(250);
        loop {
            // Each pass runs in its own task so that a panic in a sink
            // surfaces as a JoinError here instead of ending the relay.
            let this = self.clone();
            let outcome = tokio::spawn(async move { this.pass().await }).await;
            let failed = match outcome {
                Ok(Ok(Pass::Done(n))) => {
                    if n > 0 {
                        tracing::debug!(published = n, "outbox pass published events");
                    }
                    false
                }
                Ok(Ok(Pass::Busy)) => {
                    // Someone else is publishing right now and may have
                    // claimed its batch before our rows committed: look
                    // again shortly rather than waiting a whole sweep.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "outbox publishing failed; events stay queued");
                    true
                }
                Err(join) => {
                    tracing::error!(error = %join, retry_in_ms = backoff.as_millis() as u64, "outbox pass panicked; events stay queued");
                    true
                }
            };
            if failed {
                // Notifications during the pause are remembered by Notify and
                // trigger the next pass right after it.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RELAY_BACKOFF);
                continue;
            }
            backoff = Duration::from_millis(250);
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
        }
    }
}

/// What a batch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    /// Fewer rows than a full batch: nothing left.
    Drained,
    /// A full batch: there may be more.
    More,
    /// The publishing lock is held elsewhere.
    Busy,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use cloudevents::AttributesReader as _;
    use sqlx::Row as _;

    use super::super::{BoxFuture, RUN_CREATED, RunCreated};
    use super::*;

    /// Records what it receives; fails while `failing` is set.
    #[derive(Debug, Default)]
    struct RecordingSink {
        received: Mutex<Vec<Event>>,
        failing: AtomicBool,
        delay: Option<Duration>,
        /// Channels whose events the consumer answers with this status.
        refused: Mutex<Vec<(String, u16)>>,
    }

    impl RecordingSink {
        fn ids(&self) -> Vec<String> {
            self.received
                .lock()
                .expect("lock")
                .iter()
                .map(|e| e.id().to_owned())
                .collect()
        }
    }

    impl EventSink for RecordingSink {
        fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliverError>> {
            Box::pin(async move {
                if let Some(delay) = self.delay {
                    tokio::time::sleep(delay).await;
                }
                if self.failing.load(Ordering::SeqCst) {
                    return Err(DeliverError::Unavailable("sink is down".to_owned()));
                }
                let key = crate::events::partition_key(event).unwrap_or_default();
                let refusal = self
                    .refused
                    .lock()
                    .expect("lock")
                    .iter()
                    .find(|(channel, _)| *channel == key)
                    .map(|(_, status)| *status);
                if let Some(status) = refusal {
                    return Err(DeliverError::Rejected { target: 0, status });
                }
                self.received.lock().expect("lock").push(event.clone());
                Ok(())
            })
        }
    }

    fn run_created(channel: &str) -> NewEvent {
        let run_id = Uuid::new_v4();
        NewEvent::new(
            channel,
            Some(run_id.to_string()),
            &RunCreated {
                run_id,
                channel_id: channel.to_owned(),
            },
        )
    }

    async fn enqueue_committed(pool: &PgPool, events: Vec<NewEvent>) -> Vec<Uuid> {
        let mut tx = pool.begin().await.expect("begin");
        let mut ids = Vec::new();
        for event in events {
            ids.push(enqueue(&mut tx, "/test", event).await.expect("enqueue"));
        }
        tx.commit().await.expect("commit");
        ids
    }

    #[test]
    fn an_outbox_row_becomes_a_cloudevent_with_the_same_id_type_source_subject_and_data() {
        let run_id = Uuid::new_v4();
        let new = run_created("C42");
        let row = OutboxRow {
            event_id: run_id,
            event_type: new.event_type.to_owned(),
            source: "/coffeebuddy/slash-command".to_owned(),
            subject: new.subject.clone(),
            partition_key: new.partition_key.clone(),
            payload: new.data.clone(),
            created_at: Utc::now(),
            attempts: 0,
            trace: TraceColumns::default(),
        };

        let event = to_cloudevent(&row);

        assert_eq!(event.id(), run_id.to_string());
        assert_eq!(event.ty(), RUN_CREATED);
        assert_eq!(event.source().as_str(), "/coffeebuddy/slash-command");
        assert_eq!(event.subject(), new.subject.as_deref());
        assert_eq!(event.time(), Some(&row.created_at));
        assert_eq!(event.datacontenttype(), Some(JSON_CONTENT_TYPE));
        assert_eq!(super::super::partition_key(&event).as_deref(), Some("C42"));
        let data: RunCreated = super::super::decode_data(&event).expect("data");
        assert_eq!(serde_json::to_value(data).expect("json"), new.data);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn an_event_enqueued_in_a_rolled_back_transaction_leaves_nothing(pool: PgPool) {
        // Arrange
        let mut tx = pool.begin().await.expect("begin");
        enqueue(&mut tx, "/test", run_created("C1"))
            .await
            .expect("enqueue");

        // Act
        tx.rollback().await.expect("rollback");

        // Assert
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(count, 0);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn publish_pending_delivers_in_created_order_and_marks_rows_published(pool: PgPool) {
        // Arrange: three events in one transaction, two in a later one.
        let mut ids = enqueue_committed(
            &pool,
            vec![run_created("C1"), run_created("C2"), run_created("C1")],
        )
        .await;
        ids.extend(enqueue_committed(&pool, vec![run_created("C1"), run_created("C3")]).await);
        let sink = Arc::new(RecordingSink::default());
        let outbox = Outbox::new(pool.clone(), sink.clone());

        // Act
        let published = outbox.publish_pending().await.expect("publish");

        // Assert: every event once, each channel's in order.
        assert_eq!(published, 5);
        let delivered = sink.ids();
        let mut sorted = delivered.clone();
        sorted.sort();
        let mut expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        expected.sort();
        assert_eq!(sorted, expected);
        let c1: Vec<String> = [0, 2, 3].iter().map(|&i| ids[i].to_string()).collect();
        let c1_delivered: Vec<String> =
            delivered.into_iter().filter(|id| c1.contains(id)).collect();
        assert_eq!(c1_delivered, c1, "one channel's events keep their order");
        let unpublished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .expect("count");
        assert_eq!(unpublished, 0);
        assert_eq!(outbox.publish_pending().await.expect("again"), 0);
        assert_eq!(sink.ids().len(), 5, "nothing is delivered twice");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_failing_sink_leaves_rows_queued_with_the_attempt_recorded_until_a_later_pass(
        pool: PgPool,
    ) {
        // Arrange
        let ids = enqueue_committed(&pool, vec![run_created("C1"), run_created("C1")]).await;
        let sink = Arc::new(RecordingSink::default());
        sink.failing.store(true, Ordering::SeqCst);
        let outbox = Outbox::new(pool.clone(), sink.clone());

        // Act
        let failed = outbox.publish_pending().await;

        // Assert: the first row carries the attempt, the second was not tried.
        match failed {
            Err(PublishError::Deliver {
                event_id,
                published,
                ..
            }) => {
                assert_eq!(event_id, ids[0]);
                assert_eq!(published, 0);
            }
            other => panic!("expected a delivery failure, got {other:?}"),
        }
        let rows = sqlx::query(
            "SELECT event_id, attempts, last_error, published_at IS NULL AS pending \
             FROM outbox ORDER BY created_at",
        )
        .fetch_all(&pool)
        .await
        .expect("rows");
        assert_eq!(rows[0].get::<i32, _>("attempts"), 1);
        assert!(
            rows[0]
                .get::<Option<String>, _>("last_error")
                .expect("last_error")
                .contains("sink is down")
        );
        assert_eq!(rows[1].get::<i32, _>("attempts"), 0);
        assert!(rows.iter().all(|r| r.get::<bool, _>("pending")));

        // Act again at once: the failed event waits for its backoff, and the
        // channel's later event waits behind it.
        sink.failing.store(false, Ordering::SeqCst);
        assert_eq!(outbox.publish_pending().await.expect("publish"), 0);
        tokio::time::sleep(event_backoff(1) + Duration::from_millis(100)).await;
        let published = outbox.publish_pending().await.expect("publish");

        // Assert
        assert_eq!(published, 2);
        let expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        assert_eq!(sink.ids(), expected);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn one_channel_whose_consumer_fails_does_not_hold_back_another(pool: PgPool) {
        // Arrange: C1's consumer answers 503; C2's events are fine.
        let ids = enqueue_committed(
            &pool,
            vec![
                run_created("C1"),
                run_created("C2"),
                run_created("C1"),
                run_created("C2"),
            ],
        )
        .await;
        let sink = Arc::new(RecordingSink::default());
        sink.refused
            .lock()
            .expect("lock")
            .push(("C1".to_owned(), 503));
        let outbox = Outbox::new(pool.clone(), sink.clone());

        // Act
        let published = outbox.publish_pending().await.expect("C2 went out");

        // Assert: C2's two went out in order; C1's wait, in order, for later.
        assert_eq!(published, 2);
        assert_eq!(sink.ids(), [ids[1].to_string(), ids[3].to_string()]);
        let pending: Vec<Uuid> = sqlx::query_scalar(
            "SELECT event_id FROM outbox WHERE published_at IS NULL ORDER BY created_at, event_id",
        )
        .fetch_all(&pool)
        .await
        .expect("pending");
        let mut c1 = vec![ids[0], ids[2]];
        c1.sort();
        let mut pending_sorted = pending.clone();
        pending_sorted.sort();
        assert_eq!(pending_sorted, c1);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn an_event_refused_as_malformed_is_parked_and_does_not_block_its_channel(pool: PgPool) {
        // Arrange: the consumer refuses C9's events as malformed (400).
        let ids = enqueue_committed(&pool, vec![run_created("C9"), run_created("C1")]).await;
        let sink = Arc::new(RecordingSink::default());
        sink.refused
            .lock()
            .expect("lock")
            .push(("C9".to_owned(), 400));
        let outbox = Outbox::new(pool.clone(), sink.clone());

        // Act
        outbox.publish_pending().await.expect("publish");

        // Assert: the good event went out; the poison one is a dead letter
        // and no longer pending.
        assert_eq!(sink.ids(), [ids[1].to_string()]);
        let dead: Vec<(String, String)> = sqlx::query_as("SELECT source, ref_id FROM dead_letters")
            .fetch_all(&pool)
            .await
            .expect("dead letters");
        assert_eq!(dead, [("outbox".to_owned(), ids[0].to_string())]);
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .expect("count");
        assert_eq!(pending, 0);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn concurrent_passes_never_deliver_the_same_row_twice(pool: PgPool) {
        // Arrange: a slow sink so the passes overlap.
        let events = (0..30)
            .map(|i| run_created(&format!("C{}", i % 3)))
            .collect();
        let ids = enqueue_committed(&pool, events).await;
        let sink = Arc::new(RecordingSink {
            delay: Some(Duration::from_millis(5)),
            ..RecordingSink::default()
        });
        let outboxes: Vec<Outbox> = (0..4)
            .map(|_| Outbox::new(pool.clone(), sink.clone()))
            .collect();

        // Act
        let mut set = tokio::task::JoinSet::new();
        for outbox in outboxes.clone() {
            set.spawn(async move { outbox.publish_pending().await });
        }
        let mut total = 0;
        while let Some(joined) = set.join_next().await {
            total += joined.expect("no panic").expect("publish");
        }
        // A pass that found the lock busy published nothing; finish the job.
        total += outboxes[0].publish_pending().await.expect("publish");

        // Assert: each once, and each channel's in order (channels are
        // delivered in parallel, so their interleaving may vary).
        assert_eq!(total, 30);
        let delivered = sink.ids();
        let mut sorted = delivered.clone();
        sorted.sort();
        let mut expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        expected.sort();
        assert_eq!(sorted, expected, "each once");
        for channel in 0..3 {
            let in_channel: Vec<String> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 3 == channel)
                .map(|(_, id)| id.to_string())
                .collect();
            let seen: Vec<String> = delivered
                .iter()
                .filter(|id| in_channel.contains(id))
                .cloned()
                .collect();
            assert_eq!(seen, in_channel, "channel C{channel} in order");
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_relay_publishes_soon_after_a_notify(pool: PgPool) {
        // Arrange
        let sink = Arc::new(RecordingSink::default());
        let outbox = Outbox::new(pool.clone(), sink.clone());
        let relay = outbox.spawn_relay(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(100)).await;

        // Act
        let ids = enqueue_committed(&pool, vec![run_created("C9")]).await;
        outbox.notify();

        // Assert: well before the periodic sweep would have run.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while sink.ids().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        relay.abort();
        assert_eq!(sink.ids(), vec![ids[0].to_string()]);
    }

    /// Polls until the sink has seen something, for at most `limit`.
    async fn wait_for_publication(sink: &RecordingSink, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while sink.ids().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_delayed_first_sweep_leaves_old_events_until_then_but_a_notify_goes_at_once(
        pool: PgPool,
    ) {
        // Arrange: an event an earlier process left behind.
        let sink = Arc::new(RecordingSink::default());
        let outbox = Outbox::new(pool.clone(), sink.clone());
        let left = enqueue_committed(&pool, vec![run_created("C1")]).await;

        // Act: a relay whose first sweep is far off.
        let relay = outbox.spawn_relay(Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let untouched = sink.ids();
        // A handler commits and wakes it.
        let fresh = enqueue_committed(&pool, vec![run_created("C2")]).await;
        outbox.notify();
        wait_for_publication(&sink, Duration::from_secs(5)).await;
        relay.abort();

        // Assert: nothing before the wake; then the pass it started
        // published both, long before the 30 s were up.
        assert!(untouched.is_empty(), "swept early: {untouched:?}");
        let mut published = sink.ids();
        published.sort();
        let mut expected = vec![left[0].to_string(), fresh[0].to_string()];
        expected.sort();
        assert_eq!(published, expected);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_delayed_first_sweep_still_publishes_what_was_left_without_any_notify(pool: PgPool) {
        // Arrange
        let sink = Arc::new(RecordingSink::default());
        let outbox = Outbox::new(pool.clone(), sink.clone());
        let left = enqueue_committed(&pool, vec![run_created("C3")]).await;

        // Act
        let relay = outbox.spawn_relay(Duration::from_millis(200));
        wait_for_publication(&sink, Duration::from_secs(5)).await;
        relay.abort();

        // Assert: well before the periodic sweep (5 s) would have run.
        assert_eq!(sink.ids(), vec![left[0].to_string()]);
    }
}
