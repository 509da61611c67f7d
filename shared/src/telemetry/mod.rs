//! Tracing setup: JSON (or pretty) log lines on stdout, filtered by `LOG_LEVEL`.
//!
//! The writer is injectable ([`subscriber`] takes a `MakeWriter`), so tests
//! can capture log lines and assert on them, e.g. that every line of a request
//! carries its correlation id. Span fields are flattened into each line's
//! `span`/`spans` objects, which is how the correlation id reaches every line.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogFormat, LogSettings};

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
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .flatten_event(true)
                .finish(),
        ),
        // Colour only for a person at a terminal, never into a log file.
        LogFormat::Pretty => Box::new(
            builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
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
