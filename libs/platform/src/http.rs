//! The HTTP bootstrap every service uses: operational endpoints (`/healthz`, `/readyz`,
//! `/metrics`), request ids (taken from or added as `x-request-id`, echoed back, put in the log
//! span and in a task-local for outgoing calls), access logs, Prometheus request metrics, body
//! size limit, request timeout, every client error and panic turned into problem+json, and a
//! graceful shutdown that drains: `/readyz` answers 503 first (for `http.drain_delay_ms`, so a
//! load balancer stops sending), then the listener closes, event streams end and in-flight
//! requests finish (up to `http.shutdown_grace_ms`).
//!
//! A service that faces the internet (the gateway) marks its [`Readiness`]
//! [public](Readiness::public): its `/readyz` then says only ready or not unless the request
//! passes the gate (an administrator's token), and it serves no `/metrics`; the details and the
//! metrics are on its ops listener ([`serve_ops_on`]).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
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
    problem::{ApiError, client_errors_as_problems, not_found_fallback},
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
    /// How long in-flight requests may take to finish at shutdown, once the listener has closed
    /// (env `BOXOFFICE_HTTP__SHUTDOWN_GRACE_MS`).
    pub shutdown_grace_ms: u64,
    /// How long `/readyz` answers 503 at shutdown before the listener closes, while requests are
    /// still served, so a load balancer stops sending first (env `BOXOFFICE_HTTP__DRAIN_DELAY_MS`).
    /// Unset: 5 s in distributed mode (`boxoffice serve`), 0 in standalone and in tests.
    pub drain_delay_ms: Option<u64>,
    /// How long background tasks (relays, consumers, sweepers) may take to stop once the servers
    /// have, all together (env `BOXOFFICE_HTTP__TASKS_GRACE_MS`); the ones still running then are
    /// aborted.
    pub tasks_grace_ms: u64,
}

impl HttpSettings {
    /// The drain delay, `default_ms` when unset.
    pub fn drain_delay(&self, default_ms: u64) -> Duration {
        Duration::from_millis(self.drain_delay_ms.unwrap_or(default_ms))
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            body_limit_bytes: 256 * 1024,
            request_timeout_ms: 15_000,
            shutdown_grace_ms: 10_000,
            drain_delay_ms: None,
            tasks_grace_ms: 10_000,
        }
    }
}

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Decides from a request's headers whether it may see readiness details on a public port.
type Gate = Arc<dyn Fn(&HeaderMap) -> BoxFuture<'static, bool> + Send + Sync>;

#[derive(Clone)]
struct Entry {
    name: String,
    check: Check,
    /// Whether a failure makes the service unready (else it is only reported).
    required: bool,
}

/// The named dependency checks behind `/readyz`, and who may see them.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Entry>,
    public: Option<Gate>,
    /// Served on an ops listener (only the operational endpoints).
    ops_only: bool,
}

