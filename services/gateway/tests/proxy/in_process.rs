//! Standalone: an upstream that runs in the gateway's process is called in process, with the same
//! request (path, query, headers the gateway sets or strips, body) as over HTTP, the peer
//! loopback, and the upstream timeout; its address is never dialled.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    extract::ConnectInfo,
    routing::{get, post},
};
use platform::{
    http::{HttpSettings, app},
    service::Directory,
};
use serde_json::{Value, json};

use crate::{dead_address, gateway};

/// The catalog's app as its port would serve it, seen by the gateway as in process; its
/// directory address is a port nobody listens on.
fn catalog() -> (Directory, gateway::Config) {
    let routes = Router::new()
        .route(
            "/api/v1/events",
            get(|req: axum::extract::Request| async move {
                let headers = req.headers();
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                Json(json!({
                    "path": req.uri().path(),
                    "query": req.uri().query(),
                    "request_id": header("x-request-id"),
                    "forwarded_for": header("x-forwarded-for"),
                    "user": header("x-boxoffice-account"),
                    "peer": req
                        .extensions()
                        .get::<ConnectInfo<SocketAddr>>()
                        .map(|p| p.0.ip().to_string()),
                }))
            }),
        )
        .route("/api/v1/venues", post(|body: String| async move { body }))
        .route(
            "/api/v1/events/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
    let settings = HttpSettings::default();
    let mut local = gateway::proxy::LocalUpstreams::default();
    local.0.insert(
        "catalog".to_owned(),
        app("catalog", routes, Default::default(), &settings),
    );
    let mut dir = Directory::default();
    dir.0.insert("catalog".into(), dead_address());
    let config = gateway::Config {
        local_upstreams: local,
        upstream_timeout_ms: 300,
        ..gateway::Config::default()
    };
    (dir, config)
}

#[tokio::test]
async fn an_upstream_in_this_process_is_called_in_process_with_the_same_request() {
    let (dir, config) = catalog();
    let gw = gateway(dir, config).await;

    let resp = gw
        .client
        .get(gw.url("/api/v1/events?kind=baseball&q=%EB%91%90%EC%82%B0"))
        .header("x-request-id", "req-in-process-1")
        .header("x-forwarded-for", "203.0.113.9")
        // A client-sent identity is never passed on.
        .header(
            "x-boxoffice-account",
            "00000000-0000-0000-0000-000000000001",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "its address is dead: only in process answers"
    );
    assert_eq!(
        resp.headers()["x-request-id"],
        "req-in-process-1",
        "the request id comes back"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/api/v1/events");
    assert_eq!(body["query"], "kind=baseball&q=%EB%91%90%EC%82%B0");
    assert_eq!(body["request_id"], "req-in-process-1");
    assert_eq!(
        body["forwarded_for"], "203.0.113.9, 127.0.0.1",
        "the client's claim and the address the gateway saw, as over HTTP"
    );
    assert!(body["user"].is_null(), "{body}");
    assert_eq!(body["peer"], "127.0.0.1", "the upstream's peer is loopback");

    let sent = "x".repeat(10_000);
    let resp = gw
        .client
        .post(gw.url("/api/v1/venues"))
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), sent, "the body arrives whole");

    // The app's own middleware runs: an unknown path is its problem+json 404.
    let resp = gw
        .client
        .get(gw.url("/api/v1/events/nope/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
}

#[tokio::test]
async fn an_in_process_upstream_that_hangs_gets_the_upstream_timeout() {
    let (dir, config) = catalog();
    let gw = gateway(dir, config).await;
    let resp = gw
        .client
        .get(gw.url("/api/v1/events/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "upstream_timeout");
}
