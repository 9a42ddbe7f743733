//! One upstream, several instances (`services.catalog = "http://a,http://b,http://c"`): requests
//! spread over all of them; a killed instance costs no client an error (a connection that was
//! never made goes to another instance, whatever the method); a reply lost after the request went
//! out is tried elsewhere only for an idempotent method; a hung instance answers a fast 504 and
//! is ejected; an instance that fails its health check gets no traffic until it passes again.
//!
//! The instances are real HTTP servers on their own ports whose every connection is a task of
//! theirs, so killing one closes its listener and every open connection at once, as a crashed
//! process would.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use platform::service::Directory;
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinSet};

use super::{gateway_with_ops, get_json};

/// One instance: its name answers `GET /api/v1/events`, `POST /api/v1/venues` echoes the body
/// with its name; `/readyz` follows `ready`; `GET /api/v1/events/hang` never answers.
struct Instance {
    name: &'static str,
    base: String,
    hits: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    name: &'static str,
    hits: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
}

impl Instance {
    async fn start(name: &'static str) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(true));
        let shared = Shared {
            name,
            hits: hits.clone(),
            ready: ready.clone(),
        };
        let router = Router::new()
            .route(
                "/api/v1/events",
                get(|State(s): State<Shared>| async move {
                    s.hits.fetch_add(1, Ordering::SeqCst);
                    s.name
                }),
            )
            .route(
                "/api/v1/events/hang",
                get(std::future::pending::<&'static str>),
            )
            .route(
                "/api/v1/venues",
                post(|State(s): State<Shared>, body: String| async move {
                    s.hits.fetch_add(1, Ordering::SeqCst);
                    format!("{} {body}", s.name)
                }),
            )
            .route(
                "/readyz",
                get(|State(s): State<Shared>| async move {
                    if s.ready.load(Ordering::SeqCst) {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }),
            )
            .with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            // Dropped with this task: every connection dies with the listener.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            name,
            base,
            hits,
            ready,
            server,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Kills it: the listener and every connection close at once.
    async fn kill(&self) {
        self.server.abort();
        while !self.server.is_finished() {
            tokio::task::yield_now().await;
        }
        // The port refuses connections from now on.
        let addr = self.base.trim_start_matches("http://");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}

fn directory(instances: &[&Instance]) -> Directory {
    let urls: Vec<&str> = instances.iter().map(|i| i.base.as_str()).collect();
    let mut dir = Directory::default();
    dir.0.insert("catalog".into(), urls.join(","));
    dir
}

/// GETs `/api/v1/events` `n` times, returning how many each instance answered; panics on any
/// answer but 200.
async fn spread(client: &reqwest::Client, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut answers = BTreeMap::new();
    for _ in 0..n {
        let r = client.get(url).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        *answers.entry(body).or_default() += 1;
    }
    answers
}

#[tokio::test]
async fn requests_spread_over_three_instances_and_a_killed_one_costs_no_error() {
    let (a, b, c) = (
        Instance::start("a").await,
        Instance::start("b").await,
        Instance::start("c").await,
    );
    let config = gateway::Config {
        // Only passive ejection and retries here: the health check must not hide the kill.
        health_interval_ms: 0,
        ..Default::default()
    };
    let (gw, _ops) = gateway_with_ops(directory(&[&a, &b, &c]), config).await;
    let url = gw.url("/api/v1/events");

    let answers = spread(&gw.client, &url, 300).await;
    for i in [&a, &b, &c] {
        let n = answers.get(i.name).copied().unwrap_or(0);
        assert!(n >= 50, "{} answered {n} of 300: {answers:?}", i.name);
    }

    b.kill().await;
    // Reads and writes go on without a single error: what b no longer takes goes elsewhere.
    let answers = spread(&gw.client, &url, 200).await;
    assert!(!answers.contains_key("b"), "{answers:?}");
    for i in 0..50 {
        let r = gw
            .client
            .post(gw.url("/api/v1/venues"))
            .body(format!("write {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(
            text == format!("a write {i}") || text == format!("c write {i}"),
            "{text}"
        );
    }
    assert_eq!(a.hits() + c.hits(), 300 - b.hits() + 200 + 50);
}

/// An instance that takes the request and closes the connection without a reply; counts them.
async fn reply_loser() -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // Read the whole request head (and the small body after it), then hang up.
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            });
        }
    });
    (base, taken)
}

