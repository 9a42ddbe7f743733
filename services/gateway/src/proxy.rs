//! Forwarding: one HTTP/1 connection pool to all upstreams, each with one or more instances
//! ([`crate::upstream`]); hop-by-hop headers dropped; the
//! request id and the client address carried on; bodies streamed both ways (server-sent events
//! included). An upstream that runs in the same process (standalone, [`LocalUpstreams`]) is
//! called in process: the same request, headers and body go to its routes without a loopback
//! HTTP hop, inside the gateway's own middleware (which the service's app then does not run
//! again: [`platform::http::in_process`]).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use platform::{ApiError, service::Directory, telemetry::REQUEST_ID_HEADER};
use tokio_util::sync::CancellationToken;

use crate::{
    routes::upstream_for,
    upstream::{Instance, Upstream},
};

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The apps of the upstreams that run in this process, by upstream name: each its routes as
/// [`platform::http::in_process`] wraps them.
#[derive(Clone, Default)]
pub struct LocalUpstreams(pub HashMap<String, axum::Router>);

impl std::fmt::Debug for LocalUpstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The peer an in-process upstream sees: loopback, as when the gateway called it over HTTP (so
/// it believes the `X-Forwarded-For` the gateway set, as before).
const LOCAL_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// The forwarding state: the upstreams' instances and the client pool.
pub struct Proxy {
    upstreams: HashMap<String, Upstream>,
    local: LocalUpstreams,
    client: Client<HttpConnector, Body>,
    /// `boxoffice_gateway_upstream_duration_seconds` by upstream, registered once (building the
    /// key per request allocated its label and looked it up in the recorder).
    durations: HashMap<String, metrics::Histogram>,
    timeout: Duration,
    /// Longest request body passed on (`gateway.body_limit_bytes`).
    body_limit: usize,
}

/// Longest wait for an instance's `/readyz`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

impl Proxy {
    pub fn new(
        directory: &Directory,
        timeout: Duration,
        failures: u32,
        open_for: Duration,
        body_limit: usize,
        local: LocalUpstreams,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        let upstreams = directory
            .0
            .iter()
            .filter_map(|(name, urls)| {
                Upstream::parse(urls, failures, open_for).map(|u| (name.clone(), u))
            })
            .collect::<HashMap<_, _>>();
        // Installed before the first handle is made (a handle made before is a no-op).
        platform::http::prometheus();
        let durations = upstreams
            .keys()
            .map(|name| {
                let histogram = metrics::histogram!("boxoffice_gateway_upstream_duration_seconds",
                    "upstream" => name.clone());
                (name.clone(), histogram)
            })
            .collect();
        Self {
            upstreams,
            local,
            client,
            durations,
            timeout,
            body_limit,
        }
    }

    /// Records how long `service` took to answer, from `started`.
    fn record_duration(&self, service: &str, started: Instant) {
        if let Some(histogram) = self.durations.get(service) {
            histogram.record(started.elapsed().as_secs_f64());
        }
    }

    /// GETs one instance's `/readyz`.
    async fn instance_ready(&self, base: &str) -> Result<(), String> {
        let uri: Uri = format!("{base}/readyz")
            .parse()
            .map_err(|e| format!("bad upstream url: {e}"))?;
        let response = tokio::time::timeout(HEALTH_TIMEOUT, self.client.get(uri))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| format!("unreachable: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }

    /// Checks an upstream's `/readyz`: up when at least one instance answers 200 (the others
    /// are named in the error when none does, or in the detail when some do not).
    pub async fn upstream_ready(&self, service: &str) -> Result<(), String> {
        let upstream = self
            .upstreams
            .get(service)
            .ok_or_else(|| format!("no address for {service}"))?;
        if let [only] = upstream.instances.as_slice() {
            return self.instance_ready(&only.base).await;
        }
        let checks = upstream.instances.iter().map(|i| async move {
            let result = self.instance_ready(&i.base).await;
            (i.base.as_str(), result)
        });
        let results = futures::future::join_all(checks).await;
        let down: Vec<String> = results
            .iter()
            .filter_map(|(base, r)| r.as_ref().err().map(|e| format!("{base}: {e}")))
            .collect();
        if down.len() == results.len() {
            Err(down.join("; "))
        } else {
            if !down.is_empty() {
                tracing::debug!(upstream = service, down = ?down, "some instances not ready");
            }
            Ok(())
        }
    }

    /// Checks every instance of every upstream with more than one, every `interval`, until
    /// `stop`: an instance whose `/readyz` fails is left out of the rotation until it passes.
    pub async fn check_health(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let instances: Vec<(String, Arc<Instance>)> = self
            .upstreams
            .iter()
            .filter(|(_, u)| u.instances.len() > 1)
            .flat_map(|(name, u)| u.instances.iter().map(|i| (name.clone(), i.clone())))
            .collect();
        if instances.is_empty() || interval.is_zero() {
            // Nothing to check; the task lives on so that readiness does not call it dead.
            stop.cancelled().await;
            return;
        }
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let checks = instances.iter().map(|(name, instance)| {
                let proxy = self.clone();
                async move {
                    let result = proxy.instance_ready(&instance.base).await;
                    let healthy = result.is_ok();
                    if instance.set_healthy(healthy) {
                        match result {
                            Ok(()) => tracing::info!(upstream = %name, instance = %instance.base,
                                "instance passes its health check again: back in rotation"),
                            Err(e) => tracing::warn!(upstream = %name, instance = %instance.base,
                                error = %e, "instance fails its health check: out of rotation"),
                        }
                    }
                    metrics::gauge!("boxoffice_gateway_instance_up",
                        "upstream" => name.clone(), "instance" => instance.base.clone())
                    .set(if healthy { 1.0 } else { 0.0 });
                }
            });
            futures::future::join_all(checks).await;
        }
    }
}

/// Calls the in-process app of `service` with the request made for it: the same head (without
/// the gateway's own extensions, the peer loopback) and body, within the upstream timeout.
async fn forward_local(
    proxy: &Proxy,
    service: &'static str,
    app: &axum::Router,
    mut parts: axum::http::request::Parts,
    upstream_path: &str,
    body: Body,
) -> Response {
    use tower::ServiceExt as _;
    // Most paths go on as they came (not a sandbox's: its prefix goes): no need to parse again.
    let unchanged = parts.uri.scheme().is_none()
        && parts
            .uri
            .path_and_query()
            .is_some_and(|p| p.as_str() == upstream_path);
    if !unchanged {
        parts.uri = match upstream_path.parse::<Uri>() {
            Ok(u) => u,
            Err(e) => return ApiError::internal(format!("bad upstream uri: {e}")).into_response(),
        };
    }
    // (Cleared rather than replaced: the map's allocation is kept for the one below.)
    parts.extensions.clear();
    parts.extensions.insert(ConnectInfo(LOCAL_PEER));
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        proxy.timeout,
        app.clone().oneshot(Request::from_parts(parts, body)),
    )
    .await;
    let response = match outcome {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(*name);
            }
            Response::from_parts(parts, body)
        }
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::warn!(upstream = service, "in-process upstream timed out");
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("the {service} service did not answer in time"),
            )
            .into_response()
        }
    };
    proxy.record_duration(service, started);
    response
}

