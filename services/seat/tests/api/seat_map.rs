//! The seat map: plain and compact JSON, counts, `ETag`, 404, and the waiting-room guard.

use seat::Config;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Backend, performance, spawn};

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
    app.hold(
        Uuid::now_v7(),
        json!({"performance_id": perf, "seat_ids": ["A-03-04"]}),
    )
    .await;
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