#[tokio::test]
async fn a_lost_reply_is_tried_elsewhere_only_for_an_idempotent_method() {
    let good = Instance::start("good").await;
    let (loser, taken) = reply_loser().await;
    let mut dir = Directory::default();
    dir.0
        .insert("catalog".into(), format!("{loser},{}", good.base));
    let config = gateway::Config {
        health_interval_ms: 0,
        // Keep the loser in rotation: this test is about what each request does.
        breaker_failures: 1000,
        ..Default::default()
    };
    let (gw, _ops) = gateway_with_ops(dir, config).await;

    // GETs: whenever the loser took one, the good instance answered it after all.
    for _ in 0..40 {
        let r = gw
            .client
            .get(gw.url("/api/v1/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "good");
    }
    assert!(
        taken.load(Ordering::SeqCst) > 0,
        "the loser never drew a GET"
    );

    // POSTs: one the loser took may have done its work there; it is not sent a second time.
    let (mut lost, mut answered) = (0, 0);
    for i in 0..40 {
        let before = taken.load(Ordering::SeqCst);
        let hits_before = good.hits();
        let r = gw
            .client
            .post(gw.url("/api/v1/venues"))
            .body(format!("pay {i}"))
            .send()
            .await
            .unwrap();
        if taken.load(Ordering::SeqCst) > before {
            assert_eq!(r.status(), 502, "a lost POST is an error, not a retry");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "upstream_unavailable");
            assert_eq!(good.hits(), hits_before, "the POST went out a second time");
            lost += 1;
        } else {
            assert_eq!(r.status(), 200);
            answered += 1;
        }
    }
    assert!(lost > 0 && answered > 0, "lost {lost}, answered {answered}");
}

#[tokio::test]
async fn a_hung_instance_answers_a_fast_504_and_is_ejected() {
    let (a, b) = (Instance::start("a").await, Instance::start("b").await);
    let config = gateway::Config {
        upstream_timeout_ms: 300,
        breaker_failures: 1,
        breaker_open_ms: 60_000,
        health_interval_ms: 0,
        ..Default::default()
    };
    let (gw, _ops) = gateway_with_ops(directory(&[&a, &b]), config).await;
    let started = Instant::now();
    let r = gw
        .client
        .get(gw.url("/api/v1/events/hang"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a timed-out request is not tried on every instance: {:?}",
        started.elapsed()
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "upstream_timeout");

    // Its instance is ejected; the other takes everything.
    let (before_a, before_b) = (a.hits(), b.hits());
    let answers = spread(&gw.client, &gw.url("/api/v1/events"), 40).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(a.hits() + b.hits(), before_a + before_b + 40);
    // The hang sent to the other instance ejects it too; with both out, a fast 503.
    let r = gw
        .client
        .get(gw.url("/api/v1/events/hang"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let r = gw
        .client
        .get(gw.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
}

/// The instance-up gauge of `base` on the ops listener's `/metrics`.
async fn instance_up(ops: &str, base: &str) -> Option<f64> {
    let text = reqwest::get(format!("{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let needle = format!("instance=\"{base}\"");
    text.lines()
        .filter(|l| l.starts_with("boxoffice_gateway_instance_up") && l.contains(&needle))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Polls the gauge until it is `want`, within 10 s.
async fn wait_instance_up(ops: &str, base: &str, want: f64) {
    let started = Instant::now();
    while instance_up(ops, base).await != Some(want) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{base} not reported {want} by the health check"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_instance_failing_its_health_check_gets_no_traffic_until_it_passes() {
    let (a, b) = (Instance::start("a").await, Instance::start("b").await);
    let config = gateway::Config {
        health_interval_ms: 50,
        ..Default::default()
    };
    let (gw, ops) = gateway_with_ops(directory(&[&a, &b]), config).await;
    wait_instance_up(&ops, &a.base, 1.0).await;

    a.ready.store(false, Ordering::SeqCst);
    wait_instance_up(&ops, &a.base, 0.0).await;
    let answers = spread(&gw.client, &gw.url("/api/v1/events"), 60).await;
    assert_eq!(answers.get("b"), Some(&60), "{answers:?}");
    // The gateway's view of the upstream: up while one instance is.
    let (_, ready) = get_json(&format!("{ops}/readyz")).await;
    assert_eq!(ready["checks"]["catalog"]["status"], "up", "{ready}");

    a.ready.store(true, Ordering::SeqCst);
    wait_instance_up(&ops, &a.base, 1.0).await;
    let answers = spread(&gw.client, &gw.url("/api/v1/events"), 100).await;
    assert!(answers.get("a").copied().unwrap_or(0) >= 20, "{answers:?}");
}