impl Readiness {
    /// Adds a named check; the service is ready only when it passes (the future returns `Ok`).
    pub fn check<F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.entry(name.into(), true, f)
    }

    /// Adds a named check that is reported in the details but does not make the service unready
    /// (the gateway's upstreams: one sick upstream must not take the whole door out of rotation).
    pub fn report<F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.entry(name.into(), false, f)
    }

    fn entry<F, Fut>(mut self, name: String, required: bool, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(f()) as BoxFuture<_>);
        self.checks.push(Entry {
            name,
            check,
            required,
        });
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

    /// Marks the service as facing the internet: `/readyz` answers only `{"status":"ready"}` or
    /// 503 `{"status":"not_ready"}` unless `gate` accepts the request's headers, and `/metrics` is
    /// not served (404). The details and the metrics stay on the ops listener ([`serve_ops_on`]).
    pub fn public<F, Fut>(mut self, gate: F) -> Self
    where
        F: Fn(&HeaderMap) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.public = Some(Arc::new(move |headers| {
            Box::pin(gate(headers)) as BoxFuture<_>
        }));
        self
    }

    /// The same checks, with every detail shown to anyone (for an ops listener).
    pub fn internal(mut self) -> Self {
        self.public = None;
        self
    }

    /// Whether [`Readiness::public`] applies.
    pub fn is_public(&self) -> bool {
        self.public.is_some()
    }

    /// Runs every check (each bounded by 2 s) and reports `(ready, per-check results)`: ready
    /// when every required check passes.
    pub async fn run(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        self.run_checks(true).await
    }

    /// Runs the required checks only, or every check with `all`.
    async fn run_checks(&self, all: bool) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let entries = self.checks.iter().filter(|e| all || e.required);
        let results = futures::future::join_all(entries.map(|entry| {
            let fut = (entry.check)();
            async move {
                let outcome = match tokio::time::timeout(Duration::from_secs(2), fut).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("timed out after 2s".to_owned()),
                };
                (entry, outcome)
            }
        }))
        .await;
        let mut ok = true;
        let mut map = serde_json::Map::new();
        for (entry, outcome) in results {
            let mut value = match outcome {
                Ok(()) => json!({"status": "up"}),
                Err(e) => {
                    ok &= !entry.required;
                    json!({"status": "down", "error": e})
                }
            };
            if !entry.required {
                value["required"] = json!(false);
            }
            map.insert(entry.name.clone(), value);
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
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (only in odd test set-ups): keep a private one.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        };
        // A histogram keeps every sample until upkeep folds them into its buckets, and with
        // `install_recorder` nothing runs upkeep but a scrape: unscraped, a busy process grew
        // by 8 bytes per sample per histogram (2 GB after an hour of load tests). This thread
        // folds them every few seconds, scraped or not.
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(METRICS_UPKEEP);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "no metrics upkeep thread: histograms grow until scraped");
        }
        handle
    })
}

/// How often histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct OpsState {
    service: Arc<str>,
    readiness: Readiness,
}

async fn healthz(State(ops): State<OpsState>) -> impl IntoResponse {
    Json(json!({"status": "ok", "service": &*ops.service}))
}

