//! Sold seats: `order.confirmed` marks a hold's seats sold (once, with the unique constraint as
//! the last guard); `order.cancelled` puts them back on sale (once). A re-published performance
//! updates the inventory.

use std::time::Duration;

use contracts::{
    Event,
    events::{OrderCancelled, OrderConfirmed},
};
use platform::testing;
use seat::Config;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{Backend, Handled, performance, spawn, wait_handled},
    race::seat_pool,
};

async fn sold_rows(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sold_seats")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn dead_letters(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bus_dead_letters")
        .fetch_one(pool)
        .await
        .unwrap()
}

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
        assert_eq!(r.status(), 201);
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
        let pool = seat_pool(&app).await;
        let first = app.publish(&confirmed).await;
        // Applying an event commits its inbox row with its effects: SeatDB's sale, the store's
        // and the map's (which the handler updates before committing).
        assert_eq!(wait_handled(&pool, first.id).await, Handled::Applied);
        let sold = app.seats(perf).await;
        assert_eq!(sold["counts"]["sold"], 2);
        assert_eq!(sold_rows(&pool).await, 2);
        // Delivered again: the transport redelivers the same envelope (the inbox skips it and
        // leaves no row), then the order service republishes with a new event id (the handler
        // finds the sale recorded). One key, one partition, in order: once the republication
        // is handled, so is the redelivery before it.
        app.publish_envelope(OrderConfirmed::TOPIC, &first).await;
        let again = app.publish(&confirmed).await;
        assert_eq!(wait_handled(&pool, again.id).await, Handled::Applied);
        let map = app.seats(perf).await;
        assert_eq!(map["counts"]["sold"], 2);
        assert_eq!(
            map["version"], sold["version"],
            "the duplicates changed nothing"
        );
        assert_eq!(sold_rows(&pool).await, 2);
        assert_eq!(dead_letters(&pool).await, 0);
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
            hold_id: Some(hold_id),
        };
        let first = app.publish(&cancelled).await;
        assert_eq!(wait_handled(&pool, first.id).await, Handled::Applied);
        let returned = app.seats(perf).await;
        assert_eq!(returned["counts"]["sold"], 0);
        assert_eq!(returned["counts"]["available"], 60);
        assert_eq!(sold_rows(&pool).await, 0);
        app.publish_envelope(OrderCancelled::TOPIC, &first).await;
        let again = app.publish(&cancelled).await;
        assert_eq!(wait_handled(&pool, again.id).await, Handled::Applied);
        let map = app.seats(perf).await;
        assert_eq!(map["counts"]["available"], 60);
        assert_eq!(
            map["version"], returned["version"],
            "the duplicates changed nothing"
        );
        assert_eq!(sold_rows(&pool).await, 0);
        assert_eq!(dead_letters(&pool).await, 0);
        pool.close().await;
    }
}

/// Whether a SeatDB session waits for an advisory lock (a sale waiting for a publication).
async fn waits_for_a_lock(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database())",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A publication installs its performance in the hold store, where holds can be placed at once,
/// before its transaction commits SeatDB's rows; the order of such a hold, consumed on another
/// partition meanwhile, must wait for that commit — not find no performance in SeatDB and refuse
/// (and refund) a good sale with `unknown_performance`.
#[tokio::test]
async fn a_sale_waits_for_the_publication_still_committing_its_performance() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, Config::default()).await;
        let pool = seat_pool(&app).await;
        let p = performance(1, 5, 0);
        let perf = p.performance_id;
        // The publication's handler, stopped between its store install and its commit.
        let mut publication = pool.begin().await.unwrap();
        seat::db::lock_publication(&mut publication, perf)
            .await
            .unwrap();
        assert!(
            seat::db::save_published(&mut publication, &p)
                .await
                .unwrap()
        );
        let inventory = seat::map::Layout::from_published(&p).inventory();
        app.store
            .install_with_sales(&inventory, Some(&[]))
            .await
            .unwrap();
        let hold = seat::store::Hold {
            hold_id: Uuid::now_v7(),
            performance_id: perf,
            buyer_id: Uuid::now_v7(),
            seat_ids: vec!["A-01-01".into(), "A-01-02".into()],
            areas: Vec::new(),
            amount_krw: 300_000,
            expires_at_ms: chrono::Utc::now().timestamp_millis() + 600_000,
            status: seat::store::HoldStatus::Active,
            presale_limit: None,
        };
        assert!(app.store.hold(&hold).await.unwrap().version > 0);
        let order = app
            .publish(&OrderConfirmed {
                order_id: Uuid::now_v7(),
                buyer_id: hold.buyer_id,
                hold_id: hold.hold_id,
                performance_id: perf,
                seat_ids: hold.seat_ids.clone(),
                areas: Vec::new(),
                amount_krw: hold.amount_krw,
                ticket_ids: Vec::new(),
            })
            .await;
        // The sale is decided (refused, without a wait) or waits for the publication.
        testing::eventually(
            "the sale to be decided or to wait",
            Duration::from_secs(10),
            || {
                let pool = &pool;
                async move {
                    waits_for_a_lock(pool).await
                        || crate::helpers::handled(pool, order.id).await != Handled::Pending
                }
            },
        )
        .await;
        publication.commit().await.unwrap();
        assert_eq!(wait_handled(&pool, order.id).await, Handled::Applied);
        let rejected: i64 = sqlx::query_scalar("SELECT count(*) FROM rejected_sales")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rejected, 0, "{backend:?}: the sale was refused");
        assert_eq!(sold_rows(&pool).await, 2, "{backend:?}");
        let sold = app
            .store
            .find_hold_in(perf, hold.hold_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sold.status, seat::store::HoldStatus::Sold, "{backend:?}");
        assert_eq!(app.seats(perf).await["counts"]["sold"], 2, "{backend:?}");
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
    let before = app.seats(perf).await;
    let pool = seat_pool(&app).await;
    let repeat = app.publish_spec(&p).await;
    assert_eq!(wait_handled(&pool, repeat.id).await, Handled::Applied);
    let after = app.seats(perf).await;
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["seats"], before["seats"]);
    assert_eq!(after["seats"][0]["status"], "held");
    pool.close().await;
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
