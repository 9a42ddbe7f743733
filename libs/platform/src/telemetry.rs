//! Logs and request ids. Logs are JSON (one object a line) unless a terminal is attached or
//! `log.format = "pretty"`; the level filter follows `RUST_LOG` syntax. Spans are exported as
//! OpenTelemetry traces over OTLP/HTTP when `log.otlp_endpoint` is set. The request id of the
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
    /// OTLP/HTTP collector for traces, e.g. `http://otel-collector:4318` (env
    /// `BOXOFFICE_LOG__OTLP_ENDPOINT`); unset = no export.
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

/// Keeps the trace exporter alive; dropping it flushes and stops the export.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "flushing traces at exit failed");
        }
    }
}

/// The OTLP/HTTP traces URL for a configured endpoint: a base URL gets `/v1/traces` appended.
pub fn otlp_traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    if trimmed.ends_with("/v1/traces") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

fn otlp_provider(
    endpoint: &str,
    service: &str,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(otlp_traces_url(endpoint))
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Installs the global subscriber for `service`, with OTLP trace export when
/// `log.otlp_endpoint` is set. Safe to call twice (the second call installs nothing).
pub fn init(settings: &LogSettings, service: &str) -> TelemetryGuard {
    use opentelemetry::trace::TracerProvider as _;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let (provider, export_error) = match settings.otlp_endpoint.as_deref() {
        Some(endpoint) => match otlp_provider(endpoint, service) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("boxoffice")));
    let fmt_layer = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel)
        .try_init()
        .is_ok();
    if let Some(e) = export_error {
        tracing::warn!(error = %e, "log.otlp_endpoint is set but the exporter could not start");
    }
    TelemetryGuard {
        provider: if installed { provider } else { None },
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
