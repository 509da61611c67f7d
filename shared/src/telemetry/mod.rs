//! Tracing setup: JSON (or pretty) log lines on stdout, filtered by `LOG_LEVEL`.
//!
//! The writer is injectable ([`subscriber`] takes a `MakeWriter`), so tests
//! can capture log lines and assert on them, e.g. that every line of a request
//! carries its correlation id. Span fields are flattened into each line's
//! `span` object (the current span's fields).
//!
//! Every line logged on behalf of a request, an event or an effect also
//! carries, at the top level, `trace_id`, `span_id` and `correlation_id`
//! from the current [`crate::trace`] context, whichever spans are open: so
//! `grep <trace id>` over every function's logs follows one Slack request
//! to its last DM. In the pretty format they open the line instead.

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogFormat, LogSettings};
use crate::trace;

/// The top-level log field holding the trace id (contract for operators'
/// queries: README, "Follow one request").
pub const TRACE_ID_FIELD: &str = "trace_id";
/// The top-level log field holding this hop's span id.
pub const SPAN_ID_FIELD: &str = "span_id";
/// The top-level log field holding the Slack request's correlation id.
pub const CORRELATION_ID_FIELD: &str = "correlation_id";

/// Wraps an event formatter to put the current trace context on each line.
#[derive(Debug)]
struct WithTrace<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithTrace<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some(context) = trace::current() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let trace_id = context.trace_id();
        let span_id = context.traceparent.span_id();
        if !self.json {
            write!(
                writer,
                "{TRACE_ID_FIELD}={trace_id} {CORRELATION_ID_FIELD}={} ",
                context.correlation_id
            )?;
            return self.inner.format_event(ctx, writer, event);
        }
        // The JSON formatter writes one object per line: open it with ours.
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let Some(rest) = line.strip_prefix('{') else {
            return writer.write_str(&line);
        };
        // Hex ids need no escaping; the correlation id is plain by
        // construction, and escaped anyway.
        let correlation =
            serde_json::to_string(&context.correlation_id).unwrap_or_else(|_| "\"\"".to_owned());
        let separator = if rest.starts_with('}') { "" } else { "," };
        write!(
            writer,
            "{{\"{TRACE_ID_FIELD}\":\"{trace_id}\",\"{SPAN_ID_FIELD}\":\"{span_id}\",\"{CORRELATION_ID_FIELD}\":{correlation}{separator}{rest}"
        )
    }
}

/// Builds a subscriber writing to `sink`; does not install it.
pub fn subscriber<W>(settings: &LogSettings, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // The directive was validated when the settings were loaded; falling back
    // to `info` only guards against a caller building LogSettings by hand.
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(sink);
    match settings.format {
        LogFormat::Json => Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(WithTrace {
                    inner: fmt::format()
                        .json()
                        .with_current_span(true)
                        .with_span_list(false)
                        .flatten_event(true),
                    json: true,
                })
                .finish(),
        ),
        // Colour only for a person at a terminal, never into a log file.
        LogFormat::Pretty => Box::new(
            builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .event_format(WithTrace {
                    inner: fmt::format(),
                    json: false,
                })
                .finish(),
        ),
    }
}

/// Installs the process-wide subscriber writing to stdout.
///
/// Returns an error if one is already installed (a second call in the same
/// process is a programming error, except in tests, which use [`subscriber`]
/// with `tracing::subscriber::set_default` instead).
pub fn init(settings: &LogSettings) -> Result<(), tracing::subscriber::SetGlobalDefaultError> {
    tracing::subscriber::set_global_default(subscriber(settings, std::io::stdout))
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::trace::TraceContext;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn lines(buffer: &Buffer) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&buffer.0.lock().expect("lock"))
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    }

    #[tokio::test]
    async fn a_line_inside_a_trace_carries_its_ids_at_the_top_even_under_nested_spans() {
        // Arrange
        let buffer = Buffer::default();
        let settings = LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Json,
        };
        let _guard = tracing::subscriber::set_default(subscriber(&settings, buffer.clone()));
        let context = TraceContext::continue_from(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None,
            Some("kong-7"),
        );

        // Act
        tracing::info!("outside");
        trace::scope(context.clone(), async {
            let outer = tracing::info_span!("request", path = "/x");
            let _outer = outer.enter();
            let inner = tracing::info_span!("handler", channel_id = "C1");
            let _inner = inner.enter();
            tracing::info!(order = "a \"quoted\" latte", "inside");
        })
        .await;

        // Assert
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].get(TRACE_ID_FIELD).is_none(), "{}", lines[0]);
        let inside = &lines[1];
        assert_eq!(inside[TRACE_ID_FIELD], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(inside[SPAN_ID_FIELD], context.traceparent.span_id());
        assert_eq!(inside[CORRELATION_ID_FIELD], "kong-7");
        assert_eq!(inside["message"], "inside");
        assert_eq!(inside["order"], "a \"quoted\" latte");
        assert_eq!(inside["span"]["channel_id"], "C1");
    }
}
