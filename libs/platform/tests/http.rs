//! The HTTP bootstrap from a client's side: operational endpoints, request ids, problem+json for
//! unknown routes, oversized bodies, slow handlers and panics, and graceful shutdown with a request
//! and an event stream in flight.

#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    response::sse::{Event, Sse},
    routing::get,
    routing::post,
};
use futures::{StreamExt, stream};
use platform::{
    http::{HttpSettings, Readiness, bind, serve_on},
    problem::ApiJson,
};
use tokio::{
    net::TcpStream,
    sync::{Notify, oneshot},
    time::timeout,
};
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

/// A request that blocks until released, and an event stream that never ends by itself, are both
/// in flight when shutdown is signalled. The listener closes (new connections are refused; `/readyz`
/// is not reachable, so it never answers 503 during the drain), the event stream ends at once, the
/// request still completes with 200 when released, and only then does the server return: long
/// before the grace period, so nothing here waits for it to run out.
// A current-thread runtime: the server's tasks and the test's interleave only at await points, so
// once the listener is seen closed, a server that did not wait for the request has already returned.
#[tokio::test(flavor = "current_thread")]
async fn shutdown_drains_a_request_and_ends_event_streams() {
    let bound = Duration::from_secs(5);
    let (entered_tx, entered_rx) = oneshot::channel::<()>();
    let entered = Arc::new(Mutex::new(Some(entered_tx)));
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let routes = Router::new()
        .route(
            "/work",
            get(move || {
                let (entered, gate) = (entered.clone(), gate.clone());
                async move {
                    if let Some(tx) = entered.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    gate.notified().await;
                    "finished"
                }
            }),
        )
        .route(
            "/events",
            get(|| async {
                let first =
                    stream::once(async { Ok::<_, Infallible>(Event::default().data("hello")) });
                Sse::new(first.chain(stream::pending()))
            }),
        );
    let settings = HttpSettings {
        // Far beyond every bound below: what ends here ends because the drain finished.
        shutdown_grace_ms: 120_000,
        ..HttpSettings::default()
    };
    let (base, stop, handle) = start(routes, Readiness::default(), settings).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let client = reqwest::Client::new();

    let mut events = client
        .get(format!("{base}/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let first = timeout(bound, events.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: hello\n\n");

    let work = tokio::spawn(client.get(format!("{base}/work")).send());
    timeout(bound, entered_rx)
        .await
        .expect("the slow request reaches its handler")
        .unwrap();

    stop.cancel();

    // The event stream ends, cleanly, without waiting for the grace period.
    let rest = timeout(bound, async {
        let mut rest = Vec::new();
        while let Some(chunk) = events.chunk().await? {
            rest.extend_from_slice(&chunk);
        }
        Ok::<_, reqwest::Error>(rest)
    })
    .await
    .expect("the event stream ends at shutdown")
    .unwrap();
    assert!(rest.is_empty(), "{rest:?}");

    // The listener closes: a new connection is refused. (A connection made in the instant before
    // it closes is accepted by the kernel; try again.)
    timeout(bound, async {
        loop {
            match TcpStream::connect(&addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                Err(e) => panic!("connecting to a draining server: {e}"),
                Ok(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("new connections are refused while draining");
    assert!(
        !handle.is_finished(),
        "the server returned with a request still in flight"
    );

    release.notify_one();
    let response = timeout(bound, work)
        .await
        .expect("the released request completes")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    timeout(bound, handle)
        .await
        .expect("the server returns once the request is done")
        .unwrap()
        .unwrap();
}
