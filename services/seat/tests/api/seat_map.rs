//! The seat map: plain and compact JSON, counts, `ETag`, 404, and the waiting-room guard.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use platform::testing;
use seat::Config;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{App, Backend, performance, spawn, spawn_configured, store};

#[tokio::test]
async fn seat_map_shows_states_counts_and_honours_etag() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let p = performance(3, 4, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-01-01", "A-01-02"]}),
        )
        .await;
    assert_eq!(r.status(), 201);

    let url = app
        .server
        .url(&format!("/api/v1/performances/{perf}/seats"));
    let r = app.server.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["version"], 2);
    assert_eq!(body["seats"].as_array().unwrap().len(), 12);
    assert_eq!(
        body["seats"][0],
        json!({"id": "A-01-01", "status": "held", "grade": "vip",
        "section": "A", "row": "01", "number": 1, "wheelchair": true})
    );
    assert_eq!(body["remaining"], json!({"vip": 6, "r": 4, "ga": 50}));
    assert_eq!(
        body["counts"],
        json!({"available": 60, "held": 2, "sold": 0})
    );
    assert_eq!(
        body["counts_by_grade"]["vip"],
        json!({"available": 6, "held": 2, "sold": 0})
    );
    assert_eq!(body["areas"][0]["available"], 50);

    let r = app
        .server
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = app
        .server
        .client
        .get(format!("{url}?format=compact"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    let compact: serde_json::Value = r.json().await.unwrap();
    assert_eq!(compact["status"], "hhaaaaaaaaaa");
    assert_eq!(compact["version"], 2);
    assert!(compact.get("seats").is_none());

    // A change makes the old ETag stale.
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-03-04"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .server
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = app
        .server
        .client
        .get(format!("{url}?format=xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    for path in [
        format!("/api/v1/performances/{}/seats", Uuid::now_v7()),
        "/api/v1/performances/not-a-uuid/seats".to_owned(),
    ] {
        let r = app
            .server
            .client
            .get(app.server.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let problem: serde_json::Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "not_found");
    }
}

#[tokio::test]
async fn a_waiting_room_requires_an_admission_pass() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let mut p = performance(2, 4, 0);
    p.waiting_room = true;
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let url = app
        .server
        .url(&format!("/api/v1/performances/{perf}/seats"));
    let buyer = Uuid::now_v7();

    let r = app.server.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "admission_required");
    let wrong = app.pass(buyer, Uuid::now_v7());
    let r = app
        .server
        .client
        .get(&url)
        .header("x-admission-pass", wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .server
        .client
        .get(&url)
        .header("x-admission-pass", "junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let pass = app.pass(buyer, perf);
    let r = app
        .server
        .client
        .get(&url)
        .header("x-admission-pass", &pass)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let body = json!({"performance_id": perf, "seat_ids": ["A-01-01"]});
    let r = app.hold(buyer, body.clone()).await;
    assert_eq!(r.status(), 403);
    let hold = |pass: String| {
        app.server
            .client
            .post(app.server.url("/api/v1/holds"))
            .bearer_auth(app.token(buyer))
            .header("x-admission-pass", pass)
            .json(&body)
            .send()
    };
    // Someone else's pass does not admit this buyer.
    assert_eq!(
        hold(app.pass(Uuid::now_v7(), perf)).await.unwrap().status(),
        403
    );
    assert_eq!(hold(pass).await.unwrap().status(), 201);
}

/// One read of the seat map: the version served (checked against its ETag), and when the
/// request was sent and its answer received.
struct Read {
    version: u64,
    sent: Instant,
    got: Instant,
}

async fn read(app: &App, perf: Uuid, revision: i64) -> Read {
    let url = app
        .server
        .url(&format!("/api/v1/performances/{perf}/seats"));
    let sent = Instant::now();
    let r = app.server.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    let got = Instant::now();
    let version = body["version"].as_u64().unwrap();
    let epoch = body["epoch"].as_str().unwrap();
    assert_eq!(
        etag,
        format!("\"{epoch}.{revision}.{version}\""),
        "the ETag names the body's version"
    );
    Read { version, sent, got }
}

#[tokio::test]
async fn the_default_freshness_serves_a_map_at_most_max_stale_old() {
    // The service's defaults, as deployed: no test override of the freshness window.
    let config = Config::default();
    let max_stale = Duration::from_millis(config.seat_map_max_stale_ms);
    assert!(!max_stale.is_zero(), "the default defers renders");
    let app = spawn_configured(store(Backend::Memory).await, config).await;
    let p = performance(4, 5, 0);
    let (perf, revision) = (p.performance_id, p.revision);
    app.publish_performance(&p).await;

    // Only this test reads the map, so the first read that answers a new version is the one
    // that rendered it: its body was rendered between that read's `sent` and `got`.
    let mut rendered: Option<Read> = None;
    let mut within_window = 0;
    for (round, seat) in p.seats.iter().enumerate().take(12) {
        let r = app
            .hold(
                Uuid::now_v7(),
                json!({"performance_id": perf, "seat_ids": [seat.seat_id]}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let now = app.store.snapshot(perf).await.unwrap().unwrap().version;
        let first = read(&app, perf, revision).await;
        if let Some(prev) = &rendered {
            assert!(
                first.version == prev.version || first.version == now,
                "round {round}"
            );
            if first.version == prev.version {
                // Stale: only while the body is younger than max_stale.
                assert!(
                    first.sent < prev.got + max_stale,
                    "round {round}: a body older than {max_stale:?} was served"
                );
            }
            if first.got < prev.sent + max_stale {
                // The whole read fell inside the window: the change waits for the next render.
                assert_eq!(first.version, prev.version, "round {round}: not deferred");
                within_window += 1;
            }
        }
        // After the window the change shows; until then every answer is within max_stale.
        let last: Arc<Mutex<Option<Read>>> = Arc::new(Mutex::new(None));
        let prev = rendered.as_ref().map(|r| (r.version, r.got));
        testing::eventually(
            &format!("round {round}: the change to show"),
            Duration::from_secs(5),
            || {
                let (app, last) = (&app, last.clone());
                async move {
                    let r = read(app, perf, revision).await;
                    if r.version == now {
                        *last.lock().unwrap() = Some(r);
                        return true;
                    }
                    // (Before the first round's render, when the body was rendered is unknown.)
                    if let Some((version, got)) = prev {
                        assert_eq!(r.version, version, "round {round}");
                        assert!(
                            r.sent < got + max_stale,
                            "round {round}: a body older than {max_stale:?} was served"
                        );
                    }
                    false
                }
            },
        )
        .await;
        let fresh = last.lock().unwrap().take().unwrap();
        // The fresh body is the first of its version only if `first` was stale.
        rendered = Some(if first.version == now { first } else { fresh });
        if within_window >= 3 {
            break;
        }
    }
    assert!(
        within_window >= 1,
        "no read fell inside the {max_stale:?} window: the machine is too slow to tell"
    );
}
