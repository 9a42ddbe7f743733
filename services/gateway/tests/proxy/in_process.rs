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
    http::{HttpSettings, in_process},
    service::Directory,
};
use serde_json::{Value, json};

use crate::{dead_address, gateway};

/// The name the in-process catalog counts its requests under.
const METRICS_NAME: &str = "catalog-in-process-test";

/// The catalog's app as the gateway calls it in process, seen by the gateway as in process; its
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
            "/api/v1/venues/json",
            post(|Json(body): Json<Value>| async move { Json(body) }),
        )
        .route(
            "/api/v1/events/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("a handler bug");
                }
                "unreachable"
            }),
        )
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
        in_process(METRICS_NAME, routes, Default::default(), &settings),
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

    // The app's own fallback answers an unknown path: a problem+json 404.
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

/// In process the service's app has none of the middleware the gateway runs around the call;
/// what that middleware did for it still happens, once, and what is the service's own (its body
/// limit, its request metrics) still applies.
#[tokio::test]
async fn in_process_the_gateway_stack_does_what_the_service_stack_did() {
    let (dir, config) = catalog();
    let gw = gateway(dir, config).await;
    let before = counts();

    // The service's body limit (256 KiB by default), under the gateway's (1 MiB).
    let resp = gw
        .client
        .post(gw.url("/api/v1/venues"))
        .body("x".repeat(300 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large", "{body}");

    // A plain-text rejection of the service's extractor comes out as problem+json.
    let resp = gw
        .client
        .post(gw.url("/api/v1/venues/json"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "invalid_body", "{body}");

    // A panicking handler is a 500 problem+json, and the gateway goes on serving.
    let resp = gw
        .client
        .get(gw.url("/api/v1/events/panic"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "internal", "{body}");
    let resp = gw
        .client
        .get(gw.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Each call is counted once in the service's own request metrics, by its route and status
    // (the panic as a 500), whatever other tests of this process counted before.
    let after = counts();
    let added = |route: &str, status: &str| {
        let key = (route.to_owned(), status.to_owned());
        after.get(&key).copied().unwrap_or(0.0) - before.get(&key).copied().unwrap_or(0.0)
    };
    assert_eq!(added("/api/v1/events", "200"), 1.0, "{after:?}");
    assert_eq!(added("/api/v1/venues/json", "400"), 1.0, "{after:?}");
    assert_eq!(added("/api/v1/events/panic", "500"), 1.0, "{after:?}");
}

/// The in-process catalog's request counts, by (route, status).
fn counts() -> std::collections::HashMap<(String, String), f64> {
    let label = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_owned())
    };
    platform::http::prometheus()
        .render()
        .lines()
        .filter(|l| l.starts_with("boxoffice_http_requests_total{"))
        .filter(|l| label(l, "service").as_deref() == Some(METRICS_NAME))
        .filter_map(|l| {
            let value = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some(((label(l, "route")?, label(l, "status")?), value))
        })
        .collect()
}
