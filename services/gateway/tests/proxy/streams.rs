//! Server-sent events through the gateway. The upstream sends each event only when the test
//! releases it, so a client that sees an event while the upstream still holds the next one proves
//! the gateway streams rather than buffers. The gateway's upstream timeout bounds the wait for
//! an upstream's response *headers* (`tokio::time::timeout` around the request in
//! `src/proxy.rs`); the body is not under it, so a stream outlives it by design.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::header,
    response::Response,
    routing::get,
};
use platform::{
    service::{Directory, Service},
    testing::{TestServer, serve},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::gateway;

/// How long the gateway waits for an upstream's response headers in these tests.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(300);
/// How long the test waits for something that should arrive at once.
const PROMPTLY: Duration = Duration::from_secs(5);

/// An upstream whose `/api/v1/performances/p1/seats/stream` is an event stream fed by the
/// returned sender (one stream, for the first request; it ends when the sender is dropped), and
/// whose `/api/v1/events` never answers.
async fn event_upstream() -> (TestServer, mpsc::UnboundedSender<&'static str>) {
    let (tx, rx) = mpsc::unbounded_channel::<&'static str>();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let router = Router::new()
        .route(
            "/api/v1/performances/p1/seats/stream",
            get(move || {
                let rx = rx.lock().unwrap().take().expect("one stream per test");
                let events = futures::stream::unfold(rx, |mut rx| async move {
                    let event = rx.recv().await?;
                    Some((
                        Ok::<_, Infallible>(Bytes::from_static(event.as_bytes())),
                        rx,
                    ))
                });
                async move {
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/event-stream")
                        .header(header::CACHE_CONTROL, "no-cache")
                        .body(Body::from_stream(events))
                        .unwrap()
                }
            }),
        )
        .route("/api/v1/events", get(std::future::pending::<()>));
    let server = serve(
        Service {
            name: "seat",
            router,
            readiness: Default::default(),
            tasks: vec![],
        },
        CancellationToken::new(),
    )
    .await;
    (server, tx)
}

/// Reads from `resp` until the text read so far (kept in `seen`) contains `want`.
async fn read_until(resp: &mut reqwest::Response, seen: &mut String, want: &str) {
    tokio::time::timeout(PROMPTLY, async {
        while !seen.contains(want) {
            let chunk = resp.chunk().await.unwrap().expect("the stream ended early");
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{want:?} did not come through; got {seen:?}"));
}

#[tokio::test]
async fn events_stream_through_one_at_a_time_past_the_upstream_timeout() {
    let (up, events) = event_upstream().await;
    let mut dir = Directory::default();
    dir.0.insert("seat".into(), up.base_url.clone());
    dir.0.insert("catalog".into(), up.base_url.clone());
    let config = gateway::Config {
        upstream_timeout_ms: UPSTREAM_TIMEOUT.as_millis() as u64,
        ..Default::default()
    };
    let gw = gateway(dir, config).await;

    // The timeout is real: an upstream that sends no headers in time is a 504.
    let slow = gw
        .client
        .get(gw.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 504);

    // The headers come at once: a gateway that waited for the body would hold them back.
    let request = gw
        .client
        .get(gw.url("/api/v1/performances/p1/seats/stream"))
        .header(header::ACCEPT, "text/event-stream")
        .send();
    let mut resp = tokio::time::timeout(PROMPTLY, request)
        .await
        .expect("the stream's headers did not come through")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut seen = String::new();

    // The first event arrives while the upstream has not sent (or even been given) the next.
    events.send("id: 1\ndata: first\n\n").unwrap();
    read_until(&mut resp, &mut seen, "data: first\n\n").await;
    assert_eq!(seen, "id: 1\ndata: first\n\n");

    // Outlive the upstream timeout several times over (the passage of time is what is tested),
    // then the stream still carries the next event.
    tokio::time::sleep(UPSTREAM_TIMEOUT * 3).await;
    events.send("id: 2\ndata: second\n\n").unwrap();
    read_until(&mut resp, &mut seen, "data: second\n\n").await;

    // The upstream ends the stream; so does the client's.
    drop(events);
    let end = tokio::time::timeout(PROMPTLY, resp.chunk())
        .await
        .expect("the end of the stream did not come through")
        .unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_eq!(seen, "id: 1\ndata: first\n\nid: 2\ndata: second\n\n");
}
