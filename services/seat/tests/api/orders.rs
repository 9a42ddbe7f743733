//! Sold seats: `order.confirmed` marks a hold's seats sold (once, with the unique constraint as
//! the last guard); `order.cancelled` puts them back on sale (once). A re-published performance
//! updates the inventory.

use std::time::Duration;

use contracts::events::{OrderCancelled, OrderConfirmed};
use platform::testing;
use seat::Config;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{Backend, performance, spawn},
    race::seat_pool,
};

#[tokio::test]
async fn orders_sell_and_return_seats_idempotently() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, Config::default()).await;
        let p = performance(2, 5, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let buyer = Uuid::now_v7();
        let r = app
            .hold(
                buyer,
                json!({"performance_id": perf, "seat_ids": ["A-01-01", "A-01-02"]}),
            )
            .await;
        let hold: Value = r.json().await.unwrap();
        let hold_id: Uuid = serde_json::from_value(hold["hold_id"].clone()).unwrap();
        let order_id = Uuid::now_v7();
        let confirmed = OrderConfirmed {
            order_id,
            buyer_id: buyer,
            hold_id,
            performance_id: perf,
            seat_ids: vec!["A-01-01".into(), "A-01-02".into()],
            areas: Vec::new(),
            amount_krw: 300_000,
            ticket_ids: Vec::new(),
        };
        // Delivered twice (a redelivery with a new event id): applied once.
        app.publish(&confirmed).await;
        app.publish(&confirmed).await;
        let pool = seat_pool(&app).await;
        let count = |pool: sqlx::PgPool| async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sold_seats")
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        // The map shows the sale as the store records it; SeatDB's rows commit just after.
        testing::eventually("seats sold", Duration::from_secs(10), || {
            let (app, pool) = (&app, pool.clone());
            async move { app.seats(perf).await["counts"]["sold"] == 2 && count(pool).await == 2 }
        })
        .await;
        let url = app.server.url(&format!("/api/v1/holds/{hold_id}"));
        let r = app
            .server
            .client
            .get(&url)
            .bearer_auth(app.token(buyer))
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "sold");
        let r = app
            .server
            .client
            .delete(&url)
            .bearer_auth(app.token(buyer))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);

        let cancelled = OrderCancelled {
            order_id,
            buyer_id: buyer,
            performance_id: perf,
            seat_ids: confirmed.seat_ids.clone(),
            areas: Vec::new(),
            refund_krw: 300_000,
            reason: "buyer_cancelled".into(),
        };
        app.publish(&cancelled).await;
        app.publish(&cancelled).await;
        testing::eventually("seats back on sale", Duration::from_secs(10), || {
            let (app, pool) = (&app, pool.clone());
            async move { app.seats(perf).await["counts"]["sold"] == 0 && count(pool).await == 0 }
        })
        .await;
        let map = app.seats(perf).await;
        assert_eq!(map["counts"]["available"], 60);
        pool.close().await;
    }
}

#[tokio::test]
async fn a_republished_performance_updates_the_inventory() {
    let app = spawn(Backend::Redis, Config::default()).await;
    let mut p = performance(1, 4, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    // The same revision again changes nothing; a newer one adds a row and keeps the hold.
    app.publish(&p).await;
    p = performance(2, 4, 0);
    p.performance_id = perf;
    p.revision = 2;
    app.publish_performance(&p).await;
    let map = app.seats(perf).await;
    assert_eq!(map["seats"].as_array().unwrap().len(), 8);
    assert_eq!(map["seats"][0]["status"], "held");
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-02-04"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
}

async fn seats_on(server: &platform::testing::TestServer, perf: Uuid) -> Value {
    let url = server.url(&format!("/api/v1/performances/{perf}/seats"));
    server
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_replica_catches_up_and_follows_changes() {
    let app = spawn(Backend::Redis, Config::default()).await;
    let p = performance(2, 5, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let other = app
        .replica(crate::helpers::store(Backend::Redis).await)
        .await;
    let map = seats_on(&other, perf).await;
    assert_eq!(map["seats"][0]["status"], "held");
    // A change made through the first replica reaches the second through the store's log.
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-02-05"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    testing::eventually(
        "the second replica to follow",
        Duration::from_secs(10),
        || {
            let other = &other;
            async move { seats_on(other, perf).await["counts"]["held"] == 2 }
        },
    )
    .await;
    assert_eq!(
        seats_on(&other, perf).await["version"],
        app.seats(perf).await["version"]
    );
}

#[tokio::test]
async fn a_restarted_standalone_store_keeps_sold_seats() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let p = performance(1, 5, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let r = app
        .hold(
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-03"]}),
        )
        .await;
    let hold_id: Uuid =
        serde_json::from_value(r.json::<Value>().await.unwrap()["hold_id"].clone()).unwrap();
    app.publish(&OrderConfirmed {
        order_id: Uuid::now_v7(),
        buyer_id: buyer,
        hold_id,
        performance_id: perf,
        seat_ids: vec!["A-01-03".into()],
        areas: Vec::new(),
        amount_krw: 100_000,
        ticket_ids: Vec::new(),
    })
    .await;
    testing::eventually("the seat sold", Duration::from_secs(10), || {
        let app = &app;
        async move { app.seats(perf).await["counts"]["sold"] == 1 }
    })
    .await;
    // A fresh process: an empty in-memory store, rebuilt from SeatDB.
    let restarted = app
        .replica(crate::helpers::store(Backend::Memory).await)
        .await;
    let map = seats_on(&restarted, perf).await;
    assert_eq!(map["seats"][2]["status"], "sold");
    assert_eq!(map["counts"]["sold"], 1);
}
