//! The gateway: the platform's one public door. It routes `/api/v1/...`, `/.well-known/...` and
//! `/sandbox/...` to the owning service, carries the request id, balances over an upstream's
//! instances, times out and circuit-breaks per instance (browsing keeps working while payment is
//! down). `/sandbox/...` is served only in
//! sandbox mode (then `/readyz` has a `sandbox` check: the fakes answer); otherwise it is a
//! problem+json 404 like any unknown path.
//!
//! At the edge, before any upstream ([`edge`]): per-address and per-account rate limits (429
//! `rate_limited` with `Retry-After`; [`limit`]: in process, or shared by every replica through
//! Redis when `redis.url` is set), client-sent identity headers dropped, bearer tokens verified
//! against the user service's JWKS (401 `unauthorized` for a bad one outside the public routes)
//! and the verified identity passed on in `x-boxoffice-account` and `x-boxoffice-roles`.
//!
//! It also serves the web UI, embedded from `web/`, and its browser sessions in HttpOnly cookies
//! ([`web`]).
//!
//! Its port is public, so its `/readyz` there says only ready or not (an administrator's token
//! sees the details) and it serves no `/metrics`: the details and the metrics are on its ops
//! listener (`gateway.ops_port`, see [`Config`]). Its readiness is its own: every upstream's
//! `/readyz` and the sandbox are reported in the details, and none of them makes it unready.

mod breaker;
mod compression;
mod cors;
pub mod docs;
pub mod edge;
pub mod limit;
pub mod proxy;
mod routes;
mod upstream;
pub mod web;

use std::{net::IpAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{OriginalUri, Request, State},
    middleware,
    response::{IntoResponse, Response},
    routing::{any, get},
};
use platform::{
    ApiError,
    auth::{Role, Verifier},
    http::Readiness,
    net::IpBlocks,
    service::{Directory, Infra, Service, StartError},
};
use serde::{Deserialize, Deserializer};

pub use routes::upstream_for;

/// The service's name and config section.
pub const NAME: &str = "gateway";

/// Settings (`gateway.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Longest wait for an upstream's response headers, in ms (env
    /// `BOXOFFICE_GATEWAY__UPSTREAM_TIMEOUT_MS`).
    pub upstream_timeout_ms: u64,
    /// Consecutive upstream failures that open its circuit (env
    /// `BOXOFFICE_GATEWAY__BREAKER_FAILURES`).
    pub breaker_failures: u32,
    /// How long an open circuit rejects calls before trying again, in ms (env
    /// `BOXOFFICE_GATEWAY__BREAKER_OPEN_MS`).
    pub breaker_open_ms: u64,
    /// How often each instance of an upstream with several is checked (its `/readyz`), in ms;
    /// one that fails is left out until it passes again; 0 = no active checks (env
    /// `BOXOFFICE_GATEWAY__HEALTH_INTERVAL_MS`).
    pub health_interval_ms: u64,
    /// Sandbox mode: `/sandbox/<name>/` reaches the fakes (not a `gateway.*` setting: the
    /// launcher sets it from the top-level `sandbox` setting, on by default in standalone).
    #[serde(skip)]
    pub sandbox: bool,
    /// Standalone only: call the services running in this process directly, without a second
    /// HTTP hop over loopback (env `BOXOFFICE_GATEWAY__IN_PROCESS`; default true; false calls
    /// them over HTTP at their loopback ports, as in distributed mode).
    pub in_process: bool,
    /// The OpenAPI document served at `/api/docs/openapi.json` (not a setting: the launcher
    /// aggregates the services' documents into it).
    #[serde(skip)]
    pub api_docs: docs::ApiDocs,
    /// Upstreams that run in this process (standalone): requests for them go to their app
    /// directly, without a second HTTP hop over loopback (not a setting: the launcher gives
    /// them). Every other upstream is called over HTTP at its directory address.
    #[serde(skip)]
    pub local_upstreams: proxy::LocalUpstreams,
    /// Address of the ops listener, where `/readyz` has every detail and `/metrics` is served
    /// (env `BOXOFFICE_GATEWAY__OPS_HOST`). Unset: `http.host` in distributed mode, loopback in
    /// standalone.
    pub ops_host: Option<IpAddr>,
    /// Port of the ops listener (env `BOXOFFICE_GATEWAY__OPS_PORT`). Unset: 9090 in distributed
    /// mode (a free port when `http.port` is 0), a free loopback port in standalone (its start
    /// banner says which).
    pub ops_port: Option<u16>,
    /// Path prefixes where a bearer token that fails verification is passed on to the upstream
    /// (without identity) instead of refused with 401: the token endpoints, where a client
    /// refreshing or signing out may still carry its expired access token, the JWKS and the
    /// sandboxes (whose fake providers have tokens of their own). A TOML list or one
    /// comma-separated string (env `BOXOFFICE_GATEWAY__PUBLIC_ROUTES`); each starts with `/`.
    #[serde(deserialize_with = "path_prefixes")]
    pub public_routes: Vec<String>,
    /// Peers whose `X-Forwarded-For` names the client (a load balancer in front of the
    /// gateway): IPs and CIDR blocks (env `BOXOFFICE_GATEWAY__TRUSTED_PROXIES`). Default none:
    /// the TCP peer is the client, whatever the header says.
    pub trusted_proxies: IpBlocks,
    /// Rate limits (`gateway.rate_limit.*`).
    pub rate_limit: RateLimits,
    /// Longest request body passed on to an upstream, in bytes; a longer one is answered 413
    /// `payload_too_large` at the edge (env `BOXOFFICE_GATEWAY__BODY_LIMIT_BYTES`). Default
    /// 1 MiB; each service bounds what it reads itself besides (`http.body_limit_bytes`).
    pub body_limit_bytes: usize,
    /// Origins (`scheme://host[:port]`) whose browser scripts may call the API across origins
    /// (CORS), e.g. a partner's site; `*` for any, without credentials. Default none: only the
    /// platform's own pages, which are same-origin (env `BOXOFFICE_GATEWAY__CORS_ORIGINS`, a
    /// comma-separated list).
    #[serde(deserialize_with = "origins")]
    pub cors_origins: Vec<String>,
}

