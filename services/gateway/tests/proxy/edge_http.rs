//! The HTTP the edge adds around forwarding: request bodies over `gateway.body_limit_bytes`
//! refused before any upstream (declared or chunked), gzip for clients that ask (never for event
//! streams or errors), CORS only for the configured origins, and the OpenAPI document with its
//! viewer under a Content-Security-Policy.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Router,
    http::header,
    routing::{get, post},
};
use platform::{
    service::{Directory, Service},
    testing::{TestServer, serve},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::gateway;

/// A catalog stand-in: a large JSON listing, a large event stream body, and a POST that counts
/// the requests that reached it.
async fn upstream(hits: Arc<AtomicUsize>) -> TestServer {
    let big: Value = json!({"items": (0..400).map(|i| json!({"id": i, "name": "잠실 야구장 두산 베어스 vs LG 트윈스"})).collect::<Vec<_>>()});
    let listing = serde_json::to_string(&big).unwrap();
    let router = Router::new()
        .route(
            "/api/v1/events",
            get(move || {
                let listing = listing.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], listing) }
            }),
        )
        .route(
            "/api/v1/events/stream",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    "data: x\n\n".repeat(1000),
                )
            }),
        )
        .route(
            "/api/v1/venues",
            post(move |body: axum::body::Bytes| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    body.len().to_string()
                }
            }),
        );
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

async fn setup(config: gateway::Config) -> (TestServer, TestServer, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let up = upstream(hits.clone()).await;
    let mut dir = Directory::default();
    dir.0.insert("catalog".into(), up.base_url.clone());
    let gw = gateway(dir, config).await;
    (gw, up, hits)
}

/// POSTs `chunks` chunks of `size` bytes with `Transfer-Encoding: chunked` (no declared length)
/// over a raw connection; the status and the body of the answer.
async fn chunked_post(gw: &TestServer, path: &str, chunks: usize, size: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = gw.base_url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        let chunk = format!("{size:x}\r\n{}\r\n", "b".repeat(size));
        // The gateway may answer and close before taking every chunk.
        if conn.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn code_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_before_any_upstream() {
    let config = gateway::Config {
        body_limit_bytes: 1000,
        ..Default::default()
    };
    let (gw, _up, hits) = setup(config).await;
    let url = gw.url("/api/v1/venues");
    // Within the limit: forwarded.
    let ok = gw
        .client
        .post(&url)
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1000");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // A declared length over it, and a chunked body that grows past it.
    let declared = gw
        .client
        .post(&url)
        .body(vec![b'a'; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(declared).await, (413, "payload_too_large".into()));
    let (status, body) = chunked_post(&gw, "/api/v1/venues", 20, 100).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    // A small chunked body is read, then forwarded.
    let (status, body) = chunked_post(&gw, "/api/v1/venues", 3, 100).await;
    assert_eq!((status, body.as_str()), (200, "300"));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "the refused ones never reached it"
    );
}

#[tokio::test]
async fn gzip_when_asked_but_never_for_streams_or_small_bodies() {
    let (gw, _up, _hits) = setup(gateway::Config::default()).await;
    let plain = gw
        .client
        .get(gw.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let plain_len = plain.bytes().await.unwrap().len();
    assert!(plain_len > 10_000, "{plain_len}");

    let gz = gw
        .client
        .get(gw.url("/api/v1/events"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status(), 200);
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    assert!(
        gz.headers()[header::VARY]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding")
    );
    let bytes = gz.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(
        bytes.len() * 5 < plain_len,
        "{} of {plain_len}",
        bytes.len()
    );

    let stream = gw
        .client
        .get(gw.url("/api/v1/events/stream"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert!(stream.headers().get(header::CONTENT_ENCODING).is_none());
    assert!(stream.text().await.unwrap().starts_with("data: x"));

    let small = gw
        .client
        .post(gw.url("/api/v1/venues"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .body("tiny")
        .send()
        .await
        .unwrap();
    assert!(small.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(small.text().await.unwrap(), "4");
    // An error is never compressed.
    let missing = gw
        .client
        .get(gw.url("/api/v1/nothing-here"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert!(missing.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(code_of(missing).await, (404, "not_found".into()));
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let preflight = |gw: &TestServer, origin: &str| {
        gw.client
            .request(reqwest::Method::OPTIONS, gw.url("/api/v1/venues"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    // None configured (the default): no CORS header for anyone.
    let (gw, _up, hits) = setup(gateway::Config::default()).await;
    let r = gw
        .client
        .get(gw.url("/api/v1/events"))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    let config = gateway::Config {
        cors_origins: vec!["https://partner.example.kr".into()],
        ..Default::default()
    };
    let (gw, _up, hits2) = setup(config).await;
    let ok = preflight(&gw, "https://partner.example.kr").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://partner.example.kr"
    );
    let allowed = ok.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("idempotency-key"), "{allowed}");
    assert!(
        ok.headers()
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none()
    );
    let other = preflight(&gw, "https://evil.example").await.unwrap();
    assert!(
        other
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
    // Preflights never reach an upstream.
    assert_eq!(
        hits.load(Ordering::SeqCst) + hits2.load(Ordering::SeqCst),
        0
    );
    let real = gw
        .client
        .get(gw.url("/api/v1/events"))
        .header(header::ORIGIN, "https://partner.example.kr")
        .send()
        .await
        .unwrap();
    assert_eq!(
        real.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://partner.example.kr"
    );
}

#[tokio::test]
async fn the_document_and_its_viewer_are_served_under_a_strict_policy() {
    let (gw, _up, _hits) = setup(gateway::Config::default()).await;
    let doc = gw
        .client
        .get(gw.url("/api/docs/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status(), 200);
    let doc: Value = doc.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/healthz"]["get"].is_object(), "{doc}");
    for (path, kind) in [
        ("/api/docs", "text/html"),
        ("/api/docs/viewer.js", "text/javascript"),
        ("/api/docs/viewer.css", "text/css"),
    ] {
        let r = gw.client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
    }
    let page = gw
        .client
        .get(gw.url("/api/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/api/docs/viewer.js") && !page.contains("http"),
        "own assets only"
    );
    // Another path under /api/docs is not a service's document leaking through.
    let r = gw
        .client
        .get(gw.url("/api/docs/order/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
