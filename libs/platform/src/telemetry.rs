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

/// Keeps the trace exporter alive; dropping it flushes and stops the export, and writes out the
/// log lines still queued for stderr.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    logs: Option<background::Flush>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Writes out the log lines still queued, so that what is written to stderr directly next
    /// comes after them (a last word for a person reading the terminal).
    pub fn flush_logs(&self) {
        if let Some(logs) = &self.logs {
            logs.now();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(logs) = self.logs.take() {
            logs.now();
        }
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
    let mut logs = None;
    let fmt_layer = if json {
        // Written by a thread of its own, in batches: a busy server logs a line per request, and
        // a write to stderr per line (under stderr's lock, from every worker thread) costs more
        // than formatting it.
        let writer = match background::Writer::start() {
            Ok((writer, flush)) => {
                logs = Some(flush);
                fmt::writer::BoxMakeWriter::new(writer)
            }
            Err(_) => fmt::writer::BoxMakeWriter::new(std::io::stderr),
        };
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
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
        logs: if installed { logs } else { None },
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

/// Log lines to stderr through a shared buffer and a thread that writes them in batches. A line
/// is appended whole (the formatter writes a line at once, then drops the writer); only the
/// first line into an empty buffer wakes the thread, which then lets more gather for a moment
/// (`GATHER`) and writes them all in one go. A logger waits when `LIMIT` bytes are waiting
/// (nothing is dropped). The guard's flush writes out the rest at the end of the process.
mod background {
    use std::{
        io::Write,
        sync::{Arc, Condvar, Mutex, MutexGuard},
        time::Duration,
    };

    /// How long the thread lets lines gather after the first wakes it.
    const GATHER: Duration = Duration::from_millis(2);
    /// Bytes waiting before a logger waits for the thread.
    const LIMIT: usize = 4 << 20;

    struct Shared {
        pending: Mutex<Vec<u8>>,
        /// Signalled when the first line arrives in an empty buffer.
        arrived: Condvar,
        /// Signalled when the thread took the buffer.
        taken: Condvar,
        /// Where batches go (stderr), held while one is written so they arrive in order.
        out: Mutex<Box<dyn Write + Send>>,
    }

    impl Shared {
        fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
            self.pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        /// Takes what is waiting and writes it, in order with every other batch.
        fn write_out(&self, mut pending: MutexGuard<'_, Vec<u8>>, spare: &mut Vec<u8>) {
            std::mem::swap(&mut *pending, spare);
            let mut out = self
                .out
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            drop(pending);
            self.taken.notify_all();
            if !spare.is_empty() {
                let _ = out.write_all(spare);
                let _ = out.flush();
            }
            drop(out);
            spare.clear();
        }
    }

    /// Makes one writer per log line.
    pub struct Writer {
        shared: Arc<Shared>,
    }

    /// Writes out what is waiting.
    pub struct Flush {
        shared: Arc<Shared>,
    }

    impl Writer {
        pub fn start() -> std::io::Result<(Self, Flush)> {
            Self::start_to(Box::new(std::io::stderr()))
        }

        fn start_to(out: Box<dyn Write + Send>) -> std::io::Result<(Self, Flush)> {
            let shared = Arc::new(Shared {
                pending: Mutex::default(),
                arrived: Condvar::new(),
                taken: Condvar::new(),
                out: Mutex::new(out),
            });
            let worker = shared.clone();
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || run(&worker))?;
            Ok((
                Self {
                    shared: shared.clone(),
                },
                Flush { shared },
            ))
        }
    }

    fn run(shared: &Shared) {
        let mut spare = Vec::new();
        loop {
            let mut pending = shared.pending();
            while pending.is_empty() {
                pending = shared
                    .arrived
                    .wait(pending)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            drop(pending);
            std::thread::sleep(GATHER);
            shared.write_out(shared.pending(), &mut spare);
        }
    }

    impl Flush {
        /// Writes out every line logged before this call.
        pub fn now(&self) {
            self.shared
                .write_out(self.shared.pending(), &mut Vec::new());
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
        type Writer = Line<'a>;

        fn make_writer(&'a self) -> Self::Writer {
            Line {
                buf: Vec::new(),
                shared: &self.shared,
            }
        }
    }

    /// One log line on its way to the buffer (appended when dropped).
    pub struct Line<'a> {
        buf: Vec<u8>,
        shared: &'a Shared,
    }

    impl Write for Line<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.buf.is_empty() {
                // The formatter hands over the whole line in one write: keep it as it is.
                self.buf = bytes.to_vec();
            } else {
                self.buf.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for Line<'_> {
        fn drop(&mut self) {
            if self.buf.is_empty() {
                return;
            }
            let mut pending = self.shared.pending();
            while pending.len() >= LIMIT {
                pending = self
                    .shared
                    .taken
                    .wait(pending)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            let first = pending.is_empty();
            pending.extend_from_slice(&self.buf);
            drop(pending);
            if first {
                self.shared.arrived.notify_one();
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use std::sync::{Arc, Mutex};

        use tracing_subscriber::fmt::MakeWriter;

        use super::*;

        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);

        impl Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        #[test]
        fn every_line_arrives_whole_and_in_each_threads_order() {
            let sink = Sink::default();
            let (writer, flush) = Writer::start_to(Box::new(sink.clone())).unwrap();
            let writer = Arc::new(writer);
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let writer = writer.clone();
                    std::thread::spawn(move || {
                        for i in 0..5_000 {
                            let mut line = writer.make_writer();
                            // In two writes: a line is sent whole all the same.
                            write!(line, "{t} ").unwrap();
                            writeln!(line, "{i}").unwrap();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            flush.now();
            let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            let mut next = [0u32; 4];
            for line in text.lines() {
                let (t, i) = line.split_once(' ').unwrap();
                let (t, i): (usize, u32) = (t.parse().unwrap(), i.parse().unwrap());
                assert_eq!(i, next[t], "thread {t}'s lines out of order");
                next[t] += 1;
            }
            assert_eq!(next, [5_000; 4], "every line written once");
        }
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
