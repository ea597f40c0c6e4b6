//! Log output of `tessera serve`: one event per line on stderr, as text or JSON, filtered
//! by `TESSERA_LOG` (an `EnvFilter` directive such as `debug` or `info,tessera_server=trace`).
//! What gets logged never includes tokens, secrets, passwords, cookies or `Authorization`
//! values; the e2e suite checks that at trace level (docs/operations.md, Logs).

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// The default filter: the server at info, chatty dependencies quieter.
const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,tower_http=info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable text (`TIME LEVEL span{fields}: message fields`).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, fields, the current span and
    /// its parents (so every line of a request carries its `request_id`).
    Json,
}

/// Installs the global subscriber writing to stderr.
pub(crate) fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
