//! A hold store that loses performances: flushed under a running service, rolled back behind
//! SeatDB, or simply idle. The service recovers without a restart, never lets a sold seat be held
//! again, moves streams to the new epoch with a snapshot, restores lost sales, and drops maps
//! nobody uses.

use std::time::Duration;

use contracts::events::OrderConfirmed;
use platform::testing;
use seat::{Config, map::registry::SeatMaps};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    helpers::{App, Backend, Handled, SseReader, performance, spawn, wait_handled},
    race::seat_pool,
};

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(testing::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// What a `FLUSHALL` does to one performance (the Redis server is shared with other tests, so
/// only this performance's keys go).
pub async fn wipe(perf: Uuid) {
    let mut conn = redis().await;
    let keys = testing::scan_keys(&mut conn, &format!("seat:{{{perf}}}:*")).await;
    assert!(!keys.is_empty(), "the performance was in the store");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Holds `seats` for `buyer` through the API; the hold id.
async fn hold(app: &App, buyer: Uuid, perf: Uuid, seats: &[&str]) -> Uuid {
    let r = app
        .hold(buyer, json!({"performance_id": perf, "seat_ids": seats}))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    serde_json::from_value(r.json::<Value>().await.unwrap()["hold_id"].clone()).unwrap()
}

/// Holds and sells `seat` to a new buyer; returns when SeatDB and the store have the sale.
async fn sell(app: &App, perf: Uuid, seat: &str) -> Uuid {
    let buyer = Uuid::now_v7();
    let hold_id = hold(app, buyer, perf, &[seat]).await;
    let env = app
        .publish(&OrderConfirmed {
            order_id: Uuid::now_v7(),
            buyer_id: buyer,
            hold_id,
            performance_id: perf,
            seat_ids: vec![seat.into()],
            areas: Vec::new(),
            amount_krw: 100_000,
            ticket_ids: Vec::new(),
        })
        .await;
    let pool = seat_pool(app).await;
    assert_eq!(wait_handled(&pool, env.id).await, Handled::Applied);
    hold_id
}

fn status<'a>(map: &'a Value, seat: &str) -> &'a Value {
    &map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == seat)
        .unwrap()["status"]
}

