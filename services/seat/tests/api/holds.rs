//! Holds over HTTP: chosen seats, best available, general admission, limits, release, lookup,
//! and expiry without any request arriving.

use std::time::Duration;

use contracts::events::{HoldEndReason, HoldEnded};
use seat::Config;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, performance, spawn};

#[tokio::test]
async fn holds_are_all_or_nothing_and_name_the_taken_seats() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, Config::default()).await;
        let p = performance(3, 6, 4);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let r = app
            .hold(
                alice,
                json!({"performance_id": perf, "seat_ids": ["A-01-01", "A-03-01"]}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let held: Value = r.json().await.unwrap();
        assert_eq!(held["amount_krw"], 250_000);
        assert_eq!(held["status"], "active");
        assert!(held["expires_at"].is_string());

        let r = app
            .hold(
                bob,
                json!({"performance_id": perf, "seat_ids": ["A-01-02", "A-01-01"]}),
            )
            .await;
        assert_eq!(r.status(), 409);
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "seat_unavailable");
        assert_eq!(problem["seat_ids"], json!(["A-01-01"]));
        assert_eq!(app.seats(perf).await["seats"][1]["status"], "available");

        // Lookup: the buyer sees it, others do not.
        let hold_id = held["hold_id"].as_str().unwrap();
        let url = app.server.url(&format!("/api/v1/holds/{hold_id}"));
        let r = app
            .server
            .client
            .get(&url)
            .bearer_auth(app.token(alice))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let found: Value = r.json().await.unwrap();
        assert_eq!(found["seat_ids"], held["seat_ids"]);
        assert_eq!(found["buyer_id"], json!(alice));
        let r = app
            .server
            .client
            .get(&url)
            .bearer_auth(app.token(bob))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = app.server.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401);

        // Limit: 4 per buyer, counting what alice holds.
        let r = app
            .hold(
                alice,
                json!({"performance_id": perf, "grade": "r", "quantity": 3}),
            )
            .await;
        assert_eq!(r.status(), 409);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "limit_exceeded");

        // Release puts the seats back; a second release is harmless.
        let r = app
            .server
            .client
            .delete(&url)
            .bearer_auth(app.token(alice))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let r = app
            .server
            .client
            .delete(&url)
            .bearer_auth(app.token(alice))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(app.seats(perf).await["counts"]["held"], 0);
        let r = app
            .server
            .client
            .get(&url)
            .bearer_auth(app.token(alice))
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "released");
        let r = app
            .hold(
                bob,
                json!({"performance_id": perf, "seat_ids": ["A-01-02", "A-01-01"]}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
}

#[tokio::test]
async fn best_available_and_general_admission() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let p = performance(3, 6, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "grade": "r", "quantity": 3}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["seat_ids"], json!(["A-03-01", "A-03-02", "A-03-03"]));
    assert_eq!(body["adjacent"], true);
    // Three left in row 3: two of them leave no orphan only at one end.
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "grade": "r", "quantity": 2}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["seat_ids"], json!(["A-03-04", "A-03-05"]));
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "quantity": 1, "wheelchair": true}),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["seat_ids"],
        json!(["A-01-01"])
    );
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "grade": "r", "quantity": 2}),
        )
        .await;
    assert_eq!(r.status(), 409);

    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "area_id": "GA", "quantity": 4}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["areas"],
        json!([{"area_id": "GA", "quantity": 4, "grade": "ga"}])
    );
    assert_eq!(body["amount_krw"], 200_000);
    let map = app.seats(perf).await;
    assert_eq!(map["areas"][0]["held"], 4);
    assert_eq!(map["remaining"]["ga"], 46);

    // Bad input: problem+json, never a 500.
    for bad in [
        json!({"performance_id": perf}),
        json!({"performance_id": perf, "seat_ids": []}),
        json!({"performance_id": perf, "seat_ids": ["A-01-02", "A-01-02"]}),
        json!({"performance_id": perf, "seat_ids": ["Z-99"]}),
        json!({"performance_id": perf, "grade": "gold", "quantity": 1}),
        json!({"performance_id": perf, "grade": "r", "quantity": 0}),
        json!({"performance_id": perf, "area_id": "NOPE", "quantity": 1}),
        json!({"performance_id": "x"}),
        json!({"performance_id": perf, "seat_ids": ["A-01-02"], "quantity": 2}),
    ] {
        let r = app.hold(Uuid::now_v7(), bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": Uuid::now_v7(), "quantity": 1}),
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_expired_hold_frees_its_seats_with_an_event() {
    for backend in [Backend::Memory, Backend::Redis] {
        let config = Config {
            hold_ttl_ms: 300,
            sweep_interval_ms: 50,
            ..Config::default()
        };
        let app = spawn(backend, config).await;
        let mut events = app
            .infra
            .bus
            .subscribe("test-observer", &[contracts::topics::SEATS])
            .await
            .unwrap();
        let p = performance(2, 4, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let r = app
            .hold(
                Uuid::now_v7(),
                json!({"performance_id": perf, "seat_ids": ["A-02-02", "A-02-03"]}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let hold_id: Uuid =
            serde_json::from_value(r.json::<Value>().await.unwrap()["hold_id"].clone()).unwrap();
        // Wait on the event itself, with a deadline: no request arrives in between.
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let d = events.next().await.unwrap();
                if d.envelope.is::<HoldEnded>() {
                    return d.envelope.decode::<HoldEnded>().unwrap();
                }
            }
        })
        .await
        .expect("hold.ended within 10 s");
        assert_eq!(ended.hold_id, hold_id);
        assert_eq!(ended.reason, HoldEndReason::Expired);
        assert_eq!(ended.seat_ids, vec!["A-02-02", "A-02-03"]);
        let map = app.seats(perf).await;
        assert_eq!(map["counts"]["held"], 0, "{backend:?}");
    }
}