/// Rate limits (`gateway.rate_limit.*`): token buckets per client address and per verified
/// account; 429 `rate_limited` with `Retry-After` past them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Requests per second one client address may make, sustained; 0 = no per-address limit
    /// (env `BOXOFFICE_GATEWAY__RATE_LIMIT__PER_ADDRESS`).
    pub per_address: f64,
    /// Requests one client address may make at once (env
    /// `BOXOFFICE_GATEWAY__RATE_LIMIT__ADDRESS_BURST`).
    pub address_burst: u32,
    /// Requests per second one account may make, sustained; 0 = no per-account limit (env
    /// `BOXOFFICE_GATEWAY__RATE_LIMIT__PER_ACCOUNT`).
    pub per_account: f64,
    /// Requests one account may make at once (env
    /// `BOXOFFICE_GATEWAY__RATE_LIMIT__ACCOUNT_BURST`).
    pub account_burst: u32,
    /// Client addresses the per-address limit does not apply to (env
    /// `BOXOFFICE_GATEWAY__RATE_LIMIT__EXEMPT`). Default loopback: the machine's own clients
    /// (benchmarks, a local browser).
    pub exempt: IpBlocks,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_address: 200.0,
            address_burst: 400,
            per_account: 20.0,
            account_burst: 60,
            exempt: IpBlocks::loopback(),
        }
    }
}

/// The default `gateway.public_routes`.
pub const PUBLIC_ROUTES: &[&str] = &[
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/auth/oauth/",
    "/.well-known/",
    "/sandbox/",
    "/web/session",
];

/// A TOML list, or one comma-separated string (as environment variables give it), trimmed,
/// without empty entries.
fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        One(String),
    }
    let entries: Vec<String> = match Raw::deserialize(d)? {
        Raw::List(list) => list,
        Raw::One(one) => one.split(',').map(str::to_owned).collect(),
    };
    Ok(entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect())
}

fn origins<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let entries = list_or_csv(d)?;
    match entries.iter().find(|e| !cors::is_origin(e)) {
        Some(bad) => Err(serde::de::Error::custom(format!(
            "`{bad}` is not an origin: give `scheme://host[:port]` (no path), or `*`"
        ))),
        None => Ok(entries
            .iter()
            .map(|e| e.trim_end_matches('/').to_owned())
            .collect()),
    }
}

fn path_prefixes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let entries = list_or_csv(d)?;
    match entries.iter().find(|e| !e.starts_with('/')) {
        Some(bad) => Err(serde::de::Error::custom(format!(
            "`{bad}` is not a path prefix (it must start with `/`)"
        ))),
        None => Ok(entries),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            upstream_timeout_ms: 10_000,
            breaker_failures: 5,
            breaker_open_ms: 5_000,
            health_interval_ms: 1_000,
            sandbox: false,
            in_process: true,
            api_docs: docs::ApiDocs::default(),
            local_upstreams: proxy::LocalUpstreams::default(),
            ops_host: None,
            ops_port: None,
            public_routes: PUBLIC_ROUTES.iter().map(|r| (*r).to_owned()).collect(),
            trusted_proxies: IpBlocks::default(),
            rate_limit: RateLimits::default(),
            body_limit_bytes: 1024 * 1024,
            cors_origins: Vec::new(),
        }
    }
}

