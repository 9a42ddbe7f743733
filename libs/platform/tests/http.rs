//! The HTTP bootstrap from a client's side: operational endpoints, request ids, problem+json for
//! every client error (unknown routes, 405, axum's own path, query and body rejections), oversized
//! bodies, slow handlers and panics; public readiness (bare unless the gate admits; details and
//! metrics on the ops listener); background tasks and the shared infrastructure in `/readyz`; and
//! graceful shutdown with a request and an event stream in flight, `/readyz` 503 first.

#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, Query},
    http::StatusCode,
    response::sse::{Event, Sse},
    routing::get,
    routing::post,
};
use futures::{StreamExt, stream};
use platform::{
    bus::BusSettings,
    http::{HttpSettings, Readiness, bind, serve_on, serve_ops_on},
    problem::{ApiJson, ApiPath, ApiQuery},
    service::Service,
    testing,
};
use serde_json::{Value, json};
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

/// Request metrics are labelled by the route's template, and a method no standard names is
/// `OTHER`: whatever paths and methods clients send, the number of series stays bounded.
#[tokio::test]
async fn request_metrics_have_bounded_labels_and_count_each_request() {
    let routes = Router::new().route(
        "/bounded/{id}",
        get(|| async { "ok" }).fallback(|| async { "any" }),
    );
    let (base, _stop, _h) = start(routes, Readiness::default(), HttpSettings::default()).await;
    let client = reqwest::Client::new();
    for id in ["1", "2", "3"] {
        let got = client
            .get(format!("{base}/bounded/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
    }
    let frob = reqwest::Method::from_bytes(b"FROB").unwrap();
    let got = client
        .request(frob, format!("{base}/bounded/4"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("boxoffice_http_requests_total{") && l.contains("/bounded/"))
        .collect();
    let get = series
        .iter()
        .find(|l| l.contains(r#"method="GET""#))
        .unwrap_or_else(|| panic!("{series:?}"));
    assert!(get.contains(r#"route="/bounded/{id}""#), "{get}");
    assert!(get.ends_with(" 3"), "three GETs counted once each: {get}");
    let other = series
        .iter()
        .find(|l| l.contains(r#"method="OTHER""#))
        .unwrap_or_else(|| panic!("{series:?}"));
    assert!(other.ends_with(" 1"), "{other}");
    assert!(!text.contains("FROB"), "a client's method is no label");
    assert_eq!(series.len(), 2, "{series:?}");
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
        // NUL, which no PostgreSQL text column stores: refused before any handler, in a body,
        // a query string or a path (never a 500 from the database).
        (
            client
                .post(format!("{base}/echo"))
                .header("content-type", "application/json")
                .body(r#"{"name":"a\u0000b"}"#),
            400,
            "validation_failed",
        ),
        (
            client.get(format!("{base}/panic?q=a%00b")),
            400,
            "validation_failed",
        ),
        (
            client.get(format!("{base}/nowhere%00")),
            400,
            "validation_failed",
        ),
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
/// in flight when shutdown is signalled. With no drain delay (the default) the listener closes at
/// once (new connections are refused; the 503-first drain is
/// `shutdown_answers_not_ready_first_while_requests_finish`), the event stream ends, the request
/// still completes with 200 when released, and only then does the server return: long before the
/// grace period, so nothing here waits for it to run out.
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

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Page {
    limit: u32,
}

/// Asserts a problem+json answer with `status` and `code`; returns the body.
async fn problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "{code}");
    assert_eq!(
        resp.headers()["content-type"],
        "application/problem+json",
        "{code}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

/// Handlers with axum's plain extractors (their rejections are rewritten by the middleware) and
/// with the platform's (their rejections are problems from the start).
#[tokio::test]
async fn every_client_error_is_a_problem() {
    let routes = Router::new()
        .route(
            "/plain/{id}",
            get(|Path(id): Path<u64>| async move { id.to_string() }),
        )
        .route(
            "/plain",
            get(|Query(p): Query<Page>| async move { p.limit.to_string() })
                .post(|Json(p): Json<Payload>| async move { p.name }),
        )
        .route(
            "/api/{id}",
            get(|ApiPath(id): ApiPath<u64>| async move { id.to_string() }),
        )
        .route(
            "/api",
            get(|ApiQuery(p): ApiQuery<Page>| async move { p.limit.to_string() }),
        )
        .route("/bare", get(|| async { StatusCode::FORBIDDEN }))
        .route(
            "/own-json",
            get(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_grant"})),
                )
            }),
        );
    let (base, _stop, _h) = start(routes, Readiness::default(), HttpSettings::default()).await;
    let client = reqwest::Client::new();

    problem(
        client.get(format!("{base}/nowhere")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    let resp = client.delete(format!("{base}/plain")).send().await.unwrap();
    let allow = resp.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    problem(resp, 405, "method_not_allowed").await;
    let resp = client.post(format!("{base}/healthz")).send().await.unwrap();
    assert!(resp.headers().contains_key("allow"));
    problem(resp, 405, "method_not_allowed").await;

    for path in ["/plain/seven", "/api/seven", "/plain/%FF", "/api/%FF"] {
        let body = problem(
            client.get(format!("{base}{path}")).send().await.unwrap(),
            400,
            "invalid_path",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains("id"),
            "{path}: {body}"
        );
    }
    for path in [
        "/plain?limit=many",
        "/api?limit=many",
        "/plain",
        "/api?limit=1&limit=2",
    ] {
        problem(
            client.get(format!("{base}{path}")).send().await.unwrap(),
            400,
            "invalid_query",
        )
        .await;
    }
    let json_post = |body: &'static str| {
        client
            .post(format!("{base}/plain"))
            .header("content-type", "application/json")
            .body(body)
    };
    problem(
        json_post("{nope").send().await.unwrap(),
        400,
        "invalid_body",
    )
    .await;
    problem(json_post("{}").send().await.unwrap(), 422, "invalid_body").await;
    problem(
        client
            .post(format!("{base}/plain"))
            .body("{}")
            .send()
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    problem(
        client.get(format!("{base}/bare")).send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;

    // A JSON error body of the handler's own (a third party's format) is left as it is.
    let own = client.get(format!("{base}/own-json")).send().await.unwrap();
    assert_eq!(own.status(), 400);
    assert_eq!(own.headers()["content-type"], "application/json");
    assert_eq!(
        own.json::<Value>().await.unwrap(),
        json!({"error": "invalid_grant"})
    );

    // Good requests are untouched.
    let ok = client.get(format!("{base}/plain/7")).send().await.unwrap();
    assert_eq!(ok.text().await.unwrap(), "7");
    let ok = client
        .get(format!("{base}/api?limit=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.text().await.unwrap(), "3");
}

/// A public port: `/readyz` bare unless the gate admits, no `/metrics`; the ops listener has both.
#[tokio::test]
async fn public_readiness_is_bare_and_the_ops_listener_has_the_details() {
    let readiness = Readiness::default()
        .check("database", || async { Ok(()) })
        .report("upstream", || async {
            Err("upstream down for a test".to_owned())
        })
        .public(|headers: &axum::http::HeaderMap| {
            let admitted = headers.get("x-test-admin").is_some_and(|v| v == "yes");
            async move { admitted }
        });
    let (base, stop, _h) = start(Router::new(), readiness.clone(), HttpSettings::default()).await;
    let ops_listener = bind(&HttpSettings::default()).await.unwrap();
    let ops = format!("http://{}", ops_listener.local_addr().unwrap());
    let settings = HttpSettings::default();
    tokio::spawn(
        async move { serve_ops_on(ops_listener, "test", readiness, &settings, stop).await },
    );
    let client = reqwest::Client::new();

    // Ready (a reported check does not count), and nothing more is said.
    let bare = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(bare.status(), 200);
    assert_eq!(
        bare.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );
    let wrong = client
        .get(format!("{base}/readyz"))
        .header("x-test-admin", "no")
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );
    problem(
        client.get(format!("{base}/metrics")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    let admitted: Value = client
        .get(format!("{base}/readyz"))
        .header("x-test-admin", "yes")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admitted["status"], "ready");
    assert_eq!(admitted["checks"]["database"]["status"], "up");
    assert_eq!(admitted["checks"]["upstream"]["status"], "down");
    assert_eq!(admitted["checks"]["upstream"]["required"], false);

    let detailed: Value = client
        .get(format!("{ops}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        detailed["checks"]["upstream"]["error"],
        "upstream down for a test"
    );
    let metrics = client.get(format!("{ops}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("boxoffice_http_requests_total")
    );
}

/// At shutdown `/readyz` answers 503 first, for the drain delay, while the server still serves:
/// a request in flight completes and a new one is answered. The delay is far longer than the
/// test, so nothing here races it.
#[tokio::test]
async fn shutdown_answers_not_ready_first_while_requests_finish() {
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
        .route("/quick", get(|| async { "quick" }));
    let settings = HttpSettings {
        drain_delay_ms: Some(600_000),
        ..HttpSettings::default()
    };
    let (base, stop, handle) = start(routes, Readiness::default(), settings).await;
    let client = reqwest::Client::new();
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let work = tokio::spawn(client.get(format!("{base}/work")).send());
    timeout(bound, entered_rx).await.unwrap().unwrap();
    stop.cancel();

    let draining = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(draining.status(), 503);
    let body: Value = draining.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["shutdown"]["status"], "down", "{body}");
    // Still serving: a new request (on a new connection) is answered.
    let quick = reqwest::Client::new()
        .get(format!("{base}/quick"))
        .send()
        .await
        .unwrap();
    assert_eq!(quick.text().await.unwrap(), "quick");

    release.notify_one();
    let response = timeout(bound, work).await.unwrap().unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    assert!(
        !handle.is_finished(),
        "the server stays up for the drain delay"
    );
}

/// A background task that dies shows in `/readyz` by name: the outbox relay, killed.
#[tokio::test]
async fn a_killed_relay_shows_in_readyz() {
    let db = testing::TestDb::new("http_relay", None).await;
    let infra = testing::infra("http_relay");
    let relay = infra.spawn_relay("test", db.pool.clone());
    let kill = relay.abort_handle();
    let server = testing::serve(
        Service {
            name: "test",
            router: Router::new(),
            readiness: Readiness::default(),
            tasks: vec![relay],
        },
        infra.shutdown.clone(),
    )
    .await;
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["task:relay"]["status"], "up", "{body}");

    kill.abort();
    testing::eventually(
        "the dead relay shows in /readyz",
        Duration::from_secs(5),
        || async {
            let resp = server
                .client
                .get(server.url("/readyz"))
                .send()
                .await
                .unwrap();
            resp.status() == 503
                && resp.json::<Value>().await.unwrap()["checks"]["task:relay"]["status"] == "down"
        },
    )
    .await;
    let body: Value = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let error = body["checks"]["task:relay"]["error"].as_str().unwrap();
    assert!(error.starts_with("killed"), "{error}");
    infra.shutdown.cancel();
    db.drop_database().await;
}

/// Redis and the broker, up and down.
#[tokio::test]
async fn readiness_covers_redis_and_the_broker() {
    let up = BusSettings {
        kafka_brokers: testing::kafka_brokers(),
        ..BusSettings::default()
    };
    let down = BusSettings {
        kafka_brokers: dead_address(),
        ..BusSettings::default()
    };
    let (ok, checks) = Readiness::default()
        .redis(&testing::redis_url())
        .broker(&up)
        .run()
        .await;
    assert!(ok, "{checks:?}");
    assert_eq!(checks["redis"]["status"], "up");
    assert_eq!(checks["broker"]["status"], "up");

    let (ok, checks) = Readiness::default()
        .redis(&format!("redis://{}", dead_address()))
        .broker(&down)
        .run()
        .await;
    assert!(!ok);
    assert_eq!(checks["redis"]["status"], "down", "{checks:?}");
    assert_eq!(checks["broker"]["status"], "down", "{checks:?}");
}

/// An address nothing listens on.
fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}
