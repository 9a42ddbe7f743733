//! Forwarding: one HTTP/1 connection pool to all upstreams; hop-by-hop headers dropped; the
//! request id and the client address carried on; bodies streamed both ways (server-sent events
//! included).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderName, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use platform::{ApiError, service::Directory, telemetry::REQUEST_ID_HEADER};

use crate::{breaker::Breaker, routes::upstream_for};

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

/// The forwarding state: upstream addresses, the client pool, one breaker per upstream.
pub struct Proxy {
    directory: Directory,
    client: Client<HttpConnector, Body>,
    timeout: Duration,
    breakers: HashMap<String, Breaker>,
}

impl Proxy {
    pub fn new(directory: Directory, timeout: Duration, failures: u32, open_for: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        let breakers = directory
            .0
            .keys()
            .map(|k| (k.clone(), Breaker::new(failures, open_for)))
            .collect();
        Self {
            directory,
            client,
            timeout,
            breakers,
        }
    }

    /// Checks an upstream's `/readyz`.
    pub async fn upstream_ready(&self, service: &str) -> Result<(), String> {
        let base = self.directory.url(service).map_err(|e| e.to_string())?;
        let uri: Uri = format!("{}/readyz", base.trim_end_matches('/'))
            .parse()
            .map_err(|e| format!("bad upstream url: {e}"))?;
        let response = tokio::time::timeout(Duration::from_secs(2), self.client.get(uri))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| format!("unreachable: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }
}

/// Forwards one request to the service that owns its path.
pub async fn forward(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let Some(service) = upstream_for(&path) else {
        return ApiError::not_found(format!("no route for {path}")).into_response();
    };
    let Ok(base) = proxy.directory.url(service) else {
        return ApiError::not_found(format!("no route for {path}")).into_response();
    };
    let breaker = proxy.breakers.get(service);
    if let Some(b) = breaker
        && !b.allow(Instant::now())
    {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            format!("the {service} service is unavailable; try again shortly"),
        )
        .with("retry_after_secs", 5)
        .into_response();
    }
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
    let uri: Uri = match format!("{}{}", base.trim_end_matches('/'), upstream_path).parse() {
        Ok(u) => u,
        Err(e) => return ApiError::internal(format!("bad upstream uri: {e}")).into_response(),
    };
    parts.uri = uri;
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    parts.headers.remove(header::HOST);
    if let Some(id) = platform::telemetry::current_request_id()
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
    let upstream_req = Request::from_parts(parts, body);
    let started = Instant::now();
    let outcome = tokio::time::timeout(proxy.timeout, proxy.client.request(upstream_req)).await;
    let (response, ok) = match outcome {
        Ok(Ok(resp)) => {
            let ok = resp.status() != StatusCode::BAD_GATEWAY
                && resp.status() != StatusCode::SERVICE_UNAVAILABLE;
            let (mut parts, incoming) = resp.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(*name);
            }
            (Response::from_parts(parts, Body::new(incoming)), ok)
        }
        Ok(Err(e)) => {
            tracing::warn!(upstream = service, error = %e, "upstream unreachable");
            (
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    format!("the {service} service could not be reached"),
                )
                .into_response(),
                false,
            )
        }
        Err(_) => {
            tracing::warn!(upstream = service, "upstream timed out");
            (
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!("the {service} service did not answer in time"),
                )
                .into_response(),
                false,
            )
        }
    };
    if let Some(b) = breaker {
        b.record(ok, Instant::now());
    }
    metrics::histogram!("boxoffice_gateway_upstream_duration_seconds", "upstream" => service)
        .record(started.elapsed().as_secs_f64());
    response
}