/// Builds the gateway for the upstreams in `infra.directory`.
pub async fn start(config: &Config, infra: &Infra) -> Result<Service, StartError> {
    let proxy = Arc::new(proxy::Proxy::new(
        &infra.directory,
        Duration::from_millis(config.upstream_timeout_ms),
        config.breaker_failures,
        Duration::from_millis(config.breaker_open_ms),
        config.body_limit_bytes,
        config.local_upstreams.clone(),
    ));
    // Tokens are checked against the user service's keys, at the edge and for the details of
    // the public /readyz (administrators see them). No user service in the directory: no token
    // can be checked here, and none is trusted (they go on without identity).
    let verifier = verifier(&infra.directory);
    if verifier.is_none() {
        tracing::warn!(
            "no user service in the directory: bearer tokens are not verified at the edge \
             (they go on to the upstreams without identity headers)"
        );
    }
    let mut tasks = Vec::new();
    let limiter = match infra.redis_target()? {
        Some(target) => {
            let (limiter, task) = limit::Limiter::shared(target, infra.shutdown.clone());
            tasks.push(task);
            limiter
        }
        None => limit::Limiter::local(),
    };
    let limits = &config.rate_limit;
    let edge = Arc::new(edge::Edge {
        verifier: verifier.clone(),
        public_routes: config.public_routes.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        exempt: limits.exempt.clone(),
        per_address: limit::Rate::new(limits.per_address, limits.address_burst),
        per_account: limit::Rate::new(limits.per_account, limits.account_burst),
        limiter,
    });
    let health = {
        let (proxy, stop) = (proxy.clone(), infra.shutdown.clone());
        let interval = Duration::from_millis(config.health_interval_ms);
        platform::service::supervise("health-checks", stop.clone(), move || {
            tokio::spawn(proxy.clone().check_health(interval, stop.clone()))
        })
    };
    tasks.push(health);
    let readiness = readiness(&infra.directory, proxy.clone(), config.sandbox);
    let readiness = match edge.limiter.shared_state() {
        Some(_) => {
            let edge = edge.clone();
            readiness.report("rate-limit-redis", move || {
                let state = edge.limiter.shared_state().unwrap_or(Ok(()));
                async move { state }
            })
        }
        None => readiness,
    };
    Ok(Service {
        name: NAME,
        // One layer for both (each `Router::layer` boxes every route once more).
        router: router(proxy, edge, config.sandbox, config.api_docs.clone()).layer(
            tower::ServiceBuilder::new()
                .option_layer(cors::layer(&config.cors_origins))
                .layer(compression::layer()),
        ),
        readiness: readiness.public(move |headers| is_admin(verifier.clone(), headers)),
        tasks,
    })
}

/// A verifier of the user service's keys: its first instance's `/.well-known/jwks.json`.
fn verifier(directory: &Directory) -> Option<Verifier> {
    let user = directory.0.get("user")?.split(',').next()?.trim();
    (!user.is_empty()).then(|| {
        Verifier::remote(format!(
            "{}/.well-known/jwks.json",
            user.trim_end_matches('/')
        ))
    })
}

/// Whether the request carries a valid access token with the admin role.
fn is_admin(
    verifier: Option<Verifier>,
    headers: &axum::http::HeaderMap,
) -> impl Future<Output = bool> + Send + use<> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    async move {
        match (verifier, token) {
            (Some(verifier), Some(token)) => verifier
                .verify_async(&token)
                .await
                .is_ok_and(|claims| claims.has(Role::Admin)),
            _ => false,
        }
    }
}

fn router(
    proxy: Arc<proxy::Proxy>,
    edge: Arc<edge::Edge>,
    sandbox: bool,
    api_docs: docs::ApiDocs,
) -> Router {
    let documentation = Router::new()
        .route("/api/docs", get(docs::viewer))
        .route("/api/docs/", get(docs::viewer))
        .route("/api/docs/viewer.js", get(docs::viewer_js))
        .route("/api/docs/viewer.css", get(docs::viewer_css))
        .route("/api/docs/openapi.json", get(docs::openapi))
        .with_state(api_docs);
    let proxied = Router::new()
        .route("/api/{*rest}", any(front))
        .route("/.well-known/{*rest}", any(front));
    let proxied = if sandbox {
        proxied.route("/sandbox/{*rest}", any(front))
    } else {
        proxied
    };
    let proxied = proxied.with_state(Front {
        proxy: proxy.clone(),
        edge: edge.clone(),
    });
    let sessions = web::sessions(web::Sessions {
        proxy,
        edge: edge.clone(),
        sandbox,
    });
    let guarded = documentation.merge(sessions);
    let guarded = if sandbox {
        guarded
    } else {
        guarded.route("/sandbox/{*rest}", any(sandbox_off))
    };
    // Only on the routes: an unknown path is a 404 without touching a bucket or a key. (The
    // proxied routes run the same checks in their handler.)
    guarded
        .route_layer(middleware::from_fn_with_state(edge, edge::admit))
        .merge(proxied)
        .merge(web::pages())
}