async fn readyz(State(ops): State<OpsState>, headers: HeaderMap) -> Response {
    let detail = match &ops.readiness.public {
        None => true,
        Some(gate) => gate(&headers).await,
    };
    // A bare answer needs only what decides it: reported checks (upstreams) are not run.
    let (ok, checks) = ops.readiness.run_checks(detail).await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if ok { "ready" } else { "not_ready" };
    let body = if detail {
        json!({"status": word, "service": &*ops.service, "checks": checks})
    } else {
        json!({"status": word})
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
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

/// What the request context of one service keeps: its name, and its request metrics' handles
/// by (route, method, status), registered once instead of on every request (building a metric
/// key allocates its labels and looks them up in the recorder's registry).
struct RequestContext {
    service: Arc<str>,
    handles: std::sync::RwLock<HashMap<Arc<str>, ByMethodAndStatus>>,
}

/// One route's handles, by method label and status.
type ByMethodAndStatus = HashMap<(&'static str, u16), RequestMetrics>;

#[derive(Clone)]
struct RequestMetrics {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl RequestContext {
    fn new(service: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            service,
            handles: std::sync::RwLock::default(),
        })
    }

    /// The handles for one route, method and status. A method outside the standard ones is
    /// counted as `OTHER`: the labels stay bounded whatever a client sends (routes are the
    /// router's own templates or `unmatched`, statuses three digits).
    fn metrics(&self, route: &str, method: &Method, status: u16) -> RequestMetrics {
        let key = (method_label(method), status);
        if let Ok(handles) = self.handles.read()
            && let Some(found) = handles.get(route).and_then(|by| by.get(&key))
        {
            return found.clone();
        }
        let labels = [
            ("service", self.service.to_string()),
            ("method", key.0.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        let made = RequestMetrics {
            requests: metrics::counter!("boxoffice_http_requests_total", &labels),
            duration: metrics::histogram!("boxoffice_http_request_duration_seconds", &labels),
        };
        if let Ok(mut handles) = self.handles.write() {
            handles
                .entry(Arc::from(route))
                .or_default()
                .insert(key, made.clone());
        }
        made
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The request id header, as a name (inserting by `&str` parses the name each time).
const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// Takes the request id from `x-request-id` (or makes one), echoes it on the response, and runs
/// the request inside a log span and a task-local that carry it.
async fn request_context(
    State(context): State<Arc<RequestContext>>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    let id_value = HeaderValue::from_str(&id).ok();
    if let Some(v) = &id_value {
        // Room for what this process adds on the way (the id, the gateway's forwarding and
        // identity headers) in one growth rather than one per insert.
        req.headers_mut().reserve(4);
        req.headers_mut().insert(REQUEST_ID, v.clone());
    }
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", service = %context.service, request_id = %id, %method, %path);
    let started = Instant::now();
    let mut response = {
        use tracing::Instrument;
        with_request_id(id, next.run(req))
            .instrument(span.clone())
            .await
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if !is_ops_path(&path) {
        let _enter = span.enter();
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        );
    }
    let handles = context.metrics(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        &method,
        status,
    );
    handles.requests.increment(1);
    handles.duration.record(elapsed.as_secs_f64());
    if let Some(v) = id_value {
        response.headers_mut().insert(REQUEST_ID, v);
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

/// `/healthz`, `/readyz` and, with `metrics`, `/metrics`.
fn ops_routes(service: Arc<str>, readiness: Readiness, metrics: bool) -> Router {
    let mut ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if metrics {
        ops = ops.route("/metrics", get(metrics_endpoint));
    }
    ops.with_state(OpsState { service, readiness })
}

/// Wraps a service's routes with the operational endpoints and the shared middleware.
pub fn app(service: &str, routes: Router, readiness: Readiness, settings: &HttpSettings) -> Router {
    // Install the recorder before the first request records anything.
    prometheus();
    let service: Arc<str> = Arc::from(service);
    let context = RequestContext::new(service.clone());
    // A public port serves no metrics: they are on the ops listener.
    let metrics = !readiness.is_public();
    let ops = ops_routes(service, readiness, metrics);
    // One layer of composed middleware, not one `Router::layer` per middleware: each of those
    // boxes every route once more, and a request clones the whole nest of boxes at every level
    // (an allocation per box per level: the largest allocation cost per request in a profile).
    // Outermost first: the request context sees every answer, a panic's and a timeout's too.
    let middleware = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(context, request_context))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::extract::DefaultBodyLimit::max(
            settings.body_limit_bytes,
        ))
        .layer(middleware::from_fn_with_state(
            Duration::from_millis(settings.request_timeout_ms),
            timeout_layer,
        ))
        .layer(middleware::from_fn(client_errors_as_problems))
        .layer(middleware::from_fn(crate::problem::refuse_encoded_nul));
    routes
        .merge(ops)
        .fallback(not_found_fallback)
        .layer(middleware)
}

/// A service's routes as the gateway calls them in its own process (standalone,
/// `gateway.in_process`), not through its port. The gateway's own stack from [`app`] already
/// wraps that call: the request id (its header and task-local), the span and the access line,
/// the request timeout (and the upstream timeout within it), panics and plain-text client errors
/// turned into problem+json, encoded NULs refused; running all of it a second time was the
/// largest share of what a request cost the gateway in process. What is the service's own stays:
/// its request metrics (counted as on its port) and its body limit, and its operational routes.
pub fn in_process(
    service: &str,
    routes: Router,
    readiness: Readiness,
    settings: &HttpSettings,
) -> Router {
    prometheus();
    let service: Arc<str> = Arc::from(service);
    let context = RequestContext::new(service.clone());
    // (No `/metrics`: the gateway would pass it on to the public, `/sandbox/<fake>/metrics`.)
    let ops = ops_routes(service, readiness, false);
    let middleware = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(context, count_request))
        .layer(axum::extract::DefaultBodyLimit::max(
            settings.body_limit_bytes,
        ));
    routes
        .merge(ops)
        .fallback(not_found_fallback)
        .layer(middleware)
}

/// Counts a request in the service's metrics, as [`request_context`] does on its port: a
/// panicking handler as a 500 (the panic goes on to the gateway's stack, which answers it).
async fn count_request(
    State(context): State<Arc<RequestContext>>,
    req: Request,
    next: Next,
) -> Response {
    use futures::FutureExt as _;
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let outcome = std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await;
    let status = outcome
        .as_ref()
        .map_or(500, |response| response.status().as_u16());
    let handles = context.metrics(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        &method,
        status,
    );
    handles.requests.increment(1);
    handles.duration.record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(response) => response,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A bound listener, so callers learn the port before serving.
pub async fn bind(settings: &HttpSettings) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(settings.host, settings.port)).await
}

/// Binds and serves `routes` (wrapped by [`app`]) until `shutdown` is cancelled, then drains
/// (see [`serve_on`]).
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

/// Like [`serve`], on an already bound listener. When `shutdown` is cancelled: `/readyz` answers
/// 503 (check `shutdown`: draining) while everything else is still served, for
/// `http.drain_delay_ms` (0 when unset); then the listener closes, event streams end, and
/// in-flight requests have up to `http.shutdown_grace_ms` to finish before this returns.
pub async fn serve_on(
    listener: TcpListener,
    service: &str,
    routes: Router,
    readiness: Readiness,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if readiness.ops_only {
        tracing::info!(service, %addr, "ops listener: /healthz, /readyz with details, /metrics");
    } else {
        tracing::info!(service, %addr, "listening");
    }
    let stopping = shutdown.clone();
    let readiness = readiness.check("shutdown", move || {
        let draining = stopping.is_cancelled();
        async move {
            if draining {
                Err("draining: the server is shutting down".to_owned())
            } else {
                Ok(())
            }
        }
    });
    // Cancelled once the drain delay has passed: the listener closes and streams end.
    let closing = CancellationToken::new();
    // (An `Arc`: the state is cloned per request, and a token's own clone takes a lock.)
    let app = app(service, routes, readiness, settings).layer(middleware::from_fn_with_state(
        Arc::new(closing.clone()),
        end_streams_at_shutdown,
    ));
    let drain = settings.drain_delay(0);
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    let signal = {
        let (shutdown, closing, service) = (shutdown.clone(), closing.clone(), service.to_owned());
        async move {
            shutdown.cancelled().await;
            if !drain.is_zero() {
                tracing::info!(
                    service,
                    drain_ms = drain.as_millis() as u64,
                    "draining: /readyz answers 503 before the listener closes"
                );
                tokio::time::sleep(drain).await;
            }
            closing.cancel();
        }
    };
    // TCP_NODELAY: a response written in pieces (headers, then a streamed body, as the gateway
    // passes an upstream's on) must not wait for the client's delayed ACK (Nagle: ~40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY on an accepted connection");
        }
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result,
        () = async { closing.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(service, "in-flight requests did not finish within the grace period");
            Ok(())
        }
    }
}

/// Serves only the operational endpoints of `service` on `listener`, with every readiness detail
/// and the metrics: the ops listener of a service whose main port is public (the gateway). It
/// drains and stops like [`serve_on`].
pub async fn serve_ops_on(
    listener: TcpListener,
    service: &str,
    readiness: Readiness,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let readiness = Readiness {
        ops_only: true,
        ..readiness.internal()
    };
    serve_on(
        listener,
        service,
        Router::new(),
        readiness,
        settings,
        shutdown,
    )
    .await
}

/// Ends an event stream's body when `shutdown` (the end of the drain delay) is cancelled. An event
/// stream never ends by itself: without this, its connection would hold the graceful drain until
/// the grace period ran out, and go on streaming from its own task after the server had returned.
async fn end_streams_at_shutdown(
    State(shutdown): State<Arc<CancellationToken>>,
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
        .take_until(CancellationToken::clone(&shutdown).cancelled_owned());
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