#[tokio::test]
async fn a_store_flushed_under_a_running_service_recovers_without_a_restart() {
    let config = Config {
        stream_flush_ms: 20,
        ..Config::default()
    };
    let app = spawn(Backend::Redis, config).await;
    let p = performance(1, 5, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    sell(&app, perf, "A-01-01").await;
    hold(&app, Uuid::now_v7(), perf, &["A-01-02"]).await;
    let before = app.seats(perf).await;
    let old_epoch = before["epoch"].as_str().unwrap().to_owned();
    let mut live = SseReader::open(&app, perf, None).await;
    let at = live.next().await;
    assert_eq!(at.event, "snapshot");

    wipe(perf).await;

    // The first hold after the loss recovers the performance from SeatDB, sales included,
    // before it is decided: the sold seat stays sold...
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
        )
        .await;
    assert_eq!(r.status(), 409, "a sold seat is never held again");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "seat_unavailable", "{problem}");
    // ... and the hold the store lost is gone with it (holds live only in the store).
    hold(&app, Uuid::now_v7(), perf, &["A-01-02"]).await;

    let after = app.seats(perf).await;
    let new_epoch = after["epoch"].as_str().unwrap().to_owned();
    assert_ne!(new_epoch, old_epoch, "a new epoch");
    assert_eq!(status(&after, "A-01-01"), "sold");
    assert_eq!(status(&after, "A-01-02"), "held");
    assert_eq!(after["counts"]["sold"], 1);

    // The open stream moves to the new epoch with a snapshot, not a delta.
    let reset = live.next().await;
    assert_eq!(reset.event, "snapshot");
    assert!(reset.raw_id.starts_with(&format!("{new_epoch}-")));
    // A client resuming from before the reset gets a snapshot too, even where its version
    // exists in the new epoch.
    let mut resumed = SseReader::open_raw(&app, perf, Some(&at.raw_id)).await;
    let e = resumed.next().await;
    assert_eq!(
        e.event, "snapshot",
        "never a delta against a vanished state"
    );
    assert_eq!(e.data["epoch"], new_epoch.as_str());
    assert!(e.data["status"].as_str().unwrap().starts_with("sh"));
    // A stale ETag of the old epoch does not match.
    let old_tag = format!(
        "\"{old_epoch}.{}.{}\"",
        before["revision"], before["version"]
    );
    let r = app
        .server
        .client
        .get(
            app.server
                .url(&format!("/api/v1/performances/{perf}/seats")),
        )
        .header("if-none-match", old_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_follower_recovers_a_flushed_performance_with_no_request() {
    let config = Config {
        stream_flush_ms: 20,
        ..Config::default()
    };
    let app = spawn(Backend::Redis, config).await;
    let p = performance(1, 5, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    sell(&app, perf, "A-01-03").await;
    let old_epoch = app.seats(perf).await["epoch"].clone();
    wipe(perf).await;
    // Nobody asks; the follower finds the performance gone and installs it again.
    testing::eventually(
        "the store to have the performance again",
        Duration::from_secs(10),
        || {
            let store = app.store.clone();
            async move { store.snapshot(perf).await.unwrap().is_some() }
        },
    )
    .await;
    let snap = app.store.snapshot(perf).await.unwrap().unwrap();
    assert_ne!(json!(snap.epoch), old_epoch);
    assert_eq!(
        snap.taken,
        vec![("A-01-03".to_owned(), seat::domain::SeatStatus::Sold)]
    );
}

#[tokio::test]
async fn maintenance_restores_a_sale_the_store_lost_and_recovers_a_lost_performance() {
    let app = spawn(Backend::Redis, Config::default()).await;
    let p = performance(1, 5, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let hold_id = sell(&app, perf, "A-01-04").await;
    // The store rolls back to before the sale (an older snapshot loaded at a Redis restart).
    let mut conn = redis().await;
    let prefix = format!("seat:{{{perf}}}:");
    let _: () = redis::pipe()
        .cmd("HDEL")
        .arg(format!("{prefix}seats"))
        .arg("A-01-04")
        .cmd("DEL")
        .arg(format!("{prefix}hold:{hold_id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let pool = seat_pool(&app).await;
    let maps = SeatMaps::new(
        app.store.clone(),
        pool.clone(),
        CancellationToken::new(),
        Duration::from_millis(50),
    );
    maps.load(perf).await.unwrap().unwrap();
    let done = maps.maintain(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(done.restored, 1, "{done:?}");
    let snap = app.store.snapshot(perf).await.unwrap().unwrap();
    assert_eq!(
        snap.taken,
        vec![("A-01-04".to_owned(), seat::domain::SeatStatus::Sold)]
    );
    let again = maps.maintain(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(again.restored, 0, "nothing left to repair");

    wipe(perf).await;
    let done = maps.maintain(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(done.recovered, vec![perf]);
    let snap = app.store.snapshot(perf).await.unwrap().unwrap();
    assert_eq!(
        snap.taken,
        vec![("A-01-04".to_owned(), seat::domain::SeatStatus::Sold)]
    );
}

#[tokio::test]
async fn idle_maps_are_dropped_and_performances_with_live_holds_are_followed() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, Config::default()).await;
        let idle = performance(1, 5, 0);
        let busy = performance(1, 5, 0);
        app.publish_performance(&idle).await;
        app.publish_performance(&busy).await;
        hold(&app, Uuid::now_v7(), busy.performance_id, &["A-01-01"]).await;
        let pool = seat_pool(&app).await;
        let maps = SeatMaps::new(
            app.store.clone(),
            pool,
            CancellationToken::new(),
            Duration::from_millis(50),
        );
        maps.load(idle.performance_id).await.unwrap().unwrap();
        // A map read just now stays. The performance with a live hold, which this replica
        // never read, is followed so its holds expire here too.
        let done = maps.maintain(Duration::from_secs(3600)).await.unwrap();
        assert!(done.evicted.is_empty(), "{backend:?}: {done:?}");
        assert_eq!(done.adopted, vec![busy.performance_id], "{backend:?}");
        // Idle (any read is older than zero): dropped.
        let done = maps.maintain(Duration::ZERO).await.unwrap();
        assert_eq!(done.evicted, vec![idle.performance_id], "{backend:?}");
        assert!(done.adopted.is_empty(), "{backend:?}: {done:?}");
        assert_eq!(maps.ids(), vec![busy.performance_id]);
        // A map with a live hold is never dropped, however idle.
        let done = maps.maintain(Duration::ZERO).await.unwrap();
        assert!(done.evicted.is_empty(), "{backend:?}: {done:?}");
        // A dropped map loads again on the next read.
        assert!(maps.load(idle.performance_id).await.unwrap().is_some());
        assert_eq!(maps.ids().len(), 2);
    }
}