/// What the proxied routes need.
#[derive(Clone)]
struct Front {
    proxy: Arc<proxy::Proxy>,
    edge: Arc<edge::Edge>,
}

/// A proxied route: the edge's checks ([`edge::check`], as the other routes' middleware runs
/// them), then the upstream.
async fn front(State(front): State<Front>, mut req: Request) -> Response {
    if let Err(refused) = edge::check(&front.edge, &mut req).await {
        return refused;
    }
    proxy::forward(State(front.proxy), req).await
}

/// `/sandbox/...` outside sandbox mode.
async fn sandbox_off(OriginalUri(uri): OriginalUri) -> Response {
    ApiError::not_found(format!(
        "no route for {}: sandbox mode is off here",
        uri.path()
    ))
    .into_response()
}

/// One reported check per upstream (its own `/readyz` answers 200) and, in sandbox mode, a
/// `sandbox` one (every fake in the directory answers): shown in the details, never making the
/// gateway unready — one sick upstream must not take the door out of rotation.
fn readiness(directory: &Directory, proxy: Arc<proxy::Proxy>, sandbox: bool) -> Readiness {
    let checks = directory
        .0
        .keys()
        .filter(|name| routes::SERVICES.contains(&name.as_str()))
        .fold(Readiness::default(), |r, name| {
            let proxy = proxy.clone();
            let name = name.clone();
            r.report(name.clone(), move || {
                let proxy = proxy.clone();
                let name = name.clone();
                async move { proxy.upstream_ready(&name).await }
            })
        });
    if !sandbox {
        return checks;
    }
    let fakes: Vec<String> = directory
        .0
        .keys()
        .filter(|name| name.starts_with("fake-"))
        .cloned()
        .collect();
    checks.report("sandbox", move || {
        let proxy = proxy.clone();
        let fakes = fakes.clone();
        async move {
            for fake in &fakes {
                proxy
                    .upstream_ready(fake)
                    .await
                    .map_err(|e| format!("{fake}: {e}"))?;
            }
            Ok(())
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::routing::get;
    use platform::{service::Mode, testing};

    use super::*;

    /// A gateway in front of a fake that answers `/oauth-page`, with sandbox mode `sandbox`;
    /// with the names of its readiness details.
    async fn gateway_with_fake(
        sandbox: bool,
    ) -> (
        testing::TestServer,
        testing::TestServer,
        Vec<(String, String)>,
    ) {
        let fake = testing::serve(
            Service {
                name: "fake",
                router: Router::new().route("/oauth-page", get(|| async { "the fake" })),
                readiness: Readiness::default(),
                tasks: Vec::new(),
            },
            Default::default(),
        )
        .await;
        let mut infra = testing::infra("gw_sandbox");
        infra.mode = Mode::Standalone;
        infra
            .directory
            .0
            .insert("fake-oauth".into(), fake.base_url.clone());
        let config = Config {
            sandbox,
            ..Config::default()
        };
        let service = start(&config, &infra).await.unwrap();
        let (_, details) = service.readiness.run().await;
        let details = details
            .into_iter()
            .map(|(name, v)| (name, v["status"].as_str().unwrap_or_default().to_owned()))
            .collect();
        let gw = testing::serve(service, Default::default()).await;
        (gw, fake, details)
    }

    #[tokio::test]
    async fn sandboxes_are_served_only_in_sandbox_mode() {
        let (gw, fake, details) = gateway_with_fake(true).await;
        let r = gw
            .client
            .get(gw.url("/sandbox/oauth/oauth-page"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "the fake");
        assert_eq!(details, [("sandbox".to_owned(), "up".to_owned())]);
        // Its port's `/metrics` (the process's) is not the public's.
        for path in ["/sandbox/oauth/metrics", "/sandbox/oauth/metrics/?x=1"] {
            let r = gw.client.get(gw.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 404, "{path}");
        }
        let direct = gw
            .client
            .get(format!("{}/metrics", fake.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(direct.status(), 200, "the fake's own port serves them");

        // The same directory without sandbox mode: the fake is out of reach.
        let (gw, _fake, details) = gateway_with_fake(false).await;
        let r = gw
            .client
            .get(gw.url("/sandbox/oauth/oauth-page"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
        assert!(details.is_empty(), "{details:?}");
    }
}
