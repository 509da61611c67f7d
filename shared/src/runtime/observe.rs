//! Per-request observability: correlation id, trace context, access log,
//! latency histogram.
//!
//! The correlation id comes from `X-Correlation-ID` or `X-Request-ID` (Kong's
//! correlation-id plugin sets one of them), or is generated. It is stored as a
//! request extension, recorded on the request span, and echoed in the
//! response. The W3C trace context continues the caller's `traceparent`
//! (and `tracestate`) when valid, else starts a new trace; with the
//! correlation id it is the request's [`trace`] context for its whole task,
//! so every log line of the request and every event and effect it writes
//! carry both.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::metrics::HTTP_REQUEST_DURATION;
use crate::trace::{self, TraceContext};

/// The header we read first and always answer with.
pub const CORRELATION_ID_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");
/// Accepted as a fallback on the way in.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's correlation id, available to handlers as an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub String);

/// W3C trace context headers.
pub const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(trace::TRACEPARENT);
/// W3C trace state header, kept only with a valid `traceparent`.
pub const TRACESTATE_HEADER: HeaderName = HeaderName::from_static(trace::TRACESTATE);

/// A caller-supplied id is used only if it is short and plain, so it cannot
/// forge log structure or bloat every line.
fn acceptable(value: &HeaderValue) -> Option<&str> {
    trace::parse_correlation_id(value.to_str().ok()?)
}

/// The request's trace context: the caller's correlation id and trace
/// when valid, fresh ones otherwise.
fn trace_context(req: &Request) -> TraceContext {
    let header = |name: &HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let correlation_id = [CORRELATION_ID_HEADER, REQUEST_ID_HEADER]
        .iter()
        .find_map(|h| req.headers().get(h).and_then(acceptable));
    TraceContext::continue_from(
        header(&TRACEPARENT_HEADER),
        header(&TRACESTATE_HEADER),
        correlation_id,
    )
}

/// Whether a path is platform noise (probes, scrapes) that should not fill
/// the logs at `info`.
fn is_quiet(path: &str, metrics_path: &str) -> bool {
    path.starts_with("/health/") || path == metrics_path
}

/// The middleware. `metrics_path` is captured by the closure in `runtime`.
pub(crate) async fn observe(
    metrics_path: std::sync::Arc<str>,
    mut req: Request,
    next: Next,
) -> Response {
    let context = trace_context(&req);
    let id = context.correlation_id.clone();
    let trace_id = context.trace_id();
    req.extensions_mut().insert(CorrelationId(id.clone()));
    // Route templates, not raw paths, keep label cardinality bounded.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let quiet = is_quiet(&path, &metrics_path);

    // Query strings are never logged: they may carry tokens.
    let span = tracing::info_span!("request", correlation_id = %id, trace_id = %trace_id, method = %method, path = %path);
    trace::scope(context, async move {
        let started = Instant::now();
        let response = next.run(req).instrument(span.clone()).await;
        finish(response, started, &span, route, &method, quiet, &id)
    })
    .await
}

/// Records the request's latency, writes its access line and echoes the
/// correlation id.
fn finish(
    mut response: Response,
    started: Instant,
    span: &tracing::Span,
    route: String,
    method: &axum::http::Method,
    quiet: bool,
    id: &str,
) -> Response {
    let elapsed = started.elapsed();

    let status = response.status();
    metrics::histogram!(
        HTTP_REQUEST_DURATION,
        "route" => route,
        "method" => method.to_string(),
        "status" => status.as_str().to_owned(),
    )
    .record(elapsed.as_secs_f64());

    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms, "request failed");
        } else if quiet {
            tracing::debug!(status = status.as_u16(), latency_ms, "request completed");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "request completed");
        }
    });

    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(CORRELATION_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_are_accepted_and_odd_ones_are_replaced() {
        assert_eq!(
            acceptable(&HeaderValue::from_static("abc-123_x.y:z")),
            Some("abc-123_x.y:z")
        );
        assert_eq!(acceptable(&HeaderValue::from_static("")), None);
        assert_eq!(acceptable(&HeaderValue::from_static("a b")), None);
        assert_eq!(acceptable(&HeaderValue::from_static("{\"x\":1}")), None);
        let long = "a".repeat(129);
        assert_eq!(acceptable(&HeaderValue::from_str(&long).unwrap()), None);
    }
}
