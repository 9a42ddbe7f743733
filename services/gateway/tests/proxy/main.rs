//! The gateway in front of real upstream servers: forwarding with the request id, query and body
//! intact, problem+json when an upstream is down, a circuit that opens after repeated failures,
//! and readiness that stays its own with an upstream down; server-sent events streamed through
//! ([`streams`]); the client address carried on whatever the client claims ([`forwarded`]); the
//! public `/readyz` and `/metrics` against the ops listener ([`ops`]); every client error of a
//! real service problem+json through the gateway ([`problems`]); several instances of one upstream
//! ([`balancing`]); bearer tokens verified at the edge and the identity passed on, client-sent
//! identity headers stripped ([`auth`]); rate limits per address and per account, in process and
//! shared through Redis ([`ratelimit`]); the web UI and its cookie sessions ([`web`]).

#![allow(clippy::unwrap_used)]

mod auth;
mod balancing;
mod edge_http;
mod forwarded;
mod in_process;
mod ops;
mod problems;
mod ratelimit;
mod streams;
mod web;

use std::sync::Arc;

use axum::{
    Json, Router,
    http::HeaderMap,
    routing::{get, post},
};
use platform::{
    bus::memory::MemoryTransport,
    http::{HttpSettings, bind, serve_ops_on},
    service::{Directory, Infra, Mode, Service},
    testing::{TestServer, serve},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn infra(directory: Directory) -> Infra {
    Infra {
        mode: Mode::Standalone,
        database_url: None,
        database: Default::default(),
        bus: Arc::new(MemoryTransport::new(1)),
        bus_settings: Default::default(),
        redis: Default::default(),
        directory,
        shutdown: CancellationToken::new(),
    }
}

async fn upstream() -> TestServer {
    let router = Router::new()
        .route(
            "/api/v1/events",
            get(|headers: HeaderMap, uri: axum::http::Uri| async move {
                Json(json!({
                    "query": uri.query(),
                    "request_id": headers.get("x-request-id").and_then(|v| v.to_str().ok()),
                    "forwarded_for": headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
                }))
            }),
        )
        .route("/api/v1/venues", post(|body: String| async move { body }));
    serve(
        Service {
            name: "catalog",
            router,
            readiness: Default::default(),
            tasks: vec![],
        },
        CancellationToken::new(),
    )
    .await
}

async fn gateway(directory: Directory, config: gateway::Config) -> TestServer {
    gateway_with_ops(directory, config).await.0
}

/// The gateway on its public port, and the base URL of its ops listener (as the launcher serves
/// them).
async fn gateway_with_ops(directory: Directory, config: gateway::Config) -> (TestServer, String) {
    gateway_on(infra(directory), config).await
}

/// [`gateway_with_ops`] on a given [`Infra`] (Redis settings, mode).
async fn gateway_on(infra: Infra, config: gateway::Config) -> (TestServer, String) {
    let service = gateway::start(&config, &infra).await.unwrap();
    let settings = HttpSettings::default();
    let ops = bind(&settings).await.unwrap();
    let ops_url = format!("http://{}", ops.local_addr().unwrap());
    let readiness = service.readiness.clone();
    let public = serve(service, CancellationToken::new()).await;
    let stop = public.shutdown.clone();
    tokio::spawn(async move { serve_ops_on(ops, "gateway", readiness, &settings, stop).await });
    (public, ops_url)
}

/// GETs `url` and returns its status and JSON body.
async fn get_json(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

#[tokio::test]
async fn forwards_with_request_id_query_and_body() {
    let up = upstream().await;
    let mut dir = Directory::default();
    dir.0.insert("catalog".into(), up.base_url.clone());
    let (gw, ops) = gateway_with_ops(dir, gateway::Config::default()).await;

    let resp = gw
        .client
        .get(gw.url("/api/v1/events?kind=baseball&q=%EC%9E%A0%EC%8B%A4"))
        .header("x-request-id", "trace-me")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "trace-me");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["query"], "kind=baseball&q=%EC%9E%A0%EC%8B%A4");
    assert_eq!(body["request_id"], "trace-me");
    assert_eq!(body["forwarded_for"], "127.0.0.1");

    let echoed = gw
        .client
        .post(gw.url("/api/v1/venues"))
        .body("a body")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(echoed, "a body");

    let (status, ready) = get_json(&format!("{ops}/readyz")).await;
    assert_eq!(status, 200);
    assert_eq!(ready["checks"]["catalog"]["status"], "up");
}

#[tokio::test]
async fn a_dead_upstream_is_a_problem_then_an_open_circuit() {
    let up = upstream().await;
    let mut dir = Directory::default();
    dir.0.insert("catalog".into(), up.base_url.clone());
    dir.0.insert("payment".into(), dead_address());
    let config = gateway::Config {
        breaker_failures: 2,
        breaker_open_ms: 60_000,
        ..Default::default()
    };
    let (gw, ops) = gateway_with_ops(dir, config).await;

    for _ in 0..2 {
        let resp = gw
            .client
            .post(gw.url("/api/v1/payments/confirm"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 502);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "upstream_unavailable");
    }
    let open = gw
        .client
        .post(gw.url("/api/v1/payments/confirm"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 503, "the circuit is open now");
    assert!(open.headers().contains_key("retry-after"));

    // Browsing still works while payment is down.
    let browse = gw
        .client
        .get(gw.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(browse.status(), 200);

    // The gateway stays ready: its readiness is its own; the dead upstream shows in the details.
    let (status, bare) = get_json(&gw.url("/readyz")).await;
    assert_eq!((status, bare), (200, json!({"status": "ready"})));
    let (status, body) = get_json(&format!("{ops}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["payment"]["status"], "down");
    assert_eq!(body["checks"]["payment"]["required"], false);
    assert_eq!(body["checks"]["catalog"]["status"], "up");
}

#[tokio::test]
async fn unknown_paths_are_404_problems() {
    let gw = gateway(Directory::default(), gateway::Config::default()).await;
    for path in ["/api/v1/nothing", "/api/v1/events", "/favicon.ico"] {
        let resp = gw.client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
    }
}
