//! The gateway: the platform's one public door. It routes `/api/v1/...`, `/.well-known/...` and
//! `/sandbox/...` to the owning service, carries the request id, balances over an upstream's
//! instances, times out and circuit-breaks per instance (browsing keeps working while payment is
//! down). `/sandbox/...` is served only in
//! sandbox mode (then `/readyz` has a `sandbox` check: the fakes answer); otherwise it is a
//! problem+json 404 like any unknown path.
//!
//! Its port is public, so its `/readyz` there says only ready or not (an administrator's token
//! sees the details) and it serves no `/metrics`: the details and the metrics are on its ops
//! listener (`gateway.ops_port`, see [`Config`]). Its readiness is its own: every upstream's
//! `/readyz` and the sandbox are reported in the details, and none of them makes it unready.

mod breaker;
mod proxy;
mod routes;
mod upstream;

use std::{net::IpAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::OriginalUri,
    response::{IntoResponse, Response},
    routing::any,
};
use platform::{
    ApiError,
    auth::{Role, Verifier},
    http::Readiness,
    service::{Directory, Infra, Service, StartError},
};
use serde::Deserialize;

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
    /// Address of the ops listener, where `/readyz` has every detail and `/metrics` is served
    /// (env `BOXOFFICE_GATEWAY__OPS_HOST`). Unset: `http.host` in distributed mode, loopback in
    /// standalone.
    pub ops_host: Option<IpAddr>,
    /// Port of the ops listener (env `BOXOFFICE_GATEWAY__OPS_PORT`). Unset: 9090 in distributed
    /// mode (a free port when `http.port` is 0), a free loopback port in standalone (its start
    /// banner says which).
    pub ops_port: Option<u16>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            upstream_timeout_ms: 10_000,
            breaker_failures: 5,
            breaker_open_ms: 5_000,
            health_interval_ms: 1_000,
            sandbox: false,
            ops_host: None,
            ops_port: None,
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
    ));
    // Administrators see the details of the public /readyz: tokens are checked against the user
    // service's keys (no user service in the directory: nobody does).
    let admins = infra.verifier().ok();
    let health = {
        let (proxy, stop) = (proxy.clone(), infra.shutdown.clone());
        let interval = Duration::from_millis(config.health_interval_ms);
        platform::service::supervise("health-checks", stop.clone(), move || {
            tokio::spawn(proxy.clone().check_health(interval, stop.clone()))
        })
    };
    Ok(Service {
        name: NAME,
        router: router(proxy.clone(), config.sandbox),
        readiness: readiness(&infra.directory, proxy, config.sandbox)
            .public(move |headers| is_admin(admins.clone(), headers)),
        tasks: vec![health],
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

fn router(proxy: Arc<proxy::Proxy>, sandbox: bool) -> Router {
    let routes = Router::new()
        .route("/api/{*rest}", any(proxy::forward))
        .route("/.well-known/{*rest}", any(proxy::forward));
    let routes = if sandbox {
        routes.route("/sandbox/{*rest}", any(proxy::forward))
    } else {
        routes.route("/sandbox/{*rest}", any(sandbox_off))
    };
    routes.with_state(proxy)
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
        let (gw, _fake, details) = gateway_with_fake(true).await;
        let r = gw
            .client
            .get(gw.url("/sandbox/oauth/oauth-page"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "the fake");
        assert_eq!(details, [("sandbox".to_owned(), "up".to_owned())]);

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
