//! The load report the admission service's automatic mode follows: seat maps and holds are
//! counted, with their p99 and server errors; other routes are not.

use seat::Config;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, performance, spawn};

async fn load(app: &crate::helpers::App) -> Value {
    let r = app
        .server
        .client
        .get(app.server.url("/internal/v1/load?secs=16"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn seat_maps_and_holds_are_counted_with_their_p99_and_errors() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let before = load(&app).await;
    assert_eq!(before["requests"], 0, "{before}");
    assert!(before["p99_ms"].is_null());
    let p = performance(2, 4, 4);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    // publish_performance reads the map until it answers: those reads count.
    let published = load(&app).await["requests"].as_u64().unwrap();
    assert!(published >= 1);
    for _ in 0..3 {
        app.seats(perf).await;
    }
    let buyer = Uuid::now_v7();
    let r = app
        .hold(
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    // A refusal is an answer, not an error.
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
        )
        .await;
    assert_eq!(r.status(), 409);
    let hold: Value = app
        .hold(
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-02"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    // Reading a hold is not what admitted fans load the service with: not counted.
    let r = app
        .server
        .client
        .get(app.server.url(&format!(
            "/api/v1/holds/{}",
            hold["hold_id"].as_str().unwrap()
        )))
        .bearer_auth(app.token(buyer))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = load(&app).await;
    assert_eq!(
        after["requests"].as_u64().unwrap(),
        published + 3 + 3,
        "{after}"
    );
    assert_eq!(after["errors"], 0);
    let p99 = after["p99_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 < 10_000.0, "{p99}");
    assert_eq!(after["window_secs"], 16);
    app.infra.shutdown.cancel();
}