/// Whether a method may be sent again after a reply was lost (RFC 9110 §9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A request body as the attempts need it: streamed once, or kept to be sent again.
enum Payload {
    Stream(Option<Body>),
    Kept(axum::body::Bytes),
}

impl Payload {
    fn next(&mut self) -> Body {
        match self {
            Payload::Stream(body) => body.take().unwrap_or_else(Body::empty),
            Payload::Kept(bytes) => Body::from(bytes.clone()),
        }
    }

    fn again(&self) -> bool {
        matches!(self, Payload::Kept(_))
    }
}

/// Forwards one request to the service that owns its path.
pub async fn forward(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let Some(service) = upstream_for(&path) else {
        return ApiError::not_found(format!("no route for {path}")).into_response();
    };
    let Some(upstream) = proxy.upstreams.get(service) else {
        return ApiError::not_found(format!("no route for {path}")).into_response();
    };
    let client_addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let upstream_path = match service {
        // Sandboxes are mounted under /sandbox/<name>/ on the gateway, at / on their own port.
        s if s.starts_with("fake-") => {
            let prefix_len = "/sandbox/".len() + s.len() - "fake-".len();
            let rest = &path_and_query[prefix_len.min(path_and_query.len())..];
            if rest.is_empty() {
                "/".to_owned()
            } else {
                rest.to_owned()
            }
        }
        _ => path_and_query,
    };
    // A sandbox's own port serves its process's metrics; the public port does not.
    if service.starts_with("fake-")
        && upstream_path
            .split('?')
            .next()
            .map(|p| p.trim_end_matches('/'))
            == Some("/metrics")
    {
        return ApiError::not_found(format!("no route for {path}")).into_response();
    }
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    parts.headers.remove(header::HOST);
    // (Under the gateway's request context the header is there already, with the current id.)
    if !parts.headers.contains_key(REQUEST_ID_HEADER)
        && let Some(id) = platform::telemetry::current_request_id()
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        parts.headers.insert(REQUEST_ID_HEADER, v);
    }
    if let Some(addr) = client_addr {
        let forwarded = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) => format!("{prev}, {addr}"),
            None => addr,
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded) {
            parts
                .headers
                .insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    // Bodies over the limit are refused here, before any upstream: a declared length at once,
    // a chunked body once it passes the limit (so it is read before it is sent: a client
    // cutting it off or overrunning it is its own error, never an upstream's failure). With a
    // second instance to turn to, the body is kept too, so that a request that never reached an
    // instance (or an idempotent one whose reply was lost) can go to another. To a single
    // instance, a body of a declared length within the limit is streamed, and no body is no body.
    let limit = proxy.body_limit;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is over {limit} bytes or was cut off"),
        )
        .with("limit_bytes", limit)
        .into_response()
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    // A request without a body (most are GETs: no length, nothing to read) needs no buffering.
    let chunked = declared.is_none() && !axum::body::HttpBody::is_end_stream(&body);
    if let Some(app) = proxy.local.0.get(service) {
        let body = if chunked {
            match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => Body::from(bytes),
                Err(_) => return too_large(),
            }
        } else {
            body
        };
        return forward_local(&proxy, service, app, parts, &upstream_path, body).await;
    }
    let mut payload = if upstream.instances.len() > 1 || chunked {
        match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => Payload::Kept(bytes),
            Err(_) => return too_large(),
        }
    } else {
        Payload::Stream(Some(body))
    };
    let retry_lost_reply = idempotent(&parts.method);
    // A streamed body goes out once, and so do its head's parts (no copy); a kept one may go
    // again, with a copy of the head each time.
    let mut head = Some(parts);
    let mut tried: Vec<usize> = Vec::new();
    let started = Instant::now();
    let response = loop {
        let Some(index) = upstream.pick(&tried, Instant::now()) else {
            if tried.is_empty() {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream_unavailable",
                    format!("the {service} service is unavailable; try again shortly"),
                )
                .with("retry_after_secs", 5)
                .into_response();
            }
            break ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                format!("the {service} service could not be reached"),
            )
            .into_response();
        };
        tried.push(index);
        let instance = &upstream.instances[index];
        let uri: Uri = match format!("{}{}", instance.base, upstream_path).parse() {
            Ok(u) => u,
            Err(e) => return ApiError::internal(format!("bad upstream uri: {e}")).into_response(),
        };
        let parts = match (&head, payload.again()) {
            (Some(h), true) => h.clone(),
            _ => match head.take() {
                Some(h) => h,
                None => return ApiError::internal("request sent twice").into_response(),
            },
        };
        let mut attempt = Request::from_parts(parts, payload.next());
        *attempt.uri_mut() = uri;
        let in_flight = instance.start();
        let outcome = tokio::time::timeout(proxy.timeout, proxy.client.request(attempt)).await;
        drop(in_flight);
        match outcome {
            Ok(Ok(resp)) => {
                let ok = resp.status() != StatusCode::BAD_GATEWAY
                    && resp.status() != StatusCode::SERVICE_UNAVAILABLE;
                instance.breaker.record(ok, Instant::now());
                let (mut parts, incoming) = resp.into_parts();
                for name in HOP_BY_HOP {
                    parts.headers.remove(*name);
                }
                break Response::from_parts(parts, Body::new(incoming));
            }
            Ok(Err(e)) => {
                instance.breaker.record(false, Instant::now());
                // A connection that was never made carried nothing: any request may go
                // elsewhere. A reply lost after sending: only an idempotent one.
                let again = payload.again() && (e.is_connect() || retry_lost_reply);
                tracing::warn!(upstream = service, instance = %instance.base, error = %e,
                    retried = again, "upstream unreachable");
                if again {
                    metrics::counter!("boxoffice_gateway_upstream_retries_total",
                        "upstream" => service)
                    .increment(1);
                    continue;
                }
                break ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    format!("the {service} service could not be reached"),
                )
                .into_response();
            }
            Err(_) => {
                // A hung instance is not tried again: the client gets a fast answer.
                instance.breaker.record(false, Instant::now());
                tracing::warn!(upstream = service, instance = %instance.base, "upstream timed out");
                break ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!("the {service} service did not answer in time"),
                )
                .into_response();
            }
        }
    };
    proxy.record_duration(service, started);
    response
}
