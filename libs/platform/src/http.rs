//! The HTTP bootstrap every service uses: operational endpoints (`/healthz`, `/readyz`,
//! `/metrics`), request ids (taken from or added as `x-request-id`, echoed back, put in the log
//! span and in a task-local for outgoing calls), access logs, Prometheus request metrics, body
//! size limit, request timeout, panics turned into problem+json, and graceful shutdown.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use uuid::Uuid;

use crate::{
    problem::{ApiError, not_found_fallback},
    telemetry::{REQUEST_ID_HEADER, with_request_id},
};

/// HTTP server settings (`http.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on (env `BOXOFFICE_HTTP__HOST`).
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one (env `BOXOFFICE_HTTP__PORT`).
    pub port: u16,
    /// Largest accepted request body in bytes (env `BOXOFFICE_HTTP__BODY_LIMIT_BYTES`).
    pub body_limit_bytes: usize,
    /// A request that takes longer is answered 503 `timeout` (env
    /// `BOXOFFICE_HTTP__REQUEST_TIMEOUT_MS`). Streams are exempt.
    pub request_timeout_ms: u64,
    /// How long in-flight requests may take to finish at shutdown (env
    /// `BOXOFFICE_HTTP__SHUTDOWN_GRACE_MS`).
    pub shutdown_grace_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            body_limit_bytes: 256 * 1024,
            request_timeout_ms: 15_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The named dependency checks behind `/readyz`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Check)>,
}

impl Readiness {
    /// Adds a named check; it passes when the future returns `Ok`.
    pub fn check<F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name.into(), Arc::new(move || Box::pin(f()) as BoxFuture<_>)));
        self
    }

    /// Adds a check that the PostgreSQL pool answers `SELECT 1`.
    pub fn postgres(self, pool: sqlx::PgPool) -> Self {
        self.check("postgres", move || {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT 1")
                    .execute(&pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
    }

    /// Runs every check (each bounded by 2 s) and reports `(all_ok, per-check results)`.
    pub async fn run(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let results = futures::future::join_all(self.checks.iter().map(|(name, check)| {
            let fut = check();
            async move {
                let outcome = match tokio::time::timeout(Duration::from_secs(2), fut).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("timed out after 2s".to_owned()),
                };
                (name.clone(), outcome)
            }
        }))
        .await;
        let mut ok = true;
        let mut map = serde_json::Map::new();
        for (name, outcome) in results {
            let value = match outcome {
                Ok(()) => json!({"status": "up"}),
                Err(e) => {
                    ok = false;
                    json!({"status": "down", "error": e})
                }
            };
            map.insert(name, value);
        }
        (ok, map)
    }
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (only in odd test set-ups): keep a private one.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

#[derive(Clone)]
struct OpsState {
    service: Arc<str>,
    readiness: Readiness,
}

async fn healthz(State(ops): State<OpsState>) -> impl IntoResponse {
    Json(json!({"status": "ok", "service": &*ops.service}))
}

async fn readyz(State(ops): State<OpsState>) -> Response {
    let (ok, checks) = ops.readiness.run().await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ok { "ready" } else { "not_ready" },
            "service": &*ops.service,
            "checks": checks,
        })),
    )
        .into_response()
}

async fn metrics_endpoint() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        prometheus().render(),
    )
}

/// Takes the request id from `x-request-id` (or makes one), echoes it on the response, and runs
/// the request inside a log span and a task-local that carry it.
async fn request_context(
    State(service): State<Arc<str>>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", service = %service, request_id = %id, %method, %path);
    let started = Instant::now();
    let mut response = {
        use tracing::Instrument;
        with_request_id(id.clone(), next.run(req))
            .instrument(span.clone())
            .await
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let _enter = span.enter();
    if !is_ops_path(&path) {
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        );
    }
    let labels = [
        ("service", service.to_string()),
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("boxoffice_http_requests_total", &labels).increment(1);
    metrics::histogram!("boxoffice_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

fn is_ops_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Answers 503 `timeout` when a request runs past `limit`. Event streams are exempt.
async fn timeout_layer(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let streaming = req
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
        || req.uri().path().ends_with("/stream");
    if streaming {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long and was abandoned",
        )
        .into_response(),
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    ApiError::internal("handler panicked").into_response()
}

/// Wraps a service's routes with the operational endpoints and the shared middleware.
pub fn app(service: &str, routes: Router, readiness: Readiness, settings: &HttpSettings) -> Router {
    // Install the recorder before the first request records anything.
    prometheus();
    let service: Arc<str> = Arc::from(service);
    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_endpoint))
        .with_state(OpsState {
            service: service.clone(),
            readiness,
        });
    routes
        .merge(ops)
        .fallback(not_found_fallback)
        .layer(middleware::from_fn_with_state(
            Duration::from_millis(settings.request_timeout_ms),
            timeout_layer,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            settings.body_limit_bytes,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(service, request_context))
}

/// A bound listener, so callers learn the port before serving.
pub async fn bind(settings: &HttpSettings) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(settings.host, settings.port)).await
}

/// Binds and serves `routes` (wrapped by [`app`]) until `shutdown` is cancelled, then stops
/// accepting connections, ends event streams and lets in-flight requests finish for up to
/// `shutdown_grace_ms`.
pub async fn serve(
    service: &str,
    routes: Router,
    readiness: Readiness,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = bind(settings).await?;
    serve_on(listener, service, routes, readiness, settings, shutdown).await
}

/// Like [`serve`], on an already bound listener.
pub async fn serve_on(
    listener: TcpListener,
    service: &str,
    routes: Router,
    readiness: Readiness,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(service, %addr, "listening");
    let app = app(service, routes, readiness, settings).layer(middleware::from_fn_with_state(
        shutdown.clone(),
        end_streams_at_shutdown,
    ));
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    let signal = shutdown.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        signal.cancelled().await;
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(service, "in-flight requests did not finish within the grace period");
            Ok(())
        }
    }
}

/// Ends an event stream's body when `shutdown` is cancelled. An event stream never ends by itself:
/// without this, its connection would hold the graceful drain until the grace period ran out, and
/// go on streaming from its own task after the server had returned.
async fn end_streams_at_shutdown(
    State(shutdown): State<CancellationToken>,
    req: Request,
    next: Next,
) -> Response {
    use futures::StreamExt;
    let response = next.run(req).await;
    let streaming = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !streaming {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body
        .into_data_stream()
        .take_until(shutdown.cancelled_owned());
    Response::from_parts(parts, Body::from_stream(body))
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
            () = term => tracing::info!("SIGTERM received, shutting down"),
        }
        trigger.cancel();
    });
    token
}
