//! The HTTP bootstrap from a client's side: operational endpoints, request ids, problem+json for
//! unknown routes, oversized bodies, slow handlers and panics, and graceful shutdown that lets an
//! in-flight request finish.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::{Router, routing::get, routing::post};
use platform::{
    http::{HttpSettings, Readiness, bind, serve_on},
    problem::ApiJson,
};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

async fn start(
    routes: Router,
    readiness: Readiness,
    settings: HttpSettings,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = bind(&settings).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let handle = tokio::spawn(async move {
        serve_on(listener, "test", routes, readiness, &settings, token).await
    });
    (base, shutdown, handle)
}

#[tokio::test]
async fn ops_endpoints_and_request_ids() {
    let readiness = Readiness::default()
        .check("good", || async { Ok(()) })
        .check("bad", || async { Err("down for a test".to_owned()) });
    let (base, _stop, _h) = start(Router::new(), readiness, HttpSettings::default()).await;
    let client = reqwest::Client::new();

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let generated = health.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!generated.is_empty());

    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["good"]["status"], "up");
    assert_eq!(body["checks"]["bad"]["status"], "down");
    assert_eq!(body["checks"]["bad"]["error"], "down for a test");

    let echoed = client
        .get(format!("{base}/nowhere"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "req-123");
    assert_eq!(echoed.status(), 404);
    assert_eq!(echoed.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = echoed.json().await.unwrap();
    assert_eq!(problem["code"], "not_found");

    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("boxoffice_http_requests_total"), "{text}");
}

#[derive(serde::Deserialize)]
struct Payload {
    #[allow(dead_code)]
    name: String,
}

#[tokio::test]
async fn bad_bodies_slow_handlers_and_panics_are_problems() {
    let routes = Router::new()
        .route(
            "/echo",
            post(|ApiJson(_p): ApiJson<Payload>| async { "ok" }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                "never"
            }),
        );
    let settings = HttpSettings {
        body_limit_bytes: 64,
        request_timeout_ms: 200,
        ..HttpSettings::default()
    };
    let (base, _stop, _h) = start(routes, Readiness::default(), settings).await;
    let client = reqwest::Client::new();

    let cases = [
        (
            client
                .post(format!("{base}/echo"))
                .body("{}")
                .header("content-type", "application/json"),
            400,
            "validation_failed",
        ),
        (
            client
                .post(format!("{base}/echo"))
                .body("{nope")
                .header("content-type", "application/json"),
            400,
            "malformed_json",
        ),
        (
            client.post(format!("{base}/echo")).body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            client
                .post(format!("{base}/echo"))
                .header("content-type", "application/json")
                .body(format!("{{\"name\":\"{}\"}}", "x".repeat(200))),
            413,
            "payload_too_large",
        ),
        (client.get(format!("{base}/slow")), 503, "timeout"),
        (client.get(format!("{base}/panic")), 500, "internal"),
    ];
    for (req, status, code) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status, "{code}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{code}"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code);
        assert_eq!(body["status"], status);
    }
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let (entered_tx, entered_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let entered = std::sync::Mutex::new(Some(entered_tx));
    let release = std::sync::Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let entered = std::sync::Arc::new(entered);
    let routes = Router::new().route(
        "/work",
        get(move || {
            let entered = entered.clone();
            let release = release.clone();
            async move {
                if let Some(tx) = entered.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                if let Some(rx) = release.lock().await.take() {
                    let _ = rx.await;
                }
                "finished"
            }
        }),
    );
    let (base, stop, handle) = start(routes, Readiness::default(), HttpSettings::default()).await;
    let request = tokio::spawn(async move {
        reqwest::get(format!("{base}/work"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    entered_rx.await.unwrap();
    stop.cancel();
    // The server is draining; the request is still in flight until released.
    assert!(!handle.is_finished());
    release_tx.send(()).unwrap();
    assert_eq!(request.await.unwrap(), "finished");
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("server stops after draining")
        .unwrap()
        .unwrap();
}
