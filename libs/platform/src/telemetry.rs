//! Logs and request ids. Logs are JSON (one object a line) unless a terminal is attached or
//! `log.format = "pretty"`; the level filter follows `RUST_LOG` syntax. The request id of the
//! request being served is kept in a task-local so outgoing calls carry it on.

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// The header that carries the request id across services.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON unless stderr is a terminal.
    #[default]
    Auto,
    /// One JSON object a line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Log settings (`log.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `auto`, `json` or `pretty` (env `BOXOFFICE_LOG__FORMAT`).
    pub format: LogFormat,
    /// Level filter in `RUST_LOG` syntax (env `BOXOFFICE_LOG__LEVEL`); `RUST_LOG` wins when set.
    pub level: String,
    /// OTLP/HTTP endpoint for traces (env `BOXOFFICE_LOG__OTLP_ENDPOINT`); unset = no export.
    pub otlp_endpoint: Option<String>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info,sqlx=warn,rdkafka=warn,tower_http=info".into(),
            otlp_endpoint: None,
        }
    }
}

/// Installs the global subscriber. Safe to call twice (the second call is a no-op).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    if result.is_ok() && settings.otlp_endpoint.is_some() {
        tracing::warn!(
            "log.otlp_endpoint is set but this build exports no OpenTelemetry traces yet; \
             request ids are in every log line"
        );
    }
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` with `id` as the current request id.
pub async fn with_request_id<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The request id of the request being served, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Adds the current request id to an outgoing request.
pub fn propagate(builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match current_request_id() {
        Some(id) => builder.header(REQUEST_ID_HEADER, id),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_id_is_scoped_to_the_task() {
        assert_eq!(current_request_id(), None);
        let seen = with_request_id("abc".into(), async { current_request_id() }).await;
        assert_eq!(seen.as_deref(), Some("abc"));
        assert_eq!(current_request_id(), None);
    }

    #[tokio::test]
    async fn outgoing_requests_carry_the_id() {
        let client = reqwest::Client::new();
        let req = with_request_id("rid-1".into(), async {
            propagate(client.get("http://127.0.0.1:1/"))
                .build()
                .unwrap()
        })
        .await;
        assert_eq!(req.headers()[REQUEST_ID_HEADER], "rid-1");
    }
}
